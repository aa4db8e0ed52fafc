"""Refine a network's disparity by matching the images around it (option ``refine_radius``).

The report's networks without a cost volume (``dispnet``, ``squeezeseg``) and those with a
narrow one (``dispnetc``, ``dispnet_qr``) are often a few pixels off: close enough that the
right disparity lies near their estimate, too far for bad-2. :func:`refine_by_matching`
searches around the estimate with the windowed matching cost that chooses between the passes
(:func:`~stereo_depth_ros.networks.pass_choice.matching_costs`: 1 - ZNCC plus half the mean
absolute difference) in three steps:

1. at half resolution, every offset of whole half-resolution pixels within ``radius`` (output
   px, rounded down to an even number) of each block's estimate
   (:func:`~stereo_depth_ros.networks.confidence.block_samples`),
   :data:`~stereo_depth_ros.networks.pass_choice.MATCH_WINDOW` window; the best offsets,
   median-filtered (:data:`COARSE_MEDIAN`) and doubled, move every full-resolution pixel of
   their block;
2. at full resolution, offsets of -:data:`FINE_RADIUS`..:data:`FINE_RADIUS` px around that,
   :data:`FINE_WINDOW` window, and a parabola through the best cost and its neighbours for
   the sub-pixel position;
3. a 5x5 median (:func:`~stereo_depth_ros.networks.pass_choice.median_of_usable`), as a
   per-pixel choice leaves salt-and-pepper noise.

In both searches the value searched around stays unless another offset matches better by
:data:`PREFERENCE`, and a candidate outside ``[0, limit]`` (a match right of the pixel, or
beyond the range of the passes) is never chosen. The network chooses where to look: before
the median a pixel moves at most ``radius`` + :data:`FINE_RADIUS` + 0.5 px from its estimate,
so a repeated texture or a flat region cannot pull it further, and a pixel the network put
further off stays wrong. An estimate outside ``[0, limit]`` or whose match falls left of the
right image, and a result whose match would, keep the network's value. Each network's default
radius was chosen on validation scenes (models/README.md, "Refining by matching"), and
chosen the same again once such estimates were kept (2026-12-06, later).
"""

import math

import cv2
import numpy as np
import torch

from .confidence import block_samples, check_grey_size, cost_grey, lands_outside, to_pixels
from .pass_choice import (BLEND_PREFERENCE, COST_SHRINK, MATCH_WINDOW, grey, matching_costs,
                          median_of_usable, within)

#: Search radius (px) of the full-resolution stage, around the half-resolution result.
FINE_RADIUS = 2
#: Side of the full-resolution stage's window (px).
FINE_WINDOW = 7
#: How much lower (cost units; 1 - ZNCC spans 0..2) another offset's cost must be than that
#: of the value searched around for it to move, in either stage: ``match_passes``' margin,
#: as weak texture matches several offsets about as well.
PREFERENCE = BLEND_PREFERENCE
#: Side of the median filter applied to the half-resolution stage's offsets (3 or 5): the
#: full-resolution stage's windows then see neighbours moved alike.
COARSE_MEDIAN = 5


def best_offsets(left: np.ndarray, right: np.ndarray, base: np.ndarray, offsets: np.ndarray,
                 window: int, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Return, per pixel, the index of the best of ``base + offsets`` and their raw costs.

    The choice prefers offset 0 by :data:`PREFERENCE` and never takes a candidate outside
    ``[0, limit]`` other than offset 0 itself; the costs returned are the unadjusted ones.
    """
    candidates = [base + np.float32(offset) for offset in offsets]
    costs = matching_costs(left, right, candidates, window)
    adjusted = costs.copy()
    for cost, candidate, offset in zip(adjusted, candidates, offsets):
        if offset == 0:
            cost -= PREFERENCE
        else:
            cost[~within(candidate, limit)] = np.inf
    return first_smallest(adjusted), costs


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
    """Return the parabola vertex (-0.5..0.5 steps) around ``best``.

    0 at the search's ends and where the parabola is not finite or not convex.
    """
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
               right: np.ndarray, disparity: np.ndarray, radius: float,
               limit: float = math.inf) -> np.ndarray:
    """Return the refined ``HxW`` ``disparity`` (px); values outside ``[0, limit]`` stay.

    ``left_small`` and ``right_small`` are the grey images at 1/:data:`~stereo_depth_ros.
    networks.pass_choice.COST_SHRINK` of the disparity's size rounded up to a multiple of it
    (:func:`~stereo_depth_ros.networks.confidence.cost_grey`), ``left`` and ``right`` at its
    size (:func:`~stereo_depth_ros.networks.pass_choice.grey`).
    """
    height, width = disparity.shape
    # An estimate whose match falls left of the right image has nothing there to be matched
    # against (its window compares the replicated border column): any nearer-looking,
    # smaller candidate would win. The network's value stays (a near object at the left
    # border was pulled far).
    usable = within(disparity, limit) & ~lands_outside(disparity)
    base = np.where(usable, disparity, np.float32(0.0)).astype(np.float32)
    sampled = block_samples(np.where(usable, disparity, np.float32(np.nan)))
    check_grey_size(left_small, sampled.shape, height, width)
    steps = int(radius // COST_SHRINK)
    coarse = np.arange(-steps, steps + 1, dtype=np.float32)
    best, _ = best_offsets(left_small, right_small, sampled, coarse, MATCH_WINDOW,
                           limit / COST_SHRINK)
    shift = to_pixels(cv2.medianBlur(coarse[best], COARSE_MEDIAN) * COST_SHRINK, height, width)
    moved = base + shift
    # A block's shift was chosen for its own estimate: a pixel it would carry out of range
    # keeps the network's value as the one searched around.
    moved = np.where(within(moved, limit), moved, base)
    fine = np.arange(-FINE_RADIUS, FINE_RADIUS + 1, dtype=np.float32)
    best, costs = best_offsets(left, right, moved, fine, FINE_WINDOW, limit)
    refined = moved + fine[best] + sub_pixel(costs, best)
    keep = ~usable | lands_outside(refined) | ~within(refined, limit)
    refined = np.where(keep, disparity, refined).astype(np.float32)
    return median_of_usable(refined, within(refined, limit))


def refine_by_matching(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor,
                       radius: float, limit: float = math.inf) -> torch.Tensor:
    """Return ``Bx1xHxW`` ``disparity`` refined within ``radius`` px by matching the images.

    ``left`` and ``right`` are the normalised ``Bx3xHxW`` images the network saw, ``limit``
    the largest disparity of the passes (px); see :func:`refine_one`.
    """
    if not radius > 0:
        raise ValueError(f'radius must be > 0, got {radius}')
    left_small, right_small = cost_grey(left), cost_grey(right)
    left_full, right_full = grey(left), grey(right)
    estimates = disparity.detach().float()[:, 0].cpu().numpy()
    refined = [refine_one(left_small[index], right_small[index], left_full[index],
                          right_full[index], np.ascontiguousarray(estimates[index]), radius,
                          limit)
               for index in range(estimates.shape[0])]
    return torch.from_numpy(np.stack(refined)[:, None]).to(disparity.device)
