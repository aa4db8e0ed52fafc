"""Per-pair work of the ROS 2 node, without rclpy: validate, compute, build messages.

``node.py`` only moves messages: its synchronizer callback puts each
:class:`StereoPair` into a :class:`LatestSlot` and a :class:`StereoWorker` thread takes the
newest pair, runs :class:`StereoFrameProcessor` and hands the output messages back to be
published. The same code runs here on ``rosbags`` message objects in the unit tests.
"""

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Hashable, Iterable, Mapping, Optional, TypeVar

import numpy as np

from .camera import StereoCameraModel
from .errors import ImageFormatError, StereoDepthError
from .msgs.images import array_to_image, ENCODINGS, stereo_input_from_image
from .msgs.obstacle import make_mask_image, make_obstacle_range
from .msgs.points import make_point_cloud2
from .msgs.stereo import make_depth_image, make_disparity_image
from .msgs.types import MessageTypes
from .plausibility import check_image_size
from .images import to_rgb
from .pipeline import StereoPipeline

#: Output topic -> the :meth:`StereoPipeline.process` output it needs (None: disparity only).
TOPIC_OUTPUTS: dict[str, Optional[str]] = {
    'disparity': None,
    'depth': 'depth',
    'obstacle/mask': 'obstacle',
    'obstacle/range': 'obstacle',
    'disparity/color': 'color',
    'points2': 'points',
}
OUTPUT_TOPICS = tuple(TOPIC_OUTPUTS)
#: Output topic -> its message class, as an attribute name of :class:`MessageTypes`.
TOPIC_TYPES: dict[str, str] = {
    'disparity': 'DisparityImage',
    'depth': 'Image',
    'obstacle/mask': 'Image',
    'obstacle/range': 'Range',
    'disparity/color': 'Image',
    'points2': 'PointCloud2',
}
#: Input topics (relative, remappable) -> message class attribute of :class:`MessageTypes`.
#: Image encodings usable as stereo input: camera intensities (not 32FC1 depth/disparity).
STEREO_ENCODINGS: tuple[str, ...] = tuple(
    name for name, (dtype, _) in ENCODINGS.items() if dtype.kind == 'u')
INPUT_TOPICS: dict[str, str] = {
    'left/image_rect': 'Image',
    'right/image_rect': 'Image',
    'left/camera_info': 'CameraInfo',
    'right/camera_info': 'CameraInfo',
}


@dataclass
class StereoPair:
    """The four synchronised input messages and when (``time.monotonic``) they arrived."""

    left_image: Any
    right_image: Any
    left_info: Any
    right_info: Any
    received: float = field(default_factory=time.monotonic)


@dataclass
class FrameOutput:
    """Messages to publish (topic -> message) for one pair, and the pipeline's timings (ms)."""

    messages: dict[str, Any]
    timings: dict[str, float]
    camera: StereoCameraModel


def pipeline_outputs(topics: Iterable[str]) -> frozenset[str]:
    """Return the :meth:`StereoPipeline.process` outputs the given output topics need."""
    needed = set()
    for topic in topics:
        if topic not in TOPIC_OUTPUTS:
            raise ValueError(f'unknown output topic {topic!r}; known: {", ".join(OUTPUT_TOPICS)}')
        if TOPIC_OUTPUTS[topic]:
            needed.add(TOPIC_OUTPUTS[topic])
    return frozenset(needed)


def obstacle_field_of_view(camera: StereoCameraModel,
                           roi: Optional[tuple[float, float, float, float]]) -> float:
    """Return the horizontal angle (rad) of the searched window of the image.

    ``roi`` is ``(x, y, width, height)`` as fractions of the image (as
    :class:`~stereo_depth_ros.obstacle.ObstacleParameters` has it); None is the whole image.
    Pixel centres are integers, so the image spans ``-0.5 .. width - 0.5``.
    """
    x, width = (0.0, 1.0) if roi is None else (float(roi[0]), float(roi[2]))
    left = x * camera.width - 0.5
    right = (x + width) * camera.width - 0.5
    angle_left = math.atan2(left - camera.cx_left, camera.fx)
    angle_right = math.atan2(right - camera.cx_left, camera.fx)
    return float(abs(angle_right - angle_left))


class StereoFrameProcessor:
    """Turn one synchronised :class:`StereoPair` into the output messages asked for.

    Bad input raises ImageFormatError or CalibrationError naming the problem: images above
    ``max_megapixels`` (checked before anything is decoded), an encoding that is not a camera
    image, left/right of different sizes or kinds (grey vs colour),
    camera infos that do not fit the images, an uncalibrated or wrong-sign baseline.
    The stereo model is cached while the camera infos stay the same.
    """

    def __init__(self, types: MessageTypes, mono16_bit_depth: Optional[int] = None,
                 max_megapixels: Optional[float] = None,
                 limit_option: str = '--max-megapixels') -> None:
        self.types = types
        self.mono16_bit_depth = mono16_bit_depth or None
        #: Pairs larger than this many megapixels are refused before decoding (None: no limit).
        self.max_megapixels = max_megapixels or None
        self.limit_option = limit_option
        self._camera_key: Optional[tuple] = None
        self._camera: Optional[StereoCameraModel] = None

    def camera(self, left_info: Any, right_info: Any) -> StereoCameraModel:
        """Return the stereo model of the two CameraInfo messages (cached)."""
        key = (int(left_info.width), int(left_info.height), int(right_info.width),
               int(right_info.height), tuple(float(v) for v in left_info.p),
               tuple(float(v) for v in right_info.p))
        if key != self._camera_key:
            camera = StereoCameraModel.from_camera_info(left_info, right_info)
            self._camera_key, self._camera = key, camera
        assert self._camera is not None
        return self._camera

    def inputs(self, pair: StereoPair) -> tuple[np.ndarray, np.ndarray, StereoCameraModel]:
        """Return the left and right backend inputs and the camera model of a checked pair."""
        check_image_size(int(pair.left_image.width), int(pair.left_image.height),
                         self.max_megapixels, self.limit_option)
        left = self._image(pair.left_image, 'left')
        right = self._image(pair.right_image, 'right')
        if left.shape[:2] != right.shape[:2]:
            raise ImageFormatError(
                f'left and right images differ in size: {left.shape[1]}x{left.shape[0]} vs '
                f'{right.shape[1]}x{right.shape[0]} (width x height)')
        if left.ndim != right.ndim:
            raise ImageFormatError(
                f'left image is {pair.left_image.encoding} but right image is '
                f'{pair.right_image.encoding}: both cameras must be grey or both colour')
        camera = self.camera(pair.left_info, pair.right_info)
        camera.check_image_size(left.shape[1], left.shape[0])
        return left, right, camera

    def _image(self, msg: Any, side: str) -> np.ndarray:
        if msg.encoding not in STEREO_ENCODINGS:
            kind = ('is not a camera intensity image' if msg.encoding in ENCODINGS
                    else 'is not supported')
            raise ImageFormatError(
                f'{side} image: encoding {msg.encoding!r} {kind}; stereo input must be one '
                f'of {", ".join(STEREO_ENCODINGS)}')
        try:
            return stereo_input_from_image(msg, self.mono16_bit_depth)
        except ImageFormatError as error:
            raise ImageFormatError(f'{side} image: {error}') from None

    def process(self, pair: StereoPair, pipeline: StereoPipeline,
                topics: Iterable[str]) -> FrameOutput:
        """Run ``pipeline`` on the pair and build the messages of the requested ``topics``."""
        topics = frozenset(topics)
        outputs = pipeline_outputs(topics)
        left, right, camera = self.inputs(pair)
        result = pipeline.process(left, right, camera, outputs=outputs)
        header = pair.left_image.header
        types = self.types
        backend = pipeline.backend
        messages: dict[str, Any] = {}
        if 'disparity' in topics:
            messages['disparity'] = make_disparity_image(
                result.disparity, camera, header, backend.min_disparity, backend.max_disparity,
                types)
        if 'depth' in topics:
            messages['depth'] = make_depth_image(result.depth, header, types)
        if result.obstacle is not None:
            if 'obstacle/mask' in topics:
                messages['obstacle/mask'] = make_mask_image(result.obstacle.mask, header, types)
            if 'obstacle/range' in topics:
                params = pipeline.obstacle_params
                messages['obstacle/range'] = make_obstacle_range(
                    result.obstacle.distance, header, types, params.min_range, params.max_range,
                    obstacle_field_of_view(camera, getattr(params, 'roi', None)))
        if 'disparity/color' in topics:
            bgr = np.ascontiguousarray(result.color[:, :, ::-1])
            messages['disparity/color'] = array_to_image(bgr, 'bgr8', header, types.Image)
        if 'points2' in topics:
            messages['points2'] = make_point_cloud2(result.points, to_rgb(left), header, types)
        return FrameOutput(messages=messages, timings=dict(result.timings), camera=camera)


T = TypeVar('T')


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
        """Store ``item``; return True when it replaced an item that was never taken."""
        with self._condition:
            if self._closed:
                return False
            dropped = self._full
            self._item, self._full = item, True
            self.put_count += 1
            self.dropped_count += int(dropped)
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
        """Wake every waiting consumer; later puts are ignored.

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


class ThroughputMonitor:
    """Count pairs in, processed, dropped and skipped; report rate and latency per period.

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
        self._skipped: Counter = Counter()
        # Sums, not lists: with no report (stats_period 0) memory must stay flat.
        self._latency_sum = 0.0
        self._compute_sum = 0.0
        self._compute_count = 0
        #: Totals since start (never reset by :meth:`report`).
        self.total_received = 0
        self.total_processed = 0
        self.total_skipped = 0
        self.total_dropped = 0
        self.total_idle = 0

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

    def processed(self, latency_s: float, compute_ms: float) -> None:
        """Count a processed pair: receipt-to-publish latency and pipeline time."""
        with self._lock:
            self._processed += 1
            self.total_processed += 1
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
                'skipped': dict(self._skipped),
                'input_hz': self._received / elapsed,
                'output_hz': self._processed / elapsed,
                'mean_latency_ms': (1e3 * self._latency_sum / self._processed
                                    if self._processed else float('nan')),
                'mean_compute_ms': (self._compute_sum / self._compute_count
                                    if self._compute_count else float('nan')),
            }
            self._start = now
            self._received = self._processed = self._dropped = self._idle = 0
            self._skipped = Counter()
            self._latency_sum = self._compute_sum = 0.0
            self._compute_count = 0
        return stats


#: Seconds between two log lines about the same kind of bad input (it repeats every pair).
WARN_THROTTLE_S = 5.0


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
        self._last: dict[Hashable, float] = {}
        self._suppressed: Counter = Counter()

    def check(self, key: Hashable) -> Optional[int]:
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
            f"{stats['processed']} processed ({stats['output_hz']:.1f} Hz), "
            f"{stats['dropped']} dropped (backend slower than camera), "
            f"{stats['idle']} idle (no subscribers)")
    if stats['processed']:
        line += (f"; latency {stats['mean_latency_ms']:.1f} ms, "
                 f"compute {stats['mean_compute_ms']:.1f} ms")
    if stats['skipped']:
        reasons = ', '.join(f'{count} {name}' for name, count in sorted(stats['skipped'].items()))
        line += f'; skipped bad input: {reasons}'
    return line


class StereoWorker:
    """The inference thread: takes the newest pair, processes it, publishes the result.

    ``get_pipeline()`` returns the pipeline to use (read anew for every pair, so a
    parameter change takes effect at the next pair); ``wanted_topics()`` the output topics
    somebody listens to (nothing is computed when it is empty); ``publish(messages)``
    publishes topic -> message; ``warn(text)`` and ``error(text)`` log, unthrottled.
    Bad input (StereoDepthError) is warned about and skipped, any other exception logged
    as an error; the thread keeps running either way. Those lines are throttled by
    ``throttle`` (default: one per error class every :data:`WARN_THROTTLE_S` seconds, with
    the number of lines dropped meanwhile), so one repeating problem does not hide another.
    """

    def __init__(self, processor: StereoFrameProcessor,
                 get_pipeline: Callable[[], StereoPipeline],
                 wanted_topics: Callable[[], Iterable[str]],
                 publish: Callable[[Mapping[str, Any]], None],
                 warn: Callable[[str], None], error: Callable[[str], None],
                 monitor: Optional[ThroughputMonitor] = None,
                 throttle: Optional[LogThrottle] = None) -> None:
        self.processor = processor
        self.slot: LatestSlot[StereoPair] = LatestSlot()
        self.monitor = monitor or ThroughputMonitor()
        self._get_pipeline = get_pipeline
        self._wanted_topics = wanted_topics
        self._publish = publish
        self._warn = warn
        self._error = error
        self.throttle = throttle or LogThrottle()
        self._thread: Optional[threading.Thread] = None

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
        processed, dropped, skipped or idle.
        """
        if self.slot.close():
            self.monitor.dropped()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self.slot.closed:
            pair = self.slot.take(timeout=0.5)
            if pair is not None:
                self.process_one(pair)

    def process_one(self, pair: StereoPair) -> bool:
        """Process and publish one pair; return True when something was published."""
        topics = frozenset(self._wanted_topics())
        if not topics:
            self.monitor.idle()
            return False
        try:
            output = self.processor.process(pair, self._get_pipeline(), topics)
            self._publish(output.messages)
        except StereoDepthError as error:
            self.monitor.skipped(type(error).__name__)
            self._log(self._warn, error, f'skipping stereo pair: {error}')
            return False
        except Exception as error:  # keep the node alive whatever a backend raises
            self.monitor.skipped(type(error).__name__)
            self._log(self._error, error,
                      f'processing a stereo pair failed: {type(error).__name__}: {error}')
            return False
        self.monitor.processed(time.monotonic() - pair.received,
                               output.timings.get('total_ms', float('nan')))
        return True

    def _log(self, log: Callable[[str], None], error: Exception, text: str) -> None:
        """Log ``text`` unless a line about the same error class was logged just before."""
        dropped = self.throttle.check(type(error))
        if dropped is None:
            return
        if dropped:
            text += f' ({dropped} more like this since the previous line, not logged)'
        log(text)
