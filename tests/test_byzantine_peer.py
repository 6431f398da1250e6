"""Members that misbehave on the peer port, against real node processes.

A member's real key passes the peer handshake, so everything it sends after that reaches
the honest node's frame decoder, relay, consensus and sync handlers:

- garbage: random bytes, random msgpack, nesting past the codec's limit, and
  well-formed messages with wrong heights, forged signatures, unknown blocks and
  oversized sync requests. A handler that let an unexpected exception escape would stop
  the node (transport.py treats that as a bug), so the test watches for that as well as
  for progress;
- a liar that announces a height far ahead and never answers a block request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from ledger.block import PRECOMMIT, PREVOTE, Commit, Proposal, Vote
from ledger.codec import encode
from ledger.entry import Entry
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from node.consensus.messages import sign_proposal, sign_vote
from node.daemon.gossip_payloads import encode_block_request, encode_entries
from node.daemon.key_files import load_key
from node.peers.frames import (
    NONCE_BYTES,
    Height,
    Hello,
    Message,
    decode_frame,
    encode_frame,
)
from node.peers.handshake import DialerHandshake
from tests import samples
from tests.cluster import Cluster, NodeProcess
from tests.test_network import FOUR, assert_same_chain, submit

HONEST = ("CN", "DE", "NL")
KINDS = ("entry", "proposal", "vote", "commit", "block_request", "block_response", "status")


class Garbage:
    """Seeded payloads for every message kind, from noise to nearly valid."""

    def __init__(self, rng: random.Random, genesis: Genesis, key: SigningKey) -> None:
        self.rng = rng
        self.genesis = genesis
        self.key = key
        self.height = 1

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        choice = rng.randrange(9 if depth < 3 else 5)
        if choice == 0:
            return rng.choice([None, True, 1.5])
        if choice == 1:
            return rng.choice([0, -1, 2**63, 2**64 - 1, -(2**63)])
        if choice == 2:
            return rng.choice(["", "US", "vote", "x" * 300])
        if choice in (3, 4):
            return rng.randbytes(rng.choice([0, 32, 64, 100]))
        if choice in (5, 6):
            keys = ["block", "commit", "items", "from", "to", "type", "body", "sig", "t", "p"]
            return {rng.choice(keys): self.value(depth + 1) for _ in range(rng.randrange(4))}
        return [self.value(depth + 1) for _ in range(rng.randrange(4))]

    def packed(self) -> bytes:
        return bytes(msgpack.packb(self.value(), use_bin_type=True))

    def near(self) -> int:
        return max(1, self.height + self.rng.randrange(-2, 3))

    def payload(self, kind: str) -> bytes:
        rng, chain = self.rng, self.genesis.chain_id
        noise = rng.randrange(5)
        if noise == 0:
            return rng.randbytes(rng.randrange(300))
        if noise == 1:
            return self.packed()
        if noise == 2:
            return b"\x91" * rng.choice([33, 2000]) + b"\x00"  # past the codec's depth
        if kind == "vote":
            block = rng.choice([None, rng.randbytes(32)])
            vote = Vote(rng.choice([PREVOTE, PRECOMMIT]), self.near(), rng.randrange(3), block)
            signed = sign_vote(self.key, chain, "US", vote)
            if rng.random() < 0.5:
                return signed.encode()
            forged = {"body": vote.to_obj(), "from": "CN", "sig": signed.sig, "type": "vote"}
            return encode(forged)
        if kind == "proposal":
            round_ = rng.randrange(3)
            proposal = Proposal(self.near(), round_, rng.randbytes(32), -1)
            block = rng.choice([rng.randbytes(100), encode({"entries": [], "header": {}})])
            package = {
                "block": block,
                "last_commit": rng.choice([None, rng.randbytes(40)]),
                "proposal": sign_proposal(self.key, chain, "US", proposal).encode(),
            }
            return encode(package)
        if kind == "entry":
            wires = []
            for _ in range(rng.randrange(1, 4)):
                body = rng.choice([samples.cert_issue(f"US-Z-{rng.randrange(10**6)}", "US"), {}])
                kind_name = rng.choice(["cert.issue", "shipment.event", "no.such"])
                entry = Entry(chain, kind_name, "US", int(time.time() * 1000), body)
                wires.append(entry.sign(self.key).wire_bytes)
            return encode_entries(wires)
        if kind == "commit":
            votes = tuple(sorted({"CN": rng.randbytes(64), "US": rng.randbytes(64)}.items()))
            return Commit(self.near(), 0, rng.randbytes(32), votes).encode()
        if kind == "block_request":
            return rng.choice([encode_block_request(1, 10**9), encode({"from": 0, "to": -1})])
        items = [self.value() for _ in range(rng.randrange(3))]
        return bytes(msgpack.packb({"items": items}, use_bin_type=True))

    def frame(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.1:
            return rng.choice(
                [encode_frame(Height(h=rng.choice([0, 2**63 - 1]))), self.packed(), b"\xc1"]
            )
        kind = rng.choice([*KINDS, "no_such_kind"])
        relayed = rng.random() < 0.5
        reached = tuple(sorted(rng.sample(FOUR, rng.randrange(4)))) if relayed else ()
        return encode_frame(Message(k=kind, p=self.payload(kind), r=relayed, s=reached))


@contextlib.asynccontextmanager
async def member_link(
    session: aiohttp.ClientSession, url: str, genesis: Genesis, member_id: str, key: SigningKey
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A peer link to ``url`` authenticated as ``member_id``."""
    async with session.ws_connect(url) as ws:
        nonce = os.urandom(NONCE_BYTES)
        hello = Hello(chain=genesis.chain_id, genesis=genesis.hash, id=member_id, nonce=nonce)
        await ws.send_bytes(encode_frame(hello))
        challenge = decode_frame((await ws.receive()).data, 1 << 20)
        shake = DialerHandshake(genesis, member_id, key, nonce)
        await ws.send_bytes(encode_frame(shake.on_challenge(challenge)))
        reply = await ws.receive()
        assert reply.type == aiohttp.WSMsgType.BINARY, reply  # Ok: a member's link
        yield ws


def peer_url(node: NodeProcess) -> str:
    return node.url.replace("http://", "ws://") + "/v1/peer"


async def flood(url: str, genesis: Genesis, key: SigningKey, garbage: Garbage, frames: int) -> int:
    """Send frames as US until ``frames`` are out; redial whenever the node hangs up."""
    sent = links = 0
    async with aiohttp.ClientSession() as session:
        while sent < frames:
            async with member_link(session, url, genesis, "US", key) as ws:
                links += 1

                async def drain() -> None:  # the node's frames, until it hangs up
                    async for _ in ws:
                        pass

                reader = asyncio.create_task(drain())
                while sent < frames and not reader.done():
                    await ws.send_bytes(garbage.frame())
                    sent += 1
                    if sent % 20 == 0:
                        await asyncio.sleep(0.005)  # let the node read, judge and hang up
                reader.cancel()
    return links


@pytest.mark.slow
async def test_a_member_sending_garbage_cannot_stop_the_others(tmp_path: Path) -> None:
    with Cluster(tmp_path, FOUR) as cluster:
        cluster.start(*HONEST)
        cluster.wait_height(2, HONEST)
        genesis = cluster.genesis
        key = load_key(cluster["US"].root / "node.key")
        garbage = Garbage(random.Random(20261123), genesis, key)
        garbage.height = cluster["CN"].height()
        links = await flood(peer_url(cluster["CN"]), genesis, key, garbage, frames=3000)
        assert links > 1  # the node hung up on the faulty link, and took it back

        # The three honest validators still commit, and agree.
        entry_ids = [submit(cluster[m]) for m in HONEST]
        cluster.wait_committed(entry_ids, HONEST)
        assert_same_chain(cluster, HONEST)
        for member_id in HONEST:
            node = cluster[member_id]
            assert node.proc is not None and node.proc.poll() is None, member_id
            log = node.log_text()
            assert "Traceback" not in log and "internal error" not in log, member_id
        # CN relayed none of the junk, so DE and NL have nothing to blame CN for.
        for member_id in ("DE", "NL"):
            blamed = [
                line
                for line in cluster[member_id].log_text().splitlines()
                if "WARNING" in line and " bad " in line and " from CN" in line
            ]
            assert blamed == [], (member_id, blamed[:3])
        assert peer_events(cluster["CN"]).get("relay_refused", 0) > 0
        log = cluster["CN"].log_text()
        assert "closing link to US" in log and "from US" in log
        # ... and the operator sees the faults counted by kind in /metrics.
        events = peer_events(cluster["CN"])
        assert sum(n for e, n in events.items() if e.startswith("fault_")) >= links - 1
        assert {"bad_vote", "bad_proposal", "bad_commit"} <= set(events)


def peer_events(node: NodeProcess) -> dict[str, float]:
    prefix = 'customs_peer_events_total{event="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in node.get("/metrics").body.decode().splitlines()
        if line.startswith(prefix)
    }


@pytest.mark.slow
async def test_a_member_announcing_a_height_it_never_serves_is_ignored(tmp_path: Path) -> None:
    validators = ("CN", "DE", "NL", "JP")
    with Cluster(tmp_path, [*validators, "US"], validators=validators) as cluster:
        cluster.start(*validators)
        cluster.wait_height(2, validators)
        node, genesis = cluster["NL"], cluster.genesis
        key = load_key(cluster["US"].root / "node.key")
        async with (
            aiohttp.ClientSession() as session,
            member_link(session, peer_url(node), genesis, "US", key) as ws,
        ):

            async def lie() -> None:  # announce, read and ignore every request
                while True:
                    await ws.send_bytes(encode_frame(Height(h=10**6)))
                    with contextlib.suppress(asyncio.TimeoutError):
                        await ws.receive(timeout=0.2)

            liar = asyncio.create_task(lie())
            try:
                await asyncio.to_thread(
                    cluster.wait_until,
                    lambda: "ignoring peer US" in node.log_text(),
                    what="NL to give up on US",
                )
                # Its claim no longer counts while it is ignored: NL stops "syncing" (at
                # the end of its current pass), and the network goes on committing
                # through NL.
                await asyncio.to_thread(
                    cluster.wait_until,
                    lambda: (node.status() or {}).get("syncing") is False,
                    what="NL to stop syncing",
                    timeout=10,
                )
                status = node.status()
                assert status is not None
                assert [p["height"] for p in status["peers"] if p["id"] == "US"] == [10**6]
                entry_ids = [submit(node)]
                await asyncio.to_thread(cluster.wait_committed, entry_ids, validators)
                status = node.status()
                assert status is not None and not status["syncing"], status
            finally:
                liar.cancel()
        assert "did not answer a block request" in node.log_text()
