"""The installed package's version, for --version on the three programs."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("appliance")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
