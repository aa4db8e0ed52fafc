"""Bookkeeping of the node's inference thread: rates, latency, drops, throttled log lines."""

import math
import threading
import time
from collections import Counter
from typing import Any, Callable, Hashable, Mapping, Optional


class ThroughputMonitor:
    """Count pairs in, processed, dropped, skipped and failed; report rate and latency.

    Thread-safe. ``clock`` (default ``time.monotonic``) is injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._received = 0
        self._processed = 0
        self._dropped = 0
        self._idle = 0
        self._unknown = 0
        self._skipped: Counter = Counter()
        self._failed: Counter = Counter()
        # Sums, not lists: with no report (stats_period 0) memory must stay flat.
        self._latency_sum = 0.0
        self._compute_sum = 0.0
        self._compute_count = 0
        #: Totals since start (never reset by :meth:`report`).
        self.total_received = 0
        self.total_processed = 0
        self.total_skipped = 0
        self.total_failed = 0
        self.total_dropped = 0
        self.total_idle = 0
        self.total_unknown = 0

    def received(self) -> None:
        """Count one synchronised pair arriving."""
        with self._lock:
            self._received += 1
            self.total_received += 1

    def dropped(self, count: int = 1) -> None:
        """Count pairs replaced before the worker took them."""
        with self._lock:
            self._dropped += count
            self.total_dropped += count

    def idle(self) -> None:
        """Count a pair not processed because nobody listens to any output."""
        with self._lock:
            self._idle += 1
            self.total_idle += 1

    def skipped(self, reason: str) -> None:
        """Count a pair rejected as bad input (``reason`` is the error class name)."""
        with self._lock:
            self._skipped[reason] += 1
            self.total_skipped += 1

    def failed(self, reason: str) -> None:
        """Count a pair whose processing failed, not its input (``reason``: the error class)."""
        with self._lock:
            self._failed[reason] += 1
            self.total_failed += 1

    def processed(self, latency_s: float, compute_ms: float, unknown: bool = False) -> None:
        """Count a processed pair: receipt-to-publish latency and pipeline time.

        ``unknown``: its outputs say unknown, its views did not confirm the disparity (or a
        check found the stream swapped).
        """
        with self._lock:
            self._processed += 1
            self.total_processed += 1
            self._unknown += unknown
            self.total_unknown += unknown
            self._latency_sum += float(latency_s)
            if math.isfinite(compute_ms):
                self._compute_sum += float(compute_ms)
                self._compute_count += 1

    def report(self) -> dict[str, Any]:
        """Return the statistics since the previous report and start a new period."""
        now = self._clock()
        with self._lock:
            elapsed = max(now - self._start, 1e-9)
            stats = {
                'period_s': elapsed,
                'received': self._received,
                'processed': self._processed,
                'dropped': self._dropped,
                'idle': self._idle,
                'unknown': self._unknown,
                'skipped': dict(self._skipped),
                'failed': dict(self._failed),
                'input_hz': self._received / elapsed,
                'output_hz': self._processed / elapsed,
                'mean_latency_ms': (1e3 * self._latency_sum / self._processed
                                    if self._processed else float('nan')),
                'mean_compute_ms': (self._compute_sum / self._compute_count
                                    if self._compute_count else float('nan')),
            }
            self._start = now
            self._received = self._processed = self._dropped = self._idle = self._unknown = 0
            self._skipped = Counter()
            self._failed = Counter()
            self._latency_sum = self._compute_sum = 0.0
            self._compute_count = 0
        return stats


#: Seconds between two log lines about the same kind of bad input (it repeats every pair).
WARN_THROTTLE_S = 5.0


#: What :class:`LogThrottle` keys its timers by: usually an error class. (mypy does not take
#: a class for a ``Hashable``, so classes are named besides.)
ThrottleKey = Hashable | type


class LogThrottle:
    """Let through at most one log line per ``period`` seconds *for each key*.

    rclpy's ``throttle_duration_sec`` keeps one timer per call site, so while one problem
    repeats, a different one logged from the same line would never be seen. Keyed by the
    error class here, each kind of problem gets its own timer. Thread-safe; ``clock``
    (default ``time.monotonic``) is injectable for tests.
    """

    def __init__(self, period: float = WARN_THROTTLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period = float(period)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[ThrottleKey, float] = {}
        self._suppressed: Counter = Counter()

    def check(self, key: ThrottleKey) -> Optional[int]:
        """Return None to drop a line for ``key``, else how many were dropped since the last.

        A line is let through when none for ``key`` was in the last ``period`` seconds.
        """
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] += 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)


def format_stats(stats: Mapping[str, Any]) -> str:
    """Return one log line of :meth:`ThroughputMonitor.report` statistics."""
    line = (f"{stats['received']} pairs in ({stats['input_hz']:.1f} Hz), "
            f"{stats['processed']} processed ({stats['output_hz']:.1f} Hz"
            + (f", {stats['unknown']} unknown: views that do not confirm the disparity or "
               'look swapped' if stats['unknown'] else '')
            + "), "
            f"{stats['dropped']} dropped (backend slower than camera), "
            f"{stats['idle']} idle (no subscribers)")
    if stats['processed']:
        line += (f"; latency {stats['mean_latency_ms']:.1f} ms, "
                 f"compute {stats['mean_compute_ms']:.1f} ms")
    for key, label in (('skipped', 'skipped bad input'), ('failed', 'failed (not the input)')):
        if stats.get(key):
            reasons = ', '.join(f'{count} {name}' for name, count in sorted(stats[key].items()))
            line += f'; {label}: {reasons}'
    return line
