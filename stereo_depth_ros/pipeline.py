"""Left/right arrays + calibration -> disparity, depth, obstacle, pictures, points.

The node, the bag tools and the CLI all call :meth:`StereoPipeline.process` and nothing else,
so one code path serves them all.
"""

import math
import numbers
import time
from dataclasses import dataclass, field, replace
from typing import AbstractSet, Optional

import numpy as np

from .backends.base import DisparityBackend
from .camera import StereoCameraModel
from .errors import SettingsError
from .geometry import depth_to_points, DISPARITY_STEP, disparity_to_depth
from .images import check_stereo_pair
from .near_guard import near_surface_disparity
from .obstacle import ObstacleParameters, ObstacleResult, segment_nearest_obstacle
from .plausibility import RowOffset
from .row_alignment import RowAligner, worth_aligning
from .view_check import check_views, SWAPPED_VIEWS, ViewCheck, Views
from .visualize import ColourScale, colorize_disparity

#: Outputs :meth:`StereoPipeline.process` can compute besides disparity.
OUTPUT_NAMES = frozenset({'depth', 'obstacle', 'color', 'points'})
DEFAULT_OUTPUTS = frozenset({'depth', 'obstacle', 'color'})


@dataclass
class PipelineResult:
    """Everything one stereo pair produced; outputs not asked for are None.

    ``disparity`` and ``depth`` are float32 HxW (NaN unknown; depth ``-inf``/``+inf`` outside
    ``min_depth``/``max_depth``, ``-inf`` too where the near guard found an obstacle nearer
    than the backend measures), ``points`` HxWx3 metres in the left optical frame (NaN where
    there is no depth), ``color`` HxWx3 uint8 **RGB** (``cv2.imwrite`` wants BGR).

    It also carries the settings it was computed with, so messages are built from the result
    alone (a parameter change may replace the pipeline meanwhile): the backend's disparity
    search range (``min_disparity``/``max_disparity``, px) and the obstacle search limits
    (``min_range``/``max_range``, m, :meth:`StereoPipeline.obstacle_range_limits`, and
    ``obstacle_roi``, fractions of the image) and the ``Range``'s frame (``range_frame_id``,
    '' for the image's). On a pair whose views fail the view check both limits are the
    first: the search saw no depth, and the ``Range`` says NaN (no valid reading).
    """

    disparity: np.ndarray
    min_disparity: float
    max_disparity: float
    min_range: float
    max_range: float
    obstacle_roi: tuple[float, float, float, float]
    range_frame_id: str = ''
    depth: Optional[np.ndarray] = None
    obstacle: Optional[ObstacleResult] = None
    color: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None
    timings: dict[str, float] = field(default_factory=dict)
    #: Warnings about this pair's settings (e.g. an obstacle search that sees no depth).
    notes: list[str] = field(default_factory=list)
    #: What the view check found (None: not run; SWAPPED_VIEWS: a swapped stream's pair);
    #: outputs are unknown unless it is a match.
    views: Optional[ViewCheck] = None
    #: Whether the right view was resampled onto the left's rows before matching
    #: (:mod:`~stereo_depth_ros.row_alignment`).
    rows_aligned: bool = False

    @property
    def views_unconfirmed(self) -> bool:
        """Whether the view check failed the pair (or it was swapped): its outputs are unknown."""
        return self.views is not None and self.views.verdict is not Views.MATCH


def blind_search_note(min_range: float, max_range: float) -> str:
    """Return the warning for an obstacle search whose depth interval is empty.

    It happens with a camera whose nearest measurable depth (f B over the backend's largest
    disparity) lies beyond ``obstacle.max_range`` or ``max_depth``: only the parameters are
    checked when set, the camera comes with the first pair.
    """
    return (f'the obstacle search sees no depth with this camera: the nearest it can see, '
            f'{min_range:.3g} m (the largest of obstacle.min_range, min_depth and f B over '
            f"the backend's largest disparity), is not below the farthest, {max_range:.3g} m "
            '(obstacle.max_range, max_depth): raise those, or the disparity range '
            '(sgbm.disparity_range, learned.near_passes); Range says -inf for an obstacle '
            'nearer than the start, else NaN')


def _with_near_surfaces(depth: np.ndarray, too_near: Optional[np.ndarray],
                        camera: StereoCameraModel) -> np.ndarray:
    """Return the depth the obstacle search takes: the near guard's finds in their place.

    ``too_near`` holds their disparities (px, NaN elsewhere); None: the backend's depth itself.
    """
    if too_near is None:
        return depth
    found = np.isfinite(too_near)
    searched = depth.copy()
    searched[found] = disparity_to_depth(too_near[found], camera.focal_baseline,
                                         camera.disparity_offset)
    return searched


def _mark_too_near(depth: np.ndarray, disparity: np.ndarray, where: np.ndarray) -> None:
    """Mark, in place, the obstacles' pixels the near guard found as too near to measure.

    The backend's values there are none (holes, or a farther surface a network read beyond
    its range, which a costmap would clear through): depth ``-inf`` (REP 117, too close), as
    the ``Range`` says, and the disparity unknown (NaN), so the point cloud has no point there.
    Only the pixels of surfaces the obstacle search accepts (``ObstacleResult.surfaces``):
    its size and clearance checks keep the guard's false finds in repeating textures, which
    it only partly rules out, out of the published depth. So a find outside
    ``obstacle.roi`` keeps the backend's values (holes, or a network's farther reading).
    """
    depth[where] = -np.inf
    disparity[where] = np.nan


def check_depth_range(min_depth: Optional[float], max_depth: Optional[float],
                      obstacle_params: ObstacleParameters) -> None:
    """Raise SettingsError for a depth range (None: no limit) or obstacle settings that cannot be.

    Also refused: an obstacle search that could see no depth at all (``min_depth`` not below
    ``obstacle.max_range``, ``max_depth`` not above ``obstacle.min_range``).
    """
    obstacle_params.validate()
    for name, limit in (('min_depth', min_depth), ('max_depth', max_depth)):
        if limit is not None and not (isinstance(limit, numbers.Real) and limit > 0):
            raise SettingsError(f'{name} must be a number > 0 m (or 0 / None: no limit), got '
                                f'{limit!r}')
    if min_depth is not None and max_depth is not None and not min_depth < max_depth:
        raise SettingsError(f'need min_depth < max_depth, got {min_depth}, {max_depth}')
    if min_depth is not None and min_depth >= obstacle_params.max_range:
        raise SettingsError(f'min_depth ({min_depth:g} m) is not below the obstacle search\'s '
                            f'max_range ({obstacle_params.max_range:g} m; node parameter '
                            'obstacle.max_range, ObstacleParameters(max_range=...)): no depth it '
                            'searches would be in range')
    if max_depth is not None and max_depth <= obstacle_params.min_range:
        raise SettingsError(f'max_depth ({max_depth:g} m) is not above the obstacle search\'s '
                            f'min_range ({obstacle_params.min_range:g} m; node parameter '
                            'obstacle.min_range, ObstacleParameters(min_range=...)): no depth it '
                            'searches would be in range')


def _wanted_outputs(outputs: Optional[AbstractSet[str]]) -> frozenset[str]:
    """Return the checked set of requested pipeline outputs (None: the default ones)."""
    if isinstance(outputs, str):
        raise SettingsError(f'outputs must be a set of names, e.g. {{{outputs!r}}}, got the '
                            f'string {outputs!r}')
    wanted = DEFAULT_OUTPUTS if outputs is None else frozenset(outputs)
    unknown = wanted - OUTPUT_NAMES
    if unknown:
        raise SettingsError(f'unknown pipeline outputs {sorted(unknown)}; known: '
                            f'{sorted(OUTPUT_NAMES)}')
    return wanted


class StereoPipeline:
    """Run a disparity backend and derive depth, nearest obstacle and pictures.

    ``min_depth``/``max_depth`` (metres; 0 or None: no limit; settings that cannot be raise
    SettingsError, :func:`check_depth_range`) mark depth outside that range ``-inf``/``+inf`` (REP
    117) and blank the disparity there, whatever outputs are requested (they need the camera
    model: without it nothing is marked). With ``obstacle.near_guard`` (the default), the
    pixels of surfaces nearer than the backend measures that the obstacle search accepts are
    marked as its ``Range`` says, depth ``-inf`` (too close), disparity unknown, whatever
    outputs are requested, given the camera (:mod:`~stereo_depth_ros.near_guard`). The one
    thing it carries from pair to pair is the top of the colour picture's scale
    (:class:`~stereo_depth_ros.visualize.ColourScale`): one pipeline per stream. A pipeline
    that replaces another one of the same stream (new settings) is given its
    ``colour_scale``, so the colours keep their meaning across the change.

    With ``align_rows`` (the default) the right view is resampled onto the left's rows when
    :meth:`process` is given a row offset worth it (:mod:`~stereo_depth_ros.row_alignment`).

    With ``check_views`` (the default) a pair whose two views do not confirm its disparity
    (:mod:`~stereo_depth_ros.view_check`: a covered, black or failing camera, topics of two
    cameras, noise in the dark) comes out unknown: disparity and depth NaN, no points, no
    obstacle and a ``Range`` of NaN, with a note saying why. So does, with ``check_views``, a
    pair that :meth:`process` is told is swapped (the latest pair check of its stream said so:
    its obstacles would be phantoms), without running the backend.
    """

    def __init__(self, backend: DisparityBackend,
                 obstacle_params: Optional[ObstacleParameters] = None,
                 min_depth: Optional[float] = None, max_depth: Optional[float] = None,
                 colour_scale: Optional[ColourScale] = None, check_views: bool = True,
                 align_rows: bool = True) -> None:
        # 0 is "no limit", as the node's parameters have it (a library user passing the
        # node's 0.0 had every depth marked "nothing within range").
        min_depth, max_depth = (limit or None for limit in (min_depth, max_depth))
        self.obstacle_params = obstacle_params or ObstacleParameters()
        check_depth_range(min_depth, max_depth, self.obstacle_params)
        self.backend = backend
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.colour_scale = colour_scale or ColourScale()
        self.check_views = bool(check_views)
        self.align_rows = bool(align_rows)
        self._aligner = RowAligner()
        #: Image widths already told that the backend's range is wider (said once each).
        self._narrow_widths: set[int] = set()

    def aligns_rows(self, offset: Optional[RowOffset], shape: tuple[int, ...]) -> bool:
        """Return whether :meth:`process` resamples the right view of a pair by ``offset``.

        ``shape`` is the pair's; a pair withheld as swapped is not resampled either.
        """
        return self.align_rows and worth_aligning(offset, shape)

    def process(self, left: np.ndarray, right: np.ndarray,
                camera: Optional[StereoCameraModel] = None,
                outputs: Optional[AbstractSet[str]] = None,
                swapped: bool = False,
                row_offset: Optional[RowOffset] = None) -> PipelineResult:
        """Compute disparity and the requested ``outputs`` for one rectified pair.

        ``depth``, ``obstacle`` and ``points`` need ``camera``; without it they are None.
        ``swapped``: a pair check of the stream found left and right exchanged
        (:func:`~stereo_depth_ros.plausibility.check_pair`); with ``check_views`` the pair comes
        out unknown, with the verdict :data:`~stereo_depth_ros.view_check.SWAPPED_VIEWS`.
        ``row_offset``: the right view's rows as a pair check of the stream measured them
        (``check_pair(left, right).row_offset``); with ``align_rows`` (the default), where it
        is worth it, the right view is put on the left's rows before anything compares them
        (:func:`~stereo_depth_ros.row_alignment.aligned_right`; the result's
        ``rows_aligned``).
        Raises ImageFormatError / CalibrationError naming the problem with the input.
        """
        wanted = _wanted_outputs(outputs)
        check_stereo_pair(left, right)
        if camera is not None:
            camera.check_image_size(left.shape[1], left.shape[0])
        start = time.perf_counter()
        withheld = swapped and self.check_views
        right, aligned = self._aligner(
            left, right, row_offset if self.align_rows and not withheld else None)
        align_ms = (time.perf_counter() - start) * 1e3
        result = self._run_backend(left, right, camera, withheld)
        result.rows_aligned = aligned
        timings = result.timings
        if aligned:
            timings['align_ms'] = align_ms
        # The depth range limits the disparity too, so it is applied whenever it is set, even
        # when only the disparity is wanted.
        has_range = self.min_depth is not None or self.max_depth is not None
        # So is the near guard, whoever subscribes: the disparity holds what it marks too.
        guarded = self.obstacle_params.near_guard
        uses_camera = camera is not None and (has_range or guarded
                                              or bool(wanted & {'depth', 'obstacle', 'points'}))
        too_near = (self._surfaces_too_near(left, right, result.disparity, result.max_disparity,
                                            timings)
                    if uses_camera and not withheld else None)
        if withheld:
            result.views = SWAPPED_VIEWS
            result.notes.append(SWAPPED_VIEWS.note())
        views_match = not self.check_views or (
            not withheld and self._views_match(left, right, result, too_near))
        if not views_match:
            if not withheld:  # a withheld pair's disparity is all NaN already
                result.disparity = np.full_like(result.disparity, np.nan)
            too_near = None
            result.max_range = result.min_range
        if uses_camera:
            assert camera is not None  # uses_camera says so
            self._geometry(result, camera, wanted, too_near, views_match)
        if 'color' in wanted:
            result.color = self._colour(result, views_match)
        timings['total_ms'] = (time.perf_counter() - start) * 1e3
        return result

    def _run_backend(self, left: np.ndarray, right: np.ndarray,
                     camera: Optional[StereoCameraModel], withheld: bool) -> PipelineResult:
        """Return the result of the backend's disparity (NaN where ``withheld``), timed.

        Its range and the obstacle search's limits for ``camera`` come with it, and the note,
        once per image width, where the image is too narrow for the backend's range.
        """
        start = time.perf_counter()
        disparity = (np.full(left.shape[:2], np.nan, np.float32) if withheld
                     else self.backend.compute(left, right))
        timings = {'disparity_ms': (time.perf_counter() - start) * 1e3}
        min_range, max_range = self.obstacle_range_limits(camera)
        reach = self.largest_disparity(left.shape[1])
        result = PipelineResult(disparity=disparity,
                                min_disparity=float(self.backend.min_disparity),
                                max_disparity=reach,
                                min_range=min_range, max_range=max_range,
                                obstacle_roi=self.obstacle_params.roi,
                                range_frame_id=self.obstacle_params.range_frame_id,
                                timings=timings)
        if reach < float(self.backend.max_disparity) and left.shape[1] not in self._narrow_widths:
            self._narrow_widths.add(left.shape[1])
            result.notes.append(
                f'the image is too narrow for the disparity range: {self.backend.name} '
                f'reaches {float(self.backend.max_disparity):g} px, but on a '
                f'{left.shape[1]}-px-wide pair only {reach:g} px; the '
                'DisparityImage, the depth limits and the Range use that')
        return result

    def _geometry(self, result: PipelineResult, camera: StereoCameraModel,
                  wanted: frozenset[str], too_near: Optional[np.ndarray],
                  views_match: bool) -> None:
        """Add depth, obstacle and points to ``result``, and mark the depth range in both.

        The obstacle search runs before the depth range is marked (an obstacle nearer than
        ``min_depth`` is found at its depth, and its ``Range`` says "too close"), and also
        where only the near guard's finds (``too_near``) need it: they are marked where it
        keeps them.
        """
        timings, disparity = result.timings, result.disparity
        tick = time.perf_counter()
        depth = disparity_to_depth(disparity, camera.focal_baseline, camera.disparity_offset)
        timings['depth_ms'] = (time.perf_counter() - tick) * 1e3
        obstacle = None
        if not views_match:
            obstacle = ObstacleResult(np.zeros(depth.shape, bool))
            if 'obstacle' in wanted:
                result.obstacle = obstacle
        elif 'obstacle' in wanted or too_near is not None:
            if 'obstacle' in wanted and not result.max_range > result.min_range:
                result.notes.append(blind_search_note(result.min_range, result.max_range))
            tick = time.perf_counter()
            obstacle = self._nearest_obstacle(_with_near_surfaces(depth, too_near, camera),
                                              camera, result.max_range, ground_depth=depth,
                                              surfaces=too_near is not None)
            timings['obstacle_ms'] = (time.perf_counter() - tick) * 1e3
            result.notes.extend(obstacle.notes)
            if 'obstacle' in wanted:
                result.obstacle = obstacle
        tick = time.perf_counter()
        self._apply_depth_range(depth, disparity)
        if too_near is not None and obstacle is not None and obstacle.surfaces is not None:
            _mark_too_near(depth, disparity, obstacle.surfaces & np.isfinite(too_near))
        timings['depth_ms'] += (time.perf_counter() - tick) * 1e3
        if 'depth' in wanted:
            result.depth = depth
        if 'points' in wanted:  # outside the depth range a point has no position: NaN
            result.points = depth_to_points(np.where(np.isfinite(depth), depth, np.nan), camera)

    def _colour(self, result: PipelineResult, views_match: bool) -> np.ndarray:
        """Return the colour picture of the result's disparity (black for an unknown pair).

        An unknown pair leaves the stream's colour scale as it was.
        """
        if not views_match:
            return np.zeros(result.disparity.shape + (3,), np.uint8)
        top = self.colour_scale.top(result.disparity, result.max_disparity)
        return colorize_disparity(result.disparity, max_disparity=top,
                                  min_disparity=min(result.min_disparity, 0.0))

    def _views_match(self, left: np.ndarray, right: np.ndarray, result: PipelineResult,
                     too_near: Optional[np.ndarray]) -> bool:
        """Return whether the views confirm the result's disparity; if not, add the note.

        The near guard's finds stand in for the backend's estimate where it has them: a
        surface nearer than the backend measures matches the views at the guard's disparity.
        """
        tick = time.perf_counter()
        estimate = result.disparity
        if too_near is not None:
            estimate = np.where(np.isfinite(too_near), too_near, estimate)
        found = result.views = check_views(left, right, estimate)
        result.timings['view_check_ms'] = (time.perf_counter() - tick) * 1e3
        if found.verdict is not Views.MATCH:
            result.notes.append(found.note())
        elif caution := found.caution():
            result.notes.append(caution)
        return found.verdict is Views.MATCH

    def obstacle_range_limits(self, camera: Optional[StereoCameraModel]) -> tuple[float, float]:
        """Return the depths (m) between which the obstacle search can see anything.

        The obstacle's own ``min_range``/``max_range``, narrowed by ``min_depth``/``max_depth``
        and, with a camera, by the depths the backend's disparity range can measure
        (``f B / (max_disparity - offset)``, and ``f B / (min_disparity - offset)`` or
        ``f B / DISPARITY_STEP``, whichever is nearer): a ``Range`` of ``+inf`` then truly
        means nothing between the two (REP 117), not "nothing the search could have seen".
        An obstacle nearer than the first is reported too close (``-inf``).
        """
        params = self.obstacle_params
        nearest = [float(params.min_range), self.min_depth or 0.0]
        farthest = [float(params.max_range), self.max_depth or math.inf]
        if camera is not None:
            nearest.append(self.nearest_measured(camera))
            # Nothing farther than sgbm's min_disparity is matched, and below DISPARITY_STEP
            # a disparity has no depth.
            smallest = max(float(self.backend.min_disparity) - camera.disparity_offset,
                           DISPARITY_STEP)
            farthest.append(camera.focal_baseline / smallest)
        return max(nearest), min(farthest)

    def nearest_measured(self, camera: StereoCameraModel) -> float:
        """Return the nearest depth (m) the backend measures: ``f B / (largest - offset)``.

        0 where no disparity reaches past the principal points' offset.
        """
        largest = self.largest_disparity(camera.width) - camera.disparity_offset
        if largest > 0 and math.isfinite(largest):
            return camera.focal_baseline / largest
        return 0.0

    def largest_disparity(self, width: int) -> float:
        """Return the largest disparity (px) the backend can give on a ``width``-px image.

        Its range, where the image is wide enough: no match lies beyond ``width - 1`` px, and
        ``sgbm`` searches a shorter range on a narrow image
        (:meth:`~stereo_depth_ros.backends.base.DisparityBackend.largest_disparity`).
        """
        return self.backend.largest_disparity(width)

    def _surfaces_too_near(self, left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
                           reach: float, timings: dict[str, float]) -> Optional[np.ndarray]:
        """Return the disparities (px) of surfaces nearer than the backend measures, else NaN.

        With ``near_guard`` (:mod:`~stereo_depth_ros.near_guard`; where the backend has an
        estimate, only finds the images confirm better); None without it or where the search
        is not useful or finds nothing (the usual frame).
        """
        if not self.obstacle_params.near_guard:
            return None
        tick = time.perf_counter()
        found = near_surface_disparity(left, right, reach, disparity)
        timings['near_guard_ms'] = (time.perf_counter() - tick) * 1e3
        return found

    def _nearest_obstacle(self, depth: np.ndarray, camera: StereoCameraModel,
                          max_range: float, ground_depth: Optional[np.ndarray] = None,
                          surfaces: bool = False) -> ObstacleResult:
        """Return the nearest obstacle up to ``max_range``, the farthest the Range covers.

        Nearer than its ``min_range`` is searched too, and nearer than the backend measures
        (the near guard's finds) sized as if there (:mod:`~stereo_depth_ros.obstacle`).
        """
        params = self.obstacle_params
        if not max_range > params.min_range:  # a search range nothing can be seen in
            empty = np.zeros(depth.shape, bool)
            return ObstacleResult(empty, surfaces=empty.copy() if surfaces else None)
        if max_range < params.max_range:
            params = replace(params, max_range=max_range)
        return segment_nearest_obstacle(depth, camera, params, ground_depth, surfaces,
                                        near_limit=self.nearest_measured(camera))

    def _apply_depth_range(self, depth: np.ndarray, disparity: np.ndarray) -> None:
        """Mark depth outside [min_depth, max_depth], in place, as REP 117 does ranges.

        Nearer than ``min_depth`` is ``-inf`` ("too close"), farther than ``max_depth``
        ``+inf`` ("nothing within range": a costmap may clear along it); the disparity of
        both is blanked (NaN, published as invalid).
        """
        with np.errstate(invalid='ignore'):
            near = depth < self.min_depth if self.min_depth is not None else None
            far = depth > self.max_depth if self.max_depth is not None else None
        for outside, value in ((near, -np.inf), (far, np.inf)):
            if outside is not None:
                depth[outside] = value
                disparity[outside] = np.nan
