"""The parts of a running node that its asyncio components use, as narrow Protocols.

``node.daemon.node.Node`` owns and wires every part; the consensus host
(``node.daemon.consensus_host``), the block syncer (``node.daemon.block_sync``) and the
API's service (``node.daemon.queries``) each take a node
typed by what they use of it, not the whole ``Node``. So none of them imports
``node.daemon.node``, and the daemon's modules form no import cycle (tests/test_layering.py).
Only the type checker reads this module: its importers name it under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.block import Block, Commit
from ledger.entry import SignedEntry
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.store import Store
from node.consensus import ConsensusCore
from node.daemon.block_maker import Proposed
from node.daemon.chain import Chain
from node.daemon.config import NodeConfig
from node.daemon.gossip_payloads import Limits
from node.daemon.mempool import Mempool
from node.daemon.metrics import NodeMetrics
from node.peers import PeerManager

__all__ = ["HostNode", "ServiceNode", "SyncNode", "SyncWant"]


class SyncWant(Protocol):
    """The syncer as the host and the service see it (``node.daemon.block_sync.Syncer``)."""

    @property
    def syncing(self) -> bool: ...

    def want(self, height: int) -> None: ...

    def decided_elsewhere(self, height: int) -> bool: ...


class SyncNode(Protocol):
    """What the block syncer reads and calls, and what the host and service share."""

    @property
    def genesis(self) -> Genesis: ...

    @property
    def store(self) -> Store: ...

    @property
    def chain(self) -> Chain: ...

    @property
    def peers(self) -> PeerManager: ...

    @property
    def metrics(self) -> NodeMetrics: ...

    @property
    def wire_limits(self) -> Limits: ...

    def peer_fault(self, peer: str, kind: str, exc: BaseException) -> None: ...

    def pool_verified(self, block: Block) -> frozenset[bytes]: ...


class HostNode(SyncNode, Protocol):
    """What the consensus host uses besides: the pool, the syncer, proposals, failure."""

    @property
    def mempool(self) -> Mempool: ...

    @property
    def sync(self) -> SyncWant: ...

    def fail(self, exc: BaseException) -> None: ...

    def pool_proposed(self, entries: Iterable[SignedEntry]) -> None: ...

    def build_proposal(self, height: int, last_commit: Commit | None) -> Proposed: ...


class _Host(Protocol):
    @property
    def core(self) -> ConsensusCore: ...


class ServiceNode(SyncNode, Protocol):
    """What the API's service uses besides: the member's identity, the pool, the
    rejections remembered, the consensus round and whether the node is syncing."""

    @property
    def member_id(self) -> str: ...

    @property
    def config(self) -> NodeConfig: ...

    @property
    def key(self) -> SigningKey: ...

    @property
    def mempool(self) -> Mempool: ...

    @property
    def rejected(self) -> OrderedDict[bytes, tuple[str, str]]: ...

    @property
    def host(self) -> _Host: ...

    @property
    def sync(self) -> SyncWant: ...

    def admit_batch(self, entries: Sequence[SignedEntry]) -> list[str]: ...
