"""Per-pair work of the ROS 2 node, without rclpy: check the input, compute, build messages.

:class:`StereoFrameProcessor` turns one synchronised :class:`StereoPair` into the messages of
the requested output topics (see :mod:`stereo_depth_ros.topics`). The node runs it on its
inference thread (:mod:`stereo_depth_ros.worker`) and ``stereo-depth process-bag`` on every
pair of a bag; the unit tests run it on ``rosbags`` message objects.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import numpy as np

from .camera import calibration_change, camera_info_fields, StereoCameraModel, wide_baseline
from .errors import ImageFormatError
from .images import pair_mismatch, to_rgb
from .msgs.images import (array_to_image, BIT_DEPTH_SETTING, compressed_image_size, ENCODINGS,
                          image_label, is_compressed, narrow_16_bit_note, STEREO_ENCODINGS,
                          stereo_input_from_message)
from .msgs.obstacle import make_mask_image, make_obstacle_range
from .msgs.points import make_point_cloud2
from .msgs.stereo import make_camera_info, make_depth_image, make_disparity_image
from .msgs.types import MessageTypes
from .pipeline import PipelineResult, StereoPipeline
from .plausibility import check_image_size, check_pair, PairCheck, RowOffset
from .topics import check_topics, pipeline_outputs


#: Seconds after a pair check that could not tell, or found the pair swapped, before the next.
CHECK_RETRY_S = 1.0


@dataclass
class StereoPair:
    """The four synchronised input messages and when (``time.monotonic``) they arrived."""

    left_image: Any
    right_image: Any
    left_info: Any
    right_info: Any
    received: float = field(default_factory=time.monotonic)


def note_kind(note: str) -> str:
    """Return what a warning line is about: its text before the first colon.

    The same for every line of one kind (their details follow the colon): it keys the node's
    throttle and the one line per kind of ``process-bag``'s summary.
    """
    return note.split(':')[0]


#: Frames of 16-bit images whose brightest value says whether the sensor has fewer bits.
NARROW_16_BIT_FRAMES = 10


@dataclass
class FrameOutput:
    """Messages to publish (topic -> message) for one pair, and the pipeline's timings (ms).

    ``check_inputs`` are the pair's backend inputs where a pair check is due
    (:meth:`StereoFrameProcessor.check`, run once the messages are out), else None;
    ``early_check`` is a check run before the pair was processed (:meth:`check`).
    """

    messages: dict[str, Any]
    timings: dict[str, float]
    camera: StereoCameraModel
    check_inputs: Optional[tuple[np.ndarray, np.ndarray]] = None
    early_check: Optional[PairCheck] = None
    #: The pipeline's warnings about this pair (:attr:`PipelineResult.notes`).
    notes: tuple[str, ...] = ()
    #: The view check failed the pair: its outputs say unknown (``check_views``).
    views_unconfirmed: bool = False
    #: The ``obstacle.range_frame_id`` its pipeline had ('' = the image's frame).
    range_frame_id: str = ''
    #: The right view was resampled onto the left's rows (``align_rows``).
    rows_aligned: bool = False


def obstacle_field_of_view(camera: StereoCameraModel,
                           roi: Optional[tuple[float, float, float, float]]) -> float:
    """Return the horizontal arc (rad), centred on the optical axis, that holds the window.

    ``sensor_msgs/Range`` places its object within +-field_of_view/2 of its axis, so the
    arc reaches the window's farther edge on both sides: an off-centre window (one that
    leaves the robot's own body out) gets more than its own angle, never an arc beside it.
    ``roi`` is ``(x, y, width, height)`` as fractions of the image (as
    :class:`~stereo_depth_ros.obstacle.ObstacleParameters` has it); None is the whole image.
    Pixel centres are integers, so the image spans ``-0.5 .. width - 0.5``.
    """
    x, width = (0.0, 1.0) if roi is None else (float(roi[0]), float(roi[2]))
    left = x * camera.width - 0.5
    right = (x + width) * camera.width - 0.5
    angle_left = math.atan2(left - camera.cx_left, camera.fx)
    angle_right = math.atan2(right - camera.cx_left, camera.fx)
    return float(2 * max(abs(angle_left), abs(angle_right)))


def input_size(image: Any, side: str) -> tuple[int, int]:
    """Return an image message's (width, height) without decoding it.

    A compressed image's comes from its PNG or JPEG header; other formats are refused
    (ImageFormatError naming the ``side``).
    """
    if not is_compressed(image):
        return int(image.width), int(image.height)
    try:
        return compressed_image_size(image)
    except ImageFormatError as error:
        raise ImageFormatError(f'{side} image: {error}') from None


class StereoFrameProcessor:
    """Turn one synchronised :class:`StereoPair` into the output messages asked for.

    The images are ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` (JPEG or PNG, as
    image_transport's ``compressed`` transport publishes them). Bad input raises
    ImageFormatError or CalibrationError naming the problem: images above ``max_megapixels``
    (checked before anything is decoded, :func:`input_size`), an encoding that is not a
    camera image, bytes that do not decode, left/right of different sizes or kinds (grey vs
    colour), camera infos that do not fit the images, an uncalibrated or wrong-sign baseline.
    The stereo model is cached while the camera infos stay the same. Every
    ``check_period`` seconds (and on the first pair) an output is marked for :meth:`check`:
    does the pair look swapped, how far are its rows off
    (:func:`~stereo_depth_ros.plausibility.check_pair`). A check that could not measure the
    rows (a dark or featureless frame) is tried again after ``check_retry`` seconds. From a
    check that finds the pair swapped until one that does not, the pairs come out unknown
    (the pipeline's ``swapped``): their obstacles would be phantoms. Until a check could
    tell, and while the latest says swapped, checks run before their pair is processed and
    again after ``check_retry``: a swapped stream publishes no phantom, and comes back at
    the first check after it is fixed (within ``check_retry``).
    """

    def __init__(self, types: MessageTypes, mono16_bit_depth: Optional[int] = None,
                 max_megapixels: Optional[float] = None,
                 limit_option: str = '--max-megapixels',
                 check_period: float = math.inf, check_retry: float = CHECK_RETRY_S,
                 clock: Callable[[], float] = time.monotonic,
                 organized_points: bool = False) -> None:
        self.types = types
        #: ``points2`` organised as the image (node parameter ``points_organized``).
        self.organized_points = bool(organized_points)
        #: Seconds between two checks of the pair (swapped? rows off? about 40 ms at
        #: 1242x375); the first pair is always checked, inf: only the first (that measures).
        self.check_period = float(check_period)
        #: Seconds before a check that could not tell, or found the pair swapped, is followed
        #: by the next (0: on the next pair, as ``process-bag`` does: its pace is no clock's).
        self.check_retry = float(check_retry)
        self._clock = clock
        self._next_check = -math.inf
        self.mono16_bit_depth = mono16_bit_depth or None
        #: Pairs larger than this many megapixels are refused before decoding (None: no limit).
        self.max_megapixels = max_megapixels or None
        self.limit_option = limit_option
        #: Whether the latest pair check that could tell found left and right swapped.
        self.swapped = False
        #: The latest pair check that could tell, else the latest (None before the first).
        self.latest_check: Optional[PairCheck] = None
        #: Whether a check could tell yet (a dark or featureless frame cannot).
        self._measured = False
        self._camera_key: Optional[tuple] = None
        self._camera: Optional[StereoCameraModel] = None
        #: The camera of the last pair processed: a pair of another calibration says what
        #: changed, until one of it is processed.
        self._processed_camera: Optional[StereoCameraModel] = None
        #: The brightest value of the 16-bit images decoded without a bit depth, and how many
        #: frames it is over (a 12-bit sensor is told from a dark scene over many frames).
        self._brightest_16 = 0
        self._frames_16 = 0

    def camera(self, left_info: Any, right_info: Any) -> StereoCameraModel:
        """Return the stereo model of the two CameraInfo messages (cached).

        Another camera (CameraInfo) than the pairs before is another stream: its next pair
        is checked before it is processed, as a stream's first pair is, and again while the
        checks cannot tell (a bag switched, or looped onto another, with its left and right
        exchanged, went unchecked for a check period), and its 16-bit images are judged on
        their own. The old camera's swap verdict stands until a check of the new one can
        tell: a swapped stream's pairs stay unknown rather than come out as phantoms.
        """
        key = tuple(camera_info_fields(info) for info in (left_info, right_info))
        if key != self._camera_key:
            camera = StereoCameraModel.from_camera_info(left_info, right_info)
            if self._camera is not None:
                self._measured = False
                self._next_check = -math.inf
                self._brightest_16 = self._frames_16 = 0
            self._camera_key, self._camera = key, camera
        assert self._camera is not None
        return self._camera

    def inputs(self, pair: StereoPair, notes: Optional[list[str]] = None
               ) -> tuple[np.ndarray, np.ndarray, StereoCameraModel]:
        """Return the left and right backend inputs and the camera model of a checked pair.

        Lines about the inputs go to ``notes``: 16-bit images without ``mono16_bit_depth``
        whose brightest value over :data:`NARROW_16_BIT_FRAMES` frames or more needs 9-14
        bits (a 12-bit sensor scaled over 16 bits keeps 4 bits of grey), a baseline so wide
        that it is more likely centimetres (:func:`~stereo_depth_ros.camera.wide_baseline`),
        and, with the first pair of a changed calibration, what changed
        (:func:`~stereo_depth_ros.camera.calibration_change`).
        """
        for image, side in ((pair.left_image, 'left'), (pair.right_image, 'right')):
            check_image_size(*input_size(image, side), self.max_megapixels, self.limit_option)
        brightest: list[int] = []
        left = self._image(pair.left_image, 'left', brightest)
        right = self._image(pair.right_image, 'right', brightest)
        mismatch = pair_mismatch(left.shape, right.shape)
        if mismatch is not None:
            labels = (image_label(pair.left_image), image_label(pair.right_image))
            raise ImageFormatError(mismatch.message(labels=labels))
        camera = self.camera(pair.left_info, pair.right_info)
        camera.check_image_size(left.shape[1], left.shape[0])
        processed = self._processed_camera
        if processed is not None and camera is not processed and notes is not None:
            change = calibration_change(processed, camera)
            if change is not None:
                notes.append(change)
        if brightest:  # counted for this camera (a new one starts the count again)
            self._brightest_16 = max(self._brightest_16, *brightest)
            self._frames_16 += 1
            note = self.narrow_16_bit_note()
            if note is not None and notes is not None:
                notes.append(note)
        wide = wide_baseline(camera.baseline)  # accepted, but more likely centimetres
        if wide is not None and notes is not None:
            notes.append(f'camera baseline: {wide}; every depth scales with it')
        return left, right, camera

    def narrow_16_bit_note(self) -> Optional[str]:
        """Return the line about narrow 16-bit images as the frames so far say, or None.

        None before :data:`NARROW_16_BIT_FRAMES` frames, and once a frame was bright enough
        for all 16 bits.
        """
        if self._frames_16 < NARROW_16_BIT_FRAMES:
            return None
        return narrow_16_bit_note(self._brightest_16, BIT_DEPTH_SETTING,
                                  f'the brightest value of {self._frames_16} frames')

    def _image(self, msg: Any, side: str, brightest: Optional[list[int]] = None) -> np.ndarray:
        if not is_compressed(msg) and msg.encoding not in STEREO_ENCODINGS:
            kind = ('is not a camera intensity image' if msg.encoding in ENCODINGS
                    else 'is not supported')
            raise ImageFormatError(
                f'{side} image: encoding {msg.encoding!r} {kind}; stereo input must be one '
                f'of {", ".join(STEREO_ENCODINGS)}')
        try:
            return stereo_input_from_message(msg, self.mono16_bit_depth, brightest)
        except ImageFormatError as error:
            raise ImageFormatError(f'{side} image: {error}') from None

    def process(self, pair: StereoPair, pipeline: StereoPipeline,
                topics: Iterable[str]) -> FrameOutput:
        """Run ``pipeline`` on the pair and build the messages of the requested ``topics``."""
        topics = check_topics(topics)
        notes: list[str] = []
        left, right, camera = self.inputs(pair, notes)
        scheduled = self._next_check
        due = self._check_due()
        early = None
        if due and (not self._measured or self.swapped):
            try:
                early = self._run_check(left, right, camera)
            except Exception:  # noqa: B902 - run again after publishing, which reports it
                early = None
        try:
            result = pipeline.process(left, right, camera, outputs=pipeline_outputs(topics),
                                      swapped=self.swapped, row_offset=self.row_offset)
            messages = build_messages(result, topics, camera, pair.left_image.header, left,
                                      self.types, self.organized_points)
            self._processed_camera = camera
        except BaseException:
            if due and early is None:  # the check did not run: the next pair's is due
                self._next_check = scheduled
            raise
        return FrameOutput(messages=messages, timings=dict(result.timings), camera=camera,
                           check_inputs=(left, right) if due and early is None else None,
                           early_check=early,
                           notes=tuple(dict.fromkeys(notes + result.notes)),
                           views_unconfirmed=result.views_unconfirmed,
                           range_frame_id=result.range_frame_id,
                           rows_aligned=result.rows_aligned)

    @property
    def row_offset(self) -> Optional[RowOffset]:
        """Return the row offset the latest pair check of this camera measured, else None.

        The pipeline aligns the right view by it (``align_rows``) until the next check.
        """
        check = self.latest_check
        return check.row_offset if self._measured and check is not None else None

    def _check_due(self) -> bool:
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_period
        return True

    def check(self, output: FrameOutput) -> Optional[PairCheck]:
        """Return :func:`check_pair` of an output marked for it, else None.

        Called after the output's messages are published (about 40 ms at 1242x375, 65 ms
        at 1920x1080), so that no frame's outputs wait for it; the next pair does, once per
        ``check_period`` (the node's ``PAIR_CHECK_PERIOD_S``). Sets :attr:`swapped` for the
        pairs after it. Until a check could tell, and while the latest says swapped, checks
        run before their pair instead (``early_check``).
        """
        if output.early_check is not None:
            return output.early_check
        if output.check_inputs is None:
            return None
        return self._run_check(*output.check_inputs, output.camera)

    def _run_check(self, left: np.ndarray, right: np.ndarray,
                   camera: StereoCameraModel) -> PairCheck:
        """Return :func:`check_pair` of a pair; set :attr:`swapped` and the retry.

        A check that cannot tell (a dark or featureless frame: not swapped, rows not
        measured) leaves :attr:`swapped` as it was. One that cannot tell, or says swapped, is
        followed by the next after ``check_retry`` seconds: a swapped stream is told as soon
        as it is fixed, and one check mistaken for a swap costs a pair, not a bag.
        """
        found = check_pair(left, right, camera.disparity_offset)
        told = found.swapped or found.row_offset is not None
        if told or not self._measured:
            self.latest_check = found
        if told:
            self._measured = True
            self.swapped = found.swapped
        if found.swapped or not told:
            self._next_check = min(self._next_check, self._clock() + self.check_retry)
        return found


def build_messages(result: PipelineResult, topics: frozenset[str], camera: StereoCameraModel,
                   header: Any, left: np.ndarray, types: MessageTypes,
                   organized_points: bool = False) -> dict[str, Any]:
    """Return topic -> message of the ``topics`` the pipeline ``result`` has outputs for.

    Every message gets ``header`` (the left image's); the disparity range and obstacle limits
    come from the result, ``left`` (the backend input) colours the point cloud, organised as
    the image with ``organized_points``.
    """
    messages: dict[str, Any] = {}
    if 'disparity' in topics:
        messages['disparity'] = make_disparity_image(
            result.disparity, camera, header, result.min_disparity, result.max_disparity, types)
    if 'depth/image_rect' in topics and result.depth is not None:
        messages['depth/image_rect'] = make_depth_image(result.depth, header, types)
    if 'depth/camera_info' in topics:
        messages['depth/camera_info'] = make_camera_info(camera, 'left', header, types)
    if result.obstacle is not None:
        if 'obstacle/mask' in topics:
            messages['obstacle/mask'] = make_mask_image(result.obstacle.mask, header, types)
        if 'obstacle/range' in topics:
            messages['obstacle/range'] = make_obstacle_range(
                result.obstacle.distance, header, types, result.min_range, result.max_range,
                obstacle_field_of_view(camera, result.obstacle_roi), result.range_frame_id)
    if 'disparity/color' in topics and result.color is not None:
        bgr = np.ascontiguousarray(result.color[:, :, ::-1])
        messages['disparity/color'] = array_to_image(bgr, 'bgr8', header, types.Image)
    if 'points2' in topics and result.points is not None:
        messages['points2'] = make_point_cloud2(result.points, to_rgb(left), header, types,
                                                organized=organized_points)
    return messages
