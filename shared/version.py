"""The running release, for event envelopes and `/health`."""

from importlib.metadata import PackageNotFoundError, version


def current() -> str:
    """Return the installed `sada` distribution's version."""
    try:
        return version("sada")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
