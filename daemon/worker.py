"""Stage 4 — classify: an inference worker thread apart from the poll loop, with its own queues.

A model error splits the batch and retries each half, so one bad message (or an out-of-memory
error on a large batch) costs only itself; a single message that still fails is dead-lettered.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import structlog

from daemon.batch import Batch, Classified
from daemon.metrics import Metrics
from models.base import Classifier, RoutedClassifier
from models.languages import LanguageSupport, normalize
from schemas.messages import CLASSIFY_FAILED, DeadLetter, utcnow
from schemas.settings import RetrySettings

log = structlog.get_logger(__name__)
_STOP = object()
_CODE = re.compile(r"[a-z]{2,3}")


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class InferenceWorker:
    def __init__(self, classifier: Classifier, retry: RetrySettings, metrics: Metrics, queue_size: int) -> None:
        self._classifier = classifier
        self._retry = retry
        self._metrics = metrics
        self.inbox: queue.Queue = queue.Queue(maxsize=queue_size)
        self.outbox: queue.Queue[Batch] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._pending = 0
        self._idle = threading.Condition()

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    def swap_classifier(self, classifier: Classifier) -> None:
        """Takes effect from the next batch: a batch is never split across two models."""
        self._classifier = classifier

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Batch, timeout: float) -> bool:
        """Queue a batch; False when the queue stayed full for ``timeout`` (backpressure)."""
        with self._idle:
            self._pending += 1
        try:
            self.inbox.put(batch, timeout=timeout)
        except queue.Full:
            with self._idle:
                self._pending -= 1
            return False
        return True

    @property
    def pending(self) -> int:
        """Batches submitted and not yet in the outbox (queued or being classified)."""
        return self._pending

    @property
    def idle(self) -> bool:
        return self._pending == 0

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted batch is in the outbox."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self.inbox.put(_STOP)
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            batch = self.inbox.get()
            if batch is _STOP:
                return
            try:
                self.process(batch)
            except Exception:  # never lose the batch: every message is dead-lettered below
                log.exception("inference_worker_error", size=len(batch.items))
            self.outbox.put(batch)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def process(self, batch: Batch) -> None:
        clf = self._classifier
        texts = [i.msg.text for i in batch.items]
        batch.predictions = [None] * len(texts)
        if not texts:
            return
        self._metrics.batch_size.observe(len(texts))
        support: LanguageSupport | None = getattr(clf, "language_support", None)
        checks = support is not None and support.checks
        langs = self._languages(support, texts, batch) if checks else [i.msg.lang for i in batch.items]
        routed = isinstance(clf, RoutedClassifier) and clf.routed
        # Per-message attributes: for classifiers that route between adapters, and the language check.
        attrs = ([{"source": i.msg.source, "lang": lang, "topic": i.topic} for i, lang in zip(batch.items, langs)]
                 if routed or checks else None)
        results: dict[int, tuple] = {}
        self._classify(clf, texts, attrs if routed else None, list(range(len(texts))), results)
        labels, model_version = clf.labels, clf.model_version
        classified_at = utcnow()  # the whole batch is classified at once
        for idx, item in enumerate(batch.items):
            res = results[idx]
            if isinstance(res, str):
                batch.dead.append(DeadLetter(
                    original=item.raw,
                    key=item.key, topic=item.topic, partition=item.partition, offset=item.offset,
                    error_kind=CLASSIFY_FAILED, error_text=res, message_id=item.msg.id,
                ))
                continue
            row, version, latency_ms = res
            supported = support.supported(attrs[idx]) if checks else None
            if supported is False:
                self._metrics.unsupported_language.labels(_metric_lang(langs[idx])).inc()
            label_id = int(row.argmax())
            probs = row.tolist()  # Python floats in one call, not one numpy scalar per label
            batch.predictions[idx] = Classified(
                item.msg.id, labels[label_id], label_id, dict(zip(labels, probs)), probs[label_id],
                model_version, version, latency_ms, item.msg.source, langs[idx], supported,
                _ms_to_dt(item.timestamp_ms), classified_at,
            )

    @staticmethod
    def _languages(support: LanguageSupport, texts: list[str], batch: Batch) -> list[str | None]:
        given = [i.msg.lang for i in batch.items]
        try:
            return support.resolve(texts, given)
        except Exception as e:  # noqa: BLE001 - the language is advisory: classify the batch without it
            log.warning("language_detection_failed", size=len(texts), error=type(e).__name__)
            return given

    @staticmethod
    def _call(clf: Classifier, texts: Sequence[str], attrs: Sequence[dict] | None, idx: list[int]):
        if attrs is None:
            return clf.classify([texts[i] for i in idx])
        return clf.classify([texts[i] for i in idx], [attrs[i] for i in idx])

    def _classify(self, clf: Classifier, texts: Sequence[str], attrs: Sequence[dict] | None,
                  idx: list[int], out: dict) -> None:
        try:
            t0 = time.perf_counter()
            res = self._call(clf, texts, attrs, idx)
            dt = time.perf_counter() - t0
            self._metrics.inference_latency.observe(dt)
            for k, i in enumerate(idx):
                out[i] = (res.probs[k], res.adapter_versions[k], dt * 1000)
            return
        except Exception as e:  # noqa: BLE001 - any model error is handled by splitting
            self._metrics.classify_retries.inc()
            _free_device_memory()
            err = f"{type(e).__name__}: {e}"[:500]
            log.warning("classify_failed", size=len(idx), error=type(e).__name__)
        if len(idx) > 1:
            mid = len(idx) // 2
            self._classify(clf, texts, attrs, idx[:mid], out)
            self._classify(clf, texts, attrs, idx[mid:], out)
            return
        delay = self._retry.initial_backoff_ms / 1000
        for _ in range(self._retry.classify_attempts - 1):
            time.sleep(delay)
            delay *= 2
            try:
                res = self._call(clf, texts, attrs, idx)
                out[idx[0]] = (res.probs[0], res.adapter_versions[0], 0.0)
                return
            except Exception as e:  # noqa: BLE001
                err = f"{type(e).__name__}: {e}"[:500]
        out[idx[0]] = err


def _metric_lang(lang: str | None) -> str:
    # A message can give any string as its lang: the metric's label set stays small and safe.
    code = normalize(lang)
    return code if code is not None and _CODE.fullmatch(code) else "other"


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
