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

import cv2
import numpy as np
import torch

from .pass_choice import matching_costs, shrunken_grey

#: A match lands outside the right image when ``x - d`` is below this column (px).
FIRST_COLUMN = -0.5


def unconfirmed_one(left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
                    max_cost: float) -> np.ndarray:
    """Return the ``HxW`` pixels of a finite ``disparity`` that the images do not confirm.

    ``left`` and ``right`` are ``hxw`` float32 grey images at a fraction of the disparity's
    resolution (:func:`~stereo_depth_ros.networks.pass_choice.shrunken_grey`): the cost is
    computed there, the disparity sampled and its values scaled, and each pixel takes the
    cost of the sample it falls in. Pixels without a finite disparity are never in the mask.
    """
    height, width = disparity.shape
    small = (left.shape[1], left.shape[0])
    factor = np.float32(small[0] / width)
    known = np.isfinite(disparity)
    usable = np.where(known, disparity, np.float32(0.0)).astype(np.float32)
    sampled = cv2.resize(usable, small, interpolation=cv2.INTER_NEAREST) * factor
    cost = cv2.resize(matching_costs(left, right, [sampled])[0], (width, height),
                      interpolation=cv2.INTER_NEAREST)
    landing = np.arange(width, dtype=np.float32)[None, :] - usable
    return known & ((cost > max_cost) | (landing < FIRST_COLUMN))


def unconfirmed(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor,
                max_cost: float) -> np.ndarray:
    """Return the ``BxHxW`` mask of pixels of ``disparity`` the images do not confirm.

    ``left`` and ``right`` are the normalised ``Bx3xHxW`` images the network saw,
    ``disparity`` its ``Bx1xHxW`` estimate (px, NaN unknown); see :func:`unconfirmed_one`.
    """
    if max_cost <= 0:
        raise ValueError(f'max_cost must be > 0, got {max_cost}')
    left_grey, right_grey = shrunken_grey(left), shrunken_grey(right)
    estimates = disparity.detach().float()[:, 0].cpu().numpy()
    return np.stack([unconfirmed_one(left_grey[index], right_grey[index],
                                     np.ascontiguousarray(estimates[index]), max_cost)
                     for index in range(estimates.shape[0])])
