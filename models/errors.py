from schemas.errors import SentistreamError


class ModelError(SentistreamError):
    """Root of model errors."""


class ModelLoadError(ModelError):
    """A model or adapter cannot be loaded; the message names the file or setting to fix."""


class AdapterError(ModelLoadError):
    """An adapter is missing, unsafe (pickle), for another base model, or fails its checksum."""
