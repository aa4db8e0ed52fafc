"""Say why no synchronised stereo set comes out of the time synchronizer.

The node's synchronizer is silent when it has nothing to emit, so "no output" alone does
not tell a user whether a topic is not published (wrong remapping, QoS mismatch, driver
down) or whether all four arrive but their stamps never match. :class:`InputArrivals`
counts every input message per topic (from a callback on each ``message_filters``
subscriber) and, when the node saw no set in a statistics period, :meth:`diagnosis` names
the silent topics or shows the stamps that failed to pair. Pure Python, thread-safe.
"""

import statistics
import threading
from typing import Any, Optional, Sequence

#: A topic's stamp this much earlier than its latest one is time going back (a bag replayed
#: or looped, a simulation restarted), not messages delivered out of order.
BACKWARD_JUMP_NS = 100_000_000


class InputArrivals:
    """Per-topic message counts and latest stamps of one period.

    A period ends with :meth:`diagnosis` (no set paired) or :meth:`unpaired_note`.
    """

    def __init__(self, topics: Sequence[str], info_topics: Sequence[str] = ()) -> None:
        """Watch ``topics``; ``info_topics`` are those of them that carry CameraInfo."""
        if not topics:
            raise ValueError('need at least one input topic')
        unknown = set(info_topics) - set(topics)
        if unknown:
            raise ValueError(f'camera_info topics {sorted(unknown)} are not input topics')
        self.topics = list(topics)
        self.info_topics = [topic for topic in self.topics if topic in info_topics]
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.topics, 0)
        self._latest: dict[str, Optional[int]] = dict.fromkeys(self.topics, None)
        #: What the latest :meth:`diagnosis` found, as a key for throttling its lines per
        #: kind of problem: ``'silent: <topics>'`` or ``'unpaired'``.
        self.last_kind = ''

    def record(self, topic: str, stamp_ns: int) -> int:
        """Count one message on ``topic`` whose header stamp is ``stamp_ns`` nanoseconds.

        Returns how far (ns) the stamp went back from the topic's latest one when that is
        more than :data:`BACKWARD_JUMP_NS` (time went back), else 0.
        """
        with self._lock:
            if topic not in self._counts:
                raise KeyError(f'unknown input topic {topic!r}; known: {self.topics}')
            previous, self._latest[topic] = self._latest[topic], int(stamp_ns)
            if previous is None and None not in self._latest.values():
                # The last input to start: from now on the topics' counts are compared (one
                # each: the message that made each live), not over the seconds in which only
                # some of them were on.
                self._counts = dict.fromkeys(self.topics, 1)
            else:
                self._counts[topic] += 1
            went_back = 0 if previous is None else previous - int(stamp_ns)
            return went_back if went_back > BACKWARD_JUMP_NS else 0

    def unpaired_note(self, pairs: int) -> Optional[str]:
        """Return a line when a period paired few of its messages, else None.

        Starts a new period (the node calls this after a period in which sets were paired,
        :meth:`diagnosis` after one without). ``pairs`` is the number of sets the
        synchronizer emitted in it. Said when a topic delivered less than half as many
        messages as the median topic (a camera that stopped for seconds, which pairing then
        hides: the sets are as many as the silent camera's images), or when fewer than half
        of the least frequent topic's messages were paired (stamps that do not match). A
        frame dropped now and then is no news, nor a camera running at twice the other's
        rate. Scarce camera_info alone is named as such. A topic's count starts when every
        input has delivered a message (see :meth:`record`), so inputs starting one after the
        other are no news either.
        """
        counts, latest = self._end_period()
        listed = ', '.join(f'{topic} {counts[topic]}' for topic in self.topics)
        typical = statistics.median(counts.values())
        scarce = [topic for topic in self.topics if 2 * counts[topic] < typical]
        if scarce and set(scarce) <= set(self.info_topics):
            return (f"camera_info comes less often than the images on {', '.join(scarce)} "
                    f'in this period (messages: {listed}; {pairs} stereo sets paired): each '
                    'set needs its own CameraInfo, so the node outputs at most one set per '
                    'CameraInfo; have the driver publish one with every image, same stamp')
        if scarce:
            return (f"few messages on {', '.join(scarce)} in this period (messages: {listed}; "
                    f'{pairs} stereo sets paired): a camera or driver that stopped or drops '
                    'frames')
        slowest = min(counts.values())
        if 2 * pairs >= slowest:
            return None
        return (f'only {pairs} stereo sets paired of {slowest} possible (messages: {listed}); '
                f'latest stamps differ by {_spread_s(latest):.3f} s: stamps that do not match, '
                'or a queue_size too small for the slower camera')

    def _end_period(self) -> tuple[dict[str, int], dict[str, int]]:
        """Return the period's counts and the latest stamps (of the topics that have one).

        Starts a new period.
        """
        with self._lock:
            counts, self._counts = self._counts, dict.fromkeys(self.topics, 0)
            return counts, {topic: stamp for topic, stamp in self._latest.items()
                            if stamp is not None}

    def diagnosis(self, period_s: float, approximate: bool,
                  tolerance_s: Optional[float] = None) -> tuple[str, bool]:
        """Return a line on why no set was paired in the last ``period_s``; start anew.

        ``approximate`` and ``tolerance_s`` describe the synchronizer in use, so the advice
        fits it. The flag is true when something arrived (a real problem, worth a warning)
        and false when every input was silent (the node is simply waiting).
        """
        counts, latest = self._end_period()
        silent = [topic for topic in self.topics if counts[topic] == 0]
        self.last_kind = f"silent: {', '.join(silent)}" if silent else 'unpaired'
        if silent:
            received = [f'{topic} ({counts[topic]})' for topic in self.topics
                        if counts[topic] > 0]
            text = (f"no message on {', '.join(silent)} in {period_s:.0f} s"
                    + (f"; received: {', '.join(received)}" if received else '')
                    + '. Check the remappings, that the driver publishes them, and QoS '
                    '(use_system_default_qos makes the subscriptions reliable, which '
                    'best-effort publishers cannot serve)')
            return text, len(silent) < len(self.topics)
        # Every topic had a message this period, so every latest stamp is set.
        spread_s = _spread_s(latest)
        listed = ', '.join(f'{topic} {latest[topic] / 1e9:.6f}' for topic in self.topics)
        if approximate:
            advice = (f'stamps must lie within approximate_sync_tolerance_seconds '
                      f'({tolerance_s} s) of each other; raise it or fix the driver stamps')
        else:
            advice = ('exact sync needs identical stamps on all four; set approximate_sync '
                      'true or fix the driver stamps')
        return (f'all inputs arrive but none paired in {period_s:.0f} s: latest stamps '
                f'{listed} (spread {spread_s:.3f} s); {advice}', True)


def _spread_s(latest: dict[str, int]) -> float:
    """Return the spread (s) of the latest stamps (0 without any)."""
    return (max(latest.values()) - min(latest.values())) / 1e9 if latest else 0.0


def forget_after_jump(queues: Sequence[dict[int, Any]], stamp_ns: int,
                      went_back_ns: int) -> int:
    """Drop from synchronizer queues ({stamp ns: message}) the leftovers of a jump back.

    A message stamped ``stamp_ns`` came ``went_back_ns`` earlier than its topic's latest one
    (:meth:`InputArrivals.record`). message_filters' synchronizers keep unpaired messages
    until their queue is full and then drop the *oldest* stamp, so messages left over from
    before the jump, all stamped later than anything new, would stay, and every new message
    would be dropped on arrival, or be paired with a leftover one of the same stamp (another
    calibration, another image). Dropped: what is stamped more than halfway back later
    (other topics' messages of the new pass may already be queued, a little later than this
    one; the leftovers are about ``went_back_ns`` later). Returns how many were dropped.
    """
    after = stamp_ns + went_back_ns // 2
    dropped = 0
    for queue in queues:
        for later in [stamp for stamp in queue if stamp > after]:
            del queue[later]
            dropped += 1
    return dropped
