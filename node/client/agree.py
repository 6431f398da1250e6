"""One head out of several verified ones, checked against each other and against the
checkpoint (``heads.check_extends``): the highest answers, lower ones are reported as
lagging once their log is proven a prefix of it, and a conflict anywhere is fork or
rollback evidence (exit 3). Pure of network code: the offline path uses it too, and a
caller online passes ``prove``, which fetches consistency proofs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts import subjects_of
from ledger.bundle import BundleError, VerifiedBundle, verify_bundle
from ledger.genesis import Genesis
from node.client.checkpoints import CheckpointStore
from node.client.errors import VerificationFailed
from node.client.heads import Head, check_extends

__all__ = ["Proven", "Prover", "check_bundle", "reconcile"]

Prover = Callable[[str, int, int], Sequence[bytes]]


@dataclass(frozen=True, slots=True)
class Proven:
    """Where the answer stands against what came before it."""

    head: Head
    node: str  # the node whose answer is used, or the bundle file's name
    lagging: tuple[tuple[str, Head], ...] = ()
    checkpoint: Head | None = None  # the remembered head it was checked against
    warnings: tuple[str, ...] = ()


def check_bundle(data: bytes, genesis: Genesis, source: str) -> VerifiedBundle:
    try:
        return verify_bundle(data, genesis, subjects_of)
    except BundleError as exc:
        raise VerificationFailed(exc.check, f"{source}: {exc.reason}") from exc


def reconcile(
    heads: Sequence[tuple[str, Head]],
    *,
    checkpoints: CheckpointStore | None,
    prove: Prover | None,
    now: int,
    max_age_ms: int | None,
    warnings: Sequence[str] = (),
    as_of: int | None = None,
) -> Proven:
    """One head out of the verified ``heads`` (node, head), checked against each other,
    the checkpoint and ``max_age_ms``; the checkpoint advances to it when proven.

    ``prove`` is None offline: a head newer than the checkpoint then advances it with a
    warning that its log extension could not be proven without a node.

    ``as_of`` is the moment a question is about (``--at``): a head older than the
    checkpoint is a rollback, since it may hide what came after it, unless the question
    is about a moment not after that head's time, which it answers in full."""
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
        elif remembered.height > best.height and as_of is not None and as_of <= best.time:
            notes.append(
                f"{best.describe()} is older than the remembered {remembered.describe()}; "
                "it answers only for a moment up to its own time, which is what --at asks"
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
