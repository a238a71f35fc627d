"""`sada notify preview`: what a unit will receive, from any input form, without sending.

With `--digest`: the digest each mailbox would receive for a file of JSON lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from services.notifier.digests import Digest, Route, item_from, window_end
from services.router import config
from shared import events
from shared.cli import app
from shared.events import SubmissionGrouped
from tests import notifier_support as support

runner = CliRunner()


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["notify", *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_preview_of_a_grouped_event_prints_headers_and_text_and_writes_the_html(
    tmp_path: Path,
) -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    source = tmp_path / "grouped.json"
    source.write_bytes(event.model_dump_json().encode())
    html = tmp_path / "out.html"
    code, out, err = run("preview", str(source), "--html", str(html))
    assert code == 0
    composed = support.composer().compose(event)
    assert f"Message-ID: {composed.message_id}\n" in out
    assert "To: مكتب التشريعات <LegislationsOffice@moj.gov.sa>\n" in out
    assert f"Subject: {composed.subject}\n" in out
    assert "X-Sada-Rule: legislation-reference\n" in out
    assert out.endswith(composed.text)
    assert html.read_text(encoding="utf-8") == composed.html
    assert f"wrote {html}" in err


def test_preview_of_a_campaign_member_shows_the_campaign_header_and_line() -> None:
    first = {**support.ARABIC_SAMPLE, "channel_ref": "IST-2026-88001"}
    campaign = support.campaign_of(first, size=412)
    event = support.grouped(support.ARABIC_SAMPLE, campaign=campaign)
    code, out, _ = run("preview", "-", stdin=event.model_dump_json().encode())
    assert code == 0
    assert f"X-Sada-Campaign: {campaign.campaign_id}\n" in out
    assert "واحدة من 412 مشاركة متطابقة أو شبه متطابقة (حملة)" in out
    assert "One of 412 near-identical submissions (campaign)" in out
    assert out.endswith(support.composer().compose(event).text)


def test_preview_of_a_routed_event_shows_it_as_joining_no_campaign() -> None:
    event = support.routed(support.ARABIC_SAMPLE)
    code, out, _ = run("preview", "-", stdin=event.model_dump_json().encode())
    assert code == 0
    composed = support.composer().compose(support.as_grouped(event))
    assert f"Message-ID: {composed.message_id}\n" in out
    assert "X-Sada-Rule: legislation-reference\n" in out
    assert "X-Sada-Campaign" not in out
    assert "near-identical" not in out
    assert out.endswith(composed.text)


def test_preview_routes_a_raw_submission_with_the_rule_file_in_force() -> None:
    code, out, _ = run("preview", "-", stdin=orjson.dumps(support.ENGLISH_SAMPLE))
    assert code == 0
    assert "To: إدارة صوت المستفيد <voc@moj.gov.sa>" in out
    assert "Rule · القاعدة: \u2068explicit-topic\u2069" in out
    assert config.load().version[:12] in out
    assert "Noura Al-Qahtani" in out


def test_preview_of_an_accepted_event_uses_its_submission(tmp_path: Path) -> None:
    sub = support.submission(support.ARABIC_SAMPLE)
    accepted = events.build(
        events.SubmissionAccepted,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.AcceptedPayload(submission=sub, door="kafka"),
        discriminator="x",
        producer=events.Producer(service="intake", version="test"),
    )
    code, out, _ = run("preview", "-", stdin=accepted.model_dump_json().encode())
    assert code == 0
    assert f"X-Sada-Reference: {sub.reference}" in out
    assert "X-Sada-Unit: legislations_office" in out


def test_preview_writes_the_whole_message_as_eml(tmp_path: Path) -> None:
    eml = tmp_path / "out.eml"
    event = support.routed(support.ENGLISH_SAMPLE)
    code, _, _ = run("preview", "-", "--eml", str(eml), stdin=event.model_dump_json().encode())
    assert code == 0
    data = eml.read_bytes()
    assert b"Content-Type: multipart/alternative" in data
    assert b"X-Sada-Reference: " + event.reference.encode() in data


def test_an_invalid_submission_is_answered_with_its_reasons_and_exit_1() -> None:
    raw = {**support.ENGLISH_SAMPLE, "channel": "carrier_pigeon"}
    code, out, _ = run("preview", "-", stdin=orjson.dumps(raw))
    assert code == 1
    assert "unknown_channel" in out


@pytest.mark.parametrize("event_type", ["submission.routed", "submission.grouped"])
def test_a_broken_event_is_exit_1_without_a_traceback(event_type: str) -> None:
    code, _, err = run("preview", "-", stdin=orjson.dumps({"event_type": event_type}))
    assert code == 1
    assert f"not a valid {event_type} event" in err


@pytest.mark.parametrize("args", [("/nonexistent/routed.json",), ("-", "--html", "/nonexistent/x")])
def test_unusable_files_are_exit_2(args: tuple[str, ...]) -> None:
    event = support.routed(support.ENGLISH_SAMPLE)
    code, _, err = run("preview", *args, stdin=event.model_dump_json().encode())
    assert code == 2
    assert "cannot" in err


# --- sada notify preview --digest ---------------------------------------------------------


SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "submissions.jsonl"


def _campaign_lines() -> tuple[bytes, list[SubmissionGrouped]]:
    first = {**support.ARABIC_SAMPLE, "channel_ref": "IST-2026-88001"}
    grouped = [
        support.grouped(
            {**support.ARABIC_SAMPLE, "channel_ref": f"IST-2026-884{n:02d}"},
            campaign=support.campaign_of(first, size=size),
        )
        for n, size in enumerate((3, 4, 5))
    ]
    grouped.append(
        support.grouped(support.ENGLISH_SAMPLE | {"legislation_ref": "MOJ-DRAFT-2026-003"})
    )
    return b"\n".join(e.model_dump_json().encode() for e in grouped) + b"\n\n", grouped


def test_preview_digest_prints_the_digest_of_the_lines_and_writes_html_and_eml(
    tmp_path: Path,
) -> None:
    lines, grouped = _campaign_lines()
    source = tmp_path / "lines.jsonl"
    source.write_bytes(lines)
    html, eml = tmp_path / "digest.html", tmp_path / "digest.eml"
    code, out, err = run("preview", "--digest", str(source), "--html", str(html), "--eml", str(eml))
    assert code == 0, err
    # as the notifier would keep them: copies past the third member wait as campaign copies
    whys: list[Route] = ["surge", "campaign", "campaign", "surge"]
    items = tuple(
        item_from(e, personal=True, why=why, at=e.payload.submission.received_at)
        for e, why in zip(grouped, whys, strict=True)
    )
    latest = max(item.received_at for item in items)
    expected = support.digest_composer().compose(
        Digest(
            inbox=items[0].inbox,
            unit=items[0].unit,
            mailbox=items[0].mailbox,
            window_end=window_end(latest, 300.0),
            window_seconds=300.0,
            items=items,
        )
    )
    assert f"Message-ID: {expected.message_id}\n" in out
    assert "X-Sada-Digest-Items: 4\n" in out
    assert "X-Sada-Reference" not in out
    assert "نسخ من حملات · Campaign copies: 2\n" in out
    assert out.endswith(expected.text)
    assert html.read_text(encoding="utf-8") == expected.html
    assert eml.read_bytes() == expected.data.replace(b"\r\n", b"\n")
    assert f"wrote {html}\n" in err


def test_preview_digest_works_on_the_raw_samples_one_digest_per_mailbox(tmp_path: Path) -> None:
    html = tmp_path / "out.html"
    code, out, err = run("preview", "--digest", str(SAMPLES), "--html", str(html))
    assert code == 0, err
    counts = [int(n) for n in re.findall(r"^X-Sada-Digest-Items: (\d+)$", out, re.MULTILINE)]
    assert sum(counts) == len(SAMPLES.read_bytes().splitlines())
    assert "To: مكتب التشريعات <LegislationsOffice@moj.gov.sa>" in out
    assert "To: إدارة صوت المستفيد <voc@moj.gov.sa>" in out
    for unit in ("legislations_office", "voice_of_customer"):
        page = tmp_path / f"out.{unit}.html"
        assert '<html lang="ar" dir="rtl">' in page.read_text(encoding="utf-8")
        assert f"wrote {page} (digest for {unit} <" in err
    assert not html.exists()


def test_preview_digest_past_the_list_limit_attaches_the_list(tmp_path: Path) -> None:
    lines, _ = _campaign_lines()
    eml = tmp_path / "digest.eml"
    code, out, _ = run(
        "preview", "--digest", "-", "--list-limit", "2", "--eml", str(eml), stdin=lines
    )
    assert code == 0
    assert "The full list is attached" in out
    assert b"Content-Type: multipart/mixed" in eml.read_bytes()
    assert b"Content-Type: text/csv; charset=utf-8" in eml.read_bytes()


def test_preview_digest_names_every_invalid_line_and_exits_1() -> None:
    lines, _ = _campaign_lines()
    bad = orjson.dumps({**support.ENGLISH_SAMPLE, "channel": "carrier_pigeon"})
    broken = orjson.dumps({"event_type": "submission.grouped"})
    stdin = b"\n".join([lines.splitlines()[0], bad, broken, b"not json"])
    code, out, err = run("preview", "--digest", "-", stdin=stdin)
    assert code == 1
    assert out == ""
    assert "line 2: unknown_channel" in err
    assert "line 3: not a valid submission.grouped event" in err
    assert "line 4: invalid_json" in err
    assert "line 1" not in err


@pytest.mark.parametrize(
    "args",
    [
        ("preview", "--digest", "/nonexistent/lines.jsonl"),
        ("preview", "--digest", str(SAMPLES), "--html", "/nonexistent/x.html"),
        ("preview",),
        ("preview", str(SAMPLES), "--digest", str(SAMPLES)),
    ],
)
def test_preview_digest_unusable_arguments_are_exit_2(args: tuple[str, ...]) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert "cannot" in err or "give FILE" in err
