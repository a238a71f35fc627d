"""`sada deadletter list | show ID | redrive`: find dead letters and send them back.

Reads `feedback.deadletter.v1` from start to end without a consumer group (nothing is
committed, no service's offsets move) and filters as it streams. `redrive` re-publishes each
selected message to its source topic — the original record with its key and headers when
Kafka still holds it, else the dead letter's own copy when that is complete — and records
every copy as a `message.redriven` event on the dead-letter topic, which the archive keeps on
the dead letter's chain. Without `--yes` it only says what it would do.

Kafka is reached as the services reach it (`SADA_KAFKA__BOOTSTRAP_SERVERS`, SASL settings).
Exit codes: 0 done; 1 not found, a topic missing, or a dead letter that cannot be redriven;
2 unusable arguments. aiokafka is imported only when a command runs, so `sada` starts fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from shared import topics
from shared.cli_io import fail

if TYPE_CHECKING:
    from shared.deadletter_kafka import Kafka
    from shared.deadletters import Selection
    from shared.events import MessageDeadLettered
    from shared.settings import KafkaSettings

app = typer.Typer(
    help="Dead letters: list them, show one whole, redrive them to their source topic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

TopicOption = Annotated[
    str | None, typer.Option("--topic", help="Only dead letters read from this source topic.")
]
ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="Only this error class (e.g. ValidationError) or errors containing this text.",
    ),
]
ServiceOption = Annotated[
    str | None, typer.Option("--service", help="Only those given up by this service.")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only from this moment: ISO 8601 (UTC if no offset) or 30m/2h/7d."
    ),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only before this moment (same forms as --since).")
]
FromOption = Annotated[
    str, typer.Option("--deadletter-topic", help="The dead-letter topic to read.")
]


def _kafka() -> KafkaSettings:
    from pydantic import ValidationError

    from shared.settings import ServiceSettings

    try:
        return ServiceSettings().kafka
    except ValidationError as exc:
        fail(f"invalid configuration: {exc}", 1)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; turn Kafka and topic failures into a one-line message and exit 1."""
    from aiokafka.errors import KafkaError

    from shared.deadletter_kafka import StalledError, TopicMissingError

    try:
        return asyncio.run(work)
    except TopicMissingError as exc:
        fail(f"no such topic: {exc}", 1)
    except (KafkaError, StalledError, OSError) as exc:
        fail(f"Kafka: {type(exc).__name__}: {exc}", 1)


def _selection(
    ids: list[str] | None,
    topic: str | None,
    reason: str | None,
    service: str | None,
    since: str | None,
    until: str | None,
) -> Selection:
    from shared.deadletters import BadTimeError, Selection, parse_moment

    now = datetime.now(UTC)
    try:
        return Selection(
            ids=frozenset(ids or ()),
            topic=topic,
            reason=reason,
            service=service,
            since=parse_moment(since, now=now) if since else None,
            until=parse_moment(until, now=now) if until else None,
        )
    except BadTimeError as exc:
        fail(str(exc), 2)


@app.command("list")
def list_(
    topic: TopicOption = None,
    reason: ReasonOption = None,
    service: ServiceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Whole events (raw bytes included), one JSON per line."),
    ] = False,
    deadletter_topic: FromOption = topics.DEADLETTER,
) -> None:
    """List dead letters: id, time, service, source position and error.

    The table leaves out the raw bytes (they may hold personal data);
    --json prints each event whole instead, one per line.

    Example: sada deadletter list --topic feedback.routed.v1 --since 2h
    """
    from shared import deadletter_kafka as kafka
    from shared.deadletters import HEADER, row
    from shared.events import MessageDeadLettered

    selection = _selection(None, topic, reason, service, since, until)

    async def work() -> tuple[int, int]:
        read = matched = 0
        async with aclosing(
            kafka.scan(_kafka(), deadletter_topic, since=selection.since)
        ) as records:
            async for _position, event in records:
                read += 1
                if not isinstance(event, MessageDeadLettered) or not selection.matches(event):
                    continue
                if matched == 0 and not as_json:
                    typer.echo(HEADER)
                matched += 1
                typer.echo(event.model_dump_json() if as_json else row(event))
        return read, matched

    read, matched = _run(work())
    typer.echo(f"{matched} dead letter(s) matched, {read} record(s) read", err=True)


@app.command()
def show(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's event id.")],
    deadletter_topic: FromOption = topics.DEADLETTER,
) -> None:
    """Print one dead letter whole (raw bytes included) as JSON, with its redrives."""
    import orjson

    from shared import deadletter_kafka as kafka
    from shared.deadletters import shown
    from shared.events import MessageDeadLettered, MessageRedriven, SourcePosition

    async def work() -> tuple[MessageDeadLettered, SourcePosition, list[MessageRedriven]] | None:
        found: tuple[MessageDeadLettered, SourcePosition] | None = None
        redrives: list[MessageRedriven] = []
        async with aclosing(kafka.scan(_kafka(), deadletter_topic)) as records:
            async for position, event in records:
                if isinstance(event, MessageDeadLettered) and event.event_id == event_id:
                    found = (event, position)
                elif (
                    isinstance(event, MessageRedriven)
                    and event.payload.deadletter_event_id == event_id
                ):
                    redrives.append(event)
        return None if found is None else (*found, redrives)

    result = _run(work())
    if result is None:
        fail(f"no dead letter {event_id} in {deadletter_topic}", 1)
    document = shown(*result)
    typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


@app.command()
def redrive(
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Dead letter event ids.")
    ] = None,
    topic: TopicOption = None,
    reason: ReasonOption = None,
    service: ServiceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Re-publish for real; without it, a dry run.")
    ] = False,
    again: Annotated[
        bool,
        typer.Option("--again", help="Also redrive dead letters that were redriven before."),
    ] = False,
    deadletter_topic: FromOption = topics.DEADLETTER,
) -> None:
    """Re-publish selected dead letters to their source topic; a dry run unless --yes.

    Select by IDs and/or the filters of `list` (at least one). Each copy
    is recorded as a `message.redriven` event on the dead-letter topic,
    which the archive keeps. A dead letter redriven before is skipped
    unless --again. Safe to repeat: every service's effects are idempotent
    on content-derived ids (docs/operations.md, "Dead letters").

    Example: sada deadletter redrive --topic feedback.routed.v1 --since 2h
    """
    selection = _selection(ids, topic, reason, service, since, until)
    if selection.empty:
        fail("say which dead letters: IDs, or at least one of --topic/--reason/--service/"
             "--since/--until", 2)  # fmt: skip
    done, skipped, lost, missing = _run(
        _redrive(_kafka(), deadletter_topic, selection, yes=yes, again=again)
    )
    for event_id in sorted(missing):
        typer.echo(f"no dead letter {event_id} in {deadletter_topic}", err=True)
    verb = "redriven" if yes else "would be redriven (dry run: add --yes to re-publish)"
    typer.echo(
        f"{done} {verb}, {skipped} skipped (redriven before), {lost} cannot be redriven", err=True
    )
    if lost or missing:
        raise typer.Exit(1)


async def _redrive(
    settings: KafkaSettings, deadletter_topic: str, selection: Selection, *, yes: bool, again: bool
) -> tuple[int, int, int, set[str]]:
    """Redrive (or, without `yes`, describe) every selected dead letter.

    Returns how many were (or would be) redriven, skipped as redriven before, and could not be
    redriven, and the ids asked for that were not found.
    """
    from shared import deadletter_kafka as kafka
    from shared.events import MessageDeadLettered

    before = await _redriven_before(settings, deadletter_topic)
    done = skipped = lost = 0
    missing = set(selection.ids)
    async with (
        kafka.connect(settings) as client,
        aclosing(kafka.scan(settings, deadletter_topic, since=selection.since)) as records,
    ):
        async for _position, event in records:
            if not isinstance(event, MessageDeadLettered) or not selection.matches(event):
                continue
            missing.discard(event.event_id)
            if event.event_id in before and not again:
                skipped += 1
                typer.echo(f"skip {event.event_id}: redriven {before[event.event_id]}x before")
            elif await _redrive_one(client, event, deadletter_topic, yes=yes):
                done += 1
            else:
                lost += 1
    return done, skipped, lost, missing


async def _redriven_before(settings: KafkaSettings, deadletter_topic: str) -> dict[str, int]:
    """Return how many times each dead letter was redriven (ids only: small, whatever the topic)."""
    from shared import deadletter_kafka as kafka
    from shared.events import MessageRedriven

    before: dict[str, int] = {}
    async with aclosing(kafka.scan(settings, deadletter_topic)) as records:
        async for _position, event in records:
            if isinstance(event, MessageRedriven):
                key = event.payload.deadletter_event_id
                before[key] = before.get(key, 0) + 1
    return before


async def _redrive_one(
    client: Kafka, letter: MessageDeadLettered, deadletter_topic: str, *, yes: bool
) -> bool:
    """Re-publish one dead letter's original and record it (or say it would); False if lost."""
    from shared import version
    from shared.deadletters import from_dead_letter, redriven_event
    from shared.events import Producer

    source = letter.payload.source
    where = f"{source.topic}:{source.partition}:{source.offset}"
    original = await client.original(source) or from_dead_letter(letter)
    if original is None:
        typer.echo(
            f"cannot redrive {letter.event_id} ({where}): the record is gone from "
            f"{source.topic} and the dead letter's copy is truncated or lossy"
        )
        return False
    origin = "record" if original.origin == "source" else "dead letter's copy"
    size = f"{len(original.value)} bytes: the {origin}"
    if not yes:
        typer.echo(f"would redrive {letter.event_id}: {where} -> {source.topic} ({size})")
        return True
    target = await client.publish(
        source.topic, original.value, key=original.key, headers=original.headers
    )
    copied = f"{target.topic}:{target.partition}:{target.offset}"
    producer = Producer(service="deadletter-cli", version=version.current())
    audit = redriven_event(letter, original, target, producer)
    try:
        await client.publish(
            deadletter_topic,
            audit.model_dump_json().encode(),
            key=audit.submission_id.encode(),
            headers=[("content-type", b"application/json")],
        )
    except Exception:
        # The copy is out but unrecorded: say where, so the audit gap can be explained.
        typer.echo(f"redriven {letter.event_id} to {copied}, but not recorded:", err=True)
        raise
    typer.echo(f"redriven {letter.event_id}: {where} -> {copied} ({size})")
    return True
