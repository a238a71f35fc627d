"""The README's worked examples for channel integrators, read from README.md for the tests.

Each example follows a `<!-- example:NAME -->` marker as one fenced code block, so the tests
check (and run) the very text an integrator copies.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.infra import ROOT

README = ROOT / "README.md"


def block(name: str) -> str:
    """Return the code of the fenced block after `<!-- example:NAME -->` in README.md."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example:{re.escape(name)} -->\n```\w*\n(.*?)\n```", text, re.S)
    assert found, f"README.md has no example {name!r}"
    return found.group(1)


def kafka_submission() -> dict[str, Any]:
    """Return the `SUBMISSION` literal of the Python example."""
    for node in ast.walk(ast.parse(block("kafka"))):
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [
            "SUBMISSION"
        ]:
            value: dict[str, Any] = ast.literal_eval(node.value)
            return value
    raise AssertionError("the Kafka example defines no SUBMISSION")


def call_keywords(function: str) -> dict[str, Any]:
    """Return the literal keyword arguments of the Python example's call to `function`."""
    for node in ast.walk(ast.parse(block("kafka"))):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(function):
            return {kw.arg: ast.unparse(kw.value) for kw in node.keywords if kw.arg}
    raise AssertionError(f"the Kafka example never calls {function}")


def call_arguments(function: str) -> list[str]:
    """Return the positional arguments (as source) of the Python example's call to `function`."""
    for node in ast.walk(ast.parse(block("kafka"))):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(function):
            return [ast.unparse(arg) for arg in node.args]
    raise AssertionError(f"the Kafka example never calls {function}")


@dataclass(frozen=True)
class Curl:
    """The HTTP example's request, as curl would send it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The URL's path."""
        return urlsplit(self.url).path

    @property
    def port(self) -> int | None:
        """The URL's port."""
        return urlsplit(self.url).port


def curl() -> Curl:
    """Parse the curl example (only the options it uses: -sS, -X, -H, --data-binary)."""
    # a backslash-newline is a line continuation to the shell, as it is here
    words = shlex.split(block("http").replace("\\\n", " "))
    assert words[0] == "curl"
    method, url, headers, body = "GET", "", {}, b""
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "--data-binary":
            body = next(rest).encode()
        elif word.startswith("-"):
            assert word == "-sS", f"the curl example uses an option the test does not know: {word}"
        else:
            url = word
    return Curl(method=method, url=url, headers=headers, body=body)


def http_answer() -> dict[str, Any]:
    """Return the answer the README shows for the curl example."""
    value: dict[str, Any] = ast.literal_eval(block("http-answer"))
    return value
