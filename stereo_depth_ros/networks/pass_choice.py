"""Choose, per pixel, between the estimates of the inference passes by how well they match.

A learned backend with near passes has several estimates of every pixel: the first (finest)
pass, each coarser pass, and their blend by disparity (:func:`~stereo_depth_ros.networks.
inference.blend_near_pass`). Where they disagree, at most one of them is right, and the
images say which: warped by the right disparity, the right view matches the left one.
:func:`choose_by_matching` scores each estimate with a windowed matching cost (zero-mean
normalised cross-correlation, insensitive to gain and offset between the cameras, plus the mean
absolute difference) and keeps, per pixel, the one that matches best; the blend is kept
unless another estimate matches clearly better (by a far smaller margin where the blend is
still the first pass's own estimate). A 5x5 median of the whole result then
removes isolated choices, as a per-pixel decision leaves salt-and-pepper noise.

This only chooses between the network's own estimates; it never invents a disparity, so a
pixel no pass got right stays wrong. Its known failure is a repeated texture: there an
estimate off by one period matches as well as the right one. Backend option
``match_passes`` (``auto``: the network's ``default_match_passes``, on for ``costnet`` and
``costnet_fast``, whose validation scores all improved with it; models/README.md, "Choosing
between the passes").
"""

from typing import Sequence

import cv2
import numpy as np
import torch

#: The matching costs are computed at 1/COST_SHRINK of the images' resolution.
COST_SHRINK = 2
#: Side of the square window (px at that resolution) over which the cost is averaged.
MATCH_WINDOW = 5
#: Weight of the mean absolute difference (of the normalised grey images) in the cost.
DIFFERENCE_WEIGHT = 0.5
#: How much lower (cost units; 1 - ZNCC spans 0..2) another estimate's cost must be than the
#: blend's for it to be chosen.
BLEND_PREFERENCE = 0.05
#: The same where the blend is still the first (finest) pass's own estimate: mostly below the
#: disparity where a near pass takes over, and where no near pass is usable. With it every
#: validation score of both CostNet backends was lower than with BLEND_PREFERENCE there; the
#: real suite and the 0-64 px test scenes, measured afterwards, were slightly worse
#: (models/README.md, "Choosing between the passes").
FIRST_PASS_PREFERENCE = 0.005
#: Side (px) of the median filter applied to the chosen disparity (3 or 5: OpenCV's float
#: median).
MEDIAN_SIZE = 5
_VARIANCE_FLOOR = 1e-6
_CHANNEL_MEAN = np.full((1, 3), 1.0 / 3.0, np.float32)


def box_mean(image: np.ndarray, window: int) -> np.ndarray:
    """Return the ``window`` x ``window`` means of an ``HxW`` float32 map (borders repeated)."""
    return cv2.blur(image, (window, window), borderType=cv2.BORDER_REPLICATE)


def warp_to_left(right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """Return the ``HxW`` float32 ``right`` map sampled at ``x - disparity`` (bilinear)."""
    height, width = right.shape
    columns = np.arange(width, dtype=np.float32)[None, :] - disparity
    rows = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
    return cv2.remap(right, columns, np.ascontiguousarray(rows), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def matching_costs(left: np.ndarray, right: np.ndarray, disparities: Sequence[np.ndarray],
                   window: int = MATCH_WINDOW,
                   difference_weight: float = DIFFERENCE_WEIGHT) -> np.ndarray:
    """Return the ``NxHxW`` matching cost of each of N ``HxW`` disparities (px).

    ``left`` and ``right`` are ``HxW`` float32 grey images; the cost is
    ``1 - ZNCC + difference_weight * mean |left - warped right|`` over the window: lower is a
    better match.
    """
    left_mean = box_mean(left, window)
    left_variance = box_mean(left * left, window) - left_mean * left_mean
    costs = []
    for disparity in disparities:
        warped = warp_to_left(right, disparity)
        warped_mean = box_mean(warped, window)
        warped_variance = box_mean(warped * warped, window) - warped_mean * warped_mean
        covariance = box_mean(left * warped, window) - left_mean * warped_mean
        variance = np.maximum(left_variance * warped_variance, _VARIANCE_FLOOR)
        cost = 1.0 - covariance / np.sqrt(variance)
        cost += difference_weight * box_mean(np.abs(left - warped), window)
        costs.append(cost)
    return np.stack(costs)


def within(values: np.ndarray, limit: float) -> np.ndarray:
    """Return where ``values`` are usable disparities: in ``[0, limit]`` (so not NaN or inf)."""
    return (values >= 0) & (values <= limit)


def median_of_usable(disparity: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Return the :data:`MEDIAN_SIZE` median of ``disparity``, unusable pixels left out.

    OpenCV's float median does not know NaN: a pixel whose window holds an unusable one keeps
    its own value, and an unusable pixel stays as it is (the backend masks it).
    """
    if usable.all():
        return cv2.medianBlur(disparity, MEDIAN_SIZE)
    filtered = cv2.medianBlur(np.where(usable, disparity, np.float32(0.0)), MEDIAN_SIZE)
    clean = cv2.blur((~usable).astype(np.float32), (MEDIAN_SIZE, MEDIAN_SIZE),
                     borderType=cv2.BORDER_REPLICATE) == 0
    return np.where(clean, filtered, disparity)


def choose_one(left: np.ndarray, right: np.ndarray, candidates: Sequence[np.ndarray],
               limits: Sequence[float]) -> np.ndarray:
    """Return, per pixel, the best-matching of ``HxW`` candidates (the first is the blend).

    ``left`` and ``right`` are ``hxw`` float32 grey images at 1/:data:`COST_SHRINK` of the
    candidates' resolution: the costs are computed there (the candidates sampled, their values
    scaled), and the choice is carried back to every full-resolution pixel. A candidate is
    usable where it lies in ``[0, its limit]`` (its pass's range). The second candidate, if
    any, is the first pass: where the blend equals it, the preference for the blend is
    :data:`FIRST_PASS_PREFERENCE`, elsewhere :data:`BLEND_PREFERENCE`. A candidate equal to
    the blend at every pixel, and usable where it is, is not scored: it would match exactly as
    well, and only a lower cost by a preference above 0 is chosen (nothing near in view: the
    blend is the first pass).
    """
    height, width = candidates[0].shape
    small = (left.shape[1], left.shape[0])
    factor = np.float32(small[0] / width)
    sampled = [cv2.resize(candidate, small, interpolation=cv2.INTER_NEAREST) * factor
               for candidate in candidates]
    usable = [within(candidate, limit * factor) for candidate, limit in zip(sampled, limits)]
    # Equal values usable at the same pixels give equal costs: a NaN makes two candidates
    # unequal here, and a value beyond a candidate's own range (below the blend's) scores
    # differently, as 0: such ones are scored.
    scored = [0, *(index for index in range(1, len(candidates))
                   if not (np.array_equal(candidates[index], candidates[0])
                           and np.array_equal(usable[index], usable[0])))]
    costs = dict(zip(scored, matching_costs(left, right, [
        np.where(usable[index], sampled[index], np.float32(0.0)) for index in scored])))
    preference = (np.where(sampled[0] == sampled[1], np.float32(FIRST_PASS_PREFERENCE),
                           np.float32(BLEND_PREFERENCE))
                  if len(candidates) > 1 else np.float32(BLEND_PREFERENCE))
    best = np.where(usable[0], costs[0] - preference, np.inf)
    choice = np.zeros(best.shape, np.uint8)
    for index in scored[1:]:
        better = usable[index] & (costs[index] < best)
        choice[better] = index
        best = np.where(better, costs[index], best)
    full_choice = cv2.resize(choice, (width, height), interpolation=cv2.INTER_NEAREST)
    chosen = np.ascontiguousarray(candidates[0], dtype=np.float32).copy()
    for index in scored[1:]:
        if not (choice == index).any():  # chosen nowhere: nothing to copy
            continue
        # Usable where it was sampled, a candidate may not be at every pixel it covers.
        candidate = candidates[index]
        np.copyto(chosen, candidate,
                  where=(full_choice == index) & within(candidate, limits[index]))
    return median_of_usable(chosen, within(chosen, max(limits)))


def grey(images: torch.Tensor, shrink: int = 1) -> np.ndarray:
    """Return ``Bx3xHxW`` images as ``Bxhxw`` float32 channel means at 1/``shrink`` size."""
    height, width = images.shape[-2:]
    small = (max(width // shrink, 1), max(height // shrink, 1))
    # Pixel-last (a view of the channels_last tensors the backends pass): area averaging of
    # the interleaved channels, then their mean (OpenCV's per-pixel transform: numpy's mean
    # over an axis of 3 is several times slower) on the shrunk pixels.
    pixels = images.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    return np.stack([cv2.transform(cv2.resize(np.ascontiguousarray(image), small,
                                              interpolation=cv2.INTER_AREA)
                                   if shrink > 1 else np.ascontiguousarray(image),
                                   _CHANNEL_MEAN)
                     for image in pixels])


def shrunken_grey(images: torch.Tensor) -> np.ndarray:
    """Return ``Bx3xHxW`` images as ``Bxhxw`` float32 grey at 1/:data:`COST_SHRINK` size."""
    return grey(images, COST_SHRINK)


def choose_by_matching(left: torch.Tensor, right: torch.Tensor, blend: torch.Tensor,
                       passes: Sequence[torch.Tensor], ranges: Sequence[float]
                       ) -> torch.Tensor:
    """Return, per pixel, whichever of ``blend`` and ``passes`` matches best, median-filtered.

    ``left`` and ``right`` are the ``Bx3xHxW`` images the passes saw (their channel mean is
    matched); the estimates are ``Bx1xHxW`` disparities (px) of that size, ``ranges`` the
    largest disparity of each pass (the blend's is the largest of them). ``blend`` wins
    unless another estimate's cost is lower by :data:`BLEND_PREFERENCE`, or by
    :data:`FIRST_PASS_PREFERENCE` where the blend is the first pass's own estimate. An
    estimate outside ``[0, its pass's range]`` (NaN and inf included) is never chosen; where
    the blend is such a value and no pass is usable, it stays, and the backend masks it as
    unknown.
    """
    if len(ranges) != len(passes):
        raise ValueError(f'{len(passes)} passes but {len(ranges)} ranges')
    left_grey, right_grey = shrunken_grey(left), shrunken_grey(right)
    estimates = [estimate.detach().float()[:, 0].cpu().numpy() for estimate in (blend, *passes)]
    limits = [max(ranges), *ranges]
    chosen = [choose_one(left_grey[index], right_grey[index],
                         [np.ascontiguousarray(estimate[index]) for estimate in estimates],
                         limits)
              for index in range(left.shape[0])]
    return torch.from_numpy(np.stack(chosen)[:, None]).to(blend.device)
