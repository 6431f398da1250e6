"""The daemon's entry intake in-process: HTTP batches, gossip batches and proposals' entries.

A real node (store, HTTP server and peer manager on 127.0.0.1) started in this process,
so its pool and counters can be read directly; DE, the other member, never runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from ledger.block import PREVOTE, Block, Commit, Proposal, Vote
from ledger.codec import encode
from ledger.entry import Entry, SignedEntry
from ledger.keys import SigningKey
from node.consensus import (
    ConsensusCore,
    ProposalReceived,
    StartHeight,
    sign_proposal,
    sign_vote,
)
from node.daemon.config import load_config
from node.daemon.consensus_host import MAX_CACHED_BLOCKS, ConsensusHost
from node.daemon.gossip_payloads import (
    encode_block_request,
    encode_entries,
    encode_proposal_package,
)
from node.daemon.key_files import load_genesis, load_key
from node.daemon.node import Node
from tests import samples
from tests.cluster import Cluster, http
from tests.factories import stub_header


def _rejected(node: Node, code: str) -> float:
    value = node.metrics.registry.get_sample_value("customs_entries_rejected_total", {"code": code})
    return value or 0.0


def _certificates(chain: str, key: SigningKey, count: int, first: int = 0) -> list[SignedEntry]:
    now = int(time.time() * 1000)
    return [
        Entry(
            chain, "cert.issue", "DE", now, samples.cert_issue(f"DE-T{first + n:05d}", "DE")
        ).sign(key)
        for n in range(count)
    ]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Node, SigningKey]]:
    async with _running(tmp_path) as running:
        yield running


@contextlib.asynccontextmanager
async def _running(
    tmp_path: Path, settings: Mapping[str, int] | None = None
) -> AsyncIterator[tuple[Node, SigningKey]]:
    cluster = Cluster(tmp_path, ["CN", "DE"], validators=["CN"], settings=settings)
    config = load_config(cluster["CN"].config)
    node = Node(
        config,
        load_genesis(cluster["CN"].root / "genesis.json"),
        load_key(cluster["CN"].root / "node.key"),
    )
    await node.start()
    try:
        yield node, load_key(cluster["DE"].root / "node.key")
    finally:
        await node.stop()
        cluster.close()


async def test_gossiped_entries_reach_the_pool_and_forgeries_are_counted(node) -> None:  # type: ignore[no-untyped-def]
    # The intake rules themselves are tested on the chain (test_chain_intake.py); here,
    # that a peer's entry message reaches them and a refusal is counted by code.
    n, de_key = node
    entries = _certificates(n.genesis.chain_id, de_key, 3)
    payload = encode_entries([e.wire_bytes for e in entries])
    await n.on_message("DE", "entry", payload)
    # On an idle chain the first entries start a height at once: CN, the only validator,
    # may have committed them before the message handler returned.
    assert all(n.chain.mempool.get(e.id) == e or n.store.has_entry(e.id) for e in entries)
    await n.on_message("DE", "entry", payload)  # a relayed copy: nothing is refused
    assert _rejected(n, "bad_signature") == 0
    # A fresh entry under a broken signature (a copy of one already taken would be a
    # duplicate, known by its id before any signature is checked).
    fresh = _certificates(n.genesis.chain_id, de_key, 1, first=50)[0]
    forged = bytearray(fresh.wire_bytes)
    forged[-1] ^= 1
    await n.on_message("DE", "entry", encode_entries([bytes(forged)]))
    assert _rejected(n, "bad_signature") == 1
    assert n.chain.mempool.get(fresh.id) is None and not n.store.has_entry(fresh.id)
    await n.on_message("DE", "entry", b"\x93junk")
    assert n.peers.counters["bad_entry"] == 1


async def test_only_well_formed_messages_are_relayable(node) -> None:  # type: ignore[no-untyped-def]
    n, de_key = node
    chain = n.genesis.chain_id
    wires = [e.wire_bytes for e in _certificates(chain, de_key, 2, first=60)]
    vote = sign_vote(de_key, chain, "DE", Vote(PREVOTE, 5, 0, b"\x01" * 32))
    header = stub_header(chain=chain, height=5)
    block = Block(header, ())
    proposal = sign_proposal(de_key, chain, "DE", Proposal(5, 0, block.header.hash(), -1))
    other = sign_proposal(de_key, chain, "DE", Proposal(5, 0, b"\x02" * 32, -1))
    commit = Commit(5, 0, b"\x01" * 32, (("CN", b"\x03" * 64),))
    good = {
        "entry": encode_entries(wires),
        "vote": vote.encode(),
        "proposal": encode_proposal_package(proposal.encode(), block, None),
        "commit": commit.encode(),
    }
    for kind, payload in good.items():
        assert n.relayable(kind, payload), kind
    junk = [
        ("entry", b"\x93\x01\x02"),
        ("entry", encode([1, 2])),
        ("vote", proposal.encode()),  # a proposal is not a vote
        ("vote", b"\xc1"),
        ("proposal", encode_proposal_package(other.encode(), block, None)),  # names another
        ("proposal", encode({"block": b"x", "last_commit": None, "proposal": b"y"})),
        ("commit", vote.encode()),
        ("block_request", encode_block_request(1, 2)),  # never relayed
    ]
    for kind, payload in junk:
        assert not n.relayable(kind, payload), (kind, payload[:20])


async def test_a_proposal_nobody_can_use_is_dropped_before_its_block_is_decoded(node) -> None:  # type: ignore[no-untyped-def]
    n, de_key = node
    chain, height = n.genesis.chain_id, n.host.core.height
    # A block whose one entry would fail to decode: decoding it would count a peer fault.
    header = stub_header(chain=chain, height=height, entries=1)
    junk_block = encode({"entries": [b"not an entry"], "header": header.to_obj()})
    cn_key = n.key

    def offer(sender: str, key: SigningKey) -> None:
        proposal = Proposal(height, 0, header.hash(), -1)
        signed = sign_proposal(key, chain, sender, proposal).encode()
        n.host.on_proposal(
            "DE", encode({"block": junk_block, "last_commit": None, "proposal": signed})
        )

    def dropped(reason: str) -> float:
        labels = {"reason": reason}
        return n.metrics.registry.get_sample_value("customs_consensus_dropped_total", labels) or 0.0

    offer("DE", de_key)  # DE is a member but not the proposer (CN is the only validator)
    offer("CN", de_key)  # CN's turn, DE's signature
    assert (dropped("not_proposer"), dropped("bad_signature")) == (1, 1)
    assert n.peers.counters["bad_proposal"] == 0 and header.hash() not in n.host.blocks
    # The same package signed by CN is judged further: its block is decoded, and refused.
    offer("CN", cn_key)
    assert n.peers.counters["bad_proposal"] == 1


async def test_blocks_a_height_may_decide_stay_cached_whatever_else_arrives(node) -> None:  # type: ignore[no-untyped-def]
    n, _ = node
    chain = n.genesis.chain_id
    core = ConsensusCore(chain, "DE", None)
    core.step(StartHeight(7, n.genesis.validators))
    host = ConsensusHost(
        core,
        n.chain,
        genesis=n.genesis,
        links=n.peers,
        timers=asyncio.get_running_loop(),
        want_blocks=n.sync.want,
        decided_elsewhere=n.sync.decided_elsewhere,
        faults=n,
        metrics=n.metrics,
        limits=n.wire_limits,
    )
    decidable = Block(stub_header(chain=chain, height=7), ())
    proposal = Proposal(7, 0, decidable.header.hash(), -1)
    host._cache(decidable.header.hash(), decidable, None)
    core.step(ProposalReceived(sign_proposal(n.key, chain, "CN", proposal)))
    assert core.blocks_in_play() == {decidable.header.hash()}
    others = [
        Block(stub_header(chain=chain, height=8, time=t), ())
        for t in range(2, 2 + 2 * MAX_CACHED_BLOCKS)
    ]
    for block in others:
        host._cache(block.header.hash(), block, None)
    assert len(host.blocks) == MAX_CACHED_BLOCKS
    assert decidable.header.hash() in host.blocks
    assert others[-1].header.hash() in host.blocks and others[0].header.hash() not in host.blocks


async def test_the_proposer_commits_pooled_entries_without_verifying_them_again(
    node: tuple[Node, SigningKey], entry_verifications: list[bytes]
) -> None:
    n, de_key = node
    entries = _certificates(n.genesis.chain_id, de_key, 4, first=60)
    await n.on_message("DE", "entry", encode_entries([e.wire_bytes for e in entries]))
    assert sorted(entry_verifications) == sorted(e.entry_bytes for e in entries)
    # CN, the only validator, proposes them from its pool and commits them.
    deadline = time.monotonic() + 15
    while not all(n.store.has_entry(e.id) for e in entries):
        assert time.monotonic() < deadline, "the entries were not committed"
        await asyncio.sleep(0.05)
    assert sorted(entry_verifications) == sorted(e.entry_bytes for e in entries)


async def test_max_entries_per_request_past_1000_is_nodes_own_limit(tmp_path: Path) -> None:
    # node.toml's limit is the only one: a hard-coded 1000 once refused (as "malformed")
    # a batch the node was configured to take.
    limit = 1001
    async with _running(tmp_path, {"max_entries_per_request": limit}) as (n, de_key):
        url = f"http://127.0.0.1:{n.config.listen_port}/v1/entries"
        token = n.config.api_token_file.read_text().strip()
        entries = _certificates(n.genesis.chain_id, de_key, limit + 1)
        past = [e.to_json() for e in entries]
        refused = await asyncio.to_thread(http, "POST", url, past, token=token)
        assert (refused.status, refused.json()["code"]) == (400, "too_large")
        assert n.service.entry_status(entries[0].id) is None  # none of it admitted
        taken = await asyncio.to_thread(http, "POST", url, past[:limit], token=token)
        assert taken.status == 202, taken.body
        assert taken.json() == {"ids": [e.id_hex for e in entries[:limit]]}
