"""API clients of the archive (names, hashed tokens, scopes) and the redaction of personal data."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.archive import clients
from services.archive.clients import ApiClientConfig, hash_token
from services.archive.personal_data import REDACTED, redact
from services.archive.settings import ArchiveSettings
from tests import archive_samples as samples

AUDITOR = '[{"name": "auditor-1", "token_sha256": "%s", "scopes": ["read", "personal_data"]}]'


@pytest.fixture(autouse=True)
def _transport_is_not_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production settings here are about clients; the transport rules have their own tests.
    monkeypatch.setenv("SADA_ALLOW_INSECURE_TRANSPORT", "true")


def test_clients_from_the_environment_are_named_hashed_and_scoped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SADA_ENVIRONMENT", "production")
    monkeypatch.setenv("SADA_API_CLIENTS", AUDITOR % hash_token("auditor-secret-1"))
    loaded = clients.load(ArchiveSettings())
    auditor = loaded.identify("auditor-secret-1")
    assert auditor is not None
    assert (auditor.name, auditor.personal_data) == ("auditor-1", True)
    assert loaded.identify("auditor-secret-2") is None
    assert loaded.identify("") is None


def test_older_token_lists_keep_working_as_read_only_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SADA_ENVIRONMENT", "production")
    monkeypatch.setenv("SADA_API_TOKENS", '["list-token-1", "list-token-2"]')
    monkeypatch.setenv("SADA_ARCHIVE_API_TOKEN", "single-token-1")
    loaded = clients.load(ArchiveSettings())
    assert loaded.names == ["api-token-1", "api-token-2", "archive-api-token"]
    for token in ("list-token-1", "list-token-2", "single-token-1"):
        found = loaded.identify(token)
        assert found is not None
        assert found.scopes == {"read"}
        assert not found.personal_data


def test_local_mode_without_clients_has_the_documented_read_only_token() -> None:
    local = clients.load(ArchiveSettings()).identify("local-dev-token")
    assert local is not None
    assert (local.name, local.personal_data) == ("local", False)
    with pytest.raises(ValueError, match="no archive API client configured"):
        clients.load(ArchiveSettings(environment="production"))


@pytest.mark.parametrize(
    ("configured", "problem"),
    [
        ([("same", "token-a"), ("same", "token-b")], "configured twice"),
        ([("one", "token-a"), ("two", "token-a")], "shares its token"),
    ],
)
def test_clashing_clients_are_refused(configured: list[tuple[str, str]], problem: str) -> None:
    given = tuple(
        ApiClientConfig(name=name, token_sha256=hash_token(token)) for name, token in configured
    )
    with pytest.raises(ValueError, match=problem):
        clients.load(ArchiveSettings(api_clients=given))


def test_default_tokens_are_refused_outside_local_mode_plain_or_hashed() -> None:
    hashed = ApiClientConfig(name="x", token_sha256=hash_token("changeme"))
    with pytest.raises(ValueError, match="obvious default"):
        clients.load(ArchiveSettings(environment="production", api_clients=(hashed,)))
    plain = ApiClientConfig(name="x", token="local-dev-token")
    with pytest.raises(ValidationError, match="SADA_API_CLIENTS"):
        ArchiveSettings(environment="production", api_clients=(plain,))


def test_a_client_has_exactly_one_token_and_known_scopes() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ApiClientConfig(name="x")
    with pytest.raises(ValidationError, match="exactly one"):
        ApiClientConfig(name="x", token="a-token", token_sha256="0" * 64)
    with pytest.raises(ValidationError):
        ApiClientConfig(name="x", token_sha256="0" * 64, scopes=("admin",))
    with pytest.raises(ValidationError):
        ApiClientConfig(name="Has Spaces", token_sha256="0" * 64)
    assert ApiClientConfig(name="x", token_sha256="0" * 64).scopes == ("read",)


def test_clients_file_is_merged_with_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text(
        "api_clients:\n"
        f"  - name: dashboard\n    token_sha256: {hash_token('dashboard-token')}\n"
        "    scopes: [read]\n",
        encoding="utf-8",
    )
    inline = ApiClientConfig(name="dpo", token_sha256=hash_token("dpo-token"))
    loaded = clients.load(
        ArchiveSettings(environment="production", api_clients=(inline,), api_clients_file=path)
    )
    assert loaded.names == ["dpo", "dashboard"]


def test_redaction_removes_submitter_free_text_and_raw_bytes_and_keeps_the_facts() -> None:
    sub = samples.submission()
    event = samples.accepted(sub).model_dump(mode="json")
    cleaned, changed = redact(event)
    assert changed
    submission = cleaned["payload"]["submission"]
    for name in ("submitter", "subject", "body"):
        assert submission[name] == REDACTED
    text = str(cleaned)
    for personal in ("عبدالله الحربي", "a.harbi@example.sa", "تمديد"):
        assert personal not in text
    for kept in ("submission_id", "reference", "channel", "channel_ref", "kind", "language"):
        assert submission[kept] == event["payload"]["submission"][kept]
    assert cleaned["event_id"] == event["event_id"]


def test_redaction_leaves_absent_personal_fields_and_events_without_any_unchanged() -> None:
    notified = samples.notified(samples.submission()).model_dump(mode="json")
    assert redact(notified) == (notified, False)
    anonymous, changed = redact({"submitter": None, "answers": [{"answer": "نعم", "q": 1}]})
    assert changed
    assert anonymous == {"submitter": None, "answers": [{"answer": REDACTED, "q": 1}]}
    receipt, changed = redact({"raw": '{"submitter": {"name": "x"}}', "raw_sha256": "ab"})
    assert (receipt, changed) == ({"raw": REDACTED, "raw_sha256": "ab"}, True)


def test_an_error_message_that_may_quote_the_input_keeps_only_its_type() -> None:
    error = "ValidationError: 1 validation error, input_value={'email': 'x@example.sa'}"
    cleaned, changed = redact({"payload": {"error": error, "service": "router"}})
    assert changed
    assert cleaned == {"payload": {"error": f"ValidationError: {REDACTED}", "service": "router"}}
    assert redact({"error": "ValueError"}) == ({"error": "ValueError"}, False)
