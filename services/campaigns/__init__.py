"""Campaigns: near-identical submissions grouped per consultation (docs/campaigns.md)."""
