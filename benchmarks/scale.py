"""(6) Scale law: throughput and cost per message by message length and batch limit.

For each batch limit one MiniLM daemon process (max_length 512, so 256-token messages are not
truncated); for each message length, interleaved with the raw classifier on the same texts and
batches. Cost per message: wall milliseconds (1 / throughput on the whole machine) and the
daemon process's CPU milliseconds (all its threads, torch's included).
"""

from __future__ import annotations

import time

import psutil

from benchmarks import common as c

HEADERS = ["tokens", "batch limit", "raw msg/s", "daemon msg/s", "daemon ÷ raw", "wall ms/msg",
           "daemon CPU ms/msg", "runs (daemon msg/s)"]


def scale_law(sz, broker: c.Broker, db: c.Db, db_url: str) -> list[list[str]]:
    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    from benchmarks.pipeline import raw_rate

    clf = load_classifier(ModelSettings(max_length=512))
    texts = {tok: c.texts_of_tokens(clf.tokenizer, tok, 4 * max(sz.scale_batches) + max(sz.scale_min_messages.values()))
             for tok in sz.scale_tokens}
    out = []
    for batch in sz.scale_batches:
        topics = broker.topics(f"scale{batch}")
        daemon = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=batch, max_length=512))
        proc = psutil.Process(daemon.proc.pid)
        try:
            for tok in sz.scale_tokens:
                n = max(sz.scale_min_messages[tok], 2 * batch)
                chunk = texts[tok][:n]
                raws, ours, cpus = [], [], []
                for rep in range(sz.reps):
                    raws.append(raw_rate(clf, chunk, batch))
                    prefix = f"s{batch}-{tok}-{rep}-"
                    cpu0 = sum(proc.cpu_times()[:2])
                    broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(chunk)))
                    produced = time.time()
                    db.wait_count(prefix, n, timeout=900, proc=daemon.proc)
                    cpus.append((sum(proc.cpu_times()[:2]) - cpu0) * 1000 / n)
                    ours.append(db.steady_rate(prefix, after=produced))
                raw, ours_m = c.median(raws), c.median(ours)
                out.append([str(tok), str(batch), f"{raw:.1f}", f"{ours_m:.1f}", f"{ours_m / raw:.2f}",
                            f"{1000 / ours_m:.2f}", f"{c.median(cpus):.2f}", c.fmt_runs(ours)])
        finally:
            daemon.stop()
    return out
