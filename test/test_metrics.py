"""Metrics against hand-computed cases, including the D1 5 % clause and KITTI filling."""

import numpy as np
import pytest

from stereo_depth_ros.evaluation.metrics import (bad_n, d1, density, epe, evaluate_pair,
                                                 fill_invalid_kitti)


def test_epe_and_bad_n_hand_computed():
    gt = np.array([[10.0, 20.0, 30.0, 0.0]])
    pred = np.array([[11.0, 22.5, 30.0, 99.0]])
    assert epe(pred, gt) == pytest.approx((1.0 + 2.5 + 0.0) / 3)
    assert bad_n(pred, gt, 1.0) == pytest.approx(1 / 3)
    assert bad_n(pred, gt, 0.5) == pytest.approx(2 / 3)


def test_d1_needs_both_3px_and_5_percent():
    gt = np.array([[100.0, 100.0, 20.0, 40.0]])
    # errors: 4 px (4 % of 100: not D1), 6 px (6 %: D1), 3.5 px (17.5 %: D1), 2.9 px (no)
    pred = np.array([[104.0, 106.0, 23.5, 42.9]])
    assert d1(pred, gt) == pytest.approx(2 / 4)


def test_unknown_ground_truth_is_ignored():
    gt = np.array([[np.nan, -1.0, 0.0, 5.0]])
    pred = np.array([[50.0, 50.0, 50.0, 6.0]])
    assert epe(pred, gt) == pytest.approx(1.0)


def test_fill_invalid_takes_smaller_neighbour_and_extrapolates():
    pred = np.array([[np.nan, 5.0, np.nan, np.nan, 9.0, np.nan],
                     [np.nan] * 6], dtype=np.float32)
    filled = fill_invalid_kitti(pred)
    np.testing.assert_array_equal(filled[0], [5.0, 5.0, 5.0, 5.0, 9.0, 9.0])
    np.testing.assert_array_equal(filled[1], np.zeros(6))


def test_evaluate_pair_reports_density_of_unfilled_prediction():
    gt = np.full((2, 4), 10.0)
    pred = np.full((2, 4), 10.0)
    pred[0, :2] = np.nan
    metrics = evaluate_pair(pred, gt)
    assert metrics['density'] == pytest.approx(6 / 8)
    assert metrics['epe'] == pytest.approx(0.0)
    assert density(pred) == pytest.approx(6 / 8)


def test_unfilled_prediction_is_refused():
    with pytest.raises(ValueError, match='fill'):
        epe(np.array([[np.nan]]), np.array([[3.0]]))
