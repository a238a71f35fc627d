"""`sada route …`: explain a decision, check a rule file, dry-run a rule change.

Every command reads input an operator may have got wrong, so each answers with a clear message
and an exit code, never a traceback: 0 done, 1 invalid input or config, 2 unusable arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError

from services.router import config as rules_config
from services.router.rules import RoutingConfig, decide
from shared.cli_io import fail, read_input
from shared.config import ConfigError
from shared.directory import Channel, load_channels
from shared.events import SubmissionAccepted, SubmissionRouted
from shared.models import Reason, Submission

app = typer.Typer(
    help="Routing: explain a decision, check a rule file, dry-run a rule change.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RulesOption = Annotated[
    Path, typer.Option("--rules", help="Rule file (routing.yaml).", dir_okay=False)
]
UnitsOption = Annotated[
    Path, typer.Option("--units", help="Units file (units.yaml).", dir_okay=False)
]
ChannelsOption = Annotated[
    Path, typer.Option("--channels", help="Channels file (channels.yaml).", dir_okay=False)
]


EVENTS_WITH_SUBMISSION: dict[str, type[SubmissionAccepted | SubmissionRouted]] = {
    "submission.accepted": SubmissionAccepted,
    "submission.routed": SubmissionRouted,
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input that is not a valid submission, with every reason found."""

    reasons: tuple[Reason, ...]
    submission_id: str | None = None
    reference: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the rejection shaped like intake's HTTP 422 answer (ids only when known)."""
        ids = {"submission_id": self.submission_id, "reference": self.reference}
        return {
            "rejected": True,
            **{key: value for key, value in ids.items() if value is not None},
            "reasons": [reason.model_dump() for reason in self.reasons],
        }


def submission_from(raw: bytes, *, channels: dict[str, Channel]) -> Submission | Rejection:
    """Return the submission in `raw`, or why it is not one.

    `raw` may be an event carrying a submission (it has `event_type`), an accepted submission
    (it has `submission_id`), or a raw channel submission, validated exactly as intake does.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None  # intake's validation reports it as `invalid_json`
    if isinstance(data, dict) and "event_type" in data:
        event_type = data["event_type"]
        event_class = (
            EVENTS_WITH_SUBMISSION.get(event_type) if isinstance(event_type, str) else None
        )
        if event_class is None:
            message = "only submission.accepted and submission.routed events carry a submission"
            return Rejection((Reason(code="no_submission", field="event_type", message=message),))
        try:
            return event_class.model_validate(data).payload.submission
        except ValidationError as exc:
            return _rejection(exc, "invalid_event")
    if isinstance(data, dict) and "submission_id" in data:
        try:
            return Submission.model_validate(data)
        except ValidationError as exc:
            return _rejection(exc, "invalid_submission")
    from services.intake.validation import Rejected, validate  # the one door's own rules

    outcome = validate(raw, channels=channels, now=datetime.now(UTC))
    if isinstance(outcome, Rejected):
        return Rejection(tuple(outcome.reasons), outcome.submission_id, outcome.reference)
    return outcome.submission


def _rejection(exc: ValidationError, code: str) -> Rejection:
    """Turn pydantic errors into reasons; messages never quote the input (personal data)."""
    reasons = tuple(
        Reason(
            code="missing_field" if error["type"] == "missing" else code,
            field=".".join(str(part) for part in error["loc"]) or None,
            message=error["msg"],
        )
        for error in exc.errors()
    )
    return Rejection(reasons)


def _echo_json(data: object, *, indent: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    typer.echo(orjson.dumps(data, option=option).decode())


def _load(rules: Path, units: Path, channels: Path) -> RoutingConfig:
    try:
        return rules_config.load(rules, units_path=units, channels_path=channels)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}", 1)


def _channels(path: Path) -> dict[str, Channel]:
    try:
        return load_channels(path)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}", 1)


def decision_json(submission: Submission, config: RoutingConfig) -> dict[str, Any]:
    """Return the decision for `submission` as `sada route explain` prints it."""
    decision = decide(submission, config)
    return {
        "unit": decision.unit,
        "mailbox": decision.mailbox,
        "rule_id": decision.rule_id,
        "reason": decision.reason,
        "matched": [match.model_dump() for match in decision.matched],
        "rules_version": decision.rules_version,
    }


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="Submission or event JSON file; - for stdin.")],
    rules: RulesOption = rules_config.RULES_PATH,
    units: UnitsOption = rules_config.UNITS_PATH,
    channels: ChannelsOption = rules_config.CHANNELS_PATH,
) -> None:
    """Print where a submission goes and why; a raw one is first validated as intake does.

    Exit 0 with `{unit, mailbox, rule_id, reason, matched, rules_version}`; exit 1 with the
    rejection (`{"rejected": true, …, "reasons": [...]}`, as intake's HTTP door answers) when
    the input is not a valid submission.
    """
    config = _load(rules, units, channels)
    outcome = submission_from(read_input(file), channels=_channels(channels))
    if isinstance(outcome, Rejection):
        _echo_json(outcome.as_json(), indent=True)
        raise typer.Exit(1)
    _echo_json(decision_json(outcome, config), indent=True)


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="Rule file to check.", dir_okay=False)],
    units: UnitsOption = rules_config.UNITS_PATH,
    channels: ChannelsOption = rules_config.CHANNELS_PATH,
) -> None:
    """Validate a rule file against the units and channels; exit 1 with `file:line: problem`."""
    config = _load(file, units, channels)
    typer.echo(
        f"ok: {file}: {len(config.rules)} rules, {len(config.keywords)} keywords, "
        f"rules_version {config.version}"
    )


@app.command()
def replay(
    file: Annotated[str, typer.Argument(help="JSON lines of submissions or events; - for stdin.")],
    rules: Annotated[Path, typer.Option("--rules", help="The proposed rule file.", dir_okay=False)],
    current: Annotated[
        Path, typer.Option("--current", help="The rule file in force.", dir_okay=False)
    ] = rules_config.RULES_PATH,
    units: UnitsOption = rules_config.UNITS_PATH,
    channels: ChannelsOption = rules_config.CHANNELS_PATH,
) -> None:
    """Dry-run a rule change: print each submission whose unit would change, and why.

    One JSON line per change (`line`, `submission_id`, `reference`, `from`, `to`), then a
    `{"summary": …}` line. Invalid lines are reported on stderr by reason code and counted.
    """
    before = _load(current, units, channels)
    after = _load(rules, units, channels)
    known = _channels(channels)
    counts = {"submissions": 0, "unit_changed": 0, "rule_changed_same_unit": 0, "invalid": 0}
    for number, raw in _lines(read_input(file)):
        outcome = submission_from(raw, channels=known)
        if isinstance(outcome, Rejection):
            counts["invalid"] += 1
            codes = ", ".join(
                f"{r.code}({r.field})" if r.field else r.code for r in outcome.reasons
            )
            typer.echo(f"line {number}: not a valid submission: {codes}", err=True)
            continue
        counts["submissions"] += 1
        old, new = decide(outcome, before), decide(outcome, after)
        if old.unit != new.unit:
            counts["unit_changed"] += 1
            _echo_json(
                {
                    "line": number,
                    "submission_id": outcome.submission_id,
                    "reference": outcome.reference,
                    "from": {"unit": old.unit, "rule_id": old.rule_id, "reason": old.reason},
                    "to": {"unit": new.unit, "rule_id": new.rule_id, "reason": new.reason},
                }
            )
        elif old.rule_id != new.rule_id:
            counts["rule_changed_same_unit"] += 1
    summary = {**counts, "current_version": before.version, "new_version": after.version}
    _echo_json({"summary": summary})


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield number, line
