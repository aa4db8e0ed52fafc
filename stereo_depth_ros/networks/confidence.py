"""Which pixels of a learned estimate the images do not confirm (option ``max_match_cost``).

A network gives every pixel a disparity, also where no stereo match exists: left of the right
camera's view and behind nearer objects. There it guesses from the surroundings, and near
objects come out too far: a consumer of depth, an obstacle detector or a costmap would see
free space where something is. :func:`unconfirmed` warps the right view by the estimate and
scores each pixel with the windowed matching cost that chooses between the passes
(:func:`~stereo_depth_ros.networks.pass_choice.matching_costs`: 1 - ZNCC plus half the mean
absolute difference, at half resolution). A pixel whose cost exceeds the limit, or whose
match falls left of the right image, is unconfirmed; the backend reports it as unknown, as
``sgbm`` does with the pixels it cannot match. Weak texture has a high cost too (the
correlation is undefined there), so flat regions go with the unmatched ones: what is kept
is what the two views agree on.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .pass_choice import COST_SHRINK, matching_costs, shrunken_grey

#: A match lands outside the right image when ``x - d`` is below this column (px).
FIRST_COLUMN = -0.5


def padded_to_multiple(images: torch.Tensor, multiple: int = COST_SHRINK) -> torch.Tensor:
    """Return ``BxCxHxW`` images with their last row and column repeated to a ``multiple``.

    Shrunk by :data:`~stereo_depth_ros.networks.pass_choice.COST_SHRINK` they are then exact
    block means: an odd size would make the shrinking factor drift across the image, and the
    cost of a right estimate with it.
    """
    height, width = images.shape[-2:]
    pad = (0, -width % multiple, 0, -height % multiple)
    return F.pad(images, pad, mode='replicate') if any(pad) else images


def cost_grey(images: torch.Tensor) -> np.ndarray:
    """Return ``Bx3xHxW`` images as the ``Bxhxw`` grey images of the half-resolution cost.

    Padded to a multiple of :data:`~stereo_depth_ros.networks.pass_choice.COST_SHRINK`
    (:func:`padded_to_multiple`), then shrunk by it (:func:`~stereo_depth_ros.networks.
    pass_choice.shrunken_grey`): one block of the disparity per pixel (:func:`block_samples`).
    """
    return shrunken_grey(padded_to_multiple(images))


def lands_outside(disparity: np.ndarray) -> np.ndarray:
    """Return where the match of an ``HxW`` finite disparity falls left of the right image."""
    return np.arange(disparity.shape[-1], dtype=np.float32)[None, :] - disparity < FIRST_COLUMN


def block_samples(disparity: np.ndarray) -> np.ndarray:
    """Return one disparity per block of the cost's shrinking factor, in shrunk px.

    The blocks are :data:`~stereo_depth_ros.networks.pass_choice.COST_SHRINK` px square, of
    the ``HxW`` ``disparity`` padded to a multiple of it (:func:`padded_to_multiple`'s
    size); the values are divided by it. Each block's first pixel, or
    where that is unknown (not finite) the mean of the block's known pixels, and 0 where the
    block has none.
    """
    height, width = disparity.shape
    padded = np.pad(disparity, ((0, -height % COST_SHRINK), (0, -width % COST_SHRINK)),
                    mode='edge').astype(np.float32)
    first = np.ascontiguousarray(padded[::COST_SHRINK, ::COST_SHRINK])
    missing = ~np.isfinite(first)
    if missing.any():
        blocks = padded.reshape(first.shape[0], COST_SHRINK, first.shape[1], COST_SHRINK)
        known = np.isfinite(blocks)
        count = known.sum(axis=(1, 3))
        total = np.where(known, blocks, np.float32(0.0)).sum(axis=(1, 3))
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        first[missing] = mean[missing]
    return first / np.float32(COST_SHRINK)


def to_pixels(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Return per-block values repeated over each block's pixels, cropped to ``HxW``."""
    return np.repeat(np.repeat(blocks, COST_SHRINK, axis=0), COST_SHRINK,
                     axis=1)[:height, :width]


def unconfirmed_one(left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
                    max_cost: float) -> np.ndarray:
    """Return the ``HxW`` pixels of a finite ``disparity`` that the images do not confirm.

    ``left`` and ``right`` are float32 grey images at 1/:data:`~stereo_depth_ros.networks.
    pass_choice.COST_SHRINK` of the disparity's size rounded up to a multiple of it
    (:func:`cost_grey`). The cost is computed there, with each block's disparity
    (:func:`block_samples`); every pixel of a block takes its cost. Pixels without a finite
    disparity are never in the mask (their windows see them warped at 0 px).
    """
    height, width = disparity.shape
    known = np.isfinite(disparity)
    usable = np.where(known, disparity, np.float32(0.0)).astype(np.float32)
    sampled = block_samples(disparity)
    check_grey_size(left, sampled.shape, height, width)
    cost = to_pixels(matching_costs(left, right, [sampled])[0], height, width)
    return known & ((cost > max_cost) | lands_outside(usable))


def check_grey_size(grey: np.ndarray, expected: tuple[int, ...], height: int,
                    width: int) -> None:
    """Refuse half-resolution grey images that do not fit a ``height`` x ``width`` disparity."""
    if grey.shape != expected:
        raise ValueError(f'grey images of shape {grey.shape} do not match a {height}x{width} '
                         f'disparity (expected {expected})')


def unconfirmed(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor,
                max_cost: float) -> np.ndarray:
    """Return the ``BxHxW`` mask of pixels of ``disparity`` the images do not confirm.

    ``left`` and ``right`` are the normalised ``Bx3xHxW`` images the network saw,
    ``disparity`` its ``Bx1xHxW`` estimate (px, NaN unknown); see :func:`unconfirmed_one`.
    """
    if not max_cost > 0:
        raise ValueError(f'max_cost must be > 0, got {max_cost}')
    left_grey, right_grey = cost_grey(left), cost_grey(right)
    estimates = disparity.detach().float()[:, 0].cpu().numpy()
    return np.stack([unconfirmed_one(left_grey[index], right_grey[index],
                                     np.ascontiguousarray(estimates[index]), max_cost)
                     for index in range(estimates.shape[0])])


def drop_unconfirmed(disparity: np.ndarray, left: torch.Tensor, right: torch.Tensor,
                     max_cost: float) -> np.ndarray:
    """Set the pixels of an ``HxW`` float32 disparity the images do not confirm to NaN.

    In place, and returned; ``left`` and ``right`` are the ``1x3xHxW`` normalised images
    (:func:`unconfirmed`). What the backends do with ``max_cost`` > 0.
    """
    doubted = unconfirmed(left, right, torch.from_numpy(disparity)[None, None], max_cost)
    disparity[doubted[0]] = np.nan
    return disparity
