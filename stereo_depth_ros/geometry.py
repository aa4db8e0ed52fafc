"""Disparity <-> depth and depth -> 3-D points (REP 103 optical frame, metres)."""

from typing import Optional

import numpy as np

from .camera import StereoCameraModel
from .errors import CalibrationError


def disparity_to_depth(disparity: np.ndarray, focal_baseline: float,
                       disparity_offset: float = 0.0) -> np.ndarray:
    """Return depth in metres, ``fx*B / (d - offset)``; NaN where d is unknown or <= offset.

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
    valid = np.isfinite(shifted) & (shifted > 0)
    with np.errstate(over='ignore', divide='ignore'):
        depth[valid] = np.float32(focal_baseline) / shifted[valid]
    depth[~np.isfinite(depth)] = np.nan  # an overflow is no estimate, never +inf
    return depth


def depth_to_disparity(depth: np.ndarray, focal_baseline: float,
                       disparity_offset: float = 0.0) -> np.ndarray:
    """Inverse of :func:`disparity_to_depth`; NaN where depth is unknown or <= 0."""
    if focal_baseline <= 0:
        raise CalibrationError(f'fx * baseline must be positive, got {focal_baseline}')
    depth = np.asarray(depth, dtype=np.float32)
    disparity = np.full(depth.shape, np.nan, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    disparity[valid] = np.float32(focal_baseline) / depth[valid] + np.float32(disparity_offset)
    return disparity


def depth_range_to_disparity_range(min_depth: float, max_depth: float,
                                   camera: StereoCameraModel) -> tuple[float, float]:
    """Return ``(min_disparity, max_disparity)`` covering depths in [min_depth, max_depth].

    ``max_depth`` may be ``inf`` (min disparity = the offset).
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f'need 0 < min_depth < max_depth, got {min_depth}, {max_depth}')
    low = camera.focal_baseline / max_depth + camera.disparity_offset
    high = camera.focal_baseline / min_depth + camera.disparity_offset
    return float(low), float(high)


def disparity_range_to_depth_range(min_disparity: float, max_disparity: float,
                                   camera: StereoCameraModel) -> tuple[float, float]:
    """Return ``(min_depth, max_depth)`` seen by disparities in the given range."""
    low = max_disparity - camera.disparity_offset
    high = min_disparity - camera.disparity_offset
    if low <= 0:
        raise ValueError('max_disparity must exceed the disparity offset')
    max_depth = camera.focal_baseline / high if high > 0 else float('inf')
    return float(camera.focal_baseline / low), float(max_depth)


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
