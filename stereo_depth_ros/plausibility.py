"""Cheap checks that a stereo pair is what it claims to be, before trusting its result.

* :func:`check_image_size` refuses pairs larger than a configurable limit (megapixels), so
  a 4000x3000 photo does not take gigabytes of memory before anything is said;
* :func:`likely_swapped` says whether left and right look exchanged: on a few rows, the
  horizontal shift that matches best is negative for most of them (a correct rectified
  pair only has positive disparities; with principal points apart, ``cx_left - cx_right``
  being ``disparity_offset``, none below that), which turns the scene into phantom near
  obstacles;
* :func:`row_offset` measures how far the right view's rows are from the left's, from
  matched corner features refined to a fraction of a pixel: a rectification or calibration
  that is off by a pixel or more (:data:`ROW_OFFSET_LIMIT`) costs every matcher many wrong
  pixels, a fraction of one some (:mod:`~stereo_depth_ros.row_alignment` resamples the right
  view by what it measures);
* :func:`check_pair` runs both, for the node and the commands that warn about them.
"""

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .errors import ImageFormatError
from .images import LUMA_WEIGHTS, to_gray

#: Default ``--max-megapixels``: larger than 1080p and 2048x1536, smaller than 4000x3000.
DEFAULT_MAX_MEGAPIXELS = 4.0


def check_image_size(width: int, height: int, max_megapixels: Optional[float],
                     option: str = '--max-megapixels') -> None:
    """Raise ImageFormatError when ``width x height`` exceeds ``max_megapixels`` (None: none).

    The message says how large the image is and how to raise the limit with ``option``.
    """
    if max_megapixels is None or max_megapixels <= 0:
        return
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        needed = np.ceil(megapixels * 10) / 10
        size = _above(megapixels, max_megapixels)
        raise ImageFormatError(
            f'images are {width}x{height} ({size} MP), above the limit of '
            f'{max_megapixels:g} MP that keeps memory bounded; downscale them or raise the '
            f'limit with {option} {needed:g} (0 = no limit)')


def _above(value: float, limit: float) -> str:
    """Return ``value`` with one decimal, or more where one would not show it above ``limit``.

    An image of 0.13 MP over a 0.1 MP limit reads "0.13 MP", not "0.1 MP, above the limit of
    0.1 MP".
    """
    for decimals in range(1, 7):
        text = f'{value:.{decimals}f}'
        if float(text) > limit:
            return text
    return f'{value:.9g}'


def _row_shift_scores(left: np.ndarray, right: np.ndarray, rows: np.ndarray,
                      max_shift: int) -> np.ndarray:
    """Return the mean absolute difference of each row for shifts ``-max_shift..max_shift``.

    Shift ``s`` compares left pixel ``x`` with right pixel ``x - s`` (positive disparity).
    """
    width = left.shape[1]
    scores = np.full((len(rows), 2 * max_shift + 1), np.inf, np.float32)
    for column, shift in enumerate(range(-max_shift, max_shift + 1)):
        lo, hi = max(shift, 0), width + min(shift, 0)
        if hi - lo < width // 2:
            continue
        a = left[rows, lo:hi].astype(np.float32)
        b = right[rows, lo - shift:hi - shift].astype(np.float32)
        scores[:, column] = np.abs(a - b).mean(axis=1)
    return scores


def likely_swapped(left: np.ndarray, right: np.ndarray, n_rows: int = 16,
                   max_shift: Optional[int] = None, disparity_offset: float = 0.0) -> bool:
    """Return True when left and right look exchanged (see the module docstring).

    ``n_rows`` textured rows are compared at whole shifts up to ``max_shift`` (default: a
    quarter of the width, at most 64 px, plus the offset's size). The pair counts as swapped
    when at least two thirds of the rows with a clear best shift match best more than half a
    pixel below ``disparity_offset`` (``cx_left - cx_right``: the disparity of a point at
    infinity; a shift within half a pixel of it, a far scene, is not clear), and at least
    four do. With a negative offset (Middlebury's ``doffs`` > 0) a shift between it and its
    opposite fits either order: the right order's shifts lie above the offset, a swapped
    pair's below its opposite. Such rows tell nothing and are left out of the count (a
    swapped Middlebury pair, doffs 52 px, matched at -10 to -57 px and passed as the right
    way round).
    """
    gray_left, gray_right = to_gray(left), to_gray(right)
    height, width = gray_left.shape
    if width < 16 or height < 4:
        return False
    max_shift = max_shift or max(2, min(64, width // 4)) + math.ceil(abs(disparity_offset))
    texture = np.abs(np.diff(gray_left.astype(np.int16), axis=1)).mean(axis=1)
    candidates = np.argsort(texture)[::-1][:max(n_rows * 4, n_rows)]
    rows = np.sort(candidates[np.linspace(0, len(candidates) - 1, n_rows).astype(int)])
    rows = rows[texture[rows] > 1.0]
    if len(rows) < 4:
        return False
    scores = _row_shift_scores(gray_left, gray_right, rows, max_shift)
    best = scores.argmin(axis=1) - max_shift
    clear = [shift for shift, row in zip(best, scores)
             if abs(shift - disparity_offset) > 0.5
             and np.min(row) < 0.8 * np.median(row[np.isfinite(row)])]
    negative = sum(1 for shift in clear if shift < disparity_offset)
    telling = [shift for shift in clear
               if shift < disparity_offset or shift > -disparity_offset]
    return negative >= 4 and negative >= 2 * len(telling) / 3


#: What every line about a pair that :func:`likely_swapped` begins with (one kind of warning).
SWAPPED_KIND = 'left and right look swapped'
#: What :func:`likely_swapped` saw, as every warning about it says it.
SWAP_SYMPTOM = (f'{SWAPPED_KIND} (the best match on most rows is at a negative disparity, or '
                'below cx_left - cx_right where the principal points differ)')


def swap_warning(name: str, advice: str = 'exchange the inputs') -> str:
    """Return the warning line for a pair that :func:`likely_swapped`; ``name`` may be ''."""
    where = f' {name}:' if name else ''
    return f'warning:{where} {SWAP_SYMPTOM}; obstacles would be phantoms - {advice}'


#: Rows of the right view this far (px) from the left's at a typical feature, or twice this
#: at the worst, get a warning. On 12 full-range validation scenes, the right view moved
#: down by 0 / 0.5 / 1 / 1.5 / 2 px, ``costnet_fast``'s bad-2 goes 15.3 / 16.2 / 19.7 /
#: 27.2 / 41.4 % and ``sgbm``'s 25.0 / 25.3 / 26.8 / 32.1 / 41.5 % (README, "Rows off";
#: ``python -m stereo_depth_ros.training.row_offset_sweep --shifts 0,0.5,1,1.5,2``).
ROW_OFFSET_LIMIT = 1.0

#: Fewer matched features than this give no estimate.
MIN_ROW_MATCHES = 20
#: Half the side (px) of the patches whose phase correlation refines each matched corner.
REFINE_HALF_SIDE = 10
#: A refinement with a phase-correlation peak below this, or moving a corner by 2 px or more,
#: is not trusted: the corner keeps its whole-pixel position.
MIN_REFINE_RESPONSE = 0.1
#: :attr:`RowOffset.surely_off` takes the fitted offset less this many standard errors.
SURE_STANDARD_ERRORS = 2.0
#: :attr:`RowOffset.surely_off` averages over this many points along each side of the image.
SURE_GRID = 24


@dataclass(frozen=True)
class RowOffset:
    """How far the right view's rows lie from the left's, in pixels.

    A plane fitted to the row offsets of matched features (the right image's row minus the
    left's for one scene point) gives each feature's offset; a rotation between the views
    shows as offsets that grow towards the edges. ``typical`` is the median size of those
    offsets, ``largest`` the largest, ``lower`` whether the right view mostly shows the scene
    lower than the left, ``matches`` how many features the fit kept. ``plane`` is the fitted
    plane, ``(centre, across, down)`` in px: the offset at left-image column ``x`` and row
    ``y`` of an image of ``shape`` (height, width) is ``centre + across * (x / width - 0.5)
    + down * (y / height - 0.5)`` (:meth:`at`), within ``span``, the first and last column
    and row (px) of the matches the fit kept (a side they reach as near the border as the
    detector lets them, the border: :func:`_span`); beyond it the plane is not extrapolated.
    ``surely_off`` is the mean over the image of the plane's size (within the matches' own
    rows and columns: :func:`_surely_off`) less :data:`SURE_STANDARD_ERRORS` of its standard
    errors, at least 0: how far the rows are off on average, as far as the matches can tell.
    Where a scale between the views leaves the middle rows, which hold most features, on the
    left's, it sees the edges that ``typical`` misses; a plane fitted to a few scattered
    matches, loose at the edges, counts for little in it.
    """

    typical: float
    largest: float
    lower: bool
    matches: int
    plane: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shape: tuple[int, int] = (0, 0)
    surely_off: float = 0.0
    span: Optional[tuple[float, float, float, float]] = None

    def at(self, columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Return the fitted row offset (px) at left-image ``columns`` and ``rows``.

        Beyond the :attr:`span` of the matches, the offset at the nearest column and row
        within it: a plane fitted to matches in one corner of a pair with little texture
        elsewhere can tilt by pixels over the image (measured: 18 px at the far corner of a
        rectified 512x256 scene with 27 matches), which would wreck the rows it resampled.
        """
        height, width = self.shape
        if not (height > 0 and width > 0):
            raise ValueError('this row offset has no fitted plane (no image shape)')
        columns = np.asarray(columns, np.float64)
        rows = np.asarray(rows, np.float64)
        if self.span is not None:
            first_column, last_column, first_row, last_row = self.span
            columns = np.clip(columns, first_column, last_column)
            rows = np.clip(rows, first_row, last_row)
        centre, across, down = self.plane
        return centre + across * (columns / width - 0.5) + down * (rows / height - 0.5)

    def corner_offsets(self) -> np.ndarray:
        """Return the offsets (px) :meth:`at` gives at the image's four corners.

        Beyond the :attr:`span` of the matches, the plane's value at its nearest edge.
        """
        height, width = self.shape
        return self.at(np.array([0, width - 1, 0, width - 1]),
                       np.array([0, 0, height - 1, height - 1]))

    def summary(self) -> str:
        """Return how far the right view's rows are off the left's, as the messages say it.

        The image-wide mean is said where it is at least 0.01 px.
        """
        typical = f'{self.typical:.2f} px off the left\'s at a typical matched corner'
        if round(self.surely_off, 2) <= 0:
            return typical
        return f'{typical} and at least {self.surely_off:.2f} px on average over the image'

    @property
    def too_large(self) -> bool:
        """Whether a typical feature is :data:`ROW_OFFSET_LIMIT` off, or the worst twice it."""
        return self.typical >= ROW_OFFSET_LIMIT or self.largest >= 2 * ROW_OFFSET_LIMIT


def _detector_margin(shape: tuple[int, ...]) -> int:
    """Return how far (px) from the image's border ORB finds no corner (its patch side)."""
    return int(np.clip(min(shape[:2]) // 6, 9, 31))


def _matched_points(left: np.ndarray, right: np.ndarray,
                    max_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the (x, y) of cross-checked ORB matches in the left and the right image.

    The descriptor's patch (31 px, ORB's own) shrinks on small images, whose margins it
    would otherwise leave without features.
    """
    patch = _detector_margin(left.shape[:2])
    orb = cv2.ORB.create(nfeatures=max_features, nlevels=1, fastThreshold=10,
                         edgeThreshold=patch, patchSize=patch)
    points, descriptors = [], []
    for image in (left, right):
        keypoints, described = orb.detectAndCompute(image, None)
        if described is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        points.append(np.array([keypoint.pt for keypoint in keypoints], np.float32))
        descriptors.append(described)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(*descriptors)
    pairs = np.array([(match.queryIdx, match.trainIdx) for match in matches],
                     np.int64).reshape(-1, 2)
    return points[0][pairs[:, 0]], points[1][pairs[:, 1]]


def _contrast_stretched(image: np.ndarray) -> np.ndarray:
    """Return a uint8 grey image spanning 0-255 between its 1st and 99th percentiles.

    Dark pictures and 12-bit cameras read as 16 bits (values 0-16 after scaling) still give
    corners to match; uint16 and float inputs are taken as they come.
    """
    if image.dtype == np.uint8:  # the usual case, through a lookup table
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        cumulative = np.cumsum(np.bincount(gray.ravel(), minlength=256)) / gray.size
        low, high = np.searchsorted(cumulative, (0.01, 0.99))
        if not high > low:
            return np.zeros(gray.shape, np.uint8)
        levels = (np.arange(256, dtype=np.float32) - low) * (255.0 / (high - low)) + 0.5
        return cv2.LUT(gray, np.clip(levels, 0, 255).astype(np.uint8))
    values = np.asarray(image, dtype=np.float32)
    if values.ndim == 3:
        values = values @ LUMA_WEIGHTS
    low, high = np.percentile(values[::4, ::4], (1, 99))
    if not high > low:
        return np.zeros(values.shape, np.uint8)
    return np.clip((values - low) * (255.0 / (high - low)) + 0.5, 0, 255).astype(np.uint8)


def row_offset(left: np.ndarray, right: np.ndarray, max_features: int = 1000,
               search_rows: Optional[float] = None,
               disparity_offset: float = 0.0) -> Optional[RowOffset]:
    """Return the :class:`RowOffset` of a pair, or None where too few features match.

    Features are matched over the whole image; a match counts when its disparity is not
    below ``disparity_offset`` (``cx_left - cx_right``; by more than 1 px) and its rows
    differ by less than ``search_rows`` (default: an eighth of the
    height, at least 16 px). A plane ``dy = a + b x + c y`` is fitted, starting from the
    matches within 2 px of the median offset; each refit takes every match within 1 px of the
    last plane, so the matches towards the edges of a rotated view join as the plane tilts,
    while wrong matches, which scatter, stay out. On the 50 real pairs of
    ``../shared/data/unlabeled`` (well rectified) ``typical`` was at most 0.5 px and
    ``largest`` 1.2 px (``python -m stereo_depth_ros.training.row_offset_sweep --pairs``).
    """
    matched = _row_matches(left, right, max_features)
    if matched is None:
        return None
    return _fitted_offset(*matched, search_rows, disparity_offset)


def _rows_searched(height: int) -> float:
    """Return how far (px) apart the rows of a counted match may be: an eighth of the height."""
    return max(16.0, height / 8)


def _row_matches(left: np.ndarray, right: np.ndarray, max_features: int = 1000
                 ) -> Optional[tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
    """Return the matched (x, y) of both images and their (height, width); None if too small.

    The right image's points are refined to a fraction of a pixel (:func:`_refined`).
    """
    gray_left, gray_right = _contrast_stretched(left), _contrast_stretched(right)
    if min(gray_left.shape) < 32:
        return None
    points_left, points_right = _matched_points(gray_left, gray_right, max_features)
    return (points_left, _refined(gray_left, gray_right, points_left, points_right),
            gray_left.shape)


def _refined(gray_left: np.ndarray, gray_right: np.ndarray, points_left: np.ndarray,
             points_right: np.ndarray) -> np.ndarray:
    """Return the right points of matched corners moved to where their patches align best.

    ORB places corners on whole pixels, so a row offset of 0.3 px reads as 0 or 1 at each
    corner, and the plane fitted to a few dozen of them is off by a few tenths. The phase
    correlation of the two corners' patches (:data:`REFINE_HALF_SIDE`, Hanning-windowed)
    gives the sub-pixel shift between them: on 24 rectified full-range validation scenes the
    typical offset reads 0.00-0.07 px (median 0.02), against 0.01-0.15 (median 0.08) from
    whole-pixel corners (``python -m stereo_depth_ros.training.row_offset_sweep --shifts 0
    --synthetic 12``, before and after commit 887cbd1, which added this). A corner whose patch
    leaves the image, whose correlation peak is weak or whose shift is 2 px or more keeps its
    position.
    """
    half = REFINE_HALF_SIDE
    side = 2 * half + 1
    height, width = gray_left.shape
    window = cv2.createHanningWindow((side, side), cv2.CV_32F)
    refined = points_right.astype(np.float32).copy()
    left_pixels = np.rint(points_left).astype(np.int64)
    right_pixels = np.rint(points_right).astype(np.int64)
    for index, ((xl, yl), (xr, yr)) in enumerate(zip(left_pixels, right_pixels)):
        if (min(xl, yl, xr, yr) < half or max(xl, xr) >= width - half
                or max(yl, yr) >= height - half):
            continue
        patch_left = gray_left[yl - half:yl + half + 1, xl - half:xl + half + 1]
        patch_right = gray_right[yr - half:yr + half + 1, xr - half:xr + half + 1]
        (dx, dy), response = cv2.phaseCorrelate(patch_left.astype(np.float32),
                                                patch_right.astype(np.float32), window)
        if response >= MIN_REFINE_RESPONSE and abs(dx) < 2 and abs(dy) < 2:
            # The patches are centred on whole pixels; a left point off its pixel (none with
            # ORB's one level) moves its match as much.
            refined[index] = (xr + dx + points_left[index, 0] - xl,
                              yr + dy + points_left[index, 1] - yl)
    return refined


def _fitted_offset(points_left: np.ndarray, points_right: np.ndarray, shape: tuple[int, int],
                   search_rows: Optional[float] = None,
                   disparity_offset: float = 0.0) -> Optional[RowOffset]:
    """Return the :class:`RowOffset` of matched points (see :func:`row_offset`)."""
    height, width = shape
    offsets = points_right[:, 1] - points_left[:, 1]
    window = search_rows if search_rows is not None else _rows_searched(height)
    candidates = ((points_left[:, 0] - points_right[:, 0] > disparity_offset - 1.0)
                  & (np.abs(offsets) < window))
    if candidates.sum() < MIN_ROW_MATCHES:
        return None
    kept = candidates & (np.abs(offsets - np.median(offsets[candidates])) <= 2.0)
    # In float64: float32 positions normalised in float32 make matches on one line (a single
    # edge) a design a rounding error off singular, whose plane lstsq then tilts by 1e5 px.
    positions = points_left.astype(np.float64)
    design = np.column_stack([np.ones(len(offsets)), positions[:, 0] / width - 0.5,
                              positions[:, 1] / height - 0.5])
    for _ in range(4):
        if kept.sum() < MIN_ROW_MATCHES:
            return None
        coefficients = np.linalg.lstsq(design[kept], offsets[kept], rcond=None)[0]
        fitted = design @ coefficients
        kept = candidates & (np.abs(offsets - fitted) <= 1.0)
    if kept.sum() < MIN_ROW_MATCHES:
        return None
    sizes = np.abs(fitted[kept])
    centre, across, down = (float(value) for value in coefficients)
    return RowOffset(typical=float(np.median(sizes)), largest=float(sizes.max()),
                     lower=bool(np.median(fitted[kept]) > 0), matches=int(kept.sum()),
                     plane=(centre, across, down), shape=(int(height), int(width)),
                     surely_off=_surely_off(design[kept], offsets[kept], coefficients),
                     span=_span(positions[kept], (int(height), int(width))))


def _span(positions: np.ndarray, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """Return :attr:`RowOffset.span` of the (x, y) of the matches a plane was fitted to.

    The first and last column and row of the matches, but a side whose outermost match lies
    within the detector's margin (:func:`_detector_margin`) of the nearest place a corner can
    be found at all is held at the image's border: no match can lie nearer it, and the plane
    of a rotation or a scale between the views is largest there. Held at the last match
    instead, the top and bottom rows of a 512x256 validation scene whose rows were scaled
    2 px off at its top and bottom stayed up to 0.9 px off after the alignment (0.5 px
    extrapolated).
    """
    height, width = shape
    reach = 2 * _detector_margin(shape)
    first_column, first_row = positions.min(axis=0)
    last_column, last_row = positions.max(axis=0)
    return (0.0 if first_column <= reach else float(first_column),
            float(width - 1) if last_column >= width - 1 - reach else float(last_column),
            0.0 if first_row <= reach else float(first_row),
            float(height - 1) if last_row >= height - 1 - reach else float(last_row))


def _surely_off(design: np.ndarray, offsets: np.ndarray, coefficients: np.ndarray) -> float:
    """Return :attr:`RowOffset.surely_off` of a least-squares plane fitted to ``offsets``.

    The plane's standard error at a point follows from the residuals' variance and the
    design (the matches' normalised positions): small where many matches lie, large at edges
    that few reach. Beyond the rows and columns the matches span the plane is not
    extrapolated: there it counts as at the nearest of them (matches in one corner, often
    wrong ones on a little texture, can tilt it by pixels across the image). This is the
    matches' own extent, not :attr:`RowOffset.span`, which reaches the border where they come
    near it: read to the border, the 50 unlabeled pairs aligned were the same, but one of 200
    rectified 512x256 test scenes (27 matches) was aligned too. A design the matches do not
    determine (all on one line) tells nothing away from that line: 0.
    """
    count, unknowns = design.shape
    _, singular, directions = np.linalg.svd(design, full_matrices=False)
    # The cut-off lstsq takes by default: below it a direction of the plane is unknown.
    if singular[-1] <= singular[0] * np.finfo(np.float64).eps * max(count, unknowns):
        return 0.0
    residuals = offsets - design @ coefficients
    variance = float(residuals @ residuals) / max(count - unknowns, 1)
    steps = np.linspace(-0.5, 0.5, SURE_GRID)
    across, down = np.meshgrid(steps, steps)
    spanned = design[:, 1:]
    grid = np.column_stack([np.ones(across.size),
                            np.clip(across.ravel(), spanned[:, 0].min(), spanned[:, 0].max()),
                            np.clip(down.ravel(), spanned[:, 1].min(), spanned[:, 1].max())])
    # Var(g . coefficients) = variance * |g V / s|^2, from the design itself rather than
    # through design.T @ design, which squares its condition.
    errors = np.sqrt(variance) * np.linalg.norm(grid @ directions.T / singular, axis=1)
    return float(np.maximum(np.abs(grid @ coefficients) - SURE_STANDARD_ERRORS * errors,
                            0.0).mean())


def row_offset_warning(name: str, offset: RowOffset, aligned: bool = False) -> str:
    """Return the warning line for a pair whose :class:`RowOffset` is too large.

    ``aligned``: the right view is resampled onto the left's rows (``align_rows``), which the
    line says; the calibration still wants checking.
    """
    where = f' {name}:' if name else ''
    side = 'lower' if offset.lower else 'higher'
    advice = ("; the right view is resampled onto the left's rows (align_rows), but "
              if aligned else ' - ')
    return (f'warning:{where} rows of the right image are {offset.typical:.1f} px off those of '
            f'the left (up to {offset.largest:.1f} px; it shows the scene {side}); from '
            f'{ROW_OFFSET_LIMIT:g} px on, matching gets much worse{advice}check the '
            'rectification and the calibration')


@dataclass(frozen=True)
class PairCheck:
    """What :func:`check_pair` found: a swap, and the row offset (None: not measurable)."""

    swapped: bool
    row_offset: Optional[RowOffset]

    @property
    def misaligned(self) -> bool:
        """Whether the rows are off by :data:`ROW_OFFSET_LIMIT` or more."""
        return self.row_offset is not None and self.row_offset.too_large


def _matches_say_ordered(points_left: np.ndarray, points_right: np.ndarray,
                         shape: tuple[int, int], disparity_offset: float = 0.0) -> bool:
    """Return whether most matched corners within the rows searched have positive disparity.

    Positive: above ``disparity_offset`` (``cx_left - cx_right``). False also where too few
    corners match to tell.
    """
    disparity = points_left[:, 0] - points_right[:, 0] - disparity_offset
    near_rows = np.abs(points_right[:, 1] - points_left[:, 1]) < _rows_searched(shape[0])
    positive = int((near_rows & (disparity > 1)).sum())
    negative = int((near_rows & (disparity < -1)).sum())
    return positive + negative >= MIN_ROW_MATCHES and positive > negative


def check_pair(left: np.ndarray, right: np.ndarray,
               disparity_offset: float = 0.0) -> PairCheck:
    """Return whether the pair looks swapped and how far its rows are off.

    :func:`likely_swapped` compares a few rows, which rows that are off can fool; where the
    matched corners mostly have positive disparities the pair is taken as ordered. The row
    offset is not measured on a pair that looks swapped (its matches have negative
    disparities). ``disparity_offset`` is the camera's ``cx_left - cx_right``
    (:attr:`~stereo_depth_ros.camera.StereoCameraModel.disparity_offset`): disparities are
    positive above it.
    """
    matched = _row_matches(left, right)
    swapped = likely_swapped(left, right, disparity_offset=disparity_offset) and not (
        matched is not None and _matches_say_ordered(*matched, disparity_offset))
    offset = (None if swapped or matched is None
              else _fitted_offset(*matched, disparity_offset=disparity_offset))
    return PairCheck(swapped=swapped, row_offset=offset)
