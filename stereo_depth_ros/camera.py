"""Rectified stereo camera model built from the two CameraInfo messages' fields."""

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import CalibrationError

#: Largest accepted ``fx * B`` (px m): 1e4 px times 1e4 m, far beyond any real stereo rig,
#: and small enough that depths (float32, up to ``fx * B / 1e-3``) stay finite.
MAX_FOCAL_BASELINE = 1e8


@dataclass(frozen=True)
class StereoCameraModel:
    """Pinhole model of a rectified stereo pair, as ``image_geometry.StereoCameraModel``.

    ``baseline`` is in metres and positive (right camera to the right of the left one).
    ``cx_right`` may differ from ``cx_left``: the disparity offset ``cx_left - cx_right``
    is subtracted before triangulation, as ``stereo_image_proc`` does.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx_left: float
    cx_right: float
    cy: float
    baseline: float

    def __post_init__(self) -> None:
        """Reject impossible values with a message naming the problem."""
        if self.width <= 0 or self.height <= 0:
            raise CalibrationError(f'image size must be positive, got {self.width}x{self.height}')
        if not (np.isfinite(self.fx) and self.fx > 0 and np.isfinite(self.fy) and self.fy > 0):
            raise CalibrationError(
                f'focal lengths must be positive, got fx={self.fx} fy={self.fy} '
                '(is the CameraInfo uncalibrated, with an all-zero P?)')
        if not np.isfinite(self.baseline):
            raise CalibrationError(
                f'stereo baseline is not a finite number (B = {self.baseline}): check the '
                "right CameraInfo's P[3] = -fx * B or --baseline")
        if self.baseline == 0:
            raise CalibrationError(
                'stereo baseline is zero: the right CameraInfo needs P[3] = -fx * B '
                '(P[3] is 0 on both cameras)')
        if self.baseline < 0:
            raise CalibrationError(
                f'stereo baseline has the wrong sign (B = {self.baseline:.4f} m): the right '
                'CameraInfo must have P[3] = -fx * B < 0; are left and right swapped?')
        if not abs(self.fx * self.baseline) < MAX_FOCAL_BASELINE:
            raise CalibrationError(
                f'fx * baseline = {self.fx * self.baseline:.3g} px m is implausibly large '
                f'(fx = {self.fx:g} px, B = {self.baseline:g} m; limit '
                f'{MAX_FOCAL_BASELINE:.0e}): depths would overflow; check the calibration units')
        for name in ('cx_left', 'cx_right', 'cy'):
            if not np.isfinite(getattr(self, name)):
                raise CalibrationError(f'{name} is not a finite number: {getattr(self, name)}')

    @property
    def disparity_offset(self) -> float:
        """``cx_left - cx_right``: the disparity of a point at infinity, in pixels."""
        return self.cx_left - self.cx_right

    @property
    def focal_baseline(self) -> float:
        """``fx * B`` in pixel metres: depth = focal_baseline / (d - offset)."""
        return self.fx * self.baseline

    @property
    def projection_tx(self) -> float:
        """``P[3]`` of the right camera, ``-fx * B``."""
        return -self.fx * self.baseline

    @classmethod
    def from_focal_baseline(cls, fx: float, baseline: float, width: int, height: int,
                            cx: float | None = None, cy: float | None = None,
                            fy: float | None = None) -> 'StereoCameraModel':
        """Build a model from focal length (px) and baseline (m); principal point centred."""
        cx = (width - 1) / 2.0 if cx is None else cx
        cy = (height - 1) / 2.0 if cy is None else cy
        return cls(int(width), int(height), float(fx), float(fy if fy else fx), float(cx),
                   float(cx), float(cy), float(baseline))

    @classmethod
    def from_projection_matrices(cls, width: int, height: int, p_left: Sequence[float],
                                 p_right: Sequence[float]) -> 'StereoCameraModel':
        """Build a model from the 3x4 (or 12-element) rectified projection matrices."""
        left = _as_projection(p_left, 'left')
        right = _as_projection(p_right, 'right')
        fx = left[0, 0]
        if fx <= 0:
            raise CalibrationError(
                f'left P has fx = {fx}: the camera is not calibrated (P must be filled)')
        if not np.isclose(right[0, 0], fx, rtol=1e-3):
            raise CalibrationError(
                f'left and right focal lengths differ (fx {fx} vs {right[0, 0]}): the images '
                'are not a rectified pair')
        if not np.isclose(right[1, 1], left[1, 1], rtol=1e-3):
            raise CalibrationError(
                f'left and right fy differ ({left[1, 1]} vs {right[1, 1]}): not rectified')
        if not np.isclose(right[1, 2], left[1, 2], atol=1.0):
            raise CalibrationError(
                f'left and right cy differ ({left[1, 2]} vs {right[1, 2]}): rows do not align')
        baseline = -(right[0, 3] - left[0, 3]) / fx
        return cls(int(width), int(height), float(fx), float(left[1, 1]), float(left[0, 2]),
                   float(right[0, 2]), float(left[1, 2]), float(baseline))

    @classmethod
    def from_camera_info(cls, left_info: Any, right_info: Any) -> 'StereoCameraModel':
        """Build a model from two ``sensor_msgs/CameraInfo`` (rclpy or rosbags objects).

        Uses ``width``, ``height`` and ``p`` (the rectified projection) of each message.
        """
        for side, info in (('left', left_info), ('right', right_info)):
            if info is None:
                raise CalibrationError(f'no {side} CameraInfo received')
            if info.width == 0 or info.height == 0:
                raise CalibrationError(f'{side} CameraInfo has no image size (0x0)')
        if (left_info.width, left_info.height) != (right_info.width, right_info.height):
            raise CalibrationError(
                f'left and right CameraInfo sizes differ: {left_info.width}x{left_info.height} '
                f'vs {right_info.width}x{right_info.height}')
        return cls.from_projection_matrices(left_info.width, left_info.height,
                                            left_info.p, right_info.p)

    def projection_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the left and right 3x4 projection matrices of this model."""
        left = np.array([[self.fx, 0, self.cx_left, 0], [0, self.fy, self.cy, 0], [0, 0, 1, 0]],
                        dtype=np.float64)
        right = left.copy()
        right[0, 2] = self.cx_right
        right[0, 3] = self.projection_tx
        return left, right

    def check_image_size(self, width: int, height: int) -> None:
        """Raise CalibrationError when the images do not have the calibrated size."""
        if (width, height) != (self.width, self.height):
            raise CalibrationError(
                f'images are {width}x{height} but the CameraInfo says '
                f'{self.width}x{self.height}')


def _as_projection(values: Sequence[float], side: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size != 12:
        raise CalibrationError(f'{side} P must have 12 elements, got {array.size}')
    if not np.all(np.isfinite(array)):
        raise CalibrationError(f'{side} P contains non-finite values')
    return array.reshape(3, 4)
