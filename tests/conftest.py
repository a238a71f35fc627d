"""Every test is marked with its tier from its folder, so `-m unit` and friends just work."""

from __future__ import annotations

import pytest

TIERS = ("unit", "component", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for tier in TIERS:
            if f"/tests/{tier}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, tier))
