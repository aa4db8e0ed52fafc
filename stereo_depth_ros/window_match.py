"""How well windows of two grey images match, once one is warped onto the other.

Torch-free, for the checks that run beside any backend: the near guard's confirmation of its
finds (:mod:`~stereo_depth_ros.near_guard`) and the view check
(:mod:`~stereo_depth_ros.view_check`). The learned backends' choice between their passes and
their refinement by matching have their own (:mod:`~stereo_depth_ros.networks.pass_choice`):
the same warp and correlation, but windows with their edges repeated, not mirrored, the left
image's window statistics computed once for many candidates, and an unknown disparity left
to OpenCV's remap instead of read at d = 0; one piece for both would move those backends'
outputs.
"""

import cv2
import numpy as np


def warp_to_left(right: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return float32 ``right`` warped to the left view by ``disparity``, and the columns read.

    Pixel (y, x) of the warp is the right image at (y, x - d), interpolated linearly and
    taken from the nearest edge outside it; a NaN disparity reads column x (d = 0).
    """
    rows, cols = disparity.shape
    sources = np.arange(cols, dtype=np.float32)[None, :] - np.nan_to_num(
        disparity.astype(np.float32), nan=0.0)
    warped = cv2.remap(right.astype(np.float32), sources,
                       np.repeat(np.arange(rows, dtype=np.float32)[:, None], cols, axis=1),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped, sources


def window_mean(image: np.ndarray, window: int) -> np.ndarray:
    """Return the mean of each ``window``-square window of float32 ``image`` (edges mirrored)."""
    return cv2.blur(image, (window, window), borderType=cv2.BORDER_REFLECT)


def window_variance(image: np.ndarray, window: int) -> np.ndarray:
    """Return the variance of each ``window``-square window of float32 ``image``."""
    mean = window_mean(image, window)
    return window_mean(image * image, window) - mean * mean


def window_zncc(first: np.ndarray, second: np.ndarray,
                window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the zero-mean normalised cross-correlation of each window of two images.

    Also the product of the two windows' variances, which says where there is anything to
    correlate: where it is below 1e-6 the correlation is taken over 1e-6 instead (near 0).
    """
    mean_first, mean_second = window_mean(first, window), window_mean(second, window)
    variance = ((window_mean(first * first, window) - mean_first ** 2)
                * (window_mean(second * second, window) - mean_second ** 2))
    covariance = window_mean(first * second, window) - mean_first * mean_second
    return covariance / np.sqrt(np.maximum(variance, 1e-6)), variance
