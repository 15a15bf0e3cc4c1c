class SentistreamError(Exception):
    """Root of every error sentistream raises on purpose."""


class ConfigError(SentistreamError):
    """A setting is missing or invalid; the message says which and how to fix it."""


class MessageError(SentistreamError):
    """An inbound message cannot be accepted; ``kind`` is the dead-letter reason code."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class DatabaseUnavailable(SentistreamError):
    """The database did not answer (server down, wrong URL, bad credentials)."""


class SchemaNotCurrent(SentistreamError):
    """The database is not at the migration this sentistream needs: run ``sentistream db upgrade``."""


class BrokerUnavailable(SentistreamError):
    """No Kafka broker answered at the configured bootstrap servers."""


class RegistryError(SentistreamError):
    """An adapters-registry operation is not possible (unknown version, nothing to roll back to)."""
