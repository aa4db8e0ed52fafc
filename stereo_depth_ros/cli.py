"""`stereo-depth` command line: one sub-command per module in ``stereo_depth_ros.commands``."""

import argparse
import errno
import importlib
import os
import shlex
import signal
import sqlite3
import sys
from typing import Any, NoReturn, Optional, Sequence

from . import __version__
from .errors import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, ExplainedInterrupt, StereoDepthError,
                     first_line)

#: Sub-command name -> module in ``stereo_depth_ros.commands`` with add_arguments() and run().
COMMANDS = {
    'backends': 'backends',
    'infer': 'infer',
    'eval': 'evaluate',
    'demo': 'demo',
    'train': 'train',
    'bench': 'bench',
    'kitti2bag': 'kitti2bag',
    'process-bag': 'process_bag',
    'soak': 'soak',
    'fetch-photos': 'fetch_photos',
    'real-bench': 'real_bench',
    'adapt': 'adapt',
    'check-camera': 'check_camera',
}

#: Exit status when the reader of the output went away (``| head``): a shell's for SIGPIPE.
EXIT_BROKEN_PIPE = 128 + 13


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit code 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (PROG --help lists the options)`` and exit 2."""
        self.exit(EXIT_BAD_INPUT,
                  f'{self.prog}: error: {message} ({self.prog} --help lists the options)\n')


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every available sub-command (its sub-parsers are of its class)."""
    parser = OneLineErrorParser(
        prog='stereo-depth',
        description='Stereo disparity, metric depth and nearest-obstacle segmentation.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f'stereo_depth_ros.commands.{module_name}')
        except ModuleNotFoundError as error:
            if error.name != f'stereo_depth_ros.commands.{module_name}':
                raise
            continue
        # The module docstring's first line, its reST literals (``x``) as plain backticks.
        doc = ((module.__doc__ or '').strip().splitlines()[0].replace('``', '`')
               if module.__doc__ else '')
        sub = subparsers.add_parser(name, help=doc, description=doc)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so it ends a command as Ctrl-C does."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error (Python, or torch's, CPU or CUDA)."""
    return isinstance(error, MemoryError) or any(
        kind.__name__ == 'OutOfMemoryError' for kind in type(error).__mro__)


def _os_error_line(error: OSError) -> str:
    """Return one line for an OS error: what failed, on which file, and why."""
    reason = error.strerror or str(error)
    where = f' {error.filename}' if error.filename else ''
    hint = ''
    if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        hint = '; free some space or write elsewhere (nothing half-written was kept)'
    return f'cannot read or write{where}: {reason}{hint}'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; bad input exits 2 with one clear line on stderr.

    SIGTERM is handled like Ctrl-C (KeyboardInterrupt) from the start, imports included:
    commands that write a bag close it properly with what was done so far.
    """
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        return _run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: Optional[Sequence[str]]) -> int:
    """Parse ``argv`` and run its command (:func:`main`, with SIGTERM as Ctrl-C)."""
    try:
        # Building the parser imports every command's module (torch among them): seconds.
        parser = build_parser()
    except KeyboardInterrupt:
        print('stereo-depth: interrupted while starting', file=sys.stderr)
        return EXIT_INTERRUPTED
    args = parser.parse_args(argv)
    # What a model card records of a training or adaptation run: the line as typed.
    args.invocation = shlex.join(['stereo-depth', *(sys.argv[1:] if argv is None else argv)])
    try:
        status = int(args.handler(args) or 0)
        # Inside the try: a closed pipe shows when the buffered output is written.
        sys.stdout.flush()
        return status
    except (StereoDepthError, FileNotFoundError, ValueError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            line = _os_error_line(error)  # the system's own: reads as other OS errors do
        else:
            line = str(error)
        _error_line(args.command, line)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader stopped reading (`stereo-depth backends | head -1`): no error line, and
        # nothing more written to the closed pipe when Python flushes stdout at exit.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:
        _error_line(args.command, _os_error_line(error))
        return EXIT_BAD_INPUT
    except sqlite3.Error as error:  # a sqlite3 bag: 'database or disk is full', a damaged file
        hint = ('; free some space or write elsewhere (nothing half-written was kept)'
                if 'full' in str(error) else '')
        _error_line(args.command, f'sqlite3 bag storage: {first_line(error)}{hint}')
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as interrupt:
        # A command may say what the interrupt left (process-bag, kitti2bag).
        why = f' {interrupt}' if isinstance(interrupt, ExplainedInterrupt) else ''
        print(f'stereo-depth {args.command}: interrupted{why}', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if not _is_out_of_memory(error):
            raise
        _error_line(args.command, f'out of memory ({first_line(error)}); use smaller '
                    'images (see --max-megapixels) or another --backend/--device')
        return EXIT_BAD_INPUT


def _silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null (where it has one)."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real file (None, a capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def _error_line(command: str, text: str) -> None:
    """Print one error line (newlines in ``text`` are folded)."""
    print(f'stereo-depth {command}: error: {" ".join(text.split())}', file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())
