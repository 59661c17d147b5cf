"""fastmnist's exceptions: each subclasses the built-in a caller would expect to catch."""


class FastMnistError(Exception):
    """Base class of every error fastmnist raises on purpose."""


class InputError(FastMnistError, ValueError):
    """An array or argument given to fastmnist is unusable (shape, dtype, values)."""


class DataError(FastMnistError, OSError):
    """MNIST could not be found, read or verified."""


class FormatError(DataError, ValueError):
    """A data file (IDX, npz, CSV) is malformed: bad magic, dimensions or length."""


class ChecksumError(DataError, ValueError):
    """A data file's decompressed content does not match its published SHA-256."""


class ModelFileError(FastMnistError, ValueError):
    """A saved model file is truncated, of an unknown version, or malformed."""


class DivergedError(FastMnistError, ValueError):
    """Training produced a non-finite loss; the model keeps its last finite weights."""
