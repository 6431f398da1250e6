"""customs-node testnet: a local network's directories and genesis, written in one step."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.genesis import is_country
from node.admin.cli import main
from node.admin.provision import load_node
from node.daemon.config import load_config
from node.daemon.key_files import load_genesis, load_key
from tests.cluster import FAST_TIMEOUTS, http

SCRIPT = Path(sys.executable).parent / "customs-node"
# The demo's own members file: what `make demo` hands to testnet.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from demo_network import MEMBERS as DEMO  # noqa: E402


def run_testnet(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["testnet", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def demo_file(tmp_path: Path, members: object = None) -> Path:
    path = tmp_path / "members.json"
    path.write_text(json.dumps(DEMO if members is None else members))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_n_members_each_get_a_node_dir_that_run_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net"
    code, out, err = run_testnet(capsys, "--dir", str(net), "--members", "4")
    assert code == 0, err
    genesis = load_genesis(net / "genesis.json")
    ids = [m.id for m in genesis.members]
    assert len(ids) == 4 and genesis.validators.n == 4
    codes = [j for m in genesis.members for j in m.jurisdictions]
    assert len(set(codes)) == 4 and all(is_country(c) for c in codes)
    ports = set()
    for member in genesis.members:
        node = net / member.id
        assert member.roles == {"validator", "issuer", "customs"}
        assert (node / "genesis.json").read_bytes() == (net / "genesis.json").read_bytes()
        assert mode(node) == 0o700 and mode(node / "data") == 0o700
        assert mode(node / "node.key") == 0o600 and mode(node / "api.token") == 0o600
        config, _, key = load_node(node / "node.toml")
        assert key.public_key == member.public_key
        assert config.listen_host == "127.0.0.1"
        assert member.endpoints == (f"http://127.0.0.1:{config.listen_port}",)
        ports.add(config.listen_port)
        # The summary names each member, URL and config, never a secret.
        assert f"http://127.0.0.1:{config.listen_port}" in out
        assert f"customs-node run --config {node / 'node.toml'}" in out
        leaked = (node / "api.token").read_text().strip() in out + err  # prints no token
        assert not leaked, "an API token appears in testnet's output"
        assert key.to_pem(None).decode().splitlines()[1] not in out + err
    assert len(ports) == 4 and all(p > 0 for p in ports)
    assert genesis.hash_hex in out


def test_members_file_with_a_non_validator_base_port_params_and_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net"
    net.mkdir()  # an empty directory is as good as none
    doc = {"members": DEMO, "params": {"block_interval_ms": 250, "max_block_entries": 10}}
    args = ["--dir", str(net), "--members", str(demo_file(tmp_path, doc)), "--chain-id", "x-1"]
    args += ["--base-port", "17400", "--param", "max_block_entries=20"]
    args += ["--set", "timeouts.propose_ms=700", "--set", "log.level=debug"]
    code, out, err = run_testnet(capsys, *args)
    assert code == 0, err
    genesis = load_genesis(net / "genesis.json")
    assert genesis.chain_id == "x-1"
    assert genesis.validators.ids == ("CN", "DE", "NL", "SG")
    assert genesis.member("US") is not None and "validator" not in genesis.member("US").roles
    # The file's params stand unless --param names the same one.
    assert (genesis.params.block_interval_ms, genesis.params.max_block_entries) == (250, 20)
    for n, member in enumerate(DEMO):
        config = load_config(net / str(member["id"]) / "node.toml")
        assert config.listen_port == 17400 + n
        assert (config.timeouts.propose_ms, config.log_level) == (700, "debug")
    assert "US      issuer,customs" in out


def nodes_written(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


BAD_MEMBER_FILES = [
    ([{**DEMO[0], "colour": "red"}], "members[0].colour: unknown field"),
    ([DEMO[0], {**DEMO[1], "id": "CN"}], "members[1].id: 'CN' appears twice"),
    ([{**DEMO[0], "public_key": "00" * 32}], "members[0].public_key: testnet generates"),
    ([{**DEMO[0], "endpoints": []}], "members[0].endpoints: testnet generates"),
    ([DEMO[4]], "at least one member must have role 'validator'"),
    ([{**DEMO[0], "jurisdictions": ["XX"]}], "members[0].jurisdictions[0]"),
    (["CN"], "members[0] must be an object"),
    ([], "members: must be a non-empty list"),
]


@pytest.mark.parametrize(("members", "message"), BAD_MEMBER_FILES)
def test_bad_members_file_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], members: object, message: str
) -> None:
    path = demo_file(tmp_path, members)
    code, out, err = run_testnet(capsys, "--dir", str(tmp_path / "net"), "--members", str(path))
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err
    assert nodes_written(tmp_path) == ["members.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--members", "0"], "--members 0: the number of members must be in 1..249"),
        (["--members", "250"], "must be in 1..249"),
        (["--members", "-1"], "must be in 1..249"),
        (["--members", "nonexistent.json"], "cannot read --members"),
        (["--members", "4", "--base-port", "65533"], "ports 65533..65536 must lie in 1..65535"),
        (["--members", "1", "--base-port", "0"], "--base-port 0"),
        (["--members", "1", "--base-port", "x"], "invalid int value"),
        (["--members", "1", "--param", "colour=red"], "params.colour: unknown parameter"),
        (["--members", "1", "--param", "block_interval_ms=soon"], "params.block_interval_ms"),
        (["--members", "1", "--param", "block_interval_ms"], "must be KEY=VALUE"),
        (["--members", "1", "--param", "a=1", "--param", "a=2"], "--param a is given twice"),
        (["--members", "1", "--set", "timeouts.propose_ms=0"], "timeouts.propose_ms: must be"),
        (["--members", "1", "--set", "log.level=loud"], "log.level: must be one of"),
        (["--members", "1", "--set", "limits.colour=1"], "limits.colour: unknown setting"),
        (["--members", "1", "--set", "listen.port=80"], "listen.port: not a settable key"),
        (["--members", "1", "--set", "id=XX"], "id: not a settable key"),
        (
            ["--members", "1", "--set", "limits.max_frame_bytes=2048"],
            "limits.max_frame_bytes: must be at least",
        ),
        (["--members", "1", "--host", "0.0.0.0"], "wildcard address"),
        (["--members", "1", "--host", "no such host"], "not an IP address or host name"),
        (["--members", "1", "--chain-id", "bad chain!"], "chain_id: must match"),
        (["--members", "1", "--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_testnet(capsys, "--dir", str(tmp_path / "net"), *args)
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err
    assert nodes_written(tmp_path) == []


def test_refuses_a_non_empty_dir_and_leaves_it_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net"
    assert run_testnet(capsys, "--dir", str(net), "--members", "2")[0] == 0
    before = {p: p.read_bytes() for p in net.rglob("*") if p.is_file()}
    code, _, err = run_testnet(capsys, "--dir", str(net), "--members", "2")
    assert code == 2 and "is not an empty directory" in err
    assert {p: p.read_bytes() for p in net.rglob("*") if p.is_file()} == before
    assert nodes_written(tmp_path) == ["net"]


@contextlib.contextmanager
def running(configs: list[Path], logs: Path) -> Iterator[None]:
    """``customs-node run`` for each config; every process group is killed on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for config in configs:
            with (logs / f"{config.parent.name}.log").open("ab") as log:
                procs.append(
                    subprocess.Popen(
                        [str(SCRIPT), "run", "--config", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def status(url: str) -> dict[str, object] | None:
    try:
        reply = http("GET", url + "/v1/status", timeout=2.0)
    except OSError:
        return None
    return reply.json() if reply.status == 200 else None  # type: ignore[no-any-return]


@pytest.mark.slow
def test_the_written_demo_network_starts_and_commits_blocks(tmp_path: Path) -> None:
    net = tmp_path / "net"
    args = ["testnet", "--dir", str(net), "--members", str(demo_file(tmp_path))]
    fast = [f"--set=timeouts.{key}={value}" for key, value in FAST_TIMEOUTS.items()]
    heartbeat = ["--param", "empty_block_interval_ms=300"]  # an idle chain's blocks, soon
    done = subprocess.run(
        [str(SCRIPT), *args, "--param", "block_interval_ms=150", *heartbeat, *fast],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    genesis = load_genesis(net / "genesis.json")
    urls = {m.id: m.endpoints[0] for m in genesis.members}
    logs = tmp_path / "logs"
    logs.mkdir()
    with running([net / m.id / "node.toml" for m in genesis.members], logs):
        deadline = time.monotonic() + 60
        seen: dict[str, dict[str, object] | None] = {}
        while time.monotonic() < deadline:
            seen = {i: status(url) for i, url in urls.items()}
            if all(s is not None and int(str(s["height"])) >= 2 for s in seen.values()):
                break
            time.sleep(0.2)
        else:
            tails = {p.name: p.read_text()[-1500:] for p in logs.iterdir()}
            pytest.fail(f"no block on every node within 60 s: {seen}; logs: {tails}")
        # The non-validator follows the same chain the four validators decide.
        block = {i: http("GET", url + "/v1/blocks/1").json()["hash"] for i, url in urls.items()}
        assert len(set(block.values())) == 1, block
        assert seen["US"] is not None and seen["US"]["validators"] == ["CN", "DE", "NL", "SG"]
    # The key in each directory is the one genesis lists for that member.
    for member in genesis.members:
        assert load_key(net / member.id / "node.key").public_key == member.public_key
