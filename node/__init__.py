"""Customs Ledger's node: the daemon an administration runs, and the officials' client.

daemon     — one member's running node: the chain's owner, consensus host, sync, API
consensus  — the deterministic Tendermint core, its driver and the network simulator
peers      — authenticated, gossiping WebSocket links between genesis members
admin      — ``customs-node``: set up a node directory, a network's genesis, a testnet
client     — ``customs``: verify, history, proof, status and submit, trusting genesis only
native     — which modules are compiled with mypyc, and whether that build is current
"""
