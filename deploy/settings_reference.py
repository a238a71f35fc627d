"""Generate `docs/configuration.md`: every `SADA_` variable of every service, from the code.

The reference is derived from the pydantic-settings models, so it cannot drift from what the
services read; a unit test fails when the committed file is stale.
Usage: python -m deploy.settings_reference [--check]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"
SERVICES = {
    "intake": ("services.intake.settings", "IntakeSettings"),
    "router": ("services.router.settings", "RouterSettings"),
    "campaigns": ("services.campaigns.settings", "CampaignsSettings"),
    "notifier": ("services.notifier.settings", "NotifierSettings"),
    "archive": ("services.archive.settings", "ArchiveSettings"),
}
HEADER = """# Configuration reference

Every service reads environment variables with the prefix `SADA_`; nested groups use `__`
(e.g. `SADA_KAFKA__BOOTSTRAP_SERVERS`). Defaults suit a local run on 127.0.0.1. Secrets come
from the environment (or a secrets manager that sets it), never from the repository; outside
`SADA_ENVIRONMENT=local` a service refuses to start with a missing or obviously default secret.
With `SADA_ENVIRONMENT=production` it also refuses Kafka without SASL_SSL and MongoDB without
TLS and credentials, unless `SADA_ALLOW_INSECURE_TRANSPORT=true` ([production.md](production.md)).

Generated from the settings models by `python -m deploy.settings_reference`; do not edit.
"""


def _env_name(prefix: str, name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return " / ".join(str(choice) for choice in alias.choices)
    return f"{prefix}{name}".upper()


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Path):
        value = value.relative_to(ROOT) if value.is_relative_to(ROOT) else value
    text = "" if value is None else str(value)
    return f"`{text}`" if text else "(none)"


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_rows(annotation, f"{prefix}{name}__"))
            continue
        description = (_description(model, name) or "").replace("|", "\\|").replace("\n", " ")
        rows.append((_env_name(prefix, name, field), _default(field), description))
    return rows


def _description(model: type[BaseModel], name: str) -> str | None:
    """Return the field's description, inherited when a subclass only changed its default."""
    for cls in model.__mro__:
        fields = getattr(cls, "model_fields", {})
        if name in fields and fields[name].description:
            return str(fields[name].description)
    return None


def render() -> str:
    """Return the whole reference as Markdown."""
    parts = [HEADER]
    for service, (module, cls) in SERVICES.items():
        model = getattr(importlib.import_module(module), cls)
        parts.append(f"\n## {service}\n\n| variable | default | meaning |\n|---|---|---|")
        parts.extend(
            f"| `{env}` | {default} | {text} |" for env, default, text in _rows(model, "SADA_")
        )
    return "\n".join(parts) + "\n"


def main() -> None:
    """Write the reference, or with --check fail when the committed one is stale."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUTPUT} is stale: run python -m deploy.settings_reference")
        return
    OUTPUT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
