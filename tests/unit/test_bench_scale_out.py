"""`python -m bench --only scale`: how pauses, rates, duplicates and stored e-mails are read."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson
import pytest

from bench import report, scale_out


def test_a_pause_is_the_longest_silence_in_the_window_edges_included() -> None:
    assert scale_out.longest_gap([1.0, 1.5, 4.0, 4.2], 1.0, 5.0) == pytest.approx(2.5)
    # A stall running into the window's end counts; outputs outside the window do not.
    assert scale_out.longest_gap([0.5, 1.1, 9.0], 1.0, 5.0) == pytest.approx(3.9)


def test_a_stage_with_no_output_in_the_window_paused_for_all_of_it() -> None:
    assert scale_out.longest_gap([], 2.0, 7.0) == pytest.approx(5.0)


def test_the_rate_counts_from_the_poll_before_the_first_commit_to_the_last_commit() -> None:
    series = [(0.0, 0), (1.0, 0), (2.0, 100), (3.0, 100), (4.0, 300), (9.0, 300)]
    # 300 records between t=1 (last poll at zero) and t=4 (last movement); idle tail ignored.
    assert scale_out.progress_rate(series) == pytest.approx(100.0)
    assert math.isnan(scale_out.progress_rate([(0.0, 0), (5.0, 0)]))


def test_movements_and_crossing_read_a_committed_series() -> None:
    series = [(0.0, 0), (1.0, 10), (2.0, 10), (3.0, 25)]
    assert scale_out.movements(series) == [1.0, 3.0]
    assert scale_out.crossing(series, 20) == 3.0
    assert scale_out.crossing(series, 30) is None


def test_the_span_rate_needs_two_outputs_apart() -> None:
    assert scale_out.span_rate([3.0, 1.0, 2.0]) == pytest.approx(1.0)
    assert math.isnan(scale_out.span_rate([1.0]))
    assert math.isnan(scale_out.span_rate([1.0, 1.0]))


def test_duplicates_are_the_copies_beyond_the_first() -> None:
    assert scale_out.duplicates(Counter({"a": 1, "b": 3, "c": 2})) == 3
    assert scale_out.duplicates(Counter()) == 0


def test_a_stored_email_s_headers_are_read_from_its_header_block_only() -> None:
    raw = (
        b"X-Sada-Sink-Received-At: 2026-12-03T20:00:01.250+00:00\n"
        b"message-id: <abc@sada.example>\n"
        b"Subject: =?utf-8?b?2LHYo9mK?=\n"
        b" folded\n"
        b"\n"
        b"Message-ID: <in-the-body@example>\n"
    )
    head = scale_out.mail_headers(raw, ("Message-ID", "Subject", "X-Sada-Sink-Received-At"))
    assert head["message-id"] == "<abc@sada.example>"
    assert head["subject"] == "=?utf-8?b?2LHYo9mK?= folded"
    assert head["x-sada-sink-received-at"].startswith("2026-12-03T20:00:01.250")


def test_chain_conflicts_add_up_the_chains_the_archive_re_read() -> None:
    lines = [
        orjson.dumps({"event": "chain position taken; re-reading heads", "chains": 9}),
        b"not json at all",
        orjson.dumps({"event": "batch archived", "records": 500}),
        orjson.dumps({"event": "chain position taken; re-reading heads", "chains": 5}),
    ]
    assert scale_out.chain_conflicts(b"\n".join(lines).decode()) == 14


def test_the_rebalance_schedule_changes_one_stage_at_a_time_up_then_down() -> None:
    changes = scale_out.schedule(105.0)
    assert [(what, stage) for _, what, stage in changes] == [
        ("up", "router"),
        ("up", "notifier"),
        ("up", "archive"),
        ("down", "router"),
        ("down", "notifier"),
        ("down", "archive"),
    ]
    times = [at for at, _, _ in changes]
    assert times == sorted(times)
    assert times[0] > 0
    assert times[-1] < 105.0


def test_a_stage_left_at_one_replica_is_never_changed_and_the_others_keep_their_times() -> None:
    both = scale_out.schedule(105.0)
    two = scale_out.schedule(105.0, ("router", "notifier"))
    assert [c for c in both if c[2] != "archive"] == two


def test_the_report_shows_both_layouts_and_every_stage_s_pauses() -> None:
    def blast(rate: float) -> dict[str, Any]:
        return {
            "end_to_end_per_s": rate,
            "stage_per_s": {"router": rate * 10, "notifier": rate, "archive": None},
            "cpu_ms_per_submission": {"notifier": 1.5, "smtp sink": 2.2},
        }

    rebalance = {
        "offered_per_s": 40,
        "seconds": 105.0,
        "pauses": {"router": {"before_s": 0.2, "after_start_s": 0.3, "after_stop_s": 9.5}},
        "duplicates": {"routed_events": 0, "emails": 0, "repeat_records": 1, "archive_events": 0},
        "lost": {"not_emailed": 0, "not_archived_at_end": 0, "archive_records_behind_at_end": 0},
        "archive_chain_conflicts": 3,
        "latency_bins": [{"accepted_s": 55.0, "n": 200, "p50_s": 1.3, "max_s": 27.4, "missing": 0}],
        "change_at_s": {"router": {"up": 15.0, "down": 60.0}, "archive": {}},
    }
    text = "\n".join(
        report.scale_lines(
            {
                "partitions": 6,
                "n": 3000,
                "scaled": ["router", "notifier"],
                "stop_signal": "SIGKILL",
                "one": [blast(80.0)],
                "two": [blast(160.0)],
                "median": {"one": blast(80.0), "two": blast(160.0)},
                "rebalance": rebalance,
            }
        )
    )
    assert "| replicas of router, notifier |" in text
    assert "| 2 each | 160 | 1,600 | 160 | — |" in text
    assert "| router | 0.20 s | 0.30 s | 9.50 s |" in text
    assert "(SIGKILL)" in text
    assert "answered from the ledger (`repeat`, no e-mail) 1" in text
    assert "55 s: 27.4 s. Changes: router up 15 s, down 60 s." in text


def test_latency_is_binned_by_when_a_submission_was_accepted_and_the_unsent_are_counted() -> None:
    accepted = {"a": 100.5, "b": 101.0, "c": 106.0, "d": 107.0}
    sent = {"a": 101.5, "b": 104.0, "c": 126.0}
    bins = scale_out.latency_bins(accepted, sent, start=100.0, width=5.0)
    assert bins == [
        {"accepted_s": 0.0, "n": 2, "p50_s": 2.0, "max_s": 3.0, "missing": 0},
        {"accepted_s": 5.0, "n": 2, "p50_s": 20.0, "max_s": 20.0, "missing": 1},
    ]
