"""(6) Scale law: throughput and cost per message by message length and batch limit.

For each batch limit one MiniLM daemon process (max_length 512, so 256-token messages are not
truncated); for each message length, interleaved with the raw classifier on the same texts and
batches (run as the daemon process runs its model: see raw_classifier.RawClassifier). Each run has at
least four batches, so a rate spans at least three writes. Cost per message: wall milliseconds
(1 / throughput on the whole machine) and CPU milliseconds of the daemon process and of the raw
classifier (all threads, torch's included); their difference is what the pipeline adds.
"""

from __future__ import annotations

import time

import psutil

from benchmarks import common as c
from benchmarks.raw_classifier import RawClassifier

HEADERS = ["tokens", "batch limit", "messages per run", "raw msg/s", "daemon msg/s", "daemon ÷ raw", "wall ms/msg",
           "raw CPU ms/msg", "daemon CPU ms/msg", "runs (raw / daemon msg/s)"]
MIN_BATCHES = 4


def scale_law(sz, broker: c.Broker, db: c.Db, db_url: str) -> list[list[str]]:
    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    clf = load_classifier(ModelSettings(max_length=512))
    longest = MIN_BATCHES * max(sz.scale_batches) + max(sz.scale_min_messages.values())
    texts = {tok: c.texts_of_tokens(clf.tokenizer, tok, longest) for tok in sz.scale_tokens}
    raw = RawClassifier(clf, texts[sz.scale_tokens[0]][:max(sz.scale_batches)])
    out = []
    try:
        for batch in sz.scale_batches:
            topics = broker.topics(f"scale{batch}")
            daemon = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=batch, max_length=512))
            proc = psutil.Process(daemon.proc.pid)
            try:
                for tok in sz.scale_tokens:
                    n = max(sz.scale_min_messages[tok], MIN_BATCHES * batch)
                    chunk = texts[tok][:n]
                    raws, raw_cpus, ours, cpus = [], [], [], []
                    for rep in range(sz.reps):
                        rate, cpu = raw.rate(chunk, batch)
                        raws.append(rate)
                        raw_cpus.append(cpu)
                        prefix = f"s{batch}-{tok}-{rep}-"
                        cpu0 = sum(proc.cpu_times()[:2])
                        broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(chunk)))
                        produced = time.time()
                        db.wait_count(prefix, n, timeout=900, proc=daemon.proc)
                        cpus.append((sum(proc.cpu_times()[:2]) - cpu0) * 1000 / n)
                        ours.append(db.steady_rate(prefix, after=produced))
                    ratios = [o / r for o, r in zip(ours, raws)]
                    out.append([str(tok), str(batch), str(n), f"{c.median(raws):.1f}", f"{c.median(ours):.1f}",
                                f"{c.median(ratios):.2f}", f"{1000 / c.median(ours):.2f}",
                                f"{c.median(raw_cpus):.2f}", f"{c.median(cpus):.2f}",
                                f"{c.fmt_runs(raws)} / {c.fmt_runs(ours)}"])
            finally:
                daemon.stop()
    finally:
        raw.close()
    return out
