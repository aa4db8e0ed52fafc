"""Pure-Python time synchronizer with the semantics of ROS 2 ``message_filters``.

Offline tools (process-bag) pair stereo messages the way the node's ``message_filters``
synchronizers do online, so a bag gives the pairs the live node would have used:

* exact (``TimeSynchronizer``): a set is emitted once every input holds a message with the same
  stamp; stamps shared by all queues are emitted oldest first;
* approximate (``ApproximateTimeSynchronizer``, Python implementation): when a message arrives,
  the other inputs' queued stamps within ``slop`` of it are tried, closest first; the first
  combination whose spread is strictly below ``slop`` is emitted.

Each input keeps at most ``queue_size`` messages, keyed by stamp (a second message with the same
stamp replaces the first); the oldest is dropped on overflow. Matched messages leave the
queues, unmatched older ones stay until they overflow.
"""

import bisect
import itertools
import statistics
from typing import Any, Optional, Sequence

#: Default slop (seconds) of approximate sync: the offline commands' ``--slop`` and the node's
#: ``approximate_sync_tolerance_seconds``. It must exceed the two cameras' stamp offset and
#: stay at or below the frame period minus that offset, or an image whose partner was dropped
#: pairs with the partner's neighbour; half the frame period suits any offset below it. This
#: default suits cameras up to 25 Hz (docs/ros.md, Parameters).
DEFAULT_SLOP = 0.02
#: Default number of messages an offline synchronizer keeps per input while pairing
#: (``process-bag --queue-size``; the node's ``queue_size`` parameter is its own).
DEFAULT_QUEUE_SIZE = 10


class TimeSynchronizer:
    """Exact-stamp synchronizer over ``n_inputs`` inputs (``message_filters.TimeSynchronizer``)."""

    def __init__(self, n_inputs: int, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if n_inputs < 1:
            raise ValueError(f'need at least one input, got {n_inputs}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        self.queue_size = int(queue_size)
        self.queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        #: Messages pushed out of a queue (overflow or same-stamp replacement), per input.
        #: Each input's messages are ``matched + dropped[i] + pending()[i]``; process-bag's
        #: per-topic "unpaired/dropped messages" is ``dropped[i] + pending()[i]`` (at most
        #: ``queue_size`` left over at the end), so it reports this count already.
        self.dropped = [0] * n_inputs
        #: Sets emitted so far.
        self.matched = 0

    def _enqueue(self, index: int, stamp_ns: int, item: Any) -> dict[int, Any]:
        queue = self.queues[index]
        if stamp_ns in queue:
            self.dropped[index] += 1
        queue[stamp_ns] = item
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.dropped[index] += 1
        return queue

    def add(self, index: int, stamp_ns: int, item: Any) -> list[list[Any]]:
        """Queue ``item`` (stamp in ns) on input ``index``; return the sets it completed."""
        self._enqueue(index, int(stamp_ns), item)
        common = set.intersection(*(set(queue) for queue in self.queues))
        sets = []
        for stamp in sorted(common):
            sets.append([queue.pop(stamp) for queue in self.queues])
        self.matched += len(sets)
        return sets

    def pending(self) -> list[int]:
        """Return how many messages each input still holds unmatched."""
        return [len(queue) for queue in self.queues]


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Approximate synchronizer: stamps of a set differ by less than ``slop`` seconds."""

    def __init__(self, n_inputs: int, queue_size: int = DEFAULT_QUEUE_SIZE,
                 slop: float = DEFAULT_SLOP) -> None:
        super().__init__(n_inputs, queue_size)
        if not slop > 0:
            raise ValueError(f'slop must be > 0 s, got {slop} (use exact synchronisation)')
        self.slop_ns = int(round(slop * 1e9))

    def add(self, index: int, stamp_ns: int, item: Any) -> list[list[Any]]:
        """Queue ``item`` on input ``index``; return the (at most one) set it completed."""
        stamp_ns = int(stamp_ns)
        self._enqueue(index, stamp_ns, item)
        if stamp_ns not in self.queues[index]:
            # Older than every message its full queue holds, so dropped at once (as
            # message_filters does): it can complete no set.
            return []
        candidates = []
        for other, queue in enumerate(self.queues):
            if other == index:
                continue
            near = sorted((abs(s - stamp_ns), s) for s in queue
                          if abs(s - stamp_ns) <= self.slop_ns)
            if not near:
                return []
            candidates.append([s for _, s in near])
        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) < self.slop_ns:
                self.matched += 1
                return [[queue.pop(s) for queue, s in zip(self.queues, stamps)]]
        return []


def make_synchronizer(n_inputs: int, queue_size: int = DEFAULT_QUEUE_SIZE,
                      slop: Optional[float] = None) -> TimeSynchronizer:
    """Return an exact synchronizer, or an approximate one when ``slop`` (seconds) is given."""
    if slop is None:
        return TimeSynchronizer(n_inputs, queue_size)
    return ApproximateTimeSynchronizer(n_inputs, queue_size, slop)


def never_matched(topics: Sequence[str], stamps: list[list[int]], slop: Optional[float],
                  slop_name: str = '--slop') -> str:
    """Say how far apart the stamps of ``topics`` (the left image's first) were, and what to do.

    ``stamps`` holds each topic's stamps (ns); ``slop`` is the approximate sync's (None: exact
    sync, where the line says how many sets ``--approximate-sync`` would pair), ``slop_name``
    the setting it came from.
    """
    empty = [topic for topic, values in zip(topics, stamps) if not values]
    if empty:
        return f'no message on {", ".join(empty)}'
    spreads = _set_spreads(stamps)
    best, median = min(spreads) / 1e9, statistics.median(spreads) / 1e9
    text = (f'the stamps of {", ".join(topics)} never matched: the closest set spans '
            f'{best:.6f} s (median over left images {median:.6f} s)')
    if slop is None:
        would = sum(spread < DEFAULT_SLOP * 1e9 for spread in spreads)
        return text + (f'; --approximate-sync (slop {DEFAULT_SLOP} s) would pair about {would} '
                       f'of {len(spreads)} left images')
    return text + f'; above {slop_name} {slop} s: raise it or fix the stamps'


def _set_spreads(stamps: list[list[int]]) -> list[int]:
    """Return, for every left image stamp, the spread of the closest set (ns)."""
    others = [sorted(values) for values in stamps[1:]]
    spreads = []
    for stamp in stamps[0]:
        members = [stamp]
        for values in others:
            at = bisect.bisect_left(values, stamp)
            near = values[max(at - 1, 0):at + 1]
            members.append(min(near, key=lambda value: abs(value - stamp)))
        spreads.append(max(members) - min(members))
    return spreads
