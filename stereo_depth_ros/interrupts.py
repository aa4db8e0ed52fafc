"""Defer Ctrl-C and SIGTERM to a safe point, so a bag is never closed mid-record."""

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator


class StopRequest:
    """Set by :func:`deferred_interrupts` when SIGINT or SIGTERM arrives; check ``requested``."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ''

    def __bool__(self) -> bool:
        return self.requested


@contextmanager
def deferred_interrupts() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM only set the yielded :class:`StopRequest`.

    The caller checks it between units of work and stops cleanly. Outside the main thread
    signals cannot be handled here, and the request simply stays unset.
    """
    request = StopRequest()

    def handler(signum: int, frame: Any) -> None:
        request.requested = True
        request.signal_name = signal.Signals(signum).name

    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
