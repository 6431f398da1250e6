"""``customs-node``'s operator commands: init, genesis, testnet and run.

cli        — argument parsing, exit codes, printing
provision  — writing and loading a member's node directory and a network's genesis
testnet    — every member's directory and one genesis for a local network, in one step
"""
