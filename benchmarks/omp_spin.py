"""Raw MiniLM throughput on a fresh thread, with or without a main-thread warm-up first.

    python -m benchmarks.omp_spin fresh      # first torch call on a worker thread
    python -m benchmarks.omp_spin warm       # one call in the main thread first (as daemon_proc does)
    GOMP_SPINCOUNT=1000 python -m benchmarks.omp_spin fresh

Run the modes alternately while other jobs load the cores: libgomp spins much longer at barriers
while a process has no more OpenMP threads than cores (see raw_classifier.RawClassifier).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from benchmarks import common as c


def fresh_thread_rate(clf, texts: list[str], batch: int) -> float:
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    out: list[float] = []

    def work() -> None:
        clf.classify(chunks[0])
        t0 = time.perf_counter()
        for chunk in chunks[1:]:
            clf.classify(chunk)
        out.append(sum(map(len, chunks[1:])) / (time.perf_counter() - t0))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out[0]


def main() -> int:
    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    mode = sys.argv[1] if len(sys.argv) > 1 else "fresh"
    clf = load_classifier(ModelSettings(max_length=512))
    texts = c.texts_of_tokens(clf.tokenizer, 16, 80)
    if mode == "warm":
        clf.classify(texts[:8])
    rates = [fresh_thread_rate(clf, texts[:64], 8) for _ in range(3)]
    print(f"{mode} GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')} load {os.getloadavg()[0]:.1f}: "
          + " / ".join(f"{r:.1f}" for r in rates) + " msg/s (16 tokens, batches of 8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
