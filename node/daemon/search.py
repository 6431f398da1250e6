"""``GET /v1/certificates`` and ``GET /v1/shipments``: list records by issuer, holder,
status, port and date, a page at a time, from the indexes of ``node.daemon.indexes``
(docs/api.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

from contracts.state import Record
from ledger.store import Store, StoreView
from node.daemon.api import ApiError
from node.daemon.indexes import CERTS, SHIPMENTS, IndexedSet, facet_prefix

__all__ = ["Search"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Records read to fill one page when a second filter has to be checked on each one: a
# page may come back short (with a cursor) rather than scan without end.
MAX_SCANNED = 5000

_CERT_STATUSES = frozenset({"active", "suspended", "revoked"})
_SHIPMENT_STATUSES = frozenset(
    {"declared", "loaded", "departed", "arrived", "held", "cleared", "seized"}
)
# Query parameter -> record facet, per route.
_CERT_PARAMS = {"issuer": "issuer", "holder": "holder", "status": "status", "type": "type"}
_SHIPMENT_PARAMS = {
    "declared_by": "declared_by",
    "status": "status",
    "origin_port": "origin_port",
    "destination_port": "destination_port",
    "port_of_arrival": "destination_port",
    "consignee_country": "consignee_country",
}


class Search:
    """The two list routes, answered from one store snapshot each."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/v1/certificates", self.certificates)
        app.router.add_get("/v1/shipments", self.shipments)

    async def certificates(self, request: web.Request) -> web.Response:
        filters = _filters(request.query, _CERT_PARAMS)
        if "status" in filters and filters["status"] not in _CERT_STATUSES:
            raise ApiError(400, "malformed", f"status must be one of {sorted(_CERT_STATUSES)}")
        return web.json_response(self.page(CERTS, filters, request.query))

    async def shipments(self, request: web.Request) -> web.Response:
        filters = _filters(request.query, _SHIPMENT_PARAMS)
        if "status" in filters and filters["status"] not in _SHIPMENT_STATUSES:
            raise ApiError(400, "malformed", f"status must be one of {sorted(_SHIPMENT_STATUSES)}")
        return web.json_response(self.page(SHIPMENTS, filters, request.query))

    def page(self, kind: IndexedSet, filters: Mapping[str, str], query: Any) -> dict[str, Any]:
        """One page: ``items`` in time order (then id), ``next_cursor`` to go on with, or
        None when there is no more, and the ``height`` the page was read at."""
        limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        low = _int_param(query, "from", 0, 0, 2**63 - 1)
        high = _int_param(query, "to", 2**63 - 1, 0, 2**63 - 1)
        # The most selective facet is scanned; the others are checked on each record.
        order = ("holder", "destination_port", "origin_port", "issuer", "declared_by")
        scanned = next((f for f in order if f in filters), next(iter(filters), None))
        prefix = (
            facet_prefix(kind, "all", "")
            if scanned is None
            else facet_prefix(kind, scanned, filters[scanned])
        )
        start = prefix + low.to_bytes(8, "big")
        cursor = query.get("cursor")
        if cursor:
            start = max(start, prefix + _cursor(cursor) + b"\x00")
        stop = prefix + high.to_bytes(8, "big")
        items: list[dict[str, Any]] = []
        last = b""
        next_cursor: str | None = None
        with self.store.snapshot() as view:
            for n, key in enumerate(_scan(view, prefix, start, stop)):
                tail = key[len(prefix) :]
                if len(items) == limit or n == MAX_SCANNED:
                    next_cursor = last.hex()
                    break
                last = tail
                item = self._record(view, kind, tail[8:])
                if all(item.get(f) == v for f, v in filters.items()):
                    items.append(item)
            height = view.height
        return {"items": items, "next_cursor": next_cursor, "height": height}

    @staticmethod
    def _record(view: StoreView, kind: IndexedSet, item_id: bytes) -> dict[str, Any]:
        raw = view.get_raw(kind.state_prefix + item_id)
        assert raw is not None, f"index names {item_id!r}, which has no record"
        return {kind.id_name: item_id.decode(), **Record.decode(raw).to_json()}


def _scan(view: StoreView, prefix: bytes, start: bytes, stop: bytes) -> Iterator[bytes]:
    for key, _ in view.scan_raw(prefix, start):
        if key >= stop:
            return
        yield key


def _filters(query: Any, params: Mapping[str, str]) -> dict[str, str]:
    known = {*params, "from", "to", "cursor", "limit"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ApiError(
            400, "malformed", f"unknown parameter {unknown[0]!r}; known: {sorted(known)}"
        )
    out: dict[str, str] = {}
    for name, facet in params.items():
        values = query.getall(name, [])
        if len(values) > 1:
            raise ApiError(400, "malformed", f"give {name} once")
        if values:
            value = values[0]
            if not 1 <= len(value) <= 128 or not value.isprintable():
                raise ApiError(400, "malformed", f"{name} must be 1..128 printable characters")
            if out.get(facet, value) != value:
                raise ApiError(400, "malformed", f"{name} contradicts another parameter")
            out[facet] = value
    return out


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not 1 <= len(text) <= 19 or not all("0" <= c <= "9" for c in text):
        raise ApiError(400, "malformed", f"{name} must be a non-negative integer")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(400, "malformed", f"{name} must be in {low}..{high}")
    return value


def _cursor(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if not 9 <= len(raw) <= 8 + 255:
        raise ApiError(400, "malformed", "cursor is not one this node gave out")
    return raw
