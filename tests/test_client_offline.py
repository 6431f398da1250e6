"""``customs`` from saved proof bundles: verdicts recomputed from the rules, timelines,
tampering, rollback and forks, exit codes and the JSON schema — no network touched.

The chain is real (LevelDB, the node's block maker, the contracts, Ed25519 quorum
commits); ``customs`` runs as ``main(argv)`` in this process, as the console script does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ledger.genesis import Genesis
from node.client.cli import main
from tests import samples
from tests.local_chain import DAY_MS, LocalChain, customs_genesis

ROOT = Path(__file__).resolve().parent.parent
FAR = 2_082_758_400_000  # 2036-01-01: certificates that stay valid whatever today is


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    document = json.loads(out)
    assert document["exit_code"] == code
    return code, document


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The official's own config, environment and checkpoints never reach these tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "no-state"))
    for name in ("CUSTOMS_GENESIS", "CUSTOMS_NODES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return customs_genesis()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, genesis: Genesis) -> Iterator[dict[str, Any]]:
    """One chain with a certificate's whole life, saving a bundle after each step."""
    root = tmp_path_factory.mktemp("client")
    genesis_file = root / "genesis.json"
    genesis_file.write_bytes(genesis.to_json_bytes())
    chain = LocalChain(root / "db", genesis)
    cert = samples.cert_issue("CO-CN-2026-000123", "CN", valid_until=FAR)
    aeo = samples.cert_issue("AEO-CN-0042", "CN", type_="aeo", valid_until=FAR)
    times: dict[str, int] = {}
    bundles: dict[str, Path] = {}
    subjects = ["cert/CO-CN-2026-000123"]

    def step(name: str, author: str, kind: str, body: dict[str, Any]) -> None:
        times[name] = chain.write(author, kind, body)
        chain.block()  # an empty block after each step, as a live chain has
        bundles[name] = chain.bundle(subjects, root / f"{name}.clb")

    step("issued", "CN", "cert.issue", cert)
    times["aeo"] = chain.write("CN", "cert.issue", aeo)
    chain.write("NL", "cert.recognize", {"cert_id": "AEO-CN-0042", "arrangement": "EU-CN MRA"})
    chain.write("DE", "cert.recognize", {"cert_id": "AEO-CN-0042", "arrangement": "EU-CN MRA"})
    bundles["aeo"] = chain.bundle(["cert/AEO-CN-0042"], root / "aeo.clb")
    reason = {"cert_id": cert["cert_id"], "reason": "holder under investigation (case 118)"}
    step("suspended", "CN", "cert.suspend", reason)
    step("reinstated", "CN", "cert.reinstate", {**reason, "reason": "investigation closed"})
    ship = samples.declare(
        "6CN-SHA-2026-0001",
        certificates=("CO-CN-2026-000123",),
        containers=(samples.container("MSC", 1),),
    )
    times["declared"] = chain.write("CN", "shipment.declare", ship)
    step("revoked", "CN", "cert.revoke", {**reason, "reason": "issued on forged invoices"})
    expired = samples.cert_issue(
        "CO-CN-2026-OLD", "CN", valid_until=samples.cert_issue("X-1")["valid_from"] + 10 * DAY_MS
    )
    future = samples.cert_issue("CO-CN-2026-NEXT", "CN", valid_from=FAR - DAY_MS, valid_until=FAR)
    chain.write("CN", "cert.issue", expired)
    chain.write("CN", "cert.issue", future)
    chain.block()
    bundles["others"] = chain.bundle(
        [
            "cert/CO-CN-2026-OLD",
            "cert/CO-CN-2026-NEXT",
            "cert/NEVER-ISSUED-1",
            "shipment/6CN-SHA-2026-0001",
            "cert/CO-CN-2026-000123",
        ],
        root / "others.clb",
    )
    chain.close()
    yield {"root": root, "genesis": genesis_file, "times": times, "bundles": bundles}


def verify(
    capsys: pytest.CaptureFixture[str],
    world: dict[str, Any],
    bundle: str | Path,
    cert_id: str,
    *extra: str | Path,
    state: Path | None = None,
) -> tuple[int, dict[str, Any]]:
    """``customs verify --json`` from one of the world's bundles (by name) or a file, with
    a checkpoint directory of its own unless ``state`` is shared on purpose."""
    path = world["bundles"][bundle] if isinstance(bundle, str) else bundle
    state = state or world["root"] / f"state-{path.stem}-{cert_id}-{len(extra)}"
    argv = ["verify", cert_id, "--genesis", world["genesis"], "--bundle", path]
    return run_json(capsys, *argv, "--state-dir", state, *extra)


# -- verdicts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "verdict", "code"),
    [
        ("issued", "IN_FORCE", 0),
        ("suspended", "SUSPENDED", 1),
        ("reinstated", "IN_FORCE", 0),
        ("revoked", "REVOKED", 1),
    ],
)
def test_each_step_of_a_certificates_life_has_its_verdict(
    capsys: pytest.CaptureFixture[str],
    world: dict[str, Any],
    bundle: str,
    verdict: str,
    code: int,
) -> None:
    exit_code, document = verify(capsys, world, bundle, "CO-CN-2026-000123")
    assert (exit_code, document["verdict"]) == (code, verdict)
    assert document["certificate"]["status"] == {"IN_FORCE": "active"}.get(verdict, verdict.lower())


def test_revoked_names_who_when_and_why(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any]
) -> None:
    code, out, _ = run(
        capsys,
        "verify",
        "CO-CN-2026-000123",
        "--genesis",
        world["genesis"],
        "--bundle",
        world["bundles"]["revoked"],
        "--state-dir",
        world["root"] / "s-human",
    )
    first = out.splitlines()[0]
    assert code == 1
    assert first.startswith("REVOKED on 2026-01-01") and "by CN Customs" in first
    assert first.endswith("issued on forged invoices")
    assert "as of 2026-01-01" in out and "nothing omitted" in out
    kinds = re.findall(r"cert\.\w+", out)
    assert kinds[:4] == ["cert.issue", "cert.suspend", "cert.reinstate", "cert.revoke"]


def test_at_answers_for_the_moment_asked(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any]
) -> None:
    t = world["times"]
    cases = [
        (t["issued"] - 1, "UNKNOWN", 1),
        (t["issued"], "IN_FORCE", 0),
        (t["suspended"] + 1, "SUSPENDED", 1),
        (t["reinstated"], "IN_FORCE", 0),
        (t["revoked"] - 1, "IN_FORCE", 0),
        (t["revoked"], "REVOKED", 1),
    ]
    for at, verdict, code in cases:
        exit_code, document = verify(capsys, world, "revoked", "CO-CN-2026-000123", "--at", str(at))
        assert (exit_code, document["verdict"], document["at"]) == (code, verdict, at)
    iso = "2026-01-01T00:00:00Z"
    _, document = verify(capsys, world, "revoked", "CO-CN-2026-000123", "--at", iso)
    assert document["at"] == 1_767_225_600_000 and document["verdict"] == "UNKNOWN"


def test_expired_not_yet_valid_and_unknown(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any]
) -> None:
    assert verify(capsys, world, "others", "CO-CN-2026-OLD")[1]["verdict"] == "EXPIRED"
    assert verify(capsys, world, "others", "CO-CN-2026-NEXT")[1]["verdict"] == "NOT_YET_VALID"
    code, document = verify(capsys, world, "others", "NEVER-ISSUED-1")
    assert (code, document["verdict"], document["certificate"]) == (1, "UNKNOWN", None)
    assert "proven absent" in document["headline"]


def test_document_match_and_mismatch(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    # samples.DOCUMENT is the SHA-256 of b"test".
    good, bad = tmp_path / "cert.pdf", tmp_path / "forged.pdf"
    good.write_bytes(b"test")
    bad.write_bytes(b"test!")
    code, document = verify(capsys, world, "issued", "CO-CN-2026-000123", "--document", good)
    assert (code, document["verdict"], document["document"]) == (0, "IN_FORCE", "match")
    code, document = verify(capsys, world, "issued", "CO-CN-2026-000123", "--document", bad)
    assert (code, document["verdict"], document["document"]) == (1, "DOCUMENT_MISMATCH", "mismatch")


def test_aeo_recognitions_are_shown(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any]
) -> None:
    code, document = verify(capsys, world, "aeo", "AEO-CN-0042")
    assert code == 0
    assert [(r["member"], r["arrangement"]) for r in document["recognitions"]] == [
        ("DE", "EU-CN MRA"),
        ("NL", "EU-CN MRA"),
    ]
    code, out, _ = run(
        capsys,
        "verify",
        "AEO-CN-0042",
        "--genesis",
        world["genesis"],
        "--bundle",
        world["bundles"]["aeo"],
        "--state-dir",
        world["root"] / "s-a",
    )
    assert "recognised by" in out and "NL Customs (NL) under EU-CN MRA" in out


def test_shipment_history_shows_cited_certificate_status(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any]
) -> None:
    code, document = run_json(
        capsys,
        "history",
        "6CN-SHA-2026-0001",
        "--genesis",
        world["genesis"],
        "--bundle",
        world["bundles"]["others"],
        "--state-dir",
        world["root"] / "s-h",
    )
    assert code == 0
    (shipment,) = document["subjects"]
    assert shipment["subject"] == "shipment/6CN-SHA-2026-0001"
    assert shipment["record"]["status"] == "declared"
    (declared,) = shipment["timeline"]
    assert declared["cited"] == [
        {"cert_id": "CO-CN-2026-000123", "in_force": True, "status": "in force"}
    ]


# -- tampering ------------------------------------------------------------------------------


def test_every_single_byte_change_fails_or_changes_nothing(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    original = world["bundles"]["issued"].read_bytes()
    code, reference = verify(capsys, world, "issued", "CO-CN-2026-000123")
    assert code == 0
    mutated = tmp_path / "mutated.clb"
    outcomes: dict[int, int] = {}
    for position in range(len(original)):
        data = bytearray(original)
        data[position] ^= 0x01
        mutated.write_bytes(bytes(data))
        code, document = verify(capsys, world, mutated, "CO-CN-2026-000123", state=tmp_path)
        outcomes[code] = outcomes.get(code, 0) + 1
        if code == 0:
            # Still verifies: then it must say exactly the same (e.g. a vote's round).
            assert document["verdict"] == reference["verdict"]
            assert document["timeline"] == reference["timeline"]
        else:
            assert code == 3 and document["error"]["check"], (position, document)
    assert outcomes.get(3, 0) > 0.9 * len(original) and set(outcomes) <= {0, 3}


def test_truncated_and_empty_files_name_the_failed_check(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    original = world["bundles"]["issued"].read_bytes()
    for cut in (0, 1, len(original) // 2, len(original) - 1):
        path = tmp_path / f"cut-{cut}.clb"
        path.write_bytes(original[:cut])
        code, document = verify(capsys, world, path, "CO-CN-2026-000123", state=tmp_path)
        assert code == 3 and document["error"]["check"] == "decode"
    code, _, err = run(
        capsys,
        "verify",
        "CO-CN-2026-000123",
        "--genesis",
        world["genesis"],
        "--bundle",
        tmp_path / "cut-0.clb",
        "--state-dir",
        tmp_path,
    )
    assert code == 3 and "VERIFICATION FAILED: decode" in err


def test_a_bundle_of_another_chain_fails(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "other-genesis.json"
    other.write_bytes(
        customs_genesis().to_json_bytes().replace(b"customs-client-1", b"customs-client-2")
    )
    code, document = run_json(
        capsys,
        "verify",
        "CO-CN-2026-000123",
        "--genesis",
        other,
        "--bundle",
        world["bundles"]["issued"],
        "--state-dir",
        tmp_path,
    )
    assert code == 3 and document["error"]["check"] == "chain"


# -- checkpoints: rollback and forks ------------------------------------------------------


def test_an_older_bundle_after_a_newer_one_is_a_rollback(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert verify(capsys, world, "issued", "CO-CN-2026-000123", state=state)[0] == 0
    code, document = verify(capsys, world, "revoked", "CO-CN-2026-000123", state=state)
    assert code == 1 and document["proof"]["warnings"]  # newer, offline: noted
    code, document = verify(capsys, world, "issued", "CO-CN-2026-000123", state=state)
    assert code == 3 and document["error"]["check"] == "rollback"
    assert "older than" in document["error"]["message"]
    # Asked about a moment it covers, the older bundle still answers in full.
    issued = world["times"]["issued"]
    code, document = verify(
        capsys, world, "issued", "CO-CN-2026-000123", "--at", str(issued), state=state
    )
    assert (code, document["verdict"]) == (0, "IN_FORCE")
    assert any("older than the remembered" in w for w in document["proof"]["warnings"])
    # Another official's laptop (a fresh state) has no memory and accepts it.
    assert verify(capsys, world, "issued", "CO-CN-2026-000123")[0] == 0


def test_two_chains_signed_at_one_height_are_a_fork(
    capsys: pytest.CaptureFixture[str], genesis: Genesis, tmp_path: Path
) -> None:
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_bytes(genesis.to_json_bytes())
    bundles = []
    for holder in ("Holder A", "Holder B"):
        chain = LocalChain(tmp_path / holder, genesis)
        body = samples.cert_issue("CO-CN-FORK-1", "CN", valid_until=FAR)
        body["holder"] = holder
        chain.write("CN", "cert.issue", body)
        bundles.append(chain.bundle(["cert/CO-CN-FORK-1"], tmp_path / f"{holder}.clb"))
        chain.close()
    common = ("verify", "CO-CN-FORK-1", "--genesis", genesis_file, "--state-dir", tmp_path / "s")
    assert run_json(capsys, *common, "--bundle", bundles[0])[0] == 0
    code, document = run_json(capsys, *common, "--bundle", bundles[1])
    assert code == 3 and document["error"]["check"] == "fork"
    assert "two quorum-signed headers at height" in document["error"]["message"]


def test_max_age_refuses_an_old_head(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any]
) -> None:
    code, document = verify(capsys, world, "issued", "CO-CN-2026-000123", "--max-age", "7d")
    assert code == 3 and document["error"]["check"] == "max_age"  # the chain is from January


# -- usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],
        ["verify", "not a cert id!", "--bundle", "x"],
        ["verify", "CO-1", "--at", "yesterday", "--bundle", "x"],
        ["verify", "CO-1", "--max-age", "soon", "--bundle", "x"],
        ["verify", "CO-1", "--bundle", "/nonexistent/proof.clb"],
        ["verify", "CO-1", "--genesis", "/nonexistent/genesis.json", "--bundle", "x"],
        ["frobnicate"],
        ["submit", "cert.revoke", "--node", "ftp://x"],
        ["status", "--trust", "anything"],
        # An https URL genesis does not list: nothing to pin it to, and no --trust system.
        ["status", "--node", "https://ledger.example.nl"],
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], argv: list[str]
) -> None:
    if "--genesis" not in argv:
        argv = [*argv, "--genesis", str(world["genesis"])] if len(argv) > 1 else argv
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("customs: usage:"), err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("verify", "history", "proof", "status", "submit"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert "examples:" in capsys.readouterr().out


# -- the documented JSON schema -------------------------------------------------------------


def _schemas() -> dict[str, Any]:
    text = (ROOT / "docs" / "cli.md").read_text()
    block = text.split("<!-- schema -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    schemas: dict[str, Any] = json.loads(block)
    return schemas


def test_json_output_follows_the_documented_schema(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    schema = _schemas()
    jsonschema.Draft202012Validator.check_schema(schema)
    documents = [
        verify(capsys, world, "revoked", "CO-CN-2026-000123")[1],
        verify(capsys, world, "aeo", "AEO-CN-0042")[1],
        verify(capsys, world, "others", "NEVER-ISSUED-1")[1],
        run_json(
            capsys,
            "history",
            "shipment/6CN-SHA-2026-0001",
            "--genesis",
            world["genesis"],
            "--bundle",
            world["bundles"]["others"],
            "--state-dir",
            tmp_path,
        )[1],
        run_json(
            capsys,
            "verify",
            "CO-CN-2026-000123",
            "--genesis",
            world["genesis"],
            "--bundle",
            tmp_path / "missing.clb",
        )[1],
    ]
    for document in documents:
        jsonschema.validate(document, schema)


def test_the_offline_path_loads_no_network_code(world: dict[str, Any], tmp_path: Path) -> None:
    """``--bundle`` touches no network: not even the client's HTTP module is imported."""
    script = (
        "import sys\n"
        "from node.client.cli import main\n"
        f"code = main(['verify', 'CO-CN-2026-000123', '--genesis', {str(world['genesis'])!r},"
        f" '--bundle', {str(world['bundles']['issued'])!r}, '--state-dir', {str(tmp_path)!r},"
        " '--quiet'])\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'http', 'asyncio')"
        " or m in ('node.client.transport', 'node.client.gather', 'urllib.request')]\n"
        "print(loaded)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_a_node_that_never_answers_times_out_as_no_answer(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, document = run_json(
            capsys,
            "verify",
            "CO-CN-2026-000123",
            "--genesis",
            world["genesis"],
            "--node",
            url,
            "--timeout",
            "0.5",
            "--state-dir",
            tmp_path,
        )
    assert code == 4 and "timed out" in document["error"]["message"]
    assert "verdict" not in document


def test_settings_come_from_the_config_file_and_the_environment(
    capsys: pytest.CaptureFixture[str],
    world: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "customs" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'genesis = "{world["genesis"]}"\ntimeout = 2\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("CUSTOMS_GENESIS", raising=False)
    bundle = world["bundles"]["issued"]
    argv = ["verify", "CO-CN-2026-000123", "--bundle", bundle, "--state-dir", tmp_path]
    assert run_json(capsys, *argv)[1]["verdict"] == "IN_FORCE"
    # The environment wins over the file, and a flag over both.
    monkeypatch.setenv("CUSTOMS_GENESIS", str(tmp_path / "missing.json"))
    code, _, err = run(capsys, *argv)
    assert code == 2 and "missing.json" in err
    assert run_json(capsys, *argv, "--genesis", world["genesis"])[0] == 0
    config.write_text('genesis = "x"\nnodez = []\n')
    code, _, err = run(capsys, *argv)
    assert code == 2 and "unknown keys ['nodez']" in err
