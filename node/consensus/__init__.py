"""Tendermint BFT consensus as a sans-I/O state machine (DESIGN §10).

No asyncio, sockets, clocks, files or randomness in this package: the host feeds inputs
and applies outputs (see ``events`` for the order, ``driver`` for the shared step).
"""

from node.consensus.core import ConsensusCore
from node.consensus.driver import Host, drive
from node.consensus.errors import ConsensusError, InputError, MessageFormatError, SigningStateError
from node.consensus.events import (
    CommitLearned,
    Decision,
    Input,
    Output,
    ProposalReceived,
    ProposeRequest,
    StartHeight,
    Timeout,
    TimeoutConfig,
    TimeoutFired,
    TimeoutRequest,
    ValidityRequest,
    ValidityVerdict,
    ValueToPropose,
    VoteReceived,
    Wake,
)
from node.consensus.evidence import Equivocation, EvidenceError
from node.consensus.messages import (
    Message,
    SignedProposal,
    SignedVote,
    VerifyCache,
    decode_message,
    sign_proposal,
    sign_vote,
)
from node.consensus.signing_state import SigningState

__all__ = [
    "CommitLearned",
    "ConsensusCore",
    "ConsensusError",
    "Decision",
    "Equivocation",
    "EvidenceError",
    "Host",
    "Input",
    "InputError",
    "Message",
    "MessageFormatError",
    "Output",
    "ProposalReceived",
    "ProposeRequest",
    "SignedProposal",
    "SignedVote",
    "SigningState",
    "SigningStateError",
    "StartHeight",
    "Timeout",
    "TimeoutConfig",
    "TimeoutFired",
    "TimeoutRequest",
    "ValidityRequest",
    "ValidityVerdict",
    "ValueToPropose",
    "VerifyCache",
    "VoteReceived",
    "Wake",
    "decode_message",
    "drive",
    "sign_proposal",
    "sign_vote",
]
