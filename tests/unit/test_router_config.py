"""Loading routing.yaml: the shipped file is docs/design.md's table; bad files name file:line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.router import config
from services.router.rules import RoutingConfig
from shared.config import ConfigError

DEFAULT = "  - id: default\n    unit: voice_of_customer\n"


def load_text(tmp_path: Path, text: str) -> RoutingConfig:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    error = caught.value
    assert error.path == str(tmp_path / "routing.yaml")
    assert str(error).startswith(f"{error.path}:{error.line}: ")
    return error


def test_the_shipped_rules_are_design_md_routing_table_in_order() -> None:
    loaded = config.load()
    assert [(rule.id, rule.unit.id) for rule in loaded.rules] == [
        ("legislation-reference", "legislations_office"),
        ("consultation-channel", "legislations_office"),
        ("consultation-kind", "legislations_office"),
        ("legislative-topic", "legislations_office"),
        ("explicit-topic", "voice_of_customer"),
        ("legislative-keywords", "legislations_office"),
        ("default", "voice_of_customer"),
    ]
    assert loaded.rules[-1].conditions == ()
    assert loaded.keywords == (
        "مشروع نظام",
        "مشروع لائحة",
        "مسودة نظام",
        "مسودة لائحة",
        "مشروع تعديل",
        "اللائحة التنفيذية",
        "استطلاع مرئيات",
        "draft law",
        "draft regulation",
        "draft bylaw",
        "executive regulations",
        "public consultation",
        "legislation",
    )


def test_rules_version_is_the_sha256_of_the_rule_file_alone(tmp_path: Path) -> None:
    text = "rules:\n" + DEFAULT
    loaded = load_text(tmp_path, text)
    assert loaded.version == hashlib.sha256(text.encode()).hexdigest()
    assert load_text(tmp_path, text + "# a comment is an edit too\n").version != loaded.version


def test_a_minimal_file_with_only_a_default_rule_is_valid(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "rules:\n" + DEFAULT)
    assert [rule.id for rule in loaded.rules] == ["default"]


def test_an_empty_when_is_an_unconditional_default(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "rules:\n  - {id: d, when: {}, unit: voice_of_customer}\n")
    assert loaded.rules[0].conditions == ()


def test_unknown_unit_is_refused_at_its_line(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "rules:\n  - id: one\n    when: {kind_in: [idea]}\n    unit: complaints_office\n" + DEFAULT,
    )
    assert error.line == 4
    assert "unknown unit 'complaints_office'" in error.problem
    assert "legislations_office, voice_of_customer" in error.problem


def test_unknown_channel_is_refused_at_its_line(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "rules:\n"
        "  - id: one\n"
        "    when:\n"
        "      channel_in:\n"
        "        - istitlaa\n"
        "        - fax\n"
        "    unit: legislations_office\n" + DEFAULT,
    )
    assert error.line == 6
    assert "unknown channel 'fax'" in error.problem


def test_units_and_channels_come_from_the_given_files(tmp_path: Path) -> None:
    units = tmp_path / "units.yaml"
    units.write_text(
        "units:\n  - {id: ombudsman, name_ar: ديوان, name_en: Ombudsman, mailbox: o@moj.gov.sa}\n",
        encoding="utf-8",
    )
    rules = tmp_path / "routing.yaml"
    rules.write_text("rules:\n  - {id: d, unit: ombudsman}\n", encoding="utf-8")
    assert config.load(rules, units_path=units).rules[0].unit.mailbox == "o@moj.gov.sa"
    with pytest.raises(ConfigError, match="unknown unit 'ombudsman'"):
        config.load(rules)


def test_an_invalid_units_file_is_reported_as_that_file(tmp_path: Path) -> None:
    units = tmp_path / "units.yaml"
    units.write_text("units:\n  - {id: x, name_ar: a, name_en: b, mailbox: nope}\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(units_path=units)
    assert caught.value.path == str(units)
    assert caught.value.line == 2


def test_no_final_default_is_refused_at_the_last_rule(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "rules:\n"
        "  - id: one\n"
        "    when: {kind_in: [idea]}\n"
        "    unit: legislations_office\n"
        "  - id: two\n"
        "    when: {topic_present: true}\n"
        "    unit: voice_of_customer\n",
    )
    assert error.line == 5
    assert "the last rule must be an unconditional default" in error.problem
    assert "'two'" in error.problem


def test_a_default_that_is_not_last_is_refused_at_its_line(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "rules:\n"
        "  - id: catch-all\n"
        "    unit: voice_of_customer\n"
        "  - id: one\n"
        "    when: {kind_in: [idea]}\n"
        "    unit: legislations_office\n" + DEFAULT,
    )
    assert error.line == 2
    assert "'catch-all' has no conditions" in error.problem
    assert "(one, default) never would" in error.problem


def test_duplicate_rule_ids_are_refused_at_the_second(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "rules:\n"
        "  - id: default\n"
        "    when: {kind_in: [idea]}\n"
        "    unit: legislations_office\n" + DEFAULT,
    )
    assert (error.line, error.problem) == (5, "duplicate rule id 'default'")


@pytest.mark.parametrize(
    ("rule", "line", "problem"),
    [
        (
            "{id: a, when: {colour_in: [red]}, unit: legislations_office}",
            2,
            "rules.0.when.colour_in: Extra inputs",
        ),
        (
            "{id: a, if: {kind_in: [idea]}, unit: legislations_office}",
            2,
            "rules.0.if: Extra inputs",
        ),
        (
            "{id: a, when: {kind_in: [thought]}, unit: legislations_office}",
            2,
            "rules.0.when.kind_in.0: Input should",
        ),
        (
            "{id: a, when: {topic_in: [Courts!]}, unit: legislations_office}",
            2,
            "rules.0.when.topic_in.0: String",
        ),
        (
            "{id: a, when: {field_present: name}, unit: legislations_office}",
            2,
            "rules.0.when.field_present: Input",
        ),
        (
            "{id: a, when: {keywords: false}, unit: legislations_office}",
            2,
            "rules.0.when.keywords: Input should",
        ),
        (
            "{id: a, when: {topic_present: maybe}, unit: legislations_office}",
            2,
            "rules.0.when.topic_present",
        ),
        (
            "{id: A B, when: {kind_in: [idea]}, unit: legislations_office}",
            2,
            "rules.0.id: String should match",
        ),
        ("{when: {kind_in: [idea]}, unit: legislations_office}", 2, "rules.0.id: Field required"),
        ("{id: a, when: {kind_in: [idea]}}", 2, "rules.0.unit: Field required"),
        (
            "{id: a, when: [kind_in], unit: legislations_office}",
            2,
            "rules.0.when: Input should be a valid dict",
        ),
    ],
)
def test_bad_conditions_and_keys_are_refused_at_their_line(
    tmp_path: Path, rule: str, line: int, problem: str
) -> None:
    error = refused(tmp_path, f"rules:\n  - {rule}\n" + DEFAULT)
    assert error.line == line
    assert error.problem.startswith(problem)


@pytest.mark.parametrize("condition", ["channel_in", "kind_in", "topic_in", "keywords_in"])
def test_empty_sets_are_refused(tmp_path: Path, condition: str) -> None:
    error = refused(
        tmp_path,
        f"rules:\n  - id: a\n    when:\n      {condition}: []\n    unit: legislations_office\n"
        + DEFAULT,
    )
    assert error.line == 4
    assert "at least 1 item" in error.problem


def test_a_condition_left_empty_is_refused_not_read_as_no_condition(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "rules:\n  - id: a\n    when:\n      channel_in:\n    unit: legislations_office\n"
        + DEFAULT,
    )
    assert error.line == 4
    assert "a condition needs a value" in error.problem


def test_keywords_true_without_any_keywords_is_refused(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "keywords: {ar: [], en: []}\n"
        "rules:\n"
        "  - id: kw\n"
        "    when:\n"
        "      keywords: true\n"
        "    unit: legislations_office\n" + DEFAULT,
    )
    assert error.line == 5
    assert "`keywords` section is empty" in error.problem


@pytest.mark.parametrize("keyword", ["'   '", "'ـــ'", "'\u064e\u0651'"])
def test_a_keyword_that_normalises_to_nothing_is_refused(tmp_path: Path, keyword: str) -> None:
    error = refused(tmp_path, f"keywords:\n  ar:\n    - نظام\n    - {keyword}\nrules:\n" + DEFAULT)
    assert error.line == 4
    assert "a keyword must contain something" in error.problem


def test_keywords_in_other_languages_are_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "keywords:\n  fr: [loi]\nrules:\n" + DEFAULT)
    assert (error.line, error.problem.split(":")[0]) == (2, "keywords.fr")


def test_no_rules_at_all_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "rules: []\n").problem.startswith("rules: Tuple should have at least")
    assert refused(tmp_path, "keywords: {}\n").problem == "rules: Field required"


def test_yaml_syntax_errors_are_refused_with_their_line(tmp_path: Path) -> None:
    error = refused(tmp_path, "rules:\n  - id: a\n    when: {kind_in: [idea}\n")
    assert error.line == 3
    assert error.problem.startswith("YAML error")


def test_a_missing_rule_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "absent.yaml")
