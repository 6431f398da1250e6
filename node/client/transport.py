"""HTTP to nodes with the standard library: bounded time, bounded size, typed failures.

A node that cannot be reached, times out, answers 5xx or answers something unreadable is
``NodeUnavailable``: the client says so and asks another node; it is never taken as a
statement about a certificate. A 4xx with the API's ``{"code", "message"}`` body is
``NodeRefusal``, the node's own answer to the request.

An ``https://`` node is verified one of two ways (``Trust``): a member's endpoint in
genesis by pinning, the certificate's key checked against genesis's key for that member
before the request goes out (ledger.x509_keys); any other URL, an API behind a public
proxy, by the system's trust store and the URL's host name, and only when the official
asked for that (``--trust system``). A certificate that fails either check is
``NodeUnavailable`` with the reason: the client asks the next node, and never reads an
answer from it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.genesis import Genesis
from ledger.keys import VerifyKey
from ledger.x509_keys import CertificateKeyMismatch, pin

__all__ = [
    "MAX_ANSWER_BYTES",
    "NodeClient",
    "NodeRefusal",
    "NodeUnavailable",
    "Pin",
    "node_client",
]


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
class Pin:
    """The member whose genesis key an https node's certificate must carry."""

    member_id: str
    key: VerifyKey


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTPS whose certificate must carry ``pin``'s key, checked before any request."""

    def __init__(self, host: str, *, pin_: Pin, **kwargs: Any) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        # No chain or name check: the certificate is self-signed, its key is what counts.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(host, context=context, **kwargs)
        self._pin = pin_

    def connect(self) -> None:
        super().connect()
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            pin(self.sock.getpeercert(binary_form=True), self._pin.member_id, self._pin.key)
        except CertificateKeyMismatch:
            self.sock.close()
            raise


class _PinnedHandler(urllib.request.HTTPSHandler):
    def __init__(self, pin_: Pin) -> None:
        super().__init__()
        self._pin = pin_

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        def connection(host: str, **kwargs: Any) -> _PinnedConnection:
            kwargs.pop("context", None)
            return _PinnedConnection(host, pin_=self._pin, **kwargs)

        return self.do_open(connection, req)


def node_client(
    url: str,
    timeout: float,
    genesis: Genesis | None,
    trust: str = "genesis",
    token: str | None = None,
) -> NodeClient:
    """A client for ``url``, pinned when it is a member's genesis endpoint; ValueError
    (with what to do) for an https URL that neither genesis nor ``trust`` can verify."""
    if not url.startswith("https://"):
        return NodeClient(url, timeout, token)
    base = url.rstrip("/")
    if genesis is not None:
        for member in genesis.members:
            if base in (e.rstrip("/") for e in member.endpoints):
                return NodeClient(url, timeout, token, pin=Pin(member.id, member.public_key))
    if trust == "system":
        return NodeClient(url, timeout, token, system_trust=True)
    if genesis is None:
        raise ValueError(
            f"{url}: an https node is verified by pinning its certificate to genesis; "
            "give --genesis FILE, or --trust system for a node behind a public proxy"
        )
    raise ValueError(
        f"{url} is no member's endpoint in genesis, so its certificate cannot be pinned; "
        "use a member's endpoint, or --trust system to verify it by the system trust "
        "store (a proxy with a public certificate)"
    )


@dataclass(frozen=True)
class NodeClient:
    url: str  # the node's base URL, e.g. http://127.0.0.1:7101
    timeout: float
    token: str | None = None
    pin: Pin | None = None  # https: the certificate must carry this member's key
    system_trust: bool = False  # https without a pin: the system trust store verifies

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
            with self._open(request) as answer:
                return _read_bounded(answer, MAX_ANSWER_BYTES, self.url)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except (TimeoutError, urllib.error.URLError, OSError, CertificateKeyMismatch) as exc:
            raise NodeUnavailable(self.url, _why(exc)) from None

    def _open(self, request: urllib.request.Request) -> Any:
        if not request.full_url.startswith("https://"):
            return urllib.request.urlopen(request, timeout=self.timeout)
        if self.pin is not None:
            opener = urllib.request.build_opener(_PinnedHandler(self.pin))
            return opener.open(request, timeout=self.timeout)
        if not self.system_trust:
            # node_client never builds this; a NodeClient made by hand must say how.
            raise NodeUnavailable(self.url, "https without a pin or --trust system")
        # A public proxy's certificate: the system's CAs and the URL's host name.
        context = ssl.create_default_context()
        return urllib.request.urlopen(request, timeout=self.timeout, context=context)

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
    if isinstance(exc, CertificateKeyMismatch):
        return f"refused its TLS certificate: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"refused its TLS certificate: {exc.verify_message or exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)
