"""Checkpoints: signed over every field, parsed strictly, refused when anything changed."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from services.archive import checkpoints
from services.archive.app import build
from services.archive.checkpoints import Unreadable
from services.archive.settings import ArchiveSettings, AuditLogSettings

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
ROOT = "ab" * 32


def test_a_signed_checkpoint_round_trips_through_its_line_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    signed = checkpoints.sign(key, "feedback.accepted.v1/0", 42, ROOT, AT)
    again = checkpoints.parse(signed.line())
    assert again == signed
    assert again.at == "2026-12-03T16:00:00.000000Z"
    assert checkpoints.verify(again, key.public_key()) is None


@pytest.mark.parametrize(
    "change",
    [
        {"size": 41},
        {"root": "cd" * 32},
        {"log": "feedback.accepted.v1/1"},
        {"at": "2026-12-03T16:00:01.000000Z"},
        {"signature": "AAAA"},
        {"signature": "not base64!"},
    ],
)
def test_changing_any_field_refuses_the_checkpoint(change: dict[str, object]) -> None:
    key = Ed25519PrivateKey.generate()
    signed = checkpoints.sign(key, "feedback.accepted.v1/0", 42, ROOT, AT)
    forged = dataclasses.replace(signed, **change)  # type: ignore[arg-type]
    assert checkpoints.verify(forged, key.public_key()) == "the signature does not match its fields"


def test_a_checkpoint_of_another_key_is_refused_by_its_key_id() -> None:
    signed = checkpoints.sign(Ed25519PrivateKey.generate(), "t/0", 1, ROOT, AT)
    other = Ed25519PrivateKey.generate().public_key()
    reason = checkpoints.verify(signed, other)
    assert reason is not None
    assert reason.startswith(f"signed by key {signed.key_id}")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"log": "t/0", "size": 1, "root": "r", "at": "a", "key_id": "k"}', "signature"),
        (
            '{"log": "t/0", "size": -1, "root": "r", "at": "a", "key_id": "k", "signature": "s"}',
            "size",
        ),
        (
            '{"log": "t/0", "size": true, "root": "r", "at": "a", "key_id": "k", "signature": "s"}',
            "size",
        ),
    ],
)
def test_a_malformed_line_is_not_a_checkpoint(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        checkpoints.parse(line)


def test_the_witness_appends_per_writer_and_day_and_the_reader_reports_bad_lines(
    tmp_path: Path,
) -> None:
    key = Ed25519PrivateKey.generate()
    witness = checkpoints.Witness(tmp_path, "host-1234abcd")
    first = checkpoints.sign(key, "t/0", 1, ROOT, AT)
    second = checkpoints.sign(key, "t/1", 2, ROOT, AT)
    path = witness.append([first], AT)
    assert witness.append([second], AT) == path
    assert path == tmp_path / "2026-12-03" / "host-1234abcd.jsonl"
    with path.open("a") as out:
        out.write("garbage\n")
    found = list(checkpoints.read_dir(tmp_path))
    assert [item for _, item in found[:2]] == [first, second]
    where, bad = found[2]
    assert where == "2026-12-03/host-1234abcd.jsonl:3"
    assert isinstance(bad, Unreadable)
    assert json.loads(path.read_text().splitlines()[0])["size"] == 1


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(
    tmp_path: Path,
) -> None:
    signing, verifying = checkpoints.generate(tmp_path)
    assert stat.S_IMODE(os.stat(signing).st_mode) == 0o600
    key = checkpoints.load_signing_key(signing)
    public = checkpoints.load_verify_key(verifying)
    signed = checkpoints.sign(key, "t/0", 3, ROOT, AT)
    assert checkpoints.verify(signed, public) is None
    assert checkpoints.load_verify_key(signing).public_bytes_raw() == public.public_bytes_raw()
    with pytest.raises(FileExistsError):
        checkpoints.generate(tmp_path)


def test_outside_local_mode_the_archive_refuses_to_start_without_a_signing_key(
    tmp_path: Path,
) -> None:
    key = tmp_path / "signing.pem"
    assert AuditLogSettings().refusal("local") is None  # a laptop: a warning, no checkpoints
    assert "SIGNING_KEY_FILE is unset" in (AuditLogSettings().refusal("production") or "")
    assert AuditLogSettings(checkpoints=False).refusal("production") is None  # said loudly
    no_witness = AuditLogSettings(signing_key_file=key)
    assert "CHECKPOINT_DIR is unset" in (no_witness.refusal("production") or "")
    ready = AuditLogSettings(signing_key_file=key, checkpoint_dir=tmp_path)
    assert ready.refusal("production") is None


def test_the_archive_app_is_not_built_in_production_without_a_signing_key() -> None:
    settings = ArchiveSettings(
        environment="production",
        allow_insecure_transport=True,
        api_tokens=(SecretStr("a-real-long-token"),),
    )
    with pytest.raises(ValueError, match="SADA_AUDIT_LOG__SIGNING_KEY_FILE is unset"):
        build(settings)
