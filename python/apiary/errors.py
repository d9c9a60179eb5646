"""The exceptions of apiary: one class per error code of the C++ engine
(core/error.hpp), each also an instance of the matching built-in exception so
that `except ValueError` or `except TimeoutError` work as a Python user expects.
The message is the C++ one — the text `apiary` prints after "error:"."""

from . import _apiary


class Error(RuntimeError):
    """Any error of the Apiary engine."""


class InvalidArgument(Error, ValueError):
    """A bad option or configuration; the message names the field."""


class NotFound(Error, LookupError):
    """A run, key or peer that does not exist."""


class PermissionDenied(Error, PermissionError):
    """A bad signature, a missing or wrong membership token."""


class Unavailable(Error, ConnectionError):
    """No peer answered."""


class DeadlineExceeded(Error, TimeoutError):
    """A network wait ran out of time."""


class BadMessage(Error):
    """Malformed data from a peer or a file."""


class IoError(Error, OSError):
    """A local file-system failure (checkpoints, key files)."""


_apiary._register_errors({
    "error": Error,
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "permission_denied": PermissionDenied,
    "unavailable": Unavailable,
    "connection_closed": Unavailable,
    "deadline_exceeded": DeadlineExceeded,
    "bad_message": BadMessage,
    "io_error": IoError,
})
