"""The light modules stay light: importing them (and building the CLI, as `sentistream --help` does)
loads neither torch nor transformers, so only the commands that run a model pay for them."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "peft_sparta")


@pytest.mark.parametrize("code", [
    "import models",
    "import models.spec, models.loading, models.errors",
    "import schemas, schemas.settings, schemas.db",
    "from schemas.cli import build_parser; build_parser()",
])
def test_import_loads_no_model_library(code):
    check = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
