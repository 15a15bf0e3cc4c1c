import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from update_readme import README, render  # noqa: E402


def test_configuration_reference_matches_settings():
    text = README.read_text()
    assert render(text) == text, "README's configuration reference is stale: run python scripts/update_readme.py"
    assert "SENTISTREAM_BATCH__MAX_SIZE" in text


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text and "```mermaid" in text
