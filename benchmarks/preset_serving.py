"""Presets served by the daemon as its own process (``sentistream run``'s path: the embedded mock
broker, a fresh Postgres database): end-to-end msg/s and peak RSS per preset.

    SENTISTREAM_MODEL__CACHE_DIR=... python -m benchmarks.preset_serving PRESET [PRESET ...] --messages 200

English presets read SST-2 train sentences, presets whose languages are Korean read KOTE test
sentences (``$SENTISTREAM_DATA_DIR``). One daemon process per preset, one after another.
"""

from __future__ import annotations

import argparse
import csv
import time

from benchmarks import common as c


def korean_texts(limit: int) -> list[str]:
    with (c.DATA_DIR / "kote" / "test.tsv").open(newline="", encoding="utf-8") as f:
        rows = [r[1].strip() for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r[1].strip()]
    return rows[:limit]


def serve(preset: str, messages: int, batch: int, broker: c.Broker, db_url: str) -> list:
    from models.spec import load_spec
    from schemas.settings import Settings

    spec = load_spec(preset)
    texts = korean_texts(messages) if "ko" in spec.languages else c.load_texts(messages)
    topics = broker.topics(preset.split("-")[0])
    model = {"preset": preset, "cache_dir": str(Settings().model.cache_dir or "") or None, "device": "cpu"}
    t0 = time.monotonic()
    daemon = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=batch, model=model))
    ready_s = time.monotonic() - t0
    db = c.Db(db_url)
    try:
        prefix = f"{preset}-"
        broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)))
        produced = time.time()
        db.wait_count(prefix, len(texts), timeout=3600, proc=daemon.proc)
        rate = db.steady_rate(prefix, after=produced)
    finally:
        report = daemon.stop()
        db.close()
    return [preset, len(texts), batch, f"{ready_s:.0f}", f"{rate:.1f}", f"{report['peak_rss_mib']:.0f}"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("presets", nargs="+")
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    broker = c.Broker()
    rows = []
    try:
        with c.database() as url:
            for preset in args.presets:
                rows.append(serve(preset, args.messages, args.batch, broker, url))
                print(rows[-1], flush=True)
    finally:
        broker.close()
    print(c.table(["preset", "messages", "batch", "start to ready (s)", "daemon msg/s", "peak RSS (MiB)"], rows,
                  title=f"Presets served by the daemon, CPU ({c.machine()})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
