"""``customs-node run``: one member's node — store, consensus, peers, sync and HTTP API.

Start-up order: open the store (refusing a store in use or made for another genesis),
restore the consensus signing state, serve HTTP (API and peer route on one port),
start peers and sync, then start consensus at the height after the store's head.
Shutdown (SIGTERM/SIGINT) reverses it; LevelDB's synced batches make kill -9 safe.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from ledger.block import Commit
from ledger.entry import SignedEntry
from ledger.errors import BlockFormatError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.store import Store
from node import native
from node.consensus import (
    ConsensusCore,
    MessageFormatError,
    SignedProposal,
    SignedVote,
    SigningState,
    decode_message,
)
from node.daemon.api import build_app
from node.daemon.block_sync import Syncer
from node.daemon.chain import Chain, Committed
from node.daemon.clock import now_ms
from node.daemon.config import NodeConfig, peer_urls
from node.daemon.consensus_host import SIGNING_STATE_KEY, ConsensusHost
from node.daemon.consensus_watch import QuorumWatch, RejectionLog, RoundWatch, dir_bytes
from node.daemon.events import EventHub
from node.daemon.gossip_payloads import (
    MAX_ENTRIES_PER_GOSSIP,
    Limits,
    ProposalOutline,
    WireError,
    decode_entries,
    encode_entries,
)
from node.daemon.indexes import ensure_indexes
from node.daemon.logs import redact_secrets
from node.daemon.mempool import Mempool
from node.daemon.metrics import NodeMetrics
from node.daemon.parts import TimerHandle
from node.daemon.queries import Service
from node.daemon.search import Search
from node.daemon.tls import ServerTls
from node.peers import PeerManager, PeerOptions, PeerStatus, PeerTls
from node.text import plural

__all__ = ["Node", "run"]

log = logging.getLogger("customs.node")

ENTRY_FLUSH_S = 0.02
PROFILE_ENV = "CUSTOMS_NODE_PROFILE"
SHUTDOWN_STEP_S = 5.0
HOUSEKEEPING_S = 0.5
# The store's size is a directory listing: sampled this often, not every tick.
STORE_SIZE_S = 10.0
# CPython's default (700, 10, 10) runs a young collection every 700 container
# allocations and a full one every 70,000, each walking every live object: with a full
# mempool and the store's caches that was ~6% of a node's CPU under load, for almost no
# cyclic garbage (entries, blocks and messages are freed by reference counting).
GC_THRESHOLDS = (50_000, 20, 100)


class _LoopTimers:
    """``parts.Timers`` on the running event loop."""

    def call_later(self, delay: float, callback: Callable[[], object], /) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


class _Live:
    """``parts.LiveStatus`` for the API: what consensus, sync and the peers are doing."""

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def round(self) -> int:
        return self._node.host.core.round

    @property
    def syncing(self) -> bool:
        return self._node.sync.catching_up

    def peers(self) -> list[PeerStatus]:
        return self._node.peers.peers()

    def connected(self) -> list[str]:
        return self._node.peers.connected()


class Node:
    """Wiring: builds the chain and the parts around it, routes peer messages to them,
    and starts and stops them. The store opens here (refusing one in use or made for
    another genesis); ``start`` serves and ``stop`` closes everything, started or not.
    ``tls`` is what the port serves (None: plaintext, loopback only)."""

    def __init__(
        self,
        config: NodeConfig,
        genesis: Genesis,
        key: SigningKey,
        tls: ServerTls | None = None,
    ) -> None:
        self.config = config
        self.tls = tls
        self.genesis = genesis
        self.key = key
        self.member_id = config.member_id
        self.metrics = NodeMetrics()
        self.fatal = asyncio.Event()
        self.failure: BaseException | None = None
        params, limits = genesis.params, config.limits
        self.wire_limits = Limits(
            max_entry_bytes=params.max_entry_bytes,
            max_block_entries=params.max_block_entries,
            max_payload_bytes=limits.max_frame_bytes,
        )
        mempool = Mempool(
            max_entries=limits.mempool_max_entries,
            max_bytes=limits.mempool_max_bytes,
            entry_window_ms=params.entry_window_ms,
        )
        genesis_bytes = config.genesis_file.read_bytes()  # before anything needs closing
        validators = genesis.validators
        self.is_validator = validators.index_of(self.member_id) is not None
        self.rejections = RejectionLog()
        self.quorum = QuorumWatch(self.metrics, quorum=validators.quorum, validators=validators.n)
        self.rounds = RoundWatch(self.metrics)
        self._store_sampled = -STORE_SIZE_S
        self.store = Store.open(config.data_dir / "ledger", genesis)  # read freely
        # The store's one writer.
        self.chain = Chain(self.store, genesis, mempool, on_rejected=self._entry_rejected)
        self.chain.subscribe(self._committed)
        self.events = EventHub(
            self.store,
            max_entry_bytes=params.max_entry_bytes,
            max_streams=limits.max_event_streams,
            buffer=limits.event_buffer,
            registry=self.metrics.registry,
        )
        self.chain.subscribe(self.events.on_commit)
        self.peers = PeerManager(
            genesis,
            self.member_id,
            key,
            peer_urls(config, genesis),
            self.on_message,
            PeerOptions.from_config(config),
            relayable=self.relayable,
            tls=PeerTls(certificate=None if tls is None else tls.certificate),
        )
        self.sync = Syncer(
            self.chain,
            genesis,
            self.peers,
            faults=self,
            metrics=self.metrics,
            limits=self.wire_limits,
            requests_per_s=limits.sync_requests_per_s,
            answer_bytes=limits.sync_answer_bytes,
        )
        # Subscribed last (see Chain.subscribe): consensus moves on after the bookkeeping.
        self.host = ConsensusHost(
            self._consensus_core(),
            self.chain,
            genesis=genesis,
            links=self.peers,
            timers=_LoopTimers(),
            want_blocks=self.sync.want,
            decided_elsewhere=self.sync.decided_elsewhere,
            faults=self,
            metrics=self.metrics,
            limits=self.wire_limits,
        )
        self.host.on_round = self.rounds.at
        self.service = Service(
            self.chain,
            member_id=self.member_id,
            key=key,
            genesis_bytes=genesis_bytes,
            live=_Live(self),
            metrics=self.metrics,
            on_admitted=self._gossip_entries,
        )
        self._handlers: dict[str, Callable[[str, bytes], Awaitable[None] | None]] = {
            "entry": self._on_entries,
            "proposal": self.host.on_proposal,
            "vote": self.host.on_vote,
            "commit": self._on_commit,
            "block_request": self.sync.on_request,
            "block_response": self.sync.on_response,
        }
        self._outbox: list[bytes] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._tls_server: asyncio.Server | None = None

    def _consensus_core(self) -> ConsensusCore:
        raw = self.store.get_raw(SIGNING_STATE_KEY)
        restored = SigningState.decode(raw) if raw is not None else None
        is_validator = self.genesis.validators.index_of(self.member_id) is not None
        return ConsensusCore(
            self.genesis.chain_id,
            self.member_id,
            self.key if is_validator else None,
            timeouts=self.config.timeouts.consensus(),
            restored=restored,
        )

    def fail(self, exc: BaseException) -> None:
        log.error("internal error, stopping: %r", exc)
        if self.failure is None:
            self.failure = exc
        self.fatal.set()

    def peer_fault(self, peer: str, kind: str, exc: BaseException) -> None:
        self.peers.counters[f"bad_{kind}"] += 1
        fields = {"peer": peer, "code": f"bad_{kind}"}
        log.warning("bad %s from %s: %s", kind, peer, exc, extra=fields)

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        if indexed := ensure_indexes(self.store):
            log.info("built the search indexes for %d records", indexed)
        self.metrics.watch_peer_events(lambda: self.peers.counters)
        token = config.api_token_file.read_text().strip()
        redact_secrets(token)  # no path through aiohttp or ours may log it
        app = build_app(
            self.service,
            api_token=token,
            max_request_bytes=config.limits.max_request_bytes,
            max_entries_per_request=config.limits.max_entries_per_request,
            max_in_flight=config.limits.max_api_connections,
            max_writes=config.limits.max_api_writes,
            body_timeout_s=config.timeouts.request_body_ms / 1000,
            observer=_ApiRefusals(self.metrics, self.rejections),
        )
        self.peers.attach(app)
        self.events.attach(app)
        Search(self.store).attach(app)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_STEP_S / 2,
            # aiohttp closes a connection whose request line and headers are not all in
            # after this (its keep-alive timer runs from the connection's first byte):
            # a client sending headers a byte at a time cannot hold a socket for ever.
            keepalive_timeout=config.timeouts.request_head_ms / 1000,
        )
        await self._runner.setup()
        head_s = config.timeouts.request_head_ms / 1000
        if self.tls is None:
            await web.TCPSite(self._runner, config.listen_host, config.listen_port).start()
        else:
            # Served directly rather than through aiohttp's TCPSite, which cannot bound
            # the TLS handshake (asyncio's default is 60 s): a socket that never finishes
            # it is closed after request_head_ms, as one that never finishes its headers.
            server = self._runner.server
            assert server is not None  # set by setup()
            self._tls_server = await asyncio.get_running_loop().create_server(
                server,
                config.listen_host,
                config.listen_port,
                ssl=self.tls.context,
                ssl_handshake_timeout=head_s,
            )
        if self.tls is None:
            log.warning(
                "serving plaintext http on loopback %s:%d: a dev network only; members "
                "across borders need https endpoints (docs/security.md)",
                config.listen_host,
                config.listen_port,
            )
        self.metrics.height.set(self.chain.height)
        self.peers.set_height(self.chain.height)
        await self.peers.start()
        self._spawn(self.sync.run(), "sync")
        self._spawn(self._housekeeping(), "housekeeping")
        self._spawn(self._flush_entries(), "entry-gossip")
        self.host.start()
        log.info(
            "node %s serving %s on %s:%d at height %d (chain %s, genesis %s; %s)",
            self.member_id,
            "plaintext" if self.tls is None else "TLS 1.3",
            config.listen_host,
            config.listen_port,
            self.chain.height,
            self.genesis.chain_id,
            self.genesis.hash_hex[:16],
            native.describe(),
        )

    async def stop(self) -> None:
        if hasattr(self, "events"):
            await _bounded("closing event streams", self.events.close())
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await _bounded("stopping the node's tasks", asyncio.wait(self._tasks))
        self.host.shutdown()
        # A peer or client that stops answering must not keep a SIGTERM from ending the
        # process: each step gets a bound, and what was still running is logged.
        await _bounded("closing peer links", self.peers.stop())
        if self._tls_server is not None:
            self._tls_server.close()  # no new connections; the runner ends the open ones
        if self._runner is not None:
            await _bounded("closing the HTTP server", self._runner.cleanup())
        self.store.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # These loops never return: one that raised (say sync, on a block it verified and
        # the chain still refused) is our bug, and a node without it must not run on.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.fail(exc)

    def _committed(self, done: Committed) -> None:
        """The daemon's share of every commit, whichever path made it (Chain.subscribe)."""
        block = done.block
        height = block.header.height
        self.metrics.block_commit_seconds.observe(done.seconds)
        self.metrics.decided_round.observe(done.commit.round)
        self.metrics.entries_committed.inc(len(block.entries))
        self.metrics.height.set(height)
        self.peers.set_height(height)
        self.peers.broadcast("commit", done.commit.encode())
        if block.entries:
            log.info(
                "committed height %d with %s",
                height,
                plural(len(block.entries), "entry", "entries"),
                extra={"height": height, "round": done.commit.round, "entries": len(block.entries)},
            )

    # ---- peers ----------------------------------------------------------------------

    async def on_message(self, peer: str, kind: str, payload: bytes) -> None:
        handler = self._handlers.get(kind)
        if handler is not None:
            answered = handler(peer, payload)
            if answered is not None:
                await answered

    def relayable(self, kind: str, payload: bytes) -> bool:
        """Whether a relayed message is well-formed enough to pass on (no signatures
        checked: the receivers check those, and count a forgery against nobody)."""
        check = _RELAYABLE.get(kind)
        if check is None:
            return False
        try:
            return check(payload, self.wire_limits)
        except (WireError, MessageFormatError, BlockFormatError):
            return False

    def _on_entries(self, peer: str, payload: bytes) -> None:
        try:
            wires = decode_entries(payload, self.wire_limits)
        except WireError as exc:
            self.peer_fault(peer, "entry", exc)
            return
        for code in self.chain.admit_relayed(wires, now_ms=now_ms()):
            self.metrics.entries_rejected.labels(code).inc()
        self.host.entries_pending()

    def _entry_rejected(self, entry_id: bytes, code: str, where: str) -> None:
        """Chain's RejectionHook: one (rate-limited) info line per refused entry."""
        self.rejections.rejected(time.monotonic(), code, where, entry_id.hex())
        if where == "expired":
            # Relayed and block-rule refusals are counted where they are seen (on_entries,
            # the consensus host); an entry the pool's time window drops, only here.
            self.metrics.entries_rejected.labels(code).inc()

    def _on_commit(self, peer: str, payload: bytes) -> None:
        try:
            commit = Commit.decode(payload)
        except BlockFormatError as exc:
            self.peer_fault(peer, "commit", exc)
            return
        if commit.height >= self.host.core.height:
            self.host.on_commit(commit)

    def _gossip_entries(self, entries: Sequence[SignedEntry]) -> None:
        self._outbox.extend(e.wire_bytes for e in entries)
        self.host.entries_pending()

    async def _flush_entries(self) -> None:
        while True:
            await asyncio.sleep(ENTRY_FLUSH_S)
            while self._outbox:
                batch = self._outbox[:MAX_ENTRIES_PER_GOSSIP]
                del self._outbox[:MAX_ENTRIES_PER_GOSSIP]
                self.peers.broadcast("entry", encode_entries(batch))

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.metrics.mempool.set(len(self.chain.mempool))
            self.metrics.peers.set(len(self.peers.connected()))
            self.metrics.peers_unauthenticated.set(self.peers.unauthenticated())
            self._watch(time.monotonic())
            self.host.regossip()

    def _watch(self, now: float) -> None:
        """The housekeeping tick's observations: quorum, sync, links, store, summaries."""
        metrics = self.metrics
        linked = set(self.peers.connected())
        voters = set(self.genesis.validators.ids)
        self.quorum.heard(len(linked & voters) + self.is_validator, now)
        target = self.sync.target()
        metrics.sync_target.set(target)
        metrics.blocks_behind.set(max(0, target - self.chain.height))
        for peer in self.peers.peers():
            metrics.peer_linked.labels(peer.id).set(1 if peer.connected else 0)
        if now - self._store_sampled >= STORE_SIZE_S:
            self._store_sampled = now
            metrics.store_bytes.set(dir_bytes(self.config.data_dir / "ledger"))
        self.rejections.flush(now)


class _ApiRefusals:
    """``api.ApiObserver``: the metrics count every refusal, and an entry refused at
    intake gets its line in the rejection log (the API does not know its id)."""

    def __init__(self, metrics: NodeMetrics, rejections: RejectionLog) -> None:
        self._metrics = metrics
        self._rejections = rejections

    def refused_request(self, route: str, status: int, code: str) -> None:
        self._metrics.refused_request(route, status, code)

    def refused_entry(self, code: str) -> None:
        self._metrics.refused_entry(code)
        self._rejections.rejected(time.monotonic(), code, "api")


def _relayable_entries(payload: bytes, limits: Limits) -> bool:
    decode_entries(payload, limits)
    return True


def _relayable_vote(payload: bytes, limits: Limits) -> bool:
    return isinstance(decode_message(payload), SignedVote)


def _relayable_proposal(payload: bytes, limits: Limits) -> bool:
    outline = ProposalOutline.decode(payload, limits)
    message = decode_message(outline.proposal)
    return isinstance(message, SignedProposal) and message.proposal.block == outline.block_hash


def _relayable_commit(payload: bytes, limits: Limits) -> bool:
    Commit.decode(payload)
    return True


# The gossip kinds a node relays, each with its well-formedness check; block requests
# and answers are point to point and never relayed.
_RELAYABLE: dict[str, Callable[[bytes, Limits], bool]] = {
    "entry": _relayable_entries,
    "vote": _relayable_vote,
    "proposal": _relayable_proposal,
    "commit": _relayable_commit,
}


async def _bounded(what: str, step: Awaitable[object]) -> None:
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait([task], timeout=SHUTDOWN_STEP_S)
    if task in done:
        task.result()
        return
    task.cancel()
    log.warning("shutdown: %s took over %.0f s; going on without it", what, SHUTDOWN_STEP_S)
    current = asyncio.current_task()
    for other in asyncio.all_tasks():
        if other is not current:
            frames = other.get_stack(limit=3)
            where = ", ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
            log.warning("shutdown: still running %s at %s", other.get_name(), where)


async def serve(
    config: NodeConfig, genesis: Genesis, key: SigningKey, tls: ServerTls | None = None
) -> int:
    node = Node(config, genesis, key, tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        _tune_gc()
        waits = [
            asyncio.ensure_future(node.peers.failed.wait()),
            asyncio.ensure_future(node.fatal.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        failure = node.failure or node.peers.failure
        if failure is not None:
            log.error("stopping on an internal error: %r", failure)
            return 1
        log.info("shutting down")
        return 0
    finally:
        await node.stop()


def _tune_gc() -> None:
    # Everything allocated by start-up (modules, genesis, caches) lives as long as the
    # process: freezing it keeps the collector from walking it again and again.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(config: NodeConfig, genesis: Genesis, key: SigningKey, tls: ServerTls | None = None) -> int:
    prefix = os.environ.get(PROFILE_ENV)
    if not prefix:
        return asyncio.run(serve(config, genesis, key, tls))
    # For finding hot paths under load: cProfile stats written on a clean shutdown.
    profile_path = f"{prefix}.{config.member_id}"
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(asyncio.run, serve(config, genesis, key, tls))
    finally:
        profiler.dump_stats(profile_path)
        log.info("profile written to %s", profile_path)
