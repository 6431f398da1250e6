"""Formats, hashing, signatures, Merkle log, state map, proofs and the LevelDB store.

Nothing in this package imports asyncio, aiohttp or ``node``; only ``ledger.store``
touches disk, and only key generation draws randomness.
"""
