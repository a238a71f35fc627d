"""Grouping near-identical submissions into campaigns: pure decisions over a signature store.

Why `services/campaigns/`: grouping needs state of its own (each scope's signatures, kept
across restarts) and wants one consumer to own a scope (events keyed by `legislation_ref`,
or by the routed unit), which is a consumer group of its own; the other services only read
the decision it publishes. This module is that service's domain core, free of I/O, so
`sada campaigns group` runs the very same algorithm with no infrastructure.

The algorithm (docs/campaigns.md):

1. **Comparable text**: subject, body and free-text answers (an answer of more than
   `CHOICE_MAX_WORDS` words; shorter answers are choices and ignored), normalised by the
   router's keyword normaliser (`services.router.rules.normalise`: Arabic diacritics and
   tatweel removed, letter variants folded, case-folded), then every run of punctuation,
   symbols and whitespace becomes one word break. No words → never grouped.
2. **Identical**: the SHA-256 of the words joined without spaces is looked up in the scope;
   a hit joins that text's campaign at similarity 1.0, at any length.
3. **Near-identical** (at least `MIN_WORDS` words): a MinHash (`datasketch`, `NUM_PERM`
   permutations) of the text's word `SHINGLE`-grams is queried in the scope's MinHashLSH
   (`BANDS` x `ROWS`) for candidates; each candidate's exact Jaccard similarity on the
   stored shingle hashes is computed and the best one at or above `THRESHOLD` wins (ties:
   the lowest submission id, so the order the index returns them in does not matter).
   Only texts that founded a campaign or joined none are indexed: a variant
   is compared with its campaign's founding text, never with another variant, so a
   campaign cannot drift one small edit at a time, and a campaign of 10,000 copies costs
   one index entry.

`campaign_id` is the UUIDv5 of the scope and the founding member's submission id: the
same input in the same order gives the same ids, in any process.
"""

from __future__ import annotations

import hashlib
import re
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from datasketch import MinHash, MinHashLSH

from services.router.rules import normalise
from shared import ids
from shared.models import Submission
from shared.scopes import campaign_scope

CAMPAIGN_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:campaign").bytes

CHOICE_MAX_WORDS: Final = 3
"""An answer of at most this many words is a choice (e.g. "strongly agree"), not free text."""
MIN_WORDS: Final = 20
"""Shorter texts join a campaign only when identical after normalisation."""
SHINGLE: Final = 2
"""Words per shingle: pairs keep word order, so a reshuffled text in own words differs."""
NUM_PERM: Final = 126
"""MinHash permutations; 42 bands of 3 rows find a pair at Jaccard 0.4 with p ≈ 0.94,
at 0.5 with p ≈ 0.9996, and an unrelated pair (0.05) with p ≈ 0.005."""
BANDS: Final = 42
ROWS: Final = 3
THRESHOLD: Final = 0.4
"""Least Jaccard similarity of shingles for near-identical; docs/campaigns.md shows why."""
WINDOW: Final = timedelta(days=7)
"""How long a unit scope (no `legislation_ref`) remembers a text."""
MAX_INDEXED: Final = 20_000
"""Most near-identical candidates kept per scope, the oldest forgotten first: about 12 KB
each (datasketch's in-memory LSH keeps a set per band bucket), so ≤ ~240 MB per scope
(bench/README.md)."""
MAX_EXACT: Final = 200_000
"""Most distinct normalised texts kept per scope for the identical test: ~600 B each."""

_SEPARATORS = re.compile(r"[\W_]+")
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=1).permutations


def _identity(value: int) -> int:
    return value


def new_minhash() -> MinHash:
    """Return an empty MinHash with the fixed permutations every process shares."""
    return MinHash(
        num_perm=NUM_PERM, hashfunc=_identity, permutations=_PERMUTATIONS, scheme="affine32"
    )


def words(submission: Submission) -> list[str]:
    """Return the comparable words of `submission` (subject, body, free-text answers)."""
    parts = [submission.subject or "", submission.body or ""]
    for answer in submission.answers:
        answer_words = _split(answer.answer)
        if len(answer_words) > CHOICE_MAX_WORDS:
            parts.append(answer.answer)
    return _split("\n".join(parts))


def _split(text: str) -> list[str]:
    return _SEPARATORS.sub(" ", normalise(text)).split()


def shingles(text_words: list[str]) -> npt.NDArray[np.uint32]:
    """Return the sorted, distinct CRC-32 hashes of the `SHINGLE`-word shingles."""
    grams = (" ".join(text_words[i : i + SHINGLE]) for i in range(len(text_words) - SHINGLE + 1))
    return np.unique(np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint32))


def jaccard(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> float:
    """Return |a ∩ b| / |a ∪ b| of two sorted arrays of distinct hashes."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def campaign_id(scope: str, founder_submission_id: str) -> str:
    """Return the campaign's id: UUIDv5 of the scope and its first member's submission id."""
    return ids.uuid5(CAMPAIGN_NAMESPACE, f"{scope}\x1f{founder_submission_id}")


def scope_of(submission: Submission, unit: str) -> str:
    """Return the grouping scope: the draft law when there is one, else the routed unit."""
    return campaign_scope(submission.legislation_ref, unit)


@dataclass(frozen=True, slots=True)
class Member:
    """A text the scope remembers: who sent it first, and the campaign it is in."""

    submission_id: str
    reference: str
    founder_id: str
    """Submission id of the campaign's first member (itself when it founded one)."""
    founder_reference: str
    """Reference of the campaign's first member."""
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class Indexed:
    """A near-identical candidate: its member and the shingle hashes to verify against."""

    member: Member
    shingles: npt.NDArray[np.uint32]


class SignatureStore(Protocol):
    """What grouping remembers per scope; persisted by the service, in memory here."""

    def exact(self, scope: str, digest: bytes) -> Member | None:
        """Return the first member whose normalised text has `digest`."""
        ...

    def candidates(self, scope: str, minhash: MinHash) -> Iterable[Indexed]:
        """Return the indexed texts whose MinHash shares a band with `minhash`."""
        ...

    def remember(
        self, scope: str, digest: bytes, member: Member, index: Indexed | None, minhash: MinHash
    ) -> None:
        """Record `member` under `digest`, and index it as a candidate when `index` is given."""
        ...

    def join(self, scope: str, founder_id: str) -> int:
        """Count one more member of the campaign; return its size."""
        ...

    def expire(self, scope: str, before: datetime) -> None:
        """Forget the texts of `scope` first seen before `before` (rolling window)."""
        ...


@dataclass(slots=True)
class _Scope:
    exact: OrderedDict[bytes, Member] = field(default_factory=OrderedDict)
    indexed: OrderedDict[str, Indexed] = field(default_factory=OrderedDict)
    sizes: dict[str, int] = field(default_factory=dict)
    lsh: MinHashLSH = field(
        default_factory=lambda: MinHashLSH(num_perm=NUM_PERM, params=(BANDS, ROWS))
    )


class MemoryStore:
    """An in-memory `SignatureStore`: bounded per scope by `max_indexed` and `max_exact`.

    Per indexed text it keeps the shingle hashes (4 bytes each) and the LSH's band entries;
    per distinct text a 32-byte digest and its `Member` (bench/README.md has the figures).
    """

    def __init__(self, *, max_indexed: int = MAX_INDEXED, max_exact: int = MAX_EXACT) -> None:
        self._scopes: dict[str, _Scope] = {}
        self._max_indexed = max_indexed
        self._max_exact = max_exact

    def _scope(self, scope: str) -> _Scope:
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = _Scope()
        return found

    def exact(self, scope: str, digest: bytes) -> Member | None:
        """Return the first member whose normalised text has `digest`."""
        found = self._scopes.get(scope)
        return None if found is None else found.exact.get(digest)

    def candidates(self, scope: str, minhash: MinHash) -> list[Indexed]:
        """Return the indexed texts whose MinHash shares a band with `minhash`."""
        found = self._scopes.get(scope)
        if found is None:
            return []
        return [found.indexed[key] for key in found.lsh.query(minhash)]

    def remember(
        self, scope: str, digest: bytes, member: Member, index: Indexed | None, minhash: MinHash
    ) -> None:
        """Record `member` under `digest`; index it when `index` is given; evict the oldest."""
        state = self._scope(scope)
        state.exact.setdefault(digest, member)
        if len(state.exact) > self._max_exact:
            state.exact.popitem(last=False)
        if index is not None:
            key = member.submission_id
            if key not in state.indexed:
                state.indexed[key] = index
                state.lsh.insert(key, minhash, check_duplication=False)
            if len(state.indexed) > self._max_indexed:
                oldest, _ = state.indexed.popitem(last=False)
                state.lsh.remove(oldest)

    def join(self, scope: str, founder_id: str) -> int:
        """Count one more member of the campaign; return its size."""
        sizes = self._scope(scope).sizes
        sizes[founder_id] = sizes.get(founder_id, 1) + 1
        return sizes[founder_id]

    def restore_size(self, scope: str, founder_id: str, size: int) -> None:
        """Set a campaign's size, as persisted (a service reloading a scope)."""
        self._scope(scope).sizes[founder_id] = size

    def forget(self, scope: str) -> None:
        """Drop everything `scope` holds (its persisted state is reloaded instead)."""
        self._scopes.pop(scope, None)

    def indexed(self, scope: str) -> int:
        """Return how many near-identical candidates `scope` holds."""
        found = self._scopes.get(scope)
        return 0 if found is None else len(found.indexed)

    def distinct(self, scope: str) -> int:
        """Return how many distinct normalised texts `scope` holds."""
        found = self._scopes.get(scope)
        return 0 if found is None else len(found.exact)

    def expire(self, scope: str, before: datetime) -> None:
        """Forget texts first seen before `before`; they are kept in the order seen."""
        state = self._scopes.get(scope)
        if state is None:
            return
        while state.exact:
            digest, member = next(iter(state.exact.items()))
            if member.seen_at >= before:
                break
            del state.exact[digest]
        while state.indexed:
            key, entry = next(iter(state.indexed.items()))
            if entry.member.seen_at >= before:
                break
            del state.indexed[key]
            state.lsh.remove(key)


@dataclass(frozen=True, slots=True)
class Grouping:
    """The decision for one submission; every field None when it joined no campaign (yet)."""

    scope: str
    campaign_id: str | None
    campaign_size: int | None
    similar_to: str | None
    """Reference of the closest earlier member (an identical copy, or the founding text)."""
    similarity: float | None
    first_submission_id: str | None = None
    """Submission id of the campaign's first member."""
    first_reference: str | None = None
    """Reference of the campaign's first member."""


def group(
    submission: Submission, unit: str, store: SignatureStore, *, window: timedelta = WINDOW
) -> Grouping:
    """Decide whether `submission` joins a campaign of its scope, and remember it.

    `unit` is the routed unit, the scope when there is no `legislation_ref`; unit scopes
    forget texts older than `window` (by `submitted_at`, so a replay decides the same).
    """
    scope = scope_of(submission, unit)
    text_words = words(submission)
    if not text_words:
        return Grouping(scope, None, None, None, None)
    seen_at = submission.submitted_at
    if not submission.legislation_ref:
        store.expire(scope, seen_at - window)
    digest = hashlib.sha256("".join(text_words).encode()).digest()
    same = store.exact(scope, digest)
    if same is not None:
        return _joined(scope, store, same, same.reference, 1.0)
    best: tuple[float, Member] | None = None
    index: Indexed | None = None
    minhash = new_minhash()
    if len(text_words) >= MIN_WORDS:
        hashes = shingles(text_words)
        minhash.update_batch(hashes.tolist())
        for candidate in store.candidates(scope, minhash):
            score = jaccard(hashes, candidate.shingles)
            if score >= THRESHOLD and (
                best is None
                or score > best[0]
                or (score == best[0] and candidate.member.submission_id < best[1].submission_id)
            ):
                best = (score, candidate.member)
        first = best[1] if best else None
        member = Member(
            submission.submission_id,
            submission.reference,
            first.founder_id if first else submission.submission_id,
            first.founder_reference if first else submission.reference,
            seen_at,
        )
        index = None if best else Indexed(member, hashes)
    else:
        member = Member(
            submission.submission_id,
            submission.reference,
            submission.submission_id,
            submission.reference,
            seen_at,
        )
    store.remember(scope, digest, member, index, minhash)
    if best is None:
        return Grouping(scope, None, None, None, None)
    return _joined(scope, store, best[1], best[1].reference, round(best[0], 4))


def _joined(
    scope: str, store: SignatureStore, closest: Member, similar_to: str, similarity: float
) -> Grouping:
    founder = closest.founder_id
    size = store.join(scope, founder)
    return Grouping(
        scope,
        campaign_id(scope, founder),
        size,
        similar_to,
        similarity,
        founder,
        closest.founder_reference,
    )
