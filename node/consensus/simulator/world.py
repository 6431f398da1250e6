"""What every part of a run shares: the chain id, the members and their seeded keys, and
the blocks the proposers make (the hosts' notion of a valid block)."""

from __future__ import annotations

import hashlib

from ledger.keys import SigningKey

__all__ = ["CHAIN_ID", "Blocks", "member_ids", "member_key"]

CHAIN_ID = "customs-sim-1"


def member_ids(n: int) -> list[str]:
    return [f"V{i:02d}" for i in range(n)]


_KEYS: dict[str, SigningKey] = {}


def member_key(member_id: str) -> SigningKey:
    key = _KEYS.get(member_id)
    if key is None:
        key = _KEYS[member_id] = SigningKey.from_seed(
            hashlib.sha256(f"sim/{member_id}".encode()).digest()
        )
    return key


class Blocks:
    """The block values of one run: a block exists (and is valid) once a proposer made it;
    a phantom hash never does."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._made: set[bytes] = set()

    def new(self, proposer: str, height: int, round_: int, tag: str = "") -> bytes:
        digest = f"{self._seed}/{proposer}/{height}/{round_}/{tag}".encode()
        block = hashlib.sha256(digest).digest()
        self._made.add(block)
        return block

    def exists(self, block: bytes) -> bool:
        return block in self._made
