"""What the HTTP API asks of a running node (``node.daemon.api.NodeService``), answered from the
store's snapshots, the mempool and the contracts' read helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import contracts
from contracts import LedgerState, Rejection
from ledger.block import Block, Commit, Header
from ledger.bundle import BundleError, build_bundle
from ledger.codec import encode
from ledger.entry import Entry, SignedEntry, decode_wire
from ledger.errors import EntryError
from ledger.store import StoreView
from node.daemon.api import ApiError
from node.daemon.consensus_host import now_ms
from node.daemon.mempool import MempoolFull

if TYPE_CHECKING:
    from node.daemon.parts import ServiceNode

__all__ = ["Service", "block_json", "header_json"]

MAX_HISTORY = 1000


class Service:
    def __init__(self, node: ServiceNode) -> None:
        self.node = node
        self._genesis_bytes: bytes | None = None

    @property
    def max_entry_bytes(self) -> int:
        return self.node.genesis.params.max_entry_bytes

    async def submit_entries(self, entries: Sequence[SignedEntry]) -> list[str]:
        checked = []
        for i, entry in enumerate(entries):
            try:
                checked.append(contracts.check_entry_stateless(entry, self.node.genesis))
            except Rejection as exc:
                prefix = f"entry {i}: " if len(entries) > 1 else ""
                raise Rejection(exc.code, prefix + exc.message) from exc
        try:
            return self.node.admit_batch(checked)
        except MempoolFull as full:
            # 429, not 400: the entries are fine and the client should retry later.
            raise ApiError(
                429, "mempool_full", f"mempool is full ({full.limit}): {full.reason}"
            ) from full

    async def submit_body(self, kind: str, body: Mapping[str, Any]) -> SignedEntry:
        node = self.node
        entry = Entry(node.genesis.chain_id, kind, node.member_id, now_ms(), dict(body))
        try:
            signed = entry.sign(node.key)
        except EntryError as exc:
            raise ApiError(400, exc.code, exc.reason) from exc
        await self.submit_entries([signed])
        return signed

    def entry_status(self, entry_id: bytes) -> dict[str, Any] | None:
        node = self.node
        with node.store.snapshot() as view:
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
        if node.mempool.status(entry_id) is not None:
            return {"status": "pending"}
        rejected = node.rejected.get(entry_id)
        if rejected is not None:
            return {"status": "rejected", "code": rejected[0], "message": rejected[1]}
        return None

    def certificate(self, cert_id: str) -> dict[str, Any] | None:
        return self._record(f"cert/{cert_id}", lambda s: contracts.certificate(s, cert_id))

    def shipment(self, ucr: str) -> dict[str, Any] | None:
        return self._record(f"shipment/{ucr}", lambda s: contracts.shipment(s, ucr))

    def _record(self, subject: str, read: Any) -> dict[str, Any] | None:
        with self.node.store.snapshot() as view:
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
            return build_bundle(self.node.store, list(subjects))
        except BundleError as exc:
            raise ApiError(400, "malformed", str(exc)) from exc

    def signed_header(self, height: int | None) -> bytes | None:
        with self.node.store.snapshot() as view:
            header = view.head_header() if height is None else view.get_header(height)
            if header is None:
                return None
            commit = view.get_commit(header.height)
        assert commit is not None, f"header {header.height} is stored without its commit"
        return encode({"commit": commit.to_obj(), "header": header.to_obj()})

    def consistency(self, first: int, second: int) -> bytes:
        with self.node.store.snapshot() as view:
            size = view.log_size()
            if not first <= second <= size:
                raise ApiError(400, "malformed", f"need first <= second <= the log size {size}")
            proof = view.consistency_proof(first, second)
        return encode({"first": first, "proof": proof, "second": second})

    def block(self, height: int) -> dict[str, Any] | None:
        with self.node.store.snapshot() as view:
            block, commit = view.get_block(height), view.get_commit(height)
        if block is None or commit is None:
            return None
        return block_json(block, commit)

    def status(self) -> dict[str, Any]:
        node = self.node
        head = node.store.head_header()
        return {
            "chain_id": node.genesis.chain_id,
            "genesis_hash": node.genesis.hash_hex,
            "member": node.member_id,
            "height": node.store.height,
            "head_hash": head.hash().hex() if head else None,
            "head_time": head.time if head else None,
            "round": node.host.core.round,
            "validators": list(node.genesis.validators.ids),
            "peers": [
                {"id": p.id, "connected": p.connected, "height": p.height}
                for p in node.peers.peers()
            ],
            "mempool": len(node.mempool),
            "syncing": node.sync.syncing,
        }

    def genesis_bytes(self) -> bytes:
        # The file as the operator wrote it, so a verifier can fetch it and compare its
        # SHA-256 with the one it was given; read once, it never changes while running.
        if self._genesis_bytes is None:
            self._genesis_bytes = self.node.config.genesis_file.read_bytes()
        return self._genesis_bytes

    def readiness(self) -> str | None:
        """None when the node is synced and hears enough of the network to take part;
        otherwise why not."""
        node = self.node
        if node.sync.syncing:
            return "catching up with the network"
        validators = node.genesis.validators
        connected = set(node.peers.connected())
        if validators.index_of(node.member_id) is not None:
            heard = len(connected & set(validators.ids)) + 1
            if heard < validators.quorum:
                return (
                    f"hears {heard} of {validators.n} validators, a quorum is {validators.quorum}"
                )
        elif not connected:
            return "no peer connected"
        return None

    def metrics(self) -> tuple[bytes, str]:
        node = self.node
        node.metrics.mempool.set(len(node.mempool))
        node.metrics.peers.set(len(node.peers.connected()))
        return node.metrics.render()


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
