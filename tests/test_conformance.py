"""Conformance vectors (issue 4, "Conformance vectors"): the shipped vectors pass, cover
every kind, code and transition, and the runner's command line behaves as specified."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import ledger.store as store_module
from contracts import CODES, certificate, shipment
from contracts import certificates as certs
from contracts import shipments as ships
from contracts.conformance import load_vector, main
from contracts.executor import BlockResult
from contracts.kinds import KINDS
from contracts.runner import MemorySink, run_vector
from contracts.state import load
from contracts.vectors import ACCEPT, Vector
from ledger.block import verify_commit
from ledger.genesis import Genesis

ROOT = Path(__file__).resolve().parent.parent
VECTORS = sorted((ROOT / "tests" / "vectors").glob("*.json"))


class RecordingSink(MemorySink):
    """Notes each accepted entry's (status before, event) to measure transition coverage."""

    def __init__(self) -> None:
        super().__init__()
        self.transitions: set[tuple[str, str, str]] = set()

    def commit(self, block_time: int, wires: Sequence[bytes], result: BlockResult) -> None:
        for accepted in result.accepted:
            entry = accepted.entry.entry
            body = entry.body
            if entry.kind == "shipment.event":
                record = shipment(self.state, body["ucr"])
                assert record is not None
                self.transitions.add(("shipment", record["status"], body["event"]))
            elif entry.kind != "cert.issue" and entry.kind.startswith("cert."):
                record = certificate(self.state, body["cert_id"])
                assert record is not None
                self.transitions.add(("certificate", record["status"], entry.kind[5:]))
        super().commit(block_time, wires, result)


@pytest.fixture(scope="module")
def runs() -> list[tuple[Vector, RecordingSink, int, list[Any]]]:
    out = []
    for path in VECTORS:
        vector = load_vector(path)
        sink = RecordingSink()
        passed, mismatches = run_vector(vector, sink)
        out.append((vector, sink, passed, mismatches))
    return out


def test_every_shipped_step_meets_its_expectation(runs: list[Any]) -> None:
    for vector, _, passed, mismatches in runs:
        assert [m.line() for m in mismatches] == []
        assert passed == len(vector.steps)
    assert sum(len(v.steps) for v, *_ in runs) >= 150


def test_vectors_cover_every_code_and_kind(runs: list[Any]) -> None:
    expected = {s.expect for v, *_ in runs for s in v.steps}
    assert expected >= set(CODES) | {ACCEPT}
    accepted_kinds = {
        s.entry["kind"] for v, *_ in runs for s in v.steps if s.entry and s.expect == ACCEPT
    }
    assert accepted_kinds == set(KINDS)


def test_vectors_cover_every_transition(runs: list[Any]) -> None:
    seen = set().union(*(sink.transitions for _, sink, _, _ in runs))
    wanted = {("certificate", s, e) for s, e in certs.LIFECYCLE.table}
    wanted |= {("shipment", s, e) for s, e in ships.LIFECYCLE.table}
    assert wanted - seen == set()


def _vector(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "description": "test",
        "chain_id": "conformance-1",
        "members": [
            {
                "id": "CN",
                "jurisdictions": ["CN"],
                "roles": ["validator", "issuer", "customs"],
                "key_seed": "CN",
            },
            {
                "id": "US",
                "jurisdictions": ["US"],
                "roles": ["validator", "issuer", "customs"],
                "key_seed": "US",
            },
        ],
        "steps": steps,
        **extra,
    }


T0 = 1767225600000
ISSUE: dict[str, Any] = {
    "author": "CN",
    "kind": "cert.issue",
    "ts": 1767225600000,
    "body": {
        "cert_id": "CO-1",
        "type": "aeo",
        "issued_in": "CN",
        "holder": "Acme",
        "origin": "CN",
        "valid_from": 1767225600000,
        "valid_until": 1798761600000,
        "document_sha256": "0" * 64,
    },
    "expect": "accept",
}


def _write(path: Path, doc: object) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_exit_codes_and_output_in_a_real_process(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "contracts.conformance", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    ok = run(str(ROOT / "tests" / "vectors"))
    total = sum(len(load_vector(p).steps) for p in VECTORS)
    assert (ok.returncode, ok.stdout) == (0, f"{total} passed, 0 failed\n")

    wrong = dict(ISSUE, expect={"reject": "not_permitted"})
    bad = run(
        _write(tmp_path / "bad.json", _vector([ISSUE, dict(ISSUE, ts=ISSUE["ts"] + 1), wrong]))
    )
    lines = bad.stdout.splitlines()
    assert bad.returncode == 1
    assert lines[-1] == "1 passed, 2 failed"
    assert lines[0].startswith(
        f"{tmp_path / 'bad.json'}: step 1: expected accept, got reject duplicate: "
    )
    assert lines[1].startswith(
        f"{tmp_path / 'bad.json'}: step 2: expected reject not_permitted, got reject duplicate"
    )

    invalid = run(_write(tmp_path / "invalid.json", {"steps": []}))
    assert invalid.returncode == 2
    assert "invalid.json" in invalid.stderr and invalid.stdout == ""


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        (_vector([ISSUE], extra=1), "unknown field"),
        (_vector([dict(ISSUE, expect="maybe")]), "expect must be"),
        (_vector([dict(ISSUE, expect={"reject": "nope"})]), "expect must be"),
        (_vector([dict(ISSUE, ts=1.5)]), "not an integer"),
        (_vector([{k: v for k, v in ISSUE.items() if k != "body"}]), "missing field"),
        (_vector([ISSUE, {"replay": 5, "expect": "accept"}]), "replay must be"),
        (
            _vector([ISSUE, {"replay": 0, "author": "US", "expect": "accept"}]),
            "replay step takes only",
        ),
        (_vector([ISSUE], params={"entry_window_ms": 0}), "params.entry_window_ms"),
        (_vector([dict(ISSUE, ts="x")]), "block_time must be"),
        (_vector([]), "steps must be a non-empty list"),
    ],
)
def test_invalid_vector_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: object, message: str
) -> None:
    path = tmp_path / "v.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_missing_path_and_empty_folder_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert main([str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_step_options_chain_sign_with_block_time_replay(tmp_path: Path) -> None:
    steps = [
        ISSUE,
        dict(ISSUE, chain="other-1", expect={"reject": "wrong_chain"}),
        dict(ISSUE, sign_with="US", expect={"reject": "bad_signature"}),
        dict(ISSUE, block_time=ISSUE["ts"] + 600001, expect={"reject": "stale"}),
        {"replay": 0, "block_time": ISSUE["ts"] + 5, "expect": {"reject": "duplicate"}},
        dict(ISSUE, author="JP", expect={"reject": "unknown_author"}),
    ]
    vector = load_vector(Path(_write(tmp_path / "v.json", _vector(steps))))
    passed, mismatches = run_vector(vector)
    assert (passed, mismatches) == (len(steps), [])
    assert vector.genesis.genesis_time == ISSUE["ts"]
    assert vector.genesis.params.entry_window_ms == 600000  # DESIGN §4 default


def test_store_writes_a_verifiable_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ROOT / "tests" / "vectors" / "shipment_events.json"
    vector = load_vector(source)
    memory = MemorySink()
    run_vector(vector, memory)

    out = tmp_path / "out"
    assert main(["--store", str(out), str(source)]) == 0
    assert capsys.readouterr().out.endswith(f"{len(vector.steps)} passed, 0 failed\n")
    genesis = Genesis.from_json_bytes((out / "genesis.json").read_bytes())
    assert genesis.hash == vector.genesis.hash
    accepted = sum(1 for s in vector.steps if s.expect == ACCEPT)
    with store_module.Store.open(out / "ledger", genesis) as store:
        assert store.height == accepted and store.log_size() == accepted
        prev = bytes(32)
        for height in range(1, store.height + 1):
            header = store.get_header(height)
            assert header.prev == prev
            verify_commit(
                store.get_commit(height),
                genesis.validators,
                genesis.chain_id,
                height=height,
                block=header.hash(),
            )
            prev = header.hash()
        for key, value in memory.memory.data.items():
            assert store.get_raw(key) == value
        state = type("S", (), {"get": staticmethod(store.get_raw)})()
        record = load(state, b"x:contract/shipment/6CN5000-G")
        assert record is not None and record["status"] == "cleared"

    assert main(["--store", str(out), str(source)]) == 2  # never over an existing ledger
    assert main(["--store", str(tmp_path / "two"), str(ROOT / "tests" / "vectors")]) == 2
