"""The block executor and the public API (issue 4, "The executor"; DESIGN §8-9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.chain as chain
import ledger.store as store_module
from contracts import (
    CODES,
    MemoryState,
    Rejection,
    certificate,
    check_entry_stateless,
    execute_block,
    subjects_of,
)
from contracts.kinds import KINDS
from contracts.state import PREFIX, LedgerState
from ledger.codec import CodecError, decode, encode
from ledger.entry import Entry, SignedEntry
from tests.factories import member_key
from tests.samples import cert_issue, declare, event
from tests.sandbox import GENESIS_TIME, Sandbox

T0 = GENESIS_TIME


@pytest.fixture
def box() -> Sandbox:
    return Sandbox()


def test_later_entries_see_earlier_writes_in_the_same_block(box: Sandbox) -> None:
    entries = [
        box.sign("CN", "cert.issue", cert_issue("CO-1")),
        box.sign("CN", "cert.suspend", {"cert_id": "CO-1", "reason": "r"}),
        box.sign("CN", "shipment.declare", declare("6CN-1", certificates=("CO-1",))),
    ]
    result = box.run(entries)
    assert [a.entry for a in result.accepted] == entries[:2]
    assert [(r.index, r.code) for r in result.rejected] == [(2, "not_in_force")]
    record = certificate(box.state, "CO-1")
    assert record is not None and record["status"] == "suspended"


def test_each_entry_acts_as_its_own_author_within_a_block(box: Sandbox) -> None:
    # Authors alternate inside one block: each entry's rules see its own author.
    entries = [
        box.sign("CN", "cert.issue", cert_issue("CO-1")),
        box.sign("DE", "cert.issue", cert_issue("DE-1", "DE", destination="CN")),
        box.sign("DE", "cert.suspend", {"cert_id": "CO-1", "reason": "r"}),
        box.sign("CN", "cert.suspend", {"cert_id": "CO-1", "reason": "r"}),
        box.sign("CN", "cert.suspend", {"cert_id": "DE-1", "reason": "r"}),
    ]
    result = box.run(entries)
    assert [a.entry for a in result.accepted] == [entries[0], entries[1], entries[3]]
    assert [(r.index, r.code) for r in result.rejected] == [
        (2, "not_permitted"),
        (4, "not_permitted"),
    ]
    issued = [certificate(box.state, c) for c in ("CO-1", "DE-1")]
    assert [(r or {}).get("issuer") for r in issued] == ["CN", "DE"]


def test_writes_are_canonical_records_under_the_contract_prefix(box: Sandbox) -> None:
    result = box.run(
        [
            box.sign("CN", "cert.issue", cert_issue("CO-1")),
            box.sign("CN", "shipment.declare", declare("6CN-1", certificates=("CO-1",))),
        ]
    )
    assert set(result.writes) == {PREFIX + b"cert/CO-1", PREFIX + b"shipment/6CN-1"}
    for value in result.writes.values():
        assert value is not None and encode(decode(value)) == value
    assert [a.subjects for a in result.accepted] == [
        ("cert/CO-1",),
        ("shipment/6CN-1", "cert/CO-1"),
    ]


def test_a_rejected_entry_changes_nothing(box: Sandbox) -> None:
    box.submit("CN", "cert.issue", cert_issue("CO-1"))
    before = dict(box.state.data)
    result = box.run([box.sign("DE", "cert.revoke", {"cert_id": "CO-1", "reason": "not mine"})])
    assert result.writes == {} and result.accepted == []
    assert box.state.data == before


def test_repeated_entry_in_a_block_is_a_duplicate(box: Sandbox) -> None:
    issue = box.sign("CN", "cert.issue", cert_issue("CO-1"))
    result = box.run([issue, issue.wire_bytes])
    assert len(result.accepted) == 1
    assert [(r.index, r.code, r.entry_id) for r in result.rejected] == [(1, "duplicate", issue.id)]
    assert box.run([issue]).rejected[0].code == "duplicate"  # committed before


def test_an_entry_appears_once_per_block_even_if_its_first_copy_fails(box: Sandbox) -> None:
    suspend = box.sign("CN", "cert.suspend", {"cert_id": "CO-1", "reason": "r"})
    result = box.run([suspend, box.sign("CN", "cert.issue", cert_issue("CO-1")), suspend])
    assert [(r.index, r.code) for r in result.rejected] == [(0, "not_found"), (2, "duplicate")]
    assert len(result.accepted) == 1
    # In a later block it is judged afresh: it was never committed.
    assert box.run([suspend]).accepted[0].entry == suspend


def test_verified_ids_skip_the_signature_check(box: Sandbox) -> None:
    forged = Entry(box.genesis.chain_id, "cert.issue", "CN", T0, cert_issue("CO-1"))
    signed = forged.sign(member_key("DE"))
    assert box.run([signed]).rejected[0].code == "bad_signature"
    result = execute_block(box.state, box.genesis, T0, [signed], verified={signed.id})
    assert len(result.accepted) == 1


def test_checked_ids_skip_every_stateless_rule_but_keep_the_stateful_ones(box: Sandbox) -> None:
    # A checked id stands for an entry that passed check_entry_stateless on ingest: even
    # its signature is not looked at again, but state (existence, status) still is.
    issue = Entry(box.genesis.chain_id, "cert.issue", "CN", T0, cert_issue("CO-1"))
    forged = issue.sign(member_key("DE"))
    result = execute_block(box.state, box.genesis, T0, [forged], checked={forged.id})
    assert len(result.accepted) == 1
    suspend = box.sign("CN", "cert.suspend", {"cert_id": "CO-9", "reason": "r"})
    result = execute_block(box.state, box.genesis, T0, [suspend], checked={suspend.id})
    assert [r.code for r in result.rejected] == ["not_found"]
    stale = box.sign("CN", "cert.issue", cert_issue("CO-2"), ts=T0 - 10**9)
    result = execute_block(box.state, box.genesis, T0, [stale], checked={stale.id})
    assert [r.code for r in result.rejected] == ["stale"]


def test_malformed_bytes_have_no_entry_id(box: Sandbox) -> None:
    result = box.run([b"\x81\xa1a\x01", b""])
    assert [(r.code, r.entry_id) for r in result.rejected] == [
        ("malformed", None),
        ("malformed", None),
    ]


def test_same_input_same_writes() -> None:
    runs = []
    for _ in range(2):
        box = Sandbox()
        box.run([box.sign("CN", "cert.issue", cert_issue("CO-1"))])
        runs.append(box.state.data)
    assert runs[0] == runs[1]


def test_check_entry_stateless_codes(box: Sandbox) -> None:
    good = box.sign("CN", "cert.issue", cert_issue("CO-1"))
    assert check_entry_stateless(good.wire_bytes, box.genesis) == good
    # Rules 5, 6 and 10-13 need the block or the state: not judged here.
    old = box.sign("CN", "cert.issue", cert_issue("CO-1"), ts=1)
    assert check_entry_stateless(old, box.genesis).entry.ts == 1
    cases: dict[str, bytes | SignedEntry] = {
        "malformed": b"\xc0",
        "too_large": b"\x00" * (box.genesis.params.max_entry_bytes + 1),
        "wrong_chain": Entry("other", "cert.issue", "CN", T0, {}).sign(member_key("CN")),
        "unknown_author": Entry(box.genesis.chain_id, "cert.issue", "JP", T0, {}).sign(
            member_key("JP")
        ),
        "bad_signature": Entry(box.genesis.chain_id, "cert.issue", "CN", T0, {}).sign(
            member_key("US")
        ),
        "invalid_body": box.sign("CN", "cert.issue", {"cert_id": "CO-1"}),
        "invalid_identifier": box.sign("CN", "cert.issue", {**cert_issue("CO-1"), "origin": "XX"}),
        "not_permitted": box.sign("NL", "cert.issue", cert_issue("CO-1", "NL")),
    }
    for code, wire in cases.items():
        with pytest.raises(Rejection) as caught:
            check_entry_stateless(wire, box.genesis)
        assert caught.value.code == code
    forged = cases["bad_signature"]
    with pytest.raises(Rejection, match="invalid_body"):
        check_entry_stateless(forged, box.genesis, verify_signature=False)


def test_subjects_of() -> None:
    def entry(kind: str, body: dict[str, Any]) -> Entry:
        return Entry("c", kind, "CN", T0, body)

    assert subjects_of(entry("cert.issue", cert_issue("CO-1"))) == ("cert/CO-1",)
    assert subjects_of(entry("cert.revoke", {"cert_id": "CO-1", "reason": "r"})) == ("cert/CO-1",)
    body = declare("6CN-1", certificates=("CO-2", "CO-1"))
    assert subjects_of(entry("shipment.declare", body)) == (
        "shipment/6CN-1",
        "cert/CO-2",
        "cert/CO-1",
    )
    assert subjects_of(entry("shipment.event", event("6CN-1", "loaded", "CNSHA"))) == (
        "shipment/6CN-1",
    )
    for kind, bad in (("cert.issue", {"cert_id": "CO-1"}), ("cert.burn", {"cert_id": "CO-1"})):
        with pytest.raises(Rejection) as caught:
            subjects_of(entry(kind, bad))
        assert caught.value.code == "invalid_body"


def test_limits_at_and_past_max_entry_bytes(box: Sandbox) -> None:
    limit = box.genesis.params.max_entry_bytes
    base = box.sign("CN", "cert.issue", {**cert_issue("CO-1"), "pad": ""})
    pad = "x" * (limit - len(base.wire_bytes) - 2)  # str8 header grows by 2 bytes
    at_limit = box.sign("CN", "cert.issue", {**cert_issue("CO-1"), "pad": pad})
    assert len(at_limit.wire_bytes) == limit
    over = box.sign("CN", "cert.issue", {**cert_issue("CO-1"), "pad": pad + "x"})
    codes = [r.code for r in box.run([at_limit, over]).rejected]
    assert codes == ["invalid_body", "too_large"]  # at the limit, only the pad is wrong


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    body=st.dictionaries(
        st.sampled_from(["cert_id", "ucr", "type", "event", "location", "changes", "reason", "x"]),
        json_values,
        max_size=6,
    ),
)
def test_any_body_is_accepted_or_rejected_with_a_design_code(
    kind: str, body: dict[str, Any]
) -> None:
    box = Sandbox()
    box.submit("CN", "cert.issue", cert_issue("CO-1"))
    before = dict(box.state.data)
    try:
        wire = encode(
            {
                "entry": {
                    "author": "CN",
                    "body": body,
                    "chain": box.genesis.chain_id,
                    "kind": kind,
                    "ts": T0,
                },
                "sig": bytes(64),
            }
        )
    except CodecError:
        return
    result = execute_block(box.state, box.genesis, T0, [wire], verified=_all_ids())
    assert len(result.accepted) + len(result.rejected) == 1
    for rejected in result.rejected:
        assert rejected.code in CODES
    if result.rejected:
        assert result.writes == {} and box.state.data == before


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


def _all_ids() -> _Everything:
    return _Everything()


def test_executor_over_a_real_leveldb_store(tmp_path: Path) -> None:
    box = Sandbox()
    genesis = box.genesis
    keys = [(m.id, member_key(m.id)) for m in genesis.validators.members]

    def commit(store: Any, entries: list[Any], time: int) -> Any:
        result = execute_block(LedgerState(store), genesis, time, entries)
        accepted = [(a.entry, a.subjects) for a in result.accepted]
        chain.append_signed(store, genesis, accepted, result.writes, time=time, signers=keys)
        return result

    issue = box.sign("CN", "cert.issue", cert_issue("CO-1"))
    with store_module.Store.open(tmp_path / "ledger", genesis) as store:
        first = commit(store, [issue], T0)
        assert len(first.accepted) == 1
        second = commit(
            store,
            [issue, box.sign("CN", "shipment.declare", declare("6CN-1", certificates=("CO-1",)))],
            T0 + 1000,
        )
        assert [r.code for r in second.rejected] == ["duplicate"]
        assert len(second.accepted) == 1
    with store_module.Store.open(tmp_path / "ledger", genesis) as reopened:
        record = certificate(LedgerState(reopened), "CO-1")
        assert record is not None and record["status"] == "active"
        assert reopened.subject_count("cert/CO-1") == 2  # issued, then cited


def test_memory_state_deletes_on_none() -> None:
    state = MemoryState()
    state.commit([b"id"], {b"x:contract/a": b"\x01", b"x:contract/b": b"\x02"})
    state.commit([], {b"x:contract/a": None})
    assert state.get(b"x:contract/a") is None and state.get(b"x:contract/b") == b"\x02"
    assert state.entry_committed(b"id")
