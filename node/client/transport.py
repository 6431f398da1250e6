"""HTTP to nodes with the standard library: bounded time, bounded size, typed failures.

A node that cannot be reached, times out, answers 5xx or answers something unreadable is
``NodeUnavailable``: the client says so and asks another node; it is never taken as a
statement about a certificate. A 4xx with the API's ``{"code", "message"}`` body is
``NodeRefusal``, the node's own answer to the request.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_ANSWER_BYTES", "NodeClient", "NodeRefusal", "NodeUnavailable"]

# A proof bundle holds at most 20,000 entries of at most 16 KiB with their paths
# (ledger.bundle.MAX_BUNDLE_BYTES); nothing a node sends the client is larger.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
_MAX_ERROR_BYTES = 64 * 1024


class NodeUnavailable(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class NodeRefusal(Exception):
    def __init__(self, url: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{url}: {status} {code}: {message}")
        self.url = url
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NodeClient:
    url: str  # the node's base URL, e.g. http://127.0.0.1:7101
    timeout: float
    token: str | None = None

    def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> bytes:
        return self._call("GET", path, query, None)

    def get_json(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Any:
        return self._json(self.get(path, query))

    def post_json(self, path: str, body: object) -> Any:
        return self._json(self._call("POST", path, (), json.dumps(body).encode()))

    def _json(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise NodeUnavailable(self.url, f"answered with invalid JSON: {exc}") from exc

    def _call(
        self, method: str, path: str, query: Sequence[tuple[str, str]], body: bytes | None
    ) -> bytes:
        url = self.url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query))
        headers = {"Accept": "application/json, application/msgpack"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            if self.token is not None:
                headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return _read_bounded(answer, MAX_ANSWER_BYTES, self.url)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            raise NodeUnavailable(self.url, _why(exc)) from None

    def _http_error(self, exc: urllib.error.HTTPError) -> Exception:
        try:
            data = _read_bounded(exc, _MAX_ERROR_BYTES, self.url)
        except NodeUnavailable as unreadable:
            return unreadable
        finally:
            exc.close()
        if exc.code >= 500:
            return NodeUnavailable(self.url, f"HTTP {exc.code}")
        code, message = "http_error", f"HTTP {exc.code}"
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if isinstance(answer, Mapping):
            code = str(answer.get("code", code))[:64]
            message = str(answer.get("message", message))[:500]
        return NodeRefusal(self.url, exc.code, code, message)


def _read_bounded(answer: Any, limit: int, url: str) -> bytes:
    try:
        data: bytes = answer.read(limit + 1)
    except (TimeoutError, OSError) as exc:
        raise NodeUnavailable(url, f"answer cut off: {_why(exc)}") from None
    if len(data) > limit:
        raise NodeUnavailable(url, f"answer larger than {limit} bytes")
    return data


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)
