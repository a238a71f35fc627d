"""Loading `routing.yaml`: validated against units.yaml and channels.yaml, compiled into rules.

Everything wrong with a rule file is reported as a `shared.config.ConfigError` naming the
file, the line and the problem, so the router refuses to start rather than route by a rule
its operator did not mean: YAML errors, unknown keys or conditions, empty sets, unknown
units/channels/kinds, duplicate rule ids, and a missing (or misplaced) unconditional default.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from services.router import rules
from shared import config
from shared.directory import CONFIG_DIR, load_channels, load_units
from shared.models import Kind, Slug

RULES_PATH = CONFIG_DIR / "routing.yaml"
UNITS_PATH = CONFIG_DIR / "units.yaml"
CHANNELS_PATH = CONFIG_DIR / "channels.yaml"

PresentField = Literal[
    "legislation_ref",
    "survey_id",
    "topic",
    "subject",
    "body",
    "answers",
    "attachments",
    "submitter",
]


def _known(what: str, key: str, value: str, info: ValidationInfo) -> str:
    known: frozenset[str] | None = (info.context or {}).get(key)
    if known is not None and value not in known:
        msg = f"unknown {what} {value!r}; known: {', '.join(sorted(known))}"
        raise ValueError(msg)
    return value


def _known_unit(value: str, info: ValidationInfo) -> str:
    return _known("unit", "units", value, info)


def _known_channel(value: str, info: ValidationInfo) -> str:
    return _known("channel", "channels", value, info)


def _keyword(value: str) -> str:
    if not rules.normalise(unicodedata.normalize("NFC", value)):
        msg = "a keyword must contain something other than whitespace, diacritics and tatweel"
        raise ValueError(msg)
    return value


UnitId = Annotated[str, AfterValidator(_known_unit)]
ChannelId = Annotated[str, AfterValidator(_known_channel)]
Keyword = Annotated[str, AfterValidator(_keyword)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class When(_Strict):
    """The conditions of a rule (all must hold). The vocabulary is documented in routing.yaml."""

    channel_in: Annotated[tuple[ChannelId, ...], Field(min_length=1)] | None = None
    kind_in: Annotated[tuple[Kind, ...], Field(min_length=1)] | None = None
    topic_in: Annotated[tuple[Slug, ...], Field(min_length=1)] | None = None
    topic_present: bool | None = None
    field_present: PresentField | None = None
    keywords: Literal[True] | None = Field(
        default=None, description="Search subject and body for the file's `keywords`."
    )
    keywords_in: Annotated[tuple[Keyword, ...], Field(min_length=1)] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        # `channel_in:` with nothing after it is a half-written rule, not "no condition".
        if value is None:
            msg = "a condition needs a value; remove the key rather than leave it empty"
            raise ValueError(msg)
        return value


class RuleSpec(_Strict):
    """One rule as written: an id, the unit it routes to, and its conditions."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    unit: UnitId
    when: When | None = Field(default=None, description="Absent or empty: always matches.")
    description: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class Keywords(_Strict):
    """The legislative keywords, by language; both lists are searched whatever the language."""

    ar: tuple[Keyword, ...] = ()
    en: tuple[Keyword, ...] = ()


class RoutingFile(_Strict):
    """Schema of `routing.yaml`."""

    keywords: Keywords = Keywords()
    rules: Annotated[tuple[RuleSpec, ...], Field(min_length=1)]


def load(
    path: Path | str = RULES_PATH,
    *,
    units_path: Path | str = UNITS_PATH,
    channels_path: Path | str = CHANNELS_PATH,
) -> rules.RoutingConfig:
    """Read, check and compile the rule file, or raise `ConfigError` naming file, line, problem.

    `rules_version` is the SHA-256 of the rule file alone, so an operator can compare it with
    `sha256sum routing.yaml`; units.yaml (mailboxes) is deliberately not part of it.
    """
    path = Path(path)
    units = load_units(units_path)
    channels = load_channels(channels_path)
    spec = config.load(
        path,
        RoutingFile,
        context={"units": frozenset(units), "channels": frozenset(channels)},
    )
    _check_order(path, spec)
    keywords = _compile_keywords((*spec.keywords.ar, *spec.keywords.en))
    compiled = tuple(
        rules.Rule(
            id=rule.id,
            unit=units[rule.unit],
            conditions=_conditions(rule.when, keywords),
            description=rule.description,
        )
        for rule in spec.rules
    )
    return rules.RoutingConfig(
        path=path,
        version=config.file_version(path),
        units=units,
        rules=compiled,
        keywords=tuple(keyword for _, keyword in keywords),
    )


def _check_order(path: Path, spec: RoutingFile) -> None:
    """Refuse duplicate ids, conditions on the last rule, and an unconditional rule before it."""
    seen: set[str] = set()
    last = len(spec.rules) - 1
    has_keywords = bool(spec.keywords.ar or spec.keywords.en)
    for index, rule in enumerate(spec.rules):
        if rule.id in seen:
            _fail(path, ("rules", index, "id"), f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        unconditional = rule.when is None or not rule.when.model_fields_set
        if unconditional and index < last:
            later = ", ".join(r.id for r in spec.rules[index + 1 :])
            _fail(
                path,
                ("rules", index),
                f"rule {rule.id!r} has no conditions, so it always matches and the rules after "
                f"it ({later}) never would; the unconditional default must be the last rule",
            )
        if not unconditional and index == last:
            _fail(
                path,
                ("rules", index),
                f"the last rule must be an unconditional default (no `when`), but {rule.id!r} "
                "has conditions; add a final default rule",
            )
        if rule.when is not None and rule.when.keywords and not has_keywords:
            _fail(
                path,
                ("rules", index, "when", "keywords"),
                f"rule {rule.id!r} uses `keywords: true` but the `keywords` section is empty",
            )


def _fail(path: Path, loc: tuple[int | str, ...], problem: str) -> NoReturn:
    """Raise `ConfigError` at the line of `loc` in the (already parsed, valid YAML) file."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    raise config.ConfigError(path, config._line_of(node, loc), problem)


def _compile_keywords(keywords: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Return (normalised, as configured) pairs, normalised exactly like submission text."""
    return tuple((rules.normalise(unicodedata.normalize("NFC", k)), k) for k in keywords)


def _conditions(
    when: When | None, keywords: tuple[tuple[str, str], ...]
) -> tuple[rules.Condition, ...]:
    """Compile `when` into condition objects, cheapest first (keywords need the text)."""
    if when is None:
        return ()
    found: list[rules.Condition] = []
    if when.field_present is not None:
        found.append(rules.FieldPresent(when.field_present))
    if when.channel_in is not None:
        found.append(rules.ChannelIn(frozenset(when.channel_in)))
    if when.kind_in is not None:
        found.append(rules.KindIn(frozenset(when.kind_in)))
    if when.topic_in is not None:
        found.append(rules.TopicIn(frozenset(when.topic_in)))
    if when.topic_present is not None:
        found.append(rules.TopicPresent(when.topic_present))
    if when.keywords:
        found.append(rules.KeywordsIn(keywords))
    if when.keywords_in is not None:
        found.append(rules.KeywordsIn(_compile_keywords(when.keywords_in)))
    return tuple(found)
