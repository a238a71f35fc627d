"""The report aggregates: per scope a counter document and a collection of its submissions.

The summary of views (`reports.py`) is built from these, never by scanning the archive, so its
time depends on the project, not on the archive's size (issue 15, docs/consultations.md).
Everything is kept from `submission.grouped` events: each carries the submission as accepted
(with intake's `consultation` mark), the routing decision (the unit) and the campaign it joined,
and the router keys them by scope (`legislation:<ref>`, else `unit:<unit>`), so one consumer
sees a scope's events in order.

Per scope (`scope_key`):
- a **counter document** in `report_scopes` (`_id` = scope): `total`, `late`,
  `unregistered`, `kind.<k>`, `channel.<c>`, `day.<YYYY-MM-DD>.<channel>` (Asia/Riyadh),
  `answered.<question>`, `answers.<question>.<option or scale value>` and, for every unit the
  scope's submissions were routed to, `units.<unit>.<day>.{n, channel.<c>, kind.<k>,
  topic.<t>}` (the unit report's volume) and, in a unit scope, `campaign.<campaign_id>` (the
  further copies that day, so a period's largest campaigns are counted within it). And
  `positions.p<partition>`: the Kafka offset of the last grouped event counted, per
  partition — the **fence**;
- an **entries collection** (`entries_collection`: a name derived from a hash of the scope),
  one document per submission: its reference, time, kind, channel, text, answers, late flag,
  whether it is a further copy of a campaign, and `contrib`: the counters it added. Read one
  `_id` at a time only (redeliveries, edits, a campaign's founder);
- a **comment pages collection** (`pages_collection`), insert-only: per batch one page of its
  submissions (their words, or a copy's mark), compressed in one binary field. The report reads
  the pages, not the entries: FerretDB 1.24 reads 35,000 comments in 70 pages in 0.66 s, and
  the same as 35,000 documents in tens of seconds.

**Exactly once.** A batch reads the fences of its scopes, keeps the events past them (a
redelivered or replayed event is at or before its fence: skipped), writes their entries, then
applies all of a scope's counts in **one** update of its counter document that also advances the
fence, on condition that the fence is still the one read (else another consumer moved it: the
batch is retried). One document, one atomic update: no window where a count is applied twice or
lost, with no transaction; FerretDB scans only the small `report_scopes` per update.

**An edited resubmission** (same submission id, new content) replaces the first: its entry is
replaced and its counts are the new ones minus those the earlier version added. Which version
was counted is read from the stored entry: its own `contrib` when its position is at or before
the fence, else the `previous` it recorded (written by an attempt that crashed before the
counts). Within one batch only the latest version of a submission is counted. An edit that
moves a submission to another project or unit scope leaves the first version counted there.

No personal data in the counter document: identifiers, days and counts. The entries hold the
submitters' words (subject, body, answers) but never their names, e-mails or phones.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final

import orjson
from bson import Binary

from services.archive.campaigns import LEGISLATION_SCOPE, UNIT_SCOPE
from shared import events

Document = dict[str, Any]

RIYADH: Final = timezone(timedelta(hours=3), "Asia/Riyadh")
"""Saudi Arabia keeps UTC+3 all year (no daylight saving): days are counted in it."""

SCOPES: Final = "report_scopes"
ENTRIES_PREFIX: Final = "report_entries_"
PAGES_PREFIX: Final = "report_pages_"
OTHER: Final = "other"
"""The counter key of a value that is not a plain identifier (never stored as a field name)."""

_KEY: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SCALE: Final = re.compile(r"-?[0-9]{1,9}")
MAX_ANSWER_CHARS: Final = 5000


def key(value: object) -> str:
    """Return `value` as a safe field name (no `.`, `$` or NUL), else `other`."""
    return value if isinstance(value, str) and _KEY.fullmatch(value) else OTHER


def day_of(at: datetime) -> date:
    """Return the Asia/Riyadh calendar day of `at`."""
    return at.astimezone(RIYADH).date()


def entries_collection(scope: str) -> str:
    """Return the name of `scope`'s entries collection (a hash: a ref may hold any character)."""
    return ENTRIES_PREFIX + hashlib.sha256(scope.encode()).hexdigest()[:24]


def pages_collection(scope: str) -> str:
    """Return the name of `scope`'s comment pages collection."""
    return PAGES_PREFIX + hashlib.sha256(scope.encode()).hexdigest()[:24]


def legislation_scope(ref: str) -> str:
    """Return the scope of a draft law."""
    return f"{LEGISLATION_SCOPE}{ref}"


def unit_scope(unit: str) -> str:
    """Return the scope of a unit's submissions without a draft law."""
    return f"{UNIT_SCOPE}{unit}"


def answer_tokens(answer: str) -> list[str]:
    """Return the counter keys of an answer: its option ids, or its scale value.

    A multi choice separates option ids by commas; an answer that is neither is free text (none).
    """
    if _SCALE.fullmatch(answer.strip()):
        return [scale_key(int(answer.strip()))]
    tokens = [part.strip() for part in answer.split(",")]
    if not all(_KEY.fullmatch(t) for t in tokens):
        return []
    return list(dict.fromkeys(tokens))


def scale_key(value: int) -> str:
    """Return the counter key of a scale value: never all digits (a path, not an index)."""
    return f"n{value}"


@dataclass(frozen=True, slots=True)
class Fact:
    """What a grouped event contributes to the reports (taken from the event, no I/O)."""

    event_id: str
    submission_id: str
    reference: str
    scope: str
    partition: int
    offset: int
    occurred_at: datetime
    submitted_at: datetime
    kind: str
    channel: str
    topic: str | None
    unit: str
    legislation_ref: str | None
    registered: bool | None
    late: bool
    text: str
    answers: tuple[tuple[str, str], ...]
    copy: bool
    campaign_id: str | None

    def contributions(self) -> Counter[str]:
        """Return the counters this submission adds to its scope's counter document."""
        counts: Counter[str] = Counter()
        day = day_of(self.submitted_at).isoformat()
        channel, kind = key(self.channel), key(self.kind)
        if self.legislation_ref is not None:
            counts["total"] += 1
            counts["late"] += int(self.late)
            counts["unregistered"] += int(self.registered is False)
            counts[f"kind.{kind}"] += 1
            counts[f"channel.{channel}"] += 1
            counts[f"day.{day}.{channel}"] += 1
            if self.registered:  # intake checked these answers against the questionnaire
                for question, answer in self.answers:
                    q = key(question)
                    if q == OTHER:
                        continue
                    counts[f"answered.{q}"] += 1
                    for token in answer_tokens(answer):
                        counts[f"answers.{q}.{token}"] += 1
        unit = f"units.{key(self.unit)}.{day}"
        counts[f"{unit}.n"] += 1
        counts[f"{unit}.channel.{channel}"] += 1
        counts[f"{unit}.kind.{kind}"] += 1
        counts[f"{unit}.topic.{key(self.topic) if self.topic else 'none'}"] += 1
        if self.campaign_id is not None and self.legislation_ref is None:
            counts[f"{unit}.campaign.{key(self.campaign_id)}"] += 1  # its copies, per day
        return counts


def fact_of(event: events.SubmissionGrouped, partition: int, offset: int) -> Fact:
    """Return the report facts of a grouped event consumed at (partition, offset)."""
    sub = event.payload.submission
    mark = sub.consultation
    text = "\n\n".join(part for part in (sub.subject, sub.body) if part)
    campaign = event.payload.campaign
    return Fact(
        event_id=event.event_id,
        submission_id=event.submission_id,
        reference=event.reference,
        scope=event.payload.scope,
        partition=partition,
        offset=offset,
        occurred_at=event.occurred_at,
        submitted_at=sub.submitted_at,
        kind=sub.kind.value,
        channel=sub.channel,
        topic=sub.topic,
        unit=event.payload.decision.unit,
        legislation_ref=sub.legislation_ref,
        registered=mark.registered if mark is not None else None,
        late=bool(mark and mark.late),
        text=text,
        answers=tuple((a.question_id, a.answer[:MAX_ANSWER_CHARS]) for a in sub.answers),
        copy=campaign is not None,
        campaign_id=campaign.campaign_id if campaign is not None else None,
    )


def position_field(partition: int) -> str:
    """Return the fence's field name for a partition."""
    return f"p{partition}"


def entry(fact: Fact, previous: Mapping[str, int] | None) -> Document:
    """Return the entries document of `fact`.

    `previous` = the counts the version it replaces had added (None when it replaces nothing).
    """
    return {
        "_id": fact.submission_id,
        "event_id": fact.event_id,
        "partition": fact.partition,
        "offset": fact.offset,
        "reference": fact.reference,
        "submitted_at": fact.submitted_at,
        "kind": fact.kind,
        "channel": fact.channel,
        "topic": fact.topic,
        "unit": fact.unit,
        "late": fact.late,
        "text": fact.text,
        "answers": [{"q": q, "a": a} for q, a in fact.answers],
        "copy": fact.copy,
        "campaign_id": fact.campaign_id,
        "contrib": pairs(fact.contributions()),
        "previous": pairs(previous) if previous is not None else None,
    }


def pairs(found: Mapping[str, int]) -> list[Document]:
    """Return counts as stored in an entry: `[{k, n}]` (dotted names cannot be field names)."""
    return [{"k": name, "n": n} for name, n in sorted(found.items()) if n]


def _counter(stored: object) -> Counter[str]:
    found: Counter[str] = Counter()
    if isinstance(stored, list):
        for pair in stored:
            if isinstance(pair, Mapping) and isinstance(pair.get("n"), int):
                found[str(pair.get("k"))] += pair["n"]
    return found


def counted(stored: Mapping[str, Any], fences: Mapping[str, int]) -> Counter[str]:
    """Return the counts the stored entry's submission has in its scope's counter document.

    Its own `contrib` when its event is at or before the fence (counted), else its `previous`
    (it was written by an attempt whose counts never landed).
    """
    fence = fences.get(position_field(int(stored.get("partition", -1))), -1)
    if int(stored.get("offset", 1 << 62)) <= fence:
        return _counter(stored.get("contrib"))
    return _counter(stored.get("previous"))


@dataclass(slots=True)
class ScopeWork:
    """One scope's part of a batch: the facts past its fence, and what they change."""

    scope: str
    fences: dict[str, int]
    exists: bool
    facts: list[Fact] = field(default_factory=list)
    delta: Counter[str] = field(default_factory=Counter)
    inserts: list[Document] = field(default_factory=list)
    replaces: list[Document] = field(default_factory=list)

    def new_fences(self) -> dict[str, int]:
        """Return the fence fields this batch moves, to the last offset it counted per partition."""
        moved: dict[str, int] = {}
        for fact in self.facts:
            name = position_field(fact.partition)
            moved[name] = max(moved.get(name, -1), fact.offset)
        return moved


def past_fence(facts: Iterable[Fact], fences: Mapping[str, int]) -> list[Fact]:
    """Return the facts not counted yet, the latest version of each submission only.

    A fact at or before its partition's fence was counted (a redelivery or a replay).
    """
    latest: dict[str, Fact] = {}
    for fact in sorted(facts, key=lambda f: (f.partition, f.offset)):
        if fact.offset <= fences.get(position_field(fact.partition), -1):
            continue
        known = latest.get(fact.submission_id)
        if known is None or (fact.occurred_at, fact.offset) >= (known.occurred_at, known.offset):
            latest[fact.submission_id] = fact
    return sorted(latest.values(), key=lambda f: (f.partition, f.offset))


def settle(work: ScopeWork, stored: Mapping[str, Mapping[str, Any]]) -> None:
    """Fill `work`'s delta and replacements, given the stored entries its inserts met.

    A fact whose entry was inserted adds its counts; one whose entry was there already is a
    retry of an attempt that failed before its counts, a redrive of a counted event (nothing),
    or an edit (its counts minus those of the version it replaces, and its entry replaced).
    """
    kept: list[Fact] = []
    for fact in work.facts:
        known = stored.get(fact.submission_id)
        if known is None:
            work.delta.update(fact.contributions())
            kept.append(fact)
            continue
        if known.get("event_id") == fact.event_id:
            fence = work.fences.get(position_field(int(known.get("partition", -1))), -1)
            if int(known.get("offset", 1 << 62)) <= fence:
                continue  # the same event again at a new position (a redrive): counted already
            work.delta.update(fact.contributions())  # written by an attempt whose counts failed
            work.delta.subtract(_counter(known.get("previous")))
            kept.append(fact)
            continue
        before = counted(known, work.fences)
        work.delta.update(fact.contributions())
        work.delta.subtract(before)
        work.replaces.append(entry(fact, before))
        kept.append(fact)
    work.facts = kept


def nonzero(delta: Mapping[str, int]) -> dict[str, int]:
    """Return the counts that change anything."""
    return {name: n for name, n in sorted(delta.items()) if n}


def expand(flat: Mapping[str, int]) -> Document:
    """Return dotted counters as the nested document a first insert stores."""
    root: Document = {}
    for dotted, n in flat.items():
        node = root
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = node.get(leaf, 0) + n
    return root


def scope_document(work: ScopeWork, delta: Mapping[str, int], moved: Mapping[str, int]) -> Document:
    """Return the first counter document of a scope (inserted, not updated)."""
    doc: Document = {"_id": work.scope, **expand(delta)}
    doc["positions"] = dict(moved)
    ref = work.scope.removeprefix(LEGISLATION_SCOPE)
    if work.scope.startswith(LEGISLATION_SCOPE):
        doc["legislation_ref"] = ref
    return doc


def counts(doc: Mapping[str, Any] | None, path: str) -> dict[str, int]:
    """Return the integer leaves under `path` (dotted) of a counter document, by key."""
    node: Any = doc or {}
    for part in path.split(".") if path else ():
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return {str(k): v for k, v in node.items() if isinstance(v, int) and not isinstance(v, bool)}


def number(doc: Mapping[str, Any] | None, name: str) -> int:
    """Return an integer field of a counter document (0 when absent)."""
    value = (doc or {}).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def page_item(fact: Fact) -> Document:
    """Return a fact as one item of a comment page.

    Its words for a distinct submission; only its identity for a further copy of a campaign
    (which hides an earlier distinct version of the same submission).
    """
    item: Document = {
        "id": fact.submission_id,
        "w": fact.occurred_at.isoformat(),
        "o": fact.offset,
    }
    if fact.copy:
        item["x"] = 1
        return item
    free = [{"q": q, "a": a} for q, a in fact.answers if not answer_tokens(a)]
    item |= {
        "r": fact.reference,
        "s": fact.submitted_at.isoformat(),
        "k": fact.kind,
        "c": fact.channel,
        "t": fact.text,
        "l": int(fact.late),
    }
    if free:
        item["a"] = free
    return item


def page_document(partition: int, items: list[Document]) -> Document:
    """Return an insert-only comment page: its items as compressed JSON in one binary field.

    One binary field, not a list of documents: FerretDB 1.24 decodes every nested document of
    a read (measured: 35,000 comments as documents in 70 pages, 6.1 s; compressed, 0.66 s).
    `_id` is the partition and offset of its first item, so a retried batch makes the same id.
    """
    return {
        "_id": f"{partition}:{items[0]['o']}",
        "n": len(items),
        "data": Binary(zlib.compress(orjson.dumps(items), 1)),
    }


def page_items(doc: Mapping[str, Any]) -> list[Document]:
    """Return the items of a stored comment page (none when it is unreadable)."""
    data = doc.get("data")
    try:
        items = orjson.loads(zlib.decompress(bytes(data))) if data is not None else []
    except (zlib.error, orjson.JSONDecodeError, TypeError):
        return []
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def current_items(pages: Iterable[Mapping[str, Any]]) -> list[Document]:
    """Return each submission's latest page item that is a distinct comment, oldest first."""
    latest: dict[str, Document] = {}
    for page in pages:
        for item in page_items(page):
            sid = str(item.get("id"))
            known = latest.get(sid)
            if known is None or (item.get("w", ""), item.get("o", 0)) > (
                known.get("w", ""),
                known.get("o", 0),
            ):
                latest[sid] = item
    found = [item for item in latest.values() if not item.get("x")]
    found.sort(key=lambda item: (str(item.get("s", "")), str(item.get("r", ""))))
    return found


def counts_update(delta: Mapping[str, int], moved: Mapping[str, int]) -> Document:
    """Return the counter document's update: the counts and the fences it moves."""
    update: Document = {"$set": {f"positions.{name}": n for name, n in moved.items()}}
    if delta:
        update["$inc"] = dict(delta)
    return update


def fence_condition(scope: str, read: Mapping[str, int], update: Mapping[str, Any]) -> Document:
    """Return the filter that matches `scope`'s counter document only if no fence moved.

    Every fence read, and every fence the update sets, must be as it was read.
    """
    condition: Document = {"_id": scope}
    names = set(read) | {name.removeprefix("positions.") for name in update.get("$set", {})}
    for name in sorted(names):
        condition[f"positions.{name}"] = read.get(name, {"$exists": False})
    return condition
