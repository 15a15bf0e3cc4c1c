"""A KV cache of the prompt part every message shares (system prompt, template), computed once.

Each batch then runs only the tokens after the prefix: right-padded suffixes, positions offset by
the prefix length, attention over ``[prefix | suffix]``. Rows whose tokens do not start with the
prefix (a tokenizer merging across the boundary) make their batch run without the cache.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache


def shared_prefix(token_lists: list[list[int]]) -> list[int]:
    first = token_lists[0]
    n = len(first)
    for ids in token_lists[1:]:
        n = min(n, len(ids))
        for i in range(n):
            if ids[i] != first[i]:
                n = i
                break
    return first[:n]


def supports_prefix_cache(config) -> bool:
    # Sliding-window layers evict keys, so a long shared prefix would not stay whole in them.
    types = getattr(config, "layer_types", None) or ()
    return getattr(config, "sliding_window", None) is None and not any("sliding" in t for t in types)


class PrefixCache:
    def __init__(self, backbone: nn.Module, prefix_ids: list[int], device: torch.device) -> None:
        self.backbone = backbone
        self.ids = prefix_ids
        self.length = len(prefix_ids)
        with torch.inference_mode():
            out = backbone(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
        self.kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        self.config = backbone.config

    def matches(self, ids: list[int]) -> bool:
        return len(ids) > self.length and ids[: self.length] == self.ids

    def _cache(self, batch: int) -> DynamicCache:
        data = [(k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous())
                for k, v in self.kv]
        return DynamicCache(ddp_cache_data=data, config=self.config)

    def last_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden state at each row's last token; ``input_ids`` are right-padded suffixes."""
        b, t = input_ids.shape
        mask = torch.cat([attention_mask.new_ones(b, self.length), attention_mask], dim=1)
        positions = torch.arange(self.length, self.length + t, device=input_ids.device).expand(b, -1)
        out = self.backbone(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            past_key_values=self._cache(b), use_cache=True)
        last = attention_mask.long().sum(1) - 1
        return out.last_hidden_state[torch.arange(b, device=input_ids.device), last]
