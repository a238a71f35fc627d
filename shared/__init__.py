"""Sada's own shared code: event contracts, settings, logging, metrics and client factories.

Everything the five services agree on lives here once, so a contract change is one edit.
"""
