"""Typed errors of the consensus core: one base, one subclass per kind of failure."""

from __future__ import annotations


class ConsensusError(Exception):
    """Base of every error raised by ``node.consensus``."""


class MessageFormatError(ConsensusError):
    """Bytes from a peer are not a well-formed signed proposal or vote."""


class SigningStateError(ConsensusError):
    """A persisted signing-state record is corrupt or of the wrong shape."""


class InputError(ConsensusError):
    """The host stepped the core with an input that makes no sense in its state."""
