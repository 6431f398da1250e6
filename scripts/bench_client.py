"""The officials' CLI, as an official runs it (``python scripts/bench.py client``).

- ``verify_bundle_50_wall_s``: ``customs verify --bundle`` of a 50-entry history in 50
  blocks, as a fresh process (interpreter start-up included), median of 10 runs; beside
  it ``python_startup_wall_s``, the bare interpreter's start-up, and
  ``library_imports_wall_s``, a process that only imports the libraries it uses
  (cryptography, msgpack, pycountry, rich), measured the same way.
- ``verify_online_wall_s``: ``customs verify`` against a local network of 4 validator
  processes, all four given with ``--node``, median of 10 runs.
- ``verify_2000_s`` against ``signatures_2000_s``: verifying a 2,000-entry history in
  process (bundle checks, replay through the rules, verdict) against the time its
  signature verifications alone take at the Ed25519 ceiling of the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_ledger import _genesis
from bench_network import ed25519_verify_per_s
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.block import Commit
from ledger.bundle import build_bundle
from ledger.codec import decode
from ledger.entry import decode_wire
from ledger.genesis import Genesis
from ledger.keys import Domain, VerifyKey, signing_message
from node.client.agree import check_bundle
from node.client.verdicts import judge_certificate
from tests import samples
from tests.local_chain import LocalChain

CUSTOMS = Path(sys.executable).parent / "customs"
FAR = 2_082_758_400_000
RUNS = 10
# What the offline path imports of other projects: the floor of its start-up.
LIBRARIES = (
    "import cryptography.hazmat.primitives.asymmetric.ed25519, msgpack, pycountry, "
    "rich.console, rich.table"
)

TARGETS = {
    "verify_bundle_50_wall_s": ("<=", 0.3),
    "verify_online_wall_s": ("<=", 0.5),
    "verify_2000_s": ("<=", 2.0, "signatures_2000_s"),
}


def _history(chain: LocalChain, cert_id: str, entries: int, per_block: int) -> None:
    """A certificate issued, then amended ``entries - 1`` times, ``per_block`` a block."""
    issue = samples.cert_issue(cert_id, "CN", valid_until=FAR)
    chain.block(chain.sign("CN", "cert.issue", issue), step_ms=1_000)
    amends = [
        {"cert_id": cert_id, "changes": {"holder": f"Holder {n}"}, "reason": f"amendment {n}"}
        for n in range(entries - 1)
    ]
    for start in range(0, len(amends), per_block):
        batch = amends[start : start + per_block]
        chain.block(*(chain.sign("CN", "cert.amend", a) for a in batch), step_ms=1_000)


def _wall(argv: list[str], env: dict[str, str], expect: int = 0) -> float:
    timings = []
    for _ in range(RUNS):
        began = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True)
        timings.append(time.perf_counter() - began)
        assert done.returncode == expect, done.stderr.decode()
    return statistics.median(timings)


def _signatures(data: bytes, genesis: Genesis) -> list[tuple[VerifyKey, bytes, bytes]]:
    """Every signature verifying ``data`` checks, as (key, signed message, signature):
    each distinct entry's by its author, and every commit vote by its validator."""
    bundle = decode(data, max_bytes=64 * 1024 * 1024)
    assert isinstance(bundle, dict)
    checks = []
    for wire in {e["wire"] for s in bundle["subjects"] for e in s["entries"]}:
        signed = decode_wire(wire, genesis.params.max_entry_bytes)
        member = genesis.member(signed.entry.author)
        assert member is not None
        message = signing_message(Domain.ENTRY, genesis.chain_id, signed.entry_bytes)
        checks.append((member.public_key, message, signed.sig))
    for _, commit_obj in [(None, bundle["commit"]), *bundle["blocks"]]:
        commit = Commit.from_obj(commit_obj)
        payload = commit.precommit().encode()
        message = signing_message(Domain.VOTE, genesis.chain_id, payload)
        for member_id, sig in commit.votes:
            key = genesis.validators.key_of(member_id)
            assert key is not None
            checks.append((key, message, sig))
    return checks


def _cpu(fn: Callable[[], object]) -> float:
    began = time.thread_time()
    fn()
    return time.thread_time() - began


def measure_offline(results: dict[str, float], tmp: Path) -> None:
    genesis = _genesis()
    genesis_file = tmp / "genesis.json"
    genesis_file.write_bytes(genesis.to_json_bytes())
    chain = LocalChain(tmp / "db", genesis)
    _history(chain, "CO-CN-BENCH-50", 50, 1)
    _history(chain, "CO-CN-BENCH-2000", 2_000, 100)
    small = build_bundle(chain.store, ["cert/CO-CN-BENCH-50"])
    big = build_bundle(chain.store, ["cert/CO-CN-BENCH-2000"])
    chain.close()
    (tmp / "50.clb").write_bytes(small)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state"), "XDG_CONFIG_HOME": str(tmp)}
    argv = [str(CUSTOMS), "verify", "CO-CN-BENCH-50", "--genesis", str(genesis_file)]
    results["python_startup_wall_s"] = _wall([sys.executable, "-c", "pass"], env)
    results["library_imports_wall_s"] = _wall([sys.executable, "-c", LIBRARIES], env)
    results["verify_bundle_50_wall_s"] = _wall([*argv, "--bundle", str(tmp / "50.clb")], env)
    results["bundle_50_bytes"] = len(small)

    results["ed25519_verify_per_s"] = ed25519_verify_per_s()
    checks = [
        (Ed25519PublicKey.from_public_bytes(key.raw), message, sig)
        for key, message, sig in _signatures(big, genesis)
    ]

    def verify_all() -> None:
        verified = check_bundle(big, genesis, "bench")
        verdict = judge_certificate(genesis, verified.histories[0], at=verified.time)
        assert verdict.in_force and len(verified.histories[0].entries) == 2_000

    def signatures_alone() -> None:
        for public, message, sig in checks:
            public.verify(sig, message)

    # Thread CPU time, alternating rounds: both see the same host, however busy.
    whole, alone = [], []
    for _ in range(7):
        whole.append(_cpu(verify_all))
        alone.append(_cpu(signatures_alone))
    results["verify_2000_s"] = statistics.median(whole)
    results["signatures_2000_s"] = statistics.median(alone)
    results["signatures_2000"] = len(checks)


def measure_online(results: dict[str, float], tmp: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.cluster import Cluster

    ids = ["CN", "NL", "DE", "SG"]
    with Cluster(tmp / "net", ids, params={"block_interval_ms": 500}) as cluster:
        cluster.start(*ids)
        cluster.wait_height(2, ids)
        node = cluster["CN"]
        body = samples.cert_issue("CO-CN-BENCH-NET", "CN", valid_until=FAR)
        reply = node.post("/v1/submit", {"kind": "cert.issue", "body": body})
        assert reply.status == 202, reply.body
        cluster.wait_committed([json.loads(reply.body)["id"]], ids)
        env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state"), "XDG_CONFIG_HOME": str(tmp)}
        argv = [
            str(CUSTOMS),
            "verify",
            "CO-CN-BENCH-NET",
            "--genesis",
            str(cluster.root / "genesis.json"),
        ]
        argv += [x for m in ids for x in ("--node", cluster[m].url)]
        results["verify_online_wall_s"] = _wall(argv, env)


def measure(results: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix="customs-bench-client-") as tmp:
        measure_offline(results, Path(tmp))
        measure_online(results, Path(tmp))
