"""State-map and proof-bundle figures for ``scripts/bench.py core``.

    state_update_per_s   subject-state updates per second into a map already holding
                         1,000,000 keys, in batches of 10,000 (a full block: 5,000
                         entries touching two subjects each; half new subjects, half
                         existing), each computed and written with a synced LevelDB
                         batch through a real Store; the best of 8 rounds, as timeit
                         does, since neighbour processes share the cores
    state_update_median_per_s  the median round of the same
    bundle_verify_ms     time to verify a bundle of one 50-entry history whose entries
                         sit in 50 different blocks (the worst case: 50 block headers,
                         each with its quorum commit, are checked); best of 15 runs
    bundle_verify_median_ms  the median run of the same
    bundle_bytes         the size of that bundle
    state_bulk_load_per_s  keys per second while loading the 1,000,000 (250,000 a batch)
    *_cpu_*              the same measured in process CPU time (LevelDB's threads
                         included): what the code costs on a core of its own, when
                         neighbours share the machine's cores
    state_update_thread_per_s  the median round in the calling thread's CPU time: the
                         map and the store call, without LevelDB's background compaction
                         of earlier rounds' writes (about as much again at 1,000,000 keys)

Run alone: ``python scripts/bench_state.py [keys]``.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ledger.bundle import build_bundle, verify_bundle
from ledger.chain import append_signed
from ledger.entry import Entry, SignedEntry
from ledger.genesis import Genesis
from ledger.history import SubjectState
from ledger.statemap import StateMap
from ledger.store import Store
from tests.factories import GENESIS_TIME, make_genesis, member_key

TARGETS: dict[str, tuple[str, float] | tuple[str, float, str]] = {
    "state_update_per_s": (">=", 20_000.0),
    "bundle_verify_ms": ("<=", 20.0),
}

MAP_KEYS = 1_000_000
LOAD_BATCH = 250_000
UPDATE_BATCH = 10_000
UPDATE_ROUNDS = 8
WARMUP_ROUNDS = 3
HISTORY = 50
MEMBERS = ("CN", "DE", "NL", "US")
CHAIN = "customs-bench-state-1"


def _genesis() -> Genesis:
    return make_genesis(MEMBERS, chain_id=CHAIN)


def _state_key(n: int) -> bytes:
    return hashlib.sha256(b"subject-%d" % n).digest()


def _value(n: int, height: int) -> bytes:
    return SubjectState(hashlib.sha256(b"head-%d" % n).digest(), 1 + n % 7, height).encode()


def _bulk_load(store: Store, keys: int) -> None:
    for start in range(0, keys, LOAD_BATCH):
        changes = {_state_key(n): _value(n, 1) for n in range(start, min(keys, start + LOAD_BATCH))}
        store.write_extra(StateMap(store.get_raw).update(changes).writes)


def measure_updates(results: dict[str, float], tmp: Path, keys: int = MAP_KEYS) -> None:
    with Store.open(tmp / "state", _genesis()) as store:
        began = time.perf_counter()
        _bulk_load(store, keys)
        results["state_bulk_load_per_s"] = keys / (time.perf_counter() - began)
        rates, cpu_rates, thread_rates = [], [], []
        fresh = keys
        for round_ in range(-WARMUP_ROUNDS, UPDATE_ROUNDS):
            changes = {
                _state_key(fresh + i): _value(fresh + i, 2) for i in range(UPDATE_BATCH // 2)
            }
            fresh += UPDATE_BATCH // 2
            step = keys // (UPDATE_BATCH // 2)
            changes.update(
                {
                    _state_key(round_ + WARMUP_ROUNDS + i * step): _value(i, 2)
                    for i in range(UPDATE_BATCH // 2)
                }
            )
            began, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
            store.write_extra(StateMap(store.get_raw).update(changes).writes)
            if round_ >= 0:  # the first rounds overlap LevelDB compacting the bulk load
                rates.append(len(changes) / (time.perf_counter() - began))
                cpu_rates.append(len(changes) / (time.process_time() - cpu))
                thread_rates.append(len(changes) / (time.thread_time() - thread))
        results["state_update_per_s"] = max(rates)
        results["state_update_median_per_s"] = statistics.median(rates)
        # CPU time (all threads, LevelDB's included): the figure on a core of its own.
        results["state_update_cpu_per_s"] = statistics.median(cpu_rates)
        results["state_update_thread_per_s"] = statistics.median(thread_rates)


def _append(store: Store, genesis: Genesis, accepted: list[tuple[SignedEntry, list[str]]]) -> None:
    signers = [(m, member_key(m)) for m in genesis.validators.ids[: genesis.validators.quorum]]
    time = GENESIS_TIME + 500 * (store.height + 1)
    append_signed(store, genesis, accepted, {}, time=time, signers=signers)


def _event(n: int, subject: str) -> SignedEntry:
    body = {"subject": [subject], "event": "inspected", "seq": n, "place": "NLRTM"}
    return Entry(CHAIN, "test.event", MEMBERS[n % 4], GENESIS_TIME + n, body).sign(
        member_key(MEMBERS[n % 4])
    )


def _subjects_of(entry: Entry) -> Iterable[str]:
    subjects = entry.body["subject"]
    return subjects if isinstance(subjects, list) else []


def measure_bundle(results: dict[str, float], tmp: Path) -> None:
    genesis = _genesis()
    with Store.open(tmp / "bundle", genesis) as store:
        for n in range(HISTORY):
            noise = [
                (_event(1000 + 10 * n + i, f"cert/other-{i}"), [f"cert/other-{i}"])
                for i in range(3)
            ]
            _append(store, genesis, [(_event(n, "cert/A"), ["cert/A"]), *noise])
        data = build_bundle(store, ["cert/A"])
    timings, cpu_timings = [], []
    for _ in range(15):
        began, cpu = time.perf_counter(), time.process_time()
        verified = verify_bundle(data, genesis, _subjects_of)
        timings.append(time.perf_counter() - began)
        cpu_timings.append(time.process_time() - cpu)
    assert len(verified.history("cert/A").entries) == HISTORY
    results["bundle_verify_ms"] = min(timings) * 1e3
    results["bundle_verify_median_ms"] = statistics.median(timings) * 1e3
    results["bundle_verify_cpu_ms"] = statistics.median(cpu_timings) * 1e3
    results["bundle_bytes"] = float(len(data))


def measure(results: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix="customs-bench-state-") as tmp:
        measure_bundle(results, Path(tmp))
        measure_updates(results, Path(tmp))


if __name__ == "__main__":
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="customs-bench-state-") as tmp_dir:
        measure_bundle(figures, Path(tmp_dir))
        measure_updates(figures, Path(tmp_dir), int(sys.argv[1]) if len(sys.argv) > 1 else MAP_KEYS)
    for name, value in figures.items():
        print(f"{name:24} {value:,.2f}")
