"""Kill -9 a process that is committing blocks; the store must hold each block whole.

A real child process (``tests.store_crash_child``) commits blocks of random sizes in a
loop and reports each height once ``commit_block`` has returned. It is killed with
SIGKILL after a seeded random delay, 20 times over the same store. After every kill the
store must open, its head block must be complete, the log rebuilt from the stored leaves
must give the head header's ``log_root``, nothing past the head may exist, and no block
the child saw committed may be missing.

Set STORE_CRASH_SEED to replay a run; the seed is printed first.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import plyvel

from ledger import merkle
from ledger.block import verify_commit
from ledger.store import Store
from tests.factories import make_genesis

GENESIS = make_genesis()
REPO = Path(__file__).resolve().parents[1]
KILLS = 20


def _run_child_until_killed(path: Path, seed: int, delay: float) -> int:
    """Start the child, SIGKILL it ``delay`` s after it is ready; the highest height it
    reported committed."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store_crash_child", str(path), str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, "child did not open the store within 60 s"
        line = child.stdout.readline()
        assert line.startswith(b"ready "), line + child.stderr.read()  # type: ignore[union-attr]
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, child.stderr.read()  # type: ignore[union-attr]
        reported = [int(x.split()[1]) for x in child.stdout.read().splitlines()]
        return max(reported, default=int(line.split()[1]))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def _check_store(path: Path) -> tuple[int, int]:
    """Assert the store's invariants; return (height, log size)."""
    with Store.open(path, GENESIS) as store:
        height = store.height
        size = store.log_size()
        leaves = [store.leaf(i) for i in range(size)]
        if height == 0:
            assert size == 0
            return 0, 0
        header = store.get_header(height)
        block = store.get_block(height)
        commit = store.get_commit(height)
        assert header is not None and block is not None and commit is not None
        assert header == store.head_header() and block.header == header
        verify_commit(commit, GENESIS.validators, GENESIS.chain_id, height=height)
        assert commit.block == header.hash()
        first = header.log_size - header.entries
        for position, entry in enumerate(block.entries):
            location = store.entry_location(entry.id)
            assert location == (height, position, first + position)
        assert size == header.log_size
        assert merkle.root(leaves) == header.log_root == store.log_root()
    _assert_nothing_past_head(path, height, size)
    return height, size


def _assert_nothing_past_head(path: Path, height: int, size: int) -> None:
    db = plyvel.DB(str(path))
    try:
        assert db.get(b"h:" + (height + 1).to_bytes(8, "big")) is None
        assert db.get(b"c:" + (height + 1).to_bytes(8, "big")) is None
        assert db.get(b"l:" + size.to_bytes(8, "big")) is None
    finally:
        db.close()


def test_sigkill_during_commits_never_leaves_a_partial_block(tmp_path: Path) -> None:
    seed = int(os.environ.get("STORE_CRASH_SEED", "9162"))
    print(f"STORE_CRASH_SEED={seed}")
    rng = random.Random(seed)
    path = tmp_path / "store"
    height = 0
    for round_ in range(KILLS):
        acknowledged = _run_child_until_killed(path, rng.randrange(2**32), rng.uniform(0, 0.4))
        new_height, _ = _check_store(path)
        assert new_height >= acknowledged, f"round {round_}: block {acknowledged} was lost"
        assert new_height >= height
        height = new_height
    assert height > KILLS // 2, "the child made too little progress to test anything"
