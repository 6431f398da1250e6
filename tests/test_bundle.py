"""Proof bundles (DESIGN §8): build from a real store, verify from genesis alone."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.block import Commit
from ledger.bundle import (
    MAX_SUBJECTS,
    BundleError,
    VerifiedBundle,
    build_bundle,
    verify_bundle,
)
from ledger.codec import decode, encode
from ledger.entry import Entry
from ledger.genesis import Genesis
from ledger.statemap import MapProof
from ledger.store import Store
from tests.factories import make_genesis, make_member
from tests.test_chain import append_block, event, make_commit

VALIDATORS = ("CN", "DE", "NL", "US")
SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33, 64, 100, 127, 199, 200)


def subjects_of(entry: Entry) -> Iterable[str]:
    """The test entries name their subjects in the body (contracts do this for real)."""
    subjects = entry.body["subject"]
    assert isinstance(subjects, list)
    return subjects


def touches_nothing(entry: Entry) -> Iterable[str]:
    return []


def summary(verified: VerifiedBundle) -> list[tuple[str, bool, list[tuple[bytes, int, int, int]]]]:
    return [
        (
            h.subject,
            h.exists,
            [(e.entry.id, e.height, e.time, e.log_index) for e in h.entries],
        )
        for h in verified.histories
    ]


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return make_genesis(VALIDATORS)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, genesis: Genesis) -> Iterator[Store]:
    """One chain where subject ``cert/<n>`` has exactly n entries, for every n in SIZES,
    spread over blocks of up to 60 entries; plus a declaration touching two subjects."""
    rng = random.Random(7)
    pending = [f"cert/{n}" for n in SIZES for _ in range(n)]
    rng.shuffle(pending)
    with Store.open(tmp_path_factory.mktemp("bundle") / "db", genesis) as store:
        counter = 0
        while pending:
            batch, pending = pending[:60], pending[60:]
            accepted = []
            for subject in batch:
                counter += 1
                accepted.append(event(VALIDATORS[counter % 4], [subject], counter))
            append_block(store, genesis, accepted)
        append_block(store, genesis, [event("DE", ["shipment/S", "cert/1"], 0)])
        append_block(store, genesis, [event("NL", ["cert/other"], -1)])
        yield store


def test_histories_of_1_to_200_entries_verify(ledger: Store, genesis: Genesis) -> None:
    for n in SIZES:
        subject = f"cert/{n}"
        verified = verify_bundle(build_bundle(ledger, [subject]), genesis, subjects_of)
        history = verified.history(subject)
        refs = ledger.subject_entries(subject)
        expected = n + (1 if n == 1 else 0)  # cert/1 is also cited by shipment/S
        assert history.exists and len(history.entries) == len(refs) == expected
        assert [e.entry.id for e in history.entries] == [r.entry_id for r in refs]
        assert [e.height for e in history.entries] == [r.height for r in refs]
        assert [e.log_index for e in history.entries] == [r.log_index for r in refs]
        for item in history.entries:
            header = ledger.get_header(item.height)
            assert header is not None and item.time == header.time
        assert verified.height == ledger.height


def test_one_bundle_carries_several_subjects_and_an_absence(
    ledger: Store, genesis: Genesis
) -> None:
    subjects = ["shipment/S", "cert/1", "cert/never-issued"]
    verified = verify_bundle(build_bundle(ledger, subjects), genesis, subjects_of)
    assert [h.subject for h in verified.histories] == subjects
    shipment, cert, absent = verified.histories
    assert shipment.exists and len(shipment.entries) == 1
    assert cert.entries[-1].entry.id == shipment.entries[0].entry.id
    assert not absent.exists and absent.entries == ()


def test_bundle_from_one_snapshot_view(ledger: Store, genesis: Genesis) -> None:
    with ledger.snapshot() as view:
        data = build_bundle(view, ["cert/3"])
    assert verify_bundle(data, genesis, subjects_of).history("cert/3").exists


def test_empty_chain_has_no_bundle(tmp_path: Path, genesis: Genesis) -> None:
    with Store.open(tmp_path / "db", genesis) as store, pytest.raises(BundleError) as err:
        build_bundle(store, ["cert/A"])
    assert err.value.check == "build"


@pytest.mark.parametrize("subjects", [[], ["cert/1", "cert/1"], "cert/1"])
def test_bad_requests_are_refused(ledger: Store, subjects: Any) -> None:
    with pytest.raises(BundleError) as err:
        build_bundle(ledger, subjects)
    assert err.value.check == "build"


# -- tampering ----------------------------------------------------------------------------


def expect_failure(data: bytes, genesis: Genesis, check: str | None = None) -> BundleError:
    with pytest.raises(BundleError) as err:
        verify_bundle(data, genesis, subjects_of)
    if check is not None:
        assert err.value.check == check, err.value
    return err.value


def edit(data: bytes, change: Any) -> bytes:
    obj = decode(data)
    change(obj)
    return encode(obj)


def test_exhaustive_single_byte_mutation_of_a_small_bundle(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/2"])
    original = summary(verify_bundle(data, genesis, subjects_of))
    assert len(data) < 4096
    accepted = 0
    for position in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            mutated = bytearray(data)
            mutated[position] ^= mask
            try:
                result = verify_bundle(bytes(mutated), genesis, subjects_of)
            except BundleError:
                continue
            accepted += 1
            assert summary(result) == original
    assert accepted == 0


def test_every_truncation_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/2"])
    for length in range(len(data)):
        expect_failure(data[:length], genesis, "decode")
    expect_failure(data + b"\x00", genesis, "decode")


def test_sampled_mutation_of_a_large_bundle(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/200", "cert/64"])
    original = summary(verify_bundle(data, genesis, subjects_of))
    rng = random.Random(2026)
    for _ in range(300):
        mutated = bytearray(data)
        mutated[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        try:
            result = verify_bundle(bytes(mutated), genesis, subjects_of)
        except BundleError:
            continue
        assert summary(result) == original


def entries_of(obj: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
    entries = obj["subjects"][index]["entries"]
    assert isinstance(entries, list)
    return entries


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("drop first", lambda e: e.pop(0)),
        ("drop middle", lambda e: e.pop(len(e) // 2)),
        ("drop last", lambda e: e.pop()),
        ("duplicate", lambda e: e.insert(1, e[1])),
        ("duplicate last", lambda e: e.append(e[-1])),
        ("swap", lambda e: e.__setitem__(slice(1, 3), [e[2], e[1]])),
        ("reverse", lambda e: e.reverse()),
    ],
)
def test_tampered_history_fails(ledger: Store, genesis: Genesis, name: str, change: Any) -> None:
    data = build_bundle(ledger, ["cert/5"])
    expect_failure(edit(data, lambda obj: change(entries_of(obj))), genesis)


def test_appending_an_entry_of_another_subject_fails(ledger: Store, genesis: Genesis) -> None:
    both = decode(build_bundle(ledger, ["cert/4", "cert/other"]))
    extra = entries_of(both, 1)[0]  # validly included, later in the log than all of cert/4
    data = build_bundle(ledger, ["cert/4"])

    def append(obj: dict[str, Any]) -> None:
        entries_of(obj).append(extra)
        obj["blocks"] = both["blocks"]

    err = expect_failure(edit(data, append), genesis)
    assert err.check in ("structure", "history")


def test_dropping_every_entry_of_a_present_subject_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/3"])

    def empty(obj: dict[str, Any]) -> None:
        obj["subjects"][0]["entries"] = []
        obj["blocks"] = []

    expect_failure(edit(data, empty), genesis, "history")


def test_commit_below_quorum_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/3"])
    head = ledger.head_header()
    assert head is not None
    weak = make_commit(genesis, head, signers=["CN", "DE"])
    expect_failure(edit(data, lambda obj: obj.update(commit=weak.to_obj())), genesis, "commit")


def test_commit_with_a_forged_vote_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/3"])
    head = ledger.head_header()
    assert head is not None
    good = make_commit(genesis, head)
    votes = list(good.votes)
    votes[0] = (votes[0][0], votes[1][1])  # someone else's signature under CN's name
    forged = Commit(good.height, good.round, good.block, tuple(votes))
    expect_failure(edit(data, lambda obj: obj.update(commit=forged.to_obj())), genesis, "commit")


def test_commit_of_an_older_block_in_the_blocks_list_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/200"])

    def swap_commit(obj: dict[str, Any]) -> None:
        obj["blocks"][0][1] = obj["blocks"][1][1]

    expect_failure(edit(data, swap_commit), genesis, "structure")

    def weak_commit(obj: dict[str, Any]) -> None:
        commit = Commit.from_obj(obj["blocks"][0][1])
        obj["blocks"][0][1] = Commit(
            commit.height, commit.round, commit.block, commit.votes[:2]
        ).to_obj()

    expect_failure(edit(data, weak_commit), genesis, "block_commit")


def test_foreign_genesis_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/3"])
    expect_failure(data, make_genesis(VALIDATORS, chain_id="customs-other-1"), "chain")
    # Same chain id, different validator keys: the header names another validator set.
    impostors = [make_member(m) for m in ("CN", "DE", "NL", "FR")]
    expect_failure(data, make_genesis(members=impostors), "chain")


def test_stale_header_swapped_in_fails(tmp_path: Path, genesis: Genesis) -> None:
    with Store.open(tmp_path / "db", genesis) as store:
        append_block(store, genesis, [event("CN", ["cert/A"], 1)])
        stale = decode(build_bundle(store, ["cert/A"]))
        append_block(store, genesis, [event("DE", ["cert/A"], 2)])
        fresh = build_bundle(store, ["cert/A"])
        assert verify_bundle(fresh, genesis, subjects_of).history("cert/A").exists

        def swap_head(obj: dict[str, Any]) -> None:
            obj["header"], obj["commit"] = stale["header"], stale["commit"]
            obj["blocks"] = []

        expect_failure(edit(fresh, swap_head), genesis)
        # The stale bundle on its own is valid, but shows the shorter history at height 1.
        old = verify_bundle(encode(stale), genesis, subjects_of)
        assert old.height == 1 and len(old.history("cert/A").entries) == 1


def test_entry_that_does_not_touch_its_subject_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/3"])
    with pytest.raises(BundleError) as err:
        verify_bundle(data, genesis, touches_nothing)
    assert err.value.check == "subject"


def test_subjects_of_that_raises_is_a_subject_failure(ledger: Store, genesis: Genesis) -> None:
    def broken(entry: Entry) -> Iterable[str]:
        raise ValueError("unknown kind")

    with pytest.raises(BundleError) as err:
        verify_bundle(build_bundle(ledger, ["cert/3"]), genesis, broken)
    assert err.value.check == "subject"


def test_entry_listed_under_another_subject_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/3"])
    expect_failure(edit(data, lambda obj: obj["subjects"][0].update(subject="cert/4")), genesis)


def test_absence_cannot_be_claimed_for_a_present_subject(ledger: Store, genesis: Genesis) -> None:
    present = decode(build_bundle(ledger, ["cert/3", "cert/never"]))
    absent_proof = MapProof.from_obj(present["subjects"][1]["proof"])
    key = MapProof.from_obj(present["subjects"][0]["proof"]).key

    def claim_absent(obj: dict[str, Any]) -> None:
        forged = MapProof(key, None, absent_proof.other, absent_proof.steps)
        obj["subjects"][0]["proof"] = forged.to_obj()
        obj["subjects"][0]["entries"] = []
        obj["blocks"] = []

    expect_failure(edit(encode(present), claim_absent), genesis, "state")


def test_entry_signed_by_a_non_member_fails(tmp_path: Path, genesis: Genesis) -> None:
    # The store does not judge authors (the contracts do); the bundle verifier must.
    with Store.open(tmp_path / "db", genesis) as store:
        append_block(store, genesis, [event("XX", ["cert/A"], 1)])
        expect_failure(build_bundle(store, ["cert/A"]), genesis, "author")


def test_entry_with_a_bad_signature_fails(tmp_path: Path, genesis: Genesis) -> None:
    entry, subjects = event("CN", ["cert/A"], 1)
    wrong = event("DE", ["cert/A"], 1)[0]
    forged = type(entry)(
        entry.entry,
        wrong.sig,
        entry.entry_bytes,
        encode({"entry": entry.entry.to_obj(), "sig": wrong.sig}),
    )
    with Store.open(tmp_path / "db", genesis) as store:
        append_block(store, genesis, [(forged, subjects)])
        expect_failure(build_bundle(store, ["cert/A"]), genesis, "author")


def test_oversized_bundle_is_refused_before_decoding(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/200"])
    with pytest.raises(BundleError) as err:
        verify_bundle(data, genesis, subjects_of, max_bytes=len(data) - 1)
    assert err.value.check == "decode"


def test_unknown_version_fails(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/1"])
    expect_failure(edit(data, lambda obj: obj.update(v=2)), genesis, "decode")


def test_bundle_bytes_are_deterministic(ledger: Store) -> None:
    first = build_bundle(ledger, ["cert/9", "shipment/S"])
    assert first == build_bundle(ledger, ["cert/9", "shipment/S"])
    assert first != build_bundle(ledger, ["cert/9"])


def test_subject_count_at_the_limit_and_past_it(ledger: Store, genesis: Genesis) -> None:
    at_limit = ["cert/3", *(f"cert/absent-{i}" for i in range(MAX_SUBJECTS - 1))]
    verified = verify_bundle(build_bundle(ledger, at_limit), genesis, subjects_of)
    assert len(verified.histories) == MAX_SUBJECTS
    with pytest.raises(BundleError) as err:
        build_bundle(ledger, [*at_limit, "cert/one-more"])
    assert err.value.check == "build"

    def one_more(obj: dict[str, Any]) -> None:
        extra = dict(obj["subjects"][-1])
        extra["subject"] = "cert/one-more"
        obj["subjects"].append(extra)

    expect_failure(edit(build_bundle(ledger, at_limit), one_more), genesis, "decode")


def test_an_unused_block_is_refused(ledger: Store, genesis: Genesis) -> None:
    data = build_bundle(ledger, ["cert/8"])  # fewer blocks than entries: room for one more
    used = {e["height"] for e in entries_of(decode(data))}
    spare = next(
        b
        for b in decode(build_bundle(ledger, ["cert/200"]))["blocks"]
        if b[0]["height"] not in used
    )

    def add_block(obj: dict[str, Any]) -> None:
        obj["blocks"] = sorted([spare, *obj["blocks"]], key=lambda b: b[0]["height"])

    expect_failure(edit(data, add_block), genesis, "structure")


def test_claimed_height_must_match_the_block_holding_the_entry(
    ledger: Store, genesis: Genesis
) -> None:
    data = build_bundle(ledger, ["cert/200"])

    def shift(obj: dict[str, Any]) -> None:
        entry = entries_of(obj)[0]
        other = next(b for b in obj["blocks"] if b[0]["height"] != entry["height"])
        entry["height"] = other[0]["height"]

    expect_failure(edit(data, shift), genesis, "structure")
