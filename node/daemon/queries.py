"""What the HTTP API asks of a running node (``node.daemon.api.NodeService``), answered from
the chain (store snapshots, the pool, rejections) and the contracts' read helpers.

No HTTP here: a bad query raises ``BadQuery`` with its code, a refused entry
``Rejection``, a full pool ``MempoolFull``; node.daemon.api gives each its status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import contracts
from contracts import LedgerState
from ledger.block import Block, Commit, Header
from ledger.bundle import BundleError, build_bundle
from ledger.codec import encode
from ledger.entry import Entry, SignedEntry, decode_wire
from ledger.keys import SigningKey
from ledger.store import StoreView
from node.daemon.chain import Chain
from node.daemon.clock import now_ms
from node.daemon.metrics import NodeMetrics

if TYPE_CHECKING:
    from node.daemon.parts import LiveStatus

__all__ = ["BadQuery", "Service", "block_json", "header_json"]

MAX_HISTORY = 1000


class BadQuery(Exception):
    """A query the node cannot answer as asked; ``code`` is ``malformed``."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Service:
    """The API's reads and submissions over ``chain``; ``on_admitted`` is told of each
    batch of newly pooled entries (the node gossips them)."""

    def __init__(
        self,
        chain: Chain,
        *,
        member_id: str,
        key: SigningKey,
        genesis_bytes: bytes,
        live: LiveStatus,
        metrics: NodeMetrics,
        on_admitted: Callable[[Sequence[SignedEntry]], None],
    ) -> None:
        self.chain = chain
        self.genesis = chain.genesis
        self.member_id = member_id
        self._key = key
        self._genesis_bytes = genesis_bytes
        self.live = live
        self._metrics = metrics
        self._on_admitted = on_admitted

    @property
    def max_entry_bytes(self) -> int:
        return self.genesis.params.max_entry_bytes

    async def submit_entries(self, entries: Sequence[SignedEntry]) -> list[str]:
        """Admit the batch whole (Rejection or MempoolFull otherwise); their ids."""
        admitted = self.chain.admit(entries, now_ms=now_ms())
        if admitted:
            self._on_admitted(admitted)
        return [e.id_hex for e in entries]

    async def submit_body(self, kind: str, body: Mapping[str, Any]) -> SignedEntry:
        """Sign ``{kind, body}`` as this member and admit it (EntryError if unsignable)."""
        entry = Entry(self.genesis.chain_id, kind, self.member_id, now_ms(), dict(body))
        signed = entry.sign(self._key)
        await self.submit_entries([signed])
        return signed

    def entry_status(self, entry_id: bytes) -> dict[str, Any] | None:
        with self.chain.store.snapshot() as view:
            location = view.entry_location(entry_id)
            if location is not None:
                header = view.get_header(location.height)
                assert header is not None
                return {
                    "status": "committed",
                    "height": location.height,
                    "position": location.position,
                    "log_index": location.log_index,
                    "block_time": header.time,
                }
        state = self.chain.entry_state(entry_id)
        if state is None:
            return None
        if state.status == "pending":
            return {"status": "pending"}
        return {"status": state.status, "code": state.code, "message": state.message}

    def certificate(self, cert_id: str) -> dict[str, Any] | None:
        return self._record(f"cert/{cert_id}", lambda s: contracts.certificate(s, cert_id))

    def shipment(self, ucr: str) -> dict[str, Any] | None:
        return self._record(f"shipment/{ucr}", lambda s: contracts.shipment(s, ucr))

    def _record(self, subject: str, read: Any) -> dict[str, Any] | None:
        with self.chain.store.snapshot() as view:
            state = read(LedgerState(view))
            if state is None:
                return None
            return {
                "subject": subject,
                "height": view.height,
                "state": state,
                "history": _history(view, subject, self.max_entry_bytes),
            }

    def proof_bundle(self, subjects: Sequence[str]) -> bytes:
        try:
            return build_bundle(self.chain.store, list(subjects))
        except BundleError as exc:
            raise BadQuery(str(exc)) from exc

    def signed_header(self, height: int | None) -> bytes | None:
        with self.chain.store.snapshot() as view:
            header = view.head_header() if height is None else view.get_header(height)
            if header is None:
                return None
            commit = view.get_commit(header.height)
        assert commit is not None, f"header {header.height} is stored without its commit"
        return encode({"commit": commit.to_obj(), "header": header.to_obj()})

    def consistency(self, first: int, second: int) -> bytes:
        with self.chain.store.snapshot() as view:
            size = view.log_size()
            if not first <= second <= size:
                raise BadQuery(f"need first <= second <= the log size {size}")
            proof = view.consistency_proof(first, second)
        return encode({"first": first, "proof": proof, "second": second})

    def block(self, height: int) -> dict[str, Any] | None:
        with self.chain.store.snapshot() as view:
            block, commit = view.get_block(height), view.get_commit(height)
        if block is None or commit is None:
            return None
        return block_json(block, commit)

    def status(self) -> dict[str, Any]:
        chain, genesis = self.chain, self.genesis
        head = chain.head_header()
        return {
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash_hex,
            "member": self.member_id,
            "height": chain.height,
            "head_hash": head.hash().hex() if head else None,
            "head_time": head.time if head else None,
            "round": self.live.round,
            "validators": list(genesis.validators.ids),
            "peers": [
                {"id": p.id, "connected": p.connected, "height": p.height}
                for p in self.live.peers()
            ],
            "mempool": len(chain.mempool),
            "syncing": self.live.syncing,
        }

    def genesis_bytes(self) -> bytes:
        # The file as the operator wrote it (read once at start), so a verifier can fetch
        # it and compare its SHA-256 with the one it was given.
        return self._genesis_bytes

    def readiness(self) -> str | None:
        """None when the node is synced and hears enough of the network to take part;
        otherwise why not."""
        if self.live.syncing:
            return "catching up with the network"
        validators = self.genesis.validators
        connected = set(self.live.connected())
        if validators.index_of(self.member_id) is not None:
            heard = len(connected & set(validators.ids)) + 1
            if heard < validators.quorum:
                return (
                    f"hears {heard} of {validators.n} validators, a quorum is {validators.quorum}"
                )
        elif not connected:
            return "no peer connected"
        return None

    def metrics(self) -> tuple[bytes, str]:
        self._metrics.mempool.set(len(self.chain.mempool))
        self._metrics.peers.set(len(self.live.connected()))
        return self._metrics.render()


def _history(view: StoreView, subject: str, max_entry_bytes: int) -> list[dict[str, Any]]:
    refs = view.subject_entries(subject, limit=MAX_HISTORY)
    items = []
    times: dict[int, int] = {}
    for ref in refs:
        block_time = times.get(ref.height)
        if block_time is None:
            header = view.get_header(ref.height)
            assert header is not None
            block_time = times[ref.height] = header.time
        entry = decode_wire(view.leaf(ref.log_index), max_entry_bytes)
        items.append(
            {
                "id": ref.entry_id.hex(),
                "height": ref.height,
                "log_index": ref.log_index,
                "block_time": block_time,
                **entry.to_json(),
            }
        )
    return items


def header_json(header: Header) -> dict[str, Any]:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in header.to_obj().items()}


def block_json(block: Block, commit: Commit) -> dict[str, Any]:
    return {
        "hash": block.header.hash().hex(),
        "header": header_json(block.header),
        "entries": [{"id": e.id_hex, **e.to_json()} for e in block.entries],
        "commit": {
            "height": commit.height,
            "round": commit.round,
            "block": commit.block.hex(),
            "votes": [[member, sig.hex()] for member, sig in commit.votes],
        },
    }
