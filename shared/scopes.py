"""Campaign scopes: where near-identical submissions are compared (docs/campaigns.md).

Here rather than in `services/campaigns/` because the router keys each routed event by its
scope (so one campaigns consumer owns a scope) and must not import the grouping engine.
"""

from __future__ import annotations


def campaign_scope(legislation_ref: str | None, unit: str) -> str:
    """Return the scope: the draft law when there is one, else the routed unit."""
    if legislation_ref:
        return f"legislation:{legislation_ref}"
    return f"unit:{unit}"
