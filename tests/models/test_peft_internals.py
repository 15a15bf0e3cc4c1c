"""peft's private routing hooks are checked when models.peft_internals is imported: a peft without
them fails with one line naming the version to install."""

from __future__ import annotations

import importlib

import pytest
from peft import LoraModel, PeftModel

from models import peft_internals
from models.errors import ModelLoadError, UnsupportedPeft
from schemas.pins import pinned


def test_the_installed_peft_has_the_hooks():
    peft_internals.check(PeftModel, LoraModel)


def test_a_class_without_the_hooks_fails_with_one_line_naming_the_pin():
    class Changed:
        pass

    with pytest.raises(UnsupportedPeft) as info:
        peft_internals.check(PeftModel, Changed)
    msg = str(info.value)
    assert isinstance(info.value, ModelLoadError)
    assert "\n" not in msg
    assert "Changed._enable_peft_forward_hooks missing" in msg and "PeftModel" not in msg
    assert msg.endswith(f"install {pinned('peft')}")
    assert pinned("peft").startswith("peft==")


@pytest.mark.parametrize("cls", [PeftModel, LoraModel])
def test_import_fails_cleanly_when_peft_lost_the_hooks(cls, monkeypatch):
    monkeypatch.delattr(cls, "_enable_peft_forward_hooks")
    try:
        with pytest.raises(UnsupportedPeft, match=f"{cls.__name__}._enable_peft_forward_hooks missing"):
            importlib.reload(peft_internals)
    finally:
        monkeypatch.undo()
        importlib.reload(peft_internals)
