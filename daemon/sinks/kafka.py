"""Output-topic and dead-letter-topic sink (kafka-python producer).

``transactional`` delivery sends the batch's records and its consumed offsets in one KIP-98
transaction; ``idempotent`` delivery flushes an idempotent producer and leaves the offset commit
to the checkpoint.
"""

from __future__ import annotations

import orjson
import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError, ProducerFencedError, TransactionalIdAuthorizationFailedError
from kafka.structs import OffsetAndMetadata

from daemon.batch import Batch
from daemon.errors import ProducerFenced, SinkUnavailable
from daemon.replica_slot import SlotLease, default_transactional_id, lease_slot
from daemon.sinks.base import OffsetCommit, Sink
from daemon.sinks.partitioning import key_partitions
from schemas.settings import KafkaSettings

log = structlog.get_logger(__name__)
CONTENT_TYPE = b"application/json"
# Under the broker's default message.max.bytes; the dead_letters table keeps the full original.
DLQ_MAX_VALUE_BYTES = 512 * 1024
# A Classified as the Prediction's JSON (UTC as "Z", as pydantic writes it; tests/daemon/test_kafka_sink.py).
_JSON_OPTIONS = orjson.OPT_UTC_Z


def prediction_records(batch: Batch) -> list[tuple[bytes, bytes, list]]:
    out = []
    headers_by_version: dict[tuple[str, str | None], list] = {}  # one header list per model version
    for p in batch.predictions:
        if p is None:
            continue
        versions = (p.model_version, p.adapter_version)
        headers = headers_by_version.get(versions)
        if headers is None:
            headers = headers_by_version[versions] = [
                ("content-type", CONTENT_TYPE),
                ("model-version", p.model_version.encode()),
                ("adapter-version", (p.adapter_version or "").encode()),
            ]
        out.append((p.message_id.encode(), orjson.dumps(p, option=_JSON_OPTIONS), headers))
    return out


def dead_letter_records(batch: Batch) -> list[tuple[bytes | None, bytes, list]]:
    out = []
    for d in batch.dead:
        headers = [
            ("error-kind", d.error_kind.encode()),
            ("error-text", d.error_text.encode()[:1000]),
            ("source-topic", d.topic.encode()),
            ("source-partition", str(d.partition).encode()),
            ("source-offset", str(d.offset).encode()),
        ]
        value = d.original
        if len(value) > DLQ_MAX_VALUE_BYTES:
            headers.append(("original-size", str(len(value)).encode()))
            value = value[:DLQ_MAX_VALUE_BYTES]
        out.append((d.key, value, headers))
    return out


class KafkaSink(Sink):
    name = "kafka"

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.transactional = settings.delivery == "transactional"
        cfg = settings.client_config("-producer") | {"acks": "all", "enable_idempotence": True, "linger_ms": 5,
                                         "batch_size": 256 * 1024}
        self._lease: SlotLease | None = None
        if self.transactional:
            tid = settings.transactional_id
            if tid is None:
                self._lease = lease_slot(settings.group_id)
                tid = default_transactional_id(settings.group_id, self._lease)
            cfg["transactional_id"] = tid
            log.info("transactional_producer", transactional_id=tid)
        self.producer = KafkaProducer(**cfg)
        if self.transactional:
            # Fences an earlier producer with this id and aborts the transaction it left open.
            self.producer.init_transactions()

    def _send_all(self, batch: Batch) -> list:
        s = self.settings
        records = prediction_records(batch)
        futures = []
        if records:
            send = self.producer.send
            partitions = key_partitions((key for key, _, _ in records), self.producer.partitions_for(s.output_topic))
            futures = [
                send(s.output_topic, value=value, key=key, headers=headers, partition=partition)
                for (key, value, headers), partition in zip(records, partitions)
            ]
        futures += [
            self.producer.send(s.dead_letter_topic, value=value, key=key, headers=headers)
            for key, value, headers in dead_letter_records(batch)
        ]
        return futures

    @staticmethod
    def _raise_failed(futures: list) -> None:
        # flush() returns even when sends failed; the futures carry the errors.
        for f in futures:
            if f.failed():
                raise f.exception

    def write(self, batch: Batch, commit: OffsetCommit | None = None) -> None:
        """Idempotent mode: send and flush. Transactional mode: one transaction, which also commits
        ``commit.offsets``; ``commit.before_commit`` runs once everything but the commit itself
        (EndTxn) has been acknowledged."""
        try:
            if not self.transactional:
                futures = self._send_all(batch)
                self.producer.flush(timeout=self.settings.request_timeout_ms / 1000)
                self._raise_failed(futures)
                return
            self.producer.begin_transaction()
            try:
                futures = self._send_all(batch)
                if commit is not None:
                    self.producer.send_offsets_to_transaction(
                        {tp: _oam(o) for tp, o in commit.offsets.items()}, commit.group_metadata
                    )
                    self.producer.flush(timeout=self.settings.request_timeout_ms / 1000)
                    commit.before_commit()
                self.producer.commit_transaction()
                self._raise_failed(futures)
            except BaseException:
                self._abort()
                raise
        except (ProducerFencedError, TransactionalIdAuthorizationFailedError) as e:
            raise ProducerFenced(f"transactional producer can no longer write: {e}") from e
        except KafkaError as e:
            raise SinkUnavailable(self.name, e) from e

    def _abort(self) -> None:
        try:
            self.producer.abort_transaction()
        except KafkaError:
            pass  # the retry starts a new transaction; a fenced producer fails loudly there

    def close(self, timeout: float = 10) -> None:
        self.producer.close(timeout=timeout)
        if self._lease is not None:
            self._lease.release()


def _oam(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)
