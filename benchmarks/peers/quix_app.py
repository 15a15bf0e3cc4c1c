"""The peer: the daemon's job as an idiomatic Quix Streams application.

    .venv-quix/bin/python -m benchmarks.peers.quix_app SETTINGS_JSON KIND     (make peers)

Reads the input topic, and in a ``BatchingSink.write`` (Quix's batch, one per partition and
checkpoint; Quix's JSON deserializer has decoded each message) classifies the batch (``KIND``: ``minilm``, the daemon's
default model loaded by the same loader, in batches of ``batch.max_size``; or ``constant``),
writes the rows with Quix's own PostgreSQL sink (``ON CONFLICT DO NOTHING`` on the message id)
and produces one prediction per message to the output topic, flushed before the checkpoint
commits: at-least-once, Quix's default guarantee. Quix's defaults otherwise, but a checkpoint
every second, not 5 s: a run is timed from its first message until the group's committed offset
reaches the end (benchmarks.capacity), so a longer interval would leave Quix idle waiting for its
timer; one second still gives it large batches. SETTINGS_JSON is the daemon's
(benchmarks.common.daemon_settings). Prints ``READY`` at the first message; SIGTERM stops it
(Quix's own handler), exit 0.

Runs in its own virtual environment (Quix pins confluent-kafka < 2.13; the project's demo extra
pins 2.16), which reads the project's packages from ``.venv`` after its own.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

import orjson
from confluent_kafka import KafkaException
from quixstreams import Application
from quixstreams.models.topics.admin import TopicAdmin, TopicConfig
from quixstreams.sinks import SinkBatch
from quixstreams.sinks.community.postgresql import PostgreSQLSink
from sqlalchemy.engine import make_url


def _inspect_without_configs(inspect):
    """librdkafka's mock cluster answers no DescribeConfigs, which Quix asks of every topic it is
    given: there, fall back to the partition counts alone (a benchmark accommodation; tansu answers)."""

    def wrapped(self, topic_names, timeout=None):
        try:
            return inspect(self, topic_names, timeout=timeout)
        except KafkaException:
            topics = self.list_topics(timeout=timeout)
            return {t: TopicConfig(num_partitions=len(topics[t].partitions), replication_factor=1)
                    if t in topics else None for t in topic_names}

    return wrapped


TopicAdmin.inspect_topics = _inspect_without_configs(TopicAdmin.inspect_topics)


def classifier_of(kind: str, model_settings: dict):
    if kind == "constant":
        from benchmarks.common import ConstantClassifier

        return ConstantClassifier()
    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    clf = load_classifier(ModelSettings(**model_settings))
    clf.classify(["warm up the model"] * 32)
    return clf


class PredictionSink(PostgreSQLSink):
    """Quix's PostgreSQL sink, its batch classified first and each prediction produced."""

    def __init__(self, classifier, batch_size: int, producer, output_topic: str, **pg) -> None:
        super().__init__(**pg)
        self.classifier, self.batch_size = classifier, batch_size
        self.producer, self.output_topic = producer, output_topic

    def write(self, batch: SinkBatch) -> None:
        items = list(batch)
        received = time.time()
        docs = [item.value for item in items]
        texts = [d["text"] for d in docs]
        probs = [row for start in range(0, len(texts), self.batch_size)
                 for row in self.classifier.classify(texts[start:start + self.batch_size]).probs]
        labels = self.classifier.labels
        now = datetime.now(timezone.utc)
        for item, doc, row in zip(items, docs, probs):
            scores = dict(zip(labels, map(float, row)))
            top = sorted(scores.values(), reverse=True)
            label_id = int(row.argmax())
            item.value = {
                "message_id": str(doc["id"]), "text": doc["text"], "label": labels[label_id],
                "label_id": label_id, "scores": scores, "confidence": top[0],
                "model_version": self.classifier.model_version, "source": doc.get("source"),
                "topic": batch.topic, "partition": batch.partition, "offset": item.offset,
                "latency_ms": (time.time() - received) * 1000,
                "received_at": datetime.fromtimestamp(item.timestamp / 1000, timezone.utc),
                "classified_at": now, "margin": top[0] - top[1],
            }
        super().write(batch)
        for item in items:
            v = item.value
            out = {k: v[k] for k in ("message_id", "label", "label_id", "scores", "confidence", "model_version",
                                     "latency_ms", "source")}
            out |= {"received_at": v["received_at"].isoformat(), "classified_at": v["classified_at"].isoformat()}
            self.producer.produce(self.output_topic, key=v["message_id"].encode(), value=orjson.dumps(out))
        self.producer.flush()


def _announce_first():
    """READY at the first message: Quix has joined the group and fetched (the runner's clock starts)."""
    seen = False

    def announce(value) -> None:
        nonlocal seen
        if not seen:
            seen = True
            print("READY", flush=True)

    return announce


def main() -> int:
    settings = json.loads(sys.argv[1])
    kind = sys.argv[2]
    k, url = settings["kafka"], make_url(settings["database"]["url"])
    app = Application(broker_address=k["bootstrap_servers"], consumer_group=k["group_id"] + "-quix",
                      auto_offset_reset="earliest", loglevel="WARNING", commit_interval=1.0,
                      consumer_extra_config={"fetch.wait.max.ms": k.get("fetch_max_wait_ms", 500)},
                      on_processing_error=None)
    sink = PredictionSink(
        classifier_of(kind, settings.get("model", {})), settings["batch"]["max_size"], app.get_producer(),
        k["output_topic"], host=url.host, port=url.port or 5432, dbname=url.database, user=url.username,
        password=url.password or "", table_name="predictions", schema_auto_update=False,
        primary_key_columns="message_id", on_conflict_do_nothing=True, include_metadata=False,
    )
    topic = app.topic(k["input_topics"][0], value_deserializer="json", key_deserializer="bytes")
    sdf = app.dataframe(topic)
    sdf.update(_announce_first())
    sdf.sink(sink)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
