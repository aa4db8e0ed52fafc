"""Disparity <-> depth and depth -> 3-D points (REP 103 optical frame, metres)."""

from typing import Optional

import numpy as np

from .camera import StereoCameraModel
from .errors import CalibrationError

#: The smallest disparity (px) the package tells from zero: the ``delta_d`` its
#: DisparityImages advertise (SGBM's 1/16 px). A learned backend's smaller positive values
#: (a sky pixel at 7e-5 px would be 2,000 km away) are unknown, as zero is.
DISPARITY_STEP = 1.0 / 16.0


def disparity_to_depth(disparity: np.ndarray, focal_baseline: float,
                       disparity_offset: float = 0.0) -> np.ndarray:
    """Return depth in metres, ``fx*B / (d - offset)``; NaN where d is unknown or too small.

    ``d == offset`` would be a point at infinity, but a matcher cannot tell it from a mismatch
    at the edge of its search range: it stays unknown (NaN), never ``+inf``, so that nothing
    clears a costmap on it (REP 117's ``+inf`` is "no return within range"). So do values
    less than :data:`DISPARITY_STEP` above the offset, which cannot be told from it.

    Args:
        disparity: float HxW disparity in pixels (NaN = unknown).
        focal_baseline: ``fx * B`` (pixels * metres), positive.
        disparity_offset: ``cx_left - cx_right`` in pixels.

    Returns:
        float32 HxW depth (REP 118: NaN where there is no estimate).

    """
    if not 0 < focal_baseline < np.finfo(np.float32).max:
        raise CalibrationError(f'fx * baseline must be positive and finite, got '
                               f'{focal_baseline}')
    shifted = np.asarray(disparity, dtype=np.float32) - np.float32(disparity_offset)
    depth = np.full(shifted.shape, np.nan, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(shifted) & (shifted >= np.float32(DISPARITY_STEP))
    with np.errstate(over='ignore', divide='ignore'):
        depth[valid] = np.float32(focal_baseline) / shifted[valid]
    depth[~np.isfinite(depth)] = np.nan  # an overflow is no estimate, never +inf
    return depth


def depth_to_points(depth: np.ndarray, camera: StereoCameraModel,
                    roi: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
    """Back-project depth into HxWx3 points (x right, y down, z forward) in the left frame.

    Pixels without depth give NaN points. ``roi`` (x, y, width, height) limits the output to
    a window of the image; its pixel coordinates stay those of the full image.
    """
    depth = np.asarray(depth, dtype=np.float32)
    x0, y0 = (roi[0], roi[1]) if roi else (0, 0)
    rows, cols = depth.shape
    u = np.arange(x0, x0 + cols, dtype=np.float32)[None, :]
    v = np.arange(y0, y0 + rows, dtype=np.float32)[:, None]
    x = (u - np.float32(camera.cx_left)) / np.float32(camera.fx) * depth
    y = (v - np.float32(camera.cy)) / np.float32(camera.fy) * depth
    return np.stack([x, y, depth], axis=-1)
