"""Checking the partition logs against their signed checkpoints, and inclusion proofs.

`verify_logs` streams `log_leaves` by (topic, partition, index) and the Kafka-fed events by
(topic, partition, offset) side by side, one log at a time, never the whole archive in memory:
- each leaf's hash is recomputed from its fields, and the log's root at every checkpointed size
  is compared with the signed one (ROOT MISMATCH: the leaves were rewritten);
- leaf indexes must be dense (DELETED: leaves i..j missing) and their offsets increasing
  (REORDERED); a log shorter than a checkpoint signed is TRUNCATED;
- the event stored at a leaf's offset must be the one the leaf names (SWAPPED) and still hash,
  by its chain link, to the leaf's hash (EDITED); a leaf whose event is nowhere is DELETED; an
  event inside the logged range without a leaf is INSERTED.
A leaf for a redelivered duplicate names an event stored at another offset: those few are
looked up by id at the end.

`prove` gathers, for every event of one submission, what `check_proof` needs to check it
without the database: the event's stored fields, its leaf, the newest checkpoint covering it
and the RFC 9162 inclusion path (one streaming pass over that log's leaves).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.archive import checkpoints
from services.archive.chain import GENESIS, link_hash
from services.archive.checkpoints import Checkpoint, Unreadable
from services.archive.merkle import Frontier, PathBuilder, leaf_hash, verify_inclusion
from services.archive.partition_log import leaf_data, leaf_of, log_name
from services.archive.store import ArchiveStore

Document = dict[str, Any]

LOOKUP_BATCH = 1000
"""Leaves without an event at their offset looked up by id per query."""


class ProblemKind(StrEnum):
    """What a problem of the partition logs says happened."""

    EDITED = "EDITED"
    DELETED = "DELETED"
    INSERTED = "INSERTED"
    TRUNCATED = "TRUNCATED"
    SWAPPED = "SWAPPED"
    REORDERED = "REORDERED"
    ROOT_MISMATCH = "ROOT MISMATCH"
    REFUSED = "REFUSED CHECKPOINT"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, with a message naming what changed."""

    kind: ProblemKind
    log: str
    detail: str


@dataclass(slots=True)
class LogSummary:
    """The check of every partition log."""

    logs: int = 0
    leaves: int = 0
    checkpoints: int = 0
    unlogged: int = 0
    """Events before a log's first leaf or after its last: archived before the log existed,
    or since its last leaf was written."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.problems


def load_checkpoints(
    directory: Path, public: Ed25519PublicKey
) -> tuple[dict[str, list[Checkpoint]], list[Problem]]:
    """Return the checkpoints under `directory` whose signature holds, and the refused ones.

    Good checkpoints come by log, sorted by size; every other line is a REFUSED problem.
    """
    good: dict[str, list[Checkpoint]] = defaultdict(list)
    refused: list[Problem] = []
    for where, found in checkpoints.read_dir(directory):
        if isinstance(found, Unreadable):
            refused.append(Problem(ProblemKind.REFUSED, "?", f"{where}: {found.reason}"))
            continue
        reason = checkpoints.verify(found, public)
        if reason is not None:
            detail = f"{where}: the checkpoint of {found.at} (size {found.size}): {reason}"
            refused.append(Problem(ProblemKind.REFUSED, found.log, detail))
            continue
        good[found.log].append(found)
    for lines in good.values():
        lines.sort(key=lambda c: (c.size, c.at))
    return dict(good), refused


class _Peek:
    """An async iterator with one document of look-ahead."""

    def __init__(self, docs: AsyncIterator[Document]) -> None:
        self._docs = docs
        self.head: Document | None = None

    async def next(self) -> Document | None:
        self.head = await anext(self._docs, None)
        return self.head


def _key(doc: Document | None) -> tuple[str, int] | None:
    if doc is None:
        return None
    partition = doc.get("partition")
    return (str(doc.get("topic")), partition if isinstance(partition, int) else -1)


async def verify_logs(
    store: Any, signed: Mapping[str, list[Checkpoint]], refused: Iterable[Problem] = ()
) -> LogSummary:
    """Check every partition log against the events and the `signed` checkpoints."""
    summary = LogSummary(problems=list(refused))
    summary.checkpoints = sum(len(lines) for lines in signed.values())
    leaves, events = _Peek(store.all_leaves()), _Peek(store.events_by_position())
    await leaves.next()
    await events.next()
    seen: set[str] = set()
    orphans: list[Document] = []
    while leaves.head is not None or events.head is not None:
        keys = [k for k in (_key(leaves.head), _key(events.head)) if k is not None]
        topic, partition = min(keys)
        name = log_name(topic, partition)
        seen.add(name)
        check = _LogCheck(name, signed.get(name, []), summary)
        await check.run((topic, partition), leaves, events, orphans)
        if len(orphans) >= LOOKUP_BATCH:
            await _resolve(store, orphans, summary)
            orphans = []
    await _resolve(store, orphans, summary)
    for name, lines in signed.items():
        if name not in seen and lines:
            last = lines[-1]
            detail = f"partition holds 0 leaves, the checkpoint of {last.at} signed {last.size}"
            summary.problems.append(Problem(ProblemKind.TRUNCATED, name, detail))
    summary.logs = len(seen | set(signed))
    return summary


class _LogCheck:
    """The check of one log: its leaves and events merged by offset."""

    def __init__(self, name: str, lines: list[Checkpoint], summary: LogSummary) -> None:
        self.name = name
        self.lines = lines
        self.summary = summary
        self.frontier = Frontier()
        self.expected = 0
        self.previous_offset: int | None = None
        self.first_offset: int | None = None
        self.next_line = 0

    def problem(self, kind: ProblemKind, detail: str) -> None:
        self.summary.problems.append(Problem(kind, self.name, detail))

    async def run(
        self,
        key: tuple[str, int],
        leaves: _Peek,
        events: _Peek,
        orphans: list[Document],
    ) -> None:
        while _key(leaves.head) == key or _key(events.head) == key:
            leaf = leaves.head if _key(leaves.head) == key else None
            event = events.head if _key(events.head) == key else None
            leaf_offset = _int(leaf.get("offset")) if leaf is not None else None
            event_offset = _int(event.get("offset")) if event is not None else None
            if event is not None and (leaf is None or _before(event_offset, leaf_offset)):
                self.unmatched_event(event, event_offset, more_leaves=leaf is not None)
                await events.next()
                continue
            self.leaf(leaf)  # type: ignore[arg-type]
            if event is not None and event_offset == leaf_offset:
                self.match(leaf, event)  # type: ignore[arg-type]
                await events.next()
            else:
                orphans.append({**leaf, "_log": self.name})  # type: ignore[dict-item]
            await leaves.next()
        self.finish()

    def leaf(self, doc: Document) -> None:
        index, offset = _int(doc.get("index")), _int(doc.get("offset"))
        self.summary.leaves += 1
        if self.first_offset is None:
            self.first_offset = offset
        if index is None or index < self.expected:
            self.problem(
                ProblemKind.REORDERED,
                f"leaf {doc.get('_id')} has index {index!r} after index {self.expected - 1}",
            )
        elif index > self.expected:
            missing = (
                f"{self.expected}"
                if index == self.expected + 1
                else (f"{self.expected}..{index - 1}")
            )
            self.problem(ProblemKind.DELETED, f"leaves {missing} missing")
        if (
            offset is not None
            and self.previous_offset is not None
            and offset <= self.previous_offset
        ):
            self.problem(
                ProblemKind.REORDERED,
                f"leaf {index} (offset {offset}) comes after offset {self.previous_offset}",
            )
        recomputed = leaf_of(doc)
        if recomputed is None or recomputed.hex() != doc.get("leaf"):
            self.problem(
                ProblemKind.EDITED,
                f"leaf {index}'s fields (event {doc.get('event_id')}, submission "
                f"{doc.get('submission_id')}) no longer give its stored leaf hash",
            )
        self.frontier.append(recomputed or bytes(32))
        if index is not None:
            self.expected = max(self.expected, index + 1)
        self.previous_offset = offset if offset is not None else self.previous_offset
        self.compare_roots(self.expected)

    def compare_roots(self, size: int) -> None:
        """Compare the root with every checkpoint of a size reached (or skipped) by now."""
        while self.next_line < len(self.lines) and self.lines[self.next_line].size <= size:
            line = self.lines[self.next_line]
            self.next_line += 1
            if line.size != self.frontier.size or self.frontier.root().hex() != line.root:
                self.problem(
                    ProblemKind.ROOT_MISMATCH,
                    f"leaves up to size {line.size} no longer give the root the checkpoint of "
                    f"{line.at} signed: rewritten",
                )

    def match(self, leaf: Document, event: Document) -> None:
        index = leaf.get("index")
        if event.get("_id") != leaf.get("event_id"):
            self.problem(
                ProblemKind.SWAPPED,
                f"the event at offset {leaf.get('offset')} is {event.get('_id')} (submission "
                f"{event.get('submission_id')}) but leaf {index} names {leaf.get('event_id')} "
                f"(submission {leaf.get('submission_id')})",
            )
            return
        prev_hash, text = event.get("prev_hash"), event.get("event")
        recomputed = (
            link_hash(prev_hash, text)
            if isinstance(prev_hash, str) and isinstance(text, str)
            else None
        )
        if recomputed != leaf.get("hash") or event.get("hash") != leaf.get("hash"):
            self.problem(
                ProblemKind.EDITED,
                f"event {event.get('_id')} of submission {event.get('submission_id')} no longer "
                f"hashes to its leaf {index}",
            )

    def unmatched_event(self, event: Document, offset: int | None, *, more_leaves: bool) -> None:
        if self.first_offset is None or offset is None or offset < self.first_offset:
            self.summary.unlogged += 1  # before the log began
        elif not more_leaves:
            self.summary.unlogged += 1  # archived after the last leaf (or being logged now)
        else:
            self.problem(
                ProblemKind.INSERTED,
                f"event {event.get('_id')} of submission {event.get('submission_id')} at offset "
                f"{offset} has no leaf",
            )

    def finish(self) -> None:
        held = self.expected
        beyond = [line for line in self.lines[self.next_line :] if line.size > held]
        self.compare_roots(held)
        if beyond:
            last = beyond[-1]
            self.problem(
                ProblemKind.TRUNCATED,
                f"partition holds {held} leaves, the checkpoint of {last.at} signed {last.size}",
            )


async def _resolve(store: Any, orphans: list[Document], summary: LogSummary) -> None:
    """Leaves with no event at their offset: a redelivered duplicate, or a deleted event."""
    if not orphans:
        return
    found = await store.events([str(leaf.get("event_id")) for leaf in orphans])
    gone: dict[tuple[str, Any], list[Document]] = defaultdict(list)
    for leaf in orphans:
        event = found.get(str(leaf.get("event_id")))
        if event is None:
            gone[(leaf["_log"], leaf.get("submission_id"))].append(leaf)
        elif event.get("hash") != leaf.get("hash"):
            summary.problems.append(
                Problem(
                    ProblemKind.EDITED,
                    leaf["_log"],
                    f"event {leaf.get('event_id')} of submission {event.get('submission_id')} "
                    f"no longer hashes to its leaf {leaf.get('index')}",
                )
            )
    for (name, submission), lost in gone.items():
        reference = next((leaf.get("reference") for leaf in lost if leaf.get("reference")), None)
        named = ", ".join(
            f"leaf {leaf.get('index')} names event {leaf.get('event_id')}" for leaf in lost
        )
        summary.problems.append(
            Problem(
                ProblemKind.DELETED,
                name,
                f"{named} of submission {submission}, reference {reference or 'unknown'}, "
                "which is gone",
            )
        )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _before(a: int | None, b: int | None) -> bool:
    return a is not None and (b is None or a < b)


class ProofError(Exception):
    """A proof cannot be made (no such submission, no checkpoint covers an event)."""


async def prove(
    archive: ArchiveStore,
    logs: Any,
    ref: str,
    signed: Mapping[str, list[Checkpoint]],
) -> Document:
    """Return the inclusion proof of every event of submission `ref` (reference or id)."""
    chain_id = await archive.chain_for_reference(ref) or ref
    events = await archive.chain_events([chain_id])
    if not events:
        raise ProofError(f"no such submission: {ref}")
    leaves = await logs.leaves_of_events([str(doc["_id"]) for doc in events])
    by_event: dict[str, Document] = {}
    for leaf in sorted(leaves, key=lambda d: d.get("index") or 0):
        by_event.setdefault(str(leaf["event_id"]), leaf)
    for leaf in leaves:  # prefer the leaf at the event's own offset (not a duplicate's)
        event = next(doc for doc in events if doc["_id"] == leaf["event_id"])
        if leaf.get("offset") == event.get("offset"):
            by_event[str(leaf["event_id"])] = leaf
    items: list[Document] = []
    wanted: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for event in events:
        leaf = by_event.get(str(event["_id"]))
        if leaf is None:
            raise ProofError(f"event {event['_id']} has no leaf (archived before the log?)")
        name = log_name(leaf["topic"], leaf["partition"])
        covering = [c for c in signed.get(name, []) if c.size > leaf["index"]]
        if not covering:
            raise ProofError(f"no checkpoint of {name} covers leaf {leaf['index']} yet")
        newest = max(covering, key=lambda c: (c.at, c.size))
        wanted[(leaf["topic"], leaf["partition"], newest.size)].append(leaf["index"])
        items.append(
            {
                "event": {
                    "event_id": event["_id"],
                    "submission_id": event["submission_id"],
                    "seq": event["seq"],
                    "prev_hash": event["prev_hash"],
                    "event": event["event"],
                    "hash": event["hash"],
                },
                "leaf": {
                    "log": name,
                    "topic": leaf["topic"],
                    "partition": leaf["partition"],
                    "index": leaf["index"],
                    "offset": leaf["offset"],
                },
                "checkpoint": orjson.loads(newest.line()),
            }
        )
    paths: dict[tuple[str, int, int], list[bytes]] = {}
    for (topic, partition, size), indexes in wanted.items():
        found = await _collect_paths(logs.log_leaves(topic, partition, size), size, indexes)
        for index, path in found.items():
            paths[(log_name(topic, partition), index, size)] = path
    for item in items:
        key = (item["leaf"]["log"], item["leaf"]["index"], item["checkpoint"]["size"])
        item["path"] = [node.hex() for node in paths[key]]
    return {"submission_id": chain_id, "reference": ref, "events": items}


async def _collect_paths(
    docs: AsyncIterator[Document], size: int, indexes: list[int]
) -> dict[int, list[bytes]]:
    """Compute the paths in one streaming pass over the log's first `size` leaves."""
    builder = PathBuilder(size, indexes)
    async for doc in docs:
        if not builder.add(leaf_of(doc) or bytes(32)):
            break
    return builder.paths()


def check_proof(proof: Mapping[str, Any], public: Ed25519PublicKey) -> list[str]:
    """Return what fails in `proof` (empty when every event verifies); no database needed."""
    failures: list[str] = []
    items = proof.get("events")
    if not isinstance(items, list) or not items:
        return ["the proof holds no events"]
    for number, item in enumerate(items):
        try:
            failures.extend(_check_item(number, item, public))
            if item["event"]["submission_id"] != proof.get("submission_id"):
                failures.append(f"event #{number}: of another submission than the proof's")
        except (KeyError, TypeError, ValueError) as exc:
            failures.append(f"event #{number}: malformed ({type(exc).__name__}: {exc})")
    if not failures:
        failures.extend(_chain_problems(items))
    return failures


def _chain_problems(items: list[Any]) -> list[str]:
    """Return why the proof's events are not one unbroken chain from its first event."""
    chain = sorted((item["event"] for item in items), key=lambda e: e["seq"])
    expected_prev, problems = GENESIS, []
    for position, event in enumerate(chain):
        if event["seq"] != position:
            problems.append(f"the chain has no event at position {position}")
            break
        if event["prev_hash"] != expected_prev:
            problems.append(f"event {event['event_id']} does not link to its predecessor")
        expected_prev = event["hash"]
    return problems


def _check_item(number: int, item: Mapping[str, Any], public: Ed25519PublicKey) -> list[str]:
    event, leaf, line = item["event"], item["leaf"], item["checkpoint"]
    label = f"event #{number} ({event['event_id']})"
    failures: list[str] = []
    checkpoint = checkpoints.parse(orjson.dumps(line))
    reason = checkpoints.verify(checkpoint, public)
    if reason is not None:
        failures.append(f"{label}: checkpoint signature refused: {reason}")
    if link_hash(event["prev_hash"], event["event"]) != event["hash"]:
        failures.append(f"{label}: hash != link_hash(prev_hash, event): the event was altered")
    data = orjson.loads(event["event"])
    if data.get("event_id") != event["event_id"] or (
        data.get("submission_id") != event["submission_id"]
    ):
        failures.append(f"{label}: the hashed event names another event or submission")
    if (
        checkpoint.log != log_name(leaf["topic"], leaf["partition"])
        or leaf["log"] != checkpoint.log
    ):
        failures.append(f"{label}: the checkpoint is of log {checkpoint.log}, not {leaf['log']}")
    leaf_bytes = leaf_hash_of(leaf, event)
    path = [bytes.fromhex(node) for node in item["path"]]
    root = bytes.fromhex(checkpoint.root)
    if not verify_inclusion(leaf_bytes, int(leaf["index"]), checkpoint.size, path, root):
        failures.append(
            f"{label}: the inclusion path of leaf {leaf['index']} does not lead to the signed "
            f"root of {checkpoint.log} at size {checkpoint.size}"
        )
    return failures


def leaf_hash_of(leaf: Mapping[str, Any], event: Mapping[str, Any]) -> bytes:
    """Return the leaf hash of `event` at `leaf`'s position."""
    return leaf_hash(
        leaf_data(
            str(leaf["topic"]),
            int(leaf["partition"]),
            int(leaf["offset"]),
            str(event["event_id"]),
            str(event["hash"]),
        )
    )
