"""``GET /v1/events``: committed entries as a Server-Sent Events stream (docs/api.md).

Why SSE and not a WebSocket: the stream goes one way, from node to national system; SSE
is plain HTTP (proxies, TLS terminators and ``curl`` handle it), its ``id:`` field and
the ``Last-Event-ID`` header are a standard resume protocol, and an HTTP client library
reads it without a framing layer. A WebSocket would add a handshake and frames for a
channel whose other direction carries nothing.

Every event's id is its entry's log index, which is dense and in commit order, so
"resume after id N" is exact: nothing is skipped and nothing sent twice, whichever node
of the network the client reconnects to.

A stream has two modes. Catching up, it reads pages of the log from a store snapshot
and writes them at the pace the client reads; nothing is buffered for it. When a page
reaches the log's end it turns live in the same synchronous step that saw the end (no
``await`` in between, and the chain commits on this same thread), so a block committed
after that step is pushed to it and one committed before was in the page: that is the
switch-over without a gap or a duplicate. Live, the hub queues each committed block's
matching entries for it (``EventHub.on_commit``, a ``Chain`` subscriber: it never
blocks and never awaits). A stream whose queue passes ``event_buffer`` entries is
dropped: its queue is freed, it is sent a ``close`` event with code ``too_slow`` and the
id to resume after, and consensus never waits for it. Should a block ever reach the hub
with a gap before it, the stream goes back to reading the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from contracts import Rejection, subjects_of
from contracts.identifiers import is_country, is_locode
from ledger.block import Header
from ledger.entry import SignedEntry, decode_wire
from ledger.errors import EntryError
from ledger.store import Store, StoreView
from node.daemon.api import ApiError
from node.daemon.chain import Committed

__all__ = ["EventFilter", "EventHub", "entry_facets"]

log = logging.getLogger("customs.events")

ROUTE = "/v1/events"
HISTORY_PAGE = 256  # entries read from one snapshot between writes
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
GONE_CHECK_S = 1.0  # how often an idle stream looks whether its client hung up
CLOSE_WRITE_S = 2.0  # time a dropped stream's close event gets to reach the socket
ABORT_AFTER_S = 30.0  # then the time its client has to read what is buffered
RETRY_MS = 1000  # the reconnect delay an EventSource client is told to use
# The kernel's send buffer for a stream: small, so that a client that stops reading is
# noticed after a few hundred entries rather than after megabytes of loopback buffer.
SEND_BUFFER_BYTES = 64 * 1024
MAX_FILTER_VALUES = 32
MAX_INDEX = 2**62

# Entry body fields that name a country or a UN/LOCODE (contracts/certificates.py,
# contracts/shipments.py). A LOCODE's first two letters are its country, so a port also
# counts for its country.
COUNTRY_FIELDS = ("issued_in", "origin", "destination", "consignee_country")
LOCODE_FIELDS = ("origin_port", "destination_port", "location")


def entry_facets(entry: SignedEntry) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The countries, UN/LOCODEs and subjects an entry names, for filtering."""
    body = entry.entry.body
    places: list[Mapping[str, Any]] = [body]
    changes = body.get("changes")
    if isinstance(changes, Mapping):
        places.append(changes)
    countries: set[str] = {
        str(v) for p in places for k in COUNTRY_FIELDS if is_country(v := p.get(k))
    }
    locodes = {str(v) for k in LOCODE_FIELDS if is_locode(v := body.get(k))}
    countries.update(code[:2] for code in locodes)
    try:
        subjects = frozenset(subjects_of(entry.entry))
    except Rejection:  # a committed entry has its kind's shape; nothing to name otherwise
        subjects = frozenset()
    return frozenset(countries), frozenset(locodes), subjects


@dataclass(frozen=True)
class EventFilter:
    """Which entries a stream wants: each facet given must match (AND); several values
    of one facet are alternatives (OR). An empty facet matches everything."""

    kinds: frozenset[str] = frozenset()
    authors: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    locodes: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: Any) -> EventFilter:
        """From a request's query (a MultiDict); ApiError(400) for a value that cannot
        match anything an entry names."""

        def values(name: str) -> frozenset[str]:
            got = [v for raw in query.getall(name, []) for v in raw.split(",") if v]
            if len(got) > MAX_FILTER_VALUES:
                raise ApiError(400, "malformed", f"at most {MAX_FILTER_VALUES} values of {name}")
            for value in got:
                if len(value) > 128 or not value.isprintable():
                    raise ApiError(400, "malformed", f"{name} values are 1..128 printable chars")
            return frozenset(got)

        found = cls(
            values("kind"),
            values("author"),
            values("country"),
            values("locode"),
            values("subject"),
        )
        for country in found.countries:
            if not is_country(country):
                raise ApiError(400, "malformed", f"country {country!r} is not ISO 3166-1 alpha-2")
        for locode in found.locodes:
            if not is_locode(locode):
                raise ApiError(400, "malformed", f"locode {locode!r} is not a UN/LOCODE")
        return found

    @property
    def everything(self) -> bool:
        return not (self.kinds or self.authors or self.countries or self.locodes or self.subjects)

    def matches(self, entry: SignedEntry) -> bool:
        e = entry.entry
        if self.kinds and e.kind not in self.kinds:
            return False
        if self.authors and e.author not in self.authors:
            return False
        if not (self.countries or self.locodes or self.subjects):
            return True
        countries, locodes, subjects = entry_facets(entry)
        return (
            (not self.countries or bool(self.countries & countries))
            and (not self.locodes or bool(self.locodes & locodes))
            and (not self.subjects or bool(self.subjects & subjects))
        )


def event_frame(
    entry: SignedEntry, *, log_index: int, height: int, position: int, block_time: int
) -> bytes:
    """One SSE event: ``id`` the log index, ``data`` one line of JSON."""
    data = {
        "log_index": log_index,
        "height": height,
        "position": position,
        "block_time": block_time,
        "id": entry.id_hex,
        **entry.to_json(),
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return f"id: {log_index}\nevent: entry\ndata: {text}\n\n".encode()


def close_frame(code: str, message: str, last_event_id: int | None) -> bytes:
    data = {"code": code, "message": message, "last_event_id": last_event_id}
    return f"event: close\ndata: {json.dumps(data, sort_keys=True)}\n\n".encode()


@dataclass(eq=False)
class _Stream:
    want: EventFilter
    next_index: int  # the first log index not yet looked at for this stream
    live: bool = False
    queue: list[tuple[int, bytes]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: tuple[str, str] | None = None  # (code, message) once it must end
    last_sent: int | None = None  # the id of the last event handed to the socket


class EventHub:
    """The node's event streams: fed by ``on_commit`` (a ``Chain`` subscriber), served
    by ``handle`` at ``GET /v1/events``."""

    def __init__(
        self,
        store: Store,
        *,
        max_entry_bytes: int,
        max_streams: int,
        buffer: int,
        registry: CollectorRegistry | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.store = store
        self.max_entry_bytes = max_entry_bytes
        self.max_streams = max_streams
        self.buffer = buffer
        self.heartbeat_s = heartbeat_s
        self._streams: set[_Stream] = set()
        self._open = Gauge(
            "customs_event_streams", "Open GET /v1/events streams", registry=registry
        )
        self._closed = Counter(
            "customs_event_streams_closed",
            "Event streams ended by the node, by reason (too_slow, node_stopping)",
            ["reason"],
            registry=registry,
        )

    def attach(self, app: web.Application) -> None:
        app.router.add_get(ROUTE, self.handle)

    # ---- fed by the chain ----------------------------------------------------------

    def on_commit(self, done: Committed) -> None:
        """Queue a written block's entries for every live stream that wants them.

        Runs inside ``Chain.commit``: appends to lists and sets events, nothing more.
        """
        try:
            self._queue_block(done)
        except Exception:
            # A bug here must cost the streams, not the commit that called us.
            log.exception("event streams: cannot queue block %d", done.block.header.height)
            for stream in list(self._streams):
                self._drop(stream, "internal_error", "the node could not serve this stream")

    def _queue_block(self, done: Committed) -> None:
        live = [s for s in self._streams if s.live and s.closing is None]
        if not live:
            return
        header = done.block.header
        first = header.log_size - header.entries
        frames: dict[int, bytes] = {}
        for stream in live:
            if stream.next_index >= header.log_size:
                continue  # already seen (a stream that resumed ahead of this node)
            if stream.next_index < first:
                # Entries between the stream's position and this block were never given
                # to it: read them from the store rather than skip them.
                stream.live = False
                stream.wake.set()
                continue
            for position, entry in enumerate(done.block.entries):
                index = first + position
                if index < stream.next_index or not stream.want.matches(entry):
                    continue
                frame = frames.get(index)
                if frame is None:
                    frame = frames[index] = event_frame(
                        entry,
                        log_index=index,
                        height=header.height,
                        position=position,
                        block_time=header.time,
                    )
                stream.queue.append((index, frame))
            stream.next_index = header.log_size
            if len(stream.queue) > self.buffer:
                self._drop(
                    stream,
                    "too_slow",
                    f"more than {self.buffer} entries waited for this stream to read them; "
                    "reconnect with Last-Event-ID to resume",
                )
            stream.wake.set()

    def _drop(self, stream: _Stream, code: str, message: str) -> None:
        stream.queue.clear()  # the memory goes now, not when the client gets round to it
        stream.closing = (code, message)
        stream.wake.set()

    async def close(self) -> None:
        """End every stream with a ``close`` event (the node is stopping)."""
        for stream in list(self._streams):
            self._drop(stream, "node_stopping", "the node is shutting down; reconnect later")
        for _ in range(50):
            if not self._streams:
                return
            await asyncio.sleep(0.02)

    # ---- served to clients --------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        want = EventFilter.from_query(request.query)
        start = self._start_index(request)
        if len(self._streams) >= self.max_streams:
            raise ApiError(503, "busy", f"{self.max_streams} event streams are open; retry shortly")
        stream = _Stream(want, start)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events on as they come
            }
        )
        self._streams.add(stream)
        self._open.set(len(self._streams))
        try:
            await response.prepare(request)
            _small_send_buffer(request)
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            await self._serve(stream, response, request.transport)
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away: nothing to tell it
        finally:
            self._streams.discard(stream)
            self._open.set(len(self._streams))
            if stream.closing is not None:
                _hang_up(request)
        return response

    def _start_index(self, request: web.Request) -> int:
        # Last-Event-ID is what an EventSource sends on reconnecting; it wins over the
        # URL's ``from``, which it would otherwise repeat.
        last = request.headers.get("Last-Event-ID")
        if last is not None and last.strip():
            return _index(last.strip(), "Last-Event-ID") + 1
        given = request.query.get("from")
        if given is not None:
            return _index(given, "from")
        return self.store.log_size()  # no position given: from now on

    async def _serve(
        self, stream: _Stream, response: web.StreamResponse, transport: asyncio.BaseTransport | None
    ) -> None:
        idle_since = asyncio.get_running_loop().time()
        while True:
            if stream.closing is not None:
                await self._send_close(stream, response)
                return
            if not stream.live:
                frames = self._history_page(stream)
                if frames:
                    await self._write(stream, response, frames)
                else:
                    # A filter that matched nothing in this page: let consensus and the
                    # API run before the next page.
                    await asyncio.sleep(0)
                continue
            if stream.queue:
                frames, stream.queue = stream.queue, []
                await self._write(stream, response, frames)
                continue
            stream.wake.clear()
            try:
                async with asyncio.timeout(min(self.heartbeat_s, GONE_CHECK_S)):
                    await stream.wake.wait()
                idle_since = asyncio.get_running_loop().time()
            except TimeoutError:
                if transport is None or transport.is_closing():
                    return  # the client hung up: its slot is free at once, not at a write
                if asyncio.get_running_loop().time() - idle_since >= self.heartbeat_s:
                    # Through _write, so that a stream dropped meanwhile is not held up
                    # by a client that reads nothing, not even this.
                    await self._write(stream, response, [], extra=b": keepalive\n\n")
                    idle_since = asyncio.get_running_loop().time()

    def _history_page(self, stream: _Stream) -> list[tuple[int, bytes]]:
        """The next page of the log for ``stream``; turns it live at the log's end.

        Synchronous from the size check to ``live = True``: no block can be committed
        in between (see the module docstring).
        """
        frames: list[tuple[int, bytes]] = []
        with self.store.snapshot() as view:
            size = view.log_size()
            end = min(size, stream.next_index + HISTORY_PAGE)
            times: dict[int, int] = {}
            for index in range(stream.next_index, end):
                entry = decode_wire(view.leaf(index), self.max_entry_bytes)
                if stream.want.matches(entry):
                    frames.append((index, self._stored_frame(view, entry, index, times)))
            stream.next_index = max(stream.next_index, end)
            if stream.next_index >= size and size == self.store.log_size():
                stream.live = True
        return frames

    def _stored_frame(
        self, view: StoreView, entry: SignedEntry, index: int, times: dict[int, int]
    ) -> bytes:
        location = view.entry_location(entry.id)
        if location is None or location.log_index != index:
            raise EntryError("malformed", f"log leaf {index} is not indexed as committed")
        block_time = times.get(location.height)
        if block_time is None:
            header: Header | None = view.get_header(location.height)
            assert header is not None, f"entry at height {location.height} has no header"
            block_time = times[location.height] = header.time
        return event_frame(
            entry,
            log_index=index,
            height=location.height,
            position=location.position,
            block_time=block_time,
        )

    async def _write(
        self,
        stream: _Stream,
        response: web.StreamResponse,
        frames: Iterable[tuple[int, bytes]],
        *,
        extra: bytes = b"",
    ) -> None:
        """Write ``frames``; give up at once if the stream is dropped meanwhile (its
        client is not reading, and the write would wait for ever)."""
        items = list(frames)
        data = b"".join(frame for _, frame in items) + extra
        sending = asyncio.create_task(_write_all(response, data))
        dropped = asyncio.create_task(_closing(stream))
        try:
            await asyncio.wait([sending, dropped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
        if sending.done():
            sending.result()
        else:
            # The bytes are with the transport already (the write hands them over before
            # it waits for the socket to drain): only that wait is abandoned, and the
            # close event goes after them.
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
        if items:
            stream.last_sent = items[-1][0]

    async def _send_close(self, stream: _Stream, response: web.StreamResponse) -> None:
        assert stream.closing is not None
        code, message = stream.closing
        self._closed.labels(code).inc()
        log.warning(
            "closing an event stream: %s",
            message,
            extra={"code": code, "last_event_id": stream.last_sent},
        )
        frame = close_frame(code, message, stream.last_sent)
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(CLOSE_WRITE_S):
                await response.write(frame)
                await response.write_eof()


async def _write_all(response: web.StreamResponse, data: bytes) -> None:
    await response.write(data)


async def _closing(stream: _Stream) -> None:
    while stream.closing is None:
        stream.wake.clear()
        await stream.wake.wait()


def _hang_up(request: web.Request) -> None:
    """Close a dropped stream's connection: what is buffered (the close event last) goes
    out if the client reads again soon; a client that never does is cut off."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    transport.close()
    asyncio.get_running_loop().call_later(ABORT_AFTER_S, transport.abort)


def _small_send_buffer(request: web.Request) -> None:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


def _index(text: str, what: str) -> int:
    if not 1 <= len(text) <= 18 or not all("0" <= c <= "9" for c in text):
        raise ApiError(400, "malformed", f"{what} must be a log index (a non-negative integer)")
    value = int(text)
    if value > MAX_INDEX:
        raise ApiError(400, "malformed", f"{what} is past any log")
    return value
