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

import numpy as np

from .backends.sgbm import SGBMOptions
from .camera import StereoCameraModel
from .obstacle import ObstacleParameters
from .plausibility import check_pair, ROW_OFFSET_LIMIT, RowOffset

#: Largest disparity (px) the check searches (at most half the image width): beyond any
#: backend's default but the learned ones' 384 px, whose search is not left-right checked.
SEARCHED_DISPARITY = 256
#: Depth error, as a fraction of the depth, up to which the suggested far limit reaches.
DEPTH_ERROR_FRACTION = 0.1
#: Percentiles of the valid disparities over all pairs that the report names.
NEAR_PERCENTILE, FAR_PERCENTILE = 99, 1


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


def check_one(name: str, left: np.ndarray, right: np.ndarray) -> PairFindings:
    """Return the findings of one rectified pair (uint8 images of one size)."""
    from .training.pseudo_labels import pseudo_label
    check = check_pair(left, right)
    # SGBM matches nothing left of its range: on narrow images it searches half the width.
    searched = min(SEARCHED_DISPARITY, left.shape[1] // 2)
    disparity = pseudo_label(left, right, searched)
    valid = disparity[np.isfinite(disparity) & (disparity > 0)]
    return PairFindings(name, check.swapped, check.row_offset, valid[::7].astype(np.float32),
                        searched)


def far_limit(focal_baseline: float, disparity_noise: float) -> float:
    """Return the depth (m) whose error from ``disparity_noise`` px is DEPTH_ERROR_FRACTION of it.

    ``dz = z^2 dd / (f B)``, so ``dz / z <= k`` up to ``z = k f B / dd``.
    """
    return DEPTH_ERROR_FRACTION * focal_baseline / disparity_noise


def report_lines(findings: Iterable[PairFindings], learned_range: float,
                 camera: Optional[StereoCameraModel] = None) -> list[str]:
    """Return the report: rows, swaps, disparities against the backends, depths (camera)."""
    findings = list(findings)
    count = len(findings)
    lines = []
    measured = [(f.row_offset, f.name) for f in findings if f.row_offset is not None]
    if measured:
        typical = max(measured, key=lambda item: item[0].typical)
        largest = max(measured, key=lambda item: item[0].largest)
        warned = sum(offset.too_large for offset, _ in measured)
        verdict = 'OK' if not warned else 'CHECK THE RECTIFICATION AND CALIBRATION'
        lines.append(f'rows: {warned} of {len(measured)} measured pairs off by '
                     f'{ROW_OFFSET_LIMIT:g} px or more at a typical feature (or '
                     f'{2 * ROW_OFFSET_LIMIT:g} px at the worst); typical at most '
                     f'{typical[0].typical:.2f} px ({typical[1]}), worst '
                     f'{largest[0].largest:.2f} px ({largest[1]}): {verdict}')
    if len(measured) < count:
        lines.append(f'rows: {count - len(measured)} of {count} pairs had too few matching '
                     'corners to measure')
    swapped = [f.name for f in findings if f.swapped]
    lines.append(f'left/right: {len(swapped)} of {count} pairs look swapped'
                 + (f' (first: {swapped[0]}): exchange the inputs' if swapped else ': OK'))
    values = np.concatenate([f.disparities for f in findings]) if findings else np.zeros(0)
    lines += _disparity_lines(findings, values, learned_range)
    if camera is not None:
        lines += _depth_lines(camera, values, learned_range)
    return lines


def _disparity_lines(findings: list[PairFindings], values: np.ndarray,
                     learned_range: float) -> list[str]:
    """Return the disparities the pairs hold against the backends' ranges."""
    if values.size == 0:
        return ['disparities: no left-right consistent match in any pair']
    far, near = (float(v) for v in np.percentile(values, [FAR_PERCENTILE, NEAR_PERCENTILE]))
    sgbm_range = SGBMOptions().disparity_range
    searched = min(f.searched for f in findings)
    lines = [f'disparities (SGBM, left-right checked, up to {searched} px): {far:.1f} px '
             f'(1st percentile) to {near:.1f} px (99th)']
    if near >= sgbm_range:
        needed = int(np.ceil((near + 1) / 16) * 16)
        lines.append(f'  sgbm searches {sgbm_range} px by default: the nearest 1 % lie beyond; '
                     f'set sgbm.disparity_range to {needed} or more')
    else:
        lines.append(f'  sgbm ({sgbm_range} px by default) and the learned backends '
                     f'({learned_range:g} px) cover them')
    if near >= 0.9 * searched:
        lines.append(f'  the nearest reach the {searched} px searched here: some content may '
                     'be nearer still')
    return lines


def _depth_lines(camera: StereoCameraModel, values: np.ndarray,
                 learned_range: float) -> list[str]:
    """Return the depths of the calibration: the scene's, the far limit, the nearest seen."""
    focal_baseline = camera.focal_baseline
    defaults = ObstacleParameters()
    sgbm_range = SGBMOptions().disparity_range
    first = (f'depth: f B = {focal_baseline:.1f} px m (fx {camera.fx:.1f} px, baseline '
             f'{camera.baseline:.4f} m)')
    if values.size:
        near = float(np.percentile(values, NEAR_PERCENTILE))
        first += (f'; the nearest 1 % at {focal_baseline / near:.2f} m, median '
                  f'{focal_baseline / float(np.median(values)):.2f} m')
    limit = far_limit(focal_baseline, defaults.disparity_noise)
    error = (f'  a {defaults.disparity_noise:g} px disparity error is '
             f'{DEPTH_ERROR_FRACTION:.0%} of the depth at {limit:.1f} m')
    if limit >= defaults.max_range:
        advice = f'{error}: the default obstacle.max_range ({defaults.max_range:g} m) is within it'
    else:
        advice = (f'{error}: set obstacle.max_range (default {defaults.max_range:g} m) and '
                  f'max_depth (default none) to about {limit:.1f} m')
    return [first, advice,
            f'  nearest depth measured: {focal_baseline / sgbm_range:.2f} m with sgbm '
            f'({sgbm_range} px), {focal_baseline / learned_range:.2f} m with the learned '
            f'backends ({learned_range:g} px)']
