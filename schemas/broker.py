"""Start-up check that a Kafka broker answers, before a command spends seconds loading a model."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from schemas.errors import BrokerUnavailable
from schemas.settings import KafkaSettings

# A broker answers a bootstrap in milliseconds; this bounds the wait for one that is down or
# unreachable, so the whole start-up fails within 15 s.
PROBE_TIMEOUT_S = 8.0


class _LastError(logging.Handler):
    """Keeps the last connection error kafka-python logs while it retries its bootstrap."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.error: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        from kafka.errors import KafkaTimeoutError

        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException) and not isinstance(arg, KafkaTimeoutError):
                self.error = arg


@contextmanager
def _kafka_logs_captured() -> Iterator[_LastError]:
    """Each retry logs two or three lines; the check reports the outcome in one line instead."""
    logger = logging.getLogger("kafka")
    saved = logger.handlers[:], logger.propagate, logger.level
    handler = _LastError()
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.WARNING
    try:
        yield handler
    finally:
        logger.handlers, logger.propagate, logger.level = saved


def check_broker(settings: KafkaSettings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Bootstrap an admin client (connect, API versions, cluster metadata) within ``timeout_s``.

    Raises :class:`BrokerUnavailable`, one line naming the addresses tried and the setting to fix.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, KafkaProtocolError

    with _kafka_logs_captured() as seen:
        try:
            KafkaAdminClient(**settings.client_config("-probe"), bootstrap_timeout_ms=int(timeout_s * 1000)).close()
            return
        except (KafkaError, OSError, ValueError) as e:
            error: BaseException = seen.error or e
    fix = "check SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS"
    if isinstance(error, KafkaProtocolError) and not settings.api_version:
        fix += " (a broker whose version cannot be probed, such as the embedded one, needs SENTISTREAM_KAFKA__API_VERSION)"
    raise BrokerUnavailable(f"no Kafka broker answered at {settings.bootstrap_servers} within {timeout_s:g} s "
                            f"({type(error).__name__}: {_first_line(error)}): {fix}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    # kafka-python's errors repeat their class name in their text.
    text = text.removeprefix(f"{type(e).__name__}: ")
    return text.splitlines()[0][:200] if text else ""
