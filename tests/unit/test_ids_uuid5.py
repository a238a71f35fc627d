"""`shared.ids.uuid5` is a faster `uuid.uuid5`: the ids must be the very same, forever."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared import ids


@given(st.text())
def test_fast_uuid5_equals_the_standard_library_for_any_name(name: str) -> None:
    for namespace in (ids.EVENT_NAMESPACE, ids.SUBMISSION_NAMESPACE, uuid.NAMESPACE_URL):
        assert ids.uuid5(namespace.bytes, name) == str(uuid.uuid5(namespace, name))


def test_ids_are_those_the_standard_library_gives() -> None:
    sid = ids.submission_id("istitlaa", "IST-2026-88121", "digest")
    assert sid == str(uuid.uuid5(ids.SUBMISSION_NAMESPACE, "ref:istitlaa\x1fIST-2026-88121"))
    assert ids.submission_id("email", None, "abc") == str(
        uuid.uuid5(ids.SUBMISSION_NAMESPACE, "content:abc")
    )
    assert ids.event_id(sid, "submission.routed", "v1") == str(
        uuid.uuid5(ids.EVENT_NAMESPACE, f"{sid}\x1fsubmission.routed\x1fv1")
    )
    assert ids.position_id("t", 1, 2) == str(uuid.uuid5(ids.SUBMISSION_NAMESPACE, "position:t:1:2"))


def test_known_ids_never_change() -> None:
    # Values computed with the previous `str(uuid.uuid5(...))` implementation: a change here would
    # re-key every archived event and every notifier ledger entry.
    assert ids.submission_id("istitlaa", "IST-2026-88121", "") == (
        "aa9d40a1-bc94-584e-a1f1-556e291144c7"
    )
    assert ids.submission_id("email", None, "abc") == "082c7dc3-a56d-5d70-bb98-5a780f94b99d"
    assert ids.event_id("aa9d40a1-bc94-584e-a1f1-556e291144c7", "submission.routed", "v1") == (
        "4b63dc73-6eed-549c-ba9b-b5cf9866c9f1"
    )
    assert ids.position_id("feedback.submissions.v1", 2, 41) == (
        "1acaf5d1-8c1a-55f7-be16-786aca8c04b9"
    )
