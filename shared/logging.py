"""structlog set-up: JSON lines when not on a TTY, and personal data scrubbed before rendering.

On a terminal, or under `make run` (which sets `SADA_LOG_JSON=false` and `FORCE_COLOR=1`), lines
are rendered by structlog's console renderer, coloured unless `NO_COLOR` is set: the common
conventions, so no extra setting. Every library logger (FastStream, aiokafka, uvicorn) goes
through the same root handler and therefore looks the same as Sada's own lines.

The scrubber is the last line of defence, not the first: handlers bind ids, channels and
reason codes only. It drops keys that name personal data and masks e-mail addresses, phone
and id numbers in any string value, so a careless `log.info(..., text=body)` leaks nothing.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
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


def use_colors(environ: Mapping[str, str], *, tty: bool) -> bool:
    """Return whether console lines are coloured: `NO_COLOR`, else `FORCE_COLOR`, else a TTY."""
    if environ.get("NO_COLOR"):
        return False
    return bool(environ.get("FORCE_COLOR")) or tty


def configure(service: str, *, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and the standard library (FastStream, aiokafka, uvicorn) alike."""
    tty = sys.stderr.isatty()
    as_json = (not tty) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_personal_data,
    ]
    renderer: Any = (
        _render_json
        if as_json
        else structlog.dev.ConsoleRenderer(colors=use_colors(os.environ, tty=tty))
    )
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
    # FastStream gives its "faststream" logger a handler of its own and stops propagation, so its
    # lines (consumer assignments among them) would skip this format, JSON included.
    faststream = logging.getLogger("faststream")
    faststream.handlers.clear()
    faststream.propagate = True
    root.setLevel(level.upper())
    # The Kafka client logs every reconnect attempt; one line per outage is enough for us.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a bound structlog logger named for its module."""
    return structlog.stdlib.get_logger(name)
