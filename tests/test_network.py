"""Issue 6: a real network of ``customs-node run`` processes on 127.0.0.1.

Every node is an OS process with its own LevelDB store, key and port (tests/cluster.py);
entries are really signed, blocks really re-executed and commits really verified. Waits
use generous deadlines; nothing asserts on speed.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.error
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import subjects_of
from ledger.block import Block, Header
from ledger.bundle import verify_bundle
from node.daemon.gossip_payloads import (
    Limits,
    decode_proposal_package,
    encode_proposal_package,
    entry_id_of_wire,
)
from tests import samples
from tests.cluster import Cluster, NodeProcess
from tests.factories import member_key, sign_entry, stub_header

FOUR = ("CN", "DE", "NL", "US")
_serial = itertools.count(1)


def cert_body(member_id: str) -> dict[str, Any]:
    """A valid cert.issue body for ``member_id`` (its jurisdiction is its id's first two)."""
    country = member_id[:2]
    destination = "NL" if country != "NL" else "DE"
    return samples.cert_issue(f"{country}-T-{next(_serial):06d}", country, destination=destination)


def submit(node: NodeProcess) -> str:
    reply = node.post("/v1/submit", {"kind": "cert.issue", "body": cert_body(node.member_id)})
    assert reply.status == 202, reply.body
    entry_id: str = reply.json()["id"]
    return entry_id


def chain(cluster: Cluster, member_id: str, upto: int) -> list[dict[str, Any]]:
    return [cluster.block(member_id, h) for h in range(1, upto + 1)]


def assert_same_chain(cluster: Cluster, ids: Iterable[str]) -> int:
    """Every node holds the same blocks up to the lowest head; return that height."""
    ids = list(ids)
    height = min(cluster[i].height() for i in ids)
    assert height >= 1
    reference = chain(cluster, ids[0], height)
    for member_id in ids[1:]:
        other = chain(cluster, member_id, height)
        for mine, theirs in zip(reference, other, strict=True):
            # The header hash covers prev, log_root and state_root: one comparison per block
            # fixes the whole history, the roots are compared too for a clearer failure.
            for key in ("log_root", "state_root", "log_size"):
                assert mine["header"][key] == theirs["header"][key], (member_id, key)
            assert mine["hash"] == theirs["hash"], (member_id, mine["header"]["height"])
    return height


def precommit_signatures(
    cluster: Cluster, ids: Iterable[str]
) -> dict[tuple[str, int, int], set[str]]:
    """(validator, height, round) -> every precommit signature seen in any node's commits.

    Ed25519 signatures are deterministic (RFC 8032 §5.1.6): one vote has one signature,
    so two signatures for the same validator, height and round mean two different votes.
    """
    seen: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for member_id in ids:
        for block in chain(cluster, member_id, cluster[member_id].height()):
            commit = block["commit"]
            for voter, sig in commit["votes"]:
                seen[(voter, commit["height"], commit["round"])].add(sig)
    return seen


def assert_no_double_signing(cluster: Cluster, ids: Iterable[str]) -> None:
    ids = list(ids)
    doubles = {k: v for k, v in precommit_signatures(cluster, ids).items() if len(v) > 1}
    assert not doubles
    for member_id in ids:
        assert "equivocation evidence" not in cluster[member_id].log_text(), member_id


def signers(cluster: Cluster, member_id: str, heights: Iterable[int]) -> set[str]:
    return {voter for h in heights for voter, _ in cluster.block(member_id, h)["commit"]["votes"]}


@pytest.fixture
def four(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, FOUR) as cluster:
        yield cluster


# ---- n = 1 ------------------------------------------------------------------------------


def test_dev_network_of_one_commits_and_serves_a_verifiable_proof(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["CN"]) as cluster:
        cluster.start()
        node = cluster["CN"]
        body = cert_body("CN")
        entry_id = node.post("/v1/submit", {"kind": "cert.issue", "body": body}).json()["id"]
        cluster.wait_committed([entry_id])
        record = node.get(f"/v1/certificates/{body['cert_id']}").json()
        assert [item["id"] for item in record["history"]] == [entry_id]
        reply = node.get(f"/v1/proofs?subject=cert/{body['cert_id']}")
        assert reply.status == 200
        verified = verify_bundle(reply.body, cluster.genesis, subjects_of)
        history = verified.history(f"cert/{body['cert_id']}")
        assert history.exists and [e.entry.id_hex for e in history.entries] == [entry_id]
        assert cluster.stop("CN") == 0


# ---- four validators ---------------------------------------------------------------------


def test_entries_sent_to_every_node_commit_and_all_nodes_agree(four: Cluster) -> None:
    four.start()
    entry_ids = [submit(four[m]) for m in FOUR for _ in range(3)]
    four.wait_committed(entry_ids)
    four.wait_height(max(four[m].height() for m in FOUR) + 1)
    height = assert_same_chain(four, FOUR)
    committed = {e["id"] for b in chain(four, "CN", height) for e in b["entries"]}
    assert set(entry_ids) <= committed
    status = four["DE"].status()
    assert status is not None and {p["id"] for p in status["peers"] if p["connected"]} == {
        "CN",
        "NL",
        "US",
    }


class Submitter(threading.Thread):
    """Keeps submitting entries round-robin to whichever nodes answer."""

    def __init__(self, cluster: Cluster, ids: Iterable[str]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.ids = list(ids)
        self.accepted: list[tuple[str, str]] = []  # (node, entry id) answered 202
        self.halt = threading.Event()

    def run(self) -> None:
        for member_id in itertools.cycle(self.ids):
            if self.halt.is_set():
                return
            node = self.cluster[member_id]
            if not node.running:
                continue
            try:
                reply = node.post(
                    "/v1/submit",
                    {"kind": "cert.issue", "body": cert_body(member_id)},
                    timeout=2.0,
                )
            except (OSError, urllib.error.URLError):
                continue  # killed under us: the entry was never answered, so never counted
            if reply.status == 202:
                self.accepted.append((member_id, reply.json()["id"]))
            time.sleep(0.02)

    def stop(self) -> list[tuple[str, str]]:
        self.halt.set()
        self.join(10)
        return self.accepted


def metric(node: NodeProcess, name: str) -> float:
    for line in node.get("/metrics").body.decode().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"{node.member_id} exports no {name}")


def committed_on(node: NodeProcess, entry_ids: Iterable[str]) -> list[str]:
    return [
        e for e in entry_ids if node.get(f"/v1/entries/{e}").json().get("status") == "committed"
    ]


@pytest.mark.slow
def test_kill_9_of_a_validator_under_load_then_restart_catches_up(four: Cluster) -> None:
    four.start()
    four.wait_height(2)
    load = Submitter(four, FOUR)
    load.start()
    try:
        four.wait_until(lambda: len(load.accepted) >= 20, what="20 entries accepted")
        four.wait_until(
            lambda: len(committed_on(four["NL"], [e for _, e in load.accepted])) >= 10,
            what="NL to commit 10 entries",
        )
        # What NL answered as committed must survive its kill -9 everywhere.
        committed_by_victim = committed_on(four["NL"], [e for _, e in load.accepted])
        assert four.kill("NL") == -9
        before = len(load.accepted)
        four.wait_until(lambda: len(load.accepted) >= before + 20, what="20 more entries")
        four.start("NL")
        four.wait_until(lambda: len(load.accepted) >= before + 40, what="20 entries after restart")
    finally:
        accepted = load.stop()
    # A 202 from NL is only "pending": an entry it had not yet gossiped dies with it. Every
    # entry accepted by a node that stayed up must commit, on every node, NL included.
    survivors = [e for member_id, e in accepted if member_id != "NL"]
    four.wait_committed([*committed_by_victim, *survivors], timeout=90)
    top = max(four[m].height() for m in FOUR)
    four.wait_height(top, FOUR)
    assert_same_chain(four, FOUR)
    assert_no_double_signing(four, FOUR)
    assert metric(four["NL"], "customs_synced_blocks_total") >= 1  # caught up by fetching


@pytest.mark.slow
def test_a_late_node_syncs_from_height_1_then_takes_part(four: Cluster) -> None:
    four.start("CN", "DE", "NL")
    entry_ids = [submit(four[m]) for m in ("CN", "DE", "NL") for _ in range(2)]
    four.wait_committed(entry_ids, ["CN", "DE", "NL"])
    four.wait_height(8, ["CN", "DE", "NL"])
    four.start("US")
    # A status call that times out on a loaded machine reads as height -1: take the
    # highest of three, and never less than the 8 already waited for.
    joined = max(8, *(four[m].height() for m in ("CN", "DE", "NL")))
    four.wait_height(joined, ["US"])
    four.wait_until(lambda: "synced" in four["US"].log_text(), what="US to log its sync")
    four.wait_committed(entry_ids, ["US"])
    # Three of four must precommit; with DE gone, nothing commits unless US votes.
    assert four.stop("DE") == 0
    after_stop = max(four[m].height() for m in ("CN", "NL", "US"))
    late_entry = submit(four["US"])
    four.wait_committed([late_entry], ["CN", "NL", "US"])
    four.wait_height(after_stop + 3, ["CN", "NL", "US"])
    assert "US" in signers(four, "CN", range(after_stop + 1, after_stop + 4))
    assert_same_chain(four, ("CN", "NL", "US"))
    assert_no_double_signing(four, ("CN", "NL", "US"))


@pytest.mark.slow
def test_one_of_four_down_keeps_committing_two_down_halts_and_resumes(four: Cluster) -> None:
    four.start()
    four.wait_height(2)
    assert four.stop("US") == 0
    height = max(four[m].height() for m in ("CN", "DE", "NL"))
    entry_ids = [submit(four["CN"]), submit(four["DE"])]
    four.wait_committed(entry_ids, ["CN", "DE", "NL"])
    four.wait_height(height + 3, ["CN", "DE", "NL"])

    assert four.stop("NL") == 0
    time.sleep(1.0)  # let a decision already in flight land
    halted = {m: four[m].height() for m in ("CN", "DE")}
    stuck = submit(four["CN"])
    time.sleep(3.0)
    assert {m: four[m].height() for m in ("CN", "DE")} == halted
    assert four["DE"].get(f"/v1/entries/{stuck}").json()["status"] == "pending"

    four.start("NL")
    four.wait_committed([stuck], ["CN", "DE", "NL"])
    four.wait_height(max(halted.values()) + 2, ["CN", "DE", "NL"])
    assert_same_chain(four, ("CN", "DE", "NL"))
    assert_no_double_signing(four, ("CN", "DE", "NL"))


# ---- the proposal path's shortcuts (no processes) ------------------------------------------

_HEADER = stub_header()


def test_a_resent_proposal_reuses_the_held_block_and_nothing_else() -> None:
    entries = tuple(sign_entry("CN", "cert.issue", {"n": i}) for i in range(3))
    header = Header(**{**_HEADER.to_obj(), "entries": 3})
    block = Block(header, entries)
    limits = Limits(max_entry_bytes=16384, max_block_entries=10, max_payload_bytes=1 << 20)
    package = encode_proposal_package(b"p", block, None)
    asked: list[bytes] = []

    def held(block_hash: bytes) -> Block | None:
        asked.append(block_hash)
        return block if block_hash == header.hash() else None

    assert decode_proposal_package(package, limits, held).block is block
    assert asked == [header.hash()]
    # Other entries under the same header never replace the block held for that header.
    forged = Block(header, tuple(sign_entry("DE", "cert.issue", {"n": i}) for i in range(3)))
    assert (
        decode_proposal_package(encode_proposal_package(b"p", forged, None), limits, held).block
        is block
    )
    # An unknown block is decoded in full, as before.
    other = Block(Header(**{**header.to_obj(), "height": 2}), entries)
    decoded = decode_proposal_package(encode_proposal_package(b"p", other, None), limits, held)
    assert decoded.block == other and decoded.block is not block


def test_a_proposal_reuses_pending_entries_only_when_their_bytes_match() -> None:
    entries = tuple(sign_entry("CN", "cert.issue", {"n": i}) for i in range(3))
    header = Header(**{**_HEADER.to_obj(), "entries": 3})
    limits = Limits(max_entry_bytes=16384, max_block_entries=10, max_payload_bytes=1 << 20)
    pending = {entry_id_of_wire(e.wire_bytes): e for e in entries[:2]}
    # Same id, other signature: must be decoded from the block, not taken from the pool.
    forged = sign_entry("CN", "cert.issue", {"n": 2}, key=member_key("DE"))
    pending[entry_id_of_wire(forged.wire_bytes)] = forged
    package = encode_proposal_package(b"p", Block(header, entries), None)
    block = decode_proposal_package(
        package, limits, None, lambda w: pending.get(entry_id_of_wire(w))
    ).block
    assert block.entries == entries
    assert block.entries[0] is entries[0] and block.entries[1] is entries[1]
    assert block.entries[2] is not forged and block.entries[2].sig == entries[2].sig


@pytest.mark.slow
def test_a_member_without_the_validator_role_follows_the_chain(tmp_path: Path) -> None:
    with Cluster(tmp_path, [*FOUR, "JP"], validators=FOUR) as cluster:
        cluster.start()
        cluster.wait_height(2)
        # JP's clients write through JP like anyone else's: it checks and gossips.
        entry_ids = [submit(cluster["JP"]), submit(cluster["CN"])]
        cluster.wait_committed(entry_ids, [*FOUR, "JP"])
        # Stopped while the chain grows, JP catches up by fetching blocks, then follows.
        assert cluster.stop("JP") == 0
        top = max(cluster[m].height() for m in FOUR)
        more = [submit(cluster["DE"]), submit(cluster["NL"])]
        cluster.wait_committed(more, FOUR)
        cluster.wait_height(top + 3, FOUR)
        cluster.start("JP")
        later = [submit(cluster["US"])]
        cluster.wait_committed([*more, *later], ["JP"])
        height = assert_same_chain(cluster, [*FOUR, "JP"])
        assert metric(cluster["JP"], "customs_synced_blocks_total") >= 1
        # It never votes: no commit on any node carries its signature.
        assert "JP" not in signers(cluster, "CN", range(1, height + 1))
        status = cluster["JP"].status()
        assert status is not None and status["validators"] == list(FOUR)
