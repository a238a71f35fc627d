"""Envelope encryption of the personal data in archived events (pure: no I/O).

An event's personal fields (`personal_data.PERSONAL_FIELDS` and the message of an `error`) are
taken out of it (`split`), replaced by `"[encrypted]"`, and sealed with AES-256-GCM under a
data key of the submitter and the UTC day of archiving: the stored event is the redacted event
plus `"personal": {"key_id", "nonce", "ciphertext"}`. The chain's hash covers that text, so the
ciphertext, never the plaintext, is what is hashed: destroying the data key makes the personal
data unreadable and leaves every chain verifiable. The associated data binds a ciphertext to its
event id and key id, so a ciphertext moved to another event does not open.

Data keys are wrapped by a `Keyring` (`LocalKeyring`: a master secret; a KMS can implement the
same Protocol). The keyring also computes blind indexes: keyed HMAC-SHA256 of a normalised
national id, e-mail or phone, by which `sada privacy erase/export` finds a person's keys without
storing who they are.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.archive.personal_data import ERROR_FIELDS, PERSONAL_FIELDS

ENCRYPTED: Final = "[encrypted]"
"""What a personal value becomes in the stored (hashed) event."""
ERASED: Final = "[erased]"
"""What a personal value reads as once its data key is destroyed."""
PERSONAL: Final = "personal"
"""The stored event's field holding the sealed personal values."""

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12

Path = list[str | int]
Secret = tuple[Path, Any]


class Keyring(Protocol):
    """Wraps and unwraps data keys, and computes blind indexes (a KMS can implement it)."""

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        """Return `data_key` encrypted for storage, bound to `key_id`."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Return the data key of `wrapped`; raise when it was not wrapped for `key_id`."""
        ...

    def blind(self, label: str) -> str:
        """Return the keyed HMAC-SHA256 (hex) of `label`."""
        ...


class LocalKeyring:
    """A `Keyring` from one 32-byte master secret: HKDF derives a wrap key and a blind-index key."""

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise ValueError("the privacy master key must be 32 bytes")
        self._wrap = AESGCM(_derive(master, b"sada/privacy/wrap/v1"))
        self._blind = _derive(master, b"sada/privacy/blind/v1")

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        """Return nonce + AES-GCM(data_key), with the key id as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._wrap.encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Return the data key; raise `InvalidTag` when it was wrapped for another id or key."""
        return self._wrap.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], key_id.encode())

    def blind(self, label: str) -> str:
        """Return HMAC-SHA256(blind key, label) in hex."""
        return hmac.new(self._blind, label.encode(), hashlib.sha256).hexdigest()


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)


def parse_master_key(text: str) -> bytes:
    """Return the 32-byte master key from its base64 text; raise ValueError otherwise."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError("the privacy master key is not base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError("the privacy master key must be 32 bytes (base64)")
    return key


def new_data_key() -> bytes:
    """Return a fresh AES-256 data key."""
    return AESGCM.generate_key(bit_length=256)


# --- identities and blind indexes -----------------------------------------------------------


def normal_email(value: str) -> str:
    """Return an e-mail address as it is indexed: trimmed and case-folded."""
    return value.strip().casefold()


def normal_national_id(value: str) -> str:
    """Return a national id as it is indexed: digits only."""
    return re.sub(r"\D", "", value)


def normal_phone(value: str) -> str:
    """Return a phone number as it is indexed: its digits (E.164 without `+` or separators)."""
    return re.sub(r"\D", "", value)


def identity_labels(
    *, national_id: object = None, email: object = None, phone: object = None
) -> list[str]:
    """Return the person's labels, strongest identifier first (national id > e-mail > phone)."""
    labels = []
    if isinstance(national_id, str) and normal_national_id(national_id):
        labels.append(f"n:{normal_national_id(national_id)}")
    if isinstance(email, str) and normal_email(email):
        labels.append(f"e:{normal_email(email)}")
    if isinstance(phone, str) and normal_phone(phone):
        labels.append(f"p:{normal_phone(phone)}")
    return labels


def submitter_labels(submitter: Mapping[str, Any] | None) -> list[str]:
    """Return the labels of a `submitter` object (empty: anonymous or name only)."""
    if not submitter:
        return []
    return identity_labels(
        national_id=submitter.get("national_id"),
        email=submitter.get("email"),
        phone=submitter.get("phone"),
    )


def chain_label(chain_id: str) -> str:
    """Return the label of an anonymous chain's keys."""
    return f"c:{chain_id}"


def blind_index(keyring: Keyring, label: str) -> str:
    """Return the stored blind index of `label`: its kind and the keyed HMAC (`e:<hex>`)."""
    return f"{label[0]}:{keyring.blind(label)}"


def slot_id(keyring: Keyring, label: str, day: str) -> str:
    """Return the cache key of (the person or chain `label`, UTC `day`) (`privacy.py`)."""
    return keyring.blind(f"slot:{label}:{day}")


def find_submitter(event: Any, depth: int = 0) -> Mapping[str, Any] | None:
    """Return the first `submitter` object in `event`, looking into raw JSON strings too.

    A raw receipt and a dead letter carry the submission as the text received (`raw`).
    """
    if depth > 8:
        return None
    if isinstance(event, dict):
        found = event.get("submitter")
        if isinstance(found, dict):
            return found
        for name, item in event.items():
            if name == "raw" and isinstance(item, str):
                try:
                    item = orjson.loads(item)
                except orjson.JSONDecodeError:
                    continue
            inner = find_submitter(item, depth + 1)
            if inner is not None:
                return inner
    elif isinstance(event, list):
        for item in event:
            inner = find_submitter(item, depth + 1)
            if inner is not None:
                return inner
    return None


# --- split, seal, open, merge ---------------------------------------------------------------


def split(event: Any, path: Path | None = None) -> tuple[Any, list[Secret]]:
    """Return `event` with every personal value replaced by `[encrypted]`, and those values.

    Each value comes with its path (keys and list indexes), so `merge` puts it back. An
    `error` keeps its type (`Type: [encrypted]`); absent, null and empty values stay.
    """
    secrets: list[Secret] = []
    return _split(event, tuple(path or ()), secrets), secrets


def _split(event: Any, here: tuple[str | int, ...], secrets: list[Secret]) -> Any:
    # The archive runs this on every event it seals: a path is built only for a secret or a
    # container to descend into, never for the many scalar values (a list per key cost
    # a third of the archive's sealing time).
    if isinstance(event, dict):
        out: dict[str, Any] = {}
        for name, item in event.items():
            if name in PERSONAL_FIELDS and item is not None and item not in ("", [], {}):
                out[name] = ENCRYPTED
                secrets.append(([*here, name], item))
            elif name in ERROR_FIELDS and isinstance(item, str) and ":" in item:
                out[name] = f"{item.split(':', 1)[0]}: {ENCRYPTED}"
                secrets.append(([*here, name], item))
            elif isinstance(item, dict | list):
                out[name] = _split(item, (*here, name), secrets)
            else:
                out[name] = item
        return out
    if isinstance(event, list):
        return [
            _split(item, (*here, index), secrets) if isinstance(item, dict | list) else item
            for index, item in enumerate(event)
        ]
    return event


def merge(redacted: Any, secrets: list[Secret]) -> Any:
    """Return `redacted` with each secret put back at its path (the inverse of `split`)."""
    out = copy.deepcopy(redacted)
    for path, value in secrets:
        if not path:
            return value
        target = out
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return out


def erased(redacted: Any) -> Any:
    """Return `redacted` with every `[encrypted]` placeholder shown as `[erased]`."""
    if isinstance(redacted, dict):
        return {name: erased(item) for name, item in redacted.items()}
    if isinstance(redacted, list):
        return [erased(item) for item in redacted]
    if redacted == ENCRYPTED:
        return ERASED
    if isinstance(redacted, str) and redacted.endswith(f": {ENCRYPTED}"):
        return redacted[: -len(ENCRYPTED)] + ERASED
    return redacted


def _aad(event_id: str, key_id: str) -> bytes:
    return f"{event_id}\x00{key_id}".encode()


def seal(data_key: bytes, event_id: str, key_id: str, secrets: list[Secret]) -> dict[str, str]:
    """Return the `personal` object: the secrets sealed under `data_key` for this event."""
    nonce = os.urandom(NONCE_BYTES)
    plain = orjson.dumps([[path, value] for path, value in secrets])
    sealed = AESGCM(data_key).encrypt(nonce, plain, _aad(event_id, key_id))
    return {
        "key_id": key_id,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }


def open_sealed(data_key: bytes, event_id: str, personal: Mapping[str, Any]) -> list[Secret]:
    """Return the secrets of a `personal` object; raise `InvalidTag` if it is not this event's."""
    nonce = base64.b64decode(str(personal.get("nonce", "")))
    sealed = base64.b64decode(str(personal.get("ciphertext", "")))
    plain = AESGCM(data_key).decrypt(nonce, sealed, _aad(event_id, str(personal.get("key_id"))))
    return [(list(path), value) for path, value in orjson.loads(plain)]


def protect(event: dict[str, Any], key_id: str, data_key: bytes) -> dict[str, Any] | None:
    """Return the stored form of `event` (redacted + sealed), or None when it holds no secrets."""
    redacted, secrets = split(event)
    if not secrets:
        return None
    return sealed(redacted, secrets, str(event.get("event_id")), key_id, data_key)


def sealed(
    redacted: dict[str, Any], secrets: list[Secret], event_id: str, key_id: str, data_key: bytes
) -> dict[str, Any]:
    """Return the stored form of an event already `split` (the archive splits each event once)."""
    return {**redacted, PERSONAL: seal(data_key, event_id, key_id, secrets)}


def key_id_of(event: Mapping[str, Any]) -> str | None:
    """Return the data key id a stored event was sealed under, if any."""
    personal = event.get(PERSONAL)
    key_id = personal.get("key_id") if isinstance(personal, Mapping) else None
    return key_id if isinstance(key_id, str) else None


def reveal(event: dict[str, Any], data_key: bytes | None) -> dict[str, Any]:
    """Return a stored event in clear (its data key given) or with `[erased]` values (None).

    An event without a `personal` object is returned as it is. A ciphertext that does not open
    (tampered, or moved from another event) reads as erased: `verify` reports the tampering.
    """
    personal = event.get(PERSONAL)
    if not isinstance(personal, Mapping):
        return event
    redacted = {name: item for name, item in event.items() if name != PERSONAL}
    if data_key is None:
        return dict(erased(redacted))
    try:
        secrets = open_sealed(data_key, str(event.get("event_id")), personal)
    except Exception:
        return dict(erased(redacted))
    return dict(merge(redacted, secrets))
