"""One member's running node (``customs-node run``).

chain            — the chain's one writer: store, block maker, commit subscribers
block_maker      — execute, stage and check blocks over one store snapshot
mempool          — signed entries waiting for a block
consensus_host   — drives the consensus core: timers, proposals, validity checks
block_sync       — fetches decided blocks the node missed, from its peers
gossip_payloads  — the payloads of the gossip kinds the daemon sends
queries          — what the HTTP API reads and submits, without HTTP
api              — the aiohttp routes, limits and error bodies
config           — node.toml
key_files        — the node's key and genesis files
metrics, logs    — Prometheus metrics and log set-up
parts            — the narrow Protocols the parts are typed by
node             — ``Node``: wires the parts and runs them
"""
