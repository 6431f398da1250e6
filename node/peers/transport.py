"""PeerManager: authenticated WebSocket links between members, with gossip relay.

Every node serves ``GET /v1/peer`` on its one aiohttp server and dials every peer URL it
knows; both sides then run the handshake of ``handshake.py``. One link per member pair:
when two authenticated connections exist for a pair (both dialled at once, or a peer
came back), both ends keep the one dialled by the lower member id, or the newer one if
both were dialled by the same side — a rule both ends evaluate to the same answer.
That rule settles simultaneous dials, which meet within a handshake of each other; a
member dialling in over a link that has stood longer than twice ``handshake_ms`` is
reconnecting (it restarted, or lost the link we still hold) and its new link replaces
its own stale one, so a restarted node is not shut out until a heartbeat notices.

On ``https://`` URLs the link is TLS 1.3 (``PeerTls``): the dialler pins the certificate
the peer presents to genesis's key for the member dialled, before any frame goes out,
and both handshake signatures are bound to the listener's certificate (handshake.py,
node.daemon.tls). A certificate for another key is refused, logged with the two keys'
prefixes and counted (``refused_certificate_key``).

Strangers get in only as far as the handshake, and on a budget of their own: at most
``max_unauthenticated`` sockets, ``per_address`` of them from one address, each with
``auth_ms`` to authenticate and frames no larger than the handshake's
(``HANDSHAKE_FRAME_BYTES``; the full ``max_frame_bytes`` only once it has). A socket
past either budget displaces the oldest unauthenticated one (of its address first), so
a member's handshake, which takes a round trip, cannot be shut out by sockets that sit
and wait; authenticated links are never displaced by one. ``max_connections`` caps
unauthenticated sockets and links together (the daemon's config keeps it above the
unauthenticated budget plus every other member).

Faults of a peer (bad frames, failed handshakes, overflowing queues) close that link, are
counted in ``counters`` and logged; they never reach the daemon as exceptions. So do the
transport's own errors (a reset, a write to a closing socket, a timeout): they end that
one link with a line in the log, and the dial loop reconnects. An exception from the
daemon's own ``on_message`` is a bug: it is logged, kept in ``failure`` and signalled
through ``failed`` so the daemon stops loudly.

A relayed message names the members it was already sent to, and is forwarded only to
links outside that set: in a full mesh no copy is relayed, in a line or a ring the flood
still reaches everyone. Before forwarding, the daemon's ``relayable(kind, payload)``
check runs (cheap: a decode, no signatures) and junk stays where it came in. A receiver
can only name the link a message arrived on, so a relayed piece of junk would have been
blamed on the honest member that passed it on, and one member could have had every
other member forward its junk to all the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from ledger.genesis import Genesis
from ledger.keys import SigningKey
from node.daemon.config import Limits, NodeConfig, Timeouts
from node.daemon.tls import (
    CertificateKeyMismatch,
    binding,
    client_context,
    peer_certificate,
    pin_peer_certificate,
)
from node.peers.errors import FrameError, HandshakeError, PeerError
from node.peers.frames import (
    HANDSHAKE_FRAME_BYTES,
    MAX_REACHED,
    MESSAGE_KINDS,
    NONCE_BYTES,
    RELAYED_KINDS,
    Auth,
    Challenge,
    Frame,
    Height,
    Hello,
    Message,
    Ok,
    decode_frame,
    encode_frame,
)
from node.peers.handshake import DialerHandshake, ListenerHandshake
from node.peers.link import TRANSPORT_ERRORS, Link, WebSocket, raise_frame_limit
from node.peers.seen import SeenCache, message_id

__all__ = ["PEER_PATH", "OnMessage", "PeerManager", "PeerOptions", "PeerStatus", "PeerTls"]

log = logging.getLogger("node.peers")

PEER_PATH = "/v1/peer"
# Repeated warnings about strangers (timeouts, displaced sockets) are summed up in one
# line per this many seconds, so a flood of sockets cannot flood the log.
QUIET_LOG_S = 10.0
_HANDSHAKE_ERRORS: tuple[type[Exception], ...] = (PeerError, *TRANSPORT_ERRORS)
_F = TypeVar("_F", Hello, Challenge, Auth, Ok)
# on_message(from_peer_id, kind, payload): the daemon's handler for every delivered message.
OnMessage = Callable[[str, str, bytes], Awaitable[None]]
# relayable(kind, payload): whether a relayed message is well-formed enough to pass on.
Relayable = Callable[[str, bytes], bool]


# node.toml's defaults, named once there (node.daemon.config).
_LIMITS, _TIMEOUTS = Limits(), Timeouts()


@dataclass(frozen=True, slots=True)
class PeerOptions:
    max_frame_bytes: int = _LIMITS.max_frame_bytes
    max_connections: int = _LIMITS.max_peer_connections
    max_unauthenticated: int = _LIMITS.max_unauthenticated_peers
    per_address: int = _LIMITS.max_unauthenticated_per_address
    send_queue: int = _LIMITS.peer_send_queue
    seen_cache: int = _LIMITS.gossip_seen_cache
    handshake_ms: int = _TIMEOUTS.handshake_ms
    auth_ms: int = _TIMEOUTS.peer_auth_ms
    heartbeat_ms: int = _TIMEOUTS.heartbeat_ms
    reconnect_min_ms: int = _TIMEOUTS.reconnect_min_ms
    reconnect_max_ms: int = _TIMEOUTS.reconnect_max_ms

    @classmethod
    def from_config(cls, config: NodeConfig) -> PeerOptions:
        limits, timeouts = config.limits, config.timeouts
        return cls(
            max_frame_bytes=limits.max_frame_bytes,
            max_connections=limits.max_peer_connections,
            max_unauthenticated=limits.max_unauthenticated_peers,
            per_address=limits.max_unauthenticated_per_address,
            send_queue=limits.peer_send_queue,
            seen_cache=limits.gossip_seen_cache,
            handshake_ms=timeouts.handshake_ms,
            auth_ms=timeouts.peer_auth_ms,
            heartbeat_ms=timeouts.heartbeat_ms,
            reconnect_min_ms=timeouts.reconnect_min_ms,
            reconnect_max_ms=timeouts.reconnect_max_ms,
        )


@dataclass(frozen=True, slots=True)
class PeerTls:
    """This node's side of TLS links: the DER certificate it serves (None when it serves
    plaintext) and the context it dials ``https://`` peers with."""

    certificate: bytes | None = None
    dial_context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        return self.dial_context or client_context()


class _Pending:
    """An accepted socket that has not authenticated yet, and how to cut it short."""

    __slots__ = ("deadline", "displaced", "remote", "secure")

    def __init__(self, remote: str, *, secure: bool) -> None:
        self.remote = remote
        self.secure = secure
        self.deadline: asyncio.Timeout | None = None  # set once the handshake runs
        self.displaced = ""  # why it was cut short, if it was

    def displace(self, why: str) -> None:
        self.displaced = why
        if self.deadline is not None:
            self.deadline.reschedule(asyncio.get_running_loop().time())


class _QuietLog:
    """A warning logged once per ``QUIET_LOG_S`` with the count of what it stands for."""

    def __init__(self, one: str, many: str) -> None:
        self._texts = (one, many)  # for a count of 1, and for any other
        self._count = 0
        self._next = 0.0

    def warn(self, where: str | None) -> None:
        self._count += 1
        now = time.monotonic()
        if now >= self._next:
            text = self._texts[0 if self._count == 1 else 1]
            log.warning(text, self._count, QUIET_LOG_S, where, extra={"count": self._count})
            self._count, self._next = 0, now + QUIET_LOG_S


@dataclass(frozen=True, slots=True)
class PeerStatus:
    id: str
    connected: bool
    height: int | None
    url: str | None
    dialled_by: str | None


class PeerManager:
    """Links to the members in ``urls`` (member id -> base URL) and any member dialling in."""

    def __init__(
        self,
        genesis: Genesis,
        my_id: str,
        key: SigningKey,
        urls: Mapping[str, str],
        on_message: OnMessage,
        options: PeerOptions | None = None,
        *,
        relayable: Relayable | None = None,
        rng: random.Random | None = None,
        tls: PeerTls | None = None,
    ) -> None:
        member = genesis.member(my_id)
        if member is None or member.public_key != key.public_key:
            raise PeerError("not a member", f"{my_id} with this key is not in genesis")
        self.genesis = genesis
        self.my_id = my_id
        self._key = key
        self._urls = {i: u.rstrip("/") for i, u in urls.items() if i != my_id}
        self._on_message = on_message
        self._relayable = relayable
        self.options = options or PeerOptions()
        self._rng = rng or random.Random()
        self._tls = tls or PeerTls()
        self._dial_context = self._tls.context()
        self.counters: Counter[str] = Counter()
        self._links: dict[str, Link] = {}
        self._seen = SeenCache(self.options.seen_cache)
        self._height = 0
        self._sockets: set[WebSocket] = set()
        # Accepted sockets still authenticating, oldest first.
        self._pending: OrderedDict[WebSocket, _Pending] = OrderedDict()
        self._quiet_timeouts = _QuietLog(
            "%d inbound peer handshake timed out or was displaced in %.0f s (from %s)",
            "%d inbound peer handshakes timed out or were displaced in %.0f s (last from %s)",
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        # Set when the daemon's handler raised: the daemon awaits this and shuts down.
        self.failed = asyncio.Event()
        self.failure: BaseException | None = None

    # -- the daemon's API ------------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        """Add the peer WebSocket route to the node's aiohttp application."""
        app.router.add_routes(self.app_routes())

    def app_routes(self) -> list[web.RouteDef]:
        return [web.get(PEER_PATH, self._accept)]

    async def start(self) -> None:
        """Start dialling every known peer; links come and go until ``stop``."""
        if self._session is not None:
            raise RuntimeError("PeerManager already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.options.handshake_ms / 1000)
        )
        for peer_id, url in sorted(self._urls.items()):
            self._spawn(self._dial_loop(peer_id, url), f"peer-dial-{peer_id}")

    async def stop(self) -> None:
        """Close every link and socket and wait for every task this manager started."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down")
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._session is not None:
            await self._session.close()

    def broadcast(self, kind: str, payload: bytes, *, relay: bool = True) -> int:
        """Send to every linked peer; with ``relay`` peers forward it on. Returns links used."""
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        if relay and kind not in RELAYED_KINDS:
            raise ValueError(f"{kind!r} messages are point-to-point and cannot be relayed")
        # Marking our own message seen keeps it from being delivered back to us by relays.
        self._seen.add(message_id(kind, payload))
        links = list(self._links.values())
        reached = tuple(sorted({self.my_id, *(link.peer_id for link in links)})) if relay else ()
        data = encode_frame(Message(k=kind, p=payload, r=relay, s=reached))
        return sum(link.enqueue(data) for link in links)

    def send(self, peer_id: str, kind: str, payload: bytes) -> bool:
        """Send to one linked peer without relay; False when there is no link to it."""
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        link = self._links.get(peer_id)
        if link is None:
            return False
        return link.enqueue(encode_frame(Message(k=kind, p=payload, r=False)))

    def set_height(self, height: int) -> None:
        """Announce our committed height to every peer (and to each new one on connect)."""
        self._height = height
        data = encode_frame(Height(h=height))
        for link in list(self._links.values()):
            link.enqueue(data)

    def peers(self) -> list[PeerStatus]:
        ids = sorted(set(self._urls) | set(self._links))
        return [self._status(i) for i in ids]

    def connected(self) -> list[str]:
        return sorted(self._links)

    def unauthenticated(self) -> int:
        """Accepted sockets that have not authenticated yet (and are not being displaced)."""
        return sum(not p.displaced for p in self._pending.values())

    def queued_bytes(self, peer_id: str) -> int | None:
        """Frame bytes queued to ``peer_id`` and not yet written; None without a link."""
        link = self._links.get(peer_id)
        return None if link is None else link.queued_bytes

    def _status(self, peer_id: str) -> PeerStatus:
        link = self._links.get(peer_id)
        return PeerStatus(
            id=peer_id,
            connected=link is not None,
            height=None if link is None else link.height,
            url=self._urls.get(peer_id),
            dialled_by=None if link is None else link.dialer,
        )

    # -- tasks -----------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            # Only our own bugs get here (peer faults are handled in the loops): be loud.
            log.error("peer task %s crashed", task.get_name())
            self._fail(exc)

    # -- accepting -------------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            raise web.HTTPServiceUnavailable(text="node shutting down")
        remote = request.remote or "unknown"
        victim = self._make_room_for(remote)
        pending = self.unauthenticated() - (victim is not None)
        if pending + len(self._links) >= self.options.max_connections:
            self.counters["refused_connection_limit"] += 1
            log.warning("refused peer socket from %s: connection limit", remote)
            raise web.HTTPServiceUnavailable(text="peer connection limit reached")
        if victim is not None:
            displaced, why = victim
            self.counters[f"unauthenticated_displaced_{why}"] += 1
            displaced.displace(why)
        ws = web.WebSocketResponse(
            # Until it authenticates, a peer gets no more than a handshake frame.
            max_msg_size=HANDSHAKE_FRAME_BYTES + 1,
            heartbeat=self.options.heartbeat_ms / 1000,
            timeout=self._auth_s,
            compress=False,
        )
        # In the budget from before the upgrade: concurrent upgrades all count.
        entry = self._pending[ws] = _Pending(remote, secure=request.secure)
        started = asyncio.get_running_loop().time()
        try:
            await ws.prepare(request)
        except BaseException:
            self._pending.pop(ws, None)
            raise
        self._sockets.add(ws)
        try:
            peer_id = await self._listen_handshake(ws, entry, started)
            if peer_id is not None:
                await self._run_link(Link(peer_id, peer_id, ws, *self._link_args()), ack=True)
        finally:
            self._pending.pop(ws, None)
            self._sockets.discard(ws)
            await ws.close()
        return ws

    def _make_room_for(self, remote: str) -> tuple[_Pending, str] | None:
        """The unauthenticated socket a new one from ``remote`` displaces, and why: the
        oldest from that address when it has its share, else the oldest of all when the
        budget is spent."""
        pending = self._pending
        if not pending:
            return None
        same = [p for p in pending.values() if p.remote == remote and not p.displaced]
        if len(same) >= self.options.per_address:
            return same[0], "per_address"
        live = [p for p in pending.values() if not p.displaced]
        if len(live) >= self.options.max_unauthenticated:
            return live[0], "budget"
        return None

    @property
    def _auth_s(self) -> float:
        return min(self.options.auth_ms, self.options.handshake_ms) / 1000

    async def _listen_handshake(self, ws: WebSocket, entry: _Pending, started: float) -> str | None:
        """Authenticate an accepted socket within ``auth_s`` of ``started`` (its upgrade)."""
        # What the dialler saw of us: our certificate if this socket is TLS.
        tls = self._tls.certificate if entry.secure else None
        shake = ListenerHandshake(
            self.genesis, self.my_id, self._key, os.urandom(NONCE_BYTES), binding(tls)
        )
        try:
            async with asyncio.timeout_at(started + self._auth_s) as deadline:
                entry.deadline = deadline
                if entry.displaced:  # while the upgrade was going out
                    raise TimeoutError
                hello = await self._receive(ws, Hello)
                await ws.send_bytes(encode_frame(shake.on_hello(hello)))
                peer_id = shake.on_auth(await self._receive(ws, Auth))
        except _HANDSHAKE_ERRORS as exc:
            self._pending.pop(ws, None)  # out of the budget now, not once the close is done
            await self._refuse(ws, "inbound", entry.remote, exc, displaced=entry.displaced)
            return None
        finally:
            self._pending.pop(ws, None)
        # A member now: its frames may be as large as any (the dialler waits for our ok).
        raise_frame_limit(ws, self._ws_limit)
        return peer_id

    # -- dialling --------------------------------------------------------------------

    async def _dial_loop(self, peer_id: str, url: str) -> None:
        failures = 0
        while not self._stopping:
            link = self._links.get(peer_id)
            if link is not None:
                await link.closed.wait()
                continue
            # Even after a link that worked, wait a little: a peer that accepts and then
            # drops us (shutting down, or keeping another link) must not see a hot loop.
            failures = 1 if await self._dial_once(peer_id, url) else failures + 1
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter (AWS Architecture Blog, 2015), capped."""
        low, high = self.options.reconnect_min_ms, self.options.reconnect_max_ms
        ceiling = min(high, low * 2 ** min(failures, 30))
        return self._rng.uniform(low, ceiling) / 1000

    async def _dial_once(self, peer_id: str, url: str) -> bool:
        """One connection attempt; True if a link was established (and has since ended)."""
        assert self._session is not None
        secure = url.startswith("https://")
        try:
            ws = await self._session.ws_connect(
                url + PEER_PATH,
                ssl=self._dial_context if secure else False,
                # Raised once the listener has proved it is the member we dialled.
                max_msg_size=HANDSHAKE_FRAME_BYTES + 1,
                heartbeat=self.options.heartbeat_ms / 1000,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.options.handshake_ms / 1000),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.counters["dial_failed"] += 1
            log.debug("dial %s at %s failed: %s", peer_id, url, exc)
            return False
        self._sockets.add(ws)
        try:
            seen = self._pinned(ws, peer_id, url) if secure else b""
            if seen is None or not await self._dial_handshake(ws, peer_id, url, seen):
                return False
            await self._run_link(Link(peer_id, self.my_id, ws, *self._link_args()), ack=False)
            return True
        finally:
            self._sockets.discard(ws)
            await ws.close()

    def _pinned(self, ws: aiohttp.ClientWebSocketResponse, peer_id: str, url: str) -> bytes | None:
        """The handshake binding for a TLS link whose certificate carries genesis's key
        for ``peer_id``; None (logged, counted) for any other certificate."""
        der = peer_certificate(ws.get_extra_info("ssl_object"))
        member = self.genesis.member(peer_id)
        assert member is not None  # the daemon's config checks peers against genesis
        try:
            pin_peer_certificate(der, peer_id, member.public_key)
        except CertificateKeyMismatch as exc:
            self.counters["refused_certificate_key"] += 1
            self.counters["handshake_outbound_failed"] += 1
            log.warning("refused peer %s at %s: %s", peer_id, url, exc)
            return None
        return binding(der)

    async def _dial_handshake(
        self, ws: WebSocket, peer_id: str, url: str, seen: bytes = b""
    ) -> bool:
        shake = DialerHandshake(
            self.genesis,
            self.my_id,
            self._key,
            os.urandom(NONCE_BYTES),
            expected_id=peer_id,
            binding=seen,
        )
        try:
            async with asyncio.timeout(self.options.handshake_ms / 1000):
                await ws.send_bytes(encode_frame(shake.hello()))
                auth = shake.on_challenge(await self._receive(ws, Challenge))
                # The listener sends nothing more before our auth; after it, anything.
                raise_frame_limit(ws, self._ws_limit)
                await ws.send_bytes(encode_frame(auth))
                await self._receive(ws, Ok)
        except _HANDSHAKE_ERRORS as exc:
            await self._refuse(ws, "outbound", url, exc)
            return False
        return True

    # -- shared ----------------------------------------------------------------------

    @property
    def _ws_limit(self) -> int:
        # aiohttp refuses a message whose size reaches max_msg_size; ours is inclusive.
        return self.options.max_frame_bytes + 1

    def _link_args(self) -> tuple[int, Callable[[Link], None]]:
        return self.options.send_queue, self._overflowed

    def _overflowed(self, link: Link) -> None:
        self.counters["send_queue_overflow"] += 1
        log.warning(
            "closing link to %s: send queue of %d frames full",
            link.peer_id,
            self.options.send_queue,
        )

    async def _refuse(
        self,
        ws: WebSocket,
        direction: str,
        where: str | None,
        exc: Exception,
        *,
        displaced: str = "",
    ) -> None:
        code = WSCloseCode.POLICY_VIOLATION
        if displaced:
            reason, code = "displaced by newer connections", WSCloseCode.TRY_AGAIN_LATER
        elif isinstance(exc, PeerError):
            reason = exc.reason
            if _too_big(exc):
                code = WSCloseCode.MESSAGE_TOO_BIG
        else:
            reason = "handshake timeout" if isinstance(exc, TimeoutError) else "connection lost"
        self.counters[f"handshake_{direction}_failed"] += 1
        if isinstance(exc, HandshakeError):
            self.counters[f"refused_{exc.reason.replace(' ', '_')}"] += 1
        elif _too_big(exc):
            self.counters[f"handshake_{direction}_frame_too_large"] += 1
        idle = not isinstance(exc, PeerError) or exc.reason == "closed"
        if direction == "inbound" and (displaced or idle):
            # What a flood of idle sockets produces: one line per interval, not per socket.
            self._quiet_timeouts.warn(where)
        else:
            log.warning("peer handshake (%s, %s) failed: %s", direction, where, exc)
        await ws.close(code=code, message=reason.encode()[:120])

    async def _run_link(self, link: Link, *, ack: bool) -> None:
        """Serve an authenticated link until it closes; the listener side sends ``ok``."""
        if not self._register(link):
            await link.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"duplicate link")
            return
        try:
            if ack:
                try:
                    await link.ws.send_bytes(encode_frame(Ok()))
                except TRANSPORT_ERRORS:
                    return  # the dialler went away between auth and ok
            link.start()
            link.enqueue(encode_frame(Height(h=self._height)))
            log.info("peer %s linked (dialled by %s)", link.peer_id, link.dialer)
            await self._read(link)
        finally:
            kept = self._links.get(link.peer_id)
            if kept is link:
                del self._links[link.peer_id]
            await link.stop()
            self._dropped(link, replaced=kept is not None and kept is not link)

    def _register(self, link: Link) -> bool:
        """Make ``link`` the pair's one link unless the existing one wins (see module doc)."""
        current = self._links.get(link.peer_id)
        if current is not None:
            self.counters["duplicate_link"] += 1
            lower = min(self.my_id, link.peer_id)
            # Simultaneous dials meet within a handshake of each other; a member dialling
            # over an older link is reconnecting, and its link is the one it can use.
            settled = time.monotonic() - current.since > 2 * self.options.handshake_ms / 1000
            if settled:
                self.counters["link_replaced_by_reconnect"] += 1
            elif current.dialer != link.dialer and current.dialer == lower:
                return False
            current.close(WSCloseCode.POLICY_VIOLATION, "duplicate link")
        link.since = time.monotonic()
        self._links[link.peer_id] = link
        return True

    async def _read(self, link: Link) -> None:
        while True:
            try:
                msg = await link.ws.receive()
            except TRANSPORT_ERRORS as exc:
                self._transport_error(link, exc)
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                if link.end_reason is None:
                    link.end_reason = _close_reason(msg.type, link.ws.close_code, msg.extra)
                return
            try:
                await self._on_frame(link, self._frame_of(msg))
            except PeerError as exc:
                self._fault(link, exc)
                return

    def _transport_error(self, link: Link, exc: BaseException) -> None:
        # No traceback: a connection that breaks is routine, not our bug. The line that
        # says the link dropped gives this as its reason.
        self.counters["link_transport_error"] += 1
        if link.end_reason is None:
            link.end_reason = f"{type(exc).__name__}: {exc}"

    def _dropped(self, link: Link, *, replaced: bool) -> None:
        """One line per link that ends: a warning with its reason, unless we are stopping
        or another link to that peer took its place (simultaneous dials, a reconnect)."""
        reason = link.end_reason or "ended"
        fields = {"peer": link.peer_id, "reason": reason}
        if self._stopping:
            log.info("peer %s unlinked: this node is stopping", link.peer_id, extra=fields)
        elif replaced:
            log.info("peer %s: a second link closed, the other kept", link.peer_id, extra=fields)
        else:
            log.warning("link to peer %s dropped: %s", link.peer_id, reason, extra=fields)

    def _fault(self, link: Link, exc: PeerError) -> None:
        self.counters[f"fault_{exc.reason.replace(' ', '_')}"] += 1
        log.warning("closing link to %s: %s", link.peer_id, exc, extra={"peer": link.peer_id})
        link.end_reason = f"its fault: {exc}"
        code = WSCloseCode.MESSAGE_TOO_BIG if _too_big(exc) else WSCloseCode.POLICY_VIOLATION
        link.close(code, exc.reason)

    async def _on_frame(self, link: Link, frame: Frame) -> None:
        if isinstance(frame, Height):
            link.height = frame.h
            return
        if not isinstance(frame, Message):
            raise FrameError("unexpected frame", f"{type(frame).__name__} after the handshake")
        if frame.r and frame.k not in RELAYED_KINDS:
            raise FrameError("unexpected frame", f"{frame.k} cannot be relayed")
        # Only gossip is de-duplicated: a repeated direct request (a sync retry) is meant.
        if frame.r and not self._seen.add(message_id(frame.k, frame.p)):
            self.counters["gossip_duplicate"] += 1
            return
        if frame.r:
            self._relay(link, frame)
        self.counters["delivered"] += 1
        try:
            await self._on_message(link.peer_id, frame.k, frame.p)
        except Exception as exc:
            # The handler counts peer faults itself; anything escaping is our own bug.
            self._fail(exc)
            raise

    def _relay(self, came_on: Link, frame: Message) -> None:
        """Forward ``frame`` to the links outside its reached set, adding them to it.

        Flooding to every link would hand each member n - 1 copies of every message in a
        full mesh, each costing a frame decode and a hash of the payload before the
        seen-cache drops it; only members nobody has sent it to still need it from us.
        """
        reached = set(frame.s)
        targets = [
            other
            for peer_id, other in list(self._links.items())
            if other is not came_on and peer_id not in reached
        ]
        if not targets:
            return
        if self._relayable is not None and not self._relayable(frame.k, frame.p):
            self.counters["relay_refused"] += 1
            return
        reached.update(other.peer_id for other in targets)
        reached.add(self.my_id)
        data = encode_frame(
            Message(k=frame.k, p=frame.p, r=True, s=tuple(sorted(reached)[:MAX_REACHED]))
        )
        for other in targets:
            other.enqueue(data)
            self.counters["gossip_relayed"] += 1

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            log.error("message handler failed; the node must stop", exc_info=exc)
        self.failed.set()

    async def _receive(self, ws: WebSocket, expected: type[_F]) -> _F:
        frame = self._frame_of(await ws.receive(), HANDSHAKE_FRAME_BYTES)
        if not isinstance(frame, expected):
            name = type(frame).__name__
            raise HandshakeError("protocol", f"expected {expected.__name__}, got {name}")
        return frame

    def _frame_of(self, msg: aiohttp.WSMessage, max_bytes: int | None = None) -> Frame:
        """The frame in ``msg``; raise PeerError for anything that is not a valid frame."""
        if msg.type == WSMsgType.BINARY:
            return decode_frame(msg.data, max_bytes or self.options.max_frame_bytes)
        if msg.type == WSMsgType.ERROR:
            raise FrameError("frame error", str(msg.data))
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise PeerError("closed", f"peer closed: {msg.extra or msg.data}")
        raise FrameError("malformed frame", f"{msg.type.name} frames are not accepted")


def _too_big(exc: Exception) -> bool:
    """Whether ``exc`` refused a frame for its size (ours, or aiohttp's reader's)."""
    if not isinstance(exc, PeerError):
        return False
    return exc.reason == "frame too large" or (
        exc.reason == "frame error" and "size" in exc.detail.lower()
    )


def _close_reason(kind: WSMsgType, code: int | None, said: object) -> str:
    # 1006 is what aiohttp reports for a socket that ended without a close frame: the
    # peer's process died or the network between us failed.
    if code is None or code == WSCloseCode.ABNORMAL_CLOSURE or kind != WSMsgType.CLOSE:
        return f"connection lost (no close frame, code {code})"
    return f"closed by the peer (code {code}{f': {said}' if said else ''})"
