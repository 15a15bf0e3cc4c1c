"""Languages: what a spec serves, what a message is in, and whether the one serves the other."""

from __future__ import annotations

import pytest

from models.errors import SpecError
from models.languages import LanguageSupport, detector, normalize
from models.spec import load_spec, preset_names

DEFAULT = "minilm-lora-sst2"
# Short messages, as in a stream: tweets and reviews in the languages the tests need.
SAMPLES = {
    "en": "@user the new update is awful, my phone keeps crashing",
    "ko": "이 영화 정말 재밌어요 배우들 연기가 최고",
    "fr": "le service était nul, plus jamais je reviens ici",
    "ja": "この映画は本当に面白かった",
}


def attrs(lang, source=None, topic=None) -> dict:
    return {"source": source, "lang": lang, "topic": topic}


def with_routes(languages, routes) -> LanguageSupport:
    spec = load_spec(DEFAULT).with_overrides(
        languages=languages, routes=routes,
        adapters=[{"name": "korean", "path": "/adapters/korean"}, {"name": "shop", "path": "/adapters/shop"}],
    )
    return LanguageSupport.of(spec)


def test_every_preset_declares_its_languages():
    for name in preset_names():
        expected = ("ko",) if name.startswith("s2-") else ("en",)  # S2 is the Korean card
        assert load_spec(name).languages == expected, name


def test_spec_languages_are_lower_case_codes():
    spec = load_spec(DEFAULT).with_overrides(languages=["EN", " en", "Ko"])
    assert spec.languages == ("en", "ko")
    with pytest.raises(SpecError, match="languages.*ISO 639-1"):
        load_spec(DEFAULT).with_overrides(languages=["en-US"])


@pytest.mark.parametrize(("code", "primary"), [
    ("en", "en"), ("EN", "en"), ("en-US", "en"), ("pt_BR", "pt"), (" ko ", "ko"),
    ("und", None), ("zxx", None), ("", None), (None, None),
])
def test_normalize_keeps_the_primary_subtag(code, primary):
    assert normalize(code) == primary


def test_detects_short_messages():
    langs = list(SAMPLES)
    assert detector().detect([SAMPLES[lang] for lang in langs]) == langs


def test_no_language_in_the_text_is_unknown():
    assert detector().detect(["😂😂😂 🎉", "...", "12345"]) == [None, None, None]


def test_default_preset_serves_english_only():
    support = LanguageSupport.of(load_spec(DEFAULT))
    assert support.checks
    assert support.supported(attrs("en")) is True
    assert support.supported(attrs("en-GB")) is True
    assert support.supported(attrs("ko")) is False
    assert support.supported(attrs(None)) is None
    assert support.supported(attrs("und")) is None


def test_spec_without_languages_flags_nothing():
    support = LanguageSupport.of(load_spec(DEFAULT).with_overrides(languages=[]))
    assert not support.checks
    assert support.supported(attrs("ko")) is None


def test_a_route_on_lang_serves_that_language():
    support = with_routes(["en"], [{"adapter": "korean", "lang": "ko"}])
    assert support.supported(attrs("ko")) is True
    assert support.supported(attrs("en")) is True
    assert support.supported(attrs("ja")) is False


def test_a_route_serves_its_language_only_for_the_messages_it_matches():
    support = with_routes(["en"], [{"adapter": "korean", "source": "shop", "lang": "ko"}])
    assert support.supported(attrs("ko", source="shop")) is True
    # Korean from elsewhere goes to the default adapter, which serves English.
    assert support.supported(attrs("ko", source="twitter")) is False


def test_a_route_without_lang_leaves_the_decision_to_the_spec_languages():
    support = with_routes(["en"], [{"adapter": "shop", "source": "shop"}])
    assert support.supported(attrs("en", source="shop")) is True
    assert support.supported(attrs("ko", source="shop")) is False


def test_routes_alone_declare_their_languages():
    support = with_routes([], [{"adapter": "korean", "lang": "ko"}])
    assert support.checks
    assert support.supported(attrs("ko")) is True
    # The default adapter declares no languages: unknown, not unsupported.
    assert support.supported(attrs("fr")) is None


def test_resolve_detects_only_where_lang_is_absent():
    support = LanguageSupport.of(load_spec(DEFAULT))
    texts = [SAMPLES["ko"], SAMPLES["ko"], SAMPLES["fr"], "😂😂😂", "😂😂😂"]
    given = ["en-US", None, "und", None, "und"]
    # Given codes are kept as given; 'und' counts as absent; nothing detected leaves what was given.
    assert support.resolve(texts, given) == ["en-US", "ko", "fr", None, "und"]
