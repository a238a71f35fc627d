"""Signed checkpoints of the partition logs, and the witness files that hold them.

A checkpoint says "the log `topic/partition` had `size` leaves with Merkle root `root` at `at`",
signed with Ed25519 by a key that is not in the database. One JSON line per checkpoint:

    {"log": "feedback.accepted.v1/0", "size": 1234, "root": "<hex>", "at": "2026-12-03T16:00:00Z",
     "key_id": "<hex>", "signature": "<base64>"}

The signature covers the canonical text (JSON, sorted keys, no spaces) of every other field.
`key_id` is the first 16 bytes (hex) of SHA-256 over the raw public key, so a reader can tell
which key to check a line with. Each archive process appends to its own file,
`<dir>/<UTC date>/<writer>.jsonl` (fsync'd), so writers never share a file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNING_FILE = "signing.pem"
VERIFY_FILE = "verify.pem"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed statement of a log's size and root."""

    log: str
    size: int
    root: str
    at: str
    key_id: str
    signature: str

    def signed_text(self) -> bytes:
        """Return the canonical text the signature covers (every field but the signature)."""
        return signed_text(self.log, self.size, self.root, self.at, self.key_id)

    def line(self) -> str:
        """Return the checkpoint as one JSON line (no newline)."""
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode()


def signed_text(log: str, size: int, root: str, at: str, key_id: str) -> bytes:
    """Return the canonical text of a checkpoint's fields."""
    fields = {"at": at, "key_id": key_id, "log": log, "root": root, "size": size}
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def key_id(public: Ed25519PublicKey) -> str:
    """Return the fingerprint of a public key: 16 bytes of SHA-256 over its raw form, hex."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def sign(key: Ed25519PrivateKey, log: str, size: int, root: str, at: datetime) -> Checkpoint:
    """Return the signed checkpoint of `log` at `size` leaves with `root` (hex)."""
    when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kid = key_id(key.public_key())
    signature = key.sign(signed_text(log, size, root, when, kid))
    return Checkpoint(log, size, root, when, kid, base64.b64encode(signature).decode())


def verify(checkpoint: Checkpoint, public: Ed25519PublicKey) -> str | None:
    """Return why `checkpoint` is refused under `public`, or None when its signature holds."""
    if checkpoint.key_id != key_id(public):
        return f"signed by key {checkpoint.key_id}, not by {key_id(public)}"
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public.verify(signature, checkpoint.signed_text())
    except (InvalidSignature, binascii.Error, ValueError):
        return "the signature does not match its fields"
    return None


def parse(line: str | bytes) -> Checkpoint:
    """Return the checkpoint on one JSON line; raise ValueError when it is not one."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    texts = ("log", "root", "at", "key_id", "signature")
    if any(not isinstance(data.get(name), str) for name in texts):
        raise ValueError(f"one of {', '.join(texts)} is missing or not a string")
    size = data.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("size is missing or not a non-negative integer")
    return Checkpoint(
        data["log"], size, data["root"], data["at"], data["key_id"], data["signature"]
    )


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line of a witness file that is not a checkpoint."""

    where: str
    reason: str


def read_dir(directory: Path) -> Iterator[tuple[str, Checkpoint | Unreadable]]:
    """Yield (file:line, checkpoint or why not) for every line of every `*.jsonl` under it."""
    for path in sorted(directory.rglob("*.jsonl")):
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path.relative_to(directory)}:{number}"
                try:
                    yield where, parse(line)
                except ValueError as exc:
                    yield where, Unreadable(where, str(exc))


class Witness:
    """Appends this process's checkpoints to `<dir>/<UTC date>/<writer>.jsonl`, fsync'd."""

    def __init__(self, directory: Path, writer: str) -> None:
        self._directory = directory
        self._writer = writer

    def append(self, checkpoints: Sequence[Checkpoint], now: datetime) -> Path:
        """Append `checkpoints` (one line each) and return the file; durable on return."""
        folder = self._directory / now.astimezone(UTC).strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self._writer}.jsonl"
        text = "".join(f"{checkpoint.line()}\n" for checkpoint in checkpoints).encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        return path


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Return the Ed25519 private key in a PEM file; raise ValueError when it is not one."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds no Ed25519 private key")
    return key


def load_verify_key(path: Path) -> Ed25519PublicKey:
    """Return the Ed25519 public key in a PEM file (or the public half of a private one)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} holds no Ed25519 public key")
    return key


def generate(directory: Path) -> tuple[Path, Path]:
    """Write a new key pair: `signing.pem` (0600) and `verify.pem`; refuse to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    signing, verifying = directory / SIGNING_FILE, directory / VERIFY_FILE
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(signing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    verifying.write_bytes(public)
    return signing, verifying
