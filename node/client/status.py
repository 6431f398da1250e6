"""``customs status``: each node's own account of itself, and the newest head that
verifies against genesis (every other node's head proven a prefix of it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.genesis import Genesis
from node.client.agree import Proven, reconcile
from node.client.checkpoints import CheckpointStore
from node.client.errors import NoAnswer, VerificationFailed
from node.client.gather import ask_all, prover
from node.client.heads import Head, verify_signed_header
from node.client.transport import NodeClient, NodeRefusal, NodeUnavailable

__all__ = ["NodeRow", "StatusReport", "gather_status"]


@dataclass(frozen=True, slots=True)
class NodeRow:
    url: str
    reported: dict[str, Any] | None  # the node's GET /v1/status, as it said it
    head: Head | None  # its head, verified against genesis
    error: str | None

    def to_json(self, genesis: Genesis) -> dict[str, Any]:
        reported = self.reported or {}
        peers = reported.get("peers") or []
        return {
            "url": self.url,
            "reachable": self.reported is not None,
            "error": self.error,
            "member": reported.get("member"),
            "chain_id": reported.get("chain_id"),
            "same_genesis": reported.get("genesis_hash") == genesis.hash_hex
            if self.reported is not None
            else None,
            "height": reported.get("height"),
            "head_hash": reported.get("head_hash"),
            "head_time": reported.get("head_time"),
            "peers_connected": sum(1 for p in peers if isinstance(p, dict) and p.get("connected")),
            "peers": len(peers),
            "syncing": reported.get("syncing"),
            "mempool": reported.get("mempool"),
            "verified_head": self.head.to_json() if self.head is not None else None,
        }


@dataclass(frozen=True, slots=True)
class StatusReport:
    rows: tuple[NodeRow, ...]
    proven: Proven

    def to_json(self, genesis: Genesis) -> dict[str, Any]:
        return {
            "command": "status",
            "exit_code": 0,
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash_hex,
            "members": len(genesis.members),
            "validators": list(genesis.validators.ids),
            "nodes": [row.to_json(genesis) for row in self.rows],
            "head": self.proven.head.to_json(),
            "head_node": self.proven.node,
            "lagging": [{"node": n, "head": h.to_json()} for n, h in self.proven.lagging],
            "warnings": list(self.proven.warnings),
        }


def gather_status(
    nodes: Sequence[NodeClient], genesis: Genesis, checkpoints: CheckpointStore, now: int
) -> StatusReport:
    def ask(node: NodeClient) -> NodeRow:
        reported = node.get_json("/v1/status")
        if not isinstance(reported, dict):
            raise NodeUnavailable(node.url, "status is not a JSON object")
        if reported.get("genesis_hash") != genesis.hash_hex:
            raise VerificationFailed(
                "chain",
                f"{node.url} runs chain {str(reported.get('chain_id'))[:64]!r} with genesis "
                f"{str(reported.get('genesis_hash'))[:64]}, not {genesis.hash_hex}",
            )
        head = verify_signed_header(node.get("/v1/headers/head"), genesis)
        return NodeRow(node.url, reported, head, None)

    rows = []
    for node, result in zip(nodes, ask_all(nodes, ask), strict=True):
        if isinstance(result, VerificationFailed):
            raise result
        if isinstance(result, (NodeUnavailable, NodeRefusal)):
            reason = result.reason if isinstance(result, NodeUnavailable) else result.message
            rows.append(NodeRow(node.url, None, None, reason))
        else:
            assert isinstance(result, NodeRow)
            rows.append(result)
    heads = [(row.url, row.head) for row in rows if row.head is not None]
    if not heads:
        raise NoAnswer("no node answered: " + "; ".join(f"{r.url}: {r.error}" for r in rows))
    warnings = [f"{row.url} unreachable: {row.error}" for row in rows if row.head is None]
    proven = reconcile(
        heads,
        checkpoints=checkpoints,
        prove=prover(nodes),
        now=now,
        max_age_ms=None,
        warnings=warnings,
    )
    return StatusReport(tuple(rows), proven)
