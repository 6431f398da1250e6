"""Ask every configured node at once and verify each answer against genesis on its own
(``agree.reconcile`` then settles on one head). A node that cannot be reached is a
warning while another one answers (exit 4 when none does); a node whose answer does not
verify fails the call (exit 3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ledger.bundle import VerifiedBundle
from ledger.genesis import Genesis
from node.client.agree import Prover, check_bundle
from node.client.errors import NoAnswer, VerificationFailed
from node.client.heads import Head, decode_consistency
from node.client.transport import NodeClient, NodeRefusal, NodeUnavailable

__all__ = [
    "BundleAnswer",
    "ask_all",
    "fetch_bundles",
    "prover",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BundleAnswer:
    node: str
    data: bytes
    bundle: VerifiedBundle

    @property
    def head(self) -> Head:
        return Head.of(self.bundle.header, self.bundle.signers)


def ask_all(nodes: Sequence[NodeClient], ask: Callable[[NodeClient], T]) -> list[T | Exception]:
    """``ask`` each node at once (threads: the calls wait on sockets); each result is the
    answer or the NodeUnavailable / NodeRefusal / VerificationFailed it raised."""
    if not nodes:
        raise NoAnswer("no node to ask: give --node URL (or CUSTOMS_NODES, or config)")

    def one(node: NodeClient) -> T | Exception:
        try:
            return ask(node)
        except (NodeUnavailable, NodeRefusal, VerificationFailed) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(len(nodes), 16)) as pool:
        return list(pool.map(one, nodes))


def fetch_bundles(
    nodes: Sequence[NodeClient], genesis: Genesis, subjects: Sequence[str]
) -> tuple[list[BundleAnswer], list[str]]:
    """Every reachable node's verified bundle for ``subjects``, and warnings for the rest.
    A bundle that does not verify raises at once: a node served forged or broken proof."""
    query = [("subject", s) for s in subjects]

    def ask(node: NodeClient) -> BundleAnswer:
        data = node.get("/v1/proofs", query)
        return BundleAnswer(node.url, data, check_bundle(data, genesis, node.url))

    answers: list[BundleAnswer] = []
    warnings: list[str] = []
    for node, result in zip(nodes, ask_all(nodes, ask), strict=True):
        if isinstance(result, VerificationFailed):
            raise result
        if isinstance(result, Exception):
            warnings.append(_unreachable(node.url, result))
        else:
            answers.append(result)
    if not answers:
        raise NoAnswer("no node answered: " + "; ".join(warnings))
    return answers, warnings


def _unreachable(url: str, exc: Exception) -> str:
    if isinstance(exc, NodeRefusal):
        return f"{url} refused: {exc.code}: {exc.message}"
    return f"{url} unreachable: {exc.reason if isinstance(exc, NodeUnavailable) else exc}"


def prover(nodes: Sequence[NodeClient]) -> Prover:
    """Fetch a consistency proof from the node at ``url`` (one of ``nodes``)."""
    by_url = {node.url: node for node in nodes}

    def prove(url: str, first: int, second: int) -> Sequence[bytes]:
        node = by_url[url]
        query = [("first", str(first)), ("second", str(second))]
        try:
            data = node.get("/v1/consistency", query)
        except (NodeUnavailable, NodeRefusal) as exc:
            raise NoAnswer(
                f"{url} did not prove its log extends size {first}: {_unreachable(url, exc)}"
            ) from exc
        return decode_consistency(data, first, second)

    return prove
