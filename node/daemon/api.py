"""The node's HTTP API (JSON; docs/api.md and docs/openapi.json describe it).

Handlers only translate between HTTP and ``NodeService``: they parse and bound input,
call one service method, and render its answer. Every client mistake becomes a 4xx with
``{"code", "message"}``; nothing a client sends can produce a 500 or stop the node.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

from contracts import CODES, Rejection
from ledger.entry import SignedEntry, entry_from_json
from ledger.errors import EntryError
from node.daemon.mempool import MempoolFull
from node.daemon.queries import BadQuery

__all__ = [
    "ApiError",
    "ApiObserver",
    "NodeService",
    "build_app",
    "entries_of_body",
    "parse_json_body",
    "submit_of_body",
]

log = logging.getLogger("customs.api")

MAX_SUBJECTS_PER_PROOF = 32


class ApiError(Exception):
    """A client error: an HTTP status, a DESIGN §9 (or HTTP-level) code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class NodeService(Protocol):
    """What the API needs from a running node."""

    @property
    def max_entry_bytes(self) -> int: ...

    async def submit_entries(self, entries: Sequence[SignedEntry]) -> list[str]:
        """Check each entry at once and queue it; raise Rejection for the first bad one."""

    async def submit_body(self, kind: str, body: Mapping[str, Any]) -> SignedEntry:
        """Sign ``{kind, body}`` as this node's member, queue it, return what it signed."""

    def entry_status(self, entry_id: bytes) -> dict[str, Any] | None: ...

    def certificate(self, cert_id: str) -> dict[str, Any] | None: ...

    def shipment(self, ucr: str) -> dict[str, Any] | None: ...

    def proof_bundle(self, subjects: Sequence[str]) -> bytes: ...

    def block(self, height: int) -> dict[str, Any] | None: ...

    def signed_header(self, height: int | None) -> bytes | None:
        """canonical msgpack ``{"commit", "header"}`` at ``height`` (None: the head)."""

    def consistency(self, first: int, second: int) -> bytes:
        """canonical msgpack ``{"first", "proof", "second"}``: an RFC 9162 consistency
        proof between two log sizes; ApiError unless first <= second <= the log size."""

    def status(self) -> dict[str, Any]: ...

    def metrics(self) -> tuple[bytes, str]:
        """Prometheus exposition bytes and their content type."""

    def genesis_bytes(self) -> bytes:
        """The genesis file exactly as this node read it."""

    def readiness(self) -> str | None:
        """None when synced and in consensus, else the reason it is not."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    service: NodeService,
    *,
    api_token: str,
    max_request_bytes: int,
    max_entries_per_request: int,
    max_in_flight: int | None = None,
    max_writes: int | None = None,
    body_timeout_s: float = 30.0,
    observer: ApiObserver | None = None,
) -> web.Application:
    """The API. ``max_entries_per_request`` bounds one POST /v1/entries (node.toml's;
    past it HTTP 400 ``too_large``). ``max_in_flight`` bounds the reads served at once and
    ``max_writes`` the writes (node.toml's ``max_api_connections`` and ``max_api_writes``):
    past either, a request gets 503 ``busy`` at once. A body not received within
    ``body_timeout_s`` is 408. ``observer`` counts every refusal."""
    middlewares = [_Errors(observer).middleware]
    if max_in_flight is not None:
        writes = max_in_flight if max_writes is None else max_writes
        middlewares.append(_InFlightLimit(max_in_flight, writes).middleware)
    app = web.Application(client_max_size=max_request_bytes, middlewares=middlewares)
    routes = _Routes(service, api_token, max_request_bytes, max_entries_per_request, body_timeout_s)
    app.add_routes(
        [
            web.post("/v1/entries", routes.post_entries),
            web.post("/v1/submit", routes.post_submit),
            web.get("/v1/entries/{entry_id}", routes.get_entry),
            web.get("/v1/certificates/{cert_id}", routes.get_certificate),
            web.get("/v1/shipments/{ucr}", routes.get_shipment),
            web.get("/v1/proofs", routes.get_proofs),
            web.get("/v1/blocks/{height}", routes.get_block),
            web.get("/v1/headers/head", routes.get_head),
            web.get("/v1/headers/{height}", routes.get_header),
            web.get("/v1/consistency", routes.get_consistency),
            web.get("/v1/status", routes.get_status),
            web.get("/metrics", routes.get_metrics),
            web.get("/v1/genesis", routes.get_genesis),
            web.get("/healthz", routes.get_health),
            web.get("/readyz", routes.get_ready),
        ]
    )
    return app


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


class ApiObserver(Protocol):
    """Who counts what the API refuses (the node's metrics)."""

    def refused_request(self, route: str, status: int, code: str) -> None: ...

    def refused_entry(self, code: str) -> None: ...


# Routes whose refusals with a rule code (DESIGN §9) are refusals of an entry.
_ENTRY_ROUTES = frozenset({"/v1/entries", "/v1/submit"})


class _Errors:
    """Turns every refusal into ``{"code", "message"}`` with its status, and counts it."""

    def __init__(self, observer: ApiObserver | None) -> None:
        self.observer = observer

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            status, code, message = exc.status, exc.code, exc.message
        except Rejection as exc:
            status, code, message = 400, exc.code, exc.message
        except (BadQuery, EntryError) as exc:
            status, code = 400, exc.code
            message = exc.message if isinstance(exc, BadQuery) else exc.reason
        except MempoolFull as full:
            # 429, not 400: the entries are fine and the client should retry later.
            status, code = 429, "mempool_full"
            message = f"mempool is full ({full.limit}): {full.reason}"
        except web.HTTPRequestEntityTooLarge:
            status, code, message = 413, "too_large", "request body too large"
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
            status, message = exc.status, exc.reason
        self._count(request, status, code)
        return error_response(status, code, message)

    def _count(self, request: web.Request, status: int, code: str) -> None:
        if self.observer is None:
            return
        resource = request.match_info.route.resource
        # The route's pattern, not the path: a client cannot mint label values.
        route = resource.canonical if resource is not None else "unmatched"
        self.observer.refused_request(route, status, code)
        if route in _ENTRY_ROUTES and code in CODES:
            self.observer.refused_entry(code)


class _InFlightLimit:
    """Counts requests being served, reads and writes apart, so that slow uploads can
    exhaust only the write budget and every read keeps being answered. The peer
    WebSocket and the event streams have their own limits and are exempt."""

    EXEMPT = frozenset({"/v1/peer", "/v1/events"})

    def __init__(self, reads: int, writes: int) -> None:
        self.limits = {"read": reads, "write": writes}
        self.in_flight = {"read": 0, "write": 0}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in self.EXEMPT:
            return await handler(request)
        kind = "write" if request.method == "POST" else "read"
        limit = self.limits[kind]
        if self.in_flight[kind] >= limit:
            raise ApiError(503, "busy", f"{limit} API {kind}s in progress; retry shortly")
        self.in_flight[kind] += 1
        try:
            return await handler(request)
        finally:
            self.in_flight[kind] -= 1


class _Routes:
    def __init__(
        self,
        service: NodeService,
        api_token: str,
        max_request_bytes: int,
        max_entries_per_request: int,
        body_timeout_s: float,
    ) -> None:
        self.body_timeout_s = body_timeout_s
        self.service = service
        self.token = api_token.encode()
        self.max_request_bytes = max_request_bytes
        self.max_entries_per_request = max_entries_per_request

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        # aiohttp decodes header bytes with surrogateescape; encoding them back the same
        # way compares the bytes the client sent, whatever they are, in constant time.
        offered = token.encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered, self.token):
            raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' is needed")

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > self.max_request_bytes:
            raise ApiError(413, "too_large", f"request body over {self.max_request_bytes} bytes")
        try:
            async with asyncio.timeout(self.body_timeout_s):
                raw = await request.read()
        except TimeoutError as exc:
            # A slow upload would hold a write slot as long as it liked.
            raise ApiError(
                408, "timeout", f"the request body was not received in {self.body_timeout_s:g} s"
            ) from exc
        except ConnectionResetError as exc:
            # The client went away mid-body: its request, not our error (nor an ERROR line).
            raise ApiError(400, "malformed", "the request body was cut off") from exc
        return parse_json_body(raw)

    async def post_entries(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._json_body(request)
        entries = entries_of_body(body, self.max_entries_per_request, self.service.max_entry_bytes)
        ids = await self.service.submit_entries(entries)
        if isinstance(body, list):
            return web.json_response({"ids": ids}, status=202)
        return web.json_response({"id": ids[0]}, status=202)

    async def post_submit(self, request: web.Request) -> web.Response:
        self._authorize(request)
        kind, fields = submit_of_body(await self._json_body(request))
        signed = await self.service.submit_body(kind, fields)
        # The signed entry goes back too, so a client can post these exact bytes again
        # should this node forget it before gossiping it: one id, never two entries.
        return web.json_response({"id": signed.id_hex, "entry": signed.to_json()}, status=202)

    async def get_entry(self, request: web.Request) -> web.Response:
        text = request.match_info["entry_id"]
        if len(text) != 64 or text != text.lower():
            raise ApiError(400, "malformed", "entry id must be 64 lowercase hex characters")
        try:
            entry_id = bytes.fromhex(text)
        except ValueError as exc:
            raise ApiError(400, "malformed", "entry id is not hex") from exc
        status = self.service.entry_status(entry_id)
        if status is None:
            raise ApiError(404, "not_found", f"entry {text} is unknown to this node")
        return web.json_response(status)

    async def get_certificate(self, request: web.Request) -> web.Response:
        cert_id = _bounded(request.match_info["cert_id"], "certificate id")
        record = self.service.certificate(cert_id)
        if record is None:
            raise ApiError(404, "not_found", f"certificate {cert_id} does not exist")
        return web.json_response(record)

    async def get_shipment(self, request: web.Request) -> web.Response:
        ucr = _bounded(request.match_info["ucr"], "UCR")
        record = self.service.shipment(ucr)
        if record is None:
            raise ApiError(404, "not_found", f"shipment {ucr} does not exist")
        return web.json_response(record)

    async def get_proofs(self, request: web.Request) -> web.Response:
        subjects = request.query.getall("subject", [])
        if not subjects or len(subjects) > MAX_SUBJECTS_PER_PROOF:
            raise ApiError(
                400, "malformed", f"give 1..{MAX_SUBJECTS_PER_PROOF} 'subject' parameters"
            )
        for subject in subjects:
            kind, _, name = subject.partition("/")
            if kind not in ("cert", "shipment") or not name or len(subject) > 128:
                raise ApiError(400, "malformed", f"subject {subject!r} is not cert/… or shipment/…")
        data = self.service.proof_bundle(sorted(set(subjects)))
        return web.Response(body=data, content_type="application/msgpack")

    async def get_block(self, request: web.Request) -> web.Response:
        height = _height(request.match_info["height"])
        block = self.service.block(height)
        if block is None:
            raise ApiError(404, "not_found", f"no block at height {height}")
        return web.json_response(block)

    async def get_head(self, request: web.Request) -> web.Response:
        data = self.service.signed_header(None)
        if data is None:
            raise ApiError(404, "not_found", "the chain is empty")
        return web.Response(body=data, content_type="application/msgpack")

    async def get_header(self, request: web.Request) -> web.Response:
        height = _height(request.match_info["height"])
        data = self.service.signed_header(height)
        if data is None:
            raise ApiError(404, "not_found", f"no block at height {height}")
        return web.Response(body=data, content_type="application/msgpack")

    async def get_consistency(self, request: web.Request) -> web.Response:
        first = _count(request.query.get("first", ""), "first")
        second = _count(request.query.get("second", ""), "second")
        return web.Response(
            body=self.service.consistency(first, second), content_type="application/msgpack"
        )

    async def get_status(self, request: web.Request) -> web.Response:
        return web.json_response(self.service.status())

    async def get_genesis(self, request: web.Request) -> web.Response:
        return web.Response(body=self.service.genesis_bytes(), content_type="application/json")

    async def get_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def get_ready(self, request: web.Request) -> web.Response:
        reason = self.service.readiness()
        if reason is not None:
            raise ApiError(503, "not_ready", reason)
        return web.json_response({"status": "ready"})

    async def get_metrics(self, request: web.Request) -> web.Response:
        data, content_type = self.service.metrics()
        response = web.Response(body=data)
        response.headers["Content-Type"] = content_type
        return response


_MAX_DIGITS = 18


def _count(text: str, what: str) -> int:
    """A non-negative integer in ASCII digits (``str.isdigit`` also takes '²' and '٣')."""
    if not 1 <= len(text) <= _MAX_DIGITS or not all("0" <= c <= "9" for c in text):
        raise ApiError(400, "malformed", f"{what} must be a non-negative integer")
    return int(text)


def _height(text: str) -> int:
    height = _count(text, "height")
    if height < 1:
        raise ApiError(400, "malformed", "height must be a positive integer")
    return height


def _bounded(text: str, what: str) -> str:
    if not 1 <= len(text) <= 128 or not text.isprintable():
        raise ApiError(400, "malformed", f"{what} must be 1..128 printable characters")
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# -- request bodies: pure functions of the bytes, so scripts/fuzz.py can drive them -------


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON; raise ApiError(400, malformed) for anything else."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed", f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        # The JSON parser recurses per nesting level; no entry comes near this depth.
        raise ApiError(400, "malformed", "body is not valid JSON: nested too deeply") from exc


def entries_of_body(body: Any, max_entries: int, max_entry_bytes: int) -> list[SignedEntry]:
    """``POST /v1/entries``: one JSON entry or a list of them, as wire entries."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ApiError(400, "malformed", "send at least one entry")
    # Counted before any entry is decoded, so an oversize batch costs no signature check.
    if len(items) > max_entries:
        raise ApiError(400, "too_large", f"at most {max_entries} entries per request")
    entries = []
    for i, item in enumerate(items):
        try:
            entries.append(entry_from_json(item, max_entry_bytes))
        except EntryError as exc:
            prefix = f"entry {i}: " if isinstance(body, list) else ""
            raise ApiError(400, exc.code, prefix + exc.reason) from exc
    return entries


def submit_of_body(body: Any) -> tuple[str, dict[str, Any]]:
    """``POST /v1/submit``: the ``kind`` and ``body`` the node is to sign."""
    if not isinstance(body, dict) or set(body) != {"kind", "body"}:
        raise ApiError(400, "malformed", "expected an object with exactly 'kind' and 'body'")
    if not isinstance(body["kind"], str) or not isinstance(body["body"], dict):
        raise ApiError(400, "malformed", "'kind' must be a string and 'body' an object")
    return body["kind"], body["body"]
