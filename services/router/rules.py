"""Routing rules and the decision: pure, deterministic functions over a `Submission`.

`decide` walks the configured rules in order and returns the first match as a
`RoutingDecision` with its explanation. The rules come from `routing.yaml` (see
`services.router.config`), compiled into small condition objects so the per-message path does
no parsing and no I/O, normalises a submission's text at most once (and only if a keyword rule
is reached), and reuses the immutable decision objects it has already built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from shared.directory import Unit
from shared.events import Match, RoutingDecision
from shared.models import Kind, Submission

# docs/design.md, "Routing": Arabic diacritics (U+064B–U+065F, U+0670) and tatweel (U+0640) go;
# the alef forms, alef maqsura and ta marbuta fold. A regex plus str.replace is about twice as
# fast as str.translate with a mapping on Arabic text.
_REMOVED = re.compile("[\u064b-\u065f\u0670\u0640]+")
_FOLDS = (("أ", "ا"), ("إ", "ا"), ("آ", "ا"), ("ٱ", "ا"), ("ى", "ي"), ("ة", "ه"))

IDENTIFIER_FIELDS = frozenset({"legislation_ref", "survey_id", "topic"})
"""Fields whose value is an identifier, safe to quote in a reason; the others are text or
personal data, so a reason only says they are present."""
TEXT_FIELDS = ("subject", "body")
"""Where keywords are searched (docs/design.md: subject or body), in this order."""
MEMO_LIMIT = 4096
"""Decisions kept per config; they differ only by rule and quoted identifiers, so few."""


def normalise(text: str) -> str:
    """Return `text` as keyword matching sees it (docs/design.md, "Routing").

    Arabic diacritics (U+064B–U+065F, U+0670) and tatweel removed; أ إ آ ٱ → ا; ى → ي; ة → ه;
    case-folded; runs of whitespace (newlines included) collapsed to one space and trimmed.
    """
    text = _REMOVED.sub("", text)
    for letter, folded in _FOLDS:
        text = text.replace(letter, folded)
    return " ".join(text.casefold().split())


class Texts:
    """A submission's subject and body, normalised on first use and then reused by every rule."""

    __slots__ = ("_fields", "_submission")

    def __init__(self, submission: Submission) -> None:
        self._submission = submission
        self._fields: tuple[tuple[str, str], ...] | None = None

    def fields(self) -> tuple[tuple[str, str], ...]:
        """Return `(field, normalised text)` for the subject and body that are present."""
        if self._fields is None:
            sub = self._submission
            self._fields = tuple(
                (name, normalise(value))
                for name, value in (("subject", sub.subject), ("body", sub.body))
                if value
            )
        return self._fields


class Fact(NamedTuple):
    """One condition that held: the field and value that matched (if any), and the phrase."""

    field: str | None
    value: str | None
    phrase: str


NO_TOPIC = Fact(None, None, "no topic given")


class Condition(Protocol):
    """One test of a rule; `check` returns the fact that held, or None."""

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Return the fact when the condition holds for `submission`, else None."""
        ...


def _present(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, tuple):
        return bool(value)
    return value is not None


def _facts(field: str, values: Iterable[str], phrase: str) -> dict[str, Fact]:
    """Precompute the fact of each listed value, so a check is one dictionary lookup."""
    return {value: Fact(field, value, phrase.format(value=value)) for value in values}


@dataclass(frozen=True, slots=True, init=False)
class ChannelIn:
    """The submission's channel is one of the listed channels."""

    facts: Mapping[str, Fact]

    def __init__(self, channels: Iterable[str]) -> None:
        object.__setattr__(self, "facts", _facts("channel", channels, "channel is {value}"))

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Hold when the channel is listed."""
        return self.facts.get(submission.channel)


@dataclass(frozen=True, slots=True, init=False)
class KindIn:
    """The submission's kind is one of the listed kinds."""

    facts: Mapping[str, Fact]

    def __init__(self, kinds: Iterable[Kind]) -> None:
        values = (Kind(kind).value for kind in kinds)
        object.__setattr__(self, "facts", _facts("kind", values, "kind is {value}"))

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Hold when the kind is listed."""
        return self.facts.get(submission.kind)


@dataclass(frozen=True, slots=True, init=False)
class TopicIn:
    """The submission's topic is one of the listed topics."""

    facts: Mapping[str, Fact]

    def __init__(self, topics: Iterable[str]) -> None:
        object.__setattr__(self, "facts", _facts("topic", topics, "topic is {value}"))

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Hold when the topic is listed."""
        topic = submission.topic
        return None if topic is None else self.facts.get(topic)


@dataclass(frozen=True, slots=True)
class TopicPresent:
    """The submission has a topic (`present=True`) or has none (`present=False`)."""

    present: bool

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Hold when the topic's presence is as required."""
        topic = submission.topic
        if topic is None or not topic.strip():
            return None if self.present else NO_TOPIC
        return Fact("topic", topic, f"topic {topic} given") if self.present else None


@dataclass(frozen=True, slots=True)
class FieldPresent:
    """The submission's `field` is given (non-empty)."""

    field: str

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Hold when the field has a value; identifiers are quoted, text never is."""
        value = getattr(submission, self.field)
        if not _present(value):
            return None
        if self.field in IDENTIFIER_FIELDS:
            return Fact(self.field, value, f"{self.field} {value} present")
        return Fact(self.field, "present", f"{self.field} present")


@dataclass(frozen=True, slots=True, init=False)
class KeywordsIn:
    """The subject or body contains a keyword, matched on normalised text."""

    keywords: tuple[tuple[str, Mapping[str, Fact]], ...]
    """(normalised keyword, its fact for each searched field), in configured order."""

    def __init__(self, keywords: Iterable[tuple[str, str]]) -> None:
        """Take (normalised, as configured) pairs; reasons quote the keyword as configured."""
        compiled = tuple(
            (
                needle,
                {
                    name: Fact(name, keyword, f"keyword «{keyword}» in {name}")
                    for name in TEXT_FIELDS
                },
            )
            for needle, keyword in keywords
        )
        object.__setattr__(self, "keywords", compiled)

    def check(self, submission: Submission, texts: Texts) -> Fact | None:
        """Hold on the first keyword found, the subject searched before the body."""
        for name, text in texts.fields():
            for needle, facts in self.keywords:
                if needle in text:
                    return facts[name]
        return None


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: all `conditions` must hold; none means it always matches (the default)."""

    id: str
    unit: Unit
    conditions: tuple[Condition, ...]
    description: str | None = None

    def match(self, submission: Submission, texts: Texts) -> tuple[Fact, ...] | None:
        """Return the facts that made every condition hold, or None if one did not."""
        facts = []
        for condition in self.conditions:
            fact = condition.check(submission, texts)
            if fact is None:
                return None
            facts.append(fact)
        return tuple(facts)

    def decision(self, facts: tuple[Fact, ...], version: str) -> RoutingDecision:
        """Return the decision this rule makes on `facts`, with its readable reason."""
        return RoutingDecision(
            unit=self.unit.id,
            mailbox=self.unit.mailbox,
            rule_id=self.id,
            rules_version=version,
            reason=explain(self, facts),
            matched=tuple(
                Match(field=fact.field, value=fact.value)
                for fact in facts
                if fact.field is not None and fact.value is not None
            ),
        )


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The rules in force: ordered, ending with an unconditional default, and their version."""

    path: Path
    version: str
    units: Mapping[str, Unit]
    rules: tuple[Rule, ...]
    keywords: tuple[str, ...] = ()
    memo: dict[tuple[int, tuple[Fact, ...]], RoutingDecision] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Decisions already built: immutable, so one object serves every equal decision."""


class NoRuleMatchedError(RuntimeError):
    """No rule matched: only possible with a config that bypassed the loader's checks."""


def decide(submission: Submission, config: RoutingConfig) -> RoutingDecision:
    """Return where `submission` goes under `config`, with the rule, reason and what matched."""
    texts = Texts(submission)
    for index, rule in enumerate(config.rules):
        facts = rule.match(submission, texts)
        if facts is None:
            continue
        key = (index, facts)
        decision = config.memo.get(key)
        if decision is None:
            if len(config.memo) >= MEMO_LIMIT:  # e.g. a flood of distinct legislation_refs
                config.memo.clear()
            decision = config.memo[key] = rule.decision(facts, config.version)
        return decision
    msg = f"no rule of {config.path} matched; the last rule must be an unconditional default"
    raise NoRuleMatchedError(msg)


def explain(rule: Rule, facts: tuple[Fact, ...]) -> str:
    """Return the readable reason: the facts that held, then the rule's description if any."""
    said = " and ".join(fact.phrase for fact in facts) if facts else "no earlier rule matched"
    return f"{said} — {rule.description}" if rule.description else said
