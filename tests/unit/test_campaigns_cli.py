"""`sada campaigns group`: one line per input line, in order, rejected lines included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from typer.testing import CliRunner

from shared.cli import app

BODY = (
    "We ask the Legislations Office to remove the daily fine in article nine, because small "
    "shops cannot pay it during the transition period and the draft gives no time to comply."
)


def line(n: int, body: str, **extra: object) -> bytes:
    raw = {
        "channel": "istitlaa",
        "channel_ref": f"cli-{n}",
        "kind": "consultation_response",
        "legislation_ref": "law-1",
        "body": body,
        "submitted_at": "2026-03-01T10:00:00+03:00",
        **extra,
    }
    return orjson.dumps(raw)


def test_group_prints_one_line_per_input_line_in_order(tmp_path: Path) -> None:
    source = tmp_path / "submissions.jsonl"
    source.write_bytes(
        b"\n".join(
            [
                line(1, BODY),
                b"{not json",
                line(3, "Dear Office, " + BODY.replace("shops", "stores")),
                line(4, BODY, channel="nowhere"),
                line(5, BODY, legislation_ref=None),
                line(6, BODY),
            ]
        )
        + b"\n"
    )
    result = CliRunner().invoke(app, ["campaigns", "group", str(source)])
    assert result.exit_code == 0, result.stderr
    out = [orjson.loads(text) for text in result.stdout.splitlines()]
    assert [entry["line"] for entry in out] == [1, 2, 3, 4, 5, 6]
    assert out[0] == {
        "line": 1,
        "reference": out[0]["reference"],
        "campaign_id": None,
        "similar_to": None,
        "similarity": None,
    }
    assert out[1]["rejected"] is True
    assert out[1]["reasons"][0]["code"] == "invalid_json"
    assert out[2]["campaign_id"] is not None
    assert out[2]["similar_to"] == out[0]["reference"]
    assert 0.4 <= out[2]["similarity"] < 1.0
    assert out[3]["rejected"] is True
    assert [reason["code"] for reason in out[3]["reasons"]] == ["unknown_channel"]
    assert out[4]["campaign_id"] is None  # no legislation_ref: the routed unit's scope
    assert out[5]["campaign_id"] == out[2]["campaign_id"]
    assert out[5]["similarity"] == 1.0


def test_group_reads_stdin() -> None:
    result = CliRunner().invoke(app, ["campaigns", "group", "-"], input=line(1, BODY) + b"\n")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["line"] == 1


def test_the_command_module_does_not_import_the_algorithm_until_it_runs() -> None:
    code = "import sys, shared.cli; print(sorted({'datasketch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
