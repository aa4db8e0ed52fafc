"""Refine a network's disparity by matching the images around it (option ``refine_radius``).

The report's networks without a cost volume (``dispnet``, ``squeezeseg``) and those with a
narrow one (``dispnetc``, ``dispnet_qr``) are often a few pixels off: close enough that the
right disparity lies near their estimate, too far for bad-2. :func:`refine_by_matching`
searches around the estimate with the windowed matching cost that chooses between the passes
(:func:`~stereo_depth_ros.networks.pass_choice.matching_costs`: 1 - ZNCC plus half the mean
absolute difference) in two stages:

1. at half resolution, every offset of whole half-resolution pixels within ``radius`` (output
   px) of the estimate, :data:`~stereo_depth_ros.networks.pass_choice.MATCH_WINDOW` window;
   the best offsets, median-filtered (:data:`COARSE_MEDIAN`) and doubled, move every
   full-resolution pixel of their block;
2. at full resolution, offsets of -:data:`FINE_RADIUS`..:data:`FINE_RADIUS` px around that,
   :data:`FINE_WINDOW` window, and a parabola through the best cost and its neighbours for
   the sub-pixel position;
3. a 5x5 median (:func:`~stereo_depth_ros.networks.pass_choice.median_of_usable`), as a
   per-pixel choice leaves salt-and-pepper noise.

In both stages the estimate stays unless another offset matches better by
:data:`PREFERENCE`.
The network chooses where to look: the search never leaves ``radius`` of its estimate, so a
repeated texture or a flat region cannot pull the result further than that, and a pixel the
network put more than ``radius`` off stays wrong. A result whose match would fall left of
the right image keeps the network's value. Each network's default radius was chosen on
validation scenes (models/README.md, "Refining by matching").
"""

import cv2
import numpy as np
import torch

from .confidence import FIRST_COLUMN, padded_to_multiple
from .pass_choice import (_CHANNEL_MEAN, COST_SHRINK, MATCH_WINDOW, matching_costs,
                          median_of_usable, shrunken_grey)

#: Search radius (px) of the full-resolution stage, around the half-resolution result.
FINE_RADIUS = 2
#: Side of the full-resolution stage's window (px).
FINE_WINDOW = 7
#: How much lower (cost units; 1 - ZNCC spans 0..2) another offset's cost must be than that
#: of the estimate itself for the estimate to move, in either stage (as ``match_passes``'
#: ``BLEND_PREFERENCE``): weak texture matches several offsets about as well.
PREFERENCE = 0.05
#: Side of the median filter applied to the half-resolution stage's offsets (3 or 5): the
#: full-resolution stage's windows then see neighbours moved alike.
COARSE_MEDIAN = 5


def full_grey(images: torch.Tensor) -> np.ndarray:
    """Return ``Bx3xHxW`` images as ``BxHxW`` float32 grey (the channel mean)."""
    pixels = images.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    return np.stack([cv2.transform(np.ascontiguousarray(image), _CHANNEL_MEAN)
                     for image in pixels])


def best_offsets(left: np.ndarray, right: np.ndarray, base: np.ndarray, offsets: np.ndarray,
                 window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return, per pixel, the index of the best of ``base + offsets`` and all the costs.

    A negative candidate (a match right of the pixel) is never chosen, unless it is the
    estimate itself (offset 0).
    """
    candidates = [base + np.float32(offset) for offset in offsets]
    costs = matching_costs(left, right, candidates, window)
    for cost, candidate, offset in zip(costs, candidates, offsets):
        if offset == 0:
            cost -= PREFERENCE
        else:
            cost[candidate < 0] = np.inf
    return first_smallest(costs), costs


def first_smallest(costs: np.ndarray) -> np.ndarray:
    """Return ``np.argmin(costs, axis=0)`` of NaN-free costs, faster (one pass per plane)."""
    best = costs[0].copy()
    index = np.zeros(best.shape, np.intp)
    for plane in range(1, costs.shape[0]):
        better = costs[plane] < best
        index[better] = plane
        np.minimum(best, costs[plane], out=best)
    return index


def sub_pixel(costs: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Return the parabola vertex (-0.5..0.5 steps) around ``best``; 0 at the search's ends."""
    inner = np.clip(best, 1, costs.shape[0] - 2)
    below, at, above = (np.take_along_axis(costs, (inner + step)[None], 0)[0]
                        for step in (-1, 0, 1))
    curvature = below - 2 * at + above
    with np.errstate(divide='ignore', invalid='ignore'):
        vertex = np.where(np.isfinite(curvature) & (curvature > 0),
                          0.5 * (below - above) / curvature, 0.0)
    interior = (best > 0) & (best < costs.shape[0] - 1)
    return np.where(interior, np.clip(vertex, -0.5, 0.5), 0.0).astype(np.float32)


def refine_one(left_small: np.ndarray, right_small: np.ndarray, left: np.ndarray,
               right: np.ndarray, disparity: np.ndarray, radius: float) -> np.ndarray:
    """Return the refined ``HxW`` ``disparity`` (px; NaN stays NaN).

    ``left_small`` and ``right_small`` are the grey images at 1/:data:`~stereo_depth_ros.
    networks.pass_choice.COST_SHRINK` of the disparity's size rounded up to a multiple of it,
    ``left`` and ``right`` at its size (:func:`full_grey`).
    """
    height, width = disparity.shape
    known = np.isfinite(disparity)
    base = np.where(known, disparity, np.float32(0.0)).astype(np.float32)
    padded = np.pad(base, ((0, -height % COST_SHRINK), (0, -width % COST_SHRINK)), mode='edge')
    sampled = np.ascontiguousarray(padded[::COST_SHRINK, ::COST_SHRINK]) / COST_SHRINK
    steps = int(radius // COST_SHRINK)
    coarse = np.arange(-steps, steps + 1, dtype=np.float32)
    best, _ = best_offsets(left_small, right_small, sampled, coarse, MATCH_WINDOW)
    chosen = cv2.medianBlur(coarse[best], COARSE_MEDIAN)
    shift = np.repeat(np.repeat(chosen * COST_SHRINK, COST_SHRINK, axis=0),
                      COST_SHRINK, axis=1)[:height, :width]
    moved = base + shift
    fine = np.arange(-FINE_RADIUS, FINE_RADIUS + 1, dtype=np.float32)
    best, costs = best_offsets(left, right, moved, fine, FINE_WINDOW)
    refined = moved + fine[best] + sub_pixel(costs, best)
    columns = np.arange(width, dtype=np.float32)[None, :]
    keep = ~known | (columns - refined < FIRST_COLUMN)
    refined = np.where(keep, disparity, refined).astype(np.float32)
    with np.errstate(invalid='ignore'):
        usable = np.isfinite(refined) & (refined >= 0)
    return median_of_usable(refined, usable)


def refine_by_matching(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor,
                       radius: float) -> torch.Tensor:
    """Return ``Bx1xHxW`` ``disparity`` refined within ``radius`` px by matching the images.

    ``left`` and ``right`` are the normalised ``Bx3xHxW`` images the network saw; see
    :func:`refine_one`.
    """
    if not radius > 0:
        raise ValueError(f'radius must be > 0, got {radius}')
    left_small = shrunken_grey(padded_to_multiple(left))
    right_small = shrunken_grey(padded_to_multiple(right))
    left_full, right_full = full_grey(left), full_grey(right)
    estimates = disparity.detach().float()[:, 0].cpu().numpy()
    refined = [refine_one(left_small[index], right_small[index], left_full[index],
                          right_full[index], np.ascontiguousarray(estimates[index]), radius)
               for index in range(estimates.shape[0])]
    return torch.from_numpy(np.stack(refined)[:, None]).to(disparity.device)
