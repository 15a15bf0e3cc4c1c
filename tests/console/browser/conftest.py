"""Headless Chromium for the console's browser tests: Debian's ``chromium`` (``make test`` installs it)
driven by Playwright, whose own browser download is never used."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest


def chromium_path() -> str:
    """The chromium binary; a skip where it is missing outside CI (a failure in CI, which must run these)."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: 'make test' installs it (apt-get install chromium)")
        pytest.skip("chromium is missing: run 'make browser-tool' (apt-get install chromium) to run the browser tests")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path)
        try:
            yield b
        finally:
            b.close()
