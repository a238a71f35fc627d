"""The Merkle tree matches RFC 6962's recursive definition for every size and every leaf."""

from __future__ import annotations

import pytest

from services.archive.merkle import (
    EMPTY_ROOT,
    Frontier,
    inclusion_paths,
    leaf_hash,
    node_hash,
    path_ranges,
    verify_inclusion,
)

pytestmark = pytest.mark.unit

LEAVES = [leaf_hash(f"leaf {i}".encode()) for i in range(70)]


def _mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 defines it (leaves already hashed)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 9162 section 2.1.3.1 defines it."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"ab") != node_hash(b"a", b"b")
    assert Frontier().root() == EMPTY_ROOT


def test_the_frontier_gives_the_rfc_root_for_every_size_up_to_70() -> None:
    frontier = Frontier()
    for n in range(1, 71):
        frontier.append(LEAVES[n - 1])
        assert frontier.root() == _mth(LEAVES[:n]), n
        assert len(frontier.hashes) == bin(n).count("1")


def test_a_frontier_survives_storage_and_refuses_a_wrong_shape() -> None:
    frontier = Frontier()
    for leaf in LEAVES[:13]:
        frontier.append(leaf)
    again = Frontier.from_hex(13, frontier.to_hex())
    again.append(LEAVES[13])
    assert again.root() == _mth(LEAVES[:14])
    with pytest.raises(ValueError, match="13 leaves"):
        Frontier.from_hex(13, frontier.to_hex()[:2])


def test_inclusion_paths_match_the_rfc_path_for_every_size_and_index() -> None:
    for n in range(1, 71):
        paths = inclusion_paths(iter(LEAVES), n, range(n))
        root = _mth(LEAVES[:n])
        for m in range(n):
            assert paths[m] == _path(m, LEAVES[:n]), (m, n)
            assert verify_inclusion(LEAVES[m], m, n, paths[m], root), (m, n)


def test_a_path_does_not_verify_another_leaf_index_size_or_root() -> None:
    n = 37
    paths = inclusion_paths(iter(LEAVES), n, range(n))
    root = _mth(LEAVES[:n])
    for m in range(n):
        assert not verify_inclusion(LEAVES[m], (m + 1) % n, n, paths[m], root)
        assert not verify_inclusion(LEAVES[(m + 1) % n], m, n, paths[m], root)
        assert not verify_inclusion(LEAVES[m], m, n, paths[m], _mth(LEAVES[: n - 1]))
        if paths[m]:
            tampered = [bytes([paths[m][0][0] ^ 1]) + paths[m][0][1:], *paths[m][1:]]
            assert not verify_inclusion(LEAVES[m], m, n, tampered, root)


def test_path_ranges_are_disjoint_and_cover_every_other_leaf() -> None:
    for n in range(1, 71):
        for m in range(n):
            covered = sorted(i for start, end in path_ranges(m, n) for i in range(start, end))
            assert covered == [i for i in range(n) if i != m]


def test_a_path_needs_the_leaves_it_covers() -> None:
    with pytest.raises(ValueError, match="fewer than 10"):
        inclusion_paths(iter(LEAVES[:9]), 10, [3])
    with pytest.raises(ValueError, match="not in a tree"):
        path_ranges(5, 5)
