"""The RFC 9162 §2.1 Merkle tree: hashes, inclusion and consistency proofs.

The pure reference functions take raw leaf *data*. The proof builders are written once
against ``RangeHash`` — "the Merkle Tree Hash of leaves [lo, hi)" — so that the persistent
log (``ledger.merkle_log``), which answers it from stored perfect subtrees, produces
byte-identical proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "ProofError",
    "consistency_path",
    "consistency_proof",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "split_point",
    "verify_consistency",
    "verify_inclusion",
]

RangeHash = Callable[[int, int], bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_PROOF = 64  # a tree of at most 2**64 leaves has proofs of at most 64 hashes


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth_of_hashes(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[lo]
    k = split_point(n)
    return node_hash(_mth_of_hashes(hashes, lo, lo + k), _mth_of_hashes(hashes, lo + k, hi))


def _range_hasher(leaves: Sequence[bytes]) -> RangeHash:
    hashes = [leaf_hash(d) for d in leaves]
    return lambda lo, hi: _mth_of_hashes(hashes, lo, hi)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the raw leaf data ``leaves``."""
    return _range_hasher(leaves)(0, len(leaves))


def inclusion_path(index: int, size: int, mth: RangeHash) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, mth: RangeHash) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1; empty when sizes are equal or
    the old tree is empty."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is not within 0..{new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(mth(lo, hi))
    path.reverse()
    return path


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    return inclusion_path(index, len(leaves), _range_hasher(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    return consistency_path(old_size, len(leaves), _range_hasher(leaves))


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof of raw leaf data (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(proof) > _MAX_PROOF:
        raise ProofError(f"inclusion proof of {len(proof)} hashes is too long")
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    calculated = root_from_inclusion(leaf, index, size, proof)
    if calculated != root:
        raise ProofError(f"inclusion proof gives root {calculated.hex()}, expected {root.hex()}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2, plus the trivial cases old_size = 0 and old_size = new_size."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is not within 0..{new_size}")
    if len(proof) > _MAX_PROOF:
        raise ProofError(f"consistency proof of {len(proof)} hashes is too long")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise ProofError("consistency proof must be empty for these sizes")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError("the root of an empty tree must be SHA-256 of nothing")
        if old_size == new_size and old_root != new_root:
            raise ProofError("trees of equal size have different roots")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than expected")
    if fr != old_root:
        raise ProofError(f"consistency proof gives old root {fr.hex()}, expected {old_root.hex()}")
    if sr != new_root:
        raise ProofError(f"consistency proof gives new root {sr.hex()}, expected {new_root.hex()}")
