"""Deterministic identities: submission ids, human references and event ids.

Every id is derived, never random, so a replay or a redelivery produces the same id and the
archive and the notifier can treat it as a repeat.
"""

import hashlib
import uuid
from typing import Final

SUBMISSION_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:submission")
EVENT_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:event")

# Crockford's base32: no I, L, O or U, so a code read over the phone is not misheard.
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def submission_id(channel: str, channel_ref: str | None, content_digest: str) -> str:
    """Return the UUIDv5 of `channel` + `channel_ref`, or of the content when there is no ref."""
    name = f"ref:{channel}\x1f{channel_ref}" if channel_ref else f"content:{content_digest}"
    return str(uuid.uuid5(SUBMISSION_NAMESPACE, name))


def reference(submission_id: str) -> str:
    """Return the short human code of a submission id, e.g. `SADA-7K3M-Q9XD` (40 bits)."""
    bits = int.from_bytes(uuid.UUID(submission_id).bytes[:5], "big")
    chars = "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(35, -1, -5))
    return f"SADA-{chars[:4]}-{chars[4:]}"


def event_id(submission_id: str, event_type: str, discriminator: str = "") -> str:
    """Return the UUIDv5 of submission id + event type + discriminator (DESIGN.md, envelope)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{submission_id}\x1f{event_type}\x1f{discriminator}"))


def position_id(topic: str, partition: int, offset: int) -> str:
    """Return a stable id for a Kafka position, for messages whose submission is unknown."""
    return str(uuid.uuid5(SUBMISSION_NAMESPACE, f"position:{topic}:{partition}:{offset}"))


def digest(data: bytes) -> str:
    """Return the SHA-256 hex digest of `data`; used as a content discriminator."""
    return hashlib.sha256(data).hexdigest()
