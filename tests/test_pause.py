"""Issue 22: a validator frozen with SIGSTOP under load, then resumed, stays in step.

While it is frozen the others commit on; when it wakes, sync stores the blocks it
missed while consensus, fed the backlog of peer messages at the same time, decides some
of the same heights. Both paths reach the chain, and neither may leave consensus at a
height the chain has already passed (which used to stop the node with ``ChainError:
cannot stage height N on a view at height N``). Real processes, real signals, a client
submitting about 200 entries a second to the nodes that are not frozen.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import urllib.error
from collections.abc import Iterable
from pathlib import Path

import pytest

from ledger.entry import Entry
from node.daemon.key_files import load_key
from tests import samples
from tests.cluster import Cluster, NodeProcess

FOUR = ("CN", "DE", "NL", "US")
VICTIM = "NL"
# CUSTOMS_TEST_PAUSES=n runs more (or fewer) pauses, e.g. to measure how often one fails.
PAUSES = int(os.environ.get("CUSTOMS_TEST_PAUSES", "20"))
# A pause lasts at least MIN_PAUSE_S and ends once the others have skipped a turn of the
# victim to propose (its round 0 timed out, so they decide in a later round while it is
# still a height behind): the resumed victim then starts that height as its proposer
# with a quorum already buffered for it, the case that used to stop it.
MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 3.0
BATCH = 20  # entries per POST; BATCH / BATCH_EVERY_S is the offered load
BATCH_EVERY_S = 0.1
CATCH_UP_S = 30.0


class Load(threading.Thread):
    """Posts batches of client-signed entries round-robin to ``ids``."""

    def __init__(self, cluster: Cluster, ids: Iterable[str]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.ids = list(ids)
        self.keys = {i: load_key(cluster[i].root / "node.key") for i in self.ids}
        self.accepted = 0
        self.halt = threading.Event()
        self._serial = itertools.count(1)

    def run(self) -> None:
        for member_id in itertools.cycle(self.ids):
            started = time.monotonic()
            if self.halt.is_set():
                return
            self._post(self.cluster[member_id])
            self.halt.wait(max(0.0, BATCH_EVERY_S - (time.monotonic() - started)))

    def _post(self, node: NodeProcess) -> None:
        country = node.member_id[:2]
        now = int(time.time() * 1000)
        dest = "NL" if country == "DE" else "DE"
        batch = [
            Entry(
                self.cluster.chain_id,
                "cert.issue",
                node.member_id,
                now,
                samples.cert_issue(
                    f"{country}-P-{next(self._serial):07d}", country, destination=dest
                ),
            )
            .sign(self.keys[node.member_id])
            .to_json()
            for _ in range(BATCH)
        ]
        try:
            reply = node.post("/v1/entries", batch, timeout=5.0)
        except (OSError, urllib.error.URLError):
            return
        if reply.status == 202:
            self.accepted += BATCH

    def stop(self) -> int:
        self.halt.set()
        self.join(10)
        return self.accepted


def _pause(cluster: Cluster, victim: NodeProcess, witness: NodeProcess) -> None:
    """SIGSTOP ``victim`` until ``witness`` is past its turn to propose (see MIN_PAUSE_S)."""
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(MIN_PAUSE_S)
        deadline = time.monotonic() + MAX_PAUSE_S - MIN_PAUSE_S
        while time.monotonic() < deadline and not _turn_skipped(cluster, victim, witness):
            time.sleep(0.02)
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)


def _turn_skipped(cluster: Cluster, victim: NodeProcess, witness: NodeProcess) -> bool:
    status = witness.status()
    if status is None or status["round"] < 1:
        return False
    working_on = status["height"] + 1
    return cluster.genesis.validators.proposer(working_on, 0) == victim.member_id


def _head_hash(node: NodeProcess, height: int) -> str:
    reply = node.get(f"/v1/blocks/{height}")
    assert reply.status == 200, (node.member_id, height, reply.status)
    block_hash: str = reply.json()["hash"]
    return block_hash


@pytest.mark.slow
def test_a_validator_paused_under_load_resumes_and_stays_in_step(tmp_path: Path) -> None:
    with Cluster(tmp_path, FOUR) as cluster:
        cluster.start()
        cluster.wait_height(2)
        victim = cluster[VICTIM]
        others = [m for m in FOUR if m != VICTIM]
        assert victim.proc is not None
        load = Load(cluster, others)
        load.start()
        try:
            for _ in range(PAUSES):
                _pause(cluster, victim, cluster[others[0]])
                reached = max(cluster[m].height() for m in others)
                cluster.wait_height(reached, [VICTIM], timeout=CATCH_UP_S)
        finally:
            accepted = load.stop()
        assert accepted > 0
        assert victim.running, victim.log_text()[-3000:]
        assert "internal error" not in victim.log_text()
        # Still in step: it keeps committing with the others after the last pause, and
        # the header hash (which links the whole history) is the same everywhere.
        common = max(cluster[m].height() for m in FOUR) + 2
        cluster.wait_height(common, FOUR, timeout=CATCH_UP_S)
        assert len({_head_hash(cluster[m], common) for m in FOUR}) == 1
        assert victim.running
