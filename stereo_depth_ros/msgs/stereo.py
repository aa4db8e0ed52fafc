"""Disparity, depth and camera_info messages of a rectified stereo pair."""

from typing import Any

import numpy as np

from .images import array_to_image, image_to_array
from .types import MessageTypes
from ..camera import StereoCameraModel
from ..errors import ImageFormatError
from ..geometry import DISPARITY_STEP
from ..images import mask_bounding_box


def make_depth_image(depth: np.ndarray, header: Any, types: MessageTypes) -> Any:
    """Return REP 118 depth: 32FC1 metres, NaN where unknown, -inf/+inf as the pipeline set.

    (Nearer than ``min_depth`` / farther than ``max_depth``, REP 117.)
    """
    return array_to_image(np.asarray(depth, dtype=np.float32), '32FC1', header, types.Image)


def make_disparity_image(disparity: np.ndarray, camera: StereoCameraModel, header: Any,
                         min_disparity: float, max_disparity: float, types: MessageTypes,
                         delta_d: float = DISPARITY_STEP) -> Any:
    """Return a ``stereo_msgs/DisparityImage`` for raw disparity ``x_l - x_r`` (NaN unknown).

    As the message definition asks, the values are pre-adjusted for the principal point
    offset (``d - (cx_l - cx_r)``), so depth is ``f * t / d``; ``min_disparity`` and
    ``max_disparity`` (the searched range, raw) are adjusted the same way. Unknown pixels and
    pixels whose adjusted value is below ``delta_d`` (no depth can be told from it) hold
    ``min_disparity - 1``; valid values below ``min_disparity`` are raised to it.
    ``valid_window`` is the bounding box of known pixels. ``delta_d`` is the smallest
    disparity step the backend resolves (:data:`~stereo_depth_ros.geometry.DISPARITY_STEP`).
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    if disparity.ndim != 2:
        raise ImageFormatError(f'disparity must be HxW, got shape {disparity.shape}')
    camera.check_image_size(disparity.shape[1], disparity.shape[0])
    offset = np.float32(camera.disparity_offset)
    low = float(min_disparity) - float(offset)
    high = float(max_disparity) - float(offset)
    if not high > low:
        raise ValueError(f'max_disparity ({max_disparity}) must exceed min_disparity '
                         f'({min_disparity})')
    adjusted = disparity - offset
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(adjusted) & (adjusted >= np.float32(delta_d))
    values = np.full(disparity.shape, np.float32(low - 1.0), dtype=np.float32)
    values[valid] = np.maximum(adjusted[valid], np.float32(low))
    x, y, width, height = mask_bounding_box(valid) or (0, 0, 0, 0)
    roi = types.RegionOfInterest(x_offset=x, y_offset=y, height=height, width=width,
                                 do_rectify=False)
    image = array_to_image(values, '32FC1', header, types.Image)
    return types.DisparityImage(header=header, image=image, f=float(camera.fx),
                                t=float(camera.baseline), valid_window=roi,
                                min_disparity=float(low), max_disparity=float(high),
                                delta_d=float(delta_d))


def disparity_from_message(msg: Any) -> tuple[np.ndarray, float, float]:
    """Return ``(disparity, f, t)`` of a ``stereo_msgs/DisparityImage``; invalid pixels NaN.

    Values below ``min_disparity`` (and non-finite or non-positive ones) are invalid.
    """
    values, encoding = image_to_array(msg.image)
    if encoding != '32FC1':
        raise ImageFormatError(f'DisparityImage must hold a 32FC1 image, got {encoding}')
    disparity = values.astype(np.float32, copy=True)
    with np.errstate(invalid='ignore'):
        invalid = ~np.isfinite(disparity) | (disparity < np.float32(msg.min_disparity)) | \
            (disparity <= 0)
    disparity[invalid] = np.nan
    return disparity, float(msg.f), float(msg.t)


def make_camera_info(camera: StereoCameraModel, side: str, header: Any, types: MessageTypes,
                     distortion_model: str = 'plumb_bob') -> Any:
    """Return the rectified ``sensor_msgs/CameraInfo`` of the ``'left'`` or ``'right'`` camera.

    K holds fx, fy and that camera's cx, cy; R is identity and D zeros (the images are
    rectified); P is the rectified projection, with ``P[3] = -fx * B`` on the right camera.
    """
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    p_left, p_right = camera.projection_matrices()
    projection = p_left if side == 'left' else p_right
    k = projection[:, :3].reshape(-1).astype(np.float64)
    r = np.eye(3, dtype=np.float64).reshape(-1)
    d = types.float64_sequence([0.0] * (5 if distortion_model == 'plumb_bob' else 0))
    roi = types.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types.CameraInfo(header=header, height=int(camera.height), width=int(camera.width),
                            distortion_model=distortion_model, d=d, k=k, r=r,
                            p=projection.reshape(-1).astype(np.float64), binning_x=0,
                            binning_y=0, roi=roi)


def make_camera_infos(camera: StereoCameraModel, left_header: Any, right_header: Any,
                      types: MessageTypes) -> tuple[Any, Any]:
    """Return the left and right CameraInfo of a rectified stereo pair."""
    return (make_camera_info(camera, 'left', left_header, types),
            make_camera_info(camera, 'right', right_header, types))
