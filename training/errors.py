# RegistryError lives in schemas with the registry (the console changes it too); re-exported here.
from schemas.errors import RegistryError, SentistreamError

__all__ = ["DatasetError", "LabelError", "RegistryError", "TrainingError"]


class TrainingError(SentistreamError):
    """Root of training errors."""


class DatasetError(TrainingError):
    """A labels file or the labels table cannot give a usable dataset; the message says why."""


class LabelError(DatasetError):
    """A label value names none of the model's classes."""
