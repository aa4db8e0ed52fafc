"""Soak test of the node's processing core, without ROS: overload it and count everything.

:func:`run_soak` drives a :class:`~stereo_depth_ros.worker.StereoWorker` (the node's
inference thread) from the calling thread at ``factor`` times the rate the backend manages,
for a set time, with every ``bad_every``-th pair bad input. Every pair handed in must end up
processed, dropped (replaced in the slot, or still in it at shutdown) or skipped (bad input),
none may fail (a backend error, or any other exception), some must be processed, and memory
must not grow after the first quarter of the run: :class:`SoakResult` holds the counts, the
first failure and the resident memory, and says whether the run passed.
"""

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import psutil
from tqdm import tqdm

from .bags.writer import get_distro_typestore
from .camera import StereoCameraModel
from .msgs.images import array_to_image
from .msgs.stereo import make_camera_infos
from .msgs.types import make_header, MessageTypes
from .pipeline import StereoPipeline
from .processing import StereoFrameProcessor, StereoPair
from .topics import OUTPUT_TOPICS
from .worker import StereoWorker


@dataclass
class SoakResult:
    """Counts and memory of one soak run."""

    seconds: float
    backend_hz: float
    input_hz: float
    received: int
    processed: int
    dropped: int
    skipped: int
    idle: int
    rss_start_mb: float
    rss_end_mb: float
    failed: int = 0
    #: The first failure's log line ('' when none failed).
    first_failure: str = ''
    #: Resident memory a quarter into the run, once the pipeline's buffers are all made.
    rss_settled_mb: float = math.nan

    @property
    def balanced(self) -> bool:
        """Whether every pair handed in is accounted for exactly once."""
        return self.received == (self.processed + self.dropped + self.skipped + self.failed
                                 + self.idle)

    @property
    def grown_mb(self) -> float:
        """Resident memory gained from a quarter into the run to its end (MB)."""
        return self.rss_end_mb - self.rss_settled_mb

    def problems(self) -> list[str]:
        """Return what failed the run, one line each (none: it passed)."""
        found = [] if self.balanced else ['the counts do not add up']
        if self.failed:
            found.append(f'{self.failed} pairs failed (first: {self.first_failure})')
        if not self.processed:
            found.append('no pair was processed')
        if self.grown_mb > MAX_GROWTH_MB:
            found.append(f'memory grew by {self.grown_mb:.1f} MB after the first quarter '
                         f'(more than {MAX_GROWTH_MB:g} MB)')
        return found

    def lines(self) -> list[str]:
        """Return the report printed by ``stereo-depth soak``."""
        return [f'backend {self.backend_hz:.1f} pairs/s; fed {self.input_hz:.1f} pairs/s for '
                f'{self.seconds:.1f} s',
                f'input {self.received} = processed {self.processed} + dropped {self.dropped} '
                f'+ skipped {self.skipped}' + (f' + failed {self.failed}' if self.failed else '')
                + (f' + idle {self.idle}' if self.idle else '')
                + (' (balanced)' if self.balanced else ' (NOT BALANCED)'),
                f'memory (RSS): {self.rss_start_mb:.1f} MB at the start, '
                f'{self.rss_settled_mb:.1f} MB a quarter in, {self.rss_end_mb:.1f} MB at the '
                f'end ({self.grown_mb:+.1f} MB since a quarter in)',
                *(f'FAILED: {problem}' for problem in self.problems())]


#: Resident memory a soak may gain after its first quarter (MB): a pair's buffers are a few
#: MB; a leak of one image per pair grows by hundreds in a run.
MAX_GROWTH_MB = 64.0


def resident_mb() -> float:
    """Return the resident memory of this process in MB."""
    return psutil.Process().memory_info().rss / 2**20


def make_pairs(types: MessageTypes, width: int, height: int,
               shift: int = 8) -> tuple[StereoPair, StereoPair]:
    """Return a good pair (textured plane, disparity ``shift``) and a bad one (32FC1 left)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width + shift, 3), dtype=np.uint8)
    left, right = texture[:, :width].copy(), texture[:, shift:].copy()
    camera = StereoCameraModel.from_focal_baseline(width, 0.1, width, height)
    header = make_header(1_000_000_000, 'left', types)
    left_info, right_info = make_camera_infos(camera, header, header, types)
    good = StereoPair(array_to_image(left, 'rgb8', header, types.Image),
                      array_to_image(right, 'rgb8', header, types.Image), left_info, right_info)
    depth = np.ones((height, width), np.float32)
    bad = StereoPair(array_to_image(depth, '32FC1', header, types.Image), good.right_image,
                     left_info, right_info)
    return good, bad


def _fresh(pair: StereoPair) -> StereoPair:
    """Return ``pair`` received now (the worker measures latency from ``received``)."""
    return StereoPair(pair.left_image, pair.right_image, pair.left_info, pair.right_info)


def run_soak(pipeline: StereoPipeline, seconds: float, factor: float = 3.0,
             width: int = 320, height: int = 240, bad_every: int = 10,
             progress: bool = True,
             log: Optional[Callable[[str], Any]] = None) -> SoakResult:
    """Feed the worker at ``factor`` x the backend's rate for ``seconds``; return the counts."""
    types = MessageTypes.from_typestore(get_distro_typestore('jazzy'))
    processor = StereoFrameProcessor(types)
    good, bad = make_pairs(types, width, height)
    topics = [topic for topic in OUTPUT_TOPICS if topic != 'points2']
    # One untimed pair first: its one-time costs (torch_compile compiles on it) are no rate.
    processor.process(good, pipeline, topics)
    tick = time.perf_counter()
    for _ in range(3):
        processor.process(good, pipeline, topics)
    backend_hz = 3 / (time.perf_counter() - tick)
    input_hz = factor * backend_hz
    failures: list[str] = []

    def error(text: str) -> None:
        failures.append(text)
        if log is not None:
            log(text)

    worker = StereoWorker(processor, lambda: pipeline, lambda: topics, lambda messages: None,
                          log or (lambda text: None), error)
    rss_start = rss_settled = resident_mb()
    worker.start()
    start = time.monotonic()
    sent = 0
    settled = False
    try:
        with tqdm(total=round(seconds), desc='soak', unit='s', disable=not progress) as bar:
            while (now := time.monotonic()) - start < seconds:
                due = start + sent / input_hz
                if due > now:
                    time.sleep(due - now)
                sent += 1
                worker.submit(_fresh(bad if bad_every and sent % bad_every == 0 else good))
                if not settled and now - start >= seconds / 4:
                    rss_settled, settled = resident_mb(), True
                if int(now - start) > bar.n:
                    bar.update(int(now - start) - bar.n)
            # The last second ends the loop, not the count above.
            bar.update(round(seconds) - bar.n)
    finally:
        # Also on Ctrl-C: Python exiting while the thread is inside OpenCV or torch aborts
        # the process ("terminate called without an active exception", exit 134).
        worker.stop(timeout=60.0)
    monitor = worker.monitor
    return SoakResult(time.monotonic() - start, backend_hz, input_hz, monitor.total_received,
                      monitor.total_processed, monitor.total_dropped, monitor.total_skipped,
                      monitor.total_idle, rss_start, resident_mb(), monitor.total_failed,
                      failures[0] if failures else '', rss_settled)
