"""Regenerate README.md's configuration reference from the Settings model."""

from __future__ import annotations

import re
from pathlib import Path

from settings_reference import reference

START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def render(text: str) -> str:
    return re.sub(f"{re.escape(START)}.*?{re.escape(END)}", lambda _: f"{START}\n{reference()}{END}",
                  text, flags=re.S)


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
