"""node.toml: the rendered default loads unchanged; every bad setting is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.genesis import Genesis
from node.daemon.config import (
    ConfigError,
    Limits,
    NodeConfig,
    Timeouts,
    check_against_genesis,
    load_config,
    parse_settings,
    peer_urls,
    render_default_config,
    serves_tls,
)
from tests.factories import make_genesis, make_member


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_rendered_default_loads_to_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, render_default_config("CN", listen_port=7201))
    config = load_config(path)
    assert config.member_id == "CN"
    assert config.limits == Limits() and config.timeouts == Timeouts()
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 7201)
    assert config.peers is None and config.passphrase_file is None
    assert (config.log_format, config.log_level) == ("text", "info")
    # Relative paths are resolved against the config file, not the working directory.
    assert config.data_dir == tmp_path / "data"
    assert config.key_file == tmp_path / "node.key"
    assert config.genesis_file == tmp_path / "genesis.json"
    assert config.api_token_file == tmp_path / "api.token"
    text = path.read_text()
    for name in Limits.__dataclass_fields__:
        assert f"\n{name} = " in text, name


def test_every_setting_can_be_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
id = "DE"
data_dir = "/var/lib/customs"
genesis_file = "../g.json"
key_file = "keys/de.key"
api_token_file = "tok"
passphrase_file = "pass"
[listen]
host = "0.0.0.0"
port = 0
[peers]
CN = "http://10.0.0.1:7101/"
[limits]
max_frame_bytes = 2048
mempool_max_entries = 1
[timeouts]
propose_ms = 3000
reconnect_min_ms = 10
reconnect_max_ms = 10
[log]
format = "json"
level = "debug"
""",
    )
    config = load_config(path)
    assert config.data_dir == Path("/var/lib/customs")
    assert config.genesis_file == (tmp_path / "../g.json").absolute()
    assert config.passphrase_file == tmp_path / "pass"
    assert config.peers == {"CN": "http://10.0.0.1:7101"}
    assert config.limits.max_frame_bytes == 2048 and config.limits.mempool_max_entries == 1
    assert config.limits.max_request_bytes == Limits().max_request_bytes
    assert config.timeouts.propose_ms == 3000
    assert (config.listen_port, config.log_format, config.log_level) == (0, "json", "debug")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('id = "cn"', "id", "member id"),
        ("", "id", "member id"),
        ('id = "CN"\ncolour = 1', "colour", "unknown setting"),
        ('id = "CN"\n[limits]\nmax_frame_byte = 5', "limits.max_frame_byte", "unknown"),
        ('id = "CN"\n[limits]\nmax_frame_bytes = 1023', "limits.max_frame_bytes", "1024.."),
        ('id = "CN"\n[limits]\nmax_frame_bytes = "big"', "limits.max_frame_bytes", "integer"),
        ('id = "CN"\n[limits]\nmempool_max_entries = 0', "limits.mempool_max_entries", "1.."),
        ('id = "CN"\n[limits]\nmax_peer_connections = true', "limits.max_peer_connections", ""),
        ('id = "CN"\n[timeouts]\nprevote_ms = 0', "timeouts.prevote_ms", "1.."),
        (
            'id = "CN"\n[timeouts]\nreconnect_min_ms = 5\nreconnect_max_ms = 4',
            "timeouts.reconnect_min_ms",
            "exceed",
        ),
        ('id = "CN"\n[listen]\nport = 65536', "listen.port", "0..65535"),
        ('id = "CN"\n[listen]\naddr = "x"', "listen.addr", "unknown"),
        ('id = "CN"\nlisten = 5', "listen", "table"),
        ('id = "CN"\n[log]\nformat = "xml"', "log.format", "text"),
        ('id = "CN"\n[log]\nlevel = "loud"', "log.level", "info"),
        ('id = "CN"\ndata_dir = ""', "data_dir", "path"),
        ('id = "CN"\nkey_file = 3', "key_file", "path"),
        ('id = "CN"\n[peers]\nde = "http://x"', "peers.de", "member id"),
        ('id = "CN"\n[peers]\nDE = "ftp://x"', "peers.DE", "http"),
        ('id = "CN"\nid = "DE"', "file", "TOML"),
        ('id = "CN"\nx = ' + "[" * 5000 + "]" * 5000, "file", "nested too deeply"),
    ],
)
def test_bad_settings_name_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(path) in str(info.value)


def test_limit_at_bounds_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, 'id = "CN"\n[limits]\nmax_frame_bytes = 1024\nmempool_max_entries = 1')
    assert load_config(path).limits.max_frame_bytes == 1024


def test_missing_oversize_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    big = write(tmp_path, "# " + "x" * 300_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)
    binary = tmp_path / "b.toml"
    binary.write_bytes(b'id = "\xff"')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(binary)


@pytest.mark.parametrize("key", ["data_dir", "genesis_file", "key_file", "api_token_file"])
def test_a_path_under_an_unknown_users_home_is_a_config_error(tmp_path: Path, key: str) -> None:
    # Found by scripts/fuzz.py (tests/fuzz/corpus/config/crash-*): Path.expanduser
    # raised RuntimeError, and customs-node run died with a traceback.
    path = write(tmp_path, f'id = "CN"\n{key} = "~no-such-user-here/x"\n')
    with pytest.raises(ConfigError, match=f"{key}: .*names no home directory"):
        load_config(path)


def config_for(tmp_path: Path, text: str) -> NodeConfig:
    return load_config(write(tmp_path, text))


def test_peer_urls_default_to_other_members_endpoints(tmp_path: Path) -> None:
    genesis = make_genesis(
        members=[
            make_member("CN", endpoints=["http://cn:1"]),
            make_member("DE", endpoints=["http://de:1/", "http://de:2"]),
            make_member("NL"),
        ]
    )
    config = config_for(tmp_path, 'id = "CN"')
    assert peer_urls(config, genesis) == {"DE": "http://de:1"}
    pinned = config_for(tmp_path, 'id = "CN"\n[peers]\nNL = "http://nl:9"')
    assert peer_urls(pinned, genesis) == {"NL": "http://nl:9"}


def test_check_against_genesis(tmp_path: Path) -> None:
    genesis = make_genesis(("CN", "DE"))
    check_against_genesis(config_for(tmp_path, 'id = "CN"'), genesis)
    cases = [
        ('id = "FR"', "id"),
        ('id = "CN"\n[peers]\nFR = "http://fr"', "peers.FR"),
        ('id = "CN"\n[peers]\nCN = "http://cn"', "peers.CN"),
        ('id = "CN"\n[limits]\nmax_frame_bytes = 4096', "limits.max_frame_bytes"),
        ('id = "CN"\n[limits]\nmempool_max_bytes = 16383', "limits.mempool_max_bytes"),
    ]
    for text, key in cases:
        with pytest.raises(ConfigError) as info:
            check_against_genesis(config_for(tmp_path, text), genesis)
        assert info.value.key == key


def test_peer_slots_leave_room_for_every_member_past_the_unauthenticated_budget(
    tmp_path: Path,
) -> None:
    # Issue 18: strangers' sockets never take more than max_unauthenticated_peers, so a
    # cap at that plus the other members always has a slot for each member.
    genesis = make_genesis(("CN", "DE", "NL", "US"))
    at = 'id = "CN"\n[limits]\nmax_unauthenticated_peers = 5\nmax_peer_connections = 8'
    check_against_genesis(config_for(tmp_path, at), genesis)  # 5 + 3 other members
    past = at.replace("max_peer_connections = 8", "max_peer_connections = 7")
    with pytest.raises(ConfigError) as info:
        check_against_genesis(config_for(tmp_path, past), genesis)
    assert info.value.key == "limits.max_peer_connections"
    assert "max_unauthenticated_peers + 3 other members = 8" in info.value.problem
    # The defaults leave room for a network of up to 49 members.
    check_against_genesis(config_for(tmp_path, 'id = "CN"'), genesis)
    assert Limits().max_peer_connections - Limits().max_unauthenticated_peers == 48


@pytest.mark.parametrize(
    ("key", "low", "high"),
    [
        ("limits.max_unauthenticated_peers", 1, 4096),
        ("limits.max_unauthenticated_per_address", 1, 4096),
        ("limits.sync_requests_per_s", 1, 100_000),
        ("limits.sync_answer_bytes", 64 * 1024, 16 * 1024**3),
        ("timeouts.peer_auth_ms", 1, 3_600_000),
    ],
)
def test_the_issue_18_limits_at_and_past_their_bounds(key: str, low: int, high: int) -> None:
    table, _, name = key.partition(".")
    for value in (low, high):
        tuning = parse_settings({key: value})
        assert getattr(getattr(tuning, table), name) == value
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError) as info:
            parse_settings({key: value})
        assert info.value.key == key


def test_settings_render_into_a_config_that_loads_them(tmp_path: Path) -> None:
    settings = {
        "limits.max_frame_bytes": 1024 * 1024,
        "timeouts.propose_ms": 400,
        "log.format": "json",
        "log.level": "debug",
    }
    tuning = parse_settings(settings)
    config = load_config(write(tmp_path, render_default_config("CN", tuning=tuning)))
    assert config.limits == Limits(max_frame_bytes=1024 * 1024)
    assert config.timeouts == Timeouts(propose_ms=400)
    assert (config.log_format, config.log_level) == ("json", "debug")


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"timeouts.propose_ms": 0}, "timeouts.propose_ms"),
        ({"timeouts.propose_ms": "400"}, "timeouts.propose_ms"),
        ({"limits.nope": 1}, "limits.nope"),
        ({"log.colour": "red"}, "log.colour"),
        ({"listen.port": 1}, "listen.port"),
        ({"timeouts": 1}, "timeouts"),
        ({"timeouts.propose_ms.x": 1}, "timeouts.propose_ms.x"),
        (
            {"timeouts.reconnect_min_ms": 900, "timeouts.reconnect_max_ms": 800},
            "timeouts.reconnect_min_ms",
        ),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(settings)
    assert caught.value.key.startswith(key)


def test_render_refuses_bad_id() -> None:
    with pytest.raises(ConfigError):
        render_default_config("not an id")


def test_plaintext_only_on_loopback_and_tls_as_genesis_says(tmp_path: Path) -> None:
    def genesis_with(cn: str, de: str) -> Genesis:
        return make_genesis(
            members=[make_member("CN", endpoints=[cn]), make_member("DE", endpoints=[de])]
        )

    loopback = genesis_with("http://127.0.0.1:7101", "http://127.0.0.1:7102")
    config = config_for(tmp_path, 'id = "CN"')
    check_against_genesis(config, loopback)
    assert not serves_tls(config, loopback)
    remote = genesis_with("https://10.0.0.1:7101", "https://10.0.0.2:7101")
    check_against_genesis(config_for(tmp_path, 'id = "CN"\n[listen]\nhost = "0.0.0.0"'), remote)
    assert serves_tls(config, remote)
    cases = [
        # Plaintext served on an address other machines reach.
        ('id = "CN"\n[listen]\nhost = "0.0.0.0"', loopback, "listen.host"),
        # Plaintext dialled to another machine, from the peers table or from genesis.
        ('id = "CN"\n[peers]\nDE = "http://10.0.0.2:7101"', loopback, "peers.DE"),
        (
            'id = "CN"',
            genesis_with("http://127.0.0.1:7101", "http://10.0.0.2:7101"),
            "genesis endpoints",
        ),
        # listen.tls against what genesis tells peers to dial, either way.
        ('id = "CN"\n[listen]\ntls = false', remote, "listen.tls"),
        ('id = "CN"\n[listen]\ntls = true', loopback, "listen.tls"),
        ('id = "CN"\n[listen]\ntls = "yes"', loopback, "listen.tls"),
    ]
    for text, genesis, key in cases:
        with pytest.raises(ConfigError) as info:
            check_against_genesis(config_for(tmp_path, text), genesis)
        assert info.value.key == key, (text, info.value)
