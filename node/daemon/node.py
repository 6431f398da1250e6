"""``customs-node run``: one member's node — store, consensus, peers, sync and HTTP API.

Start-up order: open the store (refusing a store in use or made for another genesis),
restore the consensus signing state, serve HTTP (API and peer route on one port),
start peers and sync, then start consensus at the height after the store's head.
Shutdown (SIGTERM/SIGINT) reverses it; LevelDB's synced batches make kill -9 safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import logging
import os
import signal
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from aiohttp import web

from contracts import Rejection, check_entry_stateless
from ledger.block import Block, Commit
from ledger.entry import SignedEntry, decode_wire
from ledger.errors import BlockFormatError, EntryError
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
from node.daemon.block_maker import BlockMaker, Proposed
from node.daemon.block_sync import Syncer
from node.daemon.chain import Chain, Committed
from node.daemon.config import NodeConfig, peer_urls
from node.daemon.consensus_host import SIGNING_STATE_KEY, ConsensusHost, now_ms
from node.daemon.gossip_payloads import (
    MAX_ENTRIES_PER_GOSSIP,
    Limits,
    ProposalOutline,
    WireError,
    decode_entries,
    encode_entries,
    entry_id_of_wire,
)
from node.daemon.logs import redact_secrets
from node.daemon.mempool import DuplicateEntry, Mempool, MempoolError, MempoolFull
from node.daemon.metrics import NodeMetrics
from node.daemon.queries import Service
from node.daemon.tls import ServerTls
from node.peers import PeerManager, PeerOptions, PeerTls

__all__ = ["Node", "run"]

log = logging.getLogger("customs.node")

ENTRY_FLUSH_S = 0.02
PROFILE_ENV = "CUSTOMS_NODE_PROFILE"
SHUTDOWN_STEP_S = 5.0
HOUSEKEEPING_S = 0.5
MAX_REMEMBERED_REJECTIONS = 100_000
# CPython's default (700, 10, 10) runs a young collection every 700 container
# allocations and a full one every 70,000, each walking every live object: with a full
# mempool and the store's caches that was ~6% of a node's CPU under load, for almost no
# cyclic garbage (entries, blocks and messages are freed by reference counting).
GC_THRESHOLDS = (50_000, 20, 100)


class Node:
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
        params = genesis.params
        self.wire_limits = Limits(
            max_entry_bytes=params.max_entry_bytes,
            max_block_entries=params.max_block_entries,
            max_payload_bytes=config.limits.max_frame_bytes,
        )
        self.mempool = Mempool(
            max_entries=config.limits.mempool_max_entries,
            max_bytes=config.limits.mempool_max_bytes,
            entry_window_ms=params.entry_window_ms,
        )
        self.rejected: OrderedDict[bytes, tuple[str, str]] = OrderedDict()
        self.store: Store  # read freely; written only through ``chain``
        self.chain: Chain
        self.host: ConsensusHost
        self.peers: PeerManager
        self.sync = Syncer(
            self,
            requests_per_s=config.limits.sync_requests_per_s,
            answer_bytes=config.limits.sync_answer_bytes,
        )
        self.service = Service(self)
        self._outbox: list[bytes] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._tls_server: asyncio.Server | None = None
        self.fatal = asyncio.Event()
        self.failure: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        log.error("internal error, stopping: %r", exc)
        if self.failure is None:
            self.failure = exc
        self.fatal.set()

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        self.store = Store.open(config.data_dir / "ledger", self.genesis)
        self.chain = Chain(self.store, BlockMaker(self.store, self.genesis))
        self.chain.subscribe(self._committed)
        raw = self.store.get_raw(SIGNING_STATE_KEY)
        restored = SigningState.decode(raw) if raw is not None else None
        is_validator = self.genesis.validators.index_of(self.member_id) is not None
        core = ConsensusCore(
            self.genesis.chain_id,
            self.member_id,
            self.key if is_validator else None,
            timeouts=config.timeouts.consensus(),
            restored=restored,
        )
        # Subscribed last (see Chain.subscribe): consensus moves on after the bookkeeping.
        self.host = ConsensusHost(self, core)
        self.peers = PeerManager(
            self.genesis,
            self.member_id,
            self.key,
            peer_urls(config, self.genesis),
            self.on_message,
            PeerOptions.from_config(config),
            relayable=self.relayable,
            tls=PeerTls(certificate=None if self.tls is None else self.tls.certificate),
        )
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
            observer=self.metrics,
        )
        self.peers.attach(app)
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
        self.metrics.height.set(self.store.height)
        self.peers.set_height(self.store.height)
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
            self.store.height,
            self.genesis.chain_id,
            self.genesis.hash_hex[:16],
            native.describe(),
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await _bounded("stopping the node's tasks", asyncio.wait(self._tasks))
        if hasattr(self, "host"):
            self.host.shutdown()
        # A peer or client that stops answering must not keep a SIGTERM from ending the
        # process: each step gets a bound, and what was still running is logged.
        if hasattr(self, "peers"):
            await _bounded("closing peer links", self.peers.stop())
        if self._tls_server is not None:
            self._tls_server.close()  # no new connections; the runner ends the open ones
        if self._runner is not None:
            await _bounded("closing the HTTP server", self._runner.cleanup())
        if hasattr(self, "store"):
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

    # ---- blocks ---------------------------------------------------------------------

    def build_proposal(self, height: int, last_commit: Commit | None) -> Proposed:
        """Our block for ``height``; StaleHeight unless that is the chain's next height."""
        now = now_ms()
        for entry_id in self.mempool.drop_stale(now):
            self._remember_rejection(entry_id, "stale", "entry expired in the mempool")
        candidates = self.mempool.reap(self.genesis.params.max_block_entries)
        verified = frozenset(e.id for e in candidates)
        proposed = self.chain.propose(
            height,
            time_ms=now,
            proposer=self.member_id,
            candidates=candidates,
            verified=verified,
            last_commit=last_commit,
        )
        for rejected in proposed.result.rejected:
            if rejected.entry_id is not None:
                self._remember_rejection(rejected.entry_id, rejected.code, rejected.message)
                self.mempool.remove([rejected.entry_id])
                self.metrics.entries_rejected.labels(rejected.code).inc()
        return proposed

    def _committed(self, done: Committed) -> None:
        """The daemon's share of every commit, whichever path made it (Chain.subscribe)."""
        block = done.block
        self.mempool.remove(e.id for e in block.entries)
        height = block.header.height
        self.metrics.block_commit_seconds.observe(done.seconds)
        self.metrics.entries_committed.inc(len(block.entries))
        self.metrics.height.set(height)
        self.peers.set_height(height)
        self.peers.broadcast("commit", done.commit.encode())
        if block.entries:
            log.info("committed height %d with %d entries", height, len(block.entries))

    # ---- entries --------------------------------------------------------------------

    def _pool(self, entry: SignedEntry, *, gossip: bool) -> str:
        """Pool an entry that is checked and not committed; queue it for gossip."""
        entry_id = entry.id
        try:
            self.mempool.add(entry, now_ms=now_ms())
        except DuplicateEntry:
            return entry_id.hex()  # resubmitting a pending entry is harmless
        except MempoolError as exc:
            raise Rejection(getattr(exc, "code", "invalid_body"), str(exc)) from exc
        self.rejected.pop(entry_id, None)
        if gossip:
            self._outbox.append(entry.wire_bytes)
        return entry_id.hex()

    def pool_verified(self, block: Block) -> frozenset[bytes]:
        """Ids of ``block``'s entries verified on intake: re-executing the block, whether
        proposed or fetched by sync, reuses that verdict instead of verifying again.

        Only the exact wire entry (id and signature) that was verified counts.
        """
        mempool = self.mempool
        return frozenset(e.id for e in block.entries if mempool.signature_verified(e))

    def pool_proposed(self, entries: Iterable[SignedEntry]) -> None:
        """Pool the entries of a proposal that passed re-execution, unless pending.

        Re-execution ran every rule on them, signatures included: pooled, their gossip
        copies that arrive later cost a hash instead of a second decode and verification,
        and they stay pending should that proposal not be the one committed.
        """
        now = now_ms()
        for entry in entries:
            if entry.id not in self.mempool:
                with contextlib.suppress(MempoolError):
                    self.mempool.add(entry, now_ms=now)

    def admit_batch(self, entries: Sequence[SignedEntry]) -> list[str]:
        """Admit a client's stateless-checked batch whole or not at all.

        Every check that pooling could fail on runs first, so a refused batch leaves the
        pool unchanged and the client can resubmit all of it (DESIGN §12).
        """
        now = now_ms()
        new: dict[bytes, SignedEntry] = {}
        for i, entry in enumerate(entries):
            prefix = f"entry {i}: " if len(entries) > 1 else ""
            if self.store.has_entry(entry.id):
                raise Rejection("duplicate", f"{prefix}entry {entry.id_hex} is already committed")
            if not self.mempool.is_fresh(entry.entry.ts, now):
                window = self.mempool.entry_window_ms
                raise Rejection(
                    "stale", f"{prefix}ts {entry.entry.ts} is over {window} ms from now"
                )
            if entry.id not in self.mempool:
                new[entry.id] = entry
        size = sum(len(e.wire_bytes) for e in new.values())
        pool = self.mempool
        if len(pool) + len(new) > pool.max_entries:
            raise MempoolFull(
                next(iter(new)), "entries", f"{len(new)} more entries exceed {pool.max_entries}"
            )
        if pool.size_bytes + size > pool.max_bytes:
            raise MempoolFull(
                next(iter(new)), "bytes", f"{size} more bytes exceed {pool.max_bytes}"
            )
        return [self._pool(entry, gossip=True) for entry in entries]

    def _remember_rejection(self, entry_id: bytes, code: str, message: str) -> None:
        self.rejected[entry_id] = (code, message)
        self.rejected.move_to_end(entry_id)
        while len(self.rejected) > MAX_REMEMBERED_REJECTIONS:
            self.rejected.popitem(last=False)

    async def _flush_entries(self) -> None:
        while True:
            await asyncio.sleep(ENTRY_FLUSH_S)
            while self._outbox:
                batch = self._outbox[:MAX_ENTRIES_PER_GOSSIP]
                del self._outbox[:MAX_ENTRIES_PER_GOSSIP]
                self.peers.broadcast("entry", encode_entries(batch))

    # ---- peers ----------------------------------------------------------------------

    async def on_message(self, peer: str, kind: str, payload: bytes) -> None:
        if kind == "entry":
            self._on_entries(peer, payload)
        elif kind == "proposal":
            self.host.on_proposal(peer, payload)
        elif kind == "vote":
            self.host.on_vote(peer, payload)
        elif kind == "commit":
            self._on_commit(peer, payload)
        elif kind == "block_request":
            await self.sync.on_request(peer, payload)
        elif kind == "block_response":
            self.sync.on_response(peer, payload)

    def relayable(self, kind: str, payload: bytes) -> bool:
        """Whether a relayed message is well-formed enough to pass on (no signatures
        checked: the receivers check those, and count a forgery against nobody)."""
        try:
            if kind == "entry":
                decode_entries(payload, self.wire_limits)
            elif kind == "vote":
                return isinstance(decode_message(payload), SignedVote)
            elif kind == "proposal":
                outline = ProposalOutline.decode(payload, self.wire_limits)
                message = decode_message(outline.proposal)
                return (
                    isinstance(message, SignedProposal)
                    and message.proposal.block == outline.block_hash
                )
            elif kind == "commit":
                Commit.decode(payload)
            else:
                return False
        except (WireError, MessageFormatError, BlockFormatError):
            return False
        return True

    def _on_entries(self, peer: str, payload: bytes) -> None:
        try:
            wires = decode_entries(payload, self.wire_limits)
        except WireError as exc:
            self.peer_fault(peer, "entry", exc)
            return
        limit = self.genesis.params.max_entry_bytes
        for wire in wires:
            # Relays and proposals deliver an entry more than once: one already pooled
            # (these exact bytes) or committed costs a hash, not a decode and a check.
            pooled = self.mempool.get(entry_id := entry_id_of_wire(wire))
            if (pooled is not None and pooled.wire_bytes == wire) or self.store.has_entry(entry_id):
                continue
            try:
                entry = decode_wire(wire, limit)
            except EntryError as bad_entry:
                self.metrics.entries_rejected.labels(bad_entry.code).inc()
                continue
            try:
                self._pool(check_entry_stateless(entry, self.genesis), gossip=False)
            except Rejection as rejection:
                self.metrics.entries_rejected.labels(rejection.code).inc()

    def _on_commit(self, peer: str, payload: bytes) -> None:
        try:
            commit = Commit.decode(payload)
        except BlockFormatError as exc:
            self.peer_fault(peer, "commit", exc)
            return
        if commit.height >= self.host.core.height:
            self.host.on_commit(commit)

    def peer_fault(self, peer: str, kind: str, exc: BaseException) -> None:
        self.peers.counters[f"bad_{kind}"] += 1
        log.warning("bad %s from %s: %s", kind, peer, exc)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.metrics.mempool.set(len(self.mempool))
            self.metrics.peers.set(len(self.peers.connected()))
            self.metrics.peers_unauthenticated.set(self.peers.unauthenticated())
            self.host.regossip()


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
