"""peft's private API: the one module that uses it.

peft routes each row of a mixed-adapter batch to its own LoRA adapter only inside ``PeftModel.forward``
and ``generate`` (``adapter_names=``). The verbalizer head runs the backbone alone, so it enters the
context manager those methods use. ``PeftModel``'s enters ``LoraModel``'s, and when that one is missing
it quietly does nothing (every row would get the default adapter): both are checked when this module
is imported, so a peft that changed fails the model load with one line naming the version to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import peft
from peft import LoraModel, PeftModel

from models.errors import UnsupportedPeft
from schemas.pins import pinned

HOOKS = "_enable_peft_forward_hooks"


def check(*classes: type) -> None:
    """Raise :class:`UnsupportedPeft` unless every class has the routing hooks (run at import)."""
    missing = [f"{cls.__name__}.{HOOKS}" for cls in classes if not callable(getattr(cls, HOOKS, None))]
    if missing:
        raise UnsupportedPeft(f"this peft ({peft.__version__}; {', '.join(missing)} missing) is not the one "
                              f"sentistream was built against: install {pinned('peft')}")


check(PeftModel, LoraModel)


def adapter_routing(model: PeftModel, adapter_names: Sequence[str]) -> AbstractContextManager:
    """Within it, a forward through any part of ``model`` applies each row's adapter."""
    return model._enable_peft_forward_hooks(adapter_names=adapter_names)
