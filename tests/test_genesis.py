"""The genesis document (DESIGN §4)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from ledger.codec import encode
from ledger.errors import GenesisError
from ledger.genesis import CORE_PARAMS, Genesis, Params
from node.daemon.key_files import load_genesis
from tests.factories import make_genesis, make_member, member_key


def _doc() -> dict[str, Any]:
    return copy.deepcopy(dict(make_genesis().document))


def test_parse_and_hash() -> None:
    doc = _doc()
    genesis = Genesis.from_json_bytes(json.dumps(doc).encode())
    assert genesis.hash == hashlib.sha256(encode(doc)).digest()
    assert genesis.validators.ids == ("CN", "DE", "NL", "US")
    assert (genesis.validators.n, genesis.validators.f, genesis.validators.quorum) == (4, 1, 3)
    assert genesis.member("DE") is not None and genesis.member("XX") is None


def test_any_edit_changes_the_hash() -> None:
    doc = _doc()
    doc["members"][0]["name"] = "Other name"
    assert Genesis.from_document(doc).hash != make_genesis().hash


@pytest.mark.parametrize(
    ("n", "f", "quorum"), [(1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 1, 3), (7, 2, 5), (10, 3, 7)]
)
def test_quorum_is_more_than_two_thirds(n: int, f: int, quorum: int) -> None:
    ids = [f"M{i:02d}" for i in range(n)]
    genesis = make_genesis(members=[make_member(i, ["CN"]) for i in ids])
    assert (genesis.validators.n, genesis.validators.f, genesis.validators.quorum) == (
        n,
        f,
        quorum,
    )
    assert 3 * genesis.validators.quorum > 2 * n


def test_validators_exclude_other_roles_and_are_sorted() -> None:
    members = [
        make_member("ZZ", ["CN"]),
        make_member("AA", ["CN"], roles=["issuer"]),
        make_member("BB", ["CN"]),
    ]
    genesis = make_genesis(members=members)
    assert genesis.validators.ids == ("BB", "ZZ")
    assert genesis.validators.proposer(1, 0) == "ZZ"
    assert genesis.validators.proposer(1, 1) == "BB"


def test_params_default_and_bounds() -> None:
    doc = _doc()
    del doc["params"]
    assert Genesis.from_document(doc).params == Params()
    doc["params"] = {"max_entry_bytes": 10}
    with pytest.raises(GenesisError, match=r"params\.max_entry_bytes"):
        Genesis.from_document(doc)


def test_the_heartbeat_defaults_to_a_minute_and_is_bounded_to_an_hour() -> None:
    doc = _doc()
    assert "empty_block_interval_ms" not in doc["params"]  # DESIGN's four, and no more
    assert Genesis.from_document(doc).params.empty_block_interval_ms == 60_000
    doc["params"]["empty_block_interval_ms"] = 5_000
    assert Genesis.from_document(doc).params.empty_block_interval_ms == 5_000
    for bad in (0, 3_600_001, "60s"):
        doc["params"]["empty_block_interval_ms"] = bad
        with pytest.raises(GenesisError, match=r"params\.empty_block_interval_ms"):
            Genesis.from_document(doc)


def test_build_writes_a_parameter_beyond_designs_four_only_when_it_is_not_the_default() -> None:
    members = [make_member("CN", ["CN"])]
    plain = Genesis.build("c-1", 1, members, Params())
    assert sorted(plain.document["params"]) == sorted(CORE_PARAMS)
    tuned = Genesis.build("c-1", 1, members, Params(empty_block_interval_ms=1_000))
    assert tuned.document["params"]["empty_block_interval_ms"] == 1_000
    assert Genesis.from_document(dict(tuned.document)).params == tuned.params


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(chain_id=""), "chain_id"),
        (lambda d: d.update(genesis_time=-1), "genesis_time"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["params"].update(bogus=1), "params.bogus"),
        (lambda d: d.update(members=[]), "members"),
        (lambda d: d["members"][1].update(id="de"), r"members\[1\]\.id"),
        (lambda d: d["members"][1].update(jurisdictions=["XX"]), r"members\[1\]\.jurisdictions"),
        (lambda d: d["members"][1].update(jurisdictions=[]), r"members\[1\]\.jurisdictions"),
        (lambda d: d["members"][1].update(roles=["king"]), r"members\[1\]\.roles"),
        (lambda d: d["members"][1].update(public_key="00"), r"members\[1\]\.public_key"),
        (lambda d: d["members"][1].update(endpoints=["ftp://x"]), r"members\[1\]\.endpoints"),
        (lambda d: d["members"][1].pop("name"), r"members\[1\]\.name"),
        (lambda d: d["members"][1].update(nick="x"), r"members\[1\]\.nick"),
        (lambda d: d["members"][1].update(id="CN"), r"members\[1\]\.id"),
        (
            lambda d: d["members"][1].update(public_key=member_key("CN").public_key.hex),
            r"members\[1\]\.public_key",
        ),
        (lambda d: [m.update(roles=["issuer"]) for m in d["members"]], "members"),
    ],
)
def test_errors_name_the_offending_field(mutate: Any, field: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(GenesisError, match=f"genesis: {field}"):
        Genesis.from_document(doc)


def test_floats_and_bad_json_rejected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = json.dumps(_doc()).replace('"genesis_time": 1767225600000', '"genesis_time": 1.5')
    with pytest.raises(GenesisError, match="not an integer"):
        Genesis.from_json_bytes(text.encode())
    with pytest.raises(GenesisError, match="not valid JSON"):
        Genesis.from_json_bytes(b"{")
    with pytest.raises(GenesisError, match="nested too deeply"):
        Genesis.from_json_bytes(b"[" * 100_000)
    with pytest.raises(GenesisError, match="file"):
        load_genesis(tmp_path / "missing.json")


def test_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    genesis = make_genesis()
    path = tmp_path / "genesis.json"
    path.write_bytes(genesis.to_json_bytes())
    assert load_genesis(path).hash == genesis.hash


def test_validator_set_hash_depends_on_keys() -> None:
    a = make_genesis(("CN", "DE")).validators.hash()
    b = make_genesis(("CN", "NL")).validators.hash()
    assert a != b and len(a) == 32
