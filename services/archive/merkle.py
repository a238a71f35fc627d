"""The Merkle tree of Certificate Transparency (RFC 6962 / RFC 9162 section 2.1), pure.

- `leaf_hash(d)` = SHA-256(0x00 || d), `node_hash(l, r)` = SHA-256(0x01 || l || r): the two
  prefixes keep a leaf from ever passing for an inner node;
- `Frontier` (a "compact range" from 0): the roots of the perfect subtrees that make up the
  first n leaves, one per set bit of n, so O(log n) hashes. Appending a leaf merges equal
  sizes like binary addition; `root()` folds them right to left into the RFC root MTH(D[n]);
- `path_ranges(m, n)`: the RFC 9162 inclusion path PATH(m, D[n]) is the list of the roots of a
  few disjoint leaf ranges, so `inclusion_paths` computes it in ONE streaming pass over the
  leaves [0, n), one `Frontier` per range (O(log n) ranges of O(log n) hashes each);
- `verify_inclusion`: the RFC 9162 section 2.1.3.2 check of a path against a root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 6962 section 2.1)."""


def leaf_hash(data: bytes) -> bytes:
    """Return the hash of a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an inner node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(slots=True)
class Frontier:
    """The first `size` leaves of a tree, as the roots of their perfect subtrees (largest first)."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add the next leaf (its `leaf_hash`)."""
        self.hashes.append(leaf)
        self.size += 1
        merged, carry = self.size, leaf
        # Each trailing zero bit of the new size is a pair of equal subtrees to merge.
        while merged % 2 == 0:
            right = self.hashes.pop()
            left = self.hashes.pop()
            carry = node_hash(left, right)
            self.hashes.append(carry)
            merged //= 2

    def root(self) -> bytes:
        """Return MTH of the leaves so far (RFC 6962), `EMPTY_ROOT` when there is none."""
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = node_hash(left, result)
        return result

    def copy(self) -> Frontier:
        """Return an independent copy."""
        return Frontier(self.size, list(self.hashes))

    def to_hex(self) -> list[str]:
        """Return the subtree roots as hex, for storage."""
        return [h.hex() for h in self.hashes]

    @classmethod
    def from_hex(cls, size: int, hashes: Sequence[str]) -> Frontier:
        """Rebuild a frontier from `to_hex`; raise ValueError when the shape does not fit `size`."""
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of {size} leaves has {bin(size).count('1')} hashes")
        return cls(size, [bytes.fromhex(h) for h in hashes])


def path_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """Return the leaf ranges [start, end) whose roots form PATH(m, D[n]), leaf upwards."""
    if not 0 <= m < n:
        raise ValueError(f"leaf {m} is not in a tree of {n} leaves")
    ranges: list[tuple[int, int]] = []
    start, end = 0, n
    while end - start > 1:
        k = _split(end - start)
        if m < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


class PathBuilder:
    """Computes PATH(m, D[n]) for a few leaves m as the first n leaves stream by, in order.

    Each path is the roots of a few disjoint ranges (`path_ranges`): one `Frontier` per range,
    so memory is O(log n) hashes per wanted leaf, whatever n.
    """

    def __init__(self, n: int, indexes: Iterable[int]) -> None:
        self._n = n
        self._wanted = {m: path_ranges(m, n) for m in set(indexes)}
        self._frontiers: dict[tuple[int, int], Frontier] = {}
        self._starts: dict[int, list[tuple[int, int]]] = {}
        for ranges in self._wanted.values():
            for span in ranges:
                if span not in self._frontiers:
                    self._frontiers[span] = Frontier()
                    self._starts.setdefault(span[0], []).append(span)
        self._active: list[tuple[int, int]] = []
        self.count = 0

    def add(self, leaf: bytes) -> bool:
        """Take the next leaf hash; return False once n leaves were taken (the rest is ignored)."""
        index = self.count
        if index >= self._n:
            return False
        self._active = [s for s in self._active if s[1] > index] + self._starts.get(index, [])
        for span in self._active:
            self._frontiers[span].append(leaf)
        self.count += 1
        return self.count < self._n

    def paths(self) -> dict[int, list[bytes]]:
        """Return every wanted path; raise ValueError when fewer than n leaves were added."""
        if self.count < self._n:
            raise ValueError(f"the log holds {self.count} leaves, fewer than {self._n}")
        return {
            m: [self._frontiers[span].root() for span in ranges]
            for m, ranges in self._wanted.items()
        }


def inclusion_paths(
    leaves: Iterable[bytes], n: int, indexes: Iterable[int]
) -> dict[int, list[bytes]]:
    """Return PATH(m, D[n]) for every `m` in `indexes`, in one pass over the first n leaves.

    `leaves` yields the leaf hashes in order (at least n of them; the rest is not read).
    """
    builder = PathBuilder(n, indexes)
    for leaf in leaves:
        if not builder.add(leaf):
            break
    return builder.paths()


def verify_inclusion(leaf: bytes, m: int, n: int, path: Sequence[bytes], root: bytes) -> bool:
    """Return whether `path` proves leaf `m` (its `leaf_hash`) in the tree of `n` with `root`."""
    if not 0 <= m < n:
        return False
    fn, sn, result = m, n - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def _split(n: int) -> int:
    """Return the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)
