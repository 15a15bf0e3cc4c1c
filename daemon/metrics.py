"""Prometheus metrics of one daemon, in their own registry (several daemons may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter("sentistream_consumed", "Records read from Kafka", ["topic"], registry=r)
        self.classified = Counter(
            "sentistream_classified", "Messages classified and written", ["label"], registry=r
        )
        self.unsupported_language = Counter(
            "sentistream_unsupported_language",
            "Messages classified although the model's spec does not serve their language", ["lang"], registry=r,
        )
        self.dead_lettered = Counter(
            "sentistream_dead_lettered", "Messages sent to the dead-letter topic", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "sentistream_batch_size", "Messages per inference batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r,
        )
        self.inference_latency = Histogram(
            "sentistream_inference_latency_seconds", "Model time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.end_to_end_latency = Histogram(
            "sentistream_end_to_end_latency_seconds",
            "Kafka record timestamp to offset commit, per message", buckets=LATENCY_BUCKETS, registry=r,
        )
        self.checkpoint_latency = Histogram(
            "sentistream_checkpoint_seconds", "Time to write, flush and commit a batch",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.consumer_lag = Gauge(
            "sentistream_consumer_lag", "High watermark minus position", ["topic", "partition"], registry=r
        )
        self.sink_failures = Counter(
            "sentistream_sink_failures", "Failed sink writes (retried)", ["sink"], registry=r
        )
        self.paused = Gauge("sentistream_paused", "1 while partitions are paused by backpressure", registry=r)
        self.classify_retries = Counter(
            "sentistream_classify_retries", "Batches split or retried after a model error", registry=r
        )
