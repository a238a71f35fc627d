"""Generate the contract documents for upstream channels and auditors, from the code.

- `docs/asyncapi.yaml`: the Kafka contract (every topic, payload, key and header), from the
  event models (`shared/contract.py`);
- `docs/openapi-intake.json`: intake's HTTP door, `POST /v1/submissions`;
- `docs/openapi-archive.json`: the archive's read API.

Two OpenAPI files, not one: each is exactly what its service serves at `/openapi.json` (and
renders at `/docs`), for a different audience (channels; auditors) with a different key (a
channel's API key; an archive token), on a different host. One merged file would describe no
real server, and both services' `/health` and `/metrics` would collide in it.

The apps are built from the local defaults (`SADA_` variables of the caller ignored) and never
started: no Kafka, MongoDB or SMTP is needed. The output is deterministic (sorted keys, no
timestamps); a unit test fails when a committed file is stale. New events, topics and routes
appear after a re-run with no change here.
Usage: python -m deploy.contracts [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared import contract, version

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ASYNCAPI = DOCS / "asyncapi.yaml"


@contextmanager
def local_defaults() -> Iterator[None]:
    """Hide the caller's `SADA_` variables, so the documents do not depend on who runs this."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("SADA_")}
    for name in saved:
        del os.environ[name]
    os.environ["SADA_ENVIRONMENT"] = "local"
    try:
        yield
    finally:
        del os.environ["SADA_ENVIRONMENT"]
        os.environ.update(saved)


def _intake() -> FastAPI:
    from services.intake.app import build
    from services.intake.settings import IntakeSettings

    return build(IntakeSettings())


def _archive() -> FastAPI:
    from services.archive.app import build
    from services.archive.settings import ArchiveSettings

    return build(ArchiveSettings())


APIS: dict[str, Callable[[], FastAPI]] = {"intake": _intake, "archive": _archive}
"""The services whose HTTP API is published, each to docs/openapi-<service>.json."""


def openapi_path(service: str) -> Path:
    """Return where the OpenAPI document of `service` is committed."""
    return DOCS / f"openapi-{service}.json"


def openapi(service: str) -> dict[str, Any]:
    """Return the OpenAPI document `service` serves, built from the local defaults."""
    with local_defaults():
        return APIS[service]().openapi()


def render() -> dict[Path, str]:
    """Return every contract document by the path it is committed at."""
    documents = {ASYNCAPI: contract.document(version.current()).to_yaml()}
    for service in APIS:
        text = json.dumps(openapi(service), indent=2, sort_keys=True, ensure_ascii=False)
        documents[openapi_path(service)] = text + "\n"
    return documents


def stale(documents: dict[Path, str]) -> list[Path]:
    """Return the committed documents that differ from `documents` (or are missing)."""
    return [
        path
        for path, text in documents.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main() -> None:
    """Write the documents, or with --check fail when a committed one is stale."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a document is stale")
    args = parser.parse_args()
    from shared import logging

    logging.configure("contracts", level="ERROR", json=False)
    documents = render()
    if args.check:
        if outdated := stale(documents):
            names = ", ".join(str(path.relative_to(ROOT)) for path in outdated)
            sys.exit(f"stale: {names}; run python -m deploy.contracts")
        return
    for path, text in documents.items():
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
