"""`sada intake check`: one JSON object, exit 0 accepted / 1 rejected / 2 unusable input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from typer.testing import CliRunner

from shared.cli import app as sada
from shared.models import MAX_MESSAGE_BYTES

SAMPLE = (
    '{"channel": "najiz_portal", "channel_ref": "NJZ-1", "kind": "suggestion", '
    '"body": "  أقترح إضافة إشعار\\u202e ", "submitter": {"phone": "0500000001"}, '
    '"submitted_at": "2026-11-25T10:03:00+03:00"}'
)


def run(*args: str, stdin: bytes | None = None) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(sada, ["intake", "check", *args], input=stdin)
    out = result.stdout_bytes.strip()
    return result.exit_code, (orjson.loads(out) if out else {}), result.stderr


def test_an_accepted_file_prints_the_normalised_submission_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "submission.json"
    path.write_text(SAMPLE, encoding="utf-8")
    code, printed, _ = run(str(path))
    assert code == 0
    assert printed["body"] == "أقترح إضافة إشعار"
    assert printed["submitter"] == {
        "name": None,
        "email": None,
        "phone": "+966500000001",
        "national_id": None,
    }
    assert printed["language"] == "ar"
    assert str(printed["reference"]).startswith("SADA-")
    assert printed["submission_id"]


def test_stdin_is_read_with_a_dash_and_a_rejection_exits_1() -> None:
    code, printed, _ = run("-", stdin=b'{"channel": "telegram"}')
    assert code == 1
    assert printed["rejected"] is True
    codes = {r["code"] for r in printed["reasons"]}  # type: ignore[attr-defined]
    assert codes == {"unknown_channel", "missing_field", "empty_submission"}


def test_a_huge_input_is_too_large_without_reading_it_all() -> None:
    code, printed, _ = run("-", stdin=b"x" * (MAX_MESSAGE_BYTES * 4))
    assert code == 1
    assert [r["code"] for r in printed["reasons"]] == ["too_large"]  # type: ignore[attr-defined]


def test_a_missing_file_or_bad_channel_list_exits_2_with_a_message(tmp_path: Path) -> None:
    code, printed, err = run(str(tmp_path / "absent.json"))
    assert code == 2
    assert printed == {}
    assert "absent.json" in orjson.loads(err)["error"]

    channels = tmp_path / "channels.yaml"
    channels.write_text("channels:\n  - {id: Bad Id, name_ar: x, name_en: y}\n")
    code, _, err = run("-", "--channels", str(channels), stdin=SAMPLE.encode())
    assert code == 2
    assert "channels.yaml:2" in orjson.loads(err)["error"]


def test_the_installed_command_never_prints_a_traceback() -> None:
    sada_bin = Path(sys.executable).with_name("sada")
    for raw, expected in [(SAMPLE.encode(), 0), (b"\xff[" * 100, 1), (b"[" * 100_000, 1)]:
        done = subprocess.run(
            [str(sada_bin), "intake", "check", "-"],
            input=raw,
            capture_output=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LANG": "C"},  # even an ASCII-only locale
        )
        assert done.returncode == expected, done.stderr
        assert b"Traceback" not in done.stderr
        assert isinstance(orjson.loads(done.stdout), dict)
