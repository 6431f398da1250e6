"""Reading the files an official hands the client: bounded, with one clear error each."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from node.client.errors import UsageError

__all__ = ["read_file", "read_limited", "save_atomically"]


def read_limited(
    path: Path, limit: int, what: str, *, missing_ok: bool = False, judge_size: bool = False
) -> bytes | None:
    """At most ``limit`` bytes of ``path``; a larger or unreadable file is a UsageError
    naming ``what`` (with ``missing_ok``, a missing file is None). With ``judge_size``
    a larger file comes back as its first ``limit + 1`` bytes, for a caller that refuses
    it itself (a bundle's verifier: an oversize bundle fails verification, exit 3)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise UsageError(f"{path}: cannot read the {what}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what}: {exc.strerror}") from exc
    if len(data) > limit and not judge_size:
        raise UsageError(f"{path}: the {what} is larger than {limit:,} bytes")
    return data


def read_file(path: Path, limit: int, what: str, *, judge_size: bool = False) -> bytes:
    data = read_limited(path, limit, what, judge_size=judge_size)
    assert data is not None
    return data


def save_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` in one step: a reader sees the old file or the whole
    new one, never half a bundle."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
