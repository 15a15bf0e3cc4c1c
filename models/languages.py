"""Which language a message is in, and whether the model's spec serves it.

A message's language is the ``lang`` it gives, else detected by py3langid. On English tweets it is
right as often as lingua-language-detector (0.94 vs 0.96 high-accuracy, 0.90 low-accuracy) at about
60 µs a message on one CPU core against about 3 ms, in 75 MB against 1.3 GB (benchmarks/RESULTS.md,
"models: language detection"). It is imported on first use: specs that declare no languages never load it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from models.errors import MissingBackendError
from models.spec import ModelSpec, RouteRule

# A less sure answer counts as "unknown" (lang_supported None, no warning): on English tweets this
# turns 5.7 % wrong languages into 1.3 % wrong and 10 % unknown, while 98 % of Korean reviews are
# still found (benchmarks/RESULTS.md).
MIN_CONFIDENCE = 0.2
# The detector reads a tweet's length at most: enough to tell, and its cost (a Python loop over the
# UTF-8 bytes) stays bounded for long reviews.
DETECT_CHARS = 280
# Codes that name no language: undetermined (also Twitter's value), no linguistic content, multiple.
_NO_LANGUAGE = frozenset({"", "und", "zxx", "mul", "mis"})


def normalize(code: str | None) -> str | None:
    """The primary language subtag, lower case ('en-US', 'EN', 'en_GB' -> 'en'); None if it names none."""
    if code is None:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return None if primary in _NO_LANGUAGE else primary


class LanguageDetector:
    """py3langid over every language it knows, abstaining below ``min_confidence``."""

    def __init__(self, min_confidence: float = MIN_CONFIDENCE) -> None:
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError:
            raise MissingBackendError(
                "the model spec declares languages, and detecting a message's language needs py3langid: "
                "pip install py3langid"
            ) from None
        self._ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True, min_confidence=min_confidence)

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        """One code per text (ISO 639-1 where the language has one), None where unsure."""
        return [normalize(self._ident.classify(t[:DETECT_CHARS])[0]) for t in texts]


_detector: LanguageDetector | None = None
_detector_lock = threading.Lock()


def detector() -> LanguageDetector:
    """The process's detector, loaded once (about 0.5 s and 75 MB)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            _detector = LanguageDetector()
        return _detector


@dataclass(frozen=True)
class LanguageSupport:
    """The languages one spec serves: its ``languages`` and the ``lang`` of each of its routes."""

    languages: frozenset[str]
    routes: tuple[RouteRule, ...] = ()

    @classmethod
    def of(cls, spec: ModelSpec) -> LanguageSupport:
        support = cls(frozenset(spec.languages), spec.routes)
        if support.checks:
            detector()  # at start-up, not on the first message
        return support

    @property
    def checks(self) -> bool:
        """Whether any language is declared; if none is, nothing is detected or flagged."""
        return bool(self.languages) or any(r.lang is not None for r in self.routes)

    def resolve(self, texts: Sequence[str], given: Sequence[str | None]) -> list[str | None]:
        """Each message's language: the ``lang`` it gives, else the detected one (one detector call)."""
        langs = list(given)
        missing = [i for i, g in enumerate(given) if normalize(g) is None]
        if missing:
            for i, found in zip(missing, detector().detect([texts[i] for i in missing]), strict=True):
                if found is not None:
                    langs[i] = found
        return langs

    def supported(self, attrs: dict) -> bool | None:
        """Whether the model serves a message with these attributes (source, lang, topic): True if its
        language is declared or a route matching on ``lang`` takes it; None if the language is
        unknown or the adapter that serves it declares none."""
        lang = normalize(attrs.get("lang"))
        if lang is None:
            return None
        rule = next((r for r in self.routes if r.matches(attrs)), None)
        if rule is not None and rule.lang is not None:
            return True
        if not self.languages:
            return None
        return lang in self.languages
