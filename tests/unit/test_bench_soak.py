"""`make soak`'s verdicts on fabricated inputs: exactly once, flat memory, pacing, the mix."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import soak
from tests.workload import LEGISLATIONS, VOC


def test_every_id_seen_once_and_nothing_else_is_exactly_once() -> None:
    tally = soak.exactly_once("t", {"a", "b", "c"}, Counter({"a": 1, "b": 1, "c": 1}))
    assert tally.ok
    assert (tally.expected, tally.missing, tally.twice, tally.unexpected) == (3, 0, 0, 0)


def test_an_id_never_seen_is_missing_and_named() -> None:
    tally = soak.exactly_once("t", {"a", "b"}, Counter({"a": 1}))
    assert not tally.ok
    assert tally.missing == 1
    assert tally.examples == {"missing": ["b"]}


def test_an_id_seen_twice_is_a_duplicate_not_a_pass() -> None:
    tally = soak.exactly_once("t", {"a", "b"}, Counter({"a": 2, "b": 1}))
    assert not tally.ok
    assert (tally.missing, tally.twice) == (0, 1)
    assert tally.examples == {"twice": ["a"]}


def test_an_id_never_offered_is_unexpected() -> None:
    tally = soak.exactly_once("t", {"a"}, Counter({"a": 1, "z": 1}))
    assert not tally.ok
    assert tally.unexpected == 1


def test_a_reference_two_submissions_share_is_expected_twice() -> None:
    # Mailboxes are counted by the 40-bit reference: two submissions may share one.
    shared = Counter({"SADA-AAAA-BBBB": 2, "SADA-CCCC-DDDD": 1})
    assert soak.exactly_once("t", shared, Counter(shared)).ok
    once = soak.exactly_once("t", shared, Counter({"SADA-AAAA-BBBB": 1, "SADA-CCCC-DDDD": 1}))
    assert once.missing == 1


def test_memory_that_grows_then_levels_off_is_flat_over_the_second_half() -> None:
    samples = [(t * 5.0, min(100.0 + t, 150.0)) for t in range(200)]  # a cap reached at 50
    growth = soak.second_half_growth(samples)
    assert growth == pytest.approx(0.0)
    assert soak.flat(growth)


def test_memory_that_keeps_growing_is_not_flat() -> None:
    samples = [(t * 5.0, 100.0 + t) for t in range(200)]  # 1 MB per sample: a leak
    growth = soak.second_half_growth(samples)
    assert growth is not None
    assert growth > soak.FLAT_GROWTH
    assert not soak.flat(growth)


def test_a_single_spike_at_the_end_neither_makes_nor_hides_a_trend() -> None:
    samples = [(t * 5.0, 100.0) for t in range(200)]
    samples[-1] = (samples[-1][0], 300.0)
    assert soak.flat(soak.second_half_growth(samples))


def test_too_few_samples_are_not_called_flat() -> None:
    growth = soak.second_half_growth([(0.0, 100.0), (5.0, 100.0)])
    assert growth is None
    assert not soak.flat(growth)


def test_the_pacer_spaces_submissions_at_the_rate() -> None:
    pacer = soak.Pacer(rate=100.0, next_due=10.0)
    assert [pacer.due(now=10.0) for _ in range(3)] == pytest.approx([10.0, 10.01, 10.02])


def test_after_a_hold_the_pacer_resumes_at_the_rate_instead_of_bursting() -> None:
    pacer = soak.Pacer(rate=100.0, next_due=10.0, slack=0.5)
    pacer.due(now=10.0)
    # held off for 60 s: only half a second's worth may go out back to back
    due = [pacer.due(now=70.0) for _ in range(100)]
    assert due[0] == pytest.approx(69.5)
    assert sum(1 for d in due if d < 69.999) == 50  # 69.5, 69.51, ..., 69.99


def test_three_in_ten_are_campaign_copies_and_two_in_ten_comments() -> None:
    kinds = Counter(soak.kind_of(i) for i in range(1000))
    assert kinds == {"campaign": 300, "comment": 200, "ordinary": 500}


def test_an_item_is_the_same_whenever_it_is_made_and_its_id_is_intakes() -> None:
    mix = soak.mix()
    first = [soak.item("run", i, mix) for i in range(200)]
    assert first == [soak.item("run", i, mix) for i in range(200)]
    from tests.e2e.driver import submission_id

    assert [submission_id(i) for i in first] == [
        soak.submission_id("run", n, mix) for n in range(200)
    ]


def test_the_mix_spreads_over_five_draft_laws_and_both_doors() -> None:
    mix = soak.mix()
    items = [soak.item("run", i, mix) for i in range(1000)]
    on_laws = [i for i in items if i.raw.get("legislation_ref")]
    assert {i.raw["legislation_ref"] for i in on_laws} == set(soak.CONSULTATIONS)
    assert {i.unit for i in on_laws} == {LEGISLATIONS}
    assert len(on_laws) == 500
    # the ordinary ones are Voice of the Customer samples (their text may name a draft law)
    assert sum(1 for i in items if i.unit == VOC) > 450
    assert 0.07 < sum(1 for i in items if i.door == "http") / len(items) < 0.13


def test_the_readme_table_lists_every_check_with_its_verdict() -> None:
    results = {
        "date": "2026-12-03T21:00:00+00:00",
        "machine": {
            "cores": 2,
            "cpu": "AMD EPYC",
            "memory_gib": 23.5,
            "commit": "abc1234",
            "versions": {"kafka": "4.1.1", "ferretdb": "v1.24.2", "python": "3.11.7"},
        },
        "load_average_start": [0.1, 0.2, 0.3],
        "load_average_end": [1.5, 1.0, 0.5],
        "total_s": 3000,
        "n": 200_000,
        "target_rate": 250,
        "mix": {"campaign": 0.3, "comment": 0.2, "http": 0.1},
        "offer": {"achieved_per_s": 140.2, "seconds": 1426.5, "held_s": 300.0},
        "checks": [
            {"check": "a", "ok": True, "measured": "1 | 2", "target": "≤ 3"},
            {"check": "b", "ok": False, "measured": 9, "target": "≤ 3"},
        ],
    }
    text = soak.table(results)
    assert "commit abc1234" in text
    assert "140.2/s" in text
    assert "load average 0.1" in text
    assert "| a | 1 \\| 2 | ≤ 3 | yes |" in text
    assert "| b | 9 | ≤ 3 | **no** |" in text
    assert "50 minutes in all" in text
    del results["total_s"]
    assert "unfinished" in soak.table(results)


def test_the_run_is_settled_when_all_accepted_are_notified_and_no_group_lags() -> None:
    counts = soak.Counts(accepted={"a", "b"}, grouped={"a", "b"}, sent=Counter({"a": 1, "b": 1}))
    assert soak.settled(counts, {"sada-archive": 0, "sada-notifier": 0})


def test_a_submission_waiting_for_its_digest_is_on_its_way() -> None:
    counts = soak.Counts(accepted={"a", "b"}, grouped={"a", "b"}, sent=Counter({"a": 1}))
    assert not soak.settled(counts, {"sada-archive": 0})


def test_a_lagging_group_or_no_lag_figures_yet_is_not_settled() -> None:
    counts = soak.Counts(accepted={"a"}, grouped={"a"}, sent=Counter({"a": 1}))
    assert not soak.settled(counts, {"sada-archive": 12})
    assert not soak.settled(counts, {})
