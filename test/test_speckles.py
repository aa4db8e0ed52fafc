"""Tests of the speckle filter of the learned backends (option ``speckle_size``)."""

import numpy as np
import pytest

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.networks.speckles import drop_speckles

from learned_estimates import costnet_fast_estimates


def _wall(value: float = 15.0) -> np.ndarray:
    return np.full((40, 60), value, np.float32)


def test_an_island_of_at_most_the_size_is_unknown_and_nothing_else_changes() -> None:
    disparity = _wall()
    disparity[10:15, 10:15] = 40.0  # 25 px, far off the wall around it
    disparity[30, 50] = np.nan
    for size, removed in ((24, 0), (25, 25)):
        out = drop_speckles(disparity.copy(), size, 1.0)
        assert np.isnan(out).sum() == 1 + removed
        known = np.isfinite(out)
        np.testing.assert_array_equal(out[known], disparity[known])  # the rest bit for bit


def test_neighbours_within_the_step_are_one_region_and_diagonals_are_not() -> None:
    disparity = _wall()
    disparity[20:22, 30:32] = 15.9  # within 1 px of the wall: part of it
    disparity[5, 5] = disparity[6, 6] = 30.0  # touching only at a corner: two regions of 1
    out = drop_speckles(disparity.copy(), 1, 1.0)
    assert np.isfinite(out[20:22, 30:32]).all()
    assert np.isnan(out[5, 5]) and np.isnan(out[6, 6]) and np.isnan(out).sum() == 2
    ramp = np.tile(np.arange(60, dtype=np.float32) * 0.9, (40, 1))  # a slanted surface
    assert np.isfinite(drop_speckles(ramp, 100, 1.0)).all()
    assert np.isnan(drop_speckles(np.tile(np.arange(60, dtype=np.float32) * 2, (40, 1)),
                                  100, 1.0)).all()  # steps of 2 px: every column alone


def test_disparities_beyond_the_fixed_point_range_do_not_wrap() -> None:
    disparity = _wall(3000.0)  # above 2047 px: counted as 2047, one region, kept
    disparity[0, 0] = 1.0
    out = drop_speckles(disparity.copy(), 5, 1.0)
    assert np.isnan(out[0, 0]) and np.isfinite(out).sum() == out.size - 1
    assert out[20, 20] == 3000.0


def test_the_backend_leaves_its_speckles_unknown() -> None:
    found = costnet_fast_estimates(speckle_size=800)
    dense, filtered, kept = found.dense, found.filtered, found.kept
    assert 'speckles of 800 px unknown' in found.description
    np.testing.assert_array_equal(filtered[kept], dense[kept])
    # It removes a few % of this scene's pixels (6 %), most of them wrong.
    wrong = np.abs(dense - found.truth) > 2
    assert 0.01 < 1 - kept.mean() < 0.15 and wrong[~kept].mean() > 0.6 > wrong.mean()
    np.testing.assert_array_equal(~kept, np.isnan(drop_speckles(dense.copy(), 800, 1.0)))
    with pytest.raises(BackendError, match='speckle_size'):
        create_backend('costnet_fast', device='cpu', speckle_size=-1)


def test_steps_are_compared_after_rounding_to_a_sixteenth_of_a_pixel() -> None:
    """1.04 px rounds to 17/16 px, more than a step of 1 px; 1.03 px to 16/16, within it."""
    for value, removed in ((16.04, 25), (16.03, 0)):
        disparity = _wall()
        disparity[10:15, 10:15] = value
        assert np.isnan(drop_speckles(disparity, 25, 1.0)).sum() == removed


def test_disparities_beyond_the_fixed_point_range_are_one_surface() -> None:
    disparity = _wall(3000.0)
    disparity[10:15, 10:15] = 2500.0  # both above 2047 px: no step between them
    assert np.isfinite(drop_speckles(disparity.copy(), 25, 1.0)).all()
    assert np.isfinite(drop_speckles(_wall(4095.0), 25, 1.0)).all()
