"""The officials' client, ``customs``: verifies what nodes say, trusting only genesis.

It imports nothing of the daemon or of aiohttp (``tests/test_layering.py`` keeps it so):
an offline ``customs verify --bundle`` loads the ledger formats, the contracts' rules
and the terminal renderer, and no network code at all.
"""
