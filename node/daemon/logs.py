"""Logs to stdout for a foreground daemon (systemd/journald style): text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

__all__ = [
    "ClientErrorFilter",
    "JsonFormatter",
    "RedactingFilter",
    "redact_secrets",
    "setup_logging",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Attributes every LogRecord has; anything else was passed through ``extra=`` and is
# worth keeping as a field of the JSON line.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ms), level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, bool, type(None))) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class ClientErrorFilter(logging.Filter):
    """One WARNING line, no traceback, for a request aiohttp refused as malformed.

    aiohttp answers an over-long request line or a broken header with a 400 but logs it
    at ERROR with its traceback: any client could fill the log with them, and they
    would hide the node's own errors.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            # Only the first line: aiohttp adds the offending header line as raw bytes,
            # and that line may be the client's Authorization header.
            reason = " ".join(str(exc.message).split("\n", 1)[0].split())[:200]
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "malformed HTTP request from %s: %d %s"
            record.args = (remote, exc.code, reason)
            record.exc_info = record.exc_text = None
        return True


class RedactingFilter(logging.Filter):
    """Replaces each secret (the API token) wherever it would reach a log line, in the
    message or in a traceback: whatever path a request takes through aiohttp or ours."""

    MASK = "<redacted>"

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            trace = logging.Formatter().formatException(record.exc_info)
            if self._hides(trace):
                text += "\n" + trace
                record.exc_info = record.exc_text = None
        if self._hides(text):
            for secret in self.secrets:
                text = text.replace(secret, self.MASK)
            record.msg, record.args = text, None
        return True

    def _hides(self, text: str) -> bool:
        return any(secret in text for secret in self.secrets)


def redact_secrets(*secrets: str) -> None:
    """Mask ``secrets`` in every line the root logger's handlers write from now on."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(secrets))


def _utc(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created * 1000) % 1000:03d}Z"


def setup_logging(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one writing ``fmt`` lines to ``stream``."""
    if fmt not in ("text", "json") or level not in _LEVELS:
        raise ValueError(f"log format {fmt!r} / level {level!r} not supported")
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    # aiohttp's access log would drown the node's own lines at info level.
    logging.getLogger("aiohttp.access").setLevel(max(_LEVELS[level], logging.WARNING))
    server = logging.getLogger("aiohttp.server")
    for old_filter in [f for f in server.filters if isinstance(f, ClientErrorFilter)]:
        server.removeFilter(old_filter)
    server.addFilter(ClientErrorFilter())
