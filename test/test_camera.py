"""StereoCameraModel from CameraInfo fields: baseline, sign and consistency checks."""

from types import SimpleNamespace

import numpy as np
import pytest

from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.errors import CalibrationError


def info(p, width=640, height=480):
    return SimpleNamespace(width=width, height=height, p=list(p))


def kitti_like(fx=721.5377, cx=609.5593, cy=172.854, baseline=0.5372, cx_right=None):
    left = [fx, 0, cx, 0, 0, fx, cy, 0, 0, 0, 1, 0]
    right = [fx, 0, cx if cx_right is None else cx_right, -fx * baseline,
             0, fx, cy, 0, 0, 0, 1, 0]
    return info(left, 1242, 375), info(right, 1242, 375)


def test_baseline_from_right_projection():
    camera = StereoCameraModel.from_camera_info(*kitti_like())
    assert camera.baseline == pytest.approx(0.5372)
    assert camera.fx == pytest.approx(721.5377)
    assert camera.focal_baseline == pytest.approx(721.5377 * 0.5372)
    assert camera.projection_tx == pytest.approx(-721.5377 * 0.5372)


def test_baseline_uses_both_projections():
    # Left P[3] non-zero (e.g. a rig whose reference camera is elsewhere): B from the difference.
    fx = 700.0
    left = info([fx, 0, 320, 0.06 * fx, 0, fx, 240, 0, 0, 0, 1, 0])
    right = info([fx, 0, 320, -0.54 * fx, 0, fx, 240, 0, 0, 0, 1, 0])
    assert StereoCameraModel.from_camera_info(left, right).baseline == pytest.approx(0.60)


def test_wrong_sign_baseline_is_named():
    left, right = kitti_like()
    right.p[3] = +abs(right.p[3])
    with pytest.raises(CalibrationError, match='wrong sign'):
        StereoCameraModel.from_camera_info(left, right)


def test_zero_baseline_is_named():
    left, right = kitti_like()
    right.p[3] = 0.0
    with pytest.raises(CalibrationError, match='baseline is zero'):
        StereoCameraModel.from_camera_info(left, right)


def test_uncalibrated_camera_info_is_rejected():
    left, right = kitti_like()
    left.p = [0.0] * 12
    with pytest.raises(CalibrationError, match='not calibrated'):
        StereoCameraModel.from_camera_info(left, right)


def test_mismatched_sizes_and_focal_lengths():
    left, right = kitti_like()
    right.width = 1240
    with pytest.raises(CalibrationError, match='sizes differ'):
        StereoCameraModel.from_camera_info(left, right)
    left, right = kitti_like()
    right.p[0] = 700.0
    with pytest.raises(CalibrationError, match='focal lengths differ'):
        StereoCameraModel.from_camera_info(left, right)


def test_missing_camera_info_and_bad_p_length():
    left, right = kitti_like()
    with pytest.raises(CalibrationError, match='no right CameraInfo'):
        StereoCameraModel.from_camera_info(left, None)
    right.p = right.p[:9]
    with pytest.raises(CalibrationError, match='12 elements'):
        StereoCameraModel.from_camera_info(left, right)


def test_disparity_offset_and_round_trip_of_projection_matrices():
    camera = StereoCameraModel.from_camera_info(*kitti_like(cx_right=600.0))
    assert camera.disparity_offset == pytest.approx(609.5593 - 600.0)
    p_left, p_right = camera.projection_matrices()
    again = StereoCameraModel.from_projection_matrices(1242, 375, p_left, p_right)
    assert again == camera
    np.testing.assert_allclose(p_right[0, 3], -camera.fx * camera.baseline)


def test_image_size_check():
    camera = StereoCameraModel.from_focal_baseline(500.0, 0.1, 320, 240)
    camera.check_image_size(320, 240)
    with pytest.raises(CalibrationError, match='320x240'):
        camera.check_image_size(640, 480)
