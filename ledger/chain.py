"""Block staging: the one place that turns a block's accepted entries into its roots.

The proposer (on a scratch view), every validator (re-executing a proposal), the sync
path and the conformance runner all call ``stage``; so they compute ``log_root`` and
``state_root`` the same way by construction. Typical use::

    with store.snapshot() as view:
        staged = stage(view, view.height + 1, accepted, contract_writes)
        prev, last_commit = links(view)
    header = build_header(staged, chain=..., time=..., prev=prev, proposer=...,
                          validators=genesis.validators.hash(), last_commit=last_commit)
    commit_staged(store, staged, staged.block(header), commit)

``append_signed`` does all three with a commit signed by keys at hand, for what grows a
chain without consensus (the conformance runner, tests and benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from ledger.block import ZERO_HASH, Block, Commit, Header, sign_commit
from ledger.entry import SignedEntry
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.history import EMPTY_STATE, SubjectState, subject_key
from ledger.keys import SigningKey
from ledger.merkle_log import LogAppend
from ledger.statemap import PREFIX as STATE_PREFIX
from ledger.statemap import StateMap

__all__ = [
    "ChainError",
    "ChainView",
    "StagedBlock",
    "append_signed",
    "build_header",
    "check_header",
    "commit_staged",
    "links",
    "stage",
]

_EXTRA_PREFIX = b"x:"


class ChainError(LedgerError):
    """A block cannot be staged or committed as asked; nothing was written."""


class ChainView(Protocol):
    """What staging reads: a Store or one of its snapshot views."""

    @property
    def height(self) -> int: ...

    def get_raw(self, key: bytes) -> bytes | None: ...

    def log_append(self, leaf_datas: Sequence[bytes]) -> LogAppend: ...

    def head_hash(self) -> bytes | None: ...

    def get_commit(self, height: int) -> Commit | None: ...


class _Committer(Protocol):
    def commit_block(
        self,
        block: Block,
        commit: Commit,
        subjects: Sequence[Sequence[str]],
        extra: Mapping[bytes, bytes | None] | None = None,
        *,
        log: LogAppend | None = None,
        digests: Sequence[Sequence[bytes]] | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class StagedBlock:
    """A block's entries with the roots they produce and every raw write they need."""

    height: int
    entries: tuple[SignedEntry, ...]
    subjects: tuple[tuple[str, ...], ...]
    subject_keys: tuple[tuple[bytes, ...], ...]  # subject_key of each of ``subjects``
    log: LogAppend  # the Merkle append of the entries, node writes included
    state_root: bytes
    writes: Mapping[bytes, bytes | None]
    states: Mapping[str, SubjectState]  # every touched subject's state after the block

    @property
    def log_size(self) -> int:
        return self.log.size

    @property
    def log_root(self) -> bytes:
        return self.log.root

    def block(self, header: Header) -> Block:
        check_header(self, header)
        return Block(header, self.entries)


def stage(
    view: ChainView,
    height: int,
    accepted: Sequence[tuple[SignedEntry, Sequence[str]]],
    extra_writes: Mapping[bytes, bytes | None],
) -> StagedBlock:
    """Roots and writes of a block at ``height`` holding ``accepted`` (entry, subjects it
    touches) on top of ``view``; reads only, writes nothing."""
    if height != view.height + 1:
        raise ChainError(f"cannot stage height {height} on a view at height {view.height}")
    _check_extra(extra_writes)
    entries = tuple(entry for entry, _ in accepted)
    subjects = tuple(_subject_list(i, touched) for i, (_, touched) in enumerate(accepted))
    keys: dict[str, bytes] = {}
    subject_keys = tuple(_keys_of(keys, touched) for touched in subjects)
    state_map = StateMap(view.get_raw)
    states = _advance_histories(state_map, height, entries, subjects, keys)
    update = state_map.update({keys[s]: state.encode() for s, state in states.items()})
    log = view.log_append([entry.wire_bytes for entry in entries])
    writes: dict[bytes, bytes | None] = dict(extra_writes)
    writes.update(update.writes)
    return StagedBlock(
        height,
        entries,
        subjects,
        subject_keys,
        log,
        update.root,
        MappingProxyType(writes),
        MappingProxyType(states),
    )


def _check_extra(extra: Mapping[bytes, bytes | None]) -> None:
    # Typed as object: bad keys and values must reach the checks below (compiled with mypyc,
    # a typed loop would raise a bare TypeError first).
    items: Iterable[tuple[object, object]] = extra.items()
    for key, value in items:
        if not isinstance(key, bytes) or not key.startswith(_EXTRA_PREFIX):
            raise ChainError(f"extra write key {key!r} must be bytes starting with b'x:'")
        if key.startswith(STATE_PREFIX):
            raise ChainError(f"extra write key {key!r} is inside the state map's keyspace")
        if value is not None and not isinstance(value, bytes):
            raise ChainError(f"extra write value for {key!r} must be bytes or None")


def _subject_list(position: int, touched: Sequence[str]) -> tuple[str, ...]:
    # A bare str is a Sequence[str] too; iterating its characters is never meant.
    if isinstance(touched, str | bytes):
        raise ChainError(f"entry {position}: subjects must be a list, not a string")
    # The store indexes each subject once per entry; the hash chain must link it once too.
    return tuple(dict.fromkeys(touched))


def _keys_of(keys: dict[str, bytes], touched: Sequence[str]) -> tuple[bytes, ...]:
    """``touched``'s state-map keys, hashing each subject once per block via ``keys``."""
    row = []
    for subject in touched:
        key = keys.get(subject)
        if key is None:
            key = keys[subject] = subject_key(subject)
        row.append(key)
    return tuple(row)


def _advance_histories(
    state_map: StateMap,
    height: int,
    entries: Sequence[SignedEntry],
    subjects: Sequence[Sequence[str]],
    keys: Mapping[str, bytes],
) -> dict[str, SubjectState]:
    states: dict[str, SubjectState] = {}
    for entry, touched in zip(entries, subjects, strict=True):
        entry_id = entry.id
        for subject in touched:
            state = states.get(subject)
            if state is None:
                stored = state_map.get(keys[subject])
                state = EMPTY_STATE if stored is None else SubjectState.decode(stored)
            states[subject] = state.advance(entry_id, height)
    return states


def links(view: ChainView) -> tuple[bytes, bytes]:
    """(prev, last_commit) for the next header: the head's hash and its stored commit's
    hash, or zero hashes on an empty chain."""
    head = view.head_hash()
    if head is None:
        return ZERO_HASH, ZERO_HASH
    commit = view.get_commit(view.height)
    if commit is None:
        raise ChainError(f"the commit of head height {view.height} is missing")
    return head, commit.hash()


def build_header(
    staged: StagedBlock,
    *,
    chain: str,
    time: int,
    prev: bytes,
    proposer: str,
    validators: bytes,
    last_commit: bytes,
) -> Header:
    return Header(
        chain=chain,
        height=staged.height,
        time=time,
        prev=prev,
        proposer=proposer,
        entries=len(staged.entries),
        log_size=staged.log_size,
        log_root=staged.log_root,
        state_root=staged.state_root,
        validators=validators,
        last_commit=last_commit,
    )


def check_header(staged: StagedBlock, header: Header) -> None:
    """Raise ChainError unless ``header`` carries exactly the staged height and roots."""
    for name, want, got in _header_fields(staged, header):
        if want != got:
            raise ChainError(f"header {name} is {_show(got)}, the staged block gives {_show(want)}")


def _header_fields(staged: StagedBlock, header: Header) -> Iterator[tuple[str, object, object]]:
    yield "height", staged.height, header.height
    yield "entries", len(staged.entries), header.entries
    yield "log_size", staged.log_size, header.log_size
    yield "log_root", staged.log_root, header.log_root
    yield "state_root", staged.state_root, header.state_root


def _show(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)


def commit_staged(store: _Committer, staged: StagedBlock, block: Block, commit: Commit) -> None:
    """Write ``block`` (which must be the staged one) with its commit in one batch."""
    check_header(staged, block.header)
    if tuple(e.wire_bytes for e in block.entries) != tuple(e.wire_bytes for e in staged.entries):
        raise ChainError("block entries differ from the staged entries")
    # The store takes staging's leaf and subject hashes instead of redoing them: they are
    # the same functions of the same entries and subjects (the store checks the append
    # was staged on its current log, from these entries, and matches the header).
    store.commit_block(
        block,
        commit,
        staged.subjects,
        staged.writes,
        log=staged.log,
        digests=staged.subject_keys,
    )


class _Appendable(ChainView, _Committer, Protocol):
    """A Store: what staging reads and what takes the commit."""


def append_signed(
    store: _Appendable,
    genesis: Genesis,
    accepted: Sequence[tuple[SignedEntry, Sequence[str]]],
    writes: Mapping[bytes, bytes | None],
    *,
    time: int,
    signers: Iterable[tuple[str, SigningKey]],
) -> Block:
    """Stage the next block, head it (round 0, its proposer) and commit it under
    precommits signed by ``signers``; returns the block written."""
    height = store.height + 1
    staged = stage(store, height, accepted, writes)
    prev, last_commit = links(store)
    header = build_header(
        staged,
        chain=genesis.chain_id,
        time=time,
        prev=prev,
        proposer=genesis.validators.proposer(height, 0),
        validators=genesis.validators.hash(),
        last_commit=last_commit,
    )
    block = staged.block(header)
    commit_staged(
        store, staged, block, sign_commit(signers, height, header.hash(), genesis.chain_id)
    )
    return block
