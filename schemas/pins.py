"""The versions sentistream pins its dependencies to (pyproject.toml), as installed with it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, requires


def pinned(package: str) -> str:
    """``package==version`` as pyproject.toml pins it, for an error that says what to install; from a
    source tree that was never installed, a phrase pointing at pyproject.toml."""
    try:
        requirements = requires("sentistream") or []
    except PackageNotFoundError:
        requirements = []
    return next((r for r in requirements if r.startswith(f"{package}==")), f"the {package} pyproject.toml pins")
