"""Issue 19's observability on real node processes: quorum lost and regained (metrics and
the warning line), link state by peer, store size, entries refused in blocks, rounds, and
the health endpoints of a node catching up."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests import samples
from tests.cluster import Cluster, NodeProcess

FOUR = ("CN", "DE", "NL", "US")


def metrics(node: NodeProcess) -> dict[str, float]:
    """Every sample of ``/metrics`` by its series (name and labels as written)."""
    reply = node.get("/metrics")
    assert reply.status == 200
    found: dict[str, float] = {}
    for line in reply.body.decode().splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series] = float(value)
    return found


def metric(node: NodeProcess, series: str) -> float:
    return metrics(node).get(series, 0.0)


def linked(peer: str) -> str:
    return f'customs_peer_linked{{peer="{peer}"}}'


def test_quorum_lost_then_regained_and_link_state_by_peer(tmp_path: Path) -> None:
    with Cluster(tmp_path / "net", FOUR) as c:
        c.start()
        c.wait_height(2)
        cn = c["CN"]
        c.wait_until(
            lambda: all(metric(cn, linked(p)) == 1 for p in ("DE", "NL", "US")),
            what="CN's gauges to show every link up",
        )
        assert linked("CN") not in metrics(cn)  # not a peer of itself
        assert metric(cn, "customs_validators_heard") == 4
        assert metric(cn, "customs_validators_quorum") == 3
        assert metric(cn, "customs_quorum_lost_total") == 0

        # Two of four gone: CN hears itself and US, a quorum is 3.
        assert c.stop("DE") == 0 and c.stop("NL") == 0
        c.wait_until(
            lambda: metric(cn, "customs_quorum_lost_total") == 1, what="CN to lose its quorum"
        )
        assert metric(cn, "customs_validators_heard") == 2
        assert (metric(cn, linked("DE")), metric(cn, linked("NL"))) == (0, 0)
        assert metric(cn, linked("US")) == 1
        log = cn.log_text()
        assert (
            "WARNING customs.consensus: no quorum: hears 2 of 4 validators, a quorum is 3; "
            "no block can be decided" in log
        )
        # Without a quorum no round decides: consensus goes past round 0, once per height.
        c.wait_until(
            lambda: metric(cn, "customs_consensus_rounds_past_zero_total") >= 1,
            what="a round past 0",
        )
        c.wait_until(
            lambda: "went to round 1: 1 round without a decision" in cn.log_text(),
            what="the warning of a round past 0",
        )
        assert len(re.findall(r"consensus at height (\d+) went to round", cn.log_text())) == len(
            set(re.findall(r"consensus at height (\d+) went to round", cn.log_text()))
        )

        c.start("DE", "NL")
        c.wait_until(
            lambda: metric(cn, "customs_quorum_regained_total") == 1,
            what="CN to hear a quorum again",
        )
        height = cn.height()
        c.wait_height(height + 2)
        assert metric(cn, linked("DE")) == 1 and metric(cn, "customs_validators_heard") >= 3
        assert "INFO    customs.consensus: quorum regained: hears " in cn.log_text()
        assert metric(cn, "customs_quorum_lost_total") == 1
        # Rounds past 0 show in the decided-round histogram of the heights they decided.
        assert metric(cn, "customs_consensus_decided_round_count") >= height
        assert metric(cn, "customs_store_bytes") > 0


def test_entries_refused_in_a_block_are_counted_and_logged(tmp_path: Path) -> None:
    with Cluster(tmp_path / "net", ["CN", "DE"], validators=["CN"]) as c:
        c.start("CN")
        cn = c["CN"]
        c.wait_height(1, ["CN"])
        before = metrics(cn)
        body = samples.cert_issue("CN-OBS-000001", "CN")
        # The same certificate twice: each entry passes intake (their ids differ), the
        # block rules refuse the second one executed.
        ids = [cn.post("/v1/submit", {"kind": "cert.issue", "body": body}).json()["id"]]
        time.sleep(0.002)  # another ms for the second entry's ts: another id
        ids.append(cn.post("/v1/submit", {"kind": "cert.issue", "body": body}).json()["id"])
        assert ids[0] != ids[1]
        c.wait_until(
            lambda: all(_state(cn, i) in ("committed", "rejected") for i in ids),
            what="both entries to leave the mempool",
        )
        states = {i: cn.get(f"/v1/entries/{i}").json() for i in ids}
        refused = [s for s in states.values() if s["status"] == "rejected"]
        assert len(refused) == 1, states
        code = refused[0]["code"]
        series = f'customs_entries_rejected_total{{code="{code}"}}'
        assert metric(cn, series) - before.get(series, 0.0) == 1
        (refused_id,) = [i for i, s in states.items() if s["status"] == "rejected"]
        assert f"entry {refused_id} rejected (block): {code}" in cn.log_text()
        c.wait_until(lambda: metric(cn, "customs_store_bytes") > 0, what="a store size")


def _state(node: NodeProcess, entry_id: str) -> str:
    reply = node.get(f"/v1/entries/{entry_id}")
    if reply.status != 200:
        return "unknown"
    status: str = reply.json()["status"]
    return status


def test_health_and_readiness_of_a_node_catching_up(tmp_path: Path) -> None:
    # Peers answer with a few blocks at a time (the least answer room): catching up
    # takes several requests, and the late node is seen while it makes them.
    settings: dict[str, int | str] = {"sync_answer_bytes": 64 * 1024}
    # A heartbeat always due: the three make a block every block interval, idle or not.
    params = {"empty_block_interval_ms": 1}
    with Cluster(tmp_path / "net", FOUR, params=params, settings=settings) as c:
        c.start("CN", "DE", "NL")
        c.wait_height(60, ["CN", "DE", "NL"], timeout=120)
        c.start("US")
        us = c["US"]
        seen: list[tuple[int, Any, int, str]] = []

        def ready() -> bool:
            health = us.get("/healthz")
            readiness = us.get("/readyz")
            seen.append((health.status, health.json(), readiness.status, readiness.body.decode()))
            return readiness.status == 200

        c.wait_until(ready, what="US to be ready", timeout=120)
        assert all(h == 200 and body == {"status": "ok"} for h, body, _, _ in seen)
        # Not ready while behind, and for that reason: not only before its links were up.
        syncing = [r for _, _, status, r in seen if status == 503 and "catching up" in r]
        assert syncing, seen[:5]
        assert json.loads(syncing[0]) == {
            "code": "not_ready",
            "message": "catching up with the network",
        }
        assert metric(us, "customs_synced_blocks_total") >= 50
        assert metric(us, "customs_sync_target_height") >= 60
        c.wait_until(
            lambda: metric(us, "customs_blocks_behind") <= 1, what="US's gauge to show it caught up"
        )
