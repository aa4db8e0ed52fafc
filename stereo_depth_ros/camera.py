"""Rectified stereo camera model built from the two CameraInfo messages' fields."""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .errors import CalibrationError

#: Largest accepted ``fx * B`` (px m): 1e4 px times 1e4 m, far beyond any real stereo rig,
#: and small enough that depths (float32, up to ``fx * B / 1e-3``) stay finite.
MAX_FOCAL_BASELINE = 1e8
#: Longest accepted baseline (m): long-range rigs reach a few metres; a longer one is most
#: likely a calibration written in millimetres (120 for 0.12 m), which would scale every depth.
MAX_BASELINE = 10.0
#: Shortest accepted baseline (m): stereo modules start at about a centimetre; a shorter one is
#: most likely a right ``P[3]`` of ``-B`` instead of ``-fx * B`` (0.11 m over fx 458 px gives
#: 0.24 mm), which would put everything a few millimetres away.
MIN_BASELINE = 0.001
#: A baseline above this many metres is accepted with a note: more likely centimetres (a
#: 7.5 cm camera given as 7.5) than a rig this wide.
WIDE_BASELINE_M = 2.0
#: A vertical offset of the right camera (from its P[7]) up to this fraction of the baseline is
#: taken as rounding; more is a vertically rectified pair, which is not supported.
VERTICAL_BASELINE_FRACTION = 0.01


def wide_baseline(baseline: float) -> Optional[str]:
    """Return why a baseline above :data:`WIDE_BASELINE_M` looks wrong, else None."""
    if baseline <= WIDE_BASELINE_M:
        return None
    return (f'{baseline:g} m is unusually wide for a stereo camera; it is in metres '
            f'({baseline:g} cm would be {baseline / 100:g})')


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
        if self.baseline < MIN_BASELINE:
            raise CalibrationError(
                f'stereo baseline of {self.baseline * 1e3:.3g} mm is implausibly short (limit '
                f'{MIN_BASELINE * 1e3:g} mm): the right CameraInfo needs P[3] = -fx * B in px m '
                f'(here {self.projection_tx:.4g}); a P[3] of -B without fx gives this; '
                '--baseline is in metres')
        if self.baseline > MAX_BASELINE:
            raise CalibrationError(
                f'stereo baseline of {self.baseline:g} m is implausibly long (limit '
                f'{MAX_BASELINE:g} m): given in centimetres or millimetres? (B, and P[3] = '
                '-fx * B, are in metres)')
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
                            fy: float | None = None, doffs: float = 0.0
                            ) -> 'StereoCameraModel':
        """Build a model from focal length (px) and baseline (m); principal point centred.

        ``doffs`` is ``cx_right - cx_left`` (px; Middlebury's name): depth is then
        ``fx * B / (d + doffs)``.
        """
        cx = (width - 1) / 2.0 if cx is None else cx
        cy = (height - 1) / 2.0 if cy is None else cy
        return cls(int(width), int(height), float(fx), float(fy if fy else fx), float(cx),
                   float(cx) + float(doffs), float(cy), float(baseline))

    @classmethod
    def from_projection_matrices(cls, width: int, height: int,
                                 p_left: Sequence[float] | np.ndarray,
                                 p_right: Sequence[float] | np.ndarray) -> 'StereoCameraModel':
        """Build a model from the 3x4 (or 12-element) rectified projection matrices."""
        left = _as_projection(p_left, 'left')
        right = _as_projection(p_right, 'right')
        fx = left[0, 0]
        if fx == 0:
            raise CalibrationError(
                f'left P has fx = {fx}: the camera is not calibrated (P must be filled)')
        if not fx > 0:
            raise CalibrationError(f'left P has fx = {fx}: a focal length must be positive')
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
        # Built first: its own checks (focal lengths, a zero, negative or long baseline) say
        # more than the vertical offset below.
        model = cls(int(width), int(height), float(fx), float(left[1, 1]), float(left[0, 2]),
                    float(right[0, 2]), float(left[1, 2]), float(baseline))
        vertical = -(right[1, 3] - left[1, 3]) / left[1, 1]
        if abs(vertical) > VERTICAL_BASELINE_FRACTION * baseline:
            raise CalibrationError(
                f'the right camera is offset vertically (P[7] gives {vertical:.4f} m against a '
                f'horizontal baseline of {baseline:.4f} m): only horizontally rectified pairs '
                '(P[7] = 0) are supported')
        return model

    @classmethod
    def from_camera_info(cls, left_info: Any, right_info: Any) -> 'StereoCameraModel':
        """Build a model from two ``sensor_msgs/CameraInfo`` (rclpy or rosbags objects).

        Uses ``width``, ``height`` and ``p`` (the rectified projection) of each message, and
        ``binning_x``/``binning_y`` and ``roi`` as ``image_geometry`` does: an image cropped
        to the ROI and binned (e.g. by ``image_proc``'s crop_decimate) gets the projection of
        that smaller image (:func:`reduced_projection`).
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
        (width, height, p_left), (right_width, right_height, p_right) = (
            reduced_projection(info, side) for side, info in (('left', left_info),
                                                              ('right', right_info)))
        if (width, height) != (right_width, right_height):
            raise CalibrationError(
                f'left and right images differ in size after their CameraInfo ROI and binning: '
                f'{width}x{height} vs {right_width}x{right_height}')
        return cls.from_projection_matrices(width, height, p_left, p_right)

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


def calibration_change(old: StereoCameraModel, new: StereoCameraModel) -> Optional[str]:
    """Return one line naming what differs between two stereo models (None: nothing).

    For a stream whose CameraInfo changes: every depth follows the new calibration, and a
    driver that republishes a wrong one should not change them without a word.
    """
    changes = []
    if (old.width, old.height) != (new.width, new.height):
        changes.append(f'size {old.width}x{old.height} -> {new.width}x{new.height}')
    for name, unit in (('fx', ' px'), ('fy', ' px'), ('cx_left', ' px'), ('cx_right', ' px'),
                       ('cy', ' px'), ('baseline', ' m')):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(f'{name} {before:g} -> {after:g}{unit}')
    if not changes:
        return None
    return (f'camera calibration changed: {", ".join(changes)}; depths follow the new '
            'calibration')


def _as_projection(values: Sequence[float] | np.ndarray, side: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size != 12:
        raise CalibrationError(f'{side} P must have 12 elements, got {array.size}')
    if not np.all(np.isfinite(array)):
        raise CalibrationError(f'{side} P contains non-finite values')
    return array.reshape(3, 4)


def camera_info_fields(info: Any) -> tuple:
    """Return the CameraInfo fields the stereo model is built from, as a hashable tuple.

    ``(width, height, p, binning_x, binning_y, roi x_offset, y_offset, width, height)``;
    the fields a hand-made object may lack are those of a full-resolution, unbinned image.
    """
    roi = getattr(info, 'roi', None)
    return (int(info.width), int(info.height), tuple(float(v) for v in info.p),
            int(getattr(info, 'binning_x', 0)), int(getattr(info, 'binning_y', 0)),
            int(getattr(roi, 'x_offset', 0)), int(getattr(roi, 'y_offset', 0)),
            int(getattr(roi, 'width', 0)), int(getattr(roi, 'height', 0)))


def reduced_projection(info: Any, side: str = 'left') -> tuple[int, int, np.ndarray]:
    """Return (width, height, 3x4 P) of the image a CameraInfo describes, ROI and binning applied.

    As ``image_geometry``: the ROI (in full-resolution pixels; all zero = the whole image)
    moves the principal point by its offset, and binning by ``binning_x``/``binning_y`` (0 or
    1 = none) divides the rows of P and the size. Raises CalibrationError for a ROI outside the
    calibrated image.
    """
    p_matrix = _as_projection(info.p, side).copy()
    _, _, _, binning_x, binning_y, x_offset, y_offset, roi_width, roi_height = \
        camera_info_fields(info)
    binning_x, binning_y = max(binning_x, 1), max(binning_y, 1)
    if roi_width == 0 and roi_height == 0:
        roi_width, roi_height, x_offset, y_offset = int(info.width), int(info.height), 0, 0
    if (roi_width <= 0 or roi_height <= 0 or x_offset + roi_width > int(info.width)
            or y_offset + roi_height > int(info.height)):
        raise CalibrationError(
            f'{side} CameraInfo ROI {roi_width}x{roi_height} at ({x_offset}, {y_offset}) does '
            f'not fit its {info.width}x{info.height} image')
    p_matrix[0, 2] -= x_offset
    p_matrix[1, 2] -= y_offset
    p_matrix[0] /= binning_x
    p_matrix[1] /= binning_y
    return roi_width // binning_x, roi_height // binning_y, p_matrix
