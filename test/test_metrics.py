"""Metrics against hand-computed cases, including the D1 5 % clause and KITTI filling."""

from types import SimpleNamespace

import numpy as np
import pytest

from stereo_depth_ros.errors import ImageFormatError
from stereo_depth_ros.evaluation.metrics import (DISPARITY_BANDS, bad_n, band_label,
                                                 band_metrics, d1, density, epe,
                                                 estimated_bad_n,
                                                 evaluate_pair, fill_invalid_kitti,
                                                 mean_metrics, pooled_visibility,
                                                 visibility_counts)


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
    # 5 % of the ground truth, not of the estimate: 3.2 px is 5.08 % of 63 but 4.83 % of 66.2.
    assert d1(np.array([[66.2]]), np.array([[63.0]])) == 1.0
    assert d1(np.array([[59.8]]), np.array([[63.0]])) == 1.0


def test_unknown_ground_truth_is_ignored():
    gt = np.array([[np.nan, -1.0, 0.0, np.inf, -np.inf, 5.0]])
    pred = np.array([[50.0, 50.0, 50.0, 50.0, 50.0, 6.0]])
    assert epe(pred, gt) == pytest.approx(1.0)
    assert bad_n(pred, gt, 3.0) == 0.0 and d1(pred, gt) == 0.0


def test_fill_invalid_takes_smaller_neighbour_and_extrapolates():
    pred = np.array([[np.nan, 5.0, np.nan, np.nan, 9.0, np.nan],
                     [np.nan] * 6], dtype=np.float32)
    filled = fill_invalid_kitti(pred)
    np.testing.assert_array_equal(filled[0], [5.0, 5.0, 5.0, 5.0, 9.0, 9.0])
    # an empty last row takes the column's last estimate (the devkit's column pass)
    np.testing.assert_array_equal(filled[1], filled[0])


def test_fill_invalid_extends_first_and_last_rows_per_column():
    nan = np.nan
    pred = np.array([[nan, nan, nan, nan],
                     [nan, 4.0, nan, 8.0],
                     [nan, nan, nan, nan],
                     [2.0, nan, 6.0, nan],
                     [nan, nan, nan, nan],
                     [nan, nan, nan, nan]], dtype=np.float32)
    filled = fill_invalid_kitti(pred)
    row_1 = [4.0, 4.0, 4.0, 8.0]   # row pass: extrapolate left, min of 4 and 8 inside
    row_3 = [2.0, 2.0, 6.0, 6.0]   # row pass: min of 2 and 6 inside, extrapolate right
    np.testing.assert_array_equal(filled[0], row_1)  # leading row: first estimate of column
    np.testing.assert_array_equal(filled[1], row_1)
    np.testing.assert_array_equal(filled[2], np.full(4, -1.0))  # between: the devkit's -1
    np.testing.assert_array_equal(filled[3], row_3)
    np.testing.assert_array_equal(filled[4], row_3)  # trailing rows: last estimate of column
    np.testing.assert_array_equal(filled[5], row_3)
    np.testing.assert_array_equal(fill_invalid_kitti(np.full((2, 3), nan)), np.full((2, 3), -1.0))


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


def test_mean_metrics_skips_pairs_without_ground_truth():
    good = evaluate_pair(np.array([[11.0, 20.0]]), np.array([[10.0, 20.0]]))
    better = evaluate_pair(np.array([[10.0, 20.0]]), np.array([[10.0, 20.0]]))
    empty = evaluate_pair(np.array([[10.0, 20.0]]), np.array([[0.0, np.nan]]))
    assert np.isnan(empty['epe']) and np.isnan(empty['density'])
    summary = mean_metrics([good, empty, better])
    assert summary['epe'] == pytest.approx(0.25)
    assert summary['bad3'] == pytest.approx(0.0) and summary['density'] == pytest.approx(1.0)
    assert summary['n_skipped'] == 1
    assert all(np.isfinite(summary[key]) for key in ('epe', 'd1', 'bad1', 'bad2', 'bad3'))
    only_empty = mean_metrics([empty])
    assert np.isnan(only_empty['epe']) and only_empty['n_skipped'] == 1
    assert mean_metrics([good])['n_skipped'] == 0


def test_near_pixels_are_counted_apart_where_the_right_camera_cannot_see():
    # 70 px everywhere but a nearer block (90 px) on columns 200-249, which hides columns
    # 180-199 of the background from the right camera; columns 0-69 fall outside its view.
    gt = np.full((4, 300), 70.0)
    gt[:, 200:250] = 90.0
    gt[:, 10] = 20.0  # below 64 px: not counted
    pred = gt.copy()
    pred[:, :70] += 10.0  # wrong outside the right view
    pred[:, 180:200] += 10.0  # wrong where occluded
    pred[:, 120:130] += 10.0  # wrong where seen
    counts = visibility_counts(pred, gt)
    unseen = 4 * (69 + 20)
    seen = 4 * 299 - unseen
    assert counts.tolist() == [4 * 10, seen, unseen, unseen]
    pooled = pooled_visibility(counts + visibility_counts(gt, gt))  # a second, perfect scene
    assert pooled['bad3_large'] == pytest.approx((40 + unseen) / (2 * 4 * 299))
    assert pooled['bad3_large_seen'] == pytest.approx(40 / (2 * seen))
    assert pooled['bad3_large_unseen'] == pytest.approx(0.5)
    assert pooled['unseen_large_share'] == pytest.approx(unseen / (4 * 299))
    assert np.isnan(pooled_visibility(np.zeros(4))['bad3_large'])


def test_estimated_bad2_scores_only_the_pixels_with_an_estimate():
    gt = np.array([[10.0, 10.0, 10.0, 10.0, np.nan]])
    pred = np.array([[10.0, 15.0, np.nan, np.nan, 3.0]])
    # Of the two ground-truth pixels with an estimate one is wrong; the filled two are not
    # counted, nor is the estimate without ground truth.
    assert estimated_bad_n(pred, gt, 2.0) == pytest.approx(0.5)
    metrics = evaluate_pair(pred, gt)
    assert metrics['estimated_bad2'] == pytest.approx(0.5)
    assert metrics['density'] == pytest.approx(0.5)
    with pytest.raises(ImageFormatError, match='shape'):
        estimated_bad_n(pred, gt[:, :3], 2.0)


def test_a_negative_estimate_is_none_for_density_and_estimated_bad_n_as_for_the_filling():
    """One rule: the filling replaces it (KITTI devkit), so it is not counted as reported."""
    gt = np.array([[5.0, 10.0, 10.0]])
    pred = np.array([[-0.5, 10.0, 10.0]])  # e.g. sgbm with a negative min_disparity
    metrics = evaluate_pair(pred, gt)
    assert metrics['density'] == pytest.approx(2 / 3) and density(pred) == pytest.approx(2 / 3)
    assert metrics['estimated_bad2'] == 0.0  # the two reported pixels are right
    assert metrics['epe'] == pytest.approx(5 / 3)  # filled with its neighbour's 10: 5 px off


def test_a_pair_without_estimates_is_not_skipped_for_its_estimated_bad2():
    nothing = evaluate_pair(np.full((1, 2), np.nan), np.array([[10.0, 20.0]]))
    assert np.isnan(nothing['estimated_bad2']) and nothing['density'] == 0.0
    summary = mean_metrics([nothing, evaluate_pair(np.array([[10.0, 25.0]]),
                                                   np.array([[10.0, 20.0]]))])
    assert summary['n_skipped'] == 0 and summary['estimated_bad2'] == pytest.approx(0.5)


def test_evaluate_pair_thresholds_are_strict_and_each_its_own():
    # errors 0.5, 1.5, 2.5, 3.5 px; 3.0 px exactly (7.5 % of 40); 5.0 px exactly (5 % of 100)
    gt = np.array([[10.0, 10.0, 10.0, 10.0, 40.0, 100.0]])
    pred = np.array([[10.5, 11.5, 12.5, 13.5, 43.0, 105.0]])
    metrics = evaluate_pair(pred, gt)
    assert metrics['epe'] == pytest.approx(16.0 / 6)
    assert metrics['bad1'] == pytest.approx(5 / 6)
    assert metrics['bad2'] == pytest.approx(4 / 6)
    assert metrics['bad3'] == pytest.approx(2 / 6)  # 3.0 px is not more than 3 px
    # D1 (KITTI devkit: err > 3 && err / gt > 0.05): neither 3.0 px nor exactly 5 % counts.
    assert metrics['d1'] == pytest.approx(1 / 6)


def test_band_edges_belong_to_the_band_above_and_bad3_is_its_own():
    gt = np.array([[31.0, 32.0, 40.0, 50.0, 64.0, 128.0]])
    pred = np.array([[31.0, 34.0, 42.5, 50.0, 64.0, 128.0]])  # errors 0, 2, 2.5, 0, 0, 0
    bands = band_metrics(pred, gt)
    assert bands['epe_0_32'] == 0.0
    assert bands['epe_32_64'] == pytest.approx(1.5)  # 32, 40 and 50 px
    assert bands['bad2_32_64'] == pytest.approx(1 / 3)  # 2.0 px is not more than 2 px
    assert bands['bad3_32_64'] == 0.0  # 2.5 px is not more than 3 px
    assert bands['epe_64_128'] == 0.0 and bands['epe_128_256'] == 0.0  # 64 and 128 px


def test_disparities_of_256_px_and_more_have_a_band_of_their_own():
    gt = np.array([[255.0, 256.0, 300.0, 900.0]])
    pred = np.array([[255.0, 250.0, 301.0, 900.0]])  # errors 0, 6, 1, 0
    bands = band_metrics(pred, gt)
    assert bands['epe_128_256'] == 0.0  # 255 px only
    assert bands['epe_256_inf'] == pytest.approx(7 / 3)
    assert bands['bad2_256_inf'] == pytest.approx(1 / 3)
    assert [band_label(band) for band in DISPARITY_BANDS][-2:] == ['128-256 px', '256+ px']
    assert np.isnan(band_metrics(pred[:, :1], gt[:, :1])['epe_256_inf'])


def test_band_bad_n_count_errors_strictly_above_their_threshold():
    gt = np.full((1, 4), 100.0)
    pred = gt + np.array([[2.0, 3.0, 3.5, 0.0]])
    bands = band_metrics(pred, gt)
    assert bands['bad2_64_128'] == pytest.approx(2 / 4)  # 3 and 3.5 px; 2.0 is not above 2
    assert bands['bad3_64_128'] == pytest.approx(1 / 4)  # 3.5 px; 3.0 is not above 3


def test_estimated_bad2_of_a_pair_uses_the_two_pixel_threshold():
    metrics = evaluate_pair(np.array([[12.5, 10.0]]), np.array([[10.0, 10.0]]))
    assert metrics['estimated_bad2'] == pytest.approx(0.5)  # 2.5 px is wrong at 2 px


def test_mean_metrics_averages_rather_than_takes_the_median():
    pairs = [evaluate_pair(np.array([[pred]]), np.array([[10.0]])) for pred in (10.0, 10.0, 13.0)]
    assert mean_metrics(pairs)['epe'] == pytest.approx(1.0)


def test_estimated_bad_n_ignores_non_positive_ground_truth_and_is_strict():
    gt = np.array([[10.0, 10.0, 0.0, -1.0]])
    pred = np.array([[10.0, 12.0, 50.0, 50.0]])  # 2.0 px exactly; no truth at the last two
    assert estimated_bad_n(pred, gt, 2.0) == 0.0


def test_fill_invalid_treats_infinite_estimates_as_missing():
    pred = np.array([[1.0, 2.0], [np.inf, -np.inf], [3.0, 4.0]], np.float32)
    filled = fill_invalid_kitti(pred)
    np.testing.assert_array_equal(filled, [[1.0, 2.0], [-1.0, -1.0], [3.0, 4.0]])
    np.testing.assert_array_equal(fill_invalid_kitti(np.full((2, 2), np.inf)),
                                  np.full((2, 2), -1.0))


def test_fill_invalid_scores_what_the_devkit_leaves_invalid_and_drops_negative_estimates():
    # The devkit's rows between estimated rows stay -1 and are scored so (the helper's
    # hand-made case: EPE 1.167 and bad-3 33.3 %, not 0.833 and 0 % with a fill of 0).
    pred = np.full((3, 4), 2.5, np.float32)
    pred[1] = np.nan
    gt = np.full((3, 4), 2.5, np.float32)
    assert epe(fill_invalid_kitti(pred), gt) == pytest.approx(3.5 / 3)
    assert bad_n(fill_invalid_kitti(pred), gt, 3.0) == pytest.approx(1 / 3)
    # A negative estimate is none (the devkit's isValid is d >= 0): filled from its row.
    row = np.array([[5.0, 5.0, -3.0, np.nan, 5.0, 5.0]], np.float32)
    np.testing.assert_array_equal(fill_invalid_kitti(row), np.full((1, 6), 5.0))


def test_visibility_counts_start_at_64_px_and_wrong_is_more_than_3_px():
    gt = np.full((2, 100), 64.0)  # columns 0-63 land left of the right view
    pred = gt.copy()
    pred[:, 80] += 3.0  # not wrong
    pred[:, 90] += 3.5  # wrong, seen
    assert visibility_counts(pred, gt).tolist() == [2, 2 * 36, 0, 2 * 64]


def test_mask_iou_and_obstacle_scores_by_hand(monkeypatch):
    from stereo_depth_ros.evaluation import obstacles
    assert obstacles.mask_iou(np.array([1, 1, 0, 0], bool),
                              np.array([0, 1, 1, 0], bool)) == pytest.approx(1 / 3)
    truth = np.array([[True, True, False, False]])
    found = iter([(truth, 10.0), (truth, 11.0), (truth, 15.0), (np.zeros_like(truth), np.nan)])

    class Pipeline:
        def __init__(self, backend, obstacle_params=None, align_rows=True):
            pass

        def process(self, left, right, camera, outputs, row_offset=None):
            mask, distance = next(found)
            return SimpleNamespace(obstacle=SimpleNamespace(
                mask=mask, distance=distance, found=bool(mask.any())))

    def scene(seed, height, width, kind):
        return SimpleNamespace(left=None, right=None, camera=None, obstacle_mask=truth,
                               obstacle_distance=10.0)

    monkeypatch.setattr(obstacles, 'StereoPipeline', Pipeline)
    monkeypatch.setattr(obstacles, 'make_scene', scene)
    result = obstacles.evaluate_obstacles(None, [0, 1, 2, 3], progress=False, align_rows=False)
    assert result['n'] == 4 and result['found_rate'] == 0.75
    assert result['iou_mean'] == pytest.approx(0.75) and result['iou_min'] == 0.0
    assert result['distance_error_median'] == pytest.approx(0.1)  # of 0, 0.1 and 0.5
    assert result['distance_error_max'] == pytest.approx(0.5)
    # Each scene's row carries its own distances and scores (NaN where nothing was found).
    pairs = result['pairs']
    assert [row['name'] for row in pairs] == ['road_0', 'road_1', 'road_2', 'road_3']
    assert [row['distance'] for row in pairs[:3]] == [10.0, 11.0, 15.0]
    assert all(row['true_distance'] == 10.0 for row in pairs)
    assert pairs[1]['distance_error'] == pytest.approx(0.1) and pairs[1]['found']
    assert np.isnan(pairs[3]['distance']) and np.isnan(pairs[3]['distance_error'])
    assert pairs[3]['iou'] == 0.0 and not pairs[3]['found']


def test_evaluate_backend_times_compute_by_the_median(monkeypatch):
    from stereo_depth_ros.data.datasets import StereoSample
    from stereo_depth_ros.evaluation import evaluate
    clock = iter([0.0, 0.001, 1.0, 1.001, 2.0, 2.010])  # 1, 1 and 10 ms
    monkeypatch.setattr(evaluate, 'time', SimpleNamespace(perf_counter=lambda: next(clock)))
    backend = SimpleNamespace(name='fake', compute=lambda left, right: np.full((1, 2), 10.0))
    samples = [StereoSample(f's{i}', None, None, np.array([[10.0, 12.0]])) for i in range(3)]
    summary = evaluate.evaluate_backend(backend, samples, progress=False, align_rows=False)
    assert summary['ms_per_pair'] == pytest.approx(1.0)
    assert summary['n'] == 3 and summary['epe'] == pytest.approx(1.0)


def test_evaluate_backend_pools_the_pairs_pixels_as_kitti_does():
    from stereo_depth_ros.data.datasets import StereoSample
    from stereo_depth_ros.evaluation import evaluate
    backend = SimpleNamespace(name='fake', compute=lambda left, right: np.full((1, 4), 10.0))
    small = StereoSample('small', None, None, np.array([[20.0, np.nan, np.nan, np.nan]]))
    large = StereoSample('large', None, None, np.full((1, 4), 10.5))
    unknown = StereoSample('none', None, None, np.full((1, 4), np.nan))
    summary = evaluate.evaluate_backend(backend, [small, large, unknown], progress=False,
                                        align_rows=False)
    # The means weigh the 1-pixel pair as much as the 4-pixel one; pooling counts pixels,
    # and a pair without ground truth adds none.
    assert summary['bad2'] == pytest.approx(0.5) and summary['epe'] == pytest.approx(5.25)
    pooled = summary['pooled']
    assert pooled['pixels'] == 5
    assert pooled['bad2'] == pytest.approx(1 / 5) and pooled['d1'] == pytest.approx(1 / 5)
    assert pooled['epe'] == pytest.approx((10 + 4 * 0.5) / 5)


def test_zero_is_an_estimate_and_infinity_is_not():
    assert density(np.array([[0.0, 1.0]])) == 1.0
    assert density(np.array([[np.inf, 1.0]])) == 0.5
    assert evaluate_pair(np.array([[0.0, 10.0]]), np.array([[1.0, 10.0]]))['epe'] == \
        pytest.approx(0.5)
