"""Catching up trusts nothing a peer sends: each block needs our validators' quorum and
must re-execute to its header's roots.

US, a member without the validator role (so it only ever advances by sync), runs in
this process with a real store and real signatures. A source chain is built beside it
by the same BlockMaker and signed by the validators' real keys. Answers to US's block
requests, forged in each way a peer could, go through the wire codec and the syncer;
none may change US's store, and the genuine chain must still be taken afterwards.

Also here: what the block paths (sync and a judged proposal) owe the mempool, no second
verification of an entry verified on intake, and the loop staying free between the
blocks of an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ledger.block import Block, Commit, Header
from ledger.entry import Entry, SignedEntry
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.store import Store
from node.consensus import ProposeRequest
from node.daemon.block_maker import BlockMaker
from node.daemon.chain import ConflictingBlock, StaleHeight
from node.daemon.config import load_config
from node.daemon.gossip_payloads import (
    SyncItem,
    WireError,
    decode_block_response,
    encode_block_response,
    encode_entries,
)
from node.daemon.key_files import load_genesis, load_key
from node.daemon.node import Node
from tests import samples
from tests.cluster import Cluster

VALIDATORS = ("CN", "DE", "NL")  # quorum 3
BLOCKS = 3


@dataclass
class Network:
    node: Node  # US, following
    genesis: Genesis
    keys: dict[str, SigningKey]
    chain: list[SyncItem]  # the genuine blocks 1..BLOCKS with their commits

    def commit(self, signers: tuple[str, ...], header: Header) -> Commit:
        """A commit of ``header`` by ``signers``, with their real keys."""
        return _commit(self.keys, signers, self.genesis.chain_id, header)


def _entries(genesis: Genesis, keys: dict[str, SigningKey], tag: str) -> list[SignedEntry]:
    now = int(time.time() * 1000)
    return [
        Entry(genesis.chain_id, "cert.issue", m, now, samples.cert_issue(f"{m}-{tag}", m)).sign(
            keys[m]
        )
        for m in VALIDATORS
    ]


def _commit(
    keys: dict[str, SigningKey], signers: tuple[str, ...], chain: str, header: Header
) -> Commit:
    block_hash = header.hash()
    vote = Commit(header.height, 0, block_hash, ()).precommit()
    return Commit.from_precommits(
        header.height, 0, block_hash, {m: vote.sign(keys[m], chain) for m in signers}
    )


def _build_chain(path: Path, genesis: Genesis, keys: dict[str, SigningKey]) -> list[SyncItem]:
    store = Store.open(path, genesis)
    try:
        maker = BlockMaker(store, genesis)
        chain: list[SyncItem] = []
        last: Commit | None = None
        for height in range(1, BLOCKS + 1):
            candidates = _entries(genesis, keys, f"S{height}")
            proposed = maker.propose(
                height=height,
                time_ms=int(time.time() * 1000),
                proposer=VALIDATORS[height % len(VALIDATORS)],
                candidates=candidates,
                verified=frozenset(),
                last_commit=last,
            )
            assert len(proposed.block.entries) == len(candidates), proposed.result.rejected
            commit = _commit(keys, VALIDATORS, genesis.chain_id, proposed.block.header)
            maker.apply(proposed.block, commit, proposed.staged, last)
            chain.append(SyncItem(proposed.block, commit, last))
            last = commit
        return chain
    finally:
        store.close()


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    cluster = Cluster(tmp_path, [*VALIDATORS, "US"], validators=VALIDATORS)
    genesis = load_genesis(cluster["US"].root / "genesis.json")
    keys = {m: load_key(cluster[m].root / "node.key") for m in (*VALIDATORS, "US")}
    chain = _build_chain(tmp_path / "source", genesis, keys)
    node = Node(load_config(cluster["US"].config), genesis, keys["US"])
    await node.start()
    try:
        yield Network(node, genesis, keys, chain)
    finally:
        await node.stop()
        cluster.close()


async def _gossip(net: Network, item: SyncItem) -> None:
    await net.node.on_message(
        "DE", "entry", encode_entries([e.wire_bytes for e in item.block.entries])
    )


async def _answer(net: Network, peer: str, items: list[SyncItem]) -> tuple[int, bool]:
    """What US makes of an answer to its block request, sent over the wire by ``peer``."""
    received = decode_block_response(encode_block_response(items), net.node.wire_limits)
    return await net.node.sync._apply(peer, received)


def _faults(node: Node) -> int:
    return node.peers.counters["bad_block_response"]


async def _refused(
    net: Network, caplog: pytest.LogCaptureFixture, items: list[SyncItem], reason: str
) -> None:
    """The answer is refused as faulty, for ``reason``, and changes nothing."""
    node = net.node
    height, head, faults = node.store.height, node.store.head_hash(), _faults(node)
    caplog.clear()
    assert await _answer(net, "DE", items) == (0, True)
    assert (node.store.height, node.store.head_hash()) == (height, head)
    assert _faults(node) == faults + 1
    assert len(node.chain.mempool) == 0
    blamed = [
        r.getMessage() for r in caplog.records if "bad block_response from DE" in r.getMessage()
    ]
    assert len(blamed) == 1 and reason in blamed[0], blamed


async def test_a_commit_without_a_quorum_of_our_validators_is_refused(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    net, first = network, network.chain[0]
    header = first.block.header
    other = replace(header, time=header.time + 1)
    for signers, signed, reason in (
        (("CN", "DE"), header, "a quorum of 3 validators needs 3"),  # one short
        (("CN", "DE", "US"), header, "votes from non-validators"),  # US is no validator
        (VALIDATORS, other, "commit is for block"),  # a quorum, for another block
    ):
        await _refused(net, caplog, [replace(first, commit=net.commit(signers, signed))], reason)


async def test_a_block_that_is_not_the_one_its_commit_names_is_refused(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    net = network
    first = net.chain[0]
    # The commit signs the header, which names the entries only through the log root:
    # validly signed entries other than those are caught by re-executing them.
    swapped = Block(first.block.header, tuple(_entries(net.genesis, net.keys, "SWAP")))
    await _refused(net, caplog, [replace(first, block=swapped)], "header.log_root does not match")
    # One entry short of the header's count: the wire codec refuses it before the syncer.
    dropped = Block(first.block.header, first.block.entries[:-1])
    payload = encode_block_response([replace(first, block=dropped)])
    with pytest.raises(WireError, match="block has 2 entries but its header says 3"):
        decode_block_response(payload, net.node.wire_limits)


async def test_a_block_signed_by_a_quorum_must_still_re_execute_to_its_roots(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    # More than f validators lying together can sign anything; a follower still never
    # stores a block whose roots its own re-execution does not reproduce.
    net, first = network, network.chain[0]
    header = first.block.header
    wrong = bytes(32)
    for bad, field in (
        (replace(header, state_root=wrong), "state_root"),
        (replace(header, log_root=wrong), "log_root"),
    ):
        item = SyncItem(Block(bad, first.block.entries), net.commit(VALIDATORS, bad), None)
        await _refused(net, caplog, [item], f"header.{field} does not match re-execution")


async def test_the_genuine_chain_is_taken_after_forgeries_and_up_to_the_first_bad_block(
    network: Network,
) -> None:
    net = network
    node = net.node
    one, two, three = net.chain
    forged_two = replace(two, commit=net.commit(("CN", "US", "DE"), two.block.header))
    # Blocks before the bad one are valid on their own and are kept.
    assert await _answer(net, "DE", [one, forged_two, three]) == (1, True)
    assert node.store.height == 1
    assert await _answer(net, "NL", [two, three]) == (2, False)
    assert node.store.height == BLOCKS
    assert node.store.head_hash() == three.block.header.hash()
    for item in net.chain:
        for entry in item.block.entries:
            assert node.store.has_entry(entry.id)
    # An answer overtaken by what is already stored changes nothing and blames nobody.
    faults = _faults(node)
    assert await _answer(net, "CN", [one, two]) == (0, False)
    assert _faults(node) == faults


async def test_entries_verified_on_intake_are_not_verified_again_when_their_block_syncs(
    network: Network, entry_verifications: list[bytes]
) -> None:
    net = network
    one, two, _ = net.chain
    await _gossip(net, one)
    assert len(entry_verifications) == len(one.block.entries)
    assert await _answer(net, "DE", [one]) == (1, False)
    assert len(entry_verifications) == len(one.block.entries)  # the verdict was reused
    # Entries the node never saw are verified by re-execution, once each.
    assert await _answer(net, "DE", [two]) == (1, False)
    assert sorted(entry_verifications) == sorted(
        e.entry_bytes for item in (one, two) for e in item.block.entries
    )


async def test_a_proposal_of_pooled_entries_is_judged_without_verifying_them_again(
    network: Network, entry_verifications: list[bytes]
) -> None:
    net = network
    one = net.chain[0]
    await _gossip(net, one)
    verified_on_intake = list(entry_verifications)
    block_hash = one.block.header.hash()
    assert net.node.host._judge(block_hash, one.block, None)
    assert entry_verifications == verified_on_intake
    # The same entries under other signatures: the pooled verdict does not cover them.
    forged = tuple(replace(e, sig=bytes(64)) for e in one.block.entries)
    assert not net.node.host._judge(b"\x01" * 32, Block(one.block.header, forged), None)
    assert len(entry_verifications) == len(verified_on_intake) + len(forged)


async def test_the_loop_serves_other_work_between_the_blocks_of_an_answer(
    network: Network,
) -> None:
    # An answer can hold thousands of entries to verify: the node must keep serving its
    # API and peers while it works through them. Serving a request takes several turns
    # of the loop (accept, read, answer), like each step of this watcher.
    net = network
    heights: list[int] = []

    async def watch() -> None:
        while True:
            for _ in range(5):
                await asyncio.sleep(0)
            heights.append(net.node.store.height)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    try:
        assert await _answer(net, "DE", net.chain) == (BLOCKS, False)
    finally:
        watcher.cancel()
    assert set(range(1, BLOCKS)) <= set(heights)  # it ran between each block and the next


async def test_consensus_learning_a_synced_height_between_blocks_of_an_answer_is_harmless(
    network: Network,
) -> None:
    # While the syncer pauses between blocks, a peer's commit for a height it has just
    # stored may arrive, with that height's proposal already cached: consensus must not
    # try to apply a second time a block the store already holds.
    net = network
    node = net.node
    one = net.chain[0]

    async def learn_height_one() -> None:
        while node.store.height < 1:
            await asyncio.sleep(0)
        node.host._cache(one.block.header.hash(), one.block, None)
        await node.on_message("DE", "commit", one.commit.encode())

    learner = asyncio.create_task(learn_height_one())
    assert await _answer(net, "DE", net.chain) == (BLOCKS, False)
    await learner
    assert node.failure is None
    assert node.store.height == BLOCKS
    assert node.host.core.height == BLOCKS + 1


async def test_nothing_is_built_on_a_height_the_chain_has_passed(network: Network) -> None:
    # Issue 22: consensus used to be asked for a block at the height sync had just
    # stored, and building it stopped the node. The chain refuses such a height with a
    # typed error, the host answers such a request with nothing, and a block offered
    # again for a stored height is recognised (or, if it differs, refused loudly).
    net = network
    node = net.node
    one, two, _ = net.chain
    assert await _answer(net, "DE", [one]) == (1, False)
    assert node.host.core.height == 2  # moved on by the commit itself
    with pytest.raises(StaleHeight, match="height 1 cannot be built on a chain at height 1"):
        node.chain.propose(1, time_ms=int(time.time() * 1000), proposer="CN", last_commit=None)
    assert node.host.value_to_propose(ProposeRequest(1, 0)) is None
    assert node.chain.holds(one.block) and not node.chain.holds(two.block)
    other = Block(replace(one.block.header, time=one.block.header.time + 1), one.block.entries)
    with pytest.raises(ConflictingBlock):
        node.chain.holds(other)
    assert node.failure is None and node.store.height == 1
