"""What the numbers were measured on: cores, CPU, memory, load, versions, commit."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("faststream", "aiokafka", "pymongo", "pydantic", "orjson", "aiosmtplib", "uvicorn")


def _first(path: str, pattern: str) -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1).strip() if found else None


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def infra_versions() -> dict[str, str | None]:
    """Return the Kafka and FerretDB versions `deploy/local/infra.sh` installs."""
    script = str(ROOT / "deploy" / "local" / "infra.sh")
    return {
        "kafka": _first(script, r"^KAFKA_VERSION=(\S+)"),
        "ferretdb": _first(script, r"^FERRETDB_VERSION=(\S+)"),
    }


def commit() -> str:
    """Return the checked-out commit, with `+dirty` when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+dirty" if dirty else head or "unknown"


def describe() -> dict[str, Any]:
    """Return the machine and software the benchmark ran on."""
    mem_kb = _first("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    versions.update(infra_versions())
    return {
        "cores": os.cpu_count(),
        "cpu": _first("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor(),
        "memory_gib": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb else None,
        "kernel": platform.release(),
        "versions": versions,
        "commit": commit(),
    }
