"""ledger.merkle against a deliberately naive transcription of RFC 9162 §2.1.

The reference below follows the RFC's recursive definitions word for word (MTH, PATH,
PROOF/SUBPROOF) on lists of raw leaf data, with no shared code. Every size 1..64 and
every index or old size is compared, and every proof is mutated to show it fails.
"""

from __future__ import annotations

import hashlib

import pytest

from ledger import merkle
from ledger.errors import ProofError

SIZES = range(1, 65)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (RFC 9162 §2.1.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1: MTH({}), MTH({d(0)}) and MTH(D[n])."""
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _k(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1: PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1: SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    return ref_subproof(m, d, True)


LEAVES = [b"leaf-%d" % i for i in range(64)]
ROOTS = [ref_mth(LEAVES[:n]) for n in range(65)]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


# -- §2.1.1 Merkle Tree Hash -----------------------------------------------------------


def test_rfc9162_2_1_1_empty_tree_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_rfc9162_2_1_1_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"a") == _sha256(b"\x00a")
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == _sha256(b"\x01" + b"L" * 32 + b"R" * 32)
    # A leaf whose data looks like two child hashes still hashes differently from a node.
    assert merkle.leaf_hash(b"L" * 32 + b"R" * 32) != merkle.node_hash(b"L" * 32, b"R" * 32)


@pytest.mark.parametrize("n", range(0, 65))
def test_rfc9162_2_1_1_mth_for_every_size(n: int) -> None:
    assert merkle.root(LEAVES[:n]) == ROOTS[n]


def test_rfc9162_2_1_1_root_depends_on_every_leaf_and_order() -> None:
    for n in (2, 3, 7, 64):
        for i in range(n):
            changed = list(LEAVES[:n])
            changed[i] += b"!"
            assert merkle.root(changed) != ROOTS[n]
        assert merkle.root(list(reversed(LEAVES[:n]))) != ROOTS[n]


# -- §2.1.3 Merkle inclusion proofs ----------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_3_1_path_for_every_index(n: int) -> None:
    tree = LEAVES[:n]
    for m in range(n):
        assert merkle.inclusion_proof(tree, m) == ref_path(m, tree)


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_3_2_every_proof_verifies(n: int) -> None:
    for m in range(n):
        merkle.verify_inclusion(LEAVES[m], m, n, ref_path(m, LEAVES[:n]), ROOTS[n])


def _rejects_inclusion(leaf: bytes, m: int, n: int, proof: list[bytes], root: bytes) -> bool:
    try:
        merkle.verify_inclusion(leaf, m, n, proof, root)
    except ProofError:
        return True
    return False


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_3_2_changed_leaf_index_or_root_is_rejected(n: int) -> None:
    for m in range(n):
        proof = ref_path(m, LEAVES[:n])
        assert _rejects_inclusion(LEAVES[m] + b"x", m, n, proof, ROOTS[n])
        assert _rejects_inclusion(LEAVES[m], m, n, proof, _flip(ROOTS[n]))
        others = range(n) if n <= 16 else {(m - 1) % n, (m + 1) % n, (m + n // 2) % n}
        for j in others:
            if j != m:
                assert _rejects_inclusion(LEAVES[m], j, n, proof, ROOTS[n]), (m, j, n)
        assert _rejects_inclusion(LEAVES[m], m, n, proof, ROOTS[n - 1])
        for bad in (-1, n):
            assert _rejects_inclusion(LEAVES[m], bad, n, proof, ROOTS[n])


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_3_2_changed_size_is_rejected(n: int) -> None:
    # A size claim is checked together with that size's root: a tree head binds both.
    for m in range(n):
        proof = ref_path(m, LEAVES[:n])
        for other in (n - 1, n + 1, 2 * n):
            if m < other <= 64:
                assert _rejects_inclusion(LEAVES[m], m, other, proof, ROOTS[other]), (m, n, other)
        assert _rejects_inclusion(LEAVES[m], m, 0, proof, ROOTS[n])


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_3_2_changed_truncated_or_extended_proof_is_rejected(n: int) -> None:
    for m in range(n):
        proof = ref_path(m, LEAVES[:n])
        for i in range(len(proof)):
            changed = list(proof)
            changed[i] = _flip(changed[i])
            assert _rejects_inclusion(LEAVES[m], m, n, changed, ROOTS[n])
        if proof:
            assert _rejects_inclusion(LEAVES[m], m, n, proof[:-1], ROOTS[n])
        assert _rejects_inclusion(LEAVES[m], m, n, [*proof, ROOTS[n]], ROOTS[n])
        assert _rejects_inclusion(LEAVES[m], m, n, [*proof, bytes(32)], ROOTS[n])


def test_rfc9162_2_1_3_1_path_of_missing_leaf_is_refused() -> None:
    with pytest.raises(ProofError):
        merkle.inclusion_proof(LEAVES[:4], 4)
    with pytest.raises(ProofError):
        merkle.inclusion_proof([], 0)


def test_rfc9162_2_1_3_2_overlong_proof_is_refused_before_hashing() -> None:
    with pytest.raises(ProofError, match="too long"):
        merkle.verify_inclusion(LEAVES[0], 0, 2**70, [bytes(32)] * 65, ROOTS[1])


# -- §2.1.4 Merkle consistency proofs --------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_4_1_proof_for_every_old_size(n: int) -> None:
    tree = LEAVES[:n]
    for m in range(1, n + 1):
        assert merkle.consistency_proof(tree, m) == ref_proof(m, tree)
    assert merkle.consistency_proof(tree, 0) == []


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_4_2_every_proof_verifies(n: int) -> None:
    for m in range(0, n + 1):
        proof = ref_proof(m, LEAVES[:n]) if m else []
        merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)


def _rejects_consistency(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    try:
        merkle.verify_consistency(m, n, old, new, proof)
    except ProofError:
        return True
    return False


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_4_2_changed_roots_or_sizes_are_rejected(n: int) -> None:
    for m in range(1, n + 1):
        proof = ref_proof(m, LEAVES[:n])
        assert _rejects_consistency(m, n, _flip(ROOTS[m]), ROOTS[n], proof)
        assert _rejects_consistency(m, n, ROOTS[m], _flip(ROOTS[n]), proof)
        for other in (m - 1, m + 1):
            if 1 <= other < n:
                assert _rejects_consistency(other, n, ROOTS[other], ROOTS[n], proof), (m, n)
        for other in (n - 1, n + 1):
            if m < other <= 64:
                assert _rejects_consistency(m, other, ROOTS[m], ROOTS[other], proof), (m, n)
        assert _rejects_consistency(m, n, ROOTS[m], ROOTS[n], [bytes(32)] * 65)


@pytest.mark.parametrize("n", SIZES)
def test_rfc9162_2_1_4_2_changed_truncated_or_extended_proof_is_rejected(n: int) -> None:
    for m in range(1, n):
        proof = ref_proof(m, LEAVES[:n])
        for i in range(len(proof)):
            changed = list(proof)
            changed[i] = _flip(changed[i])
            assert _rejects_consistency(m, n, ROOTS[m], ROOTS[n], changed), (m, n, i)
        assert _rejects_consistency(m, n, ROOTS[m], ROOTS[n], proof[:-1])
        assert _rejects_consistency(m, n, ROOTS[m], ROOTS[n], [*proof, bytes(32)])


def test_rfc9162_2_1_4_2_trivial_sizes_need_empty_proofs_and_right_roots() -> None:
    merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, ROOTS[5], [])
    merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert _rejects_consistency(0, 5, ROOTS[1], ROOTS[5], [])
    assert _rejects_consistency(5, 5, ROOTS[5], ROOTS[4], [])
    assert _rejects_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    assert _rejects_consistency(6, 5, ROOTS[6], ROOTS[5], [])
    with pytest.raises(ProofError):
        merkle.consistency_proof(LEAVES[:4], 5)
