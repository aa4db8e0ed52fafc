"""StereoCameraModel from CameraInfo fields: baseline, sign and consistency checks."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from stereo_depth_ros.camera import calibration_change, StereoCameraModel, wide_baseline
from stereo_depth_ros.errors import CalibrationError

FULL = StereoCameraModel(640, 480, 500.0, 502.0, 320.5, 310.5, 240.5, 0.12)


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
    with pytest.raises(CalibrationError, match=r'offset vertically \(P\[7\] gives 0.0500 m'):
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


def reduced_info(p, binning=(0, 0), roi=(0, 0, 0, 0), width=640, height=480):
    """A CameraInfo-like object with binning and a ROI (x_offset, y_offset, width, height)."""
    x_offset, y_offset, roi_width, roi_height = roi
    return SimpleNamespace(width=width, height=height, p=list(p), binning_x=binning[0],
                           binning_y=binning[1],
                           roi=SimpleNamespace(x_offset=x_offset, y_offset=y_offset,
                                               width=roi_width, height=roi_height))


def test_focal_baseline_is_fx_times_b_when_fy_differs():
    assert FULL.focal_baseline == pytest.approx(500.0 * 0.12)


def test_binning_applies_to_each_axis_on_its_own():
    p_left, p_right = (p.reshape(-1) for p in FULL.projection_matrices())
    binned = StereoCameraModel.from_camera_info(reduced_info(p_left, (2, 1)),
                                                reduced_info(p_right, (2, 1)))
    assert binned == StereoCameraModel(320, 480, 250.0, 502.0, 160.25, 155.25, 240.5, 0.12)
    binned = StereoCameraModel.from_camera_info(reduced_info(p_left, (1, 2)),
                                                reduced_info(p_right, (1, 2)))
    assert binned == StereoCameraModel(640, 240, 500.0, 251.0, 320.5, 310.5, 120.25, 0.12)


def test_a_roi_must_fit_the_image_in_both_directions():
    p_left, p_right = (p.reshape(-1) for p in FULL.projection_matrices())
    fits = reduced_info(p_left, roi=(240, 180, 400, 300))  # up to the last column and row
    assert StereoCameraModel.from_camera_info(fits, reduced_info(p_right, roi=(240, 180, 400,
                                                                               300))).width == 400
    for roi in ((241, 0, 400, 300), (0, 181, 400, 300), (0, 0, 0, 300), (0, 0, 400, 0)):
        with pytest.raises(CalibrationError, match='does not fit'):
            StereoCameraModel.from_camera_info(reduced_info(p_left, roi=roi),
                                               reduced_info(p_right, roi=roi))


def test_rectification_mismatches_are_named_and_the_left_cy_is_used():
    left = [500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]
    right = list(left)
    right[3] = -500.0 * 0.12
    fy = list(right)
    fy[5] = 510.0
    with pytest.raises(CalibrationError, match='fy differ'):
        StereoCameraModel.from_projection_matrices(640, 480, left, fy)
    rows = list(right)
    rows[6] = 245.0
    with pytest.raises(CalibrationError, match='rows do not align'):
        StereoCameraModel.from_projection_matrices(640, 480, left, rows)
    rounding = list(right)
    rounding[6] = 240.5  # within a pixel: accepted, the left camera's cy kept
    assert StereoCameraModel.from_projection_matrices(640, 480, left, rounding).cy == 240.0


def test_a_vertical_offset_either_way_is_refused_and_measured_between_the_cameras():
    left = [500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]
    right = list(left)
    right[3], right[7] = -500.0 * 0.12, 500.0 * 0.05  # right camera offset the other way
    with pytest.raises(CalibrationError, match=r'offset vertically \(P\[7\] gives -0.0500 m'):
        StereoCameraModel.from_projection_matrices(640, 480, left, right)
    shifted_left, shifted_right = list(left), list(right)
    shifted_left[7] = shifted_right[7] = 500.0 * 0.05  # both P[7] alike: no offset between
    assert StereoCameraModel.from_projection_matrices(
        640, 480, shifted_left, shifted_right).baseline == pytest.approx(0.12)


def test_from_focal_baseline_defaults_and_fy():
    camera = StereoCameraModel.from_focal_baseline(500.0, 0.1, 320, 240)
    assert (camera.cx_left, camera.cx_right, camera.cy, camera.fy) == (159.5, 159.5, 119.5,
                                                                       500.0)
    assert StereoCameraModel.from_focal_baseline(500.0, 0.1, 320, 240, fy=505.0).fy == 505.0


def test_wide_baseline_note_starts_above_2_m_and_non_finite_centres_are_refused():
    assert wide_baseline(2.0) is None
    assert wide_baseline(2.5).startswith('2.5 m is unusually wide')
    with pytest.raises(CalibrationError, match='cx_left is not a finite number'):
        StereoCameraModel(640, 480, 500.0, 500.0, np.nan, 320.0, 240.0, 0.1)


def test_an_image_size_of_zero_is_named_as_such() -> None:
    # A ROI narrower (or shorter) than its binning leaves a 0-px image; a model of it would
    # be built, and every frame then refused for its size, naming no calibration problem.
    p_left, p_right = (p.reshape(-1) for p in FULL.projection_matrices())
    for roi, size in (((0, 0, 1, 300), '0x150'), ((0, 0, 400, 1), '200x0')):
        with pytest.raises(CalibrationError, match=f'image size must be positive, got {size}'):
            StereoCameraModel.from_camera_info(reduced_info(p_left, (2, 2), roi),
                                               reduced_info(p_right, (2, 2), roi))
    # A CameraInfo with one side zero has no size either (not a ROI that does not fit it).
    with pytest.raises(CalibrationError, match='left CameraInfo has no image size'):
        StereoCameraModel.from_camera_info(info(p_left, 0, 480), info(p_right, 0, 480))


def test_a_zero_fy_or_fx_is_refused_as_no_focal_length() -> None:
    # A hand-written P with fx but no fy (P[5] = 0) gave a camera whose rows project to
    # infinity: every point's y, and the ground fit, would be NaN or inf.
    left = [500.0, 0, 320, 0, 0, 0.0, 240, 0, 0, 0, 1, 0]
    right = list(left)
    right[3] = -500.0 * 0.12
    with pytest.raises(CalibrationError, match='focal lengths must be positive, got fx=500.0 '
                                               'fy=0.0'):
        StereoCameraModel.from_projection_matrices(640, 480, left, right)
    for fx, fy in ((500.0, 0.0), (0.0, 500.0)):
        with pytest.raises(CalibrationError, match='focal lengths must be positive'):
            StereoCameraModel(640, 480, fx, fy, 320.0, 320.0, 240.0, 0.12)


def test_the_longest_baseline_and_largest_vertical_offset_accepted() -> None:
    # 10 m (a long-range rig) is the longest baseline accepted; 12 is a 12-cm camera written
    # in centimetres, every depth 100 times too far: refused.
    left = [500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]
    longest, centimetres = list(left), list(left)
    longest[3], centimetres[3] = -500.0 * 10.0, -500.0 * 12.0
    assert StereoCameraModel.from_projection_matrices(640, 480, left, longest).baseline == 10.0
    with pytest.raises(CalibrationError, match='baseline of 12 m is implausibly long'):
        StereoCameraModel.from_projection_matrices(640, 480, left, centimetres)
    # A vertical offset up to 1 % of the baseline is rounding (1.2 mm on 0.12 m): accepted.
    rounding = list(left)
    rounding[3], rounding[7] = -500.0 * 0.12, -500.0 * 0.0012
    assert StereoCameraModel.from_projection_matrices(640, 480, left, rounding).baseline == \
        pytest.approx(0.12)


def test_a_vertical_offset_just_past_1_percent_of_the_baseline_is_refused() -> None:
    # 2.4 mm on 0.12 m (2 %) puts rows 2.4 px apart at 0.5 m (fy 500): no rounding.
    left = [500.0, 0, 320, 0, 0, 500.0, 240, 0, 0, 0, 1, 0]
    tilted = list(left)
    tilted[3], tilted[7] = -500.0 * 0.12, -500.0 * 0.0024
    with pytest.raises(CalibrationError, match=r'offset vertically \(P\[7\] gives 0.0024 m'):
        StereoCameraModel.from_projection_matrices(640, 480, left, tilted)


@pytest.mark.parametrize('field, line', [
    ('fx', 'fx 500 -> 510 px'), ('fy', 'fy 502 -> 512 px'),
    ('cx_left', 'cx_left 320.5 -> 330.5 px'), ('cx_right', 'cx_right 310.5 -> 320.5 px'),
    ('cy', 'cy 240.5 -> 250.5 px'),
    ('baseline', 'baseline 0.12 -> 0.13 m')])
def test_a_calibration_change_names_every_field_that_changed(field: str, line: str) -> None:
    step = 0.01 if field == 'baseline' else 10.0
    changed = replace(FULL, **{field: getattr(FULL, field) + step})
    assert calibration_change(FULL, changed) == (
        f'camera calibration changed: {line}; depths follow the new calibration')
    assert calibration_change(FULL, FULL) is None
