"""Proof bundles (DESIGN §8): a subject's whole history, checkable offline from genesis.

Format v1 (canonical msgpack; docs/protocol.md is the normative description)::

    {"v": 1,
     "header": head header, "commit": its commit,
     "blocks": [[header, commit], ...]       # every other height an entry sits in
     "subjects": [{"subject": str, "proof": state-map proof,
                   "entries": [{"wire": bin, "index": log index, "height": int,
                                "path": [inclusion proof hashes]}, ...]}, ...]}

Trust flows from genesis only: the head header by a quorum commit; each subject's
(head, count, height) by the state-map proof against ``state_root``; the list of entry
ids by the hash chain to that head; each entry's bytes by inclusion in ``log_root``; each
entry's block height and time by the header of that height, itself under a quorum commit,
whose log range [log_size - entries, log_size) must contain the entry's log index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ledger.block import Commit, Header, verify_commit
from ledger.codec import decode, encode
from ledger.entry import Entry, SignedEntry, decode_wire
from ledger.errors import (
    BlockFormatError,
    CodecError,
    CommitError,
    EntryError,
    LedgerError,
    ProofError,
    SignatureError,
)
from ledger.genesis import Genesis
from ledger.history import HistoryError, SubjectState, chain_head, subject_key
from ledger.merkle import verify_inclusion
from ledger.statemap import MapProof, StateMap, verify_proof

__all__ = [
    "BUNDLE_VERSION",
    "BundleError",
    "VerifiedBundle",
    "VerifiedEntry",
    "VerifiedHistory",
    "build_bundle",
    "verify_bundle",
]

BUNDLE_VERSION = 1
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_SUBJECTS = 64
MAX_ENTRIES = 20_000  # over all subjects of one bundle
_MAX_PATH = 64
_TOP_KEYS = ["blocks", "commit", "header", "subjects", "v"]
_SUBJECT_KEYS = ["entries", "proof", "subject"]
_ENTRY_KEYS = ["height", "index", "path", "wire"]


class BundleError(LedgerError):
    """A bundle cannot be built, or does not verify; ``check`` names the first check
    that failed: decode, chain, structure, commit, state, history, inclusion,
    block_commit, author, subject (or build, when making one)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.reason = message


@dataclass(frozen=True, slots=True)
class VerifiedEntry:
    entry: SignedEntry
    height: int
    time: int  # ms, the time of the block at ``height``
    log_index: int


@dataclass(frozen=True, slots=True)
class VerifiedHistory:
    subject: str
    exists: bool
    head: bytes
    entries: tuple[VerifiedEntry, ...]


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    header: Header
    header_hash: bytes
    histories: tuple[VerifiedHistory, ...]  # in the bundle's subject order
    signers: tuple[str, ...]  # the validators whose precommits for the head verified

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def time(self) -> int:
        return self.header.time

    def history(self, subject: str) -> VerifiedHistory:
        for history in self.histories:
            if history.subject == subject:
                return history
        raise KeyError(subject)


# -- building ---------------------------------------------------------------------------


class BundleSource(Protocol):
    """What a bundle is read from: one store snapshot (``StoreView``)."""

    def head_header(self) -> Header | None: ...

    def get_header(self, height: int) -> Header | None: ...

    def get_commit(self, height: int) -> Commit | None: ...

    def subject_entries(
        self, subject: str, start: int = 0, limit: int | None = None
    ) -> Sequence[Any]: ...

    def leaf(self, index: int) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def get_raw(self, key: bytes) -> bytes | None: ...


@runtime_checkable
class _Snapshotting(Protocol):
    def snapshot(self) -> AbstractContextManager[BundleSource]: ...


def build_bundle(source: BundleSource | _Snapshotting, subjects: Sequence[str]) -> bytes:
    """A bundle for ``subjects`` at the head, read from ONE snapshot (a store is asked
    for one; a view is used as it is)."""
    if isinstance(subjects, str) or not 1 <= len(subjects) <= MAX_SUBJECTS:
        raise BundleError("build", f"ask for 1..{MAX_SUBJECTS} subjects as a list")
    if len(set(subjects)) != len(subjects):
        raise BundleError("build", "a subject is asked for twice")
    if isinstance(source, _Snapshotting):
        with source.snapshot() as view:
            return _build(view, subjects)
    return _build(source, subjects)


def _build(view: BundleSource, subjects: Sequence[str]) -> bytes:
    head = view.head_header()
    if head is None:
        raise BundleError("build", "the chain is empty: no header to prove against")
    state_map = StateMap(view.get_raw)
    parts = [_build_subject(view, state_map, head, subject) for subject in subjects]
    total = sum(len(part["entries"]) for part in parts)
    if total > MAX_ENTRIES:
        raise BundleError("build", f"{total} entries exceed a bundle's {MAX_ENTRIES}")
    heights = sorted({e["height"] for part in parts for e in part["entries"]} - {head.height})
    return encode(
        {
            "blocks": [[_header(view, h).to_obj(), _commit(view, h).to_obj()] for h in heights],
            "commit": _commit(view, head.height).to_obj(),
            "header": head.to_obj(),
            "subjects": parts,
            "v": BUNDLE_VERSION,
        }
    )


def _build_subject(
    view: BundleSource, state_map: StateMap, head: Header, subject: str
) -> dict[str, Any]:
    try:
        proof = state_map.prove(subject_key(subject))
    except HistoryError as exc:
        raise BundleError("build", str(exc)) from exc
    refs = view.subject_entries(subject, 0, MAX_ENTRIES + 1)
    if len(refs) > MAX_ENTRIES:
        raise BundleError("build", f"{subject!r} has more than {MAX_ENTRIES} entries")
    count = 0 if proof.value is None else SubjectState.decode(proof.value).count
    if count != len(refs):
        raise BundleError("build", f"{subject!r}: map counts {count}, the index {len(refs)}")
    entries = [
        {
            "height": ref.height,
            "index": ref.log_index,
            "path": view.inclusion_proof(ref.log_index, head.log_size),
            "wire": view.leaf(ref.log_index),
        }
        for ref in refs
    ]
    return {"entries": entries, "proof": proof.to_obj(), "subject": subject}


def _header(view: BundleSource, height: int) -> Header:
    header = view.get_header(height)
    if header is None:
        raise BundleError("build", f"header {height} is missing")
    return header


def _commit(view: BundleSource, height: int) -> Commit:
    commit = view.get_commit(height)
    if commit is None:
        raise BundleError("build", f"commit {height} is missing")
    return commit


# -- verifying --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    signed: SignedEntry
    index: int
    height: int
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Subject:
    name: str
    proof: MapProof
    items: tuple[_Item, ...]


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: Header
    commit: Commit
    blocks: tuple[tuple[Header, Commit], ...]
    subjects: tuple[_Subject, ...]


def verify_bundle(
    data: bytes,
    genesis: Genesis,
    subjects_of: Callable[[Entry], Iterable[str]],
    *,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> VerifiedBundle:
    """Verify ``data`` trusting only ``genesis``; raise BundleError naming the first
    failed check. Cheap checks run first, signature loops last."""
    parsed = _parse(data, genesis, max_bytes)
    _check_chain(parsed, genesis)
    headers = _check_structure(parsed)
    header_hash = parsed.header.hash()
    with _checking("commit"):
        verify_commit(
            parsed.commit,
            genesis.validators,
            genesis.chain_id,
            height=parsed.header.height,
            block=header_hash,
        )
    states = [_check_state(parsed.header, s) for s in parsed.subjects]
    for subject, state in zip(parsed.subjects, states, strict=True):
        _check_history(subject, state)
    _check_inclusion(parsed)
    _check_block_commits(parsed, genesis)
    _check_authors(parsed, genesis)
    _check_subjects(parsed, subjects_of)
    histories = tuple(
        _verified(s, state, headers) for s, state in zip(parsed.subjects, states, strict=True)
    )
    signers = tuple(member for member, _ in parsed.commit.votes)
    return VerifiedBundle(parsed.header, header_hash, histories, signers)


_FAILURES = (
    BlockFormatError,
    CodecError,
    CommitError,
    EntryError,
    HistoryError,
    ProofError,
    SignatureError,
)


@contextmanager
def _checking(check: str) -> Iterator[None]:
    """Report a lower layer's typed error as the failure of bundle check ``check``."""
    try:
        yield
    except _FAILURES as exc:
        raise BundleError(check, str(exc)) from exc


def _verified(
    subject: _Subject, state: SubjectState | None, headers: dict[int, Header]
) -> VerifiedHistory:
    entries = tuple(
        VerifiedEntry(item.signed, item.height, headers[item.height].time, item.index)
        for item in subject.items
    )
    head = bytes(32) if state is None else state.head
    return VerifiedHistory(subject.name, state is not None, head, entries)


# -- verification steps, in order -------------------------------------------------------


def _parse(data: bytes, genesis: Genesis, max_bytes: int) -> _Parsed:
    with _checking("decode"):
        obj = decode(data, max_bytes=max_bytes)
    if not isinstance(obj, dict) or list(obj) != _TOP_KEYS:
        raise BundleError("decode", f"a bundle is a map of exactly {_TOP_KEYS}")
    if obj["v"] != BUNDLE_VERSION:
        raise BundleError("decode", f"bundle version {obj['v']!r}, expected {BUNDLE_VERSION}")
    with _checking("decode"):
        header = Header.from_obj(obj["header"])
        commit = Commit.from_obj(obj["commit"])
    blocks, raw_subjects = obj["blocks"], obj["subjects"]
    if not isinstance(blocks, list) or not all(isinstance(b, list) and len(b) == 2 for b in blocks):
        raise BundleError("decode", "blocks must be a list of [header, commit] pairs")
    if not isinstance(raw_subjects, list) or not 1 <= len(raw_subjects) <= MAX_SUBJECTS:
        raise BundleError("decode", f"subjects must be a list of 1..{MAX_SUBJECTS}")
    total = sum(
        len(s["entries"])
        for s in raw_subjects
        if isinstance(s, dict) and isinstance(s.get("entries"), list)
    )
    if total > MAX_ENTRIES or len(blocks) > total:
        raise BundleError("decode", f"at most {MAX_ENTRIES} entries and one block per entry")
    with _checking("decode"):
        parsed_blocks = tuple((Header.from_obj(h), Commit.from_obj(c)) for h, c in blocks)
    limit = genesis.params.max_entry_bytes
    subjects = tuple(_parse_subject(i, s, limit) for i, s in enumerate(raw_subjects))
    return _Parsed(header, commit, parsed_blocks, subjects)


def _parse_subject(position: int, raw: object, max_entry_bytes: int) -> _Subject:
    where = f"subjects[{position}]"
    if not isinstance(raw, dict) or list(raw) != _SUBJECT_KEYS:
        raise BundleError("decode", f"{where} must be a map of exactly {_SUBJECT_KEYS}")
    name, entries = raw["subject"], raw["entries"]
    if not isinstance(name, str) or not isinstance(entries, list):
        raise BundleError("decode", f"{where} needs a subject string and an entry list")
    with _checking("decode"):
        proof = MapProof.from_obj(raw["proof"])
    items = tuple(
        _parse_item(f"{where}.entries[{i}]", e, max_entry_bytes) for i, e in enumerate(entries)
    )
    return _Subject(name, proof, items)


def _parse_item(where: str, raw: object, max_entry_bytes: int) -> _Item:
    if not isinstance(raw, dict) or list(raw) != _ENTRY_KEYS:
        raise BundleError("decode", f"{where} must be a map of exactly {_ENTRY_KEYS}")
    height, index, path, wire = raw["height"], raw["index"], raw["path"], raw["wire"]
    if type(height) is not int or height < 1 or type(index) is not int or index < 0:
        raise BundleError("decode", f"{where}: height must be >= 1 and index >= 0")
    if not isinstance(path, list) or len(path) > _MAX_PATH:
        raise BundleError("decode", f"{where}: path must be a list of at most {_MAX_PATH}")
    if not all(isinstance(p, bytes) and len(p) == 32 for p in path):
        raise BundleError("decode", f"{where}: path hashes must be 32 bytes")
    if not isinstance(wire, bytes):
        raise BundleError("decode", f"{where}: wire must be bytes")
    with _checking("decode"):
        signed = decode_wire(wire, max_entry_bytes)
    return _Item(signed, index, height, tuple(path))


def _check_chain(parsed: _Parsed, genesis: Genesis) -> None:
    validators = genesis.validators.hash()
    for header in [parsed.header, *(h for h, _ in parsed.blocks)]:
        if header.chain != genesis.chain_id:
            raise BundleError(
                "chain",
                f"header {header.height} is for chain {header.chain!r}, "
                f"genesis is {genesis.chain_id!r}",
            )
        if header.validators != validators:
            raise BundleError("chain", f"header {header.height} names another validator set")


def _check_structure(parsed: _Parsed) -> dict[int, Header]:
    """Cheap consistency of heights, times and log indexes; returns headers by height."""
    head = parsed.header
    headers: dict[int, Header] = {}
    for header, commit in parsed.blocks:
        if headers and header.height <= max(headers):
            raise BundleError("structure", "blocks must have strictly increasing heights")
        if header.height >= head.height or header.log_size > head.log_size:
            raise BundleError("structure", f"block {header.height} is not below the head")
        if commit.height != header.height:
            raise BundleError("structure", f"block {header.height} carries another commit")
        if header.time > head.time:
            raise BundleError("structure", f"block {header.height} is later than the head")
        headers[header.height] = header
    headers[head.height] = head
    used = {head.height}
    names = set()
    for subject in parsed.subjects:
        if subject.name in names:
            raise BundleError("structure", f"subject {subject.name!r} appears twice")
        names.add(subject.name)
        _check_positions(subject, headers)
        used.update(item.height for item in subject.items)
    if used != set(headers):
        raise BundleError("structure", "a block is included that no entry is in")
    return headers


def _check_positions(subject: _Subject, headers: dict[int, Header]) -> None:
    previous: _Item | None = None
    for item in subject.items:
        header = headers.get(item.height)
        if header is None:
            raise BundleError("structure", f"{subject.name!r}: no header for height {item.height}")
        if not header.log_size - header.entries <= item.index < header.log_size:
            raise BundleError(
                "structure",
                f"{subject.name!r}: log index {item.index} is not in block {item.height}",
            )
        if previous is not None and item.index <= previous.index:
            raise BundleError("structure", f"{subject.name!r}: log indexes must increase")
        previous = item


def _check_state(head: Header, subject: _Subject) -> SubjectState | None:
    try:
        key = subject_key(subject.name)
    except HistoryError as exc:
        raise BundleError("state", str(exc)) from exc
    with _checking("state"):
        value = verify_proof(head.state_root, key, subject.proof)
        state = None if value is None else SubjectState.decode(value)
    if state is None:
        return None
    if state.height > head.height:
        raise BundleError("state", f"{subject.name!r}: state height is above the head")
    return state


def _check_history(subject: _Subject, state: SubjectState | None) -> None:
    if state is None:
        if subject.items:
            raise BundleError("history", f"{subject.name!r} is proven absent but has entries")
        return
    head, count = chain_head(item.signed.id for item in subject.items)
    if count != state.count:
        raise BundleError(
            "history", f"{subject.name!r}: {count} entries given, the state counts {state.count}"
        )
    if head != state.head:
        raise BundleError("history", f"{subject.name!r}: the entries do not chain to the head")
    if subject.items[-1].height != state.height:
        raise BundleError(
            "history",
            f"{subject.name!r}: last entry at height {subject.items[-1].height}, "
            f"the state says {state.height}",
        )


def _check_inclusion(parsed: _Parsed) -> None:
    head = parsed.header
    with _checking("inclusion"):
        for subject in parsed.subjects:
            for item in subject.items:
                verify_inclusion(
                    item.signed.wire_bytes, item.index, head.log_size, item.path, head.log_root
                )


def _check_block_commits(parsed: _Parsed, genesis: Genesis) -> None:
    with _checking("block_commit"):
        for header, commit in parsed.blocks:
            verify_commit(
                commit,
                genesis.validators,
                genesis.chain_id,
                height=header.height,
                block=header.hash(),
            )


def _check_authors(parsed: _Parsed, genesis: Genesis) -> None:
    for signed in _all_entries(parsed):
        author = genesis.member(signed.entry.author)
        if author is None:
            raise BundleError("author", f"entry author {signed.entry.author!r} is not a member")
        if signed.entry.chain != genesis.chain_id:
            raise BundleError("author", f"an entry is for chain {signed.entry.chain!r}")
        with _checking("author"):
            signed.verify(author.public_key)


def _all_entries(parsed: _Parsed) -> Iterator[SignedEntry]:
    # An entry listed under several subjects is checked once.
    seen: set[bytes] = set()
    for subject in parsed.subjects:
        for item in subject.items:
            if item.signed.wire_bytes not in seen:
                seen.add(item.signed.wire_bytes)
                yield item.signed


def _check_subjects(parsed: _Parsed, subjects_of: Callable[[Entry], Iterable[str]]) -> None:
    for subject in parsed.subjects:
        for item in subject.items:
            try:
                touched = set(subjects_of(item.signed.entry))
            except Exception as exc:  # the contracts' own errors are theirs; any is a refusal
                raise BundleError("subject", f"cannot tell what an entry touches: {exc}") from exc
            if subject.name not in touched:
                raise BundleError(
                    "subject", f"entry {item.signed.id_hex} does not touch {subject.name!r}"
                )
