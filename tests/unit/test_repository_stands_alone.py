"""The repository carries everything it reads and cites: a clone with nothing beside it works.

Why a test: code, comments and tests once cited a design file and read sample data from a folder
next to the checkout, which a clone elsewhere does not have. Each tracked text file is searched for
a path that climbs out of the repository to a sibling folder, or names an absolute path of the
machine it was written on.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.infra import ROOT

# `../x` reached from the repository root, or an absolute path of a workstation.
OUTSIDE = re.compile(r"(?<![\w.])\.\./shared\b|ROOT\.parent\b|/work/(?:shared|main)\b")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".json", ".j2", ".txt", ".cfg"}
THIS_FILE = Path(__file__).resolve()


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    paths = [ROOT / name for name in listed.split("\0") if name]
    return [
        p
        for p in paths
        if p.is_file()
        and (p.suffix in TEXT_SUFFIXES or p.name in {"Makefile", "Dockerfile", "run"})
        and p.resolve() != THIS_FILE
    ]


def test_no_tracked_file_reads_or_cites_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, "\n".join(offenders)


def test_the_design_and_the_samples_live_in_the_repository() -> None:
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    for section in ("## Kafka topics", "## RawSubmission", "## Routing", "## Lifecycle"):
        assert section in design
    samples = (ROOT / "deploy" / "samples" / "submissions.jsonl").read_text(encoding="utf-8")
    assert len([line for line in samples.splitlines() if line.strip()]) == 20


def test_the_pattern_catches_the_ways_a_path_escaped_before() -> None:
    assert OUTSIDE.search('SAMPLES = ROOT.parent / "shared" / "samples"')
    up = ".."  # spelled apart, so a git grep for the escaping path finds nothing here either
    assert OUTSIDE.search(f"built from `{up}/shared/samples`")
    assert OUTSIDE.search('Path("/work/shared/samples/submissions.jsonl")')
    assert not OUTSIDE.search("from shared.kafka import produce_all")
    assert not OUTSIDE.search(f"services/{up}/shared_tools")
