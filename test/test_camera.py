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


def camera_infos(camera):
    """Left and right CameraInfo messages (the Jazzy definitions) of a model."""
    from rosbags.typesys import Stores, get_typestore
    from stereo_depth_ros.msgs.stereo import make_camera_infos
    from stereo_depth_ros.msgs.types import make_header, MessageTypes
    types = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))
    header = make_header(0, 'cam', types)
    return make_camera_infos(camera, header, header, types)


def test_binning_and_roi_give_the_model_of_the_smaller_image():
    # As image_geometry: ROI in full-resolution pixels, then binning; P[3] = -fx B scales too.
    full = StereoCameraModel(640, 480, 500.0, 502.0, 320.5, 310.5, 240.5, 0.12)
    left, right = camera_infos(full)
    for info in (left, right):
        info.binning_x = info.binning_y = 2
    binned = StereoCameraModel.from_camera_info(left, right)
    assert binned == StereoCameraModel(320, 240, 250.0, 251.0, 160.25, 155.25, 120.25, 0.12)
    left, right = camera_infos(full)
    for info, x_offset in ((left, 100), (right, 90)):
        info.roi.x_offset, info.roi.y_offset = x_offset, 40
        info.roi.width, info.roi.height = 400, 300
    cropped = StereoCameraModel.from_camera_info(left, right)
    assert (cropped.width, cropped.height) == (400, 300)
    assert (cropped.cx_left, cropped.cx_right, cropped.cy) == (220.5, 220.5, 200.5)
    assert cropped.baseline == pytest.approx(0.12) and cropped.fx == 500.0
    # A point's depth is the same in the crop: its disparity changes with the cx offset.
    assert cropped.disparity_offset == full.disparity_offset - 10
    right.roi.x_offset = 300  # 300 + 400 > 640
    with pytest.raises(CalibrationError, match=r'right CameraInfo ROI 400x300 at \(300, 40\) '
                                               'does not fit its 640x480 image'):
        StereoCameraModel.from_camera_info(left, right)
    right.roi.x_offset, right.roi.width = 90, 380
    with pytest.raises(CalibrationError, match='differ in size after their CameraInfo ROI'):
        StereoCameraModel.from_camera_info(left, right)


def test_millimetre_baselines_and_vertical_rigs_are_refused():
    left = [500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]
    millimetres = list(left)
    millimetres[3] = -500.0 * 120  # B = 120 "m": 0.12 m written in mm
    with pytest.raises(CalibrationError, match='baseline of 120 m is implausibly long .* '
                                               'millimetres'):
        StereoCameraModel.from_projection_matrices(640, 480, left, millimetres)
    without_fx = list(left)
    without_fx[3] = -0.12  # P[3] = -B: B = 0.24 mm
    with pytest.raises(CalibrationError, match=r'baseline of 0.24 mm is implausibly short .*'
                                               r'\(here -0.12\); a P\[3\] of -B without fx'):
        StereoCameraModel.from_projection_matrices(640, 480, left, without_fx)
    assert StereoCameraModel.from_projection_matrices(  # 1 mm, the shortest accepted
        640, 480, left, left[:3] + [-0.5] + left[4:]).baseline == pytest.approx(0.001)
    vertical = list(left)
    vertical[3], vertical[7] = -500.0 * 0.12, -500.0 * 0.05
    with pytest.raises(CalibrationError, match='offset vertically .*0.0500 m'):
        StereoCameraModel.from_projection_matrices(640, 480, left, vertical)
    rounding = list(left)
    rounding[3], rounding[7] = -500.0 * 0.12, -500.0 * 0.0001
    assert StereoCameraModel.from_projection_matrices(640, 480, left, rounding).baseline == \
        pytest.approx(0.12)


def test_a_negative_focal_length_is_named_as_such():
    left = [-500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]
    right = list(left)
    right[3] = 500.0 * 0.12
    with pytest.raises(CalibrationError, match='fx = -500.0: a focal length must be positive'):
        StereoCameraModel.from_projection_matrices(640, 480, left, right)
