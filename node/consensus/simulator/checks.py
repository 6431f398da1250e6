"""The checks a run must pass, each under the name a failure reports.

Safety is checked as the honest nodes act (every signed message, every piece of
evidence, every decision); termination once the run ends:

- ``double-sign``: no honest node signs two different messages at one position, and no
  honest node is the subject of equivocation evidence;
- ``agreement``: no two honest nodes decide different blocks at one height;
- ``validity``: a decided block was judged valid by an honest node;
- ``integrity``: each decision's commit proves a quorum precommitted it;
- ``termination``: after healing, every honest node decides every height in time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ledger.block import Vote, verify_commit
from ledger.errors import CommitError
from ledger.genesis import ValidatorSet
from ledger.keys import Domain
from node.consensus.events import Decision
from node.consensus.messages import Message, SignedProposal
from node.consensus.simulator.world import CHAIN_ID

__all__ = [
    "AGREEMENT",
    "DOUBLE_SIGN",
    "INTEGRITY",
    "TERMINATION",
    "VALIDITY",
    "Checks",
    "Ledger",
]

DOUBLE_SIGN = "double-sign"
AGREEMENT = "agreement"
VALIDITY = "validity"
INTEGRITY = "integrity"
TERMINATION = "termination"


@dataclass
class Ledger:
    """What the checks know: the first decision per height, what honest nodes signed
    and judged valid, and the commit signatures already verified."""

    decided: dict[int, bytes] = field(default_factory=dict)
    signed: dict[tuple[str, int, int, str], bytes] = field(default_factory=dict)
    judged_valid: set[bytes] = field(default_factory=set)
    commit_heights: set[int] = field(default_factory=set)
    verified_sigs: set[tuple[str, Vote, bytes]] = field(default_factory=set)


class Checks:
    """Runs each check and reports a broken one to ``fail(check, detail)``."""

    def __init__(
        self,
        validators: ValidatorSet,
        honest: frozenset[str],
        fail: Callable[[str, str], None],
    ) -> None:
        self.validators = validators
        self.honest = honest
        self.fail = fail
        self.ledger = Ledger()

    def judged_valid(self, block: bytes) -> None:
        """An honest host judged ``block`` valid (what ``validity`` asks of a decision)."""
        self.ledger.judged_valid.add(block)

    def decided(self, member: str, decision: Decision) -> None:
        """An honest node decided ``decision``."""
        self.check_agreement(member, decision)
        self.check_validity(member, decision)
        self.check_integrity(member, decision)

    # ---- the checks ----------------------------------------------------------------

    def check_no_double_sign(self, member: str, message: Message) -> None:
        kind = "proposal" if isinstance(message, SignedProposal) else message.vote.type
        key = (member, message.height, message.round, kind)
        earlier = self.ledger.signed.setdefault(key, message.payload)
        if earlier != message.payload:
            self.fail(DOUBLE_SIGN, f"{member} signed two {kind}s at {key[1:3]}")

    def check_no_evidence_against_honest(self, reporter: str, accused: str) -> None:
        if accused in self.honest:
            self.fail(DOUBLE_SIGN, f"{reporter} holds equivocation evidence against {accused}")

    def check_agreement(self, member: str, decision: Decision) -> None:
        height, block = decision.height, decision.block
        first = self.ledger.decided.setdefault(height, block)
        if first != block:
            self.fail(
                AGREEMENT,
                f"{member} decided {block.hex()[:12]} at height {height}, "
                f"another honest node decided {first.hex()[:12]}",
            )

    def check_validity(self, member: str, decision: Decision) -> None:
        if decision.block not in self.ledger.judged_valid:
            self.fail(
                VALIDITY,
                f"{member} decided {decision.block.hex()[:12]} at {decision.height}, "
                "which no honest node judged valid",
            )

    def check_integrity(self, member: str, decision: Decision) -> None:
        """The commit proves a quorum precommitted this block at this height.

        ``ledger.block.verify_commit`` judges the first commit of each height; later ones
        (other nodes gather other quorums) get the same checks with each signature
        verified once per run, which keeps long runs affordable.
        """
        commit = decision.commit
        try:
            if decision.height not in self.ledger.commit_heights:
                verify_commit(
                    commit, self.validators, CHAIN_ID, height=decision.height, block=decision.block
                )
                self.ledger.commit_heights.add(decision.height)
                self.ledger.verified_sigs.update(
                    (m, commit.precommit(), s) for m, s in commit.votes
                )
            else:
                self._verify_commit_cached(decision)
        except CommitError as exc:
            self.fail(INTEGRITY, f"{member}'s commit at {decision.height}: {exc}")

    def check_termination(
        self, lagging: Mapping[str, int], heal_at_ms: int, deadline_ms: int, heights: int
    ) -> None:
        """``lagging``: each honest node that has not decided every height, with how many
        it has."""
        if lagging:
            self.fail(
                TERMINATION,
                f"after healing at {heal_at_ms}ms, by {deadline_ms}ms "
                f"honest nodes still lack heights: decided {dict(lagging)} of {heights}",
            )

    def _verify_commit_cached(self, decision: Decision) -> None:
        commit, vset = decision.commit, self.validators
        if (commit.height, commit.block) != (decision.height, decision.block):
            raise CommitError("commit is for another height or block")
        members = [m for m, _ in commit.votes]
        if len(set(members)) != len(members) or len(members) < vset.quorum:
            raise CommitError(f"commit needs {vset.quorum} distinct validators")
        precommit = commit.precommit()
        for m, sig in commit.votes:
            if (m, precommit, sig) in self.ledger.verified_sigs:
                continue
            key = vset.key_of(m)
            if key is None or not key.is_valid(Domain.VOTE, CHAIN_ID, precommit.encode(), sig):
                raise CommitError(f"precommit signature of {m} does not verify")
            self.ledger.verified_sigs.add((m, precommit, sig))
