"""``sentistream classify`` at default settings: text in a language the model does not serve is
classified all the same, its JSON line says so, and stderr carries one warning without the text."""

from __future__ import annotations

import json

from tests.cli.runner import json_lines, sentistream

EN = "I love this film, it is wonderful"
KO = "이 영화 정말 재밌어요 배우들 연기가 최고"


def test_korean_and_english_lines():
    proc = sentistream("classify", EN, KO)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = json_lines(proc.stdout)
    assert [(r["message_id"], r["lang"], r["lang_supported"]) for r in rows] == [("0", "en", True),
                                                                                ("1", "ko", False)]
    assert all(r["label"] in ("negative", "positive") for r in rows)
    stderr = proc.stderr.decode()
    warnings = [line for line in stderr.splitlines() if "unsupported_language" in line]
    assert len(warnings) == 1, stderr
    # Not a TTY: logs are JSON lines. Ids and languages only, never the text.
    warning = json.loads(warnings[0])
    assert warning["level"] == "warning"
    assert (warning["count"], warning["languages"], warning["message_ids"]) == (1, {"ko": 1}, ["1"])
    assert warning["model_languages"] == ["en"]
    assert KO not in stderr and "영화" not in stderr
