"""Errors that the command line turns into one clear line and exit status 2.

Every package of the harness raises these for bad input (a file, an argument, a weight) so that
`cabench` can print the message without a traceback. `metrics` is the bottom layer, so the
classes live here and the other packages import them.
"""

from __future__ import annotations


class CabenchError(Exception):
    """A failure caused by the user's input; its message names the file or argument."""


class InputError(CabenchError):
    """Bad input data: unreadable or empty frames, mismatched sizes or counts, NaN values."""


class WeightsMissingError(CabenchError):
    """A weight file was not found; the message names the file and where to put it."""


class WeightsUnusableError(WeightsMissingError, InputError):
    """A weight file was found but cannot be used: a folder, unreadable, corrupt or truncated, or its
    keys or tensor shapes do not fit the model. Like a missing file, it makes its metric missing
    (with this message) rather than failing the run; it is also bad input, so loaders that are
    given such a file directly raise it."""

    def __init__(self, path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class CabenchWarning(UserWarning):
    """Something the user should know about the input that does not stop the work (the command line
    prints it as one ``cabench: warning:`` line; library warnings stay hidden without ``--debug``)."""


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM); like KeyboardInterrupt, not an error of the input."""
