"""The one inference path of every learned network: images in, full-resolution disparity out.

The learned backends, training validation, adaptation's held-out scoring and the tests all
call :func:`predict_disparity`: normalise per image, optionally resize by ``scale``, pad to
the network's divisor, run ``model.predict`` under the precision's autocast, crop back and
rescale; :func:`mask_invalid` turns what a backend does not trust into NaN.

The backends add coarser passes for near objects (:func:`predict_with_near_pass`): a network
is least accurate in the upper part of its range, and the same pixels fall in the lower part
of it at ``near_scale`` (by default half) the resolution. :func:`blend_near_pass` keeps the
finer estimate where the coarser one is small and takes the coarser one where it is large.
:func:`near_pass_scales` chooses the passes: one, and more while the range is below
:data:`NEAR_PASS_TARGET_RANGE` (a network trained for 0-64 px gets two, 0-256 px).
"""

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .common import (StereoNet, area_mean, normalize_image, pad_to_divisor,
                     upsample_disparity)
from .pass_choice import choose_by_matching
from .refine import refine_by_matching
from ..backends.options import MIN_PASS_SCALE
from ..images import to_rgb
from ..torch_runtime import autocast


def images_to_tensor(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """Return uint8 grey or RGB ``HxW[x3]`` images as a normalised ``Bx3xHxW`` tensor.

    The tensor is channels_last (the pixel-interleaved layout of the images themselves),
    which is the layout the networks run in: no transposing copy on either side.
    """
    array = np.stack([to_rgb(image) for image in images])
    return normalize_image(torch.from_numpy(array).to(device).permute(0, 3, 1, 2))


def shrink_images(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Return ``BxCxHxW`` images area-averaged to ``size`` (h, w).

    An exact integer factor (the near passes' 1/2, 1/4) takes :func:`area_mean`: the values of
    ``interpolate(mode='area')`` up to float rounding, faster than ``avg_pool2d`` on the
    channels_last 3-channel images of the near passes.
    """
    height, width = images.shape[-2:]
    factor = height // int(size[0])
    if factor > 1 and (height, width) == (factor * int(size[0]), factor * int(size[1])):
        return area_mean(images, factor)
    return F.interpolate(images, size=tuple(int(side) for side in size), mode='area')


def predict_disparity(model: StereoNet, left: torch.Tensor, right: torch.Tensor, *,
                      precision: str = 'fp32', pad_mode: str = 'replicate',
                      scale: float = 1.0) -> torch.Tensor:
    """Return ``Bx1xHxW`` float32 disparity (pixels) of normalised ``Bx3xHxW`` pairs.

    With ``scale`` < 1 the network sees both images resized by it (area averaging) and its
    disparity is upsampled back, its values divided by the scale: a network trained for
    0..D px then covers 0..D/scale px, at a fraction of the cost. ``precision`` is a resolved
    one (:func:`~stereo_depth_ros.torch_runtime.resolve_precision`).
    """
    size = left.shape[-2:]
    if scale != 1.0:
        small = [max(int(round(side * scale)), 1) for side in size]
        left = shrink_images(left, small)
        right = shrink_images(right, small)
    left_padded, (height, width) = pad_to_divisor(left, model.divisor, pad_mode)
    right_padded, _ = pad_to_divisor(right, model.divisor, pad_mode)
    left_padded = left_padded.contiguous(memory_format=torch.channels_last)
    right_padded = right_padded.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(left.device, precision):
        disparity = model.predict(left_padded, right_padded)
    disparity = disparity[..., :height, :width].float()
    return upsample_disparity(disparity, size) if scale != 1.0 else disparity


#: The blend from the first pass to the near pass spans this fraction of its threshold.
NEAR_BLEND_FRACTION = 1.0 / 12.0


def blend_near_pass(full: torch.Tensor, near: torch.Tensor, threshold: float,
                    full_range: float = math.inf, near_range: float = math.inf
                    ) -> torch.Tensor:
    """Return ``full`` where ``near`` is small, ``near`` where it is large, blended between.

    Both are disparities of one size in output pixels. The weight of ``near`` rises linearly
    from 0 to 1 over ``NEAR_BLEND_FRACTION * threshold`` px centred on ``threshold``. A pass
    whose value is not finite or lies outside ``[0, its range]`` does not count: the other one
    is taken there (``full`` where neither is usable, which the backend then masks).
    """
    ramp = max(threshold * NEAR_BLEND_FRACTION, 1e-6)
    # Comparisons with NaN are False, and an upper limit of at most the dtype's largest value
    # leaves out the infinities: no separate isfinite.
    near_usable = (near >= 0) & (near <= min(near_range, torch.finfo(near.dtype).max))
    full_usable = (full >= 0) & (full <= min(full_range, torch.finfo(full.dtype).max))
    weight = (near * (1.0 / ramp)).add_(0.5 - threshold / ramp).clamp_(0.0, 1.0)
    weight = torch.where(near_usable, torch.where(full_usable, weight, 1.0), 0.0)
    # Where 0 < weight < 1 both passes are usable, hence finite: the lerp is taken only there.
    blended = torch.where(weight < 1, torch.lerp(full, near, weight), near)
    return torch.where(weight > 0, blended, full)


#: Automatic near passes are added until the range reaches this many output px: 0-192 px is
#: a KITTI camera at full resolution (fx 721 px, baseline 0.54 m: everything beyond 2 m).
NEAR_PASS_TARGET_RANGE = 192.0
#: The most near passes :func:`near_pass_scales` chooses by itself.
MAX_AUTO_NEAR_PASSES = 3


def disparity_range(model: StereoNet, scale: float) -> float:
    """Return the largest disparity (output px) of a pass at input ``scale``."""
    return model.max_disparity / scale


def resolve_near_from(network: StereoNet | type[StereoNet], near_from: float) -> float:
    """Return ``near_from``, or the network's (class's) ``default_near_from`` where it is 0."""
    return near_from or network.default_near_from


def resolve_match_passes(network: StereoNet | type[StereoNet], match_passes: str) -> bool:
    """Return whether the passes compete by matching cost: ``always``, ``never``, or ``auto``.

    ``auto`` is the network's (class's) ``default_match_passes``.
    """
    return network.default_match_passes if match_passes == 'auto' else match_passes == 'always'


def resolve_refine_radius(network: StereoNet | type[StereoNet], refine_radius: float) -> float:
    """Return ``refine_radius``, or the network's ``default_refine_radius`` where it is -1."""
    return network.default_refine_radius if refine_radius < 0 else refine_radius


def near_pass_scales(model: StereoNet, scale: float, near_scale: float, near_from: float = 0.0,
                     near_passes: int = 0, max_disparity: float = 0.0,
                     min_scale: float = MIN_PASS_SCALE) -> list[float]:
    """Return the input scales of the near passes after the first pass at ``scale``.

    Each runs at ``near_scale`` times the scale of the one before and takes over above
    ``near_from`` times that one's range (0: the network's own, :func:`resolve_near_from`).
    ``near_scale`` 0: none. ``near_passes`` > 0: that
    many; 0: one, and more while the range is below :data:`NEAR_PASS_TARGET_RANGE` (at most
    :data:`MAX_AUTO_NEAR_PASSES`, none below ``min_scale``, by default the smallest scale a
    pass may run at). A pass that could only take over above ``max_disparity`` (a capped
    range, > 0) is left out, and so are the ones after.
    """
    near_from = resolve_near_from(model, near_from)
    scales: list[float] = []
    pass_scale = scale
    while near_scale and len(scales) < (near_passes or MAX_AUTO_NEAR_PASSES):
        reached = disparity_range(model, pass_scale)
        if not near_passes and scales and (reached >= NEAR_PASS_TARGET_RANGE
                                           or pass_scale * near_scale < min_scale):
            break
        onset = near_from * reached * (1 - NEAR_BLEND_FRACTION / 2)
        if max_disparity and max_disparity < onset:
            break
        pass_scale *= near_scale
        scales.append(pass_scale)
    return scales


def predict_with_near_pass(model: StereoNet, left: torch.Tensor, right: torch.Tensor, *,
                           precision: str = 'fp32', pad_mode: str = 'replicate',
                           scale: float = 1.0, near_scales: Sequence[float] = (),
                           near_from: float = 0.0, match_passes: bool = False,
                           refine_radius: float = 0.0) -> torch.Tensor:
    """Return :func:`predict_disparity` at ``scale``, refined by passes at ``near_scales``.

    Without near scales this is one pass. Otherwise each near pass's estimate replaces the
    result so far where it exceeds ``near_from`` times the range of the pass before it
    (``model.max_disparity`` / that pass's scale; 0: the network's own fraction), and the
    range grows to the last pass's. With ``match_passes`` the passes' own estimates then
    compete with that blend, pixel by pixel, on how well they match
    (:func:`~stereo_depth_ros.networks.pass_choice.choose_by_matching`). With
    ``refine_radius`` > 0 the result is refined by matching within that many px, inside the
    range reached (:func:`~stereo_depth_ros.networks.refine.refine_by_matching`; -1 is not
    resolved here).
    """
    near_from = resolve_near_from(model, near_from)
    result = predict_disparity(model, left, right, precision=precision, pad_mode=pad_mode,
                               scale=scale)
    passes = [result]
    ranges = [disparity_range(model, scale)]  # of each pass; the last is the range reached
    for near_scale in near_scales:
        near = predict_disparity(model, left, right, precision=precision, pad_mode=pad_mode,
                                 scale=near_scale)
        near_range = disparity_range(model, near_scale)
        result = blend_near_pass(result, near, near_from * ranges[-1], ranges[-1], near_range)
        passes.append(near)
        ranges.append(near_range)
    if match_passes and near_scales:
        result = choose_by_matching(left, right, result, passes, ranges)
    if refine_radius > 0:
        result = refine_by_matching(left, right, result, refine_radius, ranges[-1])
    return result


def mask_invalid(disparity: np.ndarray, max_disparity: float) -> np.ndarray:
    """Set non-finite, negative and above-``max_disparity`` values to NaN (in place)."""
    with np.errstate(invalid='ignore'):
        invalid = ~np.isfinite(disparity) | (disparity < 0) | (disparity > max_disparity)
    disparity[invalid] = np.nan
    return disparity
