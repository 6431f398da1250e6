"""Blocks only when there is something to say (genesis ``empty_block_interval_ms``), on
real four-validator networks: an idle chain makes no block before its heartbeat, an entry
on an idle chain starts its height at once (it does not wait for the heartbeat or the
block interval), and the heartbeat blocks come at the interval, no sooner.

Block times are the proposers' clocks, all this machine's, so the gaps asserted below
are facts of the chain, not of how fast this machine ran."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import samples
from tests.cluster import Cluster, NodeProcess

FOUR = ["CN", "DE", "NL", "US"]
_serial = itertools.count(1)


def submit_cert(node: NodeProcess) -> str:
    country = node.member_id
    body = samples.cert_issue(f"{country}-QC-{next(_serial):06d}", country)
    reply = node.post("/v1/submit", {"kind": "cert.issue", "body": body})
    assert reply.status == 202, reply.body
    entry_id: str = reply.json()["id"]
    return entry_id


def headers(cluster: Cluster, member_id: str, top: int) -> list[dict[str, Any]]:
    return [cluster.block(member_id, h)["header"] for h in range(1, top + 1)]


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The genesis default heartbeat (a minute): longer than this module runs."""
    with Cluster(
        tmp_path_factory.mktemp("quiet") / "net",
        FOUR,
        params={"empty_block_interval_ms": 60_000},
    ) as running:
        running.start()
        running.wait_height(1)
        yield running


def test_an_idle_network_makes_no_block_before_the_heartbeat(idle: Cluster) -> None:
    time.sleep(3)  # twenty block intervals (150 ms) of nothing to record
    assert {m: idle[m].height() for m in FOUR} == dict.fromkeys(FOUR, 1)


def test_each_entry_on_an_idle_chain_gets_its_own_block_at_once(idle: Cluster) -> None:
    start = idle["CN"].height()
    committed: list[str] = []
    # Each to another node: the proposer of the next height learns of it by relay.
    for member in ("CN", "DE", "NL", "US", "CN"):
        entry_id = submit_cert(idle[member])
        idle.wait_committed([entry_id], timeout=30)
        committed.append(entry_id)
    top = start + len(committed)
    idle.wait_height(top)
    chain = [idle.block("DE", h) for h in range(start + 1, top + 1)]
    # One block per entry and no empty block between them: nothing waited for a timer.
    assert [[e["id"] for e in block["entries"]] for block in chain] == [[e] for e in committed]
    assert idle["DE"].height() == top
    for before, after in itertools.pairwise(
        [idle.block("DE", start)["header"]] + [b["header"] for b in chain]
    ):
        assert after["time"] - before["time"] < 60_000


def test_heartbeat_blocks_come_at_the_interval_and_no_sooner(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    beat_ms = 1_500
    with Cluster(
        tmp_path_factory.mktemp("heartbeat") / "net",
        FOUR,
        params={"empty_block_interval_ms": beat_ms},
    ) as net:
        net.start()
        net.wait_height(4, timeout=60)
        chain = headers(net, "NL", 4)
    assert all(h["entries"] == 0 for h in chain)
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(chain)]
    assert all(gap >= beat_ms for gap in gaps), gaps
