from schemas.db import describe_error
from schemas.errors import SentistreamError


class DaemonError(SentistreamError):
    """Root of daemon errors."""


class SinkUnavailable(DaemonError):
    """A sink cannot take the batch now (database down, broker unreachable).

    Backpressure, not a crash: the checkpoint pauses the partitions, waits ``retry_after``
    seconds and tries the same batch again; no offset moves meanwhile.
    """

    def __init__(self, sink: str, cause: BaseException, retry_after: float | None = None) -> None:
        # The driver's first line only: a statement's text and parameters can hold message text.
        super().__init__(f"{sink} unavailable: {describe_error(cause)}")
        self.sink = sink
        self.cause = cause
        self.retry_after = retry_after


class SinkRejected(DaemonError):
    """A sink refused a batch for a reason retrying cannot fix (schema missing, a constraint): the
    daemon stops, and the batch's offsets stay uncommitted so the next run reads it again."""


class ShutdownTimeout(DaemonError):
    """In-flight work could not be written before the shutdown timeout; its offsets stay uncommitted."""


class ProducerFenced(DaemonError):
    """Another producer took over this replica's transactional id: this process must exit.

    Its uncommitted batches go back to the consumer group; restart with a unique
    ``kafka.transactional_id`` per replica.
    """


class StaleMembership(DaemonError):
    """The consumer's group generation is out of date: a commit now could move the group's offsets back.

    Raised as the cause of a ``SinkUnavailable("group", ...)``: the checkpoint retries once the
    consumer has rejoined, or the daemon drops the batch when the rejoin reports its partitions lost.
    """


class UnsupportedKafkaClient(DaemonError):
    """The installed kafka-python lacks a private attribute the daemon relies on
    (daemon/kafka_internals.py): the message names the version to install."""
