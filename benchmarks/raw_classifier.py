"""The reference side of the pipeline's efficiency (benchmarks.pipeline) and of the scale law
(benchmarks.scale): the classifier in the benchmark's own process."""

from __future__ import annotations

import queue
import threading
import time


class RawClassifier:
    """The classifier in this process, run as the daemon process runs it: warmed up in the main
    thread (as benchmarks/daemon_proc.py does), then every batch on one long-lived worker thread
    (as the daemon's inference worker).

    Both matter on a shared machine, through libgomp (torch's intra-op threads): it spins at each
    barrier far longer (GOMP_SPINCOUNT 300k vs 1k) while a process has no more OpenMP threads than
    cores, which the main thread's team tips over; a spinning thread starves the one it waits for
    when other jobs share the cores. Measured at load 4-10, batches of 8: fresh thread, no
    main-thread warm-up 3-23 msg/s; the same with GOMP_SPINCOUNT=1000 69-96; with the warm-up
    66-169 (see RESULTS.md).
    """

    def __init__(self, clf, warm_up: list[str]) -> None:
        self.clf = clf
        clf.classify(warm_up)
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="raw-classifier", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._done.put(job())
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._done.put(e)

    def rate(self, texts: list[str], batch: int) -> tuple[float, float]:
        """Throughput (msg/s) and this process's CPU ms per message, tokenization included, in the
        daemon's batches; the first batch is excluded, as the daemon's first write is."""
        chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]

        def work() -> tuple[float, float]:
            self.clf.classify(chunks[0])
            n = sum(len(ch) for ch in chunks[1:])
            cpu0, t0 = time.process_time(), time.perf_counter()
            for chunk in chunks[1:]:
                self.clf.classify(chunk)
            return n / (time.perf_counter() - t0), (time.process_time() - cpu0) * 1000 / n

        self._jobs.put(work)
        out = self._done.get()
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
