from pathlib import Path

import pytest

from shared.config import ConfigError
from shared.directory import load_channels, load_units


def test_default_units_and_channels_load() -> None:
    units = load_units()
    assert units["voice_of_customer"].mailbox == "voc@moj.gov.sa"
    assert "istitlaa" in load_channels()


def test_invalid_mailbox_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_text(
        "units:\n  - id: voc\n    name_ar: صوت\n    name_en: VoC\n    mailbox: not-an-address\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_units(path)
    assert caught.value.line == 5
    assert str(caught.value).startswith(f"{path}:5: units.0.mailbox")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text("channels:\n  - {id: a, name_ar: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="YAML error") as caught:
        load_channels(path)
    assert caught.value.line is not None


def test_duplicate_unit_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    unit = "  - {id: voc, name_ar: a, name_en: b, mailbox: voc@example.org}\n"
    path.write_text("units:\n" + unit + unit, encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate unit id 'voc'"):
        load_units(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_units(tmp_path / "absent.yaml")
