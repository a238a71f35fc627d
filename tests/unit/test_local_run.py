"""`make run` for a person: restarts with backoff, and coloured console lines for every logger."""

from __future__ import annotations

import io
import json
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.local.run import audit_env
from deploy.local.supervise import FIRST_DELAY, MAX_DELAY, STABLE_AFTER, describe, next_delay
from services.archive import checkpoints
from shared import logging as sada_logging


def test_restart_delay_doubles_up_to_a_ceiling_while_the_process_keeps_crashing() -> None:
    delays = [FIRST_DELAY]
    for _ in range(8):
        delays.append(next_delay(delays[-1], ran_for=0.5))
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == MAX_DELAY
    assert delays[-1] == MAX_DELAY


def test_restart_delay_starts_over_after_a_run_that_lasted() -> None:
    assert next_delay(MAX_DELAY, ran_for=STABLE_AFTER) == FIRST_DELAY
    assert next_delay(0.0, ran_for=0.1) == FIRST_DELAY  # the very first restart


def test_restart_line_names_the_signal_or_the_exit_code() -> None:
    assert describe(-signal.SIGKILL) == "SIGKILL"
    assert describe(3) == "exit 3"


@pytest.mark.parametrize(
    ("environ", "tty", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
    ],
)
def test_colours_follow_no_color_then_force_color_then_the_terminal(
    environ: dict[str, str], tty: bool, expected: bool
) -> None:
    assert sada_logging.use_colors(environ, tty=tty) is expected


@pytest.fixture
def rendered() -> Iterator[Callable[[bool], io.StringIO]]:
    """Configure Sada's logging (JSON or console) into a buffer; restore the root logger after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def configure(as_json: bool) -> io.StringIO:
        sada_logging.configure("router", level="INFO", json=as_json)
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        return stream

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_console_mode_renders_library_loggers_like_sada_s_own_lines(
    monkeypatch: pytest.MonkeyPatch, rendered: Callable[[bool], io.StringIO]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    stream = rendered(False)
    logging.getLogger("aiokafka.consumer").warning("heartbeat failed for group %s", "g1")
    logging.getLogger("faststream.sada").error("handler failed")
    logging.getLogger("faststream").info("Consumer m-1 assigned to partitions: (p0)")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "\x1b[" in line  # coloured
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert "heartbeat failed for group g1" in lines[0]
    assert "aiokafka.consumer" in lines[0]
    assert "handler failed" in lines[1]
    assert "assigned to partitions" in lines[2]


def test_json_mode_takes_faststream_s_own_logger_too(
    rendered: Callable[[bool], io.StringIO],
) -> None:
    import faststream  # noqa: F401 - importing it installs FastStream's own handler

    stream = rendered(True)
    logging.getLogger("faststream").info("Consumer m-1 assigned to partitions: (p0)")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == [
        "Consumer m-1 assigned to partitions: (p0)"
    ]


def test_make_run_makes_a_dev_signing_key_once_and_points_the_archive_at_it(
    tmp_path: Path,
) -> None:
    env = audit_env(tmp_path)
    signing = Path(env["SADA_AUDIT_LOG__SIGNING_KEY_FILE"])
    key = checkpoints.load_signing_key(signing).public_key().public_bytes_raw()
    assert audit_env(tmp_path) == env  # a second run keeps the key
    assert checkpoints.load_signing_key(signing).public_key().public_bytes_raw() == key
    witness = Path(env["SADA_AUDIT_LOG__CHECKPOINT_DIR"])
    assert checkpoints.load_verify_key(witness / "verify.pem").public_bytes_raw() == key
