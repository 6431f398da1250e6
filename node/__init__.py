"""The customs-node daemon: consensus core, mempool, peers, sync, HTTP API and CLIs."""
