"""What counts as personal data in an archived event, and the redacted form served without scope.

Personal data here is anything that identifies the submitter or may, because a person wrote it
freely: the `submitter` object (name, e-mail, phone, national id), the free text (`subject`,
`body`, questionnaire `answer`s: people sign their messages and leave their numbers), attachment
`filename`s and `url`s (files are often named after people), and raw bytes (`raw`, and a raw
record's `key`), which contain all of the above as sent. A dead letter's `error` is
`Type: message`, and a message (a validation error's, say) may quote the input: only its type
is kept. Identifiers, statuses, channels, kinds,
units, routing decisions, reasons and hashes are not personal data and stay.

Fields are matched by name anywhere in the event, so a future event type that carries a
submission is redacted without a change here. A redacted value becomes `"[redacted]"`; absent or
null values stay as they are (whether a submission was anonymous is not personal data).
"""

from __future__ import annotations

from typing import Any, Final

REDACTED: Final = "[redacted]"

PERSONAL_FIELDS: Final = frozenset(
    {"submitter", "subject", "body", "answer", "filename", "url", "raw", "key"}
)
"""Names of the fields whose values are personal data (or may be), wherever they appear."""

ERROR_FIELDS: Final = frozenset({"error"})
"""Names of `Type: message` fields whose message may quote personal data; the type is kept."""


def redact(value: Any) -> tuple[Any, bool]:
    """Return `value` with every personal field replaced, and whether anything was replaced."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name in PERSONAL_FIELDS and item is not None and item not in ("", [], {}):
                out[name], changed = REDACTED, True
            elif name in ERROR_FIELDS and isinstance(item, str) and ":" in item:
                out[name], changed = f"{item.split(':', 1)[0]}: {REDACTED}", True
            else:
                out[name], inner = redact(item)
                changed = changed or inner
        return out, changed
    if isinstance(value, list):
        items = [redact(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False
