"""Factory fixtures: tiny bases per architecture, cached for the session (building is the slow part)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.models.factories import build_causal_base


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_base("llama")`` -> a directory with a random LlamaForCausalLM and its tokenizer.
    Returns a fresh copy each call so a test may modify it."""
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("bases")

    def make(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = build_causal_base(root / f"{arch}-pristine", arch)
        copy = Path(tmp_path_factory.mktemp(arch)) / arch
        shutil.copytree(cache[arch], copy)
        return copy

    return make
