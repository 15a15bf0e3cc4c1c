import json
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from update_readme import README, render  # noqa: E402

from tests.cli.runner import json_lines, sentistream  # noqa: E402


def test_configuration_reference_matches_settings():
    text = README.read_text()
    assert render(text) == text, "README's configuration reference is stale: run python scripts/update_readme.py"
    assert "SENTISTREAM_BATCH__MAX_SIZE" in text


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text and "```mermaid" in text


# Fields that differ on every run; the rest of the README's classify sample must be what classify prints.
RUN_DEPENDENT = {"latency_ms", "received_at", "classified_at"}


def classify_example(text: str) -> tuple[list[str], list[dict]]:
    """The README's sample: the command's arguments and the JSON lines shown as its output."""
    block = text.split("<!-- classify-example:start -->", 1)[1].split("<!-- classify-example:end -->", 1)[0]
    lines = [line for line in block.splitlines() if line and not line.startswith("```")]
    command = shlex.split(lines[0].removeprefix("$ ").removesuffix(" 2>/dev/null"))
    assert command[:2] == [".venv/bin/sentistream", "classify"], command
    return command[2:], [json.loads(line) for line in lines[1:]]


def test_classify_sample_is_what_classify_prints():
    args, shown = classify_example(README.read_text())
    proc = sentistream("classify", *args)  # no settings: the sample is what a new user runs
    assert proc.returncode == 1  # the sample's empty input gets an error line
    printed = json_lines(proc.stdout)
    assert [sorted(r) for r in printed] == [sorted(r) for r in shown]
    for got, want in zip(printed, shown, strict=True):
        assert {k: v for k, v in got.items() if k not in RUN_DEPENDENT | {"scores", "confidence"}} == \
            {k: v for k, v in want.items() if k not in RUN_DEPENDENT | {"scores", "confidence"}}
        if "scores" in want:  # CPUs with native bf16 compute it under autocast: equal to 2 decimals
            assert got["confidence"] == pytest.approx(want["confidence"], abs=0.01)
            assert got["scores"] == pytest.approx(want["scores"], abs=0.01)
