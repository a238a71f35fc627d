"""The digest rules: when a submission goes alone, windows, identities and per-unit policies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.digests import (
    Digest,
    DigestPolicy,
    digest_id,
    digest_message_id,
    inbox_of,
    item_from,
    policies,
    rate_bucket,
    route,
    window_end,
)
from shared.directory import DigestOverrides, Unit
from tests import notifier_support as support

pytestmark = pytest.mark.unit

POLICY = DigestPolicy(threshold=30, campaign_individual=3)
AT = datetime(2026, 12, 3, 9, 7, 12, tzinfo=UTC)


def test_a_calm_mailbox_gets_each_submission_alone_up_to_the_threshold() -> None:
    event = support.grouped(support.ENGLISH_SAMPLE)
    assert route(event, POLICY, recent=30) == "individual"
    assert route(event, POLICY, recent=31) == "surge"


def test_campaign_members_past_the_first_three_are_folded_whatever_the_rate() -> None:
    sample = support.ENGLISH_SAMPLE
    third = support.grouped(sample, campaign=support.campaign_of(sample, size=3))
    fourth = support.grouped(sample, campaign=support.campaign_of(sample, size=4))
    assert route(third, POLICY, recent=1) == "individual"
    assert route(fourth, POLICY, recent=1) == "campaign"
    assert route(fourth, POLICY, recent=1000) == "campaign"


def test_a_disabled_policy_sends_everything_alone() -> None:
    sample = support.ENGLISH_SAMPLE
    copy = support.grouped(sample, campaign=support.campaign_of(sample, size=400))
    assert route(copy, replace(POLICY, enabled=False), recent=10_000) == "individual"


def test_windows_are_aligned_on_the_clock_so_every_notifier_names_the_same_one() -> None:
    assert window_end(AT, 300) == datetime(2026, 12, 3, 9, 10, tzinfo=UTC)
    assert window_end(AT + timedelta(minutes=2), 300) == window_end(AT, 300)
    assert window_end(datetime(2026, 12, 3, 9, 10, tzinfo=UTC), 300) == datetime(
        2026, 12, 3, 9, 15, tzinfo=UTC
    )
    assert rate_bucket(AT, 600) == datetime(2026, 12, 3, 9, 7, tzinfo=UTC)


def test_a_digest_id_depends_on_mailbox_window_and_members_not_their_order() -> None:
    end = window_end(AT, 300)
    one = digest_id("voc|voc@moj.gov.sa", end, ["a:voc", "b:voc"])
    assert one == digest_id("voc|voc@moj.gov.sa", end, ["b:voc", "a:voc"])
    assert one != digest_id("voc|voc@moj.gov.sa", end, ["a:voc"])
    assert one != digest_id("voc|voc@moj.gov.sa", end + timedelta(minutes=5), ["a:voc", "b:voc"])
    assert one != digest_id("lo|voc@moj.gov.sa", end, ["a:voc", "b:voc"])


def test_a_digest_message_id_is_its_id_under_the_notifier_domain() -> None:
    event = support.grouped(support.ENGLISH_SAMPLE)
    item = item_from(event, personal=True, why="surge", at=AT)
    digest = Digest(
        inbox=item.inbox,
        unit=item.unit,
        mailbox=item.mailbox,
        window_end=window_end(AT, 300),
        window_seconds=300,
        items=(item,),
    )
    assert (
        digest_message_id(digest, "sada.notifier") == f"<digest-{digest.digest_id}@sada.notifier>"
    )
    assert digest.window_start == datetime(2026, 12, 3, 9, 5, tzinfo=UTC)


def test_an_item_of_a_unit_without_personal_data_keeps_no_words_of_the_submitter() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    kept = item_from(event, personal=True, why="surge", at=AT)
    bare = item_from(event, personal=False, why="surge", at=AT)
    assert kept.subject
    assert kept.text
    assert bare.subject is None
    assert bare.text is None
    assert bare.reference == kept.reference
    assert bare.legislation_ref == "MOJ-DRAFT-2026-003"


def test_a_mailbox_is_its_unit_and_its_address_in_lower_case() -> None:
    assert inbox_of("voice_of_customer", "VoC@moj.gov.sa") == "voice_of_customer|voc@moj.gov.sa"


def test_a_unit_overrides_only_what_it_sets_in_units_yaml() -> None:
    unit = Unit(
        id="legislations_office",
        name_ar="مكتب التشريعات",
        name_en="Legislations Office",
        mailbox="lo@moj.gov.sa",
        digest=DigestOverrides(threshold=100, window_seconds=60),
    )
    plain = Unit(id="voc", name_ar="صوت", name_en="VoC", mailbox="voc@moj.gov.sa")
    found = policies(POLICY, {"legislations_office": unit, "voc": plain})
    assert found["legislations_office"] == replace(POLICY, threshold=100, window_seconds=60)
    assert found["voc"] == POLICY
