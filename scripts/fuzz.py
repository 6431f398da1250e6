"""Fuzz every decoder that takes outside bytes, coverage-guided with atheris (libFuzzer).

    python scripts/fuzz.py                          # every decoder, 20,000 executions each
    python scripts/fuzz.py --decoder bundle --execs 1000000
    python scripts/fuzz.py --engine mutate          # no atheris: seeded random mutation
    python scripts/fuzz.py --make-seeds             # rewrite tests/fuzz/corpus/*/seed-*

A crash is any exception other than the decoder's documented typed error (``TARGETS``
names it), or a decoded value that does not re-encode to the bytes it came from where
the format is canonical. Each decoder's corpus is ``tests/fuzz/corpus/<decoder>/``: the
seeds (real encodings made by ``--make-seeds``), the inputs libFuzzer found that reach
new code (merged back after a run with ``--keep``), and every input that once crashed.
Atheris runs each decoder in a child process, since libFuzzer ends the process it runs
in; its findings go to a scratch directory first, so a run changes the repository only
with ``--keep``. The last line is ``N passed, M failed`` (one per decoder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
sys.path.insert(0, str(ROOT))

MAX_ENTRY_BYTES = 16 * 1024  # node.toml's default limits.max_entry_bytes
MAX_FRAME_BYTES = 1024 * 1024
MAX_BLOCK_ENTRIES = 64
MAX_LEN = 16 * 1024  # libFuzzer's -max_len: past every seed, within every limit that matters
GOSSIP_KINDS = ("entries", "proposal", "block_request", "block_response")
BLOCK_KINDS = ("block", "header", "commit")
API_ROUTES = ("entries", "submit")


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    what: str  # the decoder and its documented error, for the report


def _targets() -> dict[str, Target]:
    """Import the decoders (inside atheris' instrumentation when it runs) and wrap each."""
    from contracts import subjects_of
    from ledger.block import Block, Commit, Header
    from ledger.bundle import BundleError, verify_bundle
    from ledger.codec import decode, encode
    from ledger.entry import decode_wire
    from ledger.errors import BlockFormatError, CodecError, EntryError, GenesisError
    from ledger.genesis import Genesis
    from node.consensus.errors import MessageFormatError
    from node.consensus.messages import decode_message
    from node.daemon import gossip_payloads as gossip
    from node.daemon.api import ApiError, entries_of_body, parse_json_body, submit_of_body
    from node.daemon.config import ConfigError, parse_config
    from node.peers.errors import FrameError
    from node.peers.frames import decode_frame, encode_frame
    from tests.local_chain import customs_genesis

    genesis = customs_genesis()
    limits = gossip.Limits(MAX_ENTRY_BYTES, MAX_BLOCK_ENTRIES, MAX_FRAME_BYTES)
    config_path = Path(tempfile.gettempdir()) / "fuzz-node" / "node.toml"

    def codec(data: bytes) -> None:
        try:
            obj = decode(data)
        except CodecError:
            return
        # Canonical: exactly one encoding per value, so a value decoded is its bytes.
        if encode(obj) != data:
            raise AssertionError("decode accepted bytes that are not the canonical encoding")

    def entry(data: bytes) -> None:
        try:
            signed = decode_wire(data, MAX_ENTRY_BYTES)
        except EntryError:
            return
        if signed.wire_bytes != data or encode(signed.entry.to_obj()) != signed.entry_bytes:
            raise AssertionError("a decoded wire entry does not re-encode to its bytes")

    def frame(data: bytes) -> None:
        try:
            decoded = decode_frame(data, MAX_FRAME_BYTES)
        except FrameError:
            return
        if encode_frame(decoded) != data:
            raise AssertionError("a decoded frame does not re-encode to its bytes")

    def gossip_payload(data: bytes) -> None:
        if not data:
            return
        kind, payload = GOSSIP_KINDS[data[0] % len(GOSSIP_KINDS)], data[1:]
        try:
            if kind == "entries":
                gossip.decode_entries(payload, limits)
            elif kind == "proposal":
                gossip.decode_proposal_package(payload, limits)
            elif kind == "block_request":
                gossip.decode_block_request(payload)
            else:
                gossip.decode_block_response(payload, limits)
        except gossip.WireError:
            return

    def message(data: bytes) -> None:
        try:
            decode_message(data)
        except MessageFormatError:
            return

    def block(data: bytes) -> None:
        if not data:
            return
        kind, payload = BLOCK_KINDS[data[0] % len(BLOCK_KINDS)], data[1:]
        try:
            if kind == "block":
                decoded = Block.decode(
                    payload, max_entry_bytes=MAX_ENTRY_BYTES, max_entries=MAX_BLOCK_ENTRIES
                )
                if decoded.encode() != payload:
                    raise AssertionError("a decoded block does not re-encode to its bytes")
            elif kind == "header":
                Header.decode(payload)
            else:
                Commit.decode(payload)
        except BlockFormatError:
            return

    def bundle(data: bytes) -> None:
        try:
            verify_bundle(data, genesis, subjects_of)
        except BundleError:
            return

    def genesis_file(data: bytes) -> None:
        try:
            Genesis.from_json_bytes(data)
        except GenesisError:
            return

    def config(data: bytes) -> None:
        try:
            parse_config(data, config_path)
        except ConfigError:
            return

    def api_body(data: bytes) -> None:
        if not data:
            return
        route, raw = API_ROUTES[data[0] % len(API_ROUTES)], data[1:]
        try:
            body = parse_json_body(raw)
            if route == "entries":
                entries_of_body(body, 100, MAX_ENTRY_BYTES)
            else:
                submit_of_body(body)
        except ApiError as exc:
            if not 400 <= exc.status < 500:
                raise AssertionError(f"a client's body gave status {exc.status}") from exc

    return {
        t.name: t
        for t in (
            Target("codec", codec, "ledger.codec.decode: CodecError"),
            Target("entry", entry, "ledger.entry.decode_wire: EntryError"),
            Target("frame", frame, "node.peers.frames.decode_frame: FrameError"),
            Target("gossip", gossip_payload, "node.daemon.gossip_payloads.decode_*: WireError"),
            Target("message", message, "node.consensus.messages.decode_message: "
                   "MessageFormatError"),
            Target("block", block, "ledger.block Block/Header/Commit.decode: BlockFormatError"),
            Target("bundle", bundle, "ledger.bundle.verify_bundle: BundleError"),
            Target("genesis", genesis_file, "ledger.genesis.Genesis.from_json_bytes: "
                   "GenesisError"),
            Target("config", config, "node.daemon.config.parse_config: ConfigError"),
            Target("api", api_body, "node.daemon.api request bodies: ApiError (4xx)"),
        )
    }  # fmt: skip


NAMES = ("codec", "entry", "frame", "gossip", "message", "block", "bundle", "genesis", "config",
         "api")  # fmt: skip


def corpus_inputs(name: str) -> list[bytes]:
    folder = CORPUS / name
    return (
        [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []
    )


# -- the mutation engine: no atheris needed, used by the test suite's smoke run -----------


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One to four of libFuzzer's simple mutations: flip, set, insert, erase, splice."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[at % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[at % len(buf)] = rng.choice((0, 0x7F, 0x80, 0xC0, 0xC4, 0xDC, 0xDE, 0xFF,
                                             rng.randrange(256)))  # fmt: skip
        elif op == 2:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and buf:
            del buf[at : at + rng.randint(1, 16)]
        elif op == 4 and pool:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[at:at] = other[start : start + rng.randint(1, 64)]
        elif op == 5 and buf:
            # Duplicate a slice: repeated keys and fields, lengths that no longer fit.
            start = rng.randrange(len(buf))
            buf[at:at] = buf[start : start + rng.randint(1, 32)]
    return bytes(buf)


def run_mutations(target: Target, seed: int, execs: int) -> tuple[int, bytes | None, str]:
    """Every corpus input, then mutations of them; return (execs, crashing input, error)."""
    pool = corpus_inputs(target.name) or [b""]
    rng = random.Random(seed)
    done = 0
    for data in [*pool, *(mutate(rng, rng.choice(pool), pool) for _ in range(execs))]:
        done += 1
        try:
            target.run(data)
        except Exception as exc:  # a crash, by definition
            return done, data, f"{type(exc).__name__}: {exc}"
    return done, None, ""


# -- atheris --------------------------------------------------------------------------


def atheris_child(name: str, libfuzzer_args: list[str]) -> None:
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["ledger", "node", "contracts"]):
        targets = _targets()
    # libFuzzer's -merge runs argv[0] again through the shell: name this very child.
    again = f"{sys.executable} {Path(__file__).resolve()} --child {name} --"
    atheris.Setup([again, *libfuzzer_args], targets[name].run)
    atheris.Fuzz()


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"#(\d+)\s")


def run_atheris(name: str, execs: int, seed: int, keep: bool, log: Path) -> tuple[int, str]:
    """Fuzz ``name`` in a child; return (execs done, crash description or '')."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        work = Path(scratch) / "work"
        work.mkdir()
        argv = [
            sys.executable, __file__, "--child", name, "--",
            str(work), str(CORPUS / name),
            f"-runs={execs}", f"-seed={seed}", f"-max_len={MAX_LEN}",
            f"-artifact_prefix={scratch}/", "-print_final_stats=1", "-rss_limit_mb=2048",
        ]  # fmt: skip
        with log.open("w") as out:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        text = log.read_text(errors="replace")
        done = _DONE.search(text)
        stats = _STAT.findall(text)
        count = int(done.group(1)) if done else int(stats[-1]) if stats else 0
        crashes = sorted(Path(scratch).glob("crash-*")) + sorted(Path(scratch).glob("oom-*"))
        if proc.returncode == 0 and not crashes:
            if keep:
                _merge(name, work)
            return count, ""
        for crash in crashes:  # kept: each crash becomes a regression input
            shutil.copy(crash, CORPUS / name / f"crash-{_digest(crash.read_bytes())}")
        tail = [ln for ln in text.splitlines() if "Error" in ln or "Exception" in ln][-3:]
        return count, f"exit {proc.returncode}; " + " | ".join(tail)


def _merge(name: str, work: Path) -> None:
    """Add to the repository's corpus only the found inputs that reach new code."""
    subprocess.run(
        [sys.executable, __file__, "--child", name, "--", str(CORPUS / name), str(work),
         "-merge=1", f"-max_len={MAX_LEN}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    # libFuzzer names merged inputs by their SHA-1; ours are seed-*, crash-* or that.


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# -- seeds ----------------------------------------------------------------------------


def make_seeds() -> dict[str, int]:
    """Real encodings of each format, written as tests/fuzz/corpus/<decoder>/seed-*."""
    seeds = dict(_seed_inputs())
    counts = {}
    for name in NAMES:
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for data in seeds.get(name, []):
            (folder / f"seed-{_digest(data)}").write_bytes(data)
        counts[name] = len(seeds.get(name, []))
    return counts


def _seed_inputs() -> Iterator[tuple[str, list[bytes]]]:
    from ledger.block import Vote
    from ledger.bundle import build_bundle
    from ledger.codec import encode
    from node.consensus.messages import sign_proposal, sign_vote
    from node.daemon import gossip_payloads as gossip
    from node.daemon.config import Tuning, render_default_config
    from node.peers.frames import Auth, Challenge, Height, Hello, Message, Ok, encode_frame
    from tests import samples
    from tests.factories import member_key
    from tests.local_chain import LocalChain, customs_genesis

    genesis = customs_genesis()
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as tmp:
        chain = LocalChain(Path(tmp) / "db", genesis)
        cert = samples.cert_issue("CO-CN-2026-000123", "CN", valid_until=2_082_758_400_000)
        chain.write("CN", "cert.issue", cert)
        aeo = samples.cert_issue("AEO-CN-0042", "CN", type_="aeo", valid_until=2_082_758_400_000)
        chain.write("CN", "cert.issue", aeo)
        chain.write("NL", "cert.recognize", {"cert_id": aeo["cert_id"], "arrangement": "MRA"})
        declared = samples.declare("6CN-SHA-2026-0001", certificates=(cert["cert_id"],))
        chain.write("CN", "shipment.declare", declared)
        chain.block()
        store = chain.store
        bundles = [
            build_bundle(store, ["cert/CO-CN-2026-000123"]),
            build_bundle(store, ["shipment/6CN-SHA-2026-0001", "cert/NEVER-1"]),
        ]
        height = store.height
        blocks = [store.get_block(h) for h in range(1, height + 1)]
        commits = [store.get_commit(h) for h in range(1, height + 1)]
        chain.close()
    assert all(b is not None for b in blocks) and all(c is not None for c in commits)
    entries = [e.wire_bytes for b in blocks if b is not None for e in b.entries]
    block_bytes = [b.encode() for b in blocks if b is not None]
    commit_bytes = [c.encode() for c in commits if c is not None]
    header = blocks[-1].header if blocks[-1] is not None else None
    assert header is not None
    key = member_key("CN")
    from ledger.block import Proposal

    proposal = sign_proposal(
        key, genesis.chain_id, "CN", Proposal(height, 0, header.hash(), -1)
    ).encode()
    votes = [
        sign_vote(key, genesis.chain_id, "CN", Vote(kind, height, 0, block)).encode()
        for kind in ("prevote", "precommit")
        for block in (header.hash(), None)
    ]
    frames = [
        encode_frame(f)
        for f in (
            Hello(genesis.chain_id, genesis.hash, "CN", bytes(32)),
            Challenge("NL", bytes(32), bytes(64)),
            Auth(bytes(64)),
            Ok(),
            Message("vote", votes[0], True, ("CN", "NL")),
            Message("entries", gossip.encode_entries(entries[:1]), False, ()),
            Height(height),
        )
    ]
    held = [(b, c) for b, c in zip(blocks, commits, strict=True) if b is not None and c]
    package = gossip.encode_proposal_package(proposal, held[-1][0], held[-2][1])
    response = gossip.encode_block_response(
        [gossip.SyncItem(b, c, held[i - 1][1] if i else None) for i, (b, c) in enumerate(held)][:2]
    )
    values = (None, True, -1, 2**64 - 1, "é", b"\0", [1, [2]], {"a": 1, "b": {"c": b""}})
    yield "codec", [encode(x) for x in values] + entries[:2] + frames[:2]
    yield "entry", entries
    yield "frame", frames
    yield (
        "gossip",
        [
            bytes([0]) + gossip.encode_entries(entries),
            bytes([1]) + package,
            bytes([2]) + gossip.encode_block_request(1, 3),
            bytes([3]) + response,
        ],
    )
    yield "message", [proposal, *votes]
    yield (
        "block",
        [bytes([0]) + b for b in block_bytes[-2:]]
        + [
            bytes([1]) + encode(header.to_obj()),
            *(bytes([2]) + c for c in commit_bytes[-2:]),
        ],
    )
    yield "bundle", bundles
    yield "genesis", [genesis.to_json_bytes()]
    yield "config", [
        render_default_config("CN", tuning=Tuning()).encode(),
        (render_default_config("CN", passphrase_file="pass.txt")
         + '\n[peers]\nNL = "http://127.0.0.1:7102"\n').encode(),
    ]  # fmt: skip
    as_json = [json.loads(json.dumps(_entry_json(w))) for w in entries[:2]]
    yield (
        "api",
        [
            bytes([0]) + json.dumps(as_json[0]).encode(),
            bytes([0]) + json.dumps(as_json).encode(),
            bytes([1]) + json.dumps({"kind": "cert.issue", "body": cert}).encode(),
        ],
    )


def _entry_json(wire: bytes) -> Any:
    from ledger.entry import decode_wire

    return decode_wire(wire, MAX_ENTRY_BYTES).to_json()


# -- command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        atheris_child(args[1], args[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decoder", choices=NAMES, action="append")
    parser.add_argument("--execs", type=int, default=20_000, help="executions per decoder")
    parser.add_argument("--engine", choices=("atheris", "mutate"), default=None,
                        help="default: atheris if it imports, else mutate")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true",
                        help="merge inputs that reach new code into the corpus")  # fmt: skip
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument("--make-seeds", action="store_true")
    opts = parser.parse_args(args)
    if opts.make_seeds:
        for name, count in make_seeds().items():
            print(f"{name}: {count} seeds")
        return 0
    engine = opts.engine or ("atheris" if _has_atheris() else "mutate")
    names = opts.decoder or list(NAMES)
    log_dir = opts.log_dir or Path(tempfile.mkdtemp(prefix="fuzz-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    targets = _targets() if engine == "mutate" else {}
    print(f"engine {engine}, {opts.execs} executions per decoder, seed {opts.seed}, "
          f"logs {log_dir}", flush=True)  # fmt: skip
    passed = failed = 0
    for name in names:
        start = time.monotonic()
        if engine == "atheris":
            done, crash = run_atheris(
                name, opts.execs, opts.seed, opts.keep, log_dir / f"{name}.log"
            )
        else:
            done, data, crash = run_mutations(targets[name], opts.seed, opts.execs)
            if data is not None:
                path = CORPUS / name / f"crash-{_digest(data)}"
                path.write_bytes(data)
                crash += f" (input saved as {path.relative_to(ROOT)})"
        took = time.monotonic() - start
        verdict = "ok" if not crash else f"CRASH {crash}"
        print(f"{name:8} {done:>9} execs {took:7.1f} s  {verdict}", flush=True)
        passed, failed = (passed + 1, failed) if not crash else (passed, failed + 1)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    os.environ.setdefault("CUSTOMS_LEDGER_PURE", "1")
    sys.exit(main())
