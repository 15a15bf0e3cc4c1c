from schemas.errors import SentistreamError


class TrainingError(SentistreamError):
    """Root of training errors."""


class DatasetError(TrainingError):
    """A labels file or the labels table cannot give a usable dataset; the message says why."""


class LabelError(DatasetError):
    """A label value names none of the model's classes."""


class RegistryError(TrainingError):
    """An adapters-registry operation is not possible (unknown version, nothing to roll back to)."""
