"""Tests of the real benchmark: disparity-band metrics, the shipped suite and the command."""

import json
from pathlib import Path

import numpy as np
import pytest

from stereo_depth_ros.cli import main
from stereo_depth_ros.data.datasets import REAL_SUITE, load_dataset, real_suite_dataset
from stereo_depth_ros.errors import DatasetError
from stereo_depth_ros.evaluation.metrics import (DISPARITY_BANDS, band_key, band_metrics,
                                                 evaluate_pair, mean_metrics)
from stereo_depth_ros.evaluation.evaluate import pooled_metrics
from stereo_depth_ros.evaluation.real_bench import format_tables
from stereo_depth_ros.resources import sample_data_dir


def test_band_metrics_score_each_true_disparity_band() -> None:
    gt = np.array([[10.0, 20.0, 40.0, 50.0, 100.0, 150.0, np.nan]], np.float32)
    pred = np.array([[10.5, 23.0, 40.0, 60.0, 100.0, 100.0, 5.0]], np.float32)
    bands = band_metrics(pred, gt)
    assert bands['epe_0_32'] == pytest.approx(1.75) and bands['bad2_0_32'] == 0.5
    assert bands['epe_32_64'] == pytest.approx(5.0) and bands['bad3_32_64'] == 0.5
    assert bands['epe_64_128'] == 0.0 and bands['bad2_64_128'] == 0.0
    assert bands['epe_128_256'] == 50.0 and bands['bad2_128_256'] == 1.0
    only_near = band_metrics(np.ones((1, 2), np.float32), np.array([[1.0, 2.0]], np.float32))
    assert np.isnan(only_near['epe_64_128'])
    # A band a scene does not reach is not a skipped pair in the means.
    rows = [evaluate_pair(pred, gt, bands=True),
            evaluate_pair(np.ones((1, 2), np.float32), np.array([[1.0, 2.0]]), bands=True)]
    summary = mean_metrics(rows)
    assert summary['n_skipped'] == 0 and summary['epe_128_256'] == 50.0


def test_the_shipped_real_suite_loads_with_its_disparity_ranges() -> None:
    samples = list(real_suite_dataset())
    assert [sample.name for sample in samples] == [scene[0] for scene in REAL_SUITE]
    ranges = {sample.name: np.nanmax(sample.disparity) for sample in samples}
    assert 50 < ranges['cones'] < 64 and 50 < ranges['motorcycle'] < 64
    assert ranges['aloe'] > 200  # the full-range scene
    aloe = samples[-1]
    assert aloe.left.shape == (1110, 1282, 3) and aloe.disparity.shape == (1110, 1282)
    assert len(load_dataset('real', sample_data_dir())) == 4


def test_real_suite_names_a_missing_scene(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match='real scene cones is incomplete'):
        real_suite_dataset(tmp_path)


def _no_nan(constant: str) -> None:
    raise AssertionError(f'{constant} in JSON output')


def test_eval_without_usable_ground_truth_is_bad_input(tmp_path: Path, capsys) -> None:
    import cv2
    scene = tmp_path / 'data' / 'blank'
    scene.mkdir(parents=True)
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(scene / 'left.png'), image)
    cv2.imwrite(str(scene / 'right.png'), image)
    cv2.imwrite(str(scene / 'disp.pfm'), np.full((40, 60), np.nan, np.float32))
    code = main(['eval', '--dataset', 'generic', '--root', str(tmp_path / 'data'), '--json'])
    assert code == 2
    assert 'no pair' in capsys.readouterr().err


def test_real_bench_prints_tables_and_draws_pictures(tmp_path: Path, capsys) -> None:
    code = main(['real-bench', '--backends', 'sgbm', '--figures', str(tmp_path), '--json'])
    assert code == 0
    out = capsys.readouterr().out
    strict = json.loads(out.strip().splitlines()[-1], parse_constant=_no_nan)
    summary = strict['sgbm']
    assert [row['name'] for row in summary['pairs']] == ['cones', 'teddy', 'motorcycle', 'aloe']
    # sgbm's default range is 128 px: aloe's nearest parts (128-211 px) fail, the rest not.
    assert summary['bad2_128_256'] > 0.5 and summary['bad2_0_32'] < 0.4
    assert 0.1 < summary['bad2'] < 0.3
    assert 'by true disparity' in out and 'sgbm        all' in out
    # Pooled: each scene weighs by its ground-truth pixels (aloe, full size, the most).
    pooled = summary['pooled']
    assert pooled['bad2'] < summary['bad2'] and 'sgbm        pooled' in out
    assert min(row['bad2'] for row in summary['pairs']) < pooled['bad2'] < summary['bad2']
    assert 'ground-truth pixels: cones 163,321 (8 %), teddy 165,344 (8 %), motorcycle ' \
        '343,274 (17 %), aloe 1,373,890 (67 %)' in out
    # What was scored, and which columns score the filled output.
    assert out.startswith('sgbm (disparity 0..') and 'filled as the KITTI devkit' in out
    assert summary['density'] < 0.9 and summary['estimated_bad2'] < summary['bad2']
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        'aloe.png', 'cones.png', 'motorcycle.png', 'teddy.png']


def test_pooled_metrics_weigh_each_scene_by_its_ground_truth_pixels() -> None:
    rows = [{'name': 'a', 'epe': 1.0, 'bad1': 0.5, 'bad2': 0.4, 'bad3': 0.2, 'd1': 0.1,
             'density': 0.5, 'estimated_bad2': 0.2},
            {'name': 'b', 'epe': 3.0, 'bad1': 0.1, 'bad2': 0.1, 'bad3': 0.0, 'd1': 0.0,
             'density': 1.0, 'estimated_bad2': float('nan')}]
    pooled = pooled_metrics(rows, [100, 300])
    assert pooled['pixels'] == 400
    assert pooled['epe'] == pytest.approx((100 * 1 + 300 * 3) / 400)
    assert pooled['bad2'] == pytest.approx((40 + 30) / 400)
    assert pooled['density'] == pytest.approx((50 + 300) / 400)
    # Over the reported pixels (50 of a's): b has none scored, so only a's count.
    assert pooled['estimated_bad2'] == pytest.approx(0.2)


def test_real_bench_tables_keep_a_gap_after_long_backend_names() -> None:
    row = {'epe': 1.0, 'bad1': 0.3, 'bad2': 0.2, 'bad3': 0.1, 'd1': 0.1, 'density': 1.0,
           'estimated_bad2': 0.15}
    bands = {band_key(metric, band): 0.5 for metric in ('epe', 'bad2', 'bad3')
             for band in DISPARITY_BANDS}
    summary = {**row, **bands, 'ms_per_pair': 50.0, 'pairs': [{**row, 'name': 'cones'}]}
    lines = format_tables({'sgbm': summary, 'a_long_backend_name': summary}).splitlines()
    named = [line.split()[:2] for line in lines if line.startswith('a_long_backend_name')]
    assert named == [['a_long_backend_name', 'cones'], ['a_long_backend_name', 'all'],
                     ['a_long_backend_name', '0.50']]
    # The columns line up: every row of the scene table is as long as its header.
    assert len({len(line) for line in lines[:5]}) == 1
    # The last column before ms: bad-2 of the pixels with an estimate.
    assert lines[0].split()[-3:] == ['b-2', '%', 'ms'] and 'est b-2 %' in lines[0]
    assert lines[1].split()[-1] == '15.0'


def test_real_bench_refuses_options_for_a_backend_it_does_not_run(capsys) -> None:
    """--backend-option applies to --backend: left out of --backends, it would be ignored."""
    code = main(['real-bench', '--backends', 'costnet', '--backend-option',
                 'refine_radius=0', '--figures', ''])
    assert code == 2
    err = capsys.readouterr().err
    assert '--backend-option apply to --backend (costnet_fast), which is not in --backends' in err
    assert len(err.strip().splitlines()) == 1


def test_real_bench_tables_put_each_metric_under_its_label() -> None:
    pair = {'epe': 2.0, 'bad1': 0.4, 'bad2': 0.3, 'bad3': 0.2, 'd1': 0.1, 'density': 0.9,
            'estimated_bad2': 0.05, 'name': 'cones'}
    mean = {'epe': 1.0, 'bad1': 0.35, 'bad2': 0.25, 'bad3': 0.15, 'd1': 0.05, 'density': 0.8,
            'estimated_bad2': 0.04}
    bands = {band_key('epe', band): 0.5 for band in DISPARITY_BANDS}
    bands.update({band_key('bad2', band): 0.25 for band in DISPARITY_BANDS})
    bands.update({band_key('bad3', band): 0.125 for band in DISPARITY_BANDS})
    lines = format_tables({'sgbm': {**mean, **bands, 'ms_per_pair': 50.0,
                                    'pairs': [pair]}}).splitlines()
    assert lines[1].split() == ['sgbm', 'cones', '2.000', '40.0', '30.0', '20.0', '10.0',
                                '90.0', '5.0']
    assert lines[2].split() == ['sgbm', 'all', '1.000', '35.0', '25.0', '15.0', '5.0', '80.0',
                                '4.0', '50']
    band_row = next(line for line in lines[3:] if line.startswith('sgbm'))
    assert '0.50 / 25.0 / 12.5' in band_row  # EPE / bad-2 / bad-3
    header = lines[lines.index(band_row) - 1].split()
    assert header == ['backend', '0-32', 'px', '32-64', 'px', '64-128', 'px', '128-256', 'px',
                      '256+', 'px']
    assert band_row.split().count('/') == 2 * len(DISPARITY_BANDS)


def test_pooled_estimated_bad2_weighs_by_estimated_pixels():
    row = {'epe': 1.0, 'bad1': 0.1, 'bad2': 0.1, 'bad3': 0.1, 'd1': 0.1}
    rows = [{**row, 'name': 'a', 'density': 0.5, 'estimated_bad2': 0.2},
            {**row, 'name': 'b', 'density': 1.0, 'estimated_bad2': 0.4}]
    assert pooled_metrics(rows, [100, 100])['estimated_bad2'] == \
        pytest.approx((50 * 0.2 + 100 * 0.4) / 150)


def test_real_bench_refuses_a_root_that_is_not_a_folder(tmp_path: Path, capsys) -> None:
    code = main(['real-bench', '--backends', 'sgbm', '--root', str(tmp_path / 'nowhere')])
    out, err = capsys.readouterr()
    assert code == 2 and out == ''  # refused before anything is printed
    assert err.strip().splitlines() == [
        f'stereo-depth real-bench: error: dataset root {tmp_path / "nowhere"} is not a folder']


def test_the_bench_pictures_use_the_truth_s_scale_and_the_filled_estimate() -> None:
    from stereo_depth_ros.data.datasets import StereoSample
    from stereo_depth_ros.evaluation.real_bench import disparity_panels
    from stereo_depth_ros.visualize import colorize_disparity
    truth = np.array([[40.0] * 7 + [np.nan]] * 2, np.float32)
    # exact, 2.5 px off, no estimate (filled with 40 as KITTI does), exact, 1, 20, 40 px off
    estimate = np.array([[40.0, 42.5, np.nan, 40.0, 39.0, 20.0, 80.0, 40.0]] * 2, np.float32)
    sample = StereoSample('scene', np.zeros((2, 8, 3), np.uint8), np.zeros((2, 8, 3), np.uint8),
                          truth)
    colours, errors = (panel[-2:] for panel in disparity_panels(sample, estimate, 'fake'))
    assert np.array_equal(colours, colorize_disparity(estimate, 40.0))  # the truth's scale
    grey, red, black = [60, 60, 60], [255, 60, 30], [0, 0, 0]
    assert errors[0].tolist() == [grey, red, grey, grey, grey, red, red, black]
