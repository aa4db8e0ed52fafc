"""Disparity <-> depth and back-projection against hand-computed values."""

import numpy as np
import pytest

from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.errors import CalibrationError
from stereo_depth_ros.geometry import depth_to_points, disparity_to_depth, DISPARITY_STEP

CAMERA = StereoCameraModel.from_focal_baseline(700.0, 0.5, 64, 48, cx=32.0, cy=24.0)


def test_depth_known_values_and_rep118_nan():
    disparity = np.array([[70.0, 35.0, 0.0, np.nan, -3.0]], dtype=np.float32)
    depth = disparity_to_depth(disparity, CAMERA.focal_baseline)
    np.testing.assert_allclose(depth[0, :2], [5.0, 10.0], rtol=1e-6)
    assert np.isnan(depth[0, 2:]).all()
    assert depth.dtype == np.float32


def test_disparity_offset_is_subtracted():
    depth = disparity_to_depth(np.array([[80.0]]), 350.0, disparity_offset=10.0)
    assert depth[0, 0] == pytest.approx(5.0)
    assert np.isnan(disparity_to_depth(np.array([[9.0]]), 350.0, disparity_offset=10.0)[0, 0])


def test_disparities_below_the_step_are_unknown_not_thousands_of_km_away():
    # A learned backend's 7e-5 px would put a sky pixel 5,000 km away; below 1/16 px (the
    # DisparityImage's delta_d) a disparity cannot be told from zero.
    depth = disparity_to_depth(np.array([[7e-5, 0.06, DISPARITY_STEP, 10.06]]), 350.0, 10.0)
    assert np.isnan(depth).all()  # 10.06 - 10 = 0.06 < 1/16 too
    depth = disparity_to_depth(np.array([[7e-5, 0.06, DISPARITY_STEP]]), 350.0)
    assert np.isnan(depth[0, :2]).all() and depth[0, 2] == pytest.approx(350.0 * 16)


def test_round_trip_and_bad_focal_baseline():
    depth = np.array([[1.0, 2.5, 40.0, np.nan]], dtype=np.float32)
    disparity = 350.0 / depth + 3.0  # fx*B = 350, offset 3 px
    np.testing.assert_allclose(disparity_to_depth(disparity, 350.0, 3.0), depth, rtol=1e-5)
    with pytest.raises(CalibrationError):
        disparity_to_depth(depth, -350.0)


def test_points_known_pixel():
    depth = np.full((48, 64), np.nan, dtype=np.float32)
    depth[34, 42] = 7.0
    points = depth_to_points(depth, CAMERA)
    assert points.shape == (48, 64, 3)
    np.testing.assert_allclose(points[34, 42], [(42 - 32) / 700 * 7, (34 - 24) / 700 * 7, 7.0],
                               rtol=1e-6)
    assert np.isnan(points[0, 0]).all()


def test_mask_bounding_box():
    from stereo_depth_ros.images import mask_bounding_box
    mask = np.zeros((6, 8), dtype=bool)
    assert mask_bounding_box(mask) is None
    mask[2, 3] = mask[4, 6] = True
    assert mask_bounding_box(mask) == (3, 2, 4, 3)


def test_points_use_the_left_principal_point_and_each_focal_length():
    camera = StereoCameraModel(64, 48, 700.0, 710.0, 30.0, 26.0, 20.0, 0.5)
    depth = np.full((48, 64), np.nan, dtype=np.float32)
    depth[34, 42] = 7.0
    np.testing.assert_allclose(depth_to_points(depth, camera)[34, 42],
                               [(42 - 30) / 700 * 7, (34 - 20) / 710 * 7, 7.0], rtol=1e-6)


def test_points_of_a_window_keep_the_full_image_pixel_coordinates():
    depth = np.full((3, 4), np.nan, dtype=np.float32)
    depth[0, 0] = 2.0  # full-image pixel (u, v) = (10, 5)
    points = depth_to_points(depth, CAMERA, roi=(10, 5, 4, 3))
    assert points.shape == (3, 4, 3)
    np.testing.assert_allclose(points[0, 0], [(10 - 32) / 700 * 2, (5 - 24) / 700 * 2, 2.0],
                               rtol=1e-6)


def test_infinite_disparity_and_impossible_scales_give_no_depth():
    assert np.isnan(disparity_to_depth(np.array([[np.inf]]), 350.0)).all()  # not 0 m
    for focal_baseline in (0.0, np.inf):
        with pytest.raises(CalibrationError):
            disparity_to_depth(np.array([[10.0]]), focal_baseline)
    # fx * B just below the float32 limit overflows at the smallest step: NaN, never +inf.
    assert np.isnan(disparity_to_depth(np.array([[DISPARITY_STEP]]), 3e38)).all()
