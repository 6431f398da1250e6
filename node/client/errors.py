"""The client's errors, one class per exit code (docs/cli.md, "Exit codes").

Every command raises these and only ``node.client.cli.main`` turns them into a message
and an exit status, so a code has exactly one meaning wherever it comes from.
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_NOT_IN_FORCE",
    "EXIT_OK",
    "ClientError",
    "NoAnswer",
    "Refused",
    "UsageError",
    "VerificationFailed",
]

EXIT_OK = 0
EXIT_NOT_IN_FORCE = 1  # verified, and the answer is "no" (or the rules refused an entry)
EXIT_INTERNAL = 70  # a bug in the client (sysexits' EX_SOFTWARE), never a verdict


class ClientError(Exception):
    """Base of the client's errors; ``exit_code`` is what the command exits with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ClientError):
    """Bad arguments, an unreadable genesis, key or token file, a malformed input file."""

    exit_code = 2


class VerificationFailed(ClientError):
    """What a node or a file said does not verify against genesis; ``check`` names the
    failed check (a bundle check, ``rollback``, ``fork``, ``max_age``, ``chain``, ...)."""

    exit_code = 3

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.reason = message


class NoAnswer(ClientError):
    """No node could be reached or gave a usable answer: never a verdict on a document."""

    exit_code = 4


class Refused(ClientError):
    """The network's rules refused a submitted entry (its DESIGN §9 code is ``code``)."""

    exit_code = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message
