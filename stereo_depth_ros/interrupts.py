"""Defer Ctrl-C and SIGTERM to a safe point, so a bag is never closed mid-record.

A second signal while the first is still waiting for that point (a pair can take long: a
first compiled pair, a large image) stops at once: :class:`Abort` is raised wherever the
work is, and the caller discards what it was writing instead of closing it half-written.
"""

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional


class Abort(BaseException):
    """A second Ctrl-C or SIGTERM: stop at once and keep nothing.

    Not a KeyboardInterrupt, so that writers which publish what they have on an interrupt
    (:class:`~stereo_depth_ros.bags.writer.BagWriter`) discard it instead.
    """


class StopRequest:
    """Set by :func:`deferred_interrupts` when SIGINT or SIGTERM arrives; check ``requested``."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ''

    def __bool__(self) -> bool:
        return self.requested


#: How many :func:`deferred_interrupts` blocks are active (their handlers installed).
_deferring = 0


def signals_undeferred() -> bool:
    """Return whether no :func:`deferred_interrupts` block is active.

    (Not the handler's identity: an embedding program, or a test runner, may have its own.)
    """
    return _deferring == 0


@contextmanager
def deferred_interrupts(notice: Optional[str] = None) -> Iterator[StopRequest]:
    """Within the block, a first SIGINT or SIGTERM only sets the yielded :class:`StopRequest`.

    The caller checks it between units of work and stops cleanly; ``notice`` (if given) is
    printed to stderr when it is set. A second signal raises :class:`Abort`. Outside the
    main thread signals cannot be handled here, and the request simply stays unset.
    """
    request = StopRequest()

    def handler(signum: int, frame: Any) -> None:
        if request.requested:
            raise Abort(signal.Signals(signum).name)
        request.requested = True
        request.signal_name = signal.Signals(signum).name
        if notice:
            print(f'\n{notice}', file=sys.stderr, flush=True)

    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    global _deferring
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _deferring += 1
    try:
        yield request
    finally:
        _deferring -= 1
        for sig, old in previous.items():
            signal.signal(sig, old)
