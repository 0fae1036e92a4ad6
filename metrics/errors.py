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


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM); like KeyboardInterrupt, not an error of the input."""
