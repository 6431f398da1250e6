"""customs-node init / genesis / run: through main(argv) and the installed script."""

from __future__ import annotations

import io
import json
import logging
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.http_exceptions import LineTooLong

from ledger.keys import SigningKey
from ledger.store import Store
from node.admin.cli import CliError, load_node, main
from node.daemon.config import load_config
from node.daemon.key_files import load_genesis, load_key
from node.daemon.logs import ClientErrorFilter, setup_logging
from tests.factories import GENESIS_TIME, make_member

SCRIPT = Path(sys.executable).parent / "customs-node"


def init(tmp_path: Path, member_id: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(["init", "--data-dir", str(tmp_path / member_id), "--id", member_id, *extra])
    out = capsys.readouterr().out
    assert code == 0
    return out.strip()


def members_file(tmp_path: Path, keys: dict[str, str]) -> Path:
    members = [
        {
            **make_member(i, endpoints=[f"http://127.0.0.1:{7101 + n}"]).to_json(),
            "public_key": key,
        }
        for n, (i, key) in enumerate(sorted(keys.items()))
    ]
    path = tmp_path / "members.json"
    path.write_text(json.dumps(members))
    return path


def network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Two initialised nodes sharing one genesis copied into each node dir."""
    keys = {i: init(tmp_path, i, capsys) for i in ("CN", "DE")}
    out = tmp_path / "genesis.json"
    args = [
        "genesis",
        "--chain-id",
        "customs-demo-1",
        "--members",
        str(members_file(tmp_path, keys)),
    ]
    assert main([*args, "-o", str(out), "--genesis-time", str(GENESIS_TIME)]) == 0
    capsys.readouterr()
    for i in keys:
        shutil.copy(out, tmp_path / i / "genesis.json")
    return out


def test_init_creates_key_token_and_loadable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = init(tmp_path, "CN", capsys, "--listen", "127.0.0.1:7301")
    node = tmp_path / "CN"
    key = load_key(node / "node.key")
    assert key.public_key.hex == public
    for name in ("node.key", "api.token"):
        assert stat.S_IMODE((node / name).stat().st_mode) == 0o600, name
    assert len((node / "api.token").read_text().strip()) == 64
    config = load_config(node / "node.toml")
    assert (config.member_id, config.listen_port) == ("CN", 7301)
    assert config.data_dir == node / "data" and config.data_dir.is_dir()


def test_init_refuses_non_empty_dir_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init(tmp_path, "CN", capsys)
    before = {p: p.read_bytes() for p in (tmp_path / "CN").iterdir() if p.is_file()}
    assert main(["init", "--data-dir", str(tmp_path / "CN"), "--id", "CN"]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tmp_path / "CN").iterdir() if p.is_file()} == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "cn"], "--id"),
        (["--id", "CN", "--listen", "localhost"], "--listen"),
        (["--id", "CN", "--listen", "h:70000"], "--listen"),
        (["--id", "CN", "--passphrase-file", "/nonexistent/pass"], "--passphrase-file"),
    ],
)
def test_init_bad_arguments_exit_2_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["init", "--data-dir", str(tmp_path / "n"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_init_with_passphrase_encrypts_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse\n")
    public = init(tmp_path, "CN", capsys, "--passphrase-file", str(secret))
    key_file = tmp_path / "CN" / "node.key"
    assert b"ENCRYPTED" in key_file.read_bytes()
    assert load_key(key_file, b"correct horse").public_key.hex == public
    assert load_config(tmp_path / "CN" / "node.toml").passphrase_file == secret


def test_genesis_builds_a_valid_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = network(tmp_path, capsys)
    genesis = load_genesis(out)
    assert genesis.chain_id == "customs-demo-1" and genesis.genesis_time == GENESIS_TIME
    assert genesis.validators.ids == ("CN", "DE")
    assert json.loads(out.read_text())["params"]["max_block_entries"] == 5000
    # The object form with params, and the printed hash, agree with the file.
    members = json.loads((tmp_path / "members.json").read_text())
    obj = tmp_path / "m2.json"
    obj.write_text(json.dumps({"members": members, "params": {"block_interval_ms": 250}}))
    out2 = tmp_path / "g2.json"
    args = ["genesis", "--chain-id", "c-2", "--members", str(obj), "-o", str(out2)]
    assert main([*args, "--genesis-time", "5"]) == 0
    assert capsys.readouterr().out.strip() == load_genesis(out2).hash_hex
    assert load_genesis(out2).params.block_interval_ms == 250


def test_genesis_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = network(tmp_path, capsys)
    before = out.read_bytes()
    args = ["genesis", "--chain-id", "other-1", "--members", str(tmp_path / "members.json")]
    assert main([*args, "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*args, "-o", str(out), "--force"]) == 0
    assert load_genesis(out).chain_id == "other-1"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m[1].update(public_key="00" * 31), "members[1].public_key"),
        (lambda m: m[0].update(roles=["king"]), "members[0].roles[0]"),
        (lambda m: m[0].update(jurisdictions=["XX"]), "members[0].jurisdictions[0]"),
        (lambda m: m[1].update(id="CN"), "members[1].id"),
        (lambda m: m[0].pop("name"), "members[0].name"),
        (lambda m: m[0].update(colour="red"), "members[0].colour"),
    ],
)
def test_genesis_errors_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: object, field: str
) -> None:
    keys = {"CN": SigningKey.generate().public_key.hex, "DE": SigningKey.generate().public_key.hex}
    path = members_file(tmp_path, keys)
    members = json.loads(path.read_text())
    mutate(members)  # type: ignore[operator]
    path.write_text(json.dumps(members))
    out = tmp_path / "g.json"
    assert main(["genesis", "--chain-id", "c-1", "--members", str(path), "-o", str(out)]) == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        ('{"members": [], "extra": 1}', "unknown top-level field"),
        ('"text"', "expected a JSON list"),
        ("[1.5]", "not an integer"),
        ("[]", "members"),
    ],
)
def test_genesis_bad_members_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    args = ["genesis", "--chain-id", "c-1", "--members", str(path), "-o", str(tmp_path / "g")]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_genesis_bad_chain_id_and_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = members_file(tmp_path, {"CN": SigningKey.generate().public_key.hex})
    base = ["genesis", "--members", str(path), "-o", str(tmp_path / "g")]
    assert main([*base, "--chain-id", "bad chain"]) == 2
    assert "chain_id" in capsys.readouterr().err
    assert main([*base, "--chain-id", "c-1", "--genesis-time", "-1"]) == 2
    assert "genesis_time" in capsys.readouterr().err


def test_run_validates_config_genesis_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network(tmp_path, capsys)
    config = tmp_path / "CN" / "node.toml"
    loaded, genesis, key = load_node(config)
    assert genesis.member("CN") is not None and genesis.member("CN").public_key == key.public_key  # type: ignore[union-attr]
    assert loaded.member_id == "CN"
    # Another member's key in this node's dir is refused.
    (tmp_path / "CN" / "node.key").unlink()
    shutil.copy(tmp_path / "DE" / "node.key", tmp_path / "CN" / "node.key")
    assert main(["run", "--config", str(config)]) == 2
    assert "genesis lists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: (d / "node.toml").write_text('id = "CN"\nbogus = 1'), "bogus"),
        (lambda d: (d / "genesis.json").unlink(), "genesis"),
        (lambda d: (d / "genesis.json").write_text("{}"), "chain_id"),
        (lambda d: (d / "node.key").write_text("junk"), "node.key"),
        (lambda d: (d / "api.token").write_text("short"), "token shorter"),
        (lambda d: (d / "node.toml").write_text('id = "NL"'), "not a member"),
    ],
)
def test_run_refuses_bad_setups_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    network(tmp_path, capsys)
    edit(tmp_path / "CN")  # type: ignore[operator]
    assert main(["run", "--config", str(tmp_path / "CN" / "node.toml")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("customs-node run: error:")


def test_run_refuses_a_store_in_use_or_made_for_another_genesis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network(tmp_path, capsys)
    node = tmp_path / "CN"
    config = node / "node.toml"
    store_dir = load_config(config).data_dir / "ledger"
    store = Store.open(store_dir, load_genesis(node / "genesis.json"))
    try:
        assert main(["run", "--config", str(config)]) == 2
    finally:
        store.close()
    err = capsys.readouterr().err
    assert err.startswith("customs-node run: error: store ") and "in use" in err
    assert "Traceback" not in err
    # The same store under a genesis for another chain: refused, the store unchanged.
    members = json.loads((node / "genesis.json").read_text())["members"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(members))
    args = ["genesis", "--chain-id", "customs-other-1", "--members", str(other)]
    assert main([*args, "-o", str(node / "genesis.json"), "--force"]) == 0
    capsys.readouterr()
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "was made for genesis" in err and "customs-demo-1" in err and "Traceback" not in err


def test_run_missing_config_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0


def test_installed_script_end_to_end(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
        )

    keys = {}
    for i in ("CN", "DE"):
        done = run("init", "--data-dir", str(tmp_path / i), "--id", i)
        assert done.returncode == 0, done.stderr
        keys[i] = done.stdout.strip()
    members = members_file(tmp_path, keys)
    out = tmp_path / "CN" / "genesis.json"
    done = run("genesis", "--chain-id", "c-1", "--members", str(members), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == load_genesis(out).hash_hex
    done = run("init", "--data-dir", str(tmp_path / "CN"), "--id", "CN")
    assert done.returncode == 2 and "not an empty directory" in done.stderr
    (tmp_path / "CN" / "node.toml").write_text('id = "CN"\n[limits]\nmax_frame_bytes = 1')
    done = run("run", "--config", str(tmp_path / "CN" / "node.toml"))
    assert done.returncode == 2
    assert "limits.max_frame_bytes" in done.stderr and "Traceback" not in done.stderr


def test_malformed_http_requests_log_one_warning_line_and_other_errors_keep_theirs() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    server = logging.getLogger("aiohttp.server")
    try:
        setup_logging("text", "info", stream)
        setup_logging("text", "info", stream)  # set up twice: still one filter
        for exc in (LineTooLong(b"/v1/" + b"a" * 9000, 8190), RuntimeError("a bug of ours")):
            try:
                raise exc
            except Exception:
                server.exception("Error handling request from %s", "10.0.0.9")
    finally:
        root.handlers[:], root.level = saved
    assert len([f for f in server.filters if isinstance(f, ClientErrorFilter)]) == 1
    lines = stream.getvalue().splitlines()
    assert "WARNING aiohttp.server: malformed HTTP request from 10.0.0.9: 400 Got more" in lines[0]
    assert len(lines[0]) < 400
    # Anything else aiohttp reports (our handler raising) stays an ERROR with its traceback.
    assert "ERROR   aiohttp.server: Error handling request from 10.0.0.9" in lines[1]
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: a bug of ours"


def test_json_logs_are_one_object_per_line() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("json", "info", stream)
        logging.getLogger("node.test").info("peer %s linked", "DE", extra={"height": 7})
        logging.getLogger("node.test").debug("hidden at info")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("node.test").exception("failed")
        setup_logging("text", "warning", stream)
        logging.getLogger("node.test").warning("plain")
    finally:
        root.handlers[:], root.level = saved
    lines = stream.getvalue().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["msg"] == "peer DE linked" and first["height"] == 7
    assert (first["level"], first["logger"]) == ("info", "node.test")
    assert first["ts"].endswith("Z")
    assert second["level"] == "error" and "ValueError: boom" in second["exc"]
    assert lines[-1].endswith("WARNING node.test: plain")
    assert len([line for line in lines if line.startswith("{")]) == 2
    with pytest.raises(ValueError):
        setup_logging("xml", "info", stream)


@pytest.mark.parametrize(
    ("name", "mode", "said"),
    [
        ("node.key", 0o644, "key_file"),
        ("api.token", 0o666, "api_token_file"),
        ("data", 0o777, "data_dir"),
    ],
)
def test_run_refuses_files_other_users_can_reach(
    tmp_path: Path, name: str, mode: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like ssh: a readable key, a writable token or a shared data dir stops the start,
    with the chmod that fixes it; --allow-insecure-files gets past this check."""
    assert main(["testnet", "--dir", str(tmp_path / "net"), "--members", "1"]) == 0
    node_dir = tmp_path / "net" / "CN"
    (node_dir / name).chmod(mode)
    capsys.readouterr()
    config = node_dir / "node.toml"
    with pytest.raises(CliError, match=f"{said} .* has mode {mode:04o}.*chmod"):
        load_node(config)
    loaded, _, _ = load_node(config, check_modes=False)
    assert loaded.member_id == "CN"


def test_init_closes_an_existing_empty_directory(tmp_path: Path) -> None:
    node_dir = tmp_path / "cn"
    node_dir.mkdir(mode=0o777)
    node_dir.chmod(0o777)
    assert main(["init", "--data-dir", str(node_dir), "--id", "CN"]) == 0
    assert node_dir.stat().st_mode & 0o777 == 0o700
