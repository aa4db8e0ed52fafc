"""`stereo-depth` command line round trips and one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from stereo_depth_ros import __version__
from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.cli import main
from stereo_depth_ros.data.datasets import StereoSample
from stereo_depth_ros.data.synthetic import EVAL_SEED_OFFSET, make_scene
from stereo_depth_ros.commands.evaluate import beyond_reach_warning
from stereo_depth_ros.evaluation.evaluate import beyond_reach, BeyondReach
from stereo_depth_ros.resources import sample_data_dir
from stereo_depth_ros.visualize import colorize_disparity, robust_max

from fake_backends import ConstantBackend


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp('pair')
    scene = make_scene(EVAL_SEED_OFFSET + 5, height=160, width=320, kind='road')
    cv2.imwrite(str(folder / 'left.png'), scene.left[:, :, ::-1])
    cv2.imwrite(str(folder / 'right.png'), scene.right[:, :, ::-1])
    return folder, scene


def test_infer_writes_outputs(pair, tmp_path, capsys):
    folder, scene = pair
    code = main(['infer', '--backend', 'sgbm', '--left', str(folder / 'left.png'),
                 '--right', str(folder / 'right.png'), '--fx', str(scene.camera.fx),
                 '--baseline', str(scene.camera.baseline), '--out-dir', str(tmp_path)])
    assert code == 0
    disparity = np.load(tmp_path / 'disparity.npy')
    depth = np.load(tmp_path / 'depth.npy')
    assert disparity.shape == depth.shape == (160, 320) and disparity.dtype == np.float32
    valid = np.isfinite(disparity) & (disparity > 0)
    np.testing.assert_allclose(depth[valid], scene.camera.focal_baseline / disparity[valid],
                               rtol=1e-4)
    for name in ('disparity.png', 'obstacle.png'):
        assert cv2.imread(str(tmp_path / name)).shape == (160, 320, 3)
    out = capsys.readouterr().out
    assert 'nearest obstacle' in out
    # The picture is coloured over this pair's disparities, not over sgbm's 0-127 px.
    top = robust_max(disparity)
    assert top < 100 and f'disparity.png (colours 0-{top:.0f} px)' in out
    picture = cv2.imread(str(tmp_path / 'disparity.png'))[:, :, ::-1]
    assert np.array_equal(picture, colorize_disparity(disparity, max_disparity=top))


def test_infer_depth_takes_the_principal_point_offset(pair, tmp_path):
    # Middlebury's calib.txt: depth = fx * B / (d + doffs), doffs = cx_right - cx_left.
    folder, scene = pair
    doffs = 40.0
    assert main(['infer', '--backend', 'sgbm', '--left', str(folder / 'left.png'),
                 '--right', str(folder / 'right.png'), '--fx', str(scene.camera.fx),
                 '--baseline', str(scene.camera.baseline), '--doffs', str(doffs),
                 '--out-dir', str(tmp_path)]) == 0
    disparity = np.load(tmp_path / 'disparity.npy')
    depth = np.load(tmp_path / 'depth.npy')
    valid = np.isfinite(depth) & np.isfinite(disparity)
    assert valid.mean() > 0.5
    np.testing.assert_allclose(depth[valid],
                               scene.camera.focal_baseline / (disparity[valid] + doffs),
                               rtol=1e-4)


def test_infer_without_calibration_writes_disparity_only(pair, tmp_path):
    folder, _ = pair
    assert main(['infer', '--left', str(folder / 'left.png'), '--right',
                 str(folder / 'right.png'), '--out-dir', str(tmp_path)]) == 0
    assert (tmp_path / 'disparity.png').exists() and not (tmp_path / 'depth.npy').exists()


def test_eval_json_on_middlebury(capsys):
    code = main(['eval', '--backend', 'sgbm', '--dataset', 'middlebury2003', '--root',
                 str(sample_data_dir() / 'middlebury2003'), '--json'])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['n'] == 2
    for key in ('epe', 'd1', 'bad1', 'bad2', 'bad3', 'density', 'ms_per_pair'):
        assert key in summary
    # sgbm on cones + teddy (measured EPE 2.35 px, bad-2 23.7 %, bad-1 29 %):
    assert 2.0 < summary['epe'] < 2.8 and 0.2 < summary['bad2'] < 0.3
    assert summary['bad3'] < summary['bad2'] < summary['bad1']
    assert 0.5 < summary['density'] <= 1.0


def test_eval_names_ground_truth_beyond_the_backend_s_range(capsys):
    # The synthetic test scenes reach 64 px; sgbm searches 0-15 px with a range of 16.
    argv = ['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--root', 'eval:2']
    assert main([*argv, '--backend-option', 'disparity_range=16', '--json']) == 0
    captured = capsys.readouterr()
    far = json.loads(captured.out.strip().splitlines()[-1])['beyond_reach']
    assert [pair['name'] for pair in far] == ['layered_1100000', 'layered_1100001']
    assert all(pair['reach'] == 15 and 0.01 <= pair['share'] <= 1 for pair in far)
    lines = [line for line in captured.err.splitlines() if 'warning' in line]
    assert len(lines) == 1 and lines[0].startswith('warning: on 2 of 2 pairs, 1 % or more of '
                                                   'the ground truth lies beyond the largest '
                                                   'disparity sgbm gives (most: ')
    assert lines[0].endswith('above 15 px); those pixels count as wrong: widen the range '
                             'with a larger --backend-option disparity_range')
    assert main(argv) == 0  # 0-127 px: nothing beyond it
    captured = capsys.readouterr()
    assert 'warning' not in captured.err
    # Two pairs: the means over them, then the figures over their pixels pooled.
    mean, pooled = captured.out.strip().splitlines()[-2:]
    assert mean.startswith('sgbm on synthetic (2 pairs): EPE ')
    assert pooled.startswith("  pooled over the pairs' 262,144 ground-truth pixels (as KITTI's "
                             "devkit scores a set): EPE ")
    assert main([*argv, '--json']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['pooled']['pixels'] == 262144 and summary['beyond_reach'] == []
    assert set(summary['pooled']) == {'pixels', 'epe', 'bad1', 'bad2', 'bad3', 'd1', 'density',
                                      'estimated_bad2'}


def _sample(name, truth):
    shape = truth.shape + (3,)
    return StereoSample(name, np.zeros(shape, np.uint8), np.zeros(shape, np.uint8), truth)


def test_beyond_reach_counts_ground_truth_above_the_range_at_each_width():
    truth = np.full((4, 100), np.nan, np.float32)
    truth[0, :10] = 60.0  # at the reach: not beyond it
    truth[1, 0] = 61.0
    truth[2, :5] = 0.0  # no ground truth
    backend = ConstantBackend(0.0, 60.0)
    found = beyond_reach(backend, _sample('wide', truth))
    assert found == BeyondReach('wide', pytest.approx(1 / 11), 60.0, 100)
    truth[1, 0] = 60.0
    assert beyond_reach(backend, _sample('wide', truth)) is None
    # 50 px wide: no disparity beyond 49 px, whatever the backend's range.
    narrow = beyond_reach(backend, _sample('narrow', truth[:, :50].copy()))
    assert narrow == BeyondReach('narrow', 1.0, 49.0, 50)
    assert beyond_reach(backend, _sample('blank', np.full((4, 100), np.nan, np.float32))) is None
    line = beyond_reach_warning(backend, [narrow], 3)
    assert line.startswith('warning: on 1 of 3 pairs, 1 % or more of the ground truth lies '
                           'beyond the largest disparity constant gives (most: narrow, 100.0 % '
                           'above 49 px)')
    assert line.endswith('the pair is only 50 px wide, and on it constant searches no '
                         'farther than 49 px (no match lies beyond the width)')
    # sgbm searches in steps of 16: 95 px on a 100-px-wide pair, which the line must not
    # take for its width.
    sgbm = create_backend('sgbm')
    short = beyond_reach(sgbm, _sample('short', np.full((4, 100), 99.0, np.float32)))
    assert short is not None and (short.reach, short.width) == (95.0, 100)
    assert beyond_reach_warning(sgbm, [short], 1).endswith(
        'the pair is only 100 px wide, and on it sgbm searches no farther than 95 px (no match '
        'lies beyond the width)')
    learned = beyond_reach_warning(backend, [found], 3)
    assert learned.endswith('widen the range with --backend-option near_passes (each pass '
                            'extends it by 1/near_scale), a smaller scale, or max_disparity 0 '
                            '(the whole range)')


@pytest.mark.parametrize('argv, message', [
    (['infer', '--left', 'missing.png', '--right', 'missing.png', '--out-dir', 'x'],
     'no such image'),
    (['eval', '--backend', 'nope', '--dataset', 'synthetic', '--root', 'eval:1'],
     'unknown backend'),
    (['eval', '--dataset', 'middlebury2003', '--root', '/nonexistent'], 'not a folder'),
    # Caught by argument parsing: one line too, not the usage block.
    (['infer', '--precision', 'fp64', '--left', 'l', '--right', 'r', '--out-dir', 'x'],
     "invalid choice: 'fp64'"),
    (['infer'], 'the following arguments are required: --left'),
    (['no-such-command'], "invalid choice: 'no-such-command'"),
    # The obstacle settings of eval --obstacle, checked as the node checks obstacle.KEY.
    (['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--synthetic-kind', 'road',
      '--root', '1050000', '--obstacle', '--obstacle-option', 'nope=1'],
     "unknown parameter(s) ['obstacle.nope']"),
    (['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--synthetic-kind', 'road',
      '--root', '1050000', '--obstacle', '--obstacle-option', 'distance_band_fraction'],
     "--obstacle-option needs KEY=VALUE, got 'distance_band_fraction'"),
    (['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--synthetic-kind', 'road',
      '--root', '1050000', '--obstacle', '--obstacle-option', 'distance_band_fraction=-1'],
     'obstacle.distance_band_fraction'),
    (['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--root', '1050000',
      '--obstacle-option', 'distance_band_fraction=0.2'], '--obstacle-option needs --obstacle'),
])
def test_bad_input_exits_with_one_line(argv, message, tmp_path):
    result = subprocess.run([sys.executable, '-m', 'stereo_depth_ros.cli', *argv],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert 'Traceback' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _infer_process(left, right, out_dir):
    """Run ``stereo-depth infer`` as its own process; return the finished process."""
    return subprocess.run([sys.executable, '-m', 'stereo_depth_ros.cli', 'infer', '--left',
                           str(left), '--right', str(right), '--out-dir', str(out_dir)],
                          capture_output=True, text=True)


def test_too_small_images_are_named_by_width_and_height(pair, tmp_path):
    folder, scene = pair
    cv2.imwrite(str(tmp_path / 'narrow.png'), scene.left[:30, :6])
    result = _infer_process(tmp_path / 'narrow.png', tmp_path / 'narrow.png', tmp_path / 'o')
    assert result.returncode == 2 and not (tmp_path / 'o').exists()
    assert 'left image is too small: 6x30 (width x height); both sides must be at least 8 px' \
        in result.stderr


def test_version_and_a_closed_pipe(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'stereo_depth_ros.cli', '--version'],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f'stereo-depth {__version__}'
    # As `stereo-depth backends --options | head -0`: the reader is gone before anything is
    # written. No error line; the shell's status for SIGPIPE, not bad input's 2.
    # Buffered output (no PYTHONUNBUFFERED), which reaches the pipe only when flushed.
    environment = {key: value for key, value in os.environ.items()
                   if key != 'PYTHONUNBUFFERED'}
    process = subprocess.Popen([sys.executable, '-m', 'stereo_depth_ros.cli', 'backends',
                                '--options'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment)
    process.stdout.close()
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b''
    process.stderr.close()


def test_eval_obstacle_options_change_the_obstacle_search(capsys):
    # One validation road scene; nothing within 1 m to find.
    argv = ['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--synthetic-kind', 'road',
            '--root', '1050000', '--obstacle', '--json']
    assert main(argv) == 0
    found = json.loads(capsys.readouterr().out.strip().splitlines()[-1])['found_rate']
    assert main([*argv, '--obstacle-option', 'max_range=1.0']) == 0
    assert (found, json.loads(capsys.readouterr().out.strip().splitlines()[-1])[
        'found_rate']) == (1.0, 0.0)


def test_eval_obstacle_per_pair_lists_each_scene(capsys):
    # --per-pair was ignored with --obstacle: only the summary line came out.
    argv = ['eval', '--backend', 'sgbm', '--dataset', 'synthetic', '--synthetic-kind', 'road',
            '--root', '1050000', '--obstacle', '--per-pair']
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith('name=road_1050000 iou=')
    assert 'true_distance=' in lines[0] and 'distance_error=' in lines[0]
    assert main([*argv, '--json']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row['name'] for row in summary['pairs']] == ['road_1050000']
    assert summary['pairs'][0]['iou'] == summary['iou_mean']


def test_size_mismatch_is_reported(pair, tmp_path):
    folder, scene = pair
    cv2.imwrite(str(tmp_path / 'small.png'), scene.right[:100, :200])
    result = _infer_process(folder / 'left.png', tmp_path / 'small.png', tmp_path / 'o')
    assert result.returncode == 2 and '320x160' in result.stderr and '200x100' in result.stderr


def test_demo_writes_pictures_and_summary(tmp_path, capsys):
    code = main(['demo', '--out-dir', str(tmp_path), '--frames', '3', '--road-scenes', '1',
                 '--no-compare'])
    assert code == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['bag_demo']['pairs'] == 3
    assert summary['road_scenes'][0]['obstacle_found']
    assert {row['scene'] for row in summary['middlebury2003']} == {'cones', 'teddy'}
    for name in ('road_1100000.png', 'middlebury_cones.png', 'drive/preview.gif',
                 'drive/topics.png'):
        assert (tmp_path / name).stat().st_size > 1000
    assert str(tmp_path.resolve()) in capsys.readouterr().out


def test_eval_obstacle_on_road_scenes(capsys):
    code = main(['eval', '--backend', 'sgbm', '--backend-option', 'disparity_range=64',
                 '--dataset', 'synthetic', '--synthetic-kind', 'road', '--root', 'eval:3',
                 '--obstacle', '--json'])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['n'] == 3 and summary['found_rate'] == 1.0
    assert summary['iou_mean'] > 0.5 and summary['distance_error_median'] < 0.05
    assert main(['eval', '--dataset', 'synthetic', '--root', 'eval:1', '--obstacle']) == 2
    assert '--synthetic-kind road' in capsys.readouterr().err


def test_backends_lists_every_option_with_limits_and_help_once(capsys):
    assert main(['backends']) == 0
    short = capsys.readouterr().out
    assert 'max_match_cost=0.0' in short and 'warped' not in short
    assert main(['backends', '--options']) == 0
    out = capsys.readouterr().out
    assert out.startswith(short)
    assert '  max_match_cost=0.0 (0 .. 4)\n' in out and 'right view warped' in out
    assert '  disparity_range=128 (16 .. 1024; in steps of 16)\n' in out
    # DispNet-QR's options extend the learned ones: only its own are listed again.
    qr = out[out.index('options of dispnet_qr'):]
    assert qr.startswith('options of dispnet_qr, and those of dispnet, ')
    assert '  decode=' in qr and 'max_match_cost' not in qr
    assert out.count('  max_match_cost=0.0') == 1


def test_sigterm_while_the_commands_are_imported_is_one_line(monkeypatch, capsys):
    from stereo_depth_ros import cli

    def terminated():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
        pytest.fail('SIGTERM was not handled during start-up')

    monkeypatch.setattr(cli, 'build_parser', terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(['backends']) == 130
    assert capsys.readouterr().err == 'stereo-depth: interrupted while starting\n'
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_while_the_commands_are_imported_is_one_line(monkeypatch, capsys):
    from stereo_depth_ros import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'build_parser', interrupted)
    try:
        code = cli.main(['backends'])
    except KeyboardInterrupt:
        pytest.fail('the interrupt escaped main()')
    assert code == 130
    assert capsys.readouterr().err == 'stereo-depth: interrupted while starting\n'


def test_a_second_signal_aborts_a_deferred_block_and_the_handlers_come_back(capsys):
    from stereo_depth_ros.interrupts import Abort, deferred_interrupts, signals_undeferred
    handlers = (signal.SIGINT, signal.SIGTERM)
    before = [signal.getsignal(sig) for sig in handlers]
    with pytest.raises(Abort, match='SIGINT'):
        with deferred_interrupts('stopping after this pair') as stop:
            assert not signals_undeferred()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the first only sets the request
            assert stop and stop.signal_name == 'SIGTERM'
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the second interrupts this at once
            pytest.fail('a second signal did not abort the block')
    assert capsys.readouterr().err == '\nstopping after this pair\n'
    assert signals_undeferred()
    assert [signal.getsignal(sig) for sig in handlers] == before


def test_sizes_below_16_px_on_either_side_are_refused():
    from stereo_depth_ros.commands.common import parse_size
    assert parse_size('16X32') == (16, 32)  # height first
    for text in ('15x64', '64x15'):
        with pytest.raises(ValueError, match=f'at least 16x16, got {text!r}'):
            parse_size(text)


def test_strict_json_turns_nan_to_null_in_tuples_too():
    from stereo_depth_ros.commands.common import strict_json
    value = {'pair': (1.5, float('nan')), 'rows': [[float('inf')]]}
    assert json.loads(strict_json(value)) == {'pair': [1.5, None], 'rows': [[None]]}


def test_max_megapixels_zero_is_no_limit_and_a_negative_one_is_refused():
    import argparse
    from stereo_depth_ros.commands.common import add_size_limit_argument
    parser = argparse.ArgumentParser()
    add_size_limit_argument(parser)
    assert parser.parse_args(['--max-megapixels', '0']).max_megapixels == 0
    with pytest.raises(SystemExit):
        parser.parse_args(['--max-megapixels', '-1'])


def _kitti_drive(tmp_path, stamps, right_lag_ns=0):
    """A two-frame KITTI raw drive of 96x64 images; the right stamps lag by right_lag_ns."""
    from stereo_depth_ros.camera import StereoCameraModel
    from stereo_depth_ros.kitti import write_raw_drive
    scene = make_scene(0, 64, 96, 'layered', max_disparity=8)
    return write_raw_drive(tmp_path / 'kitti', [scene.left] * 2, [scene.right] * 2,
                           StereoCameraModel(96, 64, 80.0, 80.0, 47.5, 47.5, 31.5, 0.3),
                           stamps, right_stamps_ns=[s + right_lag_ns for s in stamps])


def test_kitti2bag_keep_camera_stamps_keeps_the_right_camera_s_stamps(tmp_path, capsys):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores
    from stereo_depth_ros.msgs.types import stamp_to_ns
    stamps = [1_000_000_000, 1_100_000_000]
    drive = _kitti_drive(tmp_path, stamps, right_lag_ns=2_000_000)
    typestore = get_typestore(Stores.ROS2_JAZZY)
    for flags, lag in (([], 0), (['--keep-camera-stamps'], 2_000_000)):
        out = tmp_path / f'bag{lag}'
        assert main(['kitti2bag', str(drive), str(out), *flags]) == 0
        with Reader(out) as reader:
            rights = [stamp_to_ns(typestore.deserialize_cdr(data, c.msgtype).header.stamp)
                      for c, _, data in reader.messages()
                      if c.topic == '/stereo/right/image_rect']
        assert rights == [s + lag for s in stamps]
    capsys.readouterr()


def test_kitti2bag_writes_mcap_unless_told_otherwise(tmp_path, capsys):
    drive = _kitti_drive(tmp_path, [1_000_000_000, 1_100_000_000])
    assert main(['kitti2bag', str(drive), str(tmp_path / 'bag')]) == 0
    assert '(mcap, rosbag2 metadata version' in capsys.readouterr().out
    assert len(list((tmp_path / 'bag').glob('*.mcap'))) == 1


def test_process_bag_takes_points_organized_from_the_params_file(tmp_path, capsys):
    from rosbags.rosbag2 import Reader
    from bad_input_helpers import write_stereo_bag
    bag = write_stereo_bag(tmp_path / 'bag', frames=2)
    params = tmp_path / 'depth.yaml'
    params.write_text('/**/stereo_depth_node:\n  ros__parameters:\n'
                      '    publish_points: true\n    points_organized: true\n')
    out = tmp_path / 'out'
    assert main(['process-bag', str(bag), str(out), '--params-file', str(params),
                 '--backend', 'sgbm', '--backend-option', 'disparity_range=16']) == 0
    capsys.readouterr()
    from rosbags.typesys import get_typestore, Stores
    typestore = get_typestore(Stores.ROS2_JAZZY)
    with Reader(out) as reader:
        clouds = [typestore.deserialize_cdr(data, connection.msgtype)
                  for connection, _, data in reader.messages()
                  if connection.topic == '/stereo/points2']
    assert len(clouds) == 2  # organised as the 96x64 images, as the node publishes them
    assert all((cloud.height, cloud.width) == (64, 96) for cloud in clouds)


def test_eval_of_a_middlebury_scene_made_by_warping_scores_sgbm_well(tmp_path, capsys):
    # A scene as MiddEval3 ships it (im0/im1.png, disp0GT.pfm bottom row first, inf unknown,
    # calib.txt, mask0nocc.png), 203x130 px (no multiple of 16), grey as ETH3D stores it: the
    # right view is the left one warped by a known disparity, 6-20 px down the rows.
    rng = np.random.default_rng(3)
    left = cv2.GaussianBlur(rng.integers(0, 256, (130, 203), np.uint8), (3, 3), 0)
    truth = np.repeat(np.linspace(6, 20, 130, dtype=np.float32)[:, None], 203, 1)
    columns = np.arange(203, dtype=np.float32)[None, :]
    rows = np.repeat(np.arange(130, dtype=np.float32)[:, None], 203, 1)
    right = cv2.remap(left, columns + truth, rows, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    truth[columns.repeat(130, 0) < truth] = np.inf  # no match in the right view
    scene = tmp_path / 'Warped'
    scene.mkdir()
    cv2.imwrite(str(scene / 'im0.png'), left)
    cv2.imwrite(str(scene / 'im1.png'), right)
    (scene / 'disp0GT.pfm').write_bytes(b'Pf\n203 130\n-1\n' +
                                        np.flipud(truth).astype('<f4').tobytes())
    (scene / 'calib.txt').write_text('cam0=[500 0 101; 0 500 65; 0 0 1]\ndoffs=0\n'
                                     'baseline=100\nwidth=203\nheight=130\nndisp=32\n')
    cv2.imwrite(str(scene / 'mask0nocc.png'), np.full((130, 203), 255, np.uint8))
    for root in (tmp_path, scene):  # the folder above the scenes, or the scene itself
        assert main(['eval', '--backend', 'sgbm', '--backend-option', 'disparity_range=32',
                     '--dataset', 'middlebury2014', '--root', str(root), '--json',
                     '--per-pair']) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary['n'] == 1 and summary['n_skipped'] == 0
        assert summary['epe'] < 0.5 and summary['bad2'] < 0.02 and summary['density'] > 0.8
        assert set(summary['pairs'][0]) == {'name', 'epe', 'd1', 'bad1', 'bad2', 'bad3',
                                            'density', 'estimated_bad2'}
        assert summary['nonoccluded'] is False
    mask = np.full((130, 203), 255, np.uint8)
    mask[:, :101] = 128  # half of it occluded: left out of the scores
    cv2.imwrite(str(scene / 'mask0nocc.png'), mask)
    assert main(['eval', '--backend', 'sgbm', '--backend-option', 'disparity_range=32',
                 '--dataset', 'middlebury2014', '--root', str(scene), '--nonoccluded']) == 0
    assert capsys.readouterr().out.strip().startswith(
        'sgbm on middlebury2014, non-occluded pixels (1 pair): EPE ')


@pytest.mark.parametrize('limit', ['min_depth', 'max_depth'])
def test_infer_without_calibration_says_depth_limits_are_ignored(pair, tmp_path, capsys,
                                                                 limit):
    # Either limit of a parameter file needs --fx and --baseline; without them infer says
    # so once, and prints no obstacle line (there is no depth to find one in).
    import yaml
    folder, scene = pair
    params = tmp_path / 'p.yaml'
    params.write_text(yaml.safe_dump({'/**/stereo_depth_node': {'ros__parameters': {
        limit: 2.0 if limit == 'min_depth' else 50.0}}}))
    argv = ['infer', '--backend', 'sgbm', '--left', str(folder / 'left.png'), '--right',
            str(folder / 'right.png'), '--params-file', str(params)]
    assert main(argv + ['--out-dir', str(tmp_path / 'bare')]) == 0
    captured = capsys.readouterr()
    warned = [line for line in captured.err.splitlines() if 'need --fx and --baseline' in line]
    assert len(warned) == 1 and 'min_depth/max_depth' in warned[0]
    assert 'nearest obstacle' not in captured.out
    assert sorted(path.name for path in (tmp_path / 'bare').iterdir()) == [
        'disparity.npy', 'disparity.png']
    assert main(argv + ['--fx', str(scene.camera.fx), '--baseline', str(scene.camera.baseline),
                        '--out-dir', str(tmp_path / 'calibrated')]) == 0
    captured = capsys.readouterr()
    assert 'need --fx and --baseline' not in captured.err
    assert 'nearest obstacle' in captured.out


def test_infer_boxes_the_nearest_obstacle_where_its_depth_is(pair, tmp_path, capsys):
    # The printed box (x, y, width, height in pixels) lies on the obstacle: most of the
    # depth.npy pixels inside it are at the printed distance.
    import re
    folder, scene = pair
    assert main(['infer', '--backend', 'sgbm', '--left', str(folder / 'left.png'), '--right',
                 str(folder / 'right.png'), '--fx', str(scene.camera.fx), '--baseline',
                 str(scene.camera.baseline), '--out-dir', str(tmp_path)]) == 0
    line = re.search(r'nearest obstacle: ([0-9.]+) m, box x (\d+) y (\d+) width (\d+) '
                     r'height (\d+) px', capsys.readouterr().out)
    assert line is not None
    distance, x, y, width, height = float(line[1]), *map(int, line.groups()[1:])
    depth = np.load(tmp_path / 'depth.npy')
    assert x + width <= depth.shape[1] and y + height <= depth.shape[0]
    near = np.abs(depth - distance) < 0.15 * distance
    assert near[y:y + height, x:x + width].mean() > 0.5


def test_infer_box_is_the_true_obstacle_s_box(pair, tmp_path, capsys):
    # Where the scene's nearest obstacle is (a post 6.0 m away, taller than wide; sgbm misses
    # it on this small pair): its true mask's bounding box and the printed one overlap mostly,
    # and would not with width and height exchanged, or x and y.
    import re
    folder, scene = pair
    assert main(['infer', '--left', str(folder / 'left.png'), '--right',
                 str(folder / 'right.png'), '--fx', str(scene.camera.fx), '--baseline',
                 str(scene.camera.baseline), '--out-dir', str(tmp_path)]) == 0
    line = re.search(r'nearest obstacle: ([0-9.]+) m, box x (\d+) y (\d+) width (\d+) '
                     r'height (\d+) px', capsys.readouterr().out)
    assert line is not None
    distance, (x, y, width, height) = float(line[1]), map(int, line.groups()[1:])
    assert abs(distance - scene.obstacle_distance) < 0.1 * scene.obstacle_distance
    rows, columns = np.nonzero(scene.obstacle_mask)
    truth = (columns.min(), rows.min(), columns.max() + 1 - columns.min(),
             rows.max() + 1 - rows.min())

    def overlap(a, b):
        across = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        down = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return across * down / (a[2] * a[3] + b[2] * b[3] - across * down)

    assert overlap((x, y, width, height), truth) > 0.4
    assert overlap((x, y, height, width), truth) < 0.3
    assert overlap((y, x, width, height), truth) < 0.3
