from schemas.errors import SentistreamError


class ModelError(SentistreamError):
    """Root of model errors."""


class SpecError(ModelError):
    """A model spec (preset or user YAML file) is invalid; the message names the field to fix."""


class ModelLoadError(ModelError):
    """A model or adapter cannot be loaded; the message names the file or setting to fix."""


class AdapterError(ModelLoadError):
    """An adapter is missing, unsafe (pickle), for another base model, or fails its checksum."""


class ChecksumError(AdapterError):
    """An adapter's sha256 differs from the one the spec or registry expects."""


class UntrainedHeadError(ModelLoadError):
    """A sequence-classification head would be random: neither the checkpoint nor an adapter holds it."""


class LabelMismatchError(ModelLoadError):
    """The spec's labels do not match the model's head or the adapter's head."""


class UnsafeModelError(ModelLoadError):
    """Loading would run code from the model files (pickle weights, trust_remote_code)."""


class UnparseableAnswerError(ModelError):
    """Generated text did not match ``generate.pattern`` or named no known label."""


class UnsupportedPeft(ModelLoadError):
    """The installed peft lacks a private attribute the models rely on (models/peft_internals.py): the
    message names the version to install."""


class MissingBackendError(ModelLoadError):
    """An optional backend (bitsandbytes, CUDA) needed by the spec is not installed or visible."""


class PackageError(ModelLoadError):
    """A base model's package is missing, incomplete or does not hold the named file."""


class PackageChecksumError(ChecksumError):
    """The file reassembled from a package differs from the checksum the package (or the spec) gives."""


class NotPreparedError(ModelLoadError):
    """A spec's package base was never converted by ``sentistream models prepare``."""
