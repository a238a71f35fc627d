"""The `sada` command imports only what the command it runs uses; its help stays whole.

Speed lives in the bench (`python -m bench --only cli`); these tests hold the property that
makes it: an operator's check never loads the services' transport, storage or web stacks.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import orjson
import pytest
from typer.core import TyperGroup
from typer.testing import CliRunner

from shared.cli import COMMAND_GROUPS, LazyGroups, app
from tests.router_support import raw_samples

# The services' own stacks: Kafka, Mongo, HTTP, templates, crypto, logging, metrics, SMTP, and the
# rich that structlog and Typer's error boxes pull in.
HEAVY = frozenset(
    {
        "faststream",
        "aiokafka",
        "pymongo",
        "bson",
        "fastapi",
        "starlette",
        "uvicorn",
        "jinja2",
        "cryptography",
        "structlog",
        "prometheus_client",
        "aiosmtplib",
        "rich",
    }
)
GROUP_MODULES = frozenset(group.module for group in COMMAND_GROUPS.values())

# Runs `sada ARGS...` in a fresh interpreter, then reports its exit code and what it imported.
PROBE = """
import json, sys
sys.argv = ["sada", *sys.argv[1:]]
code = 0
try:
    from shared.cli import main
    main()
except SystemExit as exc:
    code = exc.code or 0
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def imported_by(*args: str) -> tuple[int, set[str]]:
    """Return the exit code of `sada *args` and the modules it imported, top-level and full."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    probe = orjson.loads(done.stderr.rsplit("PROBE ", 1)[1])
    return probe["code"], set(probe["modules"])


def packages(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cli") / "submission.json"
    path.write_bytes(orjson.dumps(raw_samples()[0]))
    return str(path)


@pytest.mark.parametrize("command", [("route", "explain"), ("intake", "check")])
def test_an_operator_check_loads_no_transport_storage_or_web_stack(
    command: tuple[str, str], sample: str
) -> None:
    code, modules = imported_by(*command, sample)
    assert code == 0
    assert packages(modules) & HEAVY == set()
    assert (GROUP_MODULES & modules) <= {"services.router.cli", "services.intake.cli"}


def test_the_help_imports_no_command_group() -> None:
    code, modules = imported_by("--help")
    assert code == 0
    assert GROUP_MODULES & modules == set()
    assert "services" not in packages(modules)


@pytest.mark.parametrize("name", sorted(COMMAND_GROUPS))
def test_each_help_line_is_the_one_its_group_declares(name: str) -> None:
    module = importlib.import_module(COMMAND_GROUPS[name].module)
    assert module.app.info.help == COMMAND_GROUPS[name].help


def test_the_help_lists_every_group_as_the_mounted_groups_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lazy = CliRunner().invoke(app, ["--help"]).stdout
    # Without the listing guard, rendering the help mounts every group and reads its own help.
    monkeypatch.setattr(LazyGroups, "format_help", TyperGroup.format_help)
    assert CliRunner().invoke(app, ["--help"]).stdout == lazy
    assert all(f" {name} " in lazy for name in COMMAND_GROUPS)


def test_a_group_runs_once_resolved_and_a_typo_still_gets_suggestions() -> None:
    runner = CliRunner()
    assert "explain" in runner.invoke(app, ["route", "--help"]).stdout
    typo = runner.invoke(app, ["rout"])
    assert typo.exit_code == 2
    assert "'route'" in typo.stderr


def test_version_still_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip()
