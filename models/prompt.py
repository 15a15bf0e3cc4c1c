"""Turn a message into the model's input text, and find the token each label answers with."""

from __future__ import annotations

from models.errors import SpecError
from models.spec import ModelSpec


class PromptRenderer:
    def __init__(self, spec: ModelSpec, tokenizer) -> None:
        self.spec = spec
        self.prompt = spec.prompt
        self.tokenizer = tokenizer
        self.use_chat = spec.prompt.chat_template
        if self.use_chat and not getattr(tokenizer, "chat_template", None):
            raise SpecError(
                f"spec {spec.name!r}: prompt.chat_template is true but the tokenizer of {spec.base.id!r} has no "
                "chat template; set prompt.chat_template: false"
            )
        # Chat templates write the BOS token themselves.
        self.add_special_tokens = not self.use_chat
        self._system_in_user = False

    @property
    def answer_sep(self) -> str:
        """What goes between the prompt and the label word: a space unless the prompt ends in one."""
        return "" if self.render("x")[-1:].isspace() else " "

    def render(self, text: str) -> str:
        user = self.prompt.render_user(text)
        if not self.use_chat:
            parts = [self.prompt.system, user, self.prompt.answer_prefix]
            return "\n".join(p for p in parts if p)
        return self._chat(user) + self.prompt.answer_prefix

    def _chat(self, user: str) -> str:
        system = self.prompt.system
        if system and not self._system_in_user:
            try:
                return self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": system}, {"role": "user", "content": user}],
                    tokenize=False, add_generation_prompt=True,
                )
            except Exception:  # jinja raises for templates without a system role (Gemma)
                self._system_in_user = True
        if system:
            user = f"{system}\n\n{user}"
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )

    def _ids(self, prompts: list[str]) -> list[list[int]]:
        return self.tokenizer(prompts, add_special_tokens=self.add_special_tokens)["input_ids"]

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each prompt, at most ``max_length``: an over-long message is cut inside the
        text, so the template around it (system prompt, answer prefix) always stays whole."""
        ids = self._ids([self.render(t) for t in texts])
        limit = self.spec.max_length
        for i, row in enumerate(ids):
            if len(row) > limit:
                ids[i] = self._shortened(texts[i], len(row) - limit)
        return ids

    def _shortened(self, text: str, excess: int) -> list[int]:
        """The longest prefix of the text whose prompt fits ``max_length``. Cutting ``excess`` tokens
        fits when the cut text re-tokenizes as it was; where it does not (a decoded prefix can
        tokenize longer), a bisection over the prefix length finds the fit."""
        limit = self.spec.max_length
        text_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]

        def prompt(keep: int) -> list[int]:
            return self._ids([self.render(self.tokenizer.decode(text_ids[:keep]))])[0]

        keep = len(text_ids) - excess
        row = prompt(keep) if keep > 0 else None
        if row is not None and len(row) <= limit:
            return row
        lo, hi, best = 1, keep - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            row = prompt(mid)
            if len(row) <= limit:
                best, lo = row, mid + 1
            else:
                hi = mid - 1
        if best is None:
            raise SpecError(
                f"spec {self.spec.name!r}: max_length {limit} leaves no room for the message after the "
                "prompt template; raise max_length or shorten prompt.system"
            )
        return best

    def label_token_ids(self) -> list[list[int]]:
        """Token ids of each label word as it continues the prompt (same tokenization context)."""
        context = self.render("x")
        ctx_ids = self.tokenizer(context, add_special_tokens=self.add_special_tokens)["input_ids"]
        out = []
        for label in self.spec.labels:
            full = self.tokenizer(context + self.answer_sep + label.word,
                                  add_special_tokens=self.add_special_tokens)["input_ids"]
            if full[: len(ctx_ids)] != ctx_ids or len(full) == len(ctx_ids):
                raise SpecError(
                    f"spec {self.spec.name!r}: label {label.name!r} (word {label.word!r}) does not tokenize as a "
                    "continuation of the prompt; change prompt.answer_prefix or labels[].verbalizer"
                )
            out.append(full[len(ctx_ids):])
        firsts = [ids[0] for ids in out]
        if len(set(firsts)) != len(firsts):
            raise SpecError(
                f"spec {self.spec.name!r}: label words {[lab.word for lab in self.spec.labels]} do not all start "
                "with different tokens, so one forward pass cannot tell them apart; set distinct labels[].verbalizer"
            )
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is not None and unk in firsts:
            raise SpecError(f"spec {self.spec.name!r}: a label word is an unknown token for this tokenizer")
        return out
