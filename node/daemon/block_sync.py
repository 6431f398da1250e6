"""Catching up: fetch blocks with their commits from peers, verify, execute, store.

A node is behind when a peer announces a greater height, when consensus decides a block
it never received, or when it learns a commit for a later height. Each fetched block is
accepted only if its commit proves that a quorum of *our* genesis validators
precommitted exactly that header, and re-executing its entries gives the header's
roots (entries still pooled from intake keep their signature verdict, as in a proposal).
A peer that sends anything else is counted as faulty and another is asked.

A peer's announced height is only a hint, and any member can lie about it. A peer that
does not answer a request, answers with nothing it claimed to have, or sends an invalid
block is ignored for a while (doubling each time, reset by a useful answer): neither its
height nor a request to it then holds up catching up, and one liar cannot keep the node
reporting ``syncing`` for ever.

Serving others is on a budget per peer, so that a member asking for blocks over and
over cannot stall this node (issue 18): a token bucket of ``sync_requests_per_s``
requests (a second's worth at most saved up), answers only while fewer than
``sync_answer_bytes`` are queued to that peer (an answer is cut to what fits), and a
turn of the event loop between the blocks of an answer, so consensus and the API are
served while it is read. A request over budget is dropped, counted as the peer event
``dropped_block_request`` and logged at most once per ``DROP_LOG_S`` per peer. An honest
syncer has one request outstanding at a time and never comes near either budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ledger.block import verify_commit
from ledger.errors import CommitError, LedgerError
from ledger.genesis import Genesis
from node.daemon.block_maker import InvalidBlock
from node.daemon.chain import Chain
from node.daemon.gossip_payloads import (
    MAX_SYNC_BLOCKS,
    Limits,
    SyncItem,
    WireError,
    decode_block_request,
    decode_block_response,
    encode_block_request,
    encode_block_response,
)
from node.daemon.metrics import NodeMetrics
from node.peers import PeerStatus
from node.text import plural

if TYPE_CHECKING:
    from node.daemon.parts import Faults, PeerView

__all__ = ["RequestBudget", "Syncer", "answer_room"]

log = logging.getLogger("customs.sync")

REQUEST_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.5
SUSPECT_MIN_S = 30.0
# How long a peer that has linked but not yet announced its height counts as "maybe
# ahead" (decided_elsewhere): long enough for its first frame, short enough that a
# member who never announces cannot silence us.
HEIGHT_GRACE_S = 2.0
SUSPECT_MAX_S = 600.0
BETWEEN_BLOCKS_S = 0.005
DROP_LOG_S = 10.0
# An answer is not started with less room than this under ``sync_answer_bytes``.
MIN_ANSWER_ROOM = 64 * 1024


def answer_room(queued: int, limit: int) -> int | None:
    """Bytes an answer may take with ``queued`` bytes already on their way to the peer
    and ``limit`` (``sync_answer_bytes``) the most there may be; None: drop the request."""
    room = limit - queued
    return room if room >= MIN_ANSWER_ROOM else None


class RequestBudget:
    """A token bucket per peer: ``rate`` requests a second, at most ``rate`` saved up."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # peer -> (tokens, at)

    def take(self, peer: str, now: float) -> bool:
        tokens, at = self._buckets.get(peer, (float(self.rate), now))
        tokens = min(float(self.rate), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1.0, now)
        return True


class Syncer:
    """Fetches what the chain lacks from ``peers`` and answers their requests; commits
    through ``chain`` like a decision of our own."""

    def __init__(
        self,
        chain: Chain,
        genesis: Genesis,
        peers: PeerView,
        *,
        faults: Faults,
        metrics: NodeMetrics,
        limits: Limits,
        requests_per_s: int,
        answer_bytes: int,
    ) -> None:
        self.chain = chain
        self.genesis = genesis
        self.peers = peers
        self.faults = faults
        self.metrics = metrics
        self.limits = limits
        self.wanted = 0
        self.syncing = False
        self._wake = asyncio.Event()
        self._reply: asyncio.Future[list[SyncItem]] | None = None
        self._asked: str | None = None
        self._rotation = 0
        # peer -> (ignored until this monotonic time, how long it was ignored last time)
        self._suspects: dict[str, tuple[float, float]] = {}
        # node.toml's sync_requests_per_s and sync_answer_bytes: serving others' requests.
        self._budget = RequestBudget(requests_per_s)
        self._answer_bytes = answer_bytes
        # peer -> (requests dropped since the last line about it, when that line was)
        self._dropped: dict[str, tuple[int, float]] = {}
        # peer -> when it was first seen linked without a height (decided_elsewhere)
        self._unannounced: dict[str, float] = {}

    def want(self, height: int) -> None:
        """Make sure blocks up to ``height`` get fetched."""
        if height > self.wanted:
            self.wanted = height
            self._wake.set()

    def decided_elsewhere(self, height: int) -> bool:
        """True while a trusted linked peer has announced a stored block at ``height``
        or above, or has linked in the last ``HEIGHT_GRACE_S`` without announcing its
        height yet (a link's first frame is its height): ``height`` is then decided,
        or may be, and only catching up will do."""
        now = time.monotonic()
        linked = set()
        for peer in self._connected(trusted=True):
            linked.add(peer.id)
            if peer.height is None:
                first = self._unannounced.setdefault(peer.id, now)
                if now - first < HEIGHT_GRACE_S:
                    return True
            elif peer.height >= height:
                return True
        for peer_id in set(self._unannounced) - linked:
            del self._unannounced[peer_id]
        return False

    @property
    def catching_up(self) -> bool:
        """Fetching, or known to be more than a block behind a trusted peer: the peers'
        heights arrive before the fetch loop next wakes, and a node that just linked to
        peers far ahead is not ready in between (``/readyz``). One block behind is how
        a node stands for a moment after each commit elsewhere."""
        return self.syncing or self.target() > self.chain.height + 1

    def target(self) -> int:
        heights = [p.height for p in self._connected(trusted=True) if p.height]
        return max([self.wanted, *heights])

    def _connected(self, *, trusted: bool) -> list[PeerStatus]:
        now = time.monotonic()
        return [
            p
            for p in self.peers.peers()
            if p.connected and not (trusted and self._suspects.get(p.id, (0.0, 0.0))[0] > now)
        ]

    def _suspect(self, peer: str) -> None:
        _, last = self._suspects.get(peer, (0.0, 0.0))
        pause = min(SUSPECT_MAX_S, max(SUSPECT_MIN_S, 2 * last))
        self._suspects[peer] = (time.monotonic() + pause, pause)
        log.info("ignoring peer %s for %.0f s after a failed block request", peer, pause)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)
            self._wake.clear()
            while self.target() > self.chain.height:
                self.syncing = True
                if not await self._fetch_once():
                    await asyncio.sleep(POLL_INTERVAL_S)
                    break
            self.syncing = False

    async def _fetch_once(self) -> bool:
        chain = self.chain
        first = chain.height + 1
        last = min(self.target(), first + MAX_SYNC_BLOCKS - 1)
        picked = self._pick_peer(first)
        if picked is None:
            return False
        peer, claimed = picked
        loop = asyncio.get_running_loop()
        self._reply, self._asked = loop.create_future(), peer
        if not self.peers.send(peer, "block_request", encode_block_request(first, last)):
            return False
        try:
            items = await asyncio.wait_for(self._reply, REQUEST_TIMEOUT_S)
        except TimeoutError:
            log.info("peer %s did not answer a block request for %d..%d", peer, first, last)
            self._suspect(peer)
            return False
        except WireError:
            self._suspect(peer)  # on_response has logged and counted it
            return False
        finally:
            self._reply, self._asked = None, None
        applied, faulty = await self._apply(peer, items)
        if applied:
            log.info(
                "synced %s from %s, now at height %d",
                plural(applied, "block"),
                peer,
                chain.height,
                extra={"peer": peer, "height": chain.height, "blocks": applied},
            )
        if faulty or (claimed and chain.height < first):
            # An invalid block, or nothing of what it announced (and not because consensus
            # got there first).
            self._suspect(peer)
        elif applied:
            self._suspects.pop(peer, None)
        return applied > 0

    def _pick_peer(self, height: int) -> tuple[str, bool] | None:
        """A connected peer to ask, and whether it announced ``height``: those that did
        first, peers not under suspicion before the others."""
        for trusted in (True, False):
            peers = self._connected(trusted=trusted)
            for claimed in (True, False):
                ready = sorted(
                    p.id
                    for p in peers
                    if not claimed or (p.height is not None and p.height >= height)
                )
                if ready:
                    self._rotation += 1
                    return ready[self._rotation % len(ready)], claimed
        return None

    async def _apply(self, peer: str, items: list[SyncItem]) -> tuple[int, bool]:
        """(blocks stored, whether the answer held an invalid one)."""
        chain, genesis = self.chain, self.genesis
        applied = 0
        for position, item in enumerate(items):
            if position:
                # An answer may hold megabytes of entries to verify and execute. Between
                # blocks the loop serves what waits (a request takes several of its turns:
                # accept, read, answer), so the API and peer links stay responsive.
                await asyncio.sleep(BETWEEN_BLOCKS_S)
            header = item.block.header
            if header.height != chain.height + 1:
                continue  # an answer overtaken by consensus; harmless
            try:
                verify_commit(
                    item.commit,
                    genesis.validators,
                    genesis.chain_id,
                    height=header.height,
                    block=header.hash(),
                )
                staged = chain.check(item.block, item.last_commit, now_ms=None)
            except (CommitError, InvalidBlock, LedgerError) as exc:
                self.faults.peer_fault(peer, "block_response", exc)
                return applied, True
            # The same path as a decision of our own: the chain tells consensus, which
            # starts the next height before this returns.
            chain.commit(item.block, item.commit, staged, item.last_commit)
            self.metrics.synced_blocks.inc()
            applied += 1
        return applied, False

    # ---- peer messages --------------------------------------------------------------

    def on_response(self, peer: str, payload: bytes) -> None:
        awaited = self._reply is not None and not self._reply.done() and peer == self._asked
        try:
            items = decode_block_response(payload, self.limits)
        except WireError as exc:
            self.faults.peer_fault(peer, "block_response", exc)
            if awaited and self._reply is not None:
                self._reply.set_exception(exc)
            return
        if awaited and self._reply is not None:
            self._reply.set_result(items)

    async def on_request(self, peer: str, payload: bytes) -> None:
        try:
            request = decode_block_request(payload)
        except WireError as exc:
            self.faults.peer_fault(peer, "block_request", exc)
            return
        room = self._room_for(peer)
        if room is None:
            return
        store = self.chain.store
        budget = min(self.limits.max_payload_bytes // 2, room)
        items: list[SyncItem] = []
        with store.snapshot() as view:
            for height in range(request.first, min(request.last, view.height) + 1):
                if items:
                    # Reading and decoding a block can take milliseconds: consensus and
                    # the API get their turns between the blocks of an answer.
                    await asyncio.sleep(0)
                block, commit = view.get_block(height), view.get_commit(height)
                if block is None or commit is None:
                    break
                last_commit = view.get_commit(height - 1) if height > 1 else None
                size = sum(len(e.wire_bytes) for e in block.entries) + 4096
                if items and size > budget:
                    break
                budget -= size
                items.append(SyncItem(block, commit, last_commit))
        self.peers.send(peer, "block_response", encode_block_response(items))

    def _room_for(self, peer: str) -> int | None:
        """Bytes an answer to ``peer`` may take now; None if its request is dropped."""
        now = time.monotonic()
        queued = self.peers.queued_bytes(peer)
        if queued is None:
            return None  # the link is gone: nobody to answer
        room = answer_room(queued, self._answer_bytes)
        if room is not None and self._budget.take(peer, now):
            return room
        self.peers.counters["dropped_block_request"] += 1
        count, logged = self._dropped.get(peer, (0, -DROP_LOG_S))
        count += 1
        if now - logged >= DROP_LOG_S:
            log.warning(
                "dropped %s from %s over its budget (%d a second, %d bytes queued to it)",
                plural(count, "block request"),
                peer,
                self._budget.rate,
                queued,
                extra={"peer": peer, "count": count, "code": "dropped_block_request"},
            )
            count, logged = 0, now
        self._dropped[peer] = (count, logged)
        return None
