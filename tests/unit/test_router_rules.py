"""The routing decision: every default rule, their order, normalisation and the explanation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router import config
from services.router.rules import MEMO_LIMIT, RoutingConfig, decide, normalise
from tests.router_support import EXPECTED, LO, VOC, samples, submission

RULES = config.load()


def write_rules(tmp_path: Path, text: str) -> RoutingConfig:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


@pytest.mark.parametrize(("line", "expected"), sorted(EXPECTED.items()))
def test_each_shared_sample_goes_to_the_unit_design_md_gives_it(
    line: int, expected: tuple[str, str]
) -> None:
    decision = decide(samples()[line - 1], RULES)
    assert (decision.unit, decision.rule_id) == expected


def test_samples_cover_every_default_rule_but_consultation_kind() -> None:
    # The one consultation_response sample also carries a legislation_ref, which wins.
    covered = {rule for _, rule in EXPECTED.values()}
    assert covered == {rule.id for rule in RULES.rules} - {"consultation-kind"}


# --- each rule on its own ------------------------------------------------------------------


def test_legislation_reference_routes_to_the_legislations_office_and_quotes_the_reference() -> None:
    decision = decide(submission(legislation_ref="MOJ-DRAFT-2026-014"), RULES)
    assert decision.unit == LO
    assert decision.mailbox == "LegislationsOffice@moj.gov.sa"
    assert decision.rule_id == "legislation-reference"
    assert decision.reason.startswith("legislation_ref MOJ-DRAFT-2026-014 present")
    assert [(m.field, m.value) for m in decision.matched] == [
        ("legislation_ref", "MOJ-DRAFT-2026-014")
    ]


@pytest.mark.parametrize("channel", ["istitlaa", "legislation_questionnaire"])
def test_consultation_channels_route_to_the_legislations_office(channel: str) -> None:
    decision = decide(submission(channel=channel), RULES)
    assert (decision.unit, decision.rule_id) == (LO, "consultation-channel")
    assert decision.reason.startswith(f"channel is {channel}")
    assert [(m.field, m.value) for m in decision.matched] == [("channel", channel)]


def test_consultation_kind_routes_to_the_legislations_office() -> None:
    decision = decide(submission(kind="consultation_response"), RULES)
    assert (decision.unit, decision.rule_id) == (LO, "consultation-kind")
    assert [(m.field, m.value) for m in decision.matched] == [("kind", "consultation_response")]


@pytest.mark.parametrize("topic", ["legislation", "draft-legislation", "regulations", "bylaws"])
def test_legislative_topics_route_to_the_legislations_office(topic: str) -> None:
    decision = decide(submission(topic=topic), RULES)
    assert (decision.unit, decision.rule_id) == (LO, "legislative-topic")
    assert decision.reason.startswith(f"topic is {topic}")


@pytest.mark.parametrize("topic", ["najiz-services", "courts", "notary", "enforcement", "other"])
def test_any_other_topic_routes_to_voice_of_the_customer(topic: str) -> None:
    decision = decide(submission(topic=topic), RULES)
    assert (decision.unit, decision.rule_id) == (VOC, "explicit-topic")
    assert decision.mailbox == "voc@moj.gov.sa"
    assert [(m.field, m.value) for m in decision.matched] == [("topic", topic)]


@pytest.mark.parametrize(
    "keyword",
    [
        "مشروع نظام",
        "مشروع لائحة",
        "مسودة نظام",
        "مسودة لائحة",
        "مشروع تعديل",
        "اللائحة التنفيذية",
        "استطلاع مرئيات",
        "draft law",
        "draft regulation",
        "draft bylaw",
        "executive regulations",
        "public consultation",
        "legislation",
    ],
)
def test_every_default_keyword_in_the_body_routes_to_the_legislations_office(keyword: str) -> None:
    decision = decide(submission(body=f"رأيي حول {keyword} المنشور"), RULES)
    assert (decision.unit, decision.rule_id) == (LO, "legislative-keywords")
    assert decision.reason.startswith(f"keyword «{keyword}» in body")
    assert [(m.field, m.value) for m in decision.matched] == [("body", keyword)]


def test_a_keyword_in_the_subject_counts_and_is_reported_before_one_in_the_body() -> None:
    decision = decide(submission(subject="Draft law on mediation", body="مشروع نظام"), RULES)
    assert decision.rule_id == "legislative-keywords"
    assert [(m.field, m.value) for m in decision.matched] == [("subject", "draft law")]


def test_survey_answers_are_not_searched_for_keywords() -> None:
    answers = [{"question_id": "q1", "answer": "مشروع نظام الإثبات"}]
    decision = decide(submission(channel="survey", body=None, answers=answers), RULES)
    assert (decision.unit, decision.rule_id) == (VOC, "default")


def test_anything_else_goes_to_voice_of_the_customer_by_the_default_rule() -> None:
    decision = decide(submission(body="الخدمة ممتازة"), RULES)
    assert (decision.unit, decision.rule_id) == (VOC, "default")
    assert decision.matched == ()
    assert decision.reason.startswith("no earlier rule matched")


# --- order: first match wins ---------------------------------------------------------------


def test_a_legislation_reference_wins_over_everything_else() -> None:
    sub = submission(
        legislation_ref="MOJ-DRAFT-2026-014",
        channel="najiz_portal",
        kind="problem",
        topic="courts",
        body="no keyword here at all",
    )
    assert (decide(sub, RULES).unit, decide(sub, RULES).rule_id) == (LO, "legislation-reference")


def test_an_explicit_service_topic_wins_over_a_keyword_in_the_body() -> None:
    sub = submission(topic="najiz-services", subject="مشروع نظام", body="ملاحظة على مشروع نظام")
    decision = decide(sub, RULES)
    assert (decision.unit, decision.rule_id) == (VOC, "explicit-topic")


def test_a_consultation_channel_wins_over_a_service_topic() -> None:
    decision = decide(submission(channel="istitlaa", topic="courts"), RULES)
    assert (decision.unit, decision.rule_id) == (LO, "consultation-channel")


def test_a_consultation_kind_wins_over_a_service_topic() -> None:
    decision = decide(submission(kind="consultation_response", topic="courts"), RULES)
    assert decision.rule_id == "consultation-kind"


def test_a_legislative_topic_is_checked_before_the_any_topic_rule() -> None:
    assert decide(submission(topic="bylaws"), RULES).rule_id == "legislative-topic"


def test_a_channel_rule_is_checked_before_the_kind_rule() -> None:
    sub = submission(channel="legislation_questionnaire", kind="consultation_response")
    assert decide(sub, RULES).rule_id == "consultation-channel"


def test_rule_order_in_the_file_is_the_order_of_evaluation(tmp_path: Path) -> None:
    reordered = write_rules(
        tmp_path,
        "keywords: {ar: [مشروع نظام]}\n"
        "rules:\n"
        "  - {id: keywords-first, when: {keywords: true}, unit: legislations_office}\n"
        "  - {id: topic, when: {topic_present: true}, unit: voice_of_customer}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    sub = submission(topic="najiz-services", body="ملاحظة على مشروع نظام")
    assert decide(sub, RULES).unit == VOC
    assert decide(sub, reordered).rule_id == "keywords-first"


# --- normalisation (docs/design.md, "Routing") --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("مَشْرُوعُ نِظَامٍ", "مشروع نظام"),  # fatha, sukun, damma, kasra, tanween (U+064B..)
        ("م\u064bش\u065fروع", "مشروع"),  # both ends of the U+064B–U+065F range
        ("ه\u0670ذا", "هذا"),  # superscript alef U+0670
        ("مشـــروع نظـام", "مشروع نظام"),  # tatweel U+0640
        ("أحمد", "احمد"),  # أ → ا
        ("إصلاح", "اصلاح"),  # إ → ا
        ("آخر", "اخر"),  # آ → ا
        ("ٱلنظام", "النظام"),  # ٱ (alef wasla) → ا
        ("مستوى", "مستوي"),  # ى → ي
        ("لائحة", "لائحه"),  # ة → ه
        ("Draft LAW", "draft law"),  # Latin case-folded
        ("STRASSE Straße", "strasse strasse"),  # casefold, not just lower
        ("مشروع \t\n  نظام", "مشروع نظام"),  # whitespace runs, newlines included
        ("  draft\u00a0\u2003law \r\n", "draft law"),  # Unicode spaces; trimmed
        ("", ""),
    ],
)
def test_normalise_follows_design_md(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_decomposed_hamza_and_madda_normalise_like_the_precomposed_letters() -> None:
    # ا + U+0654 (hamza above), ا + U+0655 (hamza below), ا + U+0653 (madda): all in the range.
    assert normalise("\u0627\u0654\u0627\u0655\u0627\u0653") == normalise("أإآ") == "ااا"


@pytest.mark.parametrize(
    "body",
    [
        "ملاحظاتي على مَشْرُوعِ نِظَامِ الإثبات",  # diacritics
        "ملاحظاتي على مشـــروع نظـــام الإثبات",  # tatweel
        "ملاحظاتي على مشروع\n\n   نظام الإثبات",  # whitespace and newlines
        "ملاحظاتي على مسوده لائحه الخبراء",  # ة written ه
        "Comments on the DRAFT   Law of evidence",  # case and spaces
        "About the Executive\nRegulations",  # newline inside an English keyword
        "استطلاع مرئيات المحاكم",
        "اللائحة التنفيذيّة",  # shadda U+0651
    ],
)
def test_text_variants_still_match_the_keywords(body: str) -> None:
    assert decide(submission(body=body), RULES).rule_id == "legislative-keywords"


def test_folds_beyond_design_md_are_not_applied() -> None:
    # docs/design.md does not fold ئ to ي: "لايحه" is a different word to the matcher.
    assert decide(submission(body="ملاحظاتي على مسوده لايحه الخبراء"), RULES).rule_id == "default"


def test_ta_marbuta_and_alif_maqsura_variants_match(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "keywords: {ar: [مسودة لائحة, مستوى الخدمة]}\n"
        "rules:\n"
        "  - {id: kw, when: {keywords: true}, unit: legislations_office}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    assert decide(submission(body="عن مسوده لائحه الخبراء"), rules).rule_id == "kw"
    assert decide(submission(body="عن مستوي الخدمه"), rules).rule_id == "kw"


def test_keywords_are_normalised_when_the_file_is_loaded(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "keywords:\n"
        "  ar: [مَشْـرُوع   إصلاح]\n"
        "  en: [DRAFT   Bylaw]\n"
        "rules:\n"
        "  - {id: kw, when: {keywords: true}, unit: legislations_office}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    arabic = decide(submission(body="حول مشروع اصلاح المحاكم"), rules)
    assert arabic.rule_id == "kw"
    assert arabic.matched[0].value == "مَشْـرُوع   إصلاح"  # reported as the operator wrote it
    assert decide(submission(body="the draft bylaw"), rules).rule_id == "kw"


def test_keywords_match_as_substrings() -> None:
    assert decide(submission(body="new legislations for courts"), RULES).rule_id == (
        "legislative-keywords"
    )


# --- conditions of the vocabulary beyond the default file ------------------------------------


def test_several_conditions_in_one_rule_must_all_hold(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "rules:\n"
        "  - id: survey-ideas\n"
        "    when: {channel_in: [survey], kind_in: [idea, suggestion], field_present: survey_id}\n"
        "    unit: legislations_office\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    both = submission(channel="survey", kind="idea", survey_id="CSAT-1")
    assert decide(both, rules).rule_id == "survey-ideas"
    assert [(m.field, m.value) for m in decide(both, rules).matched] == [
        ("survey_id", "CSAT-1"),
        ("channel", "survey"),
        ("kind", "idea"),
    ]
    assert decide(submission(channel="survey", kind="problem", survey_id="x"), rules).rule_id == (
        "default"
    )
    assert decide(submission(channel="survey", kind="idea"), rules).rule_id == "default"


def test_topic_present_false_matches_only_submissions_without_a_topic(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "rules:\n"
        "  - {id: no-topic, when: {topic_present: false}, unit: legislations_office}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    untopical = decide(submission(), rules)
    assert (untopical.rule_id, untopical.reason, untopical.matched) == (
        "no-topic",
        "no topic given",
        (),
    )
    assert decide(submission(topic="courts"), rules).rule_id == "default"


def test_rule_specific_keywords_in(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "rules:\n"
        "  - {id: fees, when: {keywords_in: [الرسوم, fee schedule]}, unit: legislations_office}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    assert decide(submission(body="The Fee Schedule is unclear"), rules).rule_id == "fees"
    assert decide(submission(body="مشروع نظام"), rules).rule_id == "default"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject": "سري"}, "subject"),
        ({"answers": [{"question_id": "q", "answer": "نعم"}]}, "answers"),
        ({"submitter": {"name": "سارة", "email": "sara@example.sa"}}, "submitter"),
        (
            {
                "attachments": [
                    {
                        "filename": "a.pdf",
                        "content_type": "application/pdf",
                        "size_bytes": 1,
                        "url": "https://x.example/a",
                    }
                ]
            },
            "attachments",
        ),
    ],
)
def test_field_present_on_text_or_personal_fields_never_quotes_the_value(
    tmp_path: Path, fields: dict[str, object], field: str
) -> None:
    rules = write_rules(
        tmp_path,
        "rules:\n"
        f"  - {{id: has, when: {{field_present: {field}}}, unit: legislations_office}}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    decision = decide(submission(**fields), rules)
    assert decision.rule_id == "has"
    assert decision.reason == f"{field} present"
    assert [(m.field, m.value) for m in decision.matched] == [(field, "present")]


def test_blank_values_count_as_absent(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "rules:\n"
        "  - {id: has, when: {field_present: subject}, unit: legislations_office}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    assert decide(submission(subject="   "), rules).rule_id == "default"


# --- the explanation -------------------------------------------------------------------------


def test_the_decision_carries_the_hash_of_the_rule_file() -> None:
    digest = hashlib.sha256(config.RULES_PATH.read_bytes()).hexdigest()
    assert decide(submission(), RULES).rules_version == digest == RULES.version


def test_the_reason_appends_the_rule_description() -> None:
    decision = decide(submission(channel="istitlaa"), RULES)
    assert decision.reason == "channel is istitlaa — a public-consultation channel"


def test_no_personal_data_or_body_text_appears_in_the_explanation() -> None:
    sub = submission(
        subject="Draft law comment from Sara",
        body="I, Sara Al-Qahtani (sara@example.sa, +966500000001), think the draft law is fine.",
        submitter={"name": "Sara Al-Qahtani", "email": "sara@example.sa", "phone": "+966500000001"},
    )
    for s in (sub, submission(**{**sub.model_dump(), "topic": "courts"})):
        decision = decide(s, RULES)
        explanation = decision.model_dump_json()
        for secret in ("Sara", "sara@example.sa", "966500000001", "think", "comment"):
            assert secret not in explanation


def test_the_decision_is_deterministic() -> None:
    for sub in samples():
        assert decide(sub, RULES) == decide(sub, RULES)


# --- properties and the decision memo --------------------------------------------------------

MARKS = st.sampled_from([chr(c) for c in (*range(0x064B, 0x0660), 0x0670, 0x0640)])


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)


@given(
    st.sampled_from(RULES.keywords),
    st.lists(st.tuples(st.integers(min_value=0, max_value=40), MARKS), max_size=6),
    st.text(alphabet=" \t\n", min_size=1, max_size=3),
)
def test_diacritics_tatweel_and_spacing_never_hide_a_keyword(
    keyword: str, marks: list[tuple[int, str]], space: str
) -> None:
    letters = list(keyword.replace(" ", space).upper())
    for position, mark in marks:
        letters.insert(position % (len(letters) + 1), mark)
    decision = decide(submission(body=f"نص {''.join(letters)} نص"), RULES)
    assert decision.rule_id == "legislative-keywords"


def test_equal_decisions_are_one_shared_immutable_object() -> None:
    first = decide(submission(channel="istitlaa", body="أ"), RULES)
    second = decide(submission(channel="istitlaa", body="ب"), RULES)
    assert first is second


def test_the_decision_memo_stays_bounded(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path,
        "rules:\n"
        "  - {id: ref, when: {field_present: legislation_ref}, unit: legislations_office}\n"
        "  - {id: default, unit: voice_of_customer}\n",
    )
    for n in range(MEMO_LIMIT + 10):
        decision = decide(submission(legislation_ref=f"DRAFT-{n}"), rules)
        assert decision.matched[0].value == f"DRAFT-{n}"
    assert 0 < len(rules.memo) <= MEMO_LIMIT
