"""The brokers the tests run on, and what each can be relied on for (the ``broker`` fixture is in
tests/conftest.py; tests/daemon/test_broker_semantics.py checks the claims against the broker)."""

from __future__ import annotations

import os

REAL_KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
# A client that misses a new topic in its first metadata answer asks again this soon.
METADATA_MAX_AGE_MS = 1000


class Broker:
    """What a test needs of a broker, whichever kind runs it.

    ``kind``:
    - ``tansu``: an in-memory tansu broker of the test's own (``daemon.tansu_broker``), the default.
      Real transactions and groups, so the daemon runs its default ``delivery=transactional``. Its
      ``read_committed`` readers still see aborted records, so the output topic is at-least-once there.
    - ``mock``: librdkafka's mock cluster (``daemon.embedded_broker``), for tests marked
      ``mock_broker``: ``embedded`` injects faults (request errors, brokers down, leader moves). It has
      no transaction semantics, so the daemon runs ``delivery=idempotent`` on it.
    - ``kafka``: the external broker at ``KAFKA_BOOTSTRAP_SERVERS``, shared by the tests (each makes
      topics and groups of its own). The one kind on which the output topic is exactly-once.
    """

    def __init__(self, kind: str, brokers: int = 1) -> None:
        self.kind = kind
        self.embedded = None
        self._tansu = None
        # None: kafka-python negotiates the version (pinning one breaks InitProducerId on tansu).
        self.api_version: str | None = None
        self.delivery = "transactional"
        if kind == "kafka":
            self.bootstrap_servers = REAL_KAFKA
        elif kind == "tansu":
            from daemon.tansu_broker import TansuBroker

            self._tansu = TansuBroker()
            self.bootstrap_servers = self._tansu.bootstrap_servers
        elif kind == "mock":
            from daemon.embedded_broker import API_VERSION, EmbeddedBroker

            self.embedded = EmbeddedBroker(brokers=brokers)
            self.bootstrap_servers = self.embedded.bootstrap_servers
            self.api_version = API_VERSION  # kafka-python cannot probe the mock
            self.delivery = "idempotent"  # the mock accepts transactions but does not implement them
        else:
            raise ValueError(f"unknown broker kind {kind!r}")

    @property
    def filters_aborted(self) -> bool:
        """Whether ``read_committed`` readers are spared aborted records: only a real Kafka. Where it
        is false, the output topic can only be checked at-least-once."""
        return self.kind == "kafka"

    @property
    def open_txn_holds_offsets(self) -> bool:
        """Whether a transaction's consumer offsets wait for every open transaction that wrote
        earlier to the same partitions: tansu applies them only once all of those have ended
        (tansu-storage ``dynostore`` ``txn_end``, ``overlapping_transactions``) and never times an
        abandoned one out. A paused producer's open transaction then holds the group's offsets."""
        return self.kind == "tansu"

    @property
    def client_kwargs(self) -> dict:
        # A client that misses a new topic in its first metadata answer waits for the next refresh.
        kw: dict = {"bootstrap_servers": self.bootstrap_servers, "metadata_max_age_ms": METADATA_MAX_AGE_MS}
        if self.api_version:
            kw["api_version"] = tuple(int(p) for p in self.api_version.split("."))
        return kw

    def create_topic(self, name: str, partitions: int = 1) -> str:
        if self.embedded is not None:
            self.embedded.create_topic(name, partitions, replication=self.embedded.brokers)
        else:
            from kafka.admin import KafkaAdminClient, NewTopic

            admin = KafkaAdminClient(**self.client_kwargs)
            try:
                admin.create_topics([NewTopic(name, partitions, 1)])
            finally:
                admin.close()
        return name

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.close()
        if self._tansu is not None:
            self._tansu.close()
