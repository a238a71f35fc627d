"""`sada audit …`: operator commands over the archive."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import orjson
import pymongo
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.archive import audit, checkpoints, log_audit
from services.archive.chain import Break
from services.archive.log_audit import LogSummary, Problem, ProofError
from services.archive.partition_log import MongoLogStore
from services.archive.settings import ArchiveSettings
from services.archive.store import MongoArchiveStore
from shared.mongo import make_client

app = typer.Typer(help="Audit the archive.", no_args_is_help=True)


@app.callback()
def audit_group() -> None:
    """Audit the archive: verify its hash chains and partition logs, prove inclusion."""


@app.command()
def verify(
    submission: Annotated[
        str | None, typer.Option("--submission", help="Verify only this submission's chain.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per break.")] = False,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help="Also check the partition logs against the signed checkpoints in this "
            "witness directory: deletion, truncation, reordering, rewriting.",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The checkpoints' verify key (PEM); default SADA_AUDIT_LOG__VERIFY_KEY_FILE, "
            "else <checkpoints>/verify.pem.",
        ),
    ] = None,
) -> None:
    """Recompute the hash chains and report every broken link; exit 1 if any."""
    settings = ArchiveSettings()
    key = None
    if checkpoint_dir is not None:
        key = checkpoints.load_verify_key(_verify_key(settings, checkpoint_dir, public_key))
    raise typer.Exit(
        asyncio.run(_verify(settings, submission, as_json=as_json, logs=(checkpoint_dir, key)))
    )


def _verify_key(settings: ArchiveSettings, directory: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    if settings.audit_log.verify_key_file is not None:
        return settings.audit_log.verify_key_file
    return directory / checkpoints.VERIFY_FILE


async def _verify(
    settings: ArchiveSettings,
    submission: str | None,
    *,
    as_json: bool,
    logs: tuple[Path | None, Ed25519PublicKey | None] = (None, None),
) -> int:
    client = make_client(settings.mongo, app_name="audit-cli")
    store = MongoArchiveStore(client, settings.mongo.database)
    log_summary: LogSummary | None = None
    try:
        if submission is not None:
            report = await audit.verify_submission(store, submission)
            if report is None:
                typer.echo(f"no such submission: {submission}", err=True)
                return 2
            chains, events, breaks = 1, report.events, report.breaks
        else:
            summary = await audit.verify_all(store, time_limit=settings.verify_timeout_seconds)
            chains, events, breaks = summary.chains, summary.events, summary.breaks
        directory, key = logs
        if directory is not None and key is not None:
            signed, refused = log_audit.load_checkpoints(directory, key)
            with pymongo.timeout(settings.verify_timeout_seconds):
                log_summary = await log_audit.verify_logs(
                    MongoLogStore(client, settings.mongo.database), signed, refused
                )
    finally:
        await client.close()
    for found in breaks:
        typer.echo(_json(found) if as_json else _line(found))
    verdict = f"{len(breaks)} broken link(s)" if breaks else "all chains intact"
    typer.echo(f"verified {chains} chain(s), {events} event(s): {verdict}", err=as_json)
    if log_summary is None:
        return 1 if breaks else 0
    for problem in log_summary.problems:
        typer.echo(_problem_json(problem) if as_json else _problem_line(problem))
    problems = len(log_summary.problems)
    verdict = f"{problems} problem(s)" if problems else "every log matches its checkpoints"
    typer.echo(
        f"verified {log_summary.logs} partition log(s), {log_summary.leaves} leaf(s) against "
        f"{log_summary.checkpoints} signed checkpoint(s) ({log_summary.unlogged} event(s) "
        f"outside the logged ranges): {verdict}",
        err=as_json,
    )
    return 1 if breaks or problems else 0


@app.command()
def prove(
    ref: Annotated[str, typer.Argument(help="The submission's reference or id.")],
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints", help="The witness directory (default SADA_AUDIT_LOG__CHECKPOINT_DIR)."
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="Use only checkpoints this key signed (PEM)."),
    ] = None,
) -> None:
    """Print (JSON) an inclusion proof of every event of one submission in its signed log."""
    settings = ArchiveSettings()
    directory = checkpoint_dir or settings.audit_log.checkpoint_dir
    if directory is None:
        typer.echo("no witness directory: give --checkpoints DIR", err=True)
        raise typer.Exit(2)
    key = checkpoints.load_verify_key(_verify_key(settings, directory, public_key))
    signed, _ = log_audit.load_checkpoints(directory, key)
    raise typer.Exit(asyncio.run(_prove(settings, ref, signed)))


async def _prove(
    settings: ArchiveSettings, ref: str, signed: dict[str, list[checkpoints.Checkpoint]]
) -> int:
    client = make_client(settings.mongo, app_name="audit-cli")
    try:
        proof = await log_audit.prove(
            MongoArchiveStore(client, settings.mongo.database),
            MongoLogStore(client, settings.mongo.database),
            ref,
            signed,
        )
    except ProofError as exc:
        typer.echo(str(exc), err=True)
        return 2
    finally:
        await client.close()
    typer.echo(orjson.dumps(proof, option=orjson.OPT_INDENT_2).decode())
    return 0


@app.command("check-proof")
def check_proof(
    proof_file: Annotated[Path, typer.Argument(help="The JSON `sada audit prove` printed.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The checkpoints' verify key (PEM).")
    ],
) -> None:
    """Check a proof offline (no database): signature, event hash, leaf, path to the root."""
    key = checkpoints.load_verify_key(public_key)
    try:
        proof = orjson.loads(proof_file.read_bytes())
    except orjson.JSONDecodeError as exc:
        typer.echo(f"FAILED: the proof is not JSON: {exc}", err=True)
        raise typer.Exit(1) from None
    failures = (
        log_audit.check_proof(proof, key)
        if isinstance(proof, dict)
        else ["the proof is not a JSON object"]
    )
    for failure in failures:
        typer.echo(f"FAILED: {failure}")
    if failures:
        raise typer.Exit(1)
    count = len(proof["events"])
    typer.echo(f"proof holds: {count} event(s) of submission {proof.get('submission_id')}")


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Directory for signing.pem and verify.pem.")],
) -> None:
    """Write a new Ed25519 checkpoint key pair: signing.pem (0600) and verify.pem."""
    try:
        signing, verifying = checkpoints.generate(out)
    except FileExistsError:
        typer.echo(f"{out / checkpoints.SIGNING_FILE} exists: not overwritten", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {signing} (keep it secret) and {verifying}")


def _problem_line(problem: Problem) -> str:
    return f"{problem.kind.value} log={problem.log}: {problem.detail}"


def _problem_json(problem: Problem) -> str:
    return orjson.dumps(
        {"kind": problem.kind.value, "log": problem.log, "detail": problem.detail}
    ).decode()


def _line(found: Break) -> str:
    event = f" event={found.event_id}" if found.event_id else ""
    return (
        f"BROKEN submission={found.submission_id} seq={found.seq} kind={found.kind.value}"
        f"{event}: {found.detail}"
    )


def _json(found: Break) -> str:
    return orjson.dumps(
        {
            "submission_id": found.submission_id,
            "seq": found.seq,
            "kind": found.kind.value,
            "event_id": found.event_id,
            "detail": found.detail,
        }
    ).decode()
