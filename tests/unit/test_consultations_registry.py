"""The registry of consultations: the shipped example, and every error as `file:line: problem`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.config import ConfigError
from shared.consultations import CONSULTATIONS_PATH, QuestionType, load_consultations
from shared.consultations_cli import window_state

runner = CliRunner()

PROJECT = """\
consultations:
  - ref: MOJ-DRAFT-2026-003
    title_ar: مشروع تعديل نظام الإثبات
    title_en: Draft amendments to the Evidence Law
    opens_at: 2026-11-15T00:00:00+03:00
    closes_at: 2027-01-15T23:59:59+03:00
    questions:
      - id: article_12
        text_ar: ما رأيك؟
        text_en: Your view?
        type: single_choice
        options:
          - {id: support, label_ar: أؤيد, label_en: Support}
          - {id: oppose, label_ar: أعارض, label_en: Oppose}
      - id: clarity
        text_ar: الوضوح
        text_en: Clarity
        type: scale
        min: 1
        max: 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "consultations.yaml"
    path.write_text(text, "utf-8")
    return path


def problem(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_consultations(path)
    return str(caught.value).removeprefix(f"{path}:")


def test_the_shipped_registry_has_a_closed_an_open_and_a_not_yet_open_project() -> None:
    registry = load_consultations()
    now = datetime(2026, 12, 3, tzinfo=UTC)
    states = {ref: window_state(c, now) for ref, c in registry.items()}
    assert states == {
        "MOJ-DRAFT-2026-007": "closed",
        "MOJ-DRAFT-2026-003": "open",
        "MOJ-DRAFT-2027-002": "not yet open",
    }
    open_now = registry["MOJ-DRAFT-2026-003"]
    assert {q.type for q in open_now.questions} == set(QuestionType)
    assert any(q.required for q in open_now.questions)
    assert all(c.title_ar and c.title_en for c in registry.values())


def test_a_valid_project_loads_with_its_questionnaire(tmp_path: Path) -> None:
    consultation = load_consultations(write(tmp_path, PROJECT))["MOJ-DRAFT-2026-003"]
    question = consultation.question("article_12")
    assert question is not None
    assert question.option("oppose") is not None
    assert consultation.is_open(datetime(2026, 12, 1, tzinfo=UTC))


def test_an_unknown_question_type_names_its_line(tmp_path: Path) -> None:
    text = PROJECT.replace("type: single_choice", "type: yes_no")
    assert problem(tmp_path, text).startswith(
        "11: consultations.0.questions.0.type: Input should be 'single_choice'"
    )


def test_a_scale_without_min_and_max_names_the_question(tmp_path: Path) -> None:
    text = PROJECT.replace("        min: 1\n        max: 5\n", "")
    assert problem(tmp_path, text) == (
        "15: consultations.0.questions.1: Value error, question 'clarity': a scale needs min < max"
    )


def test_duplicate_question_ids_are_refused(tmp_path: Path) -> None:
    text = PROJECT.replace("id: clarity", "id: article_12")
    assert problem(tmp_path, text) == (
        "8: consultations.0.questions: Value error, question ids must be unique; "
        "repeated: article_12"
    )


def test_duplicate_option_ids_are_refused(tmp_path: Path) -> None:
    text = PROJECT.replace("{id: oppose,", "{id: support,")
    assert problem(tmp_path, text) == (
        "8: consultations.0.questions.0: Value error, question 'article_12': option ids must be "
        "unique; repeated: support"
    )


def test_duplicate_refs_are_refused(tmp_path: Path) -> None:
    second = PROJECT.removeprefix("consultations:\n")
    assert problem(tmp_path, PROJECT + second) == (
        "2: consultations: Value error, consultation refs must be unique; "
        "repeated: MOJ-DRAFT-2026-003"
    )


def test_closing_before_it_opens_names_the_closes_at_line(tmp_path: Path) -> None:
    text = PROJECT.replace("2027-01-15T23:59:59+03:00", "2026-11-01T00:00:00Z")
    assert problem(tmp_path, text) == (
        "6: consultations.0.closes_at: Value error, closes_at must be after opens_at"
    )


def test_a_window_without_an_offset_is_refused(tmp_path: Path) -> None:
    text = PROJECT.replace("opens_at: 2026-11-15T00:00:00+03:00", "opens_at: 2026-11-15T00:00:00")
    assert problem(tmp_path, text).startswith("5: consultations.0.opens_at: ")


def test_check_config_prints_ok_and_each_projects_window() -> None:
    result = runner.invoke(app, ["consultations", "check-config", str(CONSULTATIONS_PATH)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok: 3 consultations in {CONSULTATIONS_PATH}"
    assert lines[2].startswith("  MOJ-DRAFT-2026-003: ")


def test_check_config_refuses_a_bad_file_with_file_line_and_problem(tmp_path: Path) -> None:
    path = write(tmp_path, PROJECT.replace("type: scale", "type: stars"))
    result = runner.invoke(app, ["consultations", "check-config", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{path}:18: consultations.0.questions.1.type: Input should be" in result.stderr
