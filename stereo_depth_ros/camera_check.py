"""Is a stereo camera ready for the package? A check of recorded pairs and their calibration.

``stereo-depth check-camera`` runs this on a few pairs of a bag or a folder: whether left and
right look swapped, how far the rows of the two views are apart
(:func:`~stereo_depth_ros.plausibility.row_offset`), which disparities the scene holds (SGBM,
left-right checked, up to :data:`SEARCHED_DISPARITY` px) against the backends' ranges, and,
with a calibration, the depths those are and the far limit up to which depth stays within
:data:`DEPTH_ERROR_FRACTION` of itself, as a suggestion for ``obstacle.max_range`` and
``max_depth`` (whose defaults suit a KITTI camera, not a short-baseline one).
"""

from dataclasses import dataclass
from typing import Iterable, Optional

import cv2
import numpy as np

from .camera import StereoCameraModel, wide_baseline
from .near_guard import beyond_range_disparity, guard_reach
from .obstacle import ObstacleParameters
from .plausibility import check_pair, ROW_OFFSET_LIMIT, RowOffset
from .row_alignment import ALIGN_RULE, worth_aligning

#: Largest disparity (px) the check searches (at most half the image width): beyond any
#: backend's default but the learned ones' 384 px, whose search is not left-right checked.
SEARCHED_DISPARITY = 256
#: Depth error, as a fraction of the depth, up to which the suggested far limit reaches.
DEPTH_ERROR_FRACTION = 0.1
#: Smallest surface (fraction of the image) the coarse search beyond the range reports.
MIN_SURFACE = 0.005
#: Percentiles of the valid disparities over all pairs that the report names.
NEAR_PERCENTILE, FAR_PERCENTILE = 99, 1
#: A pair whose left-right checked search gives fewer of its pixels a disparity than this
#: holds no measurement of its scene (views of two scenes, a failing camera: their few
#: chance matches said 288-504 px); the OAK-D Lite pairs of ``unlabeled/`` give 34-80 %.
MIN_MATCHED = 0.01
#: A pair matched on fewer of its pixels than this is suspect: on the 51 real pairs of
#: ``unlabeled/`` the right order gives 33 % or more and the swapped order 16 % or less, and a
#: swap that principal points far apart hide (rows matching between cx_left - cx_right and its
#: opposite fit either order) matched 7 %, its right order 82 % (Middlebury Adirondack).
LOW_MATCHED = 0.25
#: A pair whose brightest value is below this (of 255) is measured with both views brightened
#: by one gain to 255: a 12-bit camera read as 16 bits (values up to 16) matched 16x too dark,
#: and the depths printed were off (1.22 m read as 3.56 m, a review's pairs).
DARK_PAIR_MAX = 32


@dataclass
class PairFindings:
    """What one pair showed: a swap, the row offset (None: not measurable), disparities.

    ``searched`` is the largest disparity (px) that was searched.
    """

    name: str
    swapped: bool
    row_offset: Optional[RowOffset]
    disparities: np.ndarray
    searched: int = SEARCHED_DISPARITY
    #: Largest disparity (px) of the coarse search beyond ``searched`` (0: none was run).
    reached: int = 0
    #: The share of the pixels the left-right checked search gave a disparity (0-1).
    matched: float = 1.0


def check_one(name: str, left: np.ndarray, right: np.ndarray,
              disparity_offset: float = 0.0) -> PairFindings:
    """Return the findings of one rectified pair (uint8 images of one size).

    ``disparity_offset`` is the camera's ``cx_left - cx_right`` where known: the swap check
    takes disparities below it as the wrong order (:func:`~stereo_depth_ros.plausibility.
    check_pair`).

    Beyond the searched range, the near guard's coarse search (a smaller pair, out to twice
    the range, at most 3/4 of the width) adds the surfaces nearer still, which the full
    search cannot see (:mod:`~stereo_depth_ros.near_guard`).
    """
    check = check_pair(left, right, disparity_offset)
    left, right = _brightened(left, right)
    # On narrow images the search spans half the width.
    searched = min(SEARCHED_DISPARITY, left.shape[1] // 2)
    disparity = full_width_label(left, right, searched)
    labelled = np.isfinite(disparity) & (disparity > 0)
    valid = disparity[labelled]
    beyond = beyond_range_disparity(left, right, float(searched))
    reached = 0
    if beyond is not None:
        reached = int(guard_reach(left.shape[1], float(searched)))
        valid = np.concatenate([valid, beyond[_surfaces(np.isfinite(beyond))]])
    return PairFindings(name, check.swapped, check.row_offset, valid[::7].astype(np.float32),
                        searched, reached, float(labelled.mean()))


def _brightened(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the uint8 pair brightened to 255 where it is darker than DARK_PAIR_MAX.

    Both views by one gain: what tells the left view from the right one stays as it was.
    """
    brightest = int(max(left.max(), right.max()))
    if not 0 < brightest < DARK_PAIR_MAX:
        return left, right
    gain = np.float32(255.0 / brightest)
    lit = [np.clip(image.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
           for image in (left, right)]
    return lit[0], lit[1]


def full_width_label(left: np.ndarray, right: np.ndarray, searched: int) -> np.ndarray:
    """Return the left-right checked SGBM disparity of a pair over its whole width.

    SGBM gives its first ``searched`` columns no value, and the mirrored search of the check
    its last ones, so alone it measured a strip in the middle of the image (on a 640-px-wide
    pair columns 256 to about 384: a near block at a side was missed, and the check said
    the backends covered the scene). Both views are padded with their edge columns on both
    sides, and the padding is cut off the result.
    """
    from .training.pseudo_labels import pseudo_label
    width = left.shape[1]
    pad = [(0, 0), (searched, searched)] + [(0, 0)] * (left.ndim - 2)
    padded = [np.pad(image, pad, mode='edge') for image in (left, right)]
    return pseudo_label(padded[0], padded[1], searched)[:, searched:searched + width]


def _surfaces(found: np.ndarray) -> np.ndarray:
    """Return the pixels of ``found`` in blobs of at least :data:`MIN_SURFACE` of the image.

    The coarse search's scattered mismatches would otherwise set the nearest percentile.
    """
    _, labels, stats, _ = cv2.connectedComponentsWithStats(found.view(np.uint8),
                                                           connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= MIN_SURFACE * found.size  # a lookup table
    large[0] = False  # the background
    return large[labels]


def far_limit(focal_baseline: float, disparity_noise: float) -> float:
    """Return the depth (m) whose error from ``disparity_noise`` px is DEPTH_ERROR_FRACTION of it.

    ``dz = z^2 dd / (f B)``, so ``dz / z <= k`` up to ``z = k f B / dd``.
    """
    return DEPTH_ERROR_FRACTION * focal_baseline / disparity_noise


def problems_found(findings: Iterable[PairFindings]) -> bool:
    """Return whether any pair looks swapped, has rows that are off, or matched too little."""
    return any(f.swapped or (f.row_offset is not None and f.row_offset.too_large)
               or f.matched < LOW_MATCHED for f in findings)


def report_lines(findings: Iterable[PairFindings], learned: tuple[str, float],
                 sgbm_range: float, camera: Optional[StereoCameraModel] = None) -> list[str]:
    """Return the report: rows, swaps, disparities against the backends, depths (camera).

    ``learned`` is the default learned backend's name and largest disparity (px),
    ``sgbm_range`` sgbm's largest disparity with its defaults, each on the narrowest of the
    images (:meth:`~stereo_depth_ros.backends.base.DisparityBackend.largest_disparity`).
    Pairs that look swapped are left out of the rows, disparities and depths: their matches
    mean nothing.
    """
    findings = list(findings)
    count = len(findings)
    swapped = [f.name for f in findings if f.swapped]
    usable = [f for f in findings if not f.swapped]
    lines = []
    measured = [(f.row_offset, f.name) for f in usable if f.row_offset is not None]
    if measured:
        typical = max(measured, key=lambda item: item[0].typical)
        largest = max(measured, key=lambda item: item[0].largest)
        warned = sum(offset.too_large for offset, _ in measured)
        verdict = 'OK' if not warned else 'CHECK THE RECTIFICATION AND CALIBRATION'
        aligned = sum(worth_aligning(offset, offset.shape) for offset, _ in measured)
        resampled = (f'; {aligned} of them {ALIGN_RULE}, whose right view the node, '
                     'process-bag, infer, eval and real-bench resample onto the left\'s rows '
                     '(align_rows)' if aligned else '')
        lines.append(f'rows: {warned} of {len(measured)} measured pairs off by '
                     f'{ROW_OFFSET_LIMIT:g} px or more at a typical feature (or '
                     f'{2 * ROW_OFFSET_LIMIT:g} px at the worst); typical at most '
                     f'{typical[0].typical:.2f} px ({typical[1]}), worst '
                     f'{largest[0].largest:.2f} px ({largest[1]}): {verdict}{resampled}')
    if len(measured) < len(usable):
        lines.append(f'rows: {len(usable) - len(measured)} of {count} pairs had too few '
                     'matching corners to measure')
    offset = camera.disparity_offset if camera is not None else 0.0
    calibration = (f', unless the calibration\'s cx_left - cx_right ({offset:g} px) is wrong: '
                   'matches below it count as the wrong order' if swapped and offset else '')
    lines.append(f'left/right: {len(swapped)} of {count} pairs look swapped'
                 + (f' (first: {swapped[0]}): exchange the inputs{calibration}; those pairs '
                    'are left out of the rows, disparities and depths' if swapped else ': OK'))
    for limit, digits, why in (
            (MIN_MATCHED, 2, 'are both views of one scene, and both cameras working?'),
            (LOW_MATCHED, 0, 'real pairs the right way round give 33 % or more, swapped ones '
             '16 % or less: left and right exchanged where the principal points hide it, a '
             'wrong cx_left - cx_right, rows off, or a scene with little texture?')):
        below = [f for f in usable if f.matched < limit]
        if below:
            lines.append(f'matches: {len(below)} of {count} pairs had a left-right consistent '
                         f'disparity on under {limit:.0%} of their pixels (first: '
                         f'{below[0].name}, {below[0].matched:.{digits}%}): {why} Those pairs '
                         'are left out of the disparities and depths')
            usable = [f for f in usable if f.matched >= limit]
    if not usable:
        return lines
    values = np.concatenate([f.disparities for f in usable])
    lines += _disparity_lines(usable, values, learned, sgbm_range)
    if camera is not None:
        lines += _depth_lines(camera, values, learned, sgbm_range)
    return lines


def _disparity_lines(findings: list[PairFindings], values: np.ndarray,
                     learned: tuple[str, float], sgbm_range: float) -> list[str]:
    """Return the disparities the pairs hold against the backends' ranges."""
    if values.size == 0:
        return ['disparities: no left-right consistent match in any pair']
    far, near = (float(v) for v in np.percentile(values, [FAR_PERCENTILE, NEAR_PERCENTILE]))
    searched = min(f.searched for f in findings)
    reached = min(f.reached for f in findings)
    beyond = (f', beyond on a 2-8x smaller pair up to {reached} px' if reached > searched
              else '')
    matched = float(np.mean([f.matched for f in findings]))
    lines = [f'disparities (SGBM, left-right checked, up to {searched} px{beyond}; on '
             f'{matched:.0%} of the pixels): {far:.1f} px (1st percentile) to {near:.1f} px '
             '(99th)']
    name, reach = learned
    needed = int(np.ceil((near + 1) / 16) * 16)
    if near > sgbm_range:
        lines.append(f'  sgbm reaches {sgbm_range:g} px by default: the nearest 1 % lie beyond; '
                     f'set sgbm.disparity_range to {needed} or more')
    if near > reach:
        lines.append(f'  {name} reaches {reach:g} px: the nearest 1 % lie beyond; set '
                     f'learned.near_passes 2 ({2 * reach:g} px) or learned.scale')
    covering = [f'{label} ({top:g} px{" by default" if label == "sgbm" else ""})'
                for label, top in (('sgbm', sgbm_range), (name, reach)) if near <= top]
    if covering:
        lines.append(f'  {" and ".join(covering)} cover{"s" if len(covering) == 1 else ""} '
                     'them')
    if near >= 0.9 * max(searched, reached):
        lines.append(f'  the nearest reach the {max(searched, reached)} px searched here: '
                     'some content may be nearer still')
    return lines


def _depth_lines(camera: StereoCameraModel, values: np.ndarray, learned: tuple[str, float],
                 sgbm_range: float) -> list[str]:
    """Return the depths of the calibration: the scene's, the far limit, the nearest seen.

    Depth is ``f B / (d - offset)``, the offset being ``cx_left - cx_right``.
    """
    focal_baseline, offset = camera.focal_baseline, camera.disparity_offset
    defaults = ObstacleParameters()
    first = (f'depth: f B = {focal_baseline:.1f} px m (fx {camera.fx:.1f} px, baseline '
             f'{camera.baseline:.4f} m'
             + (f', cx_left - cx_right {offset:g} px' if offset else '') + ')')
    shifted = values - offset
    shifted = shifted[shifted > 0]
    if shifted.size:
        near = float(np.percentile(shifted, NEAR_PERCENTILE))
        first += (f'; the nearest 1 % at {focal_baseline / near:.2f} m, median '
                  f'{focal_baseline / float(np.median(shifted)):.2f} m')
    limit = far_limit(focal_baseline, defaults.disparity_noise)
    error = (f'  a {defaults.disparity_noise:g} px disparity error is '
             f'{DEPTH_ERROR_FRACTION:.0%} of the depth at {limit:.1f} m')
    if offset < 0 and focal_baseline / -offset < limit:
        # A disparity of 0 px is the farthest a backend reports: f B / -offset.
        limit = focal_baseline / -offset
        error = (f'  nothing farther than {limit:.1f} m is measured (a disparity of 0 px, '
                 f'cx_left - cx_right being {offset:g} px)')
    if limit >= defaults.max_range:
        advice = f'{error}: the default obstacle.max_range ({defaults.max_range:g} m) is within it'
    else:
        advice = (f'{error}: set obstacle.max_range (default {defaults.max_range:g} m) and '
                  f'max_depth (default none) to about {limit:.1f} m')
    name, reach = learned
    nearest = [f'{focal_baseline / (top - offset):.2f} m with {label} ({top:g} px)'
               for label, top in (('sgbm', sgbm_range), (name, reach)) if top > offset]
    lines = [first, advice]
    if nearest:
        lines.append(f'  nearest depth each can measure: {", ".join(nearest)}')
    wide = wide_baseline(camera.baseline)
    if wide:
        lines.append(f'  the baseline of {wide}')
    return lines
