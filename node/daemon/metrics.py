"""Prometheus metrics of one node, in a registry of its own (tests run several nodes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["NodeMetrics"]


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.height = Gauge("customs_height", "Height of the last committed block", registry=r)
        self.round = Gauge("customs_round", "Consensus round at the current height", registry=r)
        self.entries_committed = Counter(
            "customs_entries_committed", "Entries committed in blocks", registry=r
        )
        self.entries_rejected = Counter(
            "customs_entries_rejected", "Entries rejected, by code", ["code"], registry=r
        )
        self.peers = Gauge("customs_peers", "Authenticated peer connections", registry=r)
        self.peers_unauthenticated = Gauge(
            "customs_peers_unauthenticated",
            "Accepted peer sockets that have not authenticated yet",
            registry=r,
        )
        self.mempool = Gauge(
            "customs_mempool_entries", "Entries waiting in the mempool", registry=r
        )
        self.timeouts = Counter(
            "customs_consensus_timeouts", "Consensus timeouts fired, by step", ["step"], registry=r
        )
        self.dropped = Counter(
            "customs_consensus_dropped",
            "Consensus messages dropped, by reason",
            ["reason"],
            registry=r,
        )
        self.block_commit_seconds = Histogram(
            "customs_block_commit_seconds",
            "Time to store a decided block (execute, stage, synced batch)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.synced_blocks = Counter(
            "customs_synced_blocks", "Blocks fetched from peers and stored", registry=r
        )
        self.api_refusals = Counter(
            "customs_api_refusals",
            "API requests refused, by route pattern, HTTP status and code",
            ["route", "status", "code"],
            registry=r,
        )

        # Consensus progress and health (node.daemon.consensus_watch feeds most of them).
        self.rounds_past_zero = Counter(
            "customs_consensus_rounds_past_zero",
            "Consensus rounds started past round 0 (a round that ended without a decision)",
            registry=r,
        )
        self.decided_round = Histogram(
            "customs_consensus_decided_round",
            "The round each stored block was decided at (its commit's round)",
            buckets=(0, 1, 2, 3, 5, 8, 13),
            registry=r,
        )
        self.validators_heard = Gauge(
            "customs_validators_heard",
            "Validators this node hears: itself if one, and its linked validator peers",
            registry=r,
        )
        self.validators_quorum = Gauge(
            "customs_validators_quorum", "Validators a quorum needs (from genesis)", registry=r
        )
        self.quorum_lost = Counter(
            "customs_quorum_lost", "Times the node stopped hearing a quorum", registry=r
        )
        self.quorum_regained = Counter(
            "customs_quorum_regained", "Times the node heard a quorum again", registry=r
        )
        self.sync_target = Gauge(
            "customs_sync_target_height",
            "Greatest height known to be stored elsewhere (trusted peers' announcements)",
            registry=r,
        )
        self.blocks_behind = Gauge(
            "customs_blocks_behind", "Sync target height minus our height (0 if none)", registry=r
        )
        self.peer_linked = Gauge(
            "customs_peer_linked",
            "1 while a link to the peer is up, 0 while not (members with an endpoint)",
            ["peer"],
            registry=r,
        )
        self.store_bytes = Gauge(
            "customs_store_bytes", "Bytes on disk of the node's LevelDB directory", registry=r
        )

    # node.daemon.api.ApiObserver: the API's refusals; an entry refused at intake counts with
    # the entries refused in blocks, under its rule code.
    def refused_request(self, route: str, status: int, code: str) -> None:
        self.api_refusals.labels(route, str(status), code).inc()

    def refused_entry(self, code: str) -> None:
        self.entries_rejected.labels(code).inc()

    def watch_peer_events(self, read: Callable[[], Mapping[str, int]]) -> None:
        """Export the peer manager's event counts (faults, refusals, relays), read at scrape
        time: they are counted where they happen, in the transport, by name."""
        self.registry.register(_PeerEvents(read))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _PeerEvents(Collector):
    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "customs_peer_events",
            "Peer link events by kind: faults (a link closed for a bad frame), bad_<kind> "
            "(an invalid message from a member), refusals at the handshake, relays",
            labels=["event"],
        )
        for event, count in sorted(self._read().items()):
            family.add_metric([event], count)
        yield family
