from deploy import settings_reference


def test_configuration_reference_lists_every_setting_of_every_service() -> None:
    text = settings_reference.render()
    for expected in (
        "SADA_KAFKA__BOOTSTRAP_SERVERS",
        "SADA_INTAKE_API_KEYS",
        "SADA_SMTP__HOST",
        "SADA_ARCHIVE_API_TOKENS",
        "SADA_LEDGER_FLUSH_EVERY",
    ):
        assert expected in text


def test_committed_configuration_reference_is_up_to_date() -> None:
    committed = settings_reference.OUTPUT.read_text(encoding="utf-8")
    assert committed == settings_reference.render(), (
        "docs/configuration.md is stale: run `python -m deploy.settings_reference`"
    )
