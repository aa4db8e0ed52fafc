"""Exceptions shared by the whole package: each names the problem for the user."""


#: Exit status of bad input: one line on stderr (as argparse uses for bad arguments).
EXIT_BAD_INPUT = 2
#: Exit status of a run stopped by Ctrl-C or SIGTERM (a shell's for SIGINT).
EXIT_INTERRUPTED = 130


class StereoDepthError(Exception):
    """Base class of every error this package raises on purpose."""


class CalibrationError(StereoDepthError, ValueError):
    """Missing, inconsistent or physically impossible stereo calibration."""


class ImageFormatError(StereoDepthError, ValueError):
    """An image with an unsupported encoding, shape or dtype, or a left/right mismatch."""


class BackendError(StereoDepthError, ValueError):
    """Unknown backend name, or weights that do not belong to the requested backend."""


class DatasetError(StereoDepthError, ValueError):
    """A dataset folder or file that is missing or cannot be read."""


class SettingsError(StereoDepthError, ValueError):
    """Settings that cannot be: a depth range, obstacle parameters, pipeline outputs."""


def first_line(error: BaseException) -> str:
    """Return the first line of ``error``'s message, or its type name if it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class ExplainedInterrupt(KeyboardInterrupt):
    """Ctrl-C or SIGTERM whose message says what the command kept (or that it kept nothing)."""
