"""YAML configuration validated by pydantic, with errors that name the file, line and problem.

Units, channels and rules are configuration, not code; an operator who mistypes one should be
told exactly where, and the service must refuse to start rather than guess.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """An invalid configuration file; the message names the file, the line and the problem."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Walk the composed YAML tree along a pydantic error location; return its 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def load(path: Path | str, model: type[M], *, context: dict[str, Any] | None = None) -> M:
    """Read `path` as YAML and validate it as `model`, or raise `ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(path, line, f"YAML error: {exc.problem}") from exc
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        raise ConfigError(path, _line_of(node, loc), f"{dotted}: {first['msg']}") from exc


def file_version(path: Path | str) -> str:
    """Return the SHA-256 of the file's bytes: the version stamped on decisions made with it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
