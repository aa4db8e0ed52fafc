"""The node's inference thread: a one-item hand-over slot and the worker that drains it.

The synchronizer callback puts each :class:`~stereo_depth_ros.processing.StereoPair` into a
:class:`LatestSlot`; the :class:`StereoWorker` thread takes the newest pair, runs the
:class:`~stereo_depth_ros.processing.StereoFrameProcessor` and hands the output messages back
to be published. No rclpy here: ``node.py`` passes in its publish and log functions.
"""

import threading
import time
from typing import Any, Callable, Generic, Iterable, Mapping, Optional, TypeVar

from .errors import BackendError, StereoDepthError
from .monitoring import LogThrottle, ThroughputMonitor
from .msgs.obstacle import optical_range_note
from .pipeline import StereoPipeline
from .plausibility import row_offset_warning, RowOffset, swap_warning, SWAPPED_KIND
from .row_alignment import worth_aligning
from .processing import FrameOutput, note_kind, StereoFrameProcessor, StereoPair

T = TypeVar('T')
#: The node's log level says "warning": its lines drop the commands' "warning: " prefix.
WARNING_PREFIX = 'warning: '
#: The line of the warning about inputs that look swapped; its throttle key is its kind, that
#: of the notes of the pairs that come out unknown after it (``view_check.SWAPPED_VIEWS``).
SWAPPED_WARNING = swap_warning('', 'check which topic is remapped to left/image_rect and '
                               'which to right/image_rect').removeprefix(WARNING_PREFIX)
#: The throttle key of the warning about rows of the two images that are off.
MISALIGNED = 'misaligned'
#: The line when a check finds a stream that looked swapped the right way round.
UNSWAPPED_INFO = 'left and right no longer look swapped: pairs come out as measured again'


class LatestSlot(Generic[T]):
    """A one-item, thread-safe hand-over: a new item replaces one not yet taken.

    The producer never blocks and memory stays bounded: if the consumer is slower than the
    producer, older items are dropped (and counted) instead of queued.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Optional[T] = None
        self._full = False
        self._closed = False
        self.put_count = 0
        self.dropped_count = 0

    def put(self, item: T) -> bool:
        """Store ``item``; return True when an item is dropped (and counted).

        That is one never taken that ``item`` replaced, or, once the slot is closed,
        ``item`` itself: a pair that arrives during shutdown is received and dropped.
        """
        with self._condition:
            self.put_count += 1
            dropped = self._full or self._closed
            self.dropped_count += int(dropped)
            if not self._closed:
                self._item, self._full = item, True
                self._condition.notify()
            return dropped

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """Return the newest item, waiting up to ``timeout`` s; None on timeout or close."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> bool:
        """Wake every waiting consumer; later puts are dropped.

        Return True when an item that was never taken is discarded (it is counted in
        ``dropped_count``).
        """
        with self._condition:
            discarded = self._full and not self._closed
            self._closed = True
            self._item, self._full = None, False
            self.dropped_count += int(discarded)
            self._condition.notify_all()
            return discarded

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed


class StereoWorker:
    """The inference thread: takes the newest pair, processes it, publishes the result.

    ``get_pipeline()`` returns the pipeline to use (read anew for every pair, so a
    parameter change takes effect at the next pair); ``wanted_topics()`` the output topics
    somebody listens to (nothing is computed when it is empty); ``publish(messages)``
    publishes topic -> message; ``warn(text)``, ``error(text)`` and ``info(text)`` (optional:
    a swap that a check finds cleared) log, unthrottled.
    Bad input (a StereoDepthError but BackendError) is warned about and counted as skipped;
    a backend that fails (BackendError, or any other exception) is logged as an error and
    counted as failed; the thread keeps running either way, and says so in an error line if
    something ends it. Those lines are throttled by
    ``throttle`` (default: one per error class every
    :data:`~stereo_depth_ros.monitoring.WARN_THROTTLE_S` seconds, with
    the number of lines dropped meanwhile), so one repeating problem does not hide another.
    """

    def __init__(self, processor: StereoFrameProcessor,
                 get_pipeline: Callable[[], StereoPipeline],
                 wanted_topics: Callable[[], Iterable[str]],
                 publish: Callable[[Mapping[str, Any]], None],
                 warn: Callable[[str], None], error: Callable[[str], None],
                 monitor: Optional[ThroughputMonitor] = None,
                 throttle: Optional[LogThrottle] = None,
                 info: Optional[Callable[[str], None]] = None) -> None:
        self.processor = processor
        self.slot: LatestSlot[StereoPair] = LatestSlot()
        self.monitor = monitor or ThroughputMonitor()
        self._get_pipeline = get_pipeline
        self._wanted_topics = wanted_topics
        self._publish = publish
        self._warn = warn
        self._error = error
        self._info = info or (lambda text: None)
        self.throttle = throttle or LogThrottle()
        self._thread: Optional[threading.Thread] = None
        #: What the swap check said as the last line about it went out.
        self._reported_swap = False
        #: Whether the latest info line said the rows are aligned (None: none said yet).
        self._reported_alignment: Optional[bool] = None
        #: The image frames an ``obstacle/range`` was stamped in and warned about.
        self._optical_range_frames: set[str] = set()

    def submit(self, pair: StereoPair) -> None:
        """Hand a pair to the thread (called from the subscription callback; never blocks)."""
        self.monitor.received()
        if self.slot.put(pair):
            self.monitor.dropped()

    def start(self) -> None:
        """Start the thread (daemon, so a crashed node still exits)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name='stereo_depth_worker',
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking pairs and wait up to ``timeout`` s for the current one to finish.

        A pair still waiting in the slot is counted as dropped, so every pair received is
        processed, dropped, skipped, failed or idle.
        """
        if self.slot.close():
            self.monitor.dropped()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    @property
    def busy(self) -> bool:
        """Whether the thread is still in a pair (after :meth:`stop` timed out on it)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self.slot.closed:
            pair = self.slot.take(timeout=0.5)
            if pair is None:
                continue
            try:
                self.process_one(pair)
            except BaseException as error:  # the thread ends: say so, or the node goes quiet
                self._error(f'the inference thread stopped: {type(error).__name__}: {error}; '
                            'no more pairs are processed')
                raise

    def process_one(self, pair: StereoPair) -> bool:
        """Process and publish one pair; return True when something was published."""
        try:
            topics = frozenset(self._wanted_topics())
            if not topics:
                self.monitor.idle()
                return False
            output = self.processor.process(pair, self._get_pipeline(), topics)
            self._publish(output.messages)
        except StereoDepthError as error:
            if isinstance(error, BackendError):  # the backend failed, not the input
                self.monitor.failed(type(error).__name__)
                self._log(self._error, error, f'processing a stereo pair failed: {error}')
            else:
                self.monitor.skipped(type(error).__name__)
                self._log(self._warn, error, f'skipping stereo pair: {error}')
            return False
        except Exception as error:  # keep the node alive whatever a backend raises
            self.monitor.failed(type(error).__name__)
            self._log(self._error, error,
                      f'processing a stereo pair failed: {type(error).__name__}: {error}')
            return False
        self.monitor.processed(time.monotonic() - pair.received,
                               output.timings.get('total_ms', float('nan')),
                               unknown=output.views_unconfirmed)
        try:
            self._warn_optical_range(output)
            # The check first: its warning says what the notes of a swapped stream's pairs
            # repeat.
            self._check(output)
            for note in output.notes:
                self._log(self._warn, note_kind(note), note)
        except Exception as error:  # published already; a log line must not end the thread
            self._error(f'reporting on a published stereo pair failed: '
                        f'{type(error).__name__}: {error}')
        return True

    def _warn_optical_range(self, output: FrameOutput) -> None:
        """Warn once per frame_id about an ``obstacle/range`` stamped in the image's frame.

        Told from the output (the ``range_frame_id`` of the pipeline that made it; without
        one the message carries the image's header), not from the settings, which may have
        changed while the pair was processed; a ``range_frame_id`` that names the image's
        frame itself (a forward-x image frame) is the user's word, and no warning.
        """
        message = output.messages.get('obstacle/range')
        if message is None or output.range_frame_id:
            return
        frame = str(message.header.frame_id)
        if frame not in self._optical_range_frames:
            self._optical_range_frames.add(frame)
            self._warn(optical_range_note(frame))

    def _check(self, output: FrameOutput) -> None:
        """Run the pair check due on a published output and warn about what it finds."""
        was_swapped = self._reported_swap
        try:
            check = self.processor.check(output)
        except Exception as error:  # a check must never stop the node
            self._log(self._error, error,
                      f'checking a stereo pair failed: {type(error).__name__}: {error}')
            return
        self._reported_swap = self.processor.swapped
        if was_swapped and not self.processor.swapped and self._get_pipeline().check_views:
            self._info(UNSWAPPED_INFO)
        if check is not None and check.swapped:
            withheld = (f'; pairs come out unknown until a check (every '
                        f'{self.processor.check_retry:g} s while they look swapped) finds them '
                        'the right way round' if self._get_pipeline().check_views else '')
            self._log(self._warn, SWAPPED_KIND, SWAPPED_WARNING + withheld)
        if check is not None and check.misaligned:
            assert check.row_offset is not None
            # Said resampled only where it is: a rotation can be 2 px off at the worst while
            # neither its typical corner nor its mean reaches what worth_aligning asks.
            aligned = self._get_pipeline().aligns_rows(check.row_offset,
                                                       check.row_offset.shape)
            self._log(self._warn, MISALIGNED, row_offset_warning(
                '', check.row_offset, aligned).removeprefix(WARNING_PREFIX))
        if self.processor.row_offset is not None:
            # The offset the pairs are aligned by: a check's that measured one, else the last
            # one's, where only a run-time change of align_rows can change what is done; said
            # with the first pair after that change, not at the next check (up to 10 s later).
            self._report_alignment(self.processor.row_offset)

    def _report_alignment(self, offset: RowOffset) -> None:
        """Say in one info line when the pairs start or stop being aligned (``align_rows``).

        The rows warning covers offsets of a pixel and more; this line covers the smaller
        ones too, once per change, not at every check. Alignment that stops because
        ``align_rows`` was turned off says so, not that the rows are on the left's again; a
        node started with it off says so at the first check that finds rows worth aligning.
        """
        worth_it = worth_aligning(offset, offset.shape)
        aligned = self._get_pipeline().aligns_rows(offset, offset.shape)
        first_worth_it = self._reported_alignment is None and worth_it
        if aligned == bool(self._reported_alignment) and not first_worth_it:
            return
        if aligned:
            self._info(f'rows of the right view are {offset.summary()}: it is resampled onto '
                       'the left\'s rows before matching (align_rows)')
        elif worth_it:
            self._info('align_rows is off: the right view is matched as it comes (its rows are '
                       f'{offset.summary()})')
        elif self._reported_alignment is not None:
            self._info('rows of the right view are on the left\'s again: it is matched as it '
                       'comes')
        self._reported_alignment = aligned

    def _log(self, log: Callable[[str], None], problem: Exception | str, text: str) -> None:
        """Log ``text`` unless a line about the same problem was logged just before.

        ``problem`` is an error (keyed by its class) or the name of a warning. The count of
        lines not logged names the error class: the lines it counts share this one's class,
        not necessarily its problem (a size mismatch and an unsupported encoding are both
        ImageFormatError).
        """
        dropped = self.throttle.check(problem if isinstance(problem, str) else type(problem))
        if dropped is None:
            return
        if dropped and isinstance(problem, str):
            text += f' ({dropped} more like this since the previous line, not logged)'
        elif dropped:
            kind = type(problem).__name__
            text += f' ({dropped} more {kind} since the previous {kind} line, not logged)'
        log(text)
