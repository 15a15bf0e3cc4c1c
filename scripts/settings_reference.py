"""Print the configuration reference (markdown) from the Settings model; README embeds its output."""

from __future__ import annotations

import sys
from typing import get_args

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from schemas.settings import ENV_PREFIX, Settings


def rows(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    for name, field in model.model_fields.items():
        ann = field.annotation
        sub = next((a for a in (ann, *get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is not None:
            yield from rows(sub, prefix + (name,))
            continue
        default = field.default
        if default is PydanticUndefined:
            shown = "(required)"
        elif hasattr(default, "get_secret_value"):
            shown = "(secret)"
        else:
            shown = f"`{default!r}`" if default is not None else "unset"
        env = ENV_PREFIX + "__".join(p.upper() for p in prefix + (name,))
        desc = (field.description or "").replace("|", "\\|")
        yield f"| `{env}` | {shown.replace('|', chr(92) + '|')} | {desc} |"


def reference() -> str:
    head = "| variable | default | notes |\n|---|---|---|"
    return head + "\n" + "\n".join(rows(Settings)) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
