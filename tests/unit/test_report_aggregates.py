"""The report aggregates' fold, without a database: what a submission counts, the fence that
makes a count exactly once, how an edit or a retried batch settles, and the comment pages."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime

from services.archive import aggregates
from services.archive.aggregates import Fact, ScopeWork
from tests import report_events as rs


def _fact(offset: int, **changes: object) -> Fact:
    sub = rs.submission(
        "نص", answers={"q1": "agree", "q2": "art12, art13", "q3": "4", "q4": "نص حر"}
    )
    fact = aggregates.fact_of(rs.grouped(sub), 0, offset)
    return dataclasses.replace(fact, **changes)  # type: ignore[arg-type]


def test_a_registered_submission_counts_its_answers_day_and_unit() -> None:
    counts = _fact(1).contributions()
    assert counts["total"] == 1
    assert counts["answers.q1.agree"] == counts["answers.q2.art13"] == counts["answers.q3.n4"] == 1
    assert counts["answered.q4"] == 1
    assert not [k for k in counts if k.startswith("answers.q4")]
    assert counts["day.2026-11-25.istitlaa"] == 1  # 07:00 UTC is 10:00 in Riyadh
    assert counts["units.legislations_office.2026-11-25.n"] == 1


def test_the_day_is_riyadhs() -> None:
    late_evening = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    assert aggregates.day_of(late_evening).isoformat() == "2026-11-26"


def test_unregistered_answers_and_odd_values_never_become_field_names() -> None:
    counts = _fact(1, registered=False, channel="a.b$c").contributions()
    assert counts["unregistered"] == 1
    assert not [k for k in counts if k.startswith("answer")]
    assert counts["channel.other"] == 1
    assert aggregates.answer_tokens("-2") == ["n-2"]
    assert aggregates.answer_tokens("a,$b") == []


def test_only_events_past_the_fence_count_and_only_a_submissions_latest() -> None:
    first, again = _fact(3, submission_id="s"), _fact(3, submission_id="s")
    later = _fact(7, submission_id="s", event_id="edited", occurred_at=first.occurred_at)
    other = _fact(5, submission_id="other")
    kept = aggregates.past_fence([first, again, later, other, _fact(2)], {"p0": 4})
    assert [(f.submission_id, f.offset) for f in kept] == [("other", 5), ("s", 7)]


def _work(facts: list[Fact], fence: int) -> ScopeWork:
    work = ScopeWork("legislation:X", {"p0": fence}, exists=True)
    work.facts = facts
    return work


def test_an_edit_counts_the_difference_and_a_retry_uses_what_was_counted_before() -> None:
    old = _fact(3)
    new = _fact(9, submission_id=old.submission_id, event_id="e2", answers=(("q1", "disagree"),))
    counted = aggregates.entry(old, None)
    work = _work([new], fence=5)
    aggregates.settle(work, {old.submission_id: counted})
    assert work.delta["answers.q1.agree"] == -1
    assert work.delta["answers.q1.disagree"] == 1
    assert work.delta["total"] == 0
    replaced = work.replaces[0]
    # the process dies before the counts; the retry finds the replacement already stored
    retry = _work([new], fence=5)
    aggregates.settle(retry, {new.submission_id: replaced})
    assert aggregates.nonzero(retry.delta) == aggregates.nonzero(work.delta)
    assert not retry.replaces


def test_a_counted_event_redriven_at_a_new_offset_counts_nothing() -> None:
    fact = _fact(3)
    work = _work([dataclasses.replace(fact, offset=30)], fence=10)
    aggregates.settle(work, {fact.submission_id: aggregates.entry(fact, None)})
    assert aggregates.nonzero(work.delta) == {}
    assert work.facts == []


def test_the_fence_condition_names_every_fence_read_and_moved() -> None:
    update = aggregates.counts_update({"total": 1}, {"p2": 9})
    condition = aggregates.fence_condition("s", {"p0": 4}, update)
    assert condition == {"_id": "s", "positions.p0": 4, "positions.p2": {"$exists": False}}


def test_pages_keep_each_submissions_latest_distinct_version() -> None:
    a, b = _fact(1, submission_id="a"), _fact(2, submission_id="b")
    b_copy = _fact(3, submission_id="b", copy=True, occurred_at=b.occurred_at)
    a_edit = _fact(4, submission_id="a", text="edited", occurred_at=a.occurred_at)
    pages = [
        aggregates.page_document(0, [aggregates.page_item(a), aggregates.page_item(b)]),
        aggregates.page_document(0, [aggregates.page_item(b_copy), aggregates.page_item(a_edit)]),
    ]
    items = aggregates.current_items(pages)
    assert [(i["id"], i["t"]) for i in items] == [("a", "edited")]
    assert pages[0]["_id"] == "0:1"


def test_a_first_counter_document_nests_the_dotted_counts() -> None:
    work = _work([], fence=-1)
    delta = Counter({"total": 2, "day.2026-11-25.email": 1})
    doc = aggregates.scope_document(work, delta, {"p0": 3})
    assert doc["day"] == {"2026-11-25": {"email": 1}}
    assert doc["positions"] == {"p0": 3}
    assert doc["legislation_ref"] == "X"
