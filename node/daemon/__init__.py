"""One member's running node (``customs-node run``).

chain            — the chain's one owner and writer: store, block maker, mempool,
                   rejections; admit, propose, check, commit
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
clock            — the wall clock, read by the shell only
parts            — the narrow Protocols each part is given
node             — ``Node``: wires the parts and runs them
"""
