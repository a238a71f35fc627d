"""Intake knows the projects: windows, questionnaires and the consultation mark.

Uses the shipped registry (deploy/config/consultations.yaml): MOJ-DRAFT-2026-007 closed on
2026-11-30, MOJ-DRAFT-2026-003 is open until 2027-01-15, MOJ-DRAFT-2027-002 opens 2027-02-01.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from deploy.local import demo
from services.intake.validation import CODES, Accepted, Rejected, validate
from shared.cli import app as sada
from shared.consultations import load_consultations
from shared.directory import load_channels
from shared.models import ConsultationMark

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CHANNELS = frozenset(load_channels())
REGISTRY = load_consultations()
OPEN = "MOJ-DRAFT-2026-003"

GOOD_ANSWERS = [
    {"question_id": "article_12", "answer": "support"},
    {"question_id": "electronic_evidence", "answer": "e_signature,digital_records"},
    {"question_id": "clarity", "answer": "4"},
    {"question_id": "remarks", "answer": "المدة مناسبة للمقيمين خارج المدن."},
]
QUESTIONNAIRE = {
    "channel": "legislation_questionnaire",
    "channel_ref": "LQ-900-1",
    "kind": "consultation_response",
    "legislation_ref": OPEN,
    "answers": GOOD_ANSWERS,
    "submitted_at": "2026-12-01T10:00:00+03:00",
}
COMMENT = {
    "channel": "istitlaa",
    "channel_ref": "IST-900-1",
    "kind": "comment",
    "legislation_ref": OPEN,
    "body": "Electronic signatures should be accepted as evidence.",
    "submitted_at": "2026-12-01T10:00:00+03:00",
}


def raw(base: dict[str, Any] = QUESTIONNAIRE, /, **changes: Any) -> bytes:
    return orjson.dumps({**base, **changes})


def answers(**replaced: str | None) -> list[dict[str, str]]:
    """The good answers with some replaced (a value) or left out (None)."""
    out = []
    for answer in GOOD_ANSWERS:
        value = replaced.get(answer["question_id"], answer["answer"])
        if value is not None:
            out.append({**answer, "answer": value})
    return out


def run(data: bytes) -> Accepted | Rejected:
    return validate(data, channels=CHANNELS, now=NOW, consultations=REGISTRY)


def accepted(data: bytes) -> Accepted:
    result = run(data)
    assert isinstance(result, Accepted), getattr(result, "reasons", None)
    return result


def reasons(data: bytes) -> list[tuple[str, str | None]]:
    result = run(data)
    assert isinstance(result, Rejected), "expected a rejection"
    assert {reason.code for reason in result.reasons} <= CODES
    return [(reason.code, reason.field) for reason in result.reasons]


# --- the mark ------------------------------------------------------------------------------


def test_answers_in_time_to_a_registered_project_are_marked_registered_and_not_late() -> None:
    submission = accepted(raw()).submission
    assert submission.consultation == ConsultationMark(registered=True, late=False)
    assert [a.answer for a in submission.answers] == [a["answer"] for a in GOOD_ANSWERS]


def test_views_sent_after_the_project_closed_are_accepted_and_marked_late() -> None:
    late = raw(
        COMMENT, legislation_ref="MOJ-DRAFT-2026-007", submitted_at="2026-12-01T00:00:00+03:00"
    )
    assert accepted(late).submission.consultation == ConsultationMark(
        registered=True, late=True, closes_at=REGISTRY["MOJ-DRAFT-2026-007"].closes_at
    )


def test_the_last_second_of_the_window_is_in_time() -> None:
    last = raw(COMMENT, legislation_ref="MOJ-DRAFT-2026-007", submitted_at="2026-11-30T20:59:59Z")
    assert accepted(last).submission.consultation == ConsultationMark(registered=True)


def test_views_sent_before_the_project_opens_are_rejected_consultation_not_open() -> None:
    early = raw(COMMENT, legislation_ref="MOJ-DRAFT-2027-002")
    assert reasons(early) == [("consultation_not_open", "legislation_ref")]
    result = run(early)
    assert isinstance(result, Rejected)
    assert "2027-02-01T00:00:00+03:00" in result.reasons[0].message


def test_an_unregistered_project_is_accepted_and_marked_unregistered() -> None:
    unknown = raw(QUESTIONNAIRE, legislation_ref="MOJ-DRAFT-2026-999")
    submission = accepted(unknown).submission
    assert submission.consultation == ConsultationMark(registered=False)
    assert submission.answers[0].answer == "support"  # no questionnaire to hold it to


def test_no_legislation_ref_means_no_mark() -> None:
    comment = {key: value for key, value in COMMENT.items() if key != "legislation_ref"}
    assert accepted(orjson.dumps(comment)).submission.consultation is None


def test_the_ref_is_matched_whatever_its_case_and_carried_in_the_registrys_spelling() -> None:
    submission = accepted(raw(COMMENT, legislation_ref="moj-draft-2026-003")).submission
    assert submission.legislation_ref == OPEN
    assert submission.consultation == ConsultationMark(registered=True)


def test_without_a_registry_every_ref_is_unregistered() -> None:
    result = validate(raw(), channels=CHANNELS, now=NOW)
    assert isinstance(result, Accepted)
    assert result.submission.consultation == ConsultationMark(registered=False)


def test_the_mark_leaves_the_ids_and_the_content_digest_as_they_were() -> None:
    with_registry = accepted(raw())
    without = validate(raw(), channels=CHANNELS, now=NOW)
    assert isinstance(without, Accepted)
    assert with_registry.digest == without.digest
    assert with_registry.submission.submission_id == without.submission.submission_id
    assert with_registry.submission.reference == without.submission.reference


# --- the questionnaire ---------------------------------------------------------------------


def test_a_comment_without_answers_is_not_held_to_the_required_questions() -> None:
    assert accepted(raw(COMMENT)).submission.consultation == ConsultationMark(registered=True)


def test_an_answer_to_a_question_the_project_does_not_ask_is_unknown_question() -> None:
    extra = [*GOOD_ANSWERS, {"question_id": "q9", "answer": "نعم"}]
    assert reasons(raw(answers=extra)) == [("unknown_question", "answers.4.question_id")]


def test_a_question_answered_twice_is_duplicate_answer() -> None:
    twice = [*GOOD_ANSWERS, {"question_id": "clarity", "answer": "5"}]
    assert reasons(raw(answers=twice)) == [("duplicate_answer", "answers.4.question_id")]


def test_every_unanswered_required_question_is_named() -> None:
    result = run(raw(answers=answers(article_12=None, clarity=None)))
    assert isinstance(result, Rejected)
    assert [(r.code, r.field) for r in result.reasons] == [
        ("missing_required_answer", "answers"),
        ("missing_required_answer", "answers"),
    ]
    assert ["'article_12'" in r.message for r in result.reasons] == [True, False]
    assert "'clarity'" in result.reasons[1].message


def test_an_empty_answer_to_a_required_question_is_missing_and_to_an_optional_one_is_fine() -> None:
    assert reasons(raw(answers=answers(clarity=""))) == [
        ("missing_required_answer", "answers.2.answer")
    ]
    assert accepted(raw(answers=answers(remarks="  ", electronic_evidence="")))


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("article_12", "I support it"),  # a label, not the option id
        ("article_12", "support,oppose"),  # one choice only
        ("electronic_evidence", "e_signature,fax"),
        ("electronic_evidence", "email,,e_signature"),
        ("electronic_evidence", "email,email"),
    ],
)
def test_an_option_the_question_does_not_offer_is_invalid_choice(
    question: str, answer: str
) -> None:
    index = next(i for i, a in enumerate(GOOD_ANSWERS) if a["question_id"] == question)
    assert reasons(raw(answers=answers(**{question: answer}))) == [
        ("invalid_choice", f"answers.{index}.answer")
    ]


def test_a_multi_choice_answer_is_kept_as_ids_separated_by_commas() -> None:
    submission = accepted(
        raw(answers=answers(electronic_evidence=" email , e_signature"))
    ).submission
    assert submission.answers[1].answer == "email,e_signature"


@pytest.mark.parametrize("answer", ["four", "4.5", "4/5", "", "٤٫٥"])
def test_a_scale_answer_that_is_not_a_whole_number_is_not_a_number(answer: str) -> None:
    expected = "missing_required_answer" if answer == "" else "not_a_number"
    assert reasons(raw(answers=answers(clarity=answer))) == [(expected, "answers.2.answer")]


@pytest.mark.parametrize("answer", ["0", "6", "-1", "999999999999"])
def test_a_scale_answer_outside_min_and_max_is_answer_out_of_range(answer: str) -> None:
    assert reasons(raw(answers=answers(clarity=answer))) == [
        ("answer_out_of_range", "answers.2.answer")
    ]


def test_a_scale_answer_in_arabic_indic_digits_is_kept_in_ascii() -> None:
    submission = accepted(raw(answers=answers(clarity="٥"))).submission
    assert submission.answers[2].answer == "5"


def test_a_huge_number_is_not_a_number_without_converting_it() -> None:
    assert reasons(raw(answers=answers(clarity="9" * 4999))) == [
        ("not_a_number", "answers.2.answer")
    ]


def test_every_problem_is_reported_at_once_in_field_order() -> None:
    data = raw(
        legislation_ref="MOJ-DRAFT-2027-002",
        answers=[
            {"question_id": "remote_notarization", "answer": "maybe"},
            {"question_id": "usefulness", "answer": "ten"},
            {"question_id": "extra", "answer": "x"},
        ],
        submitter={"email": "not an e-mail"},
    )
    assert reasons(data) == [
        ("consultation_not_open", "legislation_ref"),
        ("invalid_choice", "answers.0.answer"),
        ("not_a_number", "answers.1.answer"),
        ("unknown_question", "answers.2.question_id"),
        ("invalid_email", "submitter.email"),
    ]


def test_messages_never_echo_the_submitted_answer() -> None:
    result = run(raw(answers=answers(article_12="secret-value", clarity="secret")))
    assert isinstance(result, Rejected)
    assert all("secret" not in reason.message for reason in result.reasons)


# --- sada intake check ---------------------------------------------------------------------


def check(data: bytes) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(sada, ["intake", "check", "-"], input=data)
    return result.exit_code, orjson.loads(result.stdout_bytes)


def test_intake_check_reports_the_questionnaire_reasons_in_its_json_form() -> None:
    code, printed = check(raw(answers=answers(article_12="maybe", clarity="6")))
    assert code == 1
    assert printed["rejected"] is True
    assert [(r["code"], r["field"]) for r in printed["reasons"]] == [
        ("invalid_choice", "answers.0.answer"),
        ("answer_out_of_range", "answers.2.answer"),
    ]


def test_intake_check_reports_a_project_not_yet_open() -> None:
    code, printed = check(raw(COMMENT, legislation_ref="MOJ-DRAFT-2027-002"))
    assert code == 1
    assert [r["code"] for r in printed["reasons"]] == ["consultation_not_open"]


def test_intake_check_prints_the_mark_of_an_accepted_submission() -> None:
    code, printed = check(raw(COMMENT, legislation_ref="MOJ-DRAFT-2026-007"))
    assert code == 0
    assert printed["consultation"] == {
        "registered": True,
        "late": True,
        "closes_at": "2026-11-30T23:59:59+03:00",
    }


# --- make demo -----------------------------------------------------------------------------


def test_the_demo_sends_answers_in_time_late_and_unregistered_and_each_new_reason() -> None:
    marks = [demo.mark_of(item, CHANNELS, REGISTRY) for item in demo.questionnaire("T")]
    assert marks == ["in time", "in time", "late", "unregistered"]
    codes = {
        reason.code
        for item in demo.broken("T")
        for reason in demo.expected(item, CHANNELS, REGISTRY).reasons
    }
    assert codes >= {
        "consultation_not_open",
        "unknown_question",
        "missing_required_answer",
        "invalid_choice",
        "not_a_number",
        "answer_out_of_range",
    }
