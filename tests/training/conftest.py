"""Factory fixtures shared by the training tests."""

from __future__ import annotations

import pytest

from tests.training.factories import synthetic


@pytest.fixture(scope="module")
def data():
    """Train / validation / test examples a tiny BERT can learn (sentiment words among filler)."""
    return synthetic(240, seed=1), synthetic(60, seed=2, start=1000), synthetic(40, seed=3, start=2000)
