"""An embedded Kafka-protocol broker: librdkafka's mock cluster, reached through ctypes.

For the offline demo and the tests only (needs the ``confluent-kafka`` wheel, which bundles
librdkafka). It speaks the real protocol to kafka-python, but has no CreateTopics and does not
implement transaction semantics, so the daemon runs against it with ``kafka.delivery=idempotent``.
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache

# kafka-python cannot probe the mock broker's version; pin it.
API_VERSION = "2.3"
# The mock broker holds a fetch that finds nothing new for the consumer's whole fetch_max_wait_ms
# (a real broker answers when records arrive): clients of it wait this long, not Kafka's 500 ms.
MOCK_FETCH_WAIT_MS = 100

_P, _I, _S, _C = ctypes.c_void_p, ctypes.c_int, ctypes.c_int16, ctypes.c_char_p
_SIGNATURES = {
    "rd_kafka_conf_new": ([], _P),
    "rd_kafka_conf_set": ([_P, _C, _C, _C, ctypes.c_size_t], _I),
    "rd_kafka_new": ([_I, _P, _C, ctypes.c_size_t], _P),
    "rd_kafka_destroy": ([_P], None),
    "rd_kafka_mock_cluster_new": ([_P, _I], _P),
    "rd_kafka_mock_cluster_destroy": ([_P], None),
    "rd_kafka_mock_cluster_bootstraps": ([_P], _C),
    "rd_kafka_mock_topic_create": ([_P, _C, _I, _I], _I),
    "rd_kafka_mock_group_initial_rebalance_delay_ms": ([_P, _I], None),
    "rd_kafka_mock_broker_set_down": ([_P, ctypes.c_int32], _I),
    "rd_kafka_mock_broker_set_up": ([_P, ctypes.c_int32], _I),
    "rd_kafka_mock_partition_set_leader": ([_P, _C, ctypes.c_int32, ctypes.c_int32], _I),
    "rd_kafka_mock_clear_request_errors": ([_P, _S], None),
}


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    try:
        import confluent_kafka
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("the embedded broker needs the 'demo' extra: pip install 'sentistream[demo]'") from e
    libdir = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir, "confluent_kafka.libs")
    found = sorted(glob.glob(os.path.join(libdir, "librdkafka*.so*")))
    if not found:
        raise RuntimeError(f"librdkafka not found next to confluent_kafka in {libdir}")
    lib = ctypes.CDLL(found[0])
    for name, (args, res) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    # Variadic: (mcluster, ApiKey, cnt, err...).
    lib.rd_kafka_mock_push_request_errors.restype = None
    return lib


class EmbeddedBroker:
    """A mock Kafka cluster living in this process (its own threads) until ``close()``."""

    def __init__(self, brokers: int = 1) -> None:
        lib = _lib()
        conf = lib.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        # A consumer-type handle: it only hosts the cluster and must never produce.
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", err, len(err))
        self._rk = lib.rd_kafka_new(1, conf, err, len(err))
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {err.value.decode()}")
        self._mc = lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._mc:
            lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        # The default 3 s initial rebalance delay only slows every test and demo start.
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._mc, 0)
        self.bootstrap_servers = lib.rd_kafka_mock_cluster_bootstraps(self._mc).decode()
        self.brokers = brokers

    def create_topic(self, name: str, partitions: int = 1, replication: int = 1) -> None:
        rc = _lib().rd_kafka_mock_topic_create(self._mc, name.encode(), partitions, replication)
        if rc != 0:
            raise RuntimeError(f"creating topic {name!r} failed with error {rc}")

    # Fault injection, for reliability tests.
    def push_request_errors(self, api_key: int, *errors: int) -> None:
        """The next ``len(errors)`` requests of ``api_key`` fail with these Kafka error codes."""
        args = [ctypes.c_int16(api_key), ctypes.c_size_t(len(errors))] + [ctypes.c_int(e) for e in errors]
        _lib().rd_kafka_mock_push_request_errors(ctypes.c_void_p(self._mc), *args)

    def clear_request_errors(self, api_key: int) -> None:
        _lib().rd_kafka_mock_clear_request_errors(self._mc, api_key)

    def set_broker_down(self, broker_id: int = 1) -> None:
        _lib().rd_kafka_mock_broker_set_down(self._mc, broker_id)

    def set_broker_up(self, broker_id: int = 1) -> None:
        _lib().rd_kafka_mock_broker_set_up(self._mc, broker_id)

    def set_partition_leader(self, topic: str, partition: int, broker_id: int) -> None:
        _lib().rd_kafka_mock_partition_set_leader(self._mc, topic.encode(), partition, broker_id)

    def close(self) -> None:
        if self._mc:
            _lib().rd_kafka_mock_cluster_destroy(self._mc)
            _lib().rd_kafka_destroy(self._rk)
            self._mc = self._rk = None

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
