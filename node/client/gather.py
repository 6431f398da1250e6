"""Ask every configured node, check every answer, and agree on one head.

Each node's answer is verified against genesis on its own; then the verified heads are
reconciled with each other and with the remembered checkpoint (``heads.check_extends``):
the highest head answers, lower ones are reported as lagging once their log is proven a
prefix of it, and a conflict anywhere is fork or rollback evidence (exit 3). A node that
cannot be reached is a warning while another one answers (exit 4 when none does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from contracts import subjects_of
from ledger.bundle import BundleError, VerifiedBundle, verify_bundle
from ledger.genesis import Genesis
from node.client.checkpoints import CheckpointStore
from node.client.errors import NoAnswer, VerificationFailed
from node.client.heads import Head, check_extends, decode_consistency
from node.client.transport import NodeClient, NodeRefusal, NodeUnavailable

__all__ = [
    "BundleAnswer",
    "Proven",
    "ask_all",
    "check_bundle",
    "fetch_bundles",
    "prover",
    "reconcile",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Proven:
    """Where the answer stands against what came before it."""

    head: Head
    node: str  # the node whose answer is used, or the bundle file's name
    lagging: tuple[tuple[str, Head], ...] = ()
    checkpoint: Head | None = None  # the remembered head it was checked against
    warnings: tuple[str, ...] = ()


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


def check_bundle(data: bytes, genesis: Genesis, source: str) -> VerifiedBundle:
    try:
        return verify_bundle(data, genesis, subjects_of)
    except BundleError as exc:
        raise VerificationFailed(exc.check, f"{source}: {exc.reason}") from exc


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


Prover = Callable[[str, int, int], Sequence[bytes]]


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


def reconcile(
    heads: Sequence[tuple[str, Head]],
    *,
    checkpoints: CheckpointStore | None,
    prove: Prover | None,
    now: int,
    max_age_ms: int | None,
    warnings: Sequence[str] = (),
) -> Proven:
    """One head out of the verified ``heads`` (node, head), checked against each other,
    the checkpoint and ``max_age_ms``; the checkpoint advances to it when proven.

    ``prove`` is None offline: a head newer than the checkpoint then advances it with a
    warning that its log extension could not be proven without a node."""
    ordered = sorted(heads, key=lambda item: item[1].height, reverse=True)
    best_node, best = ordered[0]
    notes = list(warnings)
    lagging = []
    for node, head in ordered[1:]:
        _check_against(head, best, best_node, prove)
        if head.height < best.height:
            lagging.append((node, head))
    remembered = checkpoints.load() if checkpoints is not None else None
    if remembered is not None:
        if remembered.height < best.height and prove is None:
            # Under the BFT assumption (at most f faulty validators) a quorum-signed header
            # is on the one chain, so a newer one may advance the checkpoint; the log
            # proof that also guards against more than f is taken on the next online call.
            notes.append(
                f"offline: {best.describe()} is newer than the remembered "
                f"{remembered.describe()}; that its log extends the remembered one is not "
                "proven offline (sound while at most f validators are faulty)"
            )
        else:
            _check_against(remembered, best, best_node, prove)
    if max_age_ms is not None and now - best.time > max_age_ms:
        raise VerificationFailed(
            "max_age",
            f"the newest verified head, {best.describe()}, is {_age(now - best.time)} old; "
            f"--max-age allows {_age(max_age_ms)}",
        )
    if checkpoints is not None and (remembered is None or best.height > remembered.height):
        checkpoints.save(best, best_node)
    return Proven(best, best_node, tuple(lagging), remembered, tuple(notes))


def _check_against(older: Head, best: Head, best_node: str, prove: Prover | None) -> None:
    proof = None
    if older.height < best.height and prove is not None:
        proof = prove(best_node, older.log_size, best.log_size)
    check_extends(older, best, proof)


def _age(ms: int) -> str:
    seconds = ms // 1000
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
