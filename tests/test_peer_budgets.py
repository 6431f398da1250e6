"""Issue 18 against real node processes: no way in or down for outsiders.

- sockets that upgrade to ``/v1/peer`` and never send a hello, reopened when closed, used
  to fill ``max_peer_connections`` on every node; a restarted member then got 503 from all
  of them and stayed isolated. They now take at most ``max_unauthenticated_peers``;
- 16 MiB "hellos" used to be buffered whole (16 at once took a node from 136 to 613 MB
  resident); before it authenticates a peer's frame is at most a handshake's size;
- a member asking for blocks over and over used to get every answer, synchronously (300
  requests of 30 bytes brought back 86 MB and stalled the API for 4 s); it now gets
  ``sync_requests_per_s`` answers a second, the rest are dropped and counted.

Every attack here is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from node.daemon.block_sync import MIN_ANSWER_ROOM, RequestBudget, answer_room
from node.daemon.gossip_payloads import encode_block_request
from node.daemon.key_files import load_key
from node.peers.frames import Message, decode_frame, encode_frame
from tests.cluster import Cluster, NodeProcess
from tests.test_byzantine_peer import member_link, peer_events, peer_url
from tests.test_network import FOUR, submit

HONEST = ("CN", "DE", "NL")
REOPEN_S = 0.5  # the attacker reopens a socket at most this often


def gauge(node: NodeProcess, name: str) -> float:
    for line in node.get("/metrics").body.decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


# ---- slots ---------------------------------------------------------------------------


@dataclass
class Flood:
    opened: int = 0
    refused: int = 0  # 503
    down: int = 0  # no connection


async def hold_slot(url: str, source: str, stop: asyncio.Event, flood: Flood) -> None:
    """One idle peer socket from ``source``, until ``stop``: reopened as soon as the node
    closes it or refuses it, at most once per REOPEN_S; a node that is down is polled
    every 10 ms, so that the socket is back the moment the node is."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    timeout = aiohttp.ClientWSTimeout(ws_close=2.0)
    async with aiohttp.ClientSession(connector=connector) as session:
        attempt = 0.0
        while not stop.is_set():
            pause = attempt + REOPEN_S - time.monotonic()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                continue
            try:
                async with session.ws_connect(url, autoping=False, timeout=timeout) as ws:
                    attempt = time.monotonic()
                    flood.opened += 1
                    receive = asyncio.ensure_future(ws.receive())
                    halt = asyncio.ensure_future(stop.wait())
                    await asyncio.wait([receive, halt], return_when=asyncio.FIRST_COMPLETED)
                    receive.cancel()
                    halt.cancel()
            except aiohttp.WSServerHandshakeError:
                attempt = time.monotonic()
                flood.refused += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                flood.down += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.01)


def linked_to_all(node: NodeProcess, others: tuple[str, ...]) -> bool:
    status = node.status()
    if status is None:
        return False
    return {p["id"] for p in status["peers"] if p["connected"]} >= set(others)


@pytest.mark.slow
async def test_idle_sockets_on_every_node_cannot_isolate_a_restarted_member(
    tmp_path: Path,
) -> None:
    # 24 slots a node, 24 idle sockets a node from 12 addresses (before: every slot).
    with Cluster(tmp_path, FOUR, settings={"max_peer_connections": 24}) as cluster:
        cluster.start()
        cluster.wait_height(2)
        stop, flood = asyncio.Event(), Flood()
        keepers = [
            asyncio.create_task(
                hold_slot(peer_url(cluster[m]), f"127.0.0.{2 + i // 2}", stop, flood)
            )
            for m in FOUR
            for i in range(24)
        ]
        try:
            async with asyncio.timeout(90):
                await asyncio.sleep(1.5)  # the flood is in place
                await asyncio.to_thread(cluster.stop, "DE")
                restarted = time.monotonic()
                await asyncio.to_thread(cluster.start, "DE")  # returns once DE serves HTTP
                others = ("CN", "NL", "US")
                while not linked_to_all(cluster["DE"], others):
                    assert time.monotonic() - restarted < 30, "DE still isolated after 30 s"
                    await asyncio.sleep(0.05)
                link_s = time.monotonic() - restarted
                print(f"\nDE linked to all three {link_s:.2f} s after its restart; {flood}")
                # How soon is a figure (printed), not an assertion: what fails on the old
                # code is below, the slots the idle sockets took from members.
                entry = submit(cluster["DE"])
                await asyncio.to_thread(cluster.wait_committed, [entry])
                for member_id in FOUR:
                    node = cluster[member_id]
                    events = peer_events(node)
                    assert events.get("refused_connection_limit", 0) == 0, (member_id, events)
                    assert gauge(node, "customs_peers_unauthenticated") <= 16, member_id
                    assert "Traceback" not in node.log_text(), member_id
                assert flood.opened >= 4 * 24  # the flood was real
                assert peer_events(cluster["CN"])["unauthenticated_displaced_budget"] > 0
        finally:
            stop.set()
            await asyncio.gather(*keepers, return_exceptions=True)


# ---- frames before authentication ----------------------------------------------------


async def send_huge_frame(port: int, size: int, source: str) -> int:
    """Upgrade a raw socket to /v1/peer and send one binary frame declaring ``size``
    bytes; return how many payload bytes went out before the node hung up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /v1/peer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    # FIN + binary, masked with a zero key (so the payload goes out as it is), 64-bit length.
    writer.write(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", size) + bytes(4))
    chunk = memoryview(b"\x01" * (1 << 20))
    sent = 0
    try:
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            writer.write(part)
            await writer.drain()
            sent += len(part)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return sent


def peak_rss_mb(node: NodeProcess) -> float:
    assert node.proc is not None
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
async def test_sixteen_huge_hellos_do_not_grow_a_node(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["CN"]) as cluster:
        cluster.start()
        cluster.wait_height(2)
        node = cluster["CN"]
        before = peak_rss_mb(node)
        size = 16 * 1024 * 1024 - 16  # under max_frame_bytes: before, buffered whole
        async with asyncio.timeout(60):
            # From 16 addresses: all 16 fit the unauthenticated budget at once.
            sent = await asyncio.gather(
                *(send_huge_frame(node.port, size, f"127.0.0.{2 + i}") for i in range(16))
            )
        await asyncio.to_thread(
            cluster.wait_until,
            lambda: peer_events(node).get("handshake_inbound_failed", 0) == 16,
            what="16 refusals",
            timeout=20,
        )
        after = peak_rss_mb(node)
        print(f"\npeak RSS {before:.0f} MB -> {after:.0f} MB; payload bytes sent {sent}")
        assert after - before < 48, (before, after)
        # Each refused at its frame's header, before the payload was buffered.
        assert peer_events(node)["handshake_inbound_frame_too_large"] == 16
        assert node.status() is not None
        assert "Traceback" not in node.log_text()


# ---- block requests ------------------------------------------------------------------


def test_the_request_budget_allows_its_rate_and_refuses_one_past_it() -> None:
    budget = RequestBudget(4)
    assert [budget.take("US", 100.0) for _ in range(5)] == [True] * 4 + [False]
    assert budget.take("DE", 100.0)  # per peer
    assert not budget.take("US", 100.125)  # half a token back
    assert budget.take("US", 100.25)  # one token back
    assert not budget.take("US", 100.25)
    # Idle for a minute: a second's worth saved, not sixty.
    assert sum(budget.take("US", 160.0) for _ in range(20)) == 4


def test_an_answer_is_started_only_with_room_under_sync_answer_bytes() -> None:
    limit = 16 * 1024 * 1024
    assert answer_room(0, limit) == limit
    assert answer_room(limit - MIN_ANSWER_ROOM, limit) == MIN_ANSWER_ROOM  # at the limit
    assert answer_room(limit - MIN_ANSWER_ROOM + 1, limit) is None  # one byte past it
    assert answer_room(limit + 5, limit) is None


@contextlib.contextmanager
def api_latency(node: NodeProcess) -> Iterator[list[float]]:
    """/v1/status timed every 50 ms in a thread while the block runs."""
    samples: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            reply = node.get("/v1/status", timeout=30)
            assert reply.status == 200
            samples.append(time.perf_counter() - started)
            stop.wait(0.05)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(35)


@pytest.mark.slow
@pytest.mark.parametrize("paced", [False, True], ids=["all-at-once", "100-a-second"])
async def test_a_member_flooding_block_requests_gets_its_budget_and_no_more(
    tmp_path: Path, paced: bool
) -> None:
    with Cluster(tmp_path, FOUR) as cluster:
        cluster.start(*HONEST)
        node, genesis = cluster["CN"], cluster.genesis
        entries = [submit(cluster[HONEST[i % 3]]) for i in range(150)]
        cluster.wait_committed(entries, HONEST)
        cluster.wait_height(30, HONEST)
        key = load_key(cluster["US"].root / "node.key")
        requests, answers, received = 300, 0, 0
        with api_latency(node) as latency:
            async with (
                asyncio.timeout(90),
                aiohttp.ClientSession() as session,
                member_link(session, peer_url(node), genesis, "US", key) as ws,
            ):
                started = time.monotonic()
                request = encode_frame(
                    Message(k="block_request", p=encode_block_request(1, 10**6), r=False)
                )
                for sent in range(requests):  # at once, or 100 a second for three seconds
                    await ws.send_bytes(request)
                    if paced and sent % 10 == 9:
                        await asyncio.sleep(0.1)
                last = time.monotonic()
                # The answers (among the link's gossip), until none for three seconds.
                while time.monotonic() - last < 3.0:
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except TimeoutError:
                        continue
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    frame = decode_frame(msg.data, 1 << 25)
                    if isinstance(frame, Message) and frame.k == "block_response":
                        answers += 1
                        received += len(msg.data)
                        last = time.monotonic()
                elapsed = last - started
        worst = max(latency)
        print(
            f"\n{answers} answers ({received / 1e6:.1f} MB) to {requests} requests in "
            f"{elapsed:.1f} s; API latency max {worst * 1000:.0f} ms over {len(latency)}"
        )
        # A second's worth at once, then ten a second (before: all 300, 26 MB, and the
        # API stalled for 1.7 s by the 300 at once).
        assert answers <= 10 + 10 * elapsed + 1, (answers, elapsed)
        if paced:
            assert answers >= 20, answers  # the bucket refills
        assert peer_events(node)["dropped_block_request"] == requests - answers
        # The API's latency is printed above as a figure; speed is not asserted here.
        lines = [
            ln
            for ln in node.log_text().splitlines()
            if re.search(r"dropped \d+ block requests? from US", ln)
        ]
        assert 1 <= len(lines) <= elapsed / 10 + 1, lines
        # The honest members go on committing through CN.
        entry = submit(node)
        await asyncio.to_thread(cluster.wait_committed, [entry], HONEST)
