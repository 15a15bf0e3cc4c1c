"""Soak: the daemon streams for a long time at a fixed fraction of its capacity.

    python -m benchmarks.soak                          # 10 minutes at 70% of capacity, MiniLM
    python -m benchmarks.soak --minutes 2 --model constant

1. Capacity: a backlog of ``--capacity-messages`` is drained; the steady write rate is the capacity.
2. Soak: messages are produced at ``--load`` x capacity for ``--minutes`` into the same daemon
   process. Its RSS (/proc/<pid>/status) is sampled every 5 s; end-to-end latency (Kafka record
   timestamp to the Postgres write) is taken per minute from the rows themselves.

Reported: RSS growth from the end of the first soak minute (warm-up) to the end (target < 5%), and
the p99 latency of each minute, with the drift last minute - first minute. The daemon runs as its
own process (benchmarks/daemon_proc.py) against the embedded broker and a throwaway Postgres DB.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from sqlalchemy import text

from benchmarks import common as c


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def per_minute(db: c.Db, prefix: str, t0: float) -> list[tuple[int, int, float, float]]:
    """(minute, messages, p50 ms, p99 ms) by the minute the message was produced in."""
    sql = (
        "select floor((extract(epoch from received_at) - :t0) / 60)::int as m, count(*), "
        "percentile_cont(0.5) within group (order by extract(epoch from written_at - received_at) * 1000), "
        "percentile_cont(0.99) within group (order by extract(epoch from written_at - received_at) * 1000) "
        "from predictions where message_id like :p group by m order by m"
    )
    with db.engine.connect() as conn:
        return [(int(m), int(n), float(p50), float(p99))
                for m, n, p50, p99 in conn.execute(text(sql), {"t0": t0, "p": prefix + "%"})]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--load", type=float, default=0.7, help="fraction of the measured capacity")
    ap.add_argument("--model", choices=("minilm", "constant"), default="minilm")
    ap.add_argument("--capacity-messages", type=int, default=3000)
    ap.add_argument("--max-size", type=int, default=32)
    args = ap.parse_args()

    print(c.machine())
    texts = c.load_texts(5000)
    broker = c.Broker()
    with c.database() as url:
        db = c.Db(url)
        topics = broker.topics("soak", partitions=3)
        daemon = c.DaemonProcess(c.daemon_settings(broker, url, topics, max_size=args.max_size), args.model)
        pid = daemon.proc.pid
        try:
            n_cap = args.capacity_messages
            broker.produce(topics["input"], (c.message("c", i, texts[i % len(texts)]) for i in range(n_cap)))
            db.wait_count("c", n_cap, timeout=3600, proc=daemon.proc)
            capacity = db.steady_rate("c")
            rate = args.load * capacity
            n_soak = int(rate * args.minutes * 60)
            print(f"capacity {capacity:.1f} msg/s; soak at {rate:.1f} msg/s for {args.minutes} min ({n_soak} messages)")

            t0 = time.time()
            producer = threading.Thread(target=broker.produce, args=(
                topics["input"], (c.message("s", i, texts[i % len(texts)]) for i in range(n_soak)), rate))
            producer.start()
            rss: list[tuple[float, float]] = []
            while producer.is_alive():
                rss.append((time.time() - t0, rss_mib(pid)))
                time.sleep(5)
            producer.join()
            db.wait_count("s", n_soak, timeout=600, proc=daemon.proc)
            rss.append((time.time() - t0, rss_mib(pid)))
        finally:
            report = daemon.stop()
        minutes = per_minute(db, "s", t0)
        db.close()
    broker.close()

    warm = next((r for t, r in rss if t >= 60), rss[0][1])
    growth = (rss[-1][1] - warm) / warm * 100
    print(c.table(["minute", "messages", "p50 ms", "p99 ms"],
                  [(m + 1, n, f"{p50:.0f}", f"{p99:.0f}") for m, n, p50, p99 in minutes],
                  title="end-to-end latency per minute (Kafka timestamp -> Postgres write)"))
    full = [x for x in minutes if x[0] < int(args.minutes)] or minutes  # the last minute may be partial
    print(c.table(
        ["model", "capacity msg/s", "soak msg/s", "minutes", "messages", "RSS after 1 min MiB", "RSS end MiB",
         "RSS growth", "p99 first min ms", "p99 last min ms", "p99 drift ms", "peak RSS MiB"],
        [(args.model, f"{capacity:.1f}", f"{rate:.1f}", args.minutes, n_soak, f"{warm:.0f}", f"{rss[-1][1]:.0f}",
          f"{growth:+.1f}%", f"{full[0][3]:.0f}", f"{full[-1][3]:.0f}", f"{full[-1][3] - full[0][3]:+.0f}",
          f"{report['peak_rss_mib']:.0f}")],
        title="soak summary"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
