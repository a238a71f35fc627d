"""Envelope encryption of archived events: what is sealed, what is hashed, what opens."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from services.archive import envelope
from services.archive.chain import GENESIS, link_hash
from services.archive.envelope import ENCRYPTED, ERASED, LocalKeyring
from services.archive.personal_data import redact
from services.archive.records import canonical_json
from services.archive.settings import DEV_MASTER_KEY, ArchiveSettings, PrivacySettings
from tests import archive_samples as samples

KEYRING = LocalKeyring(bytes(range(32)))
EMAIL = "a.harbi@example.sa"


def accepted_event() -> dict[str, object]:
    event = samples.accepted(samples.submission())
    data = orjson.loads(samples.encode(event))
    sub = data["payload"]["submission"]
    sub["answers"] = [{"question": "q1", "answer": "نعم، اتصل بي على 0501234567"}]
    sub["attachments"] = [
        {"filename": "harbi-cv.pdf", "content_type": "application/pdf", "size_bytes": 3,
         "url": "https://files.example.sa/harbi-cv.pdf"}
    ]  # fmt: skip
    assert isinstance(data, dict)
    return data


def test_split_then_merge_gives_back_the_event_with_nested_answers_and_attachments() -> None:
    event = accepted_event()
    redacted, secrets = envelope.split(event)
    assert EMAIL not in orjson.dumps(redacted).decode()
    assert "0501234567" not in orjson.dumps(redacted).decode()
    sub = redacted["payload"]["submission"]
    assert sub["submitter"] == ENCRYPTED
    assert sub["answers"][0] == {"question": "q1", "answer": ENCRYPTED}
    assert sub["attachments"][0]["content_type"] == "application/pdf"
    assert sub["attachments"][0]["filename"] == ENCRYPTED
    assert envelope.merge(redacted, secrets) == event


def test_a_raw_receipt_and_an_error_message_are_sealed_and_the_error_type_stays() -> None:
    event = {
        "event_id": "e1",
        "raw": samples.raw_submission().decode(),
        "key": "k",
        "error": "ValidationError: body: value 'call 0501234567' too long",
        "raw_size_bytes": 10,
    }
    redacted, secrets = envelope.split(event)
    assert redacted == {
        "event_id": "e1",
        "raw": ENCRYPTED,
        "key": ENCRYPTED,
        "error": f"ValidationError: {ENCRYPTED}",
        "raw_size_bytes": 10,
    }
    assert envelope.merge(redacted, secrets) == event
    assert envelope.find_submitter(event) == {"email": "someone@example.sa"}


def test_an_event_without_personal_data_is_not_sealed() -> None:
    event = {"event_id": "e1", "payload": {"unit": "x", "submitter": None, "body": ""}}
    assert envelope.protect(event, "k1", envelope.new_data_key()) is None


def test_the_stored_event_holds_only_ciphertext_and_opens_with_its_key() -> None:
    event = accepted_event()
    key = envelope.new_data_key()
    stored = envelope.protect(event, "key-1", key)
    assert stored is not None
    text = canonical_json(stored)
    assert EMAIL not in text
    assert "harbi-cv" not in text
    assert stored["personal"]["key_id"] == "key-1"
    assert envelope.reveal(copy.deepcopy(stored), key) == event
    # the chain hashes the stored text: destroying the key changes nothing it covers
    assert link_hash(GENESIS, text) == link_hash(GENESIS, canonical_json(stored))


def test_without_its_key_an_event_reads_erased_and_keeps_everything_else() -> None:
    event = accepted_event()
    stored = envelope.protect(event, "key-1", envelope.new_data_key())
    assert stored is not None
    shown = envelope.reveal(stored, None)
    sub = shown["payload"]["submission"]
    assert sub["submitter"] == ERASED
    assert sub["body"] == ERASED
    assert sub["channel"] == event["payload"]["submission"]["channel"]  # type: ignore[index]
    assert "personal" not in shown
    assert envelope.erased({"error": f"T: {ENCRYPTED}"}) == {"error": f"T: {ERASED}"}


def test_a_ciphertext_moved_to_another_event_does_not_open() -> None:
    key = envelope.new_data_key()
    one = envelope.protect({"event_id": "e1", "body": "secret one"}, "k", key)
    two = envelope.protect({"event_id": "e2", "body": "secret two"}, "k", key)
    assert one is not None
    assert two is not None
    with pytest.raises(InvalidTag):
        envelope.open_sealed(key, "e2", one["personal"])
    swapped = {**two, "personal": one["personal"]}
    assert envelope.reveal(swapped, key)["body"] == ERASED
    relabelled = {**one["personal"], "key_id": "other"}
    with pytest.raises(InvalidTag):
        envelope.open_sealed(key, "e1", relabelled)


def test_a_wrapped_key_unwraps_only_under_its_own_id_and_master_key() -> None:
    key = envelope.new_data_key()
    wrapped = KEYRING.wrap("k1", key)
    assert key not in wrapped
    assert KEYRING.unwrap("k1", wrapped) == key
    with pytest.raises(InvalidTag):
        KEYRING.unwrap("k2", wrapped)
    with pytest.raises(InvalidTag):
        LocalKeyring(os.urandom(32)).unwrap("k1", wrapped)


def test_blind_indexes_ignore_case_spaces_and_separators_and_differ_by_kind() -> None:
    def blinds(**given: str) -> list[str]:
        return [envelope.blind_index(KEYRING, label) for label in envelope.identity_labels(**given)]

    assert blinds(email=" A.Harbi@Example.SA ") == blinds(email=EMAIL)
    assert blinds(phone="+966 50-123 4567") == blinds(phone="966501234567")
    assert blinds(national_id="1234 567 890") == blinds(national_id="1234567890")
    (by_mail,) = blinds(email=EMAIL)
    assert by_mail.startswith("e:")
    assert EMAIL not in by_mail
    assert blinds(email=EMAIL) != [envelope.blind_index(LocalKeyring(os.urandom(32)), f"e:{EMAIL}")]


def test_the_national_id_is_the_primary_identifier_then_the_email_then_the_phone() -> None:
    labels = envelope.submitter_labels(
        {"name": "x", "email": EMAIL, "phone": "+966501234567", "national_id": "1234567890"}
    )
    assert labels == ["n:1234567890", f"e:{EMAIL}", "p:966501234567"]
    assert envelope.submitter_labels({"name": "only a name"}) == []


def test_the_master_key_must_be_base64_of_32_bytes() -> None:
    assert len(envelope.parse_master_key(DEV_MASTER_KEY)) == 32
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.parse_master_key("c2hvcnQ=")
    with pytest.raises(ValueError, match="base64"):
        envelope.parse_master_key("not base64 !")


def test_outside_local_mode_the_development_master_key_or_none_is_refused(
    tmp_path: Path,
) -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "allow_insecure_transport": True,
        "archive_api_token": SecretStr("t" * 40),
    }
    with pytest.raises(ValueError, match="SADA_PRIVACY__MASTER_KEY"):
        ArchiveSettings(**production).master_key()
    dev = PrivacySettings(master_key=SecretStr(DEV_MASTER_KEY))
    with pytest.raises(ValueError, match="SADA_PRIVACY__MASTER_KEY"):
        ArchiveSettings(**production, privacy=dev).master_key()
    real = "q" * 43 + "="
    (tmp_path / "master-key").write_text(real + "\n")
    settings = ArchiveSettings(
        **production, privacy=PrivacySettings(master_key_file=tmp_path / "master-key")
    )
    assert settings.master_key() == real
    assert ArchiveSettings().master_key() == DEV_MASTER_KEY


def test_the_redacted_view_of_a_sealed_event_shows_no_ciphertext_as_personal_data() -> None:
    stored = envelope.protect(accepted_event(), "k", envelope.new_data_key())
    assert stored is not None
    stored.pop("personal")
    shown, changed = redact(stored)
    assert changed
    assert shown["payload"]["submission"]["submitter"] == "[redacted]"
