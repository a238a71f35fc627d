"""structlog set-up: JSON lines when not on a TTY, and personal data scrubbed before rendering.

The scrubber is the last line of defence, not the first: handlers bind ids, channels and
reason codes only. It drops keys that name personal data and masks e-mail addresses, phone
and id numbers in any string value, so a careless `log.info(..., text=body)` leaks nothing.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

PERSONAL_KEYS = frozenset(
    {"name", "email", "phone", "national_id", "submitter", "body", "subject", "answers"}
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS = re.compile(r"\+?(?:\d[\s-]?){8,}\d")
_SAFE_KEYS = frozenset({"timestamp", "level", "logger", "service", "submission_id", "event_id"})


def scrub_text(text: str) -> str:
    """Mask e-mail addresses and runs of 9+ digits (phones, national ids) in `text`."""
    return _DIGITS.sub("[number]", _EMAIL.sub("[email]", text))


def scrub_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop personal keys, mask personal patterns in string values."""
    for key in list(event_dict):
        if key in PERSONAL_KEYS:
            event_dict[key] = "[redacted]"
            continue
        value = event_dict[key]
        if key in _SAFE_KEYS:
            continue
        if isinstance(value, str) and ("@" in value or any(c.isdigit() for c in value)):
            event_dict[key] = scrub_text(value)
    return event_dict


def _render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def configure(service: str, *, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and the standard library (FastStream, aiokafka, uvicorn) alike."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_personal_data,
    ]
    renderer: Any = _render_json if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka client logs every reconnect attempt; one line per outage is enough for us.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a bound structlog logger named for its module."""
    return structlog.stdlib.get_logger(name)
