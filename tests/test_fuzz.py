"""scripts/fuzz.py's smoke run: every decoder that takes outside bytes, fed its corpus
(seeds, found inputs, past crashes) and a few thousand mutations, raises only its
documented typed error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import fuzz  # noqa: E402

TARGETS = fuzz._targets()


@pytest.mark.parametrize("name", fuzz.NAMES)
def test_corpus_and_mutations_raise_only_typed_errors(name: str) -> None:
    corpus = fuzz.corpus_inputs(name)
    assert any(p.name.startswith("seed-") for p in (fuzz.CORPUS / name).iterdir())
    done, data, crash = fuzz.run_mutations(TARGETS[name], seed=20, execs=1500)
    assert (data, crash) == (None, ""), f"{name} crashed on {data!r}: {crash}"
    assert done == len(corpus) + 1500


def test_the_harness_counts_an_untyped_exception_as_a_crash() -> None:
    def brittle(data: bytes) -> None:
        if data[:1] == b"\x00":
            raise IndexError("not a documented error")

    target = fuzz.Target("brittle", brittle, "test")
    _, data, crash = fuzz.run_mutations(target, seed=1, execs=5000)
    assert data is not None and data[:1] == b"\x00" and crash.startswith("IndexError")


def test_the_config_crash_found_by_fuzzing_stays_fixed() -> None:
    crashes = sorted((fuzz.CORPUS / "config").glob("crash-*"))
    assert crashes, "the input that once crashed parse_config is kept in the corpus"
    for path in crashes:
        TARGETS["config"].run(path.read_bytes())  # a ConfigError now, caught by the target


def test_seeds_are_real_encodings_that_decode() -> None:
    from ledger.codec import decode

    for path in (fuzz.CORPUS / "entry").glob("seed-*"):
        assert isinstance(decode(path.read_bytes()), dict)
    bundle = next((fuzz.CORPUS / "bundle").glob("seed-*")).read_bytes()
    from contracts import subjects_of
    from ledger.bundle import verify_bundle
    from tests.local_chain import customs_genesis

    assert verify_bundle(bundle, customs_genesis(), subjects_of).histories


def test_atheris_run_of_one_decoder() -> None:
    pytest.importorskip("atheris")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--decoder", "frame",
         "--execs", "3000"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "frame" in done.stdout and "3000 execs" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "1 passed, 0 failed"
