"""Logs to stdout for a foreground daemon (systemd/journald style): text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ClientErrorFilter", "JsonFormatter", "setup_logging"]

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
            reason = " ".join(str(exc.message).split())[:200]
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "malformed HTTP request from %s: %d %s"
            record.args = (remote, exc.code, reason)
            record.exc_info = record.exc_text = None
        return True


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
