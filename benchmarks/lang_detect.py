"""Language detectors for short messages: accuracy on tweets and Korean reviews, speed, memory.

    .venv/bin/python -m benchmarks.lang_detect [--n 2000]

Each detector runs in its own process (so its memory is its own) over: TweetEval test tweets
(English), NSMC test reviews and KOTE test comments (Korean), and a few hand-written short
messages in six other languages. lingua-language-detector is optional here (not a dependency):
``pip install lingua-language-detector`` to include it.

accuracy: the detector's answer is the expected language; other: it named another language (for
English tweets that is a false "unsupported" warning); abstain: no answer (confidence too low, or a
code that names no language: py3langid's zxx, "no linguistic content").
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

from benchmarks.common import DATA_DIR
from models.languages import MIN_CONFIDENCE, normalize

# Short, tweet-like messages written for this benchmark (no public set of these is in shared/data).
OTHER = {
    "fr": ["trop bien ce film, je le reverrais demain", "le service était nul, plus jamais",
           "quelqu'un sait à quelle heure ouvre la gare ?", "j'adore ce nouveau café en bas de chez moi",
           "encore en retard ce matin, merci la SNCF", "on se voit ce soir pour le match ?",
           "la pire livraison de ma vie", "bonne nuit tout le monde"],
    "de": ["das war der beste Urlaub seit Jahren", "schon wieder Stau auf der Autobahn",
           "kann mir jemand ein gutes Restaurant empfehlen?", "der Kundenservice ist eine Katastrophe",
           "endlich Wochenende, ich freue mich so", "das Essen war kalt und viel zu teuer",
           "wer kommt morgen mit ins Kino?", "ich habe keine Lust mehr auf diesen Regen"],
    "es": ["me encantó la película, la recomiendo", "el pedido llegó roto y nadie responde",
           "¿alguien sabe si hay partido hoy?", "qué buen día para ir a la playa",
           "el peor servicio que he tenido nunca", "mañana empiezo el nuevo trabajo, qué nervios",
           "gracias a todos por los mensajes", "no funciona la aplicación desde ayer"],
    "ja": ["この映画は本当に面白かった", "電車がまた遅れている、最悪", "明日の天気はどうかな",
           "新しいカフェのケーキが美味しすぎる", "サポートの対応がひどかった", "今日は疲れたので早く寝ます",
           "週末は友達と買い物に行く予定", "このアプリすぐ落ちる"],
    "zh": ["这部电影太好看了，强烈推荐", "快递又迟到了，真让人生气", "今天天气不错，出去走走",
           "这家餐厅的服务太差了", "终于放假了，好开心", "有人知道这个问题怎么解决吗",
           "新手机用起来很顺手", "排队排了两个小时，累死了"],
    "ru": ["отличный фильм, всем советую", "опять опоздал автобус, ужас",
           "кто-нибудь знает, где купить билеты?", "самый худший сервис в моей жизни",
           "наконец-то выходные, ура", "еда была холодной и невкусной",
           "спасибо всем за поздравления", "приложение не работает со вчерашнего дня"],
}
MENTION_OR_URL = re.compile(r"@\w+|https?://\S+")


def tweeteval(n: int) -> list[str]:
    with (DATA_DIR / "tweeteval_sentiment" / "test_text.txt").open(encoding="utf-8") as f:
        return [line.strip() for line, _ in zip(f, range(n)) if line.strip()]


def nsmc(n: int) -> list[str]:
    out = []
    with (DATA_DIR / "nsmc" / "ratings_test.txt").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["document"].strip():
                out.append(row["document"].strip())
            if len(out) == n:
                break
    return out


def kote(n: int) -> list[str]:
    with (DATA_DIR / "kote" / "test.tsv").open(encoding="utf-8") as f:
        return [line.split("\t")[1].strip() for line, _ in zip(f, range(n))]


def datasets(n: int) -> dict[str, tuple[str, list[str]]]:
    sets = {"TweetEval test (en)": ("en", tweeteval(n)), "NSMC test (ko)": ("ko", nsmc(n)),
            "KOTE test (ko)": ("ko", kote(n))}
    sets |= {f"hand-written ({lang})": (lang, texts) for lang, texts in OTHER.items()}
    return sets


def py3langid(clean: bool = False) -> Callable[[list[str]], list]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(texts: list[str]) -> list:
        return [normalize(ident.classify(MENTION_OR_URL.sub(" ", t) if clean else t)[0]) for t in texts]

    return detect


def shipped() -> Callable[[list[str]], list]:
    """What the daemon runs: models.languages (py3langid, answers below MIN_CONFIDENCE dropped)."""
    from models.languages import LanguageDetector

    return LanguageDetector().detect


def lingua(low_accuracy: bool = False, min_distance: float = 0.0) -> Callable[[list[str]], list]:
    from lingua import LanguageDetectorBuilder

    b = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
    if low_accuracy:
        b = b.with_low_accuracy_mode()
    if min_distance:
        b = b.with_minimum_relative_distance(min_distance)
    det = b.build()

    def detect(texts: list[str]) -> list:
        found = [det.detect_language_of(texts[0])] if len(texts) == 1 else det.detect_languages_in_parallel_of(texts)
        return [None if r is None else r.iso_code_639_1.name.lower() for r in found]

    return detect


DETECTORS: dict[str, Callable[[], Callable]] = {
    "py3langid": py3langid,
    "py3langid, @user/URL removed": lambda: py3langid(clean=True),
    f"py3langid, min confidence {MIN_CONFIDENCE} (models.languages)": shipped,
    "lingua (high accuracy)": lingua,
    "lingua (low accuracy)": lambda: lingua(low_accuracy=True),
    "lingua (high accuracy, min distance 0.1)": lambda: lingua(min_distance=0.1),
}


def run_one(name: str, n: int) -> dict:
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    detect = DETECTORS[name]()
    load_s = time.perf_counter() - t0
    out: dict = {"detector": name, "load_s": load_s, "sets": {}}
    for set_name, (expected, texts) in datasets(n).items():
        got = detect(texts)
        out["sets"][set_name] = {
            "n": len(texts),
            "accuracy": sum(g == expected for g in got) / len(texts),
            "other": sum(g is not None and g != expected for g in got) / len(texts),
            "abstain": sum(g is None for g in got) / len(texts),
        }
    tweets = tweeteval(n)
    per_msg = []
    for _ in range(3):  # one call per message (the daemon's worst case: batches of one)
        t0 = time.perf_counter()
        for t in tweets:
            detect([t])
        per_msg.append((time.perf_counter() - t0) / len(tweets))
    batched = []
    for _ in range(3):  # one call for all
        t0 = time.perf_counter()
        detect(tweets)
        batched.append((time.perf_counter() - t0) / len(tweets))
    out["us_per_msg"] = statistics.median(per_msg) * 1e6
    out["us_per_msg_batched"] = statistics.median(batched) * 1e6
    out["rss_mb"] = (proc.memory_info().rss - rss0) / 2**20
    return out


def table(results: list[dict]) -> str:
    sets = list(results[0]["sets"])
    head = "| detector | " + " | ".join(sets) + " | µs/msg (one call each) | µs/msg (one call) | load s | RSS MB |"
    lines = [head, "|" + "---|" * (len(sets) + 5)]
    for r in results:
        cells = [f"{r['sets'][s]['accuracy']:.3f} ({r['sets'][s]['other']:.3f}/{r['sets'][s]['abstain']:.3f})"
                 for s in sets]
        lines.append(f"| {r['detector']} | " + " | ".join(cells)
                     + f" | {r['us_per_msg']:.0f} | {r['us_per_msg_batched']:.0f} | {r['load_s']:.1f} "
                     f"| {r['rss_mb']:.0f} |")
    counts = ", ".join(f"{s}: {results[0]['sets'][s]['n']}" for s in sets)
    return "\n".join(lines) + f"\n\nCells: accuracy (other / abstain). Messages: {counts}."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="messages per public data set")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # run one detector, print JSON (child process)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.n)))
        return 0
    results = []
    for name in DETECTORS:
        p = subprocess.run([sys.executable, "-m", "benchmarks.lang_detect", "--n", str(args.n), "--one", name],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{name}: skipped ({p.stderr.strip().splitlines()[-1]})", file=sys.stderr)
            continue
        results.append(json.loads(p.stdout))
    print(f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"load average {', '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
