"""`sada route explain | check-config | replay`: answers and exit codes, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from services.router import config
from shared import events
from shared.cli import app
from tests.router_support import EXPECTED, LO, SAMPLES, VOC, accepted, raw_samples, samples

runner = CliRunner()
VERSION = config.load().version


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["route", *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def explain(data: bytes) -> tuple[int, Any]:
    code, out, _ = run("explain", "-", stdin=data)
    return code, orjson.loads(out)


# --- explain -------------------------------------------------------------------------------


@pytest.mark.parametrize("line", sorted(EXPECTED))
def test_explain_validates_a_raw_sample_like_intake_and_prints_its_decision(line: int) -> None:
    code, decision = explain(orjson.dumps(raw_samples()[line - 1]))
    assert code == 0
    assert set(decision) == {"unit", "mailbox", "rule_id", "reason", "matched", "rules_version"}
    assert (decision["unit"], decision["rule_id"]) == EXPECTED[line]
    assert decision["rules_version"] == VERSION


def test_explain_prints_the_reason_and_what_matched() -> None:
    code, decision = explain(orjson.dumps(raw_samples()[0]))
    assert code == 0
    assert decision == {
        "unit": LO,
        "mailbox": "LegislationsOffice@moj.gov.sa",
        "rule_id": "legislation-reference",
        "reason": "legislation_ref MOJ-DRAFT-2026-003 present — "
        "feedback on a draft law or regulation under consultation",
        "matched": [{"field": "legislation_ref", "value": "MOJ-DRAFT-2026-003"}],
        "rules_version": VERSION,
    }


def test_explain_reads_a_file_argument(tmp_path: Path) -> None:
    path = tmp_path / "sub.json"
    path.write_bytes(orjson.dumps(raw_samples()[11]))
    code, out, _ = run("explain", str(path))
    assert code == 0
    assert orjson.loads(out)["rule_id"] == "legislative-keywords"


def test_explain_takes_an_accepted_submission_and_an_accepted_event() -> None:
    sub = samples()[18]
    code, decision = explain(sub.model_dump_json().encode())
    assert (code, decision["rule_id"]) == (0, "consultation-channel")
    code, decision = explain(accepted(sub).model_dump_json().encode())
    assert (code, decision["rule_id"]) == (0, "consultation-channel")


def test_explain_uses_the_given_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text("rules:\n  - {id: everything, unit: legislations_office}\n", "utf-8")
    code, out, _ = run("explain", "--rules", str(rules), "-", stdin=orjson.dumps(raw_samples()[5]))
    assert code == 0
    assert orjson.loads(out)["rule_id"] == "everything"


def test_explain_rejects_an_invalid_raw_submission_with_intake_reasons_and_exit_1() -> None:
    raw = {**raw_samples()[5], "channel": "fax", "submitted_at": "yesterday"}
    code, rejection = explain(orjson.dumps(raw))
    assert code == 1
    assert set(rejection) == {"rejected", "submission_id", "reference", "reasons"}
    assert rejection["rejected"] is True
    assert rejection["reference"].startswith("SADA-")
    codes = {reason["code"] for reason in rejection["reasons"]}
    assert "unknown_channel" in codes
    assert all(set(reason) == {"code", "field", "message"} for reason in rejection["reasons"])


@pytest.mark.parametrize("data", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'{"body": 1}'])
def test_explain_rejects_garbage_without_a_traceback(data: bytes) -> None:
    code, out, err = run("explain", "-", stdin=data)
    assert code == 1
    assert orjson.loads(out)["reasons"]
    assert "Traceback" not in out + err


def test_explain_rejects_an_invalid_accepted_submission_naming_the_fields() -> None:
    data = {**samples()[0].model_dump(mode="json"), "kind": "rant"}
    del data["reference"]
    code, rejection = explain(orjson.dumps(data))
    assert code == 1
    assert {(r["code"], r["field"]) for r in rejection["reasons"]} == {
        ("invalid_submission", "kind"),
        ("missing_field", "reference"),
    }


def test_explain_rejects_an_event_without_a_submission() -> None:
    sub = samples()[0]
    sent = events.build(
        events.NotificationSent,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.NotificationPayload(unit=LO, mailbox="x@moj.gov.sa", message_id="<m@x>"),
        discriminator="x",
        producer=events.Producer(service="notifier", version="test"),
    )
    code, rejection = explain(sent.model_dump_json().encode())
    assert code == 1
    assert rejection["reasons"][0]["code"] == "no_submission"
    code, rejection = explain(orjson.dumps({"event_type": ["unhashable"]}))
    assert (code, rejection["reasons"][0]["code"]) == (1, "no_submission")


def test_explain_rejects_a_malformed_event_naming_the_fields() -> None:
    event = orjson.loads(accepted(samples()[0]).model_dump_json())
    del event["payload"]["submission"]["kind"]
    code, rejection = explain(orjson.dumps({**event, "reference": 7}))
    assert code == 1
    assert {(r["code"], r["field"]) for r in rejection["reasons"]} == {
        ("invalid_event", "reference"),
        ("missing_field", "payload.submission.kind"),
    }


def test_explain_never_echoes_personal_data_when_rejecting() -> None:
    raw = {**raw_samples()[0], "submitter": {"name": "عبدالله", "email": "not-an-email"}}
    code, out, err = run("explain", "-", stdin=orjson.dumps(raw))
    assert code == 1
    assert "not-an-email" not in out + err


def test_explain_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = run("explain", str(tmp_path / "absent.json"))
    assert code == 2
    assert "cannot read" in err
    assert out == ""


def test_explain_with_an_invalid_rule_file_names_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text("rules:\n  - {id: a, when: {kind_in: [idea]}, unit: voice_of_customer}\n")
    code, _, err = run("explain", "--rules", str(rules), "-", stdin=b"{}")
    assert code == 1
    assert f"{rules}:2: the last rule must be an unconditional default" in err


# --- check-config --------------------------------------------------------------------------


def test_check_config_accepts_the_shipped_rules() -> None:
    code, out, _ = run("check-config", str(config.RULES_PATH))
    assert code == 0
    assert out.startswith(f"ok: {config.RULES_PATH}: 7 rules, 13 keywords")
    assert VERSION in out


def test_check_config_refuses_a_bad_file_with_file_line_and_problem(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text("rules:\n  - id: d\n    unit: archive_office\n", "utf-8")
    code, out, err = run("check-config", str(rules))
    assert code == 1
    assert out == ""
    assert f"{rules}:3: rules.0.unit: Value error, unknown unit 'archive_office'" in err


# --- replay --------------------------------------------------------------------------------


def write_new_rules(tmp_path: Path) -> Path:
    """The shipped rules, with keywords checked before the explicit-topic rule."""
    text = config.RULES_PATH.read_text("utf-8")
    explicit = (
        "  - id: explicit-topic\n    when: {topic_present: true}\n    unit: voice_of_customer\n"
        "    description: the channel named a service topic\n\n"
    )
    keywords = (
        "  - id: legislative-keywords\n    when: {keywords: true}\n    unit: legislations_office\n"
        "    description: the text mentions draft legislation\n\n"
    )
    assert explicit in text
    assert keywords in text
    path = tmp_path / "new.yaml"
    path.write_text(text.replace(explicit, "").replace(keywords, keywords + explicit), "utf-8")
    return path


def test_replay_lists_the_submissions_that_would_change_unit_and_why(tmp_path: Path) -> None:
    new = write_new_rules(tmp_path)
    extra = {**raw_samples()[3], "channel_ref": "NJZ-X-1", "body": "ملاحظة على مشروع نظام التوثيق"}
    jsonl = tmp_path / "subs.jsonl"
    jsonl.write_bytes(SAMPLES.read_bytes() + b"\n" + orjson.dumps(extra) + b"\n")
    code, out, err = run("replay", "--rules", str(new), str(jsonl))
    assert code == 0, err
    *changes, summary = [orjson.loads(line) for line in out.splitlines()]
    assert [change["line"] for change in changes] == [22]
    change = changes[0]
    assert change["from"]["unit"] == VOC
    assert change["from"]["rule_id"] == "explicit-topic"
    assert change["to"] == {
        "unit": LO,
        "rule_id": "legislative-keywords",
        "reason": "keyword «مشروع نظام» in body — the text mentions draft legislation",
    }
    assert change["reference"].startswith("SADA-")
    assert summary == {
        "summary": {
            "submissions": 21,
            "unit_changed": 1,
            "rule_changed_same_unit": 0,
            "invalid": 0,
            "current_version": VERSION,
            "new_version": config.load(new).version,
        }
    }


def test_replay_with_identical_rules_changes_nothing(tmp_path: Path) -> None:
    code, out, _ = run("replay", "--rules", str(config.RULES_PATH), str(SAMPLES))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1
    assert orjson.loads(lines[0])["summary"]["unit_changed"] == 0


def test_replay_counts_invalid_lines_and_reports_them_by_code_on_stderr(tmp_path: Path) -> None:
    jsonl = tmp_path / "subs.jsonl"
    jsonl.write_bytes(
        orjson.dumps(raw_samples()[0])
        + b"\n\nnot json\n"
        + orjson.dumps({**raw_samples()[1], "channel": "fax"})
        + b"\n"
        + accepted(samples()[2]).model_dump_json().encode()
        + b"\n"
    )
    code, out, err = run("replay", "--rules", str(config.RULES_PATH), str(jsonl))
    assert code == 0
    summary = orjson.loads(out.splitlines()[-1])["summary"]
    assert (summary["submissions"], summary["invalid"]) == (2, 2)
    assert "line 3: not a valid submission: invalid_json" in err
    assert "line 4: not a valid submission:" in err
    assert "unknown_channel(channel)" in err


def test_replay_refuses_an_invalid_new_rule_file(tmp_path: Path) -> None:
    new = tmp_path / "new.yaml"
    new.write_text("rules: [\n", "utf-8")
    code, out, err = run("replay", "--rules", str(new), str(SAMPLES))
    assert code == 1
    assert out == ""
    assert f"{new}:" in err
    assert "YAML error" in err
