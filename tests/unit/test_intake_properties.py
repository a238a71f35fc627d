"""Property: whatever the bytes, validation and `sada intake check` give exactly one answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from services.intake.outcomes import event_for
from services.intake.validation import CODES, Accepted, Rejected, normalise_text, validate
from shared.cli import app as sada
from shared.directory import load_channels
from shared.events import ANY_EVENT, Producer
from shared.models import Kind, RawSubmission, Submission

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CHANNELS = frozenset(load_channels())
PRODUCER = Producer(service="intake", version="test")
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIND = settings(max_examples=2000, deadline=None, database=None, phases=[Phase.generate])

# Text that likes the characters normalisation is about: Arabic, controls, bidi, combining marks.
tricky_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            "\x00\t\n\r\x1b\x85\u202a\u202e\u2066\u2069\u200c\u0301\u0653ابةى٠١ aZ.$@+-:"
        ),
    ),
    max_size=40,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    tricky_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4)
    ),
    max_leaves=20,
)
answers = st.lists(
    st.fixed_dictionaries(
        {"question_id": tricky_text, "answer": tricky_text},
        optional={"question": tricky_text | json_values},
    ),
    max_size=3,
)
# Plausible submissions reach the deep rules: a valid-looking base, then a few fields replaced
# by anything or removed.
FIELDS = tuple(RawSubmission.model_fields)
bases = st.fixed_dictionaries(
    {
        "channel": st.sampled_from([*sorted(CHANNELS), "telegram"]),
        "kind": st.sampled_from([kind.value for kind in Kind]),
        "submitted_at": st.sampled_from(["2026-11-25T10:00:00+03:00", "2026-11-25T07:00:00Z"]),
        "body": tricky_text,
    },
    optional={
        "channel_ref": tricky_text,
        "topic": st.sampled_from(["courts", "draft-legislation"]),
        "language": st.sampled_from(["ar", "en"]),
        "subject": tricky_text,
        "answers": answers,
        "submitter": st.fixed_dictionaries(
            {},
            optional={
                "name": tricky_text,
                "email": st.emails() | tricky_text,
                "phone": st.sampled_from(["+966500000001", "0500000001"]) | tricky_text,
                "national_id": st.sampled_from(["1000000008", "١٠٠٠٠٠٠٠٠٨"]) | tricky_text,
            },
        ),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {
                    "filename": tricky_text,
                    "content_type": st.sampled_from(["application/pdf", "pdf"]),
                    "size_bytes": st.integers(min_value=-1, max_value=10**9),
                    "url": st.sampled_from(["https://x.example/a.pdf", "javascript:x"]),
                }
            ),
            max_size=2,
        ),
    },
)


@st.composite
def submissions(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(bases)
    for field in draw(st.sets(st.sampled_from(FIELDS), max_size=2)):
        data.pop(field, None)
    data.update(draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=2)))
    return data


any_bytes = st.one_of(
    st.binary(max_size=300),
    json_values.map(orjson.dumps),
    submissions().map(orjson.dumps),
    st.sampled_from([b"[" * 5000, b'{"a":' * 3000, b"\xef\xbb\xbf{}", b"\x00" * 10]),
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def assert_one_clean_answer(result: object, raw: bytes) -> None:
    assert isinstance(result, Accepted) != isinstance(result, Rejected)
    if isinstance(result, Rejected):
        assert result.reasons
        codes = {reason.code for reason in result.reasons}
        assert codes <= CODES
        assert "internal_error" not in codes
    else:
        assert isinstance(result, Accepted)
        dumped = result.submission.model_dump_json()
        assert Submission.model_validate_json(dumped) == result.submission
        for text in _strings(result.submission.model_dump(mode="json")):
            assert "\x00" not in text
            assert normalise_text(text, multiline=True) == text  # already normalised
    event = event_for(result, raw, door="kafka", source=None, producer=PRODUCER)
    assert ANY_EVENT.validate_json(event.model_dump_json()) == event


@PROPERTY
@given(any_bytes)
def test_validation_answers_any_bytes_with_exactly_one_outcome(raw: bytes) -> None:
    assert_one_clean_answer(validate(raw, channels=CHANNELS, now=NOW), raw)


@PROPERTY
@given(submissions())
def test_plausible_submissions_are_judged_cleanly(data: dict[str, Any]) -> None:
    raw = orjson.dumps(data)
    assert_one_clean_answer(validate(raw, channels=CHANNELS, now=NOW), raw)


@PROPERTY
@given(any_bytes)
def test_sada_intake_check_prints_one_json_object_and_exits_0_or_1(raw: bytes) -> None:
    result = CliRunner().invoke(sada, ["intake", "check", "-"], input=raw)
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    assert result.exit_code in (0, 1)
    lines = result.stdout_bytes.splitlines()
    assert len(lines) == 1
    printed = orjson.loads(lines[0])
    assert isinstance(printed, dict)
    if result.exit_code == 0:
        assert {"submission_id", "reference", "language", "received_at"} <= printed.keys()
    else:
        assert printed.keys() == {"rejected", "reasons"}
        assert printed["rejected"] is True
        assert printed["reasons"]


def test_the_plausible_strategy_reaches_acceptance_and_every_field_rule() -> None:
    """Guard the property above: its inputs get past parsing into the field rules."""

    def judged(data: dict[str, Any]) -> Accepted | Rejected:
        return validate(orjson.dumps(data), channels=CHANNELS, now=NOW)

    find(submissions(), lambda data: isinstance(judged(data), Accepted), settings=FIND)
    for code in ("invalid_email", "invalid_phone", "invalid_national_id", "unknown_channel"):
        find(
            submissions(),
            lambda data, code=code: code in {r.code for r in getattr(judged(data), "reasons", ())},  # type: ignore[misc]
            settings=FIND,
        )
