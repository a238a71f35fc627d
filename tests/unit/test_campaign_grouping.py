"""Campaign grouping on the project's labelled corpus, and the rules it must keep."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.campaigns.grouping import Grouping, MemoryStore, campaign_id, group, words
from services.intake.validation import Rejected, validate
from shared.directory import load_channels
from shared.models import Submission
from tests import campaign_corpus

CHANNELS = load_channels()
UNIT = "legislations_office"
TEMPLATE = (
    "We ask the Legislations Office to remove the daily fine in article nine, because small "
    "shops cannot pay it during the transition period and the draft gives no time to comply "
    "with the new licence rules at all."
)


def submission(raw: dict[str, Any]) -> Submission:
    outcome = validate(orjson.dumps(raw), channels=CHANNELS, now=datetime.now(UTC))
    assert not isinstance(outcome, Rejected), outcome.reasons
    return outcome.submission


def raw(n: int, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "istitlaa",
        "channel_ref": f"t-{n}",
        "kind": "consultation_response",
        "legislation_ref": "law-1",
        "body": body,
        "submitted_at": "2026-03-01T10:00:00+03:00",
        **extra,
    }


def run(items: list[dict[str, Any]], store: MemoryStore | None = None) -> list[Grouping]:
    store = store or MemoryStore()
    return [group(submission(item), UNIT, store) for item in items]


def test_pairwise_precision_and_recall_on_the_labelled_corpus() -> None:
    corpus = campaign_corpus.build()
    store = MemoryStore()
    clusters = []
    for item in corpus:
        sub = submission(item.raw)
        decided = group(sub, UNIT, store)
        clusters.append(decided.campaign_id or campaign_id(decided.scope, sub.submission_id))
    pairs = {"tp": 0, "fp": 0, "fn": 0}
    for (a, ca), (b, cb) in itertools.combinations(zip(corpus, clusters, strict=True), 2):
        same, grouped = a.label == b.label, ca == cb
        if same or grouped:
            pairs["tp" if same and grouped else "fp" if grouped else "fn"] += 1
    precision = pairs["tp"] / (pairs["tp"] + pairs["fp"])
    recall = pairs["tp"] / (pairs["tp"] + pairs["fn"])
    kinds = {kind: sum(item.kind == kind for item in corpus) for kind in ("campaign", "organic")}
    print(f"\ncorpus: {len(corpus)} submissions {kinds}, pairs {pairs}")
    print(f"pairwise precision {precision:.4f}, recall {recall:.4f}")
    assert precision >= 0.98
    assert recall >= 0.95


def test_the_same_input_in_the_same_order_gives_the_same_ids() -> None:
    items = [item.raw for item in campaign_corpus.build()[:200]]
    first, second = run(items), run(items)
    assert first == second
    assert any(decided.campaign_id for decided in first)


def test_identical_texts_join_at_any_length_and_short_variants_do_not() -> None:
    first, copy, variant = run([raw(1, "I object!"), raw(2, "i   OBJECT."), raw(3, "I objects")])
    assert first.campaign_id is None
    assert copy.similarity == 1.0
    assert copy.campaign_id is not None
    assert variant.campaign_id is None


def test_a_near_identical_copy_names_the_first_member_and_the_campaign_grows() -> None:
    copy = "Dear Office,\n" + TEMPLATE.replace("remove", "delete").replace("shops", "stores")
    decided = run([raw(1, TEMPLATE), raw(2, copy), raw(3, TEMPLATE + " Regards, Sara")])
    first = submission(raw(1, TEMPLATE))
    assert decided[0] == Grouping("legislation:law-1", None, None, None, None)
    assert decided[1].campaign_id == campaign_id("legislation:law-1", first.submission_id)
    assert decided[1].similar_to == first.reference
    assert 0.4 <= (decided[1].similarity or 0) < 1.0
    assert decided[2].campaign_id == decided[1].campaign_id
    assert (decided[1].campaign_size, decided[2].campaign_size) == (2, 3)


def test_arabic_diacritics_and_letter_variants_are_the_same_text() -> None:
    plain = "ارفض هذه الماده في مشروع النظام"
    marked = "أَرْفُضُ هـــذه المادة، في مشروع النظام!"
    assert words(submission(raw(1, plain))) == words(submission(raw(2, marked)))
    assert run([raw(1, plain), raw(2, marked)])[1].similarity == 1.0


def test_the_same_text_to_two_projects_forms_two_campaigns() -> None:
    decided = run([raw(1, TEMPLATE), raw(2, TEMPLATE, legislation_ref="law-2")])
    assert decided[1].campaign_id is None


def test_empty_text_is_never_grouped_and_choice_answers_are_ignored() -> None:
    choice = [{"question_id": "q1", "answer": "Strongly agree"}]
    free = [{"question_id": "q2", "answer": TEMPLATE}]
    decided = run(
        [
            raw(1, "...", answers=choice),
            raw(2, "!!!", answers=choice),
            raw(3, "", answers=[*choice, *free]),
            raw(4, "", answers=free),
        ]
    )
    assert decided[1].campaign_id is None  # no words at all: never grouped
    assert decided[3].similarity == 1.0  # the choice answer made no difference


def test_a_unit_scope_forgets_texts_older_than_the_window() -> None:
    def unscoped(n: int, when: datetime) -> dict[str, Any]:
        return {**raw(n, "Fix the road"), "legislation_ref": None, "submitted_at": when.isoformat()}

    start = datetime(2026, 3, 1, tzinfo=UTC)
    decided = run(
        [
            unscoped(1, start),
            unscoped(2, start + timedelta(days=6)),
            unscoped(3, start + timedelta(days=14)),
        ]
    )
    assert decided[0].scope == f"unit:{UNIT}"
    assert decided[1].campaign_id is not None
    assert decided[2].campaign_id is None
