"""Bad input as a careless or hostile user gives it: exit 2, one line, nothing left behind.

Every input is generated here. Each case checks the exit code, that stderr is exactly one
error line (no traceback), that no output is left behind, and, where input is skipped
rather than refused, what is kept.
"""

import json
import math
import re

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open
from rosbags.rosbag2 import Reader
import yaml

from bad_input_helpers import (assert_one_line_error, leftovers, run_cli, textured_pair,
                               write_stereo_bag)
from stereo_depth_ros.bags import BagInput, process_bag
from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.errors import BackendError, ImageFormatError
from stereo_depth_ros.geometry import disparity_to_depth
from stereo_depth_ros.kitti import write_raw_drive
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.plausibility import check_image_size, likely_swapped, RowOffset
from stereo_depth_ros.resources import default_weights_path
from stereo_depth_ros.weights import read_metadata

SGBM16 = ['--backend', 'sgbm', '--backend-option', 'disparity_range=16']


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """A good 160x96 pair, a 12x10 pair and a swapped pair, as PNG files."""
    folder = tmp_path_factory.mktemp('images')
    left, right = textured_pair(0, 160, 96, shift=8)
    for name, image in (('left', left), ('right', right)):
        cv2.imwrite(str(folder / f'{name}.png'), image[:, :, ::-1])
        cv2.imwrite(str(folder / f'tiny_{name}.png'), image[:10, :12, ::-1])
    return folder


def infer_args(folder, out, *extra, left='left.png', right='right.png'):
    return ['infer', '--left', folder / left, '--right', folder / right, '--out-dir', out,
            *SGBM16, *extra]


# --------------------------------------------------------------------------- infer


@pytest.mark.parametrize('width', [8, 12, 16])
def test_sgbm_on_images_8_to_16_px_wide(tmp_path, width):
    left, right = textured_pair(1, width, 20, shift=2)
    disparity = create_backend('sgbm').compute(left, right)  # default range 128
    assert disparity.shape == (20, width) and disparity.dtype == np.float32


def test_infer_on_a_tiny_pair_writes_its_disparity(images, tmp_path, capsys):
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', left='tiny_left.png',
                                        right='tiny_right.png'), capsys)
    assert code == 0, lines
    assert np.load(tmp_path / 'o' / 'disparity.npy').shape == (10, 12)


def test_infer_names_both_files_of_a_pair_of_two_sizes(images, tmp_path, capsys):
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', right='tiny_right.png'), capsys)
    assert_one_line_error(code, lines, f'left {images / "left.png"} is 160x96 but right '
                          f'{images / "tiny_right.png"} is 12x10: left and right images '
                          'must be one size')
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('option, words', [
    ('disparity_range=[', ('disparity_range=[', 'not valid YAML')),
    ('block_size={a', ('block_size={a', 'not valid YAML')),
])
def test_invalid_yaml_backend_option(images, tmp_path, capsys, option, words):
    code, _, lines = run_cli(['infer', '--left', images / 'left.png', '--right',
                              images / 'right.png', '--out-dir', tmp_path / 'o',
                              '--backend-option', option], capsys)
    assert_one_line_error(code, lines, *words)
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('key, flag', [('weights', '--weights'), ('device', '--device'),
                                       ('name', '--backend')])
def test_a_backend_option_with_a_flag_of_its_own_is_one_line(images, tmp_path, capsys, key,
                                                             flag):
    """`--backend-option weights=FILE` crashed with a TypeError (create_backend's argument)."""
    option = ['--backend-option', f'{key}=x']
    for argv in (infer_args(images, tmp_path / 'o', *option),
                 ['eval', *SGBM16, '--dataset', 'synthetic', '--root', 'eval:1', *option],
                 ['real-bench', *SGBM16, '--backends', 'sgbm', '--figures', '', *option]):
        code, _, lines = run_cli(argv, capsys)
        assert_one_line_error(code, lines, f'--backend-option {key}=', 'not a backend option',
                              flag)
    assert not (tmp_path / 'o').exists()


def test_out_dir_naming_a_file_is_refused_before_computing(images, tmp_path, capsys,
                                                           monkeypatch):
    (tmp_path / 'file').write_text('keep me')
    monkeypatch.setattr(StereoPipeline, 'process', lambda *a, **k: pytest.fail('computed'))
    code, _, lines = run_cli(infer_args(images, tmp_path / 'file'), capsys)
    assert_one_line_error(code, lines, 'file', 'not a folder')
    assert (tmp_path / 'file').read_text() == 'keep me'


def test_out_of_memory_is_one_line(images, tmp_path, capsys, monkeypatch):
    def explode(self, left, right):
        raise MemoryError('Unable to allocate 7.4 GiB')
    monkeypatch.setattr(type(create_backend('sgbm')), '_compute', explode)
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o'), capsys)
    assert_one_line_error(code, lines, 'out of memory', '7.4 GiB')
    assert not (tmp_path / 'o').exists()


def test_large_image_is_refused_before_running(tmp_path, capsys, monkeypatch):
    big = np.zeros((3000, 4000, 3), np.uint8)
    for name in ('left', 'right'):
        cv2.imwrite(str(tmp_path / f'{name}.png'), big)
    monkeypatch.setattr(StereoPipeline, 'process', lambda *a, **k: pytest.fail('computed'))
    code, _, lines = run_cli(infer_args(tmp_path, tmp_path / 'o'), capsys)
    assert_one_line_error(code, lines, '4000x3000', '12.0 MP', '--max-megapixels 12')
    assert not (tmp_path / 'o').exists()
    # A wrong backend is named first, whatever the images hold.
    args = infer_args(tmp_path, tmp_path / 'o')
    args[args.index('--backend') + 1] = 'nosuch'
    code, _, lines = run_cli(args, capsys)
    assert_one_line_error(code, lines, "unknown backend 'nosuch'")
    # The limit of a parameter file holds where the flag is not given, as in the node.
    params = tmp_path / 'small.yaml'
    params.write_text('/**/stereo_depth_node:\n  ros__parameters:\n    max_megapixels: 8.0\n')
    code, _, lines = run_cli(infer_args(tmp_path, tmp_path / 'o', '--params-file', params),
                             capsys)
    assert_one_line_error(code, lines, '4000x3000', '12.0 MP', 'the limit of 8 MP')
    params.write_text('/**/stereo_depth_node:\n  ros__parameters:\n    max_megapixels: 0.0\n')
    code, _, lines = run_cli(infer_args(tmp_path, tmp_path / 'o', '--params-file', params,
                                        '--max-megapixels', '10'), capsys)
    assert_one_line_error(code, lines, '12.0 MP', 'the limit of 10 MP')  # the flag wins


@pytest.mark.parametrize('width, height, limit, words', [
    (512, 256, 0.1, ('(0.13 MP), above the limit of 0.1 MP', 'max_megapixels 0.2')),
    (2592, 1944, 5.0, ('(5.04 MP), above the limit of 5 MP', 'max_megapixels 5.1')),
    (4000, 3000, 4.0, ('(12.0 MP), above the limit of 4 MP', 'max_megapixels 12 ')),
])
def test_the_size_limit_message_shows_the_size_above_the_limit(width, height, limit, words):
    # One decimal alone printed a 512x256 pair over a 0.1 MP limit as "0.1 MP, above the
    # limit of 0.1 MP" (a node walkthrough with max_megapixels: 0.1).
    with pytest.raises(ImageFormatError) as refused:
        check_image_size(width, height, limit, 'max_megapixels')
    for word in words:
        assert word in str(refused.value)
    check_image_size(width, height, width * height / 1e6, 'max_megapixels')  # at it: taken


@pytest.mark.parametrize('fx, baseline, words', [
    ('1e20', '1e20', ('baseline of 1e+20 m is implausibly long', 'millimetres')),
    ('500', '120', ('baseline of 120 m is implausibly long',)),
    ('458', '0.00024', ('baseline of 0.24 mm is implausibly short', 'P[3] = -fx * B')),
    ('1e30', '0.5', ('implausibly large',)),
    ('500', 'nan', ('--baseline must be a positive number of m, got nan',)),
    ('500', 'inf', ('--baseline must be a positive number of m, got inf',)),
    ('500', '-0.3', ('--baseline must be a positive number of m, got -0.3',)),
    ('0', '0.3', ('--fx must be a positive number of px, got 0',)),
])
def test_impossible_calibration(images, tmp_path, capsys, fx, baseline, words):
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', '--fx', fx,
                                        f'--baseline={baseline}'), capsys)
    assert_one_line_error(code, lines, *words)
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('flags, words', [
    (('--doffs', '20'), ('--doffs applies with --fx and --baseline',)),
    (('--fx', '451', '--baseline', '0.075', '--doffs', 'nan'),
     ('--doffs must be a finite number of px, got nan',)),
])
def test_impossible_principal_point_offset(images, tmp_path, capsys, flags, words):
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', *flags), capsys)
    assert_one_line_error(code, lines, *words)
    assert not (tmp_path / 'o').exists()


def test_a_baseline_in_centimetres_is_warned_about(images, tmp_path, capsys):
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', '--fx', '451',
                                        '--baseline', '7.5'), capsys)
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith('warning: --baseline 7.5 m is unusually wide')
    assert '(7.5 cm would be 0.075)' in lines[0]
    # At 7.5 m the nearest depth the backend measures lies beyond the obstacle search's 40 m.
    assert lines[1].startswith('warning: the obstacle search sees no depth with this camera')
    code, _, lines = run_cli(infer_args(images, tmp_path / 'p', '--fx', '451',
                                        '--baseline', '0.075'), capsys)
    assert code == 0 and lines == []


def test_depth_never_overflows_to_infinity():
    depth = disparity_to_depth(np.array([1e-40, 1e-44, 2.0, np.nan], np.float32), 1e8)
    assert not np.isinf(depth).any()
    assert np.isnan(depth[:2]).all() and depth[2] == pytest.approx(5e7)


def test_swapped_pair_is_warned_about(images, tmp_path, capsys):
    code, out, lines = run_cli(infer_args(images, tmp_path / 'o', left='right.png',
                                          right='left.png'), capsys)
    # A swapped pair's obstacles would be phantoms: its output is unknown, with one line.
    assert code == 0 and len(lines) == 1
    assert lines[0].startswith('warning: left and right look swapped: the pair check found')
    assert 'unknown for this pair' in lines[0]
    assert np.isnan(np.load(tmp_path / 'o' / 'disparity.npy')).all()
    # The backend did not run: no time for it, and no colour scale of a picture without one.
    assert 'not run on a pair that looks swapped' in out and ' ms ' not in out
    assert 'disparity.png (all unknown)' in out
    code, out, lines = run_cli(infer_args(images, tmp_path / 'p'), capsys)
    assert code == 0 and lines == []
    assert ' ms (one first call' in out and 'disparity.png (colours 0-' in out
    # check_views false keeps what the backend made of it, with the warning.
    params = tmp_path / 'keep.yaml'
    params.write_text('/**/stereo_depth_node:\n  ros__parameters:\n    check_views: false\n')
    code, _, lines = run_cli(infer_args(images, tmp_path / 'q', '--params-file', params,
                                        left='right.png', right='left.png'), capsys)
    assert code == 0 and len(lines) == 1 and 'look swapped' in lines[0]
    assert 'obstacles would be phantoms - exchange the inputs' in lines[0]
    assert np.isfinite(np.load(tmp_path / 'q' / 'disparity.npy')).any()


def test_a_principal_point_offset_that_explains_negative_disparities_is_no_swap(
        images, tmp_path, capsys):
    # The swapped pair's matches lie 6 px left: with cx_right - cx_left = 10 px (--doffs)
    # that is a surface at f B / 4 px, as the calibration says, not left and right exchanged.
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', '--fx', '451', '--baseline',
                                        '0.075', '--doffs', '10', left='right.png',
                                        right='left.png'), capsys)
    assert code == 0 and not [line for line in lines if 'look swapped' in line], lines
    code, _, lines = run_cli(infer_args(images, tmp_path / 'p', '--fx', '451', '--baseline',
                                        '0.075', left='right.png', right='left.png'), capsys)
    assert code == 0 and [line for line in lines if 'look swapped' in line]


@pytest.mark.parametrize('align', [True, False])
def test_rows_that_are_off_are_warned_about(tmp_path, capsys, align):
    left, right = textured_pair(3, 320, 160)
    cv2.imwrite(str(tmp_path / 'left.png'), left)
    cv2.imwrite(str(tmp_path / 'right.png'), np.roll(right, -3, axis=0))  # 3 px higher
    params = tmp_path / 'depth.yaml'
    params.write_text('/**/stereo_depth_node:\n  ros__parameters:\n'
                      f'    align_rows: {str(align).lower()}\n')
    code, _, lines = run_cli(infer_args(tmp_path, tmp_path / 'o', '--params-file', params),
                             capsys)
    assert lines[0].startswith(f'warning: {tmp_path / "left.png"} / {tmp_path / "right.png"}: '
                               'rows of the right image are 3.0 px off')
    assert 'shows the scene higher' in lines[0]
    assert ("the right view is resampled onto the left's rows" in lines[0]) == align
    if align:  # put back on the left's rows, the views match again
        assert code == 0 and len(lines) == 1
    else:  # random texture 3 px off matches nowhere along the rows: no estimate is confirmed
        assert code == 0 and len(lines) == 2 and 'views do not match' in lines[1]


def test_rows_a_little_off_are_aligned_and_said_so(tmp_path, capsys):
    from stereo_depth_ros.training.row_offset_sweep import moved_down
    left, right = textured_pair(3, 320, 160)
    cv2.imwrite(str(tmp_path / 'left.png'), left)
    cv2.imwrite(str(tmp_path / 'right.png'), moved_down(right, 0.6))  # under the warning's 1 px
    code, _, lines = run_cli(infer_args(tmp_path, tmp_path / 'o'), capsys)
    assert code == 0 and len(lines) == 1
    assert lines[0].startswith("rows aligned: the right image's rows were 0.")
    # A shift: as far off on average over the image as at its corners, less the fit's error.
    assert re.search(r" px off the left's at a typical matched corner and at least 0\.[1-6]\d px "
                     r"on average over the image; it was resampled onto the left's rows before "
                     r'matching \(align_rows\)$', lines[0]), lines[0]


def test_a_swap_is_told_by_the_rows_a_large_principal_point_offset_cannot_explain():
    # cx_left - cx_right = -30 px (Middlebury's doffs 30): a shift between -30 and +30 px
    # fits either order. Rows at 20 px say nothing; rows at 40 px say which order it is. The
    # swapped pair's rows at -40 px were outvoted by those at -20 px, and it passed.
    rng = np.random.default_rng(7)
    texture = rng.integers(0, 256, (60, 260), dtype=np.uint8)
    left = texture[:, :200].copy()
    right = np.empty_like(left)
    for row in range(60):
        shift = 20 if row < 40 else 40
        right[row] = texture[row, shift:shift + 200]
    assert not likely_swapped(left, right, disparity_offset=-30.0)
    assert likely_swapped(right, left, disparity_offset=-30.0)


def _rows_at(shifts, seed=11):
    """Return a 16-row pair whose row ``i`` matches at disparity ``shifts[i]`` px."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (len(shifts), 300), dtype=np.uint8)
    left = texture[:, 50:250].copy()
    right = np.stack([texture[row, 50 + shift:250 + shift]
                      for row, shift in enumerate(shifts)])
    return left, right


def test_a_swap_needs_two_thirds_of_the_telling_rows():
    # 11 of 16 rows below 0 px is two thirds (10.7) and more: swapped; 10 of 16 is not.
    assert likely_swapped(*_rows_at([-5] * 11 + [5] * 5))
    assert not likely_swapped(*_rows_at([-5] * 10 + [5] * 6))


def test_rows_below_the_principal_points_offset_count_as_swapped():
    # cx_left - cx_right = 10 px: the disparity of a point at infinity. Rows matching at 4 px
    # lie below it: the wrong order, though their shift is positive.
    left, right = _rows_at([4] * 16)
    assert not likely_swapped(left, right)
    assert likely_swapped(left, right, disparity_offset=10.0)


def test_the_swap_search_reaches_past_a_large_principal_points_offset():
    # cx_left - cx_right = -100 px (Middlebury's doffs 100): a swapped pair's rows match at
    # -130 px, beyond the 64 px searched without an offset.
    rng = np.random.default_rng(12)
    texture = rng.integers(0, 256, (16, 700), dtype=np.uint8)
    left = texture[:, 200:600].copy()
    right = texture[:, 70:470].copy()  # every row at -130 px
    assert likely_swapped(left, right, disparity_offset=-100.0)


def test_corners_split_evenly_do_not_overrule_the_row_check():
    # As many matched corners at +8 px as at -8 px say nothing about the order.
    from stereo_depth_ros.plausibility import _matches_say_ordered
    left = np.column_stack([np.arange(40, 80, dtype=np.float32), np.full(40, 30.0, np.float32)])
    right = left.copy()
    right[:20, 0] -= 8.0  # disparity +8 px
    right[20:, 0] += 8.0  # disparity -8 px
    assert not _matches_say_ordered(left, right, (100, 200))
    right[20, 0] -= 16.0  # 21 of 40 at +8 px: ordered
    assert _matches_say_ordered(left, right, (100, 200))


def test_no_size_limit_is_zero_or_none():
    # 0 is "no limit", as the option's message says (and None too).
    for limit in (0, 0.0, None):
        check_image_size(4000, 3000, limit)
    with pytest.raises(ImageFormatError):
        check_image_size(4000, 3000, 1e-6)


def test_rows_off_by_the_limit_exactly_are_too_large():
    # From ROW_OFFSET_LIMIT (1 px) at a typical feature on, or twice it at the worst.
    assert RowOffset(1.0, 1.0, True, 50).too_large
    assert RowOffset(0.5, 2.0, True, 50).too_large
    assert not RowOffset(0.99, 1.99, True, 50).too_large


def test_swap_detection_on_both_orders():
    for seed in range(4):
        left, right = textured_pair(seed, 200, 60, shift=5 + seed)
        assert not likely_swapped(left, right)
        assert likely_swapped(right, left)


# --------------------------------------------------------------------------- weights, PFM


def test_integer_weights_are_refused(tmp_path, images, capsys):
    shipped = default_weights_path('dispnet')
    with safe_open(str(shipped), framework='pt') as handle:
        metadata = handle.metadata()
    tensors = {key: (value * 100).to(torch.int32) if value.is_floating_point() else value
               for key, value in load_file(str(shipped)).items()}
    save_file(tensors, str(tmp_path / 'int.safetensors'), metadata=metadata)
    code, _, lines = run_cli(['infer', '--backend', 'dispnet', '--weights',
                              tmp_path / 'int.safetensors', '--left', images / 'left.png',
                              '--right', images / 'right.png', '--out-dir', tmp_path / 'o'],
                             capsys)
    assert_one_line_error(code, lines, 'int.safetensors', 'int32', 'not as floating point')
    assert not (tmp_path / 'o').exists()


def _generic_dataset(root, pfm_bytes):
    scene = root / 'scene'
    scene.mkdir(parents=True)
    left, right = textured_pair(0, 64, 32)
    cv2.imwrite(str(scene / 'left.png'), left)
    cv2.imwrite(str(scene / 'right.png'), right)
    (scene / 'disp.pfm').write_bytes(pfm_bytes)


@pytest.mark.parametrize('cut', [0, 7, 0.5])
def test_a_cut_short_weights_file_says_what_to_do(tmp_path, images, capsys, cut):
    """Empty, cut in the header or in the tensors: the line said only what broke."""
    data = default_weights_path('dispnet').read_bytes()
    weights = tmp_path / 'cut.safetensors'
    weights.write_bytes(data[:int(cut * len(data)) if isinstance(cut, float) else cut])
    code, _, lines = run_cli(['infer', '--backend', 'dispnet', '--weights', weights, '--left',
                              images / 'left.png', '--right', images / 'right.png',
                              '--out-dir', tmp_path / 'o'], capsys)
    assert_one_line_error(code, lines, 'cut.safetensors is not a readable safetensors file',
                          'copy it again or use other weights')
    assert not (tmp_path / 'o').exists()


def test_a_folder_given_as_weights_is_named_a_folder(tmp_path, images, capsys):
    """It was 'does not exist', also for the folder of an adapt run holding the file."""
    folder = tmp_path / 'run'
    folder.mkdir()
    args = ['infer', '--backend', 'dispnet', '--weights', folder, '--left',
            images / 'left.png', '--right', images / 'right.png', '--out-dir', tmp_path / 'o']
    code, _, lines = run_cli(args, capsys)
    assert_one_line_error(code, lines, f'{folder} is a folder', 'name the dispnet weights file')
    assert 'does not exist' not in lines[0]
    (folder / 'dispnet.safetensors').write_bytes(default_weights_path('dispnet').read_bytes())
    code, _, lines = run_cli(args, capsys)
    assert_one_line_error(code, lines, f'{folder / "dispnet.safetensors"} is there')
    with pytest.raises(BackendError, match=r'is a folder; name a \.safetensors file'):
        read_metadata(folder)  # the check of `stereo-depth backends`, train --weights, ...
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('change, words', [
    ((b'-1\n', b'nan\n'), ('disp.pfm', 'scale', 'nan')),
    ((b'-1\n', b'1\n'), ('disp.pfm', 'big-endian', 'other byte order')),
])
def test_bad_pfm_is_refused(tmp_path, capsys, change, words):
    cv2.imwrite(str(tmp_path / 'good.pfm'), np.full((32, 64), 6.0, np.float32))
    _generic_dataset(tmp_path / 'data', (tmp_path / 'good.pfm').read_bytes().replace(*change))
    code, _, lines = run_cli(['eval', '--dataset', 'generic', '--root', tmp_path / 'data',
                              '--json', *SGBM16], capsys)
    assert_one_line_error(code, lines, *words)


# --------------------------------------------------------------------------- kitti2bag


@pytest.fixture
def drive(tmp_path):
    pairs = [textured_pair(i, 96, 64) for i in range(12)]
    camera = StereoCameraModel.from_focal_baseline(80.0, 0.3, 96, 64)
    stamps = [1_317_042_145_000_000_000 + i * 100_000_000 for i in range(12)]
    return write_raw_drive(tmp_path / 'kitti', [p[0] for p in pairs], [p[1] for p in pairs],
                           camera, stamps)


@pytest.mark.parametrize('edit, words', [
    (lambda lines: lines[:4] + [lines[3]] + lines[5:], ('timestamps.txt, line 5', 'repeats')),
    (lambda lines: lines[:4] + [lines[5], lines[4]] + lines[6:], ('line 5', 'back in time')),
])
def test_repeated_or_unordered_kitti_stamps(drive, tmp_path, capsys, edit, words):
    stamps = drive / 'image_02' / 'timestamps.txt'
    stamps.write_text('\n'.join(edit(stamps.read_text().splitlines())) + '\n')
    code, _, lines = run_cli(['kitti2bag', drive, tmp_path / 'bag'], capsys)
    assert_one_line_error(code, lines, *words)
    assert leftovers(tmp_path, 'bag') == []


@pytest.mark.parametrize('prefix', ['a b//c', '/stereo//x', '/1cam', '/a/'])
def test_invalid_topic_prefix(drive, tmp_path, capsys, prefix):
    code, _, lines = run_cli(['kitti2bag', drive, tmp_path / 'bag', f'--topic-prefix={prefix}'],
                             capsys)
    if prefix == '/a/':  # a trailing slash is harmless: /a
        assert code == 0
        return
    assert_one_line_error(code, lines, '--topic-prefix', 'not a valid ROS 2 namespace')
    assert leftovers(tmp_path, 'bag') == []


def test_one_corrupt_png_is_skipped_and_named(drive, tmp_path, capsys):
    bad = drive / 'image_03' / 'data' / '0000000005.png'
    bad.write_bytes(bad.read_bytes()[:40])
    code, out, lines = run_cli(['kitti2bag', drive, tmp_path / 'bag'], capsys)
    assert code == 0 and 'wrote 11 frames of the KITTI raw layout' in out
    assert len(lines) == 1 and 'skipped 1 of 12 frames' in lines[0]
    assert '0000000005' in lines[0]
    with Reader(tmp_path / 'bag') as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts['/stereo/left/image_rect'] == counts['/stereo/right/image_rect'] == 11
    code, _, lines = run_cli(['kitti2bag', drive, tmp_path / 'strict', '--strict'], capsys)
    assert_one_line_error(code, lines, '0000000005.png', '--strict')
    assert leftovers(tmp_path, 'strict') == []


def test_a_full_disk_under_sqlite3_is_one_line_and_leaves_nothing(
        drive, tmp_path, capsys, monkeypatch):
    # sqlite3 reports a full disk as its own error, not as an OSError: it was a traceback.
    import sqlite3
    from stereo_depth_ros.bags.writer import BagWriter
    calls = []

    def write_until_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise sqlite3.OperationalError('database or disk is full')

    monkeypatch.setattr(BagWriter, 'write', write_until_full)
    code, _, lines = run_cli(['kitti2bag', drive, tmp_path / 'bag', '--storage', 'sqlite3'],
                             capsys)
    assert_one_line_error(code, lines, 'sqlite3 bag storage: database or disk is full',
                          'free some space')
    assert leftovers(tmp_path, 'bag') == []


def test_a_png_one_camera_lacks_is_skipped_and_named(drive, tmp_path, capsys):
    (drive / 'image_03' / 'data' / '0000000007.png').unlink()
    code, out, lines = run_cli(['kitti2bag', drive, tmp_path / 'bag'], capsys)
    assert code == 0 and 'wrote 11 frames of the KITTI raw layout' in out
    assert len(lines) == 1 and 'skipped 1 of 12 frames' in lines[0]
    assert 'image_03/data/0000000007.png (missing)' in lines[0]
    code, out, lines = run_cli(['kitti2bag', drive, tmp_path / 'part', '--frames', '0:5'],
                               capsys)
    assert code == 0 and 'wrote 5 frames' in out and lines == []
    code, _, lines = run_cli(['kitti2bag', drive, tmp_path / 'strict', '--strict'], capsys)
    assert_one_line_error(code, lines, '0000000007.png', 'missing', '--strict')
    assert leftovers(tmp_path, 'strict') == []


# --------------------------------------------------------------------------- process-bag


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('options, words', [
    ({'baseline': -0.3}, ('wrong sign',)),
    ({'encoding': 'yuv422'}, ('yuv422', 'not supported')),
    ({'info_size': (100, 64)}, ('96x64', '100x64')),
    ({'right_messages': False}, ('no message on /stereo/right/image_rect',
                                 '/stereo/right/camera_info')),
    ({'right_offset_ns': 10_000_000}, ('never matched', '0.010000 s',
                                       'would pair about 4 of 4')),
])
def test_failed_process_bag_leaves_nothing(tmp_path, capsys, storage, options, words):
    bag = write_stereo_bag(tmp_path / 'in', storage=storage, **options)
    for _ in range(2):  # the re-run gives the same error, not "exists already"
        code, _, lines = run_cli(['process-bag', bag, tmp_path / 'out', *SGBM16], capsys)
        assert_one_line_error(code, lines, 'no stereo pair', 'no output written', *words)
        assert leftovers(tmp_path, 'out') == []


def test_an_output_bag_inside_the_input_bag_is_refused(tmp_path, capsys):
    bag = write_stereo_bag(tmp_path / 'in')
    before = sorted(path.name for path in bag.iterdir())
    code, _, lines = run_cli(['process-bag', bag, bag / 'inner', *SGBM16], capsys)
    assert_one_line_error(code, lines, 'is inside the input bag', 'write the output elsewhere')
    assert sorted(path.name for path in bag.iterdir()) == before
    # Its storage file named alone: the folder it lies in is still the input bag.
    storage_file = next(path for path in bag.iterdir() if path.suffix in ('.mcap', '.db3'))
    code, _, lines = run_cli(['process-bag', storage_file, bag / 'inner', *SGBM16], capsys)
    assert_one_line_error(code, lines, 'is inside the input bag', 'write the output elsewhere')
    assert sorted(path.name for path in bag.iterdir()) == before


def test_a_slop_without_approximate_sync_is_refused(tmp_path, capsys):
    # It was ignored: exact stamps paired, or the run failed saying they never matched.
    bag = write_stereo_bag(tmp_path / 'in')
    code, _, lines = run_cli(['process-bag', bag, tmp_path / 'out', '--backend', 'sgbm',
                              '--slop', '0.05'], capsys)
    assert_one_line_error(code, lines, '--slop 0.05 applies to approximate sync',
                          'add --approximate-sync')
    assert leftovers(tmp_path, 'out') == []


@pytest.mark.parametrize('command', [['check-camera', '--bag'],
                                     ['adapt', '--config', 'config/adapt_costnet_fast.yaml',
                                      '--bag']])
def test_check_camera_and_adapt_refuse_a_slop_without_approximate_sync(tmp_path, capsys,
                                                                       command):
    # As process-bag: the slop was ignored without a word and exact stamps paired.
    bag = write_stereo_bag(tmp_path / 'in')
    code, _, lines = run_cli([*command, bag, '--slop', '0.05', '--out-dir', tmp_path / 'run']
                             if command[0] == 'adapt' else [*command, bag, '--slop', '0.05'],
                             capsys)
    assert_one_line_error(code, lines, '--slop 0.05 applies to approximate sync')
    assert not (tmp_path / 'run').exists()


def test_invalid_namespace(tmp_path, capsys):
    bag = write_stereo_bag(tmp_path / 'in')
    code, _, lines = run_cli(['process-bag', bag, tmp_path / 'out', '--namespace', 'a b//c'],
                             capsys)
    assert_one_line_error(code, lines, '--namespace', 'a b')
    assert leftovers(tmp_path, 'out') == []


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_undecodable_message_is_skipped_and_counted(tmp_path, capsys, storage):
    bag = write_stereo_bag(tmp_path / 'in', storage=storage, garbage_left=1)
    code, out, lines = run_cli(['process-bag', bag, tmp_path / 'out', *SGBM16], capsys)
    assert code == 0 and 'pairs processed: 3' in out
    assert len(lines) == 1 and 'undecodable messages skipped: /stereo/left/image_rect: 1' \
        in lines[0]
    code, _, lines = run_cli(['process-bag', bag, tmp_path / 'strict', '--strict', *SGBM16],
                             capsys)
    assert_one_line_error(code, lines, 'cannot decode', '/stereo/left/image_rect', '--strict')
    assert leftovers(tmp_path, 'strict') == []


@pytest.fixture(scope='module')
def big_mcap(tmp_path_factory):
    """An mcap bag of several chunks (rosbags closes a chunk at 1 MiB)."""
    return write_stereo_bag(tmp_path_factory.mktemp('big') / 'in', frames=12, width=320,
                            height=240)


def test_mcap_chunks_carry_crcs_and_a_flipped_chunk_is_skipped(big_mcap, tmp_path, capsys):
    damaged = tmp_path / 'damaged'
    damaged.mkdir()
    (damaged / 'metadata.yaml').write_bytes((big_mcap / 'metadata.yaml').read_bytes())
    data = bytearray((big_mcap / 'in.mcap').read_bytes())
    middle = len(data) // 2
    data[middle:middle + 769] = bytes(b ^ 0x55 for b in data[middle:middle + 769])
    (damaged / 'in.mcap').write_bytes(bytes(data))
    with pytest.raises(Exception, match='checksum'):  # plain rosbags sees it too
        with Reader(damaged) as reader:
            list(reader.messages())
    code, out, lines = run_cli(['process-bag', damaged, tmp_path / 'out', *SGBM16], capsys)
    assert code == 0
    pairs = int(out.split('pairs processed: ')[1].split()[0])
    assert 0 < pairs < 12
    assert len(lines) == 1 and 'skipped 1 of' in lines[0] and 'checksum' in lines[0]
    code, _, lines = run_cli(['process-bag', damaged, tmp_path / 'strict', '--strict',
                              *SGBM16], capsys)
    assert_one_line_error(code, lines, 'damaged', '--strict')
    assert leftovers(tmp_path, 'strict') == []


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_truncated_bag(tmp_path, capsys, storage, big_mcap):
    source = big_mcap if storage == 'mcap' else write_stereo_bag(
        tmp_path / 'in', frames=12, width=320, height=240, storage='sqlite3')
    cut = tmp_path / 'cut'
    cut.mkdir()
    for item in source.iterdir():
        data = item.read_bytes()
        (cut / item.name).write_bytes(data if item.name == 'metadata.yaml'
                                      else data[:len(data) // 2])
    code, out, lines = run_cli(['process-bag', cut, tmp_path / 'out', *SGBM16], capsys)
    if storage == 'sqlite3':  # no recovery: one clear line
        assert_one_line_error(code, lines, str(cut))
        assert leftovers(tmp_path, 'out') == []
        return
    assert code == 0 and len(lines) == 2, lines
    assert lines[0].startswith('recovered: cannot open bag') and 'data stops at byte' in lines[1]
    pairs = int(out.split('pairs processed: ')[1].split()[0])
    assert 3 <= pairs < 12
    # What was lost is counted against metadata.yaml's message count, not the cut file's bytes.
    listed = yaml.safe_load((cut / 'metadata.yaml').read_text())[
        'rosbag2_bagfile_information']['message_count']
    kept = int(lines[1].split('kept ')[1].split()[0])
    assert f'kept {kept} of the {listed} messages metadata.yaml lists ({listed - kept} lost)' \
        in lines[1] and kept < listed


@pytest.mark.parametrize('count, expected', [
    ('48', 48), ('true', None), ('-3', None), ('"48"', None), ('[unclosed', None)])
def test_the_listed_message_count_is_a_plain_count_or_nothing(tmp_path, count, expected):
    from stereo_depth_ros.bags.reader import _bag_information, _listed_message_count
    (tmp_path / 'metadata.yaml').write_text(
        f'rosbag2_bagfile_information:\n  message_count: {count}\n')
    assert _listed_message_count(_bag_information(tmp_path)) == expected
    assert _listed_message_count(_bag_information(tmp_path / 'nothing_here')) is None


def test_a_metadata_count_below_what_was_kept_is_not_taken_for_a_loss():
    from stereo_depth_ros.bags.mcap_scan import ScanReport
    stale = ScanReport(messages=50, listed_messages=48)
    assert stale.line() == 'kept 50 messages (metadata.yaml lists only 48: it does not ' \
        'describe this file)'
    assert ScanReport(messages=19, listed_messages=48).line() == \
        'kept 19 of the 48 messages metadata.yaml lists (29 lost)'


def test_an_empty_folder_is_not_a_bag(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    code, _, lines = run_cli(['process-bag', tmp_path / 'empty', tmp_path / 'out', *SGBM16],
                             capsys)
    assert_one_line_error(code, lines, 'is not a rosbag2 bag: no metadata.yaml and no .mcap or '
                          '.db3 file in it')
    assert leftovers(tmp_path, 'out') == []


def test_mcap_truncated_at_half_yields_the_messages_before_the_cut(big_mcap, tmp_path):
    with Reader(big_mcap) as reader:
        full = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
    data = (big_mcap / 'in.mcap').read_bytes()
    (tmp_path / 'cut').mkdir()
    (tmp_path / 'cut' / 'cut.mcap').write_bytes(data[:len(data) // 2])  # no metadata.yaml
    with BagInput(tmp_path / 'cut') as bag:
        kept = [(c.topic, t, bytes(d)) for c, t, d in bag.messages()]
        report = bag.scan_report
    assert 0.3 * len(full) < len(kept) < len(full)
    assert kept == full[:len(kept)]
    assert report.messages == len(kept) and report.stopped_at is not None
    assert 'cut off' in report.line()
    assert 'without a message count in metadata.yaml the messages cut off are not counted' \
        in report.line()
    assert bag.recovered_from == f'bag {tmp_path / "cut"} has no metadata.yaml'


def test_disk_full_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch, big_mcap):
    import errno
    from stereo_depth_ros.bags import writer

    calls = []

    def full(self, connection, data, log_time_ns):
        calls.append(1)
        if len(calls) > 20:
            raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(writer.BagWriter, 'write_raw', full)
    code, _, lines = run_cli(['process-bag', big_mcap, tmp_path / 'out', *SGBM16], capsys)
    assert_one_line_error(code, lines, str(tmp_path / 'out'), 'No space left on device')
    assert leftovers(tmp_path, 'out') == []


def test_an_output_folder_that_cannot_be_made_is_named_as_other_os_errors(
        images, tmp_path, capsys, monkeypatch):
    import errno
    import stereo_depth_ros.atomic_files as atomic_files

    def no_such_folder(path):
        raise FileNotFoundError(errno.ENOENT, 'No such file or directory', str(path))
    monkeypatch.setattr(atomic_files, 'written_atomically', no_such_folder)
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o'), capsys)
    assert code == 2 and lines == [
        f'stereo-depth infer: error: cannot read or write {tmp_path / "o" / "disparity.npy"}: '
        'No such file or directory']
    assert not (tmp_path / 'o').exists()


def test_a_bag_that_cannot_be_created_names_the_bag_not_its_staging_folder(tmp_path, capsys,
                                                                           big_mcap):
    from stereo_depth_ros.atomic_files import staging_path
    staging_path(tmp_path / 'out').write_text('a file in the way of the hidden folder')
    code, _, lines = run_cli(['process-bag', big_mcap, tmp_path / 'out', *SGBM16], capsys)
    assert_one_line_error(code, lines, f'cannot create bag {tmp_path / "out"}')
    assert '.out.partial' not in lines[0]


def test_eval_json_is_still_valid(capsys):
    """Guard for the shared CLI path: --json output parses (bare NaN would not)."""
    from stereo_depth_ros.resources import sample_data_dir
    code, out, _ = run_cli(['eval', '--dataset', 'middlebury2003', '--root',
                            sample_data_dir() / 'middlebury2003', '--json', *SGBM16], capsys)
    assert code == 0 and math.isfinite(json.loads(out.strip().splitlines()[-1])['epe'])


def test_process_bag_api_skips_nothing_on_good_input(tmp_path):
    bag = write_stereo_bag(tmp_path / 'in', storage='sqlite3')
    summary = process_bag(bag, tmp_path / 'out', StereoPipeline(create_backend(
        'sgbm', disparity_range=16)), progress=False)
    assert summary.pairs == 4 and summary.warnings() == []


def test_pairs_whose_views_do_not_match_are_written_unknown_and_counted(tmp_path):
    bag = write_stereo_bag(tmp_path / 'in', frames=5, black_right=(1, 3))
    summary = process_bag(bag, tmp_path / 'out', StereoPipeline(create_backend(
        'sgbm', disparity_range=16)), progress=False)
    assert summary.pairs == 5 and summary.unconfirmed == 2
    warnings = summary.warnings()
    assert len(warnings) == 2 and warnings[0].startswith('left and right views do not match')
    assert warnings[1].startswith('written as unknown: 2 of 5 pairs, whose views do not '
                                  'confirm the disparity')


def test_infer_says_the_obstacle_is_unknown_when_the_views_do_not_match(images, tmp_path,
                                                                        capsys):
    cv2.imwrite(str(tmp_path / 'black.png'), np.zeros((96, 160, 3), np.uint8))
    code, out, lines = run_cli(['infer', '--left', images / 'left.png', '--right',
                                tmp_path / 'black.png', '--out-dir', tmp_path / 'o', *SGBM16,
                                '--fx', '100', '--baseline', '0.1'], capsys)
    assert code == 0 and len(lines) == 1 and 'views do not match' in lines[0]
    assert 'nearest obstacle: unknown, the views do not confirm the disparity' in out
    assert np.isnan(np.load(tmp_path / 'o' / 'depth.npy')).all()


def test_infer_replaces_every_output_of_an_earlier_run(images, tmp_path, capsys):
    calibrated = infer_args(images, tmp_path / 'o', '--fx', '100', '--baseline', '0.1')
    code, _, lines = run_cli(calibrated, capsys)
    assert code == 0 and lines == []
    assert {p.name for p in (tmp_path / 'o').iterdir()} == {
        'disparity.npy', 'disparity.png', 'depth.npy', 'obstacle.png'}
    # Without calibration there is no depth: the earlier run's depth must not stay beside it.
    code, _, lines = run_cli(infer_args(images, tmp_path / 'o', left='tiny_left.png',
                                        right='tiny_right.png'), capsys)
    # (A 12-px-wide pair: sgbm's range is wider than it, which the one line says.)
    assert code == 0 and len(lines) == 1 and 'too narrow for the disparity range' in lines[0]
    assert {p.name for p in (tmp_path / 'o').iterdir()} == {'disparity.npy', 'disparity.png'}
    assert np.load(tmp_path / 'o' / 'disparity.npy').shape == (10, 12)
    code, _, lines = run_cli(infer_args(images, tmp_path / 'p', left='.'), capsys)
    assert code == 2 and len(lines) == 1 and 'is a folder, not an image file' in lines[0]


@pytest.mark.parametrize('argv, words', [
    (['bench', '--backends', 'sgbm', '--backend-option', 'near_scale=0'],
     ('--backend-option applies to the learned backends', 'none is in --backends (sgbm)')),
    (['bench', '--backends', 'sgbm,costnet', '--weights', 'costnt=/tmp/x.safetensors'],
     ('--weights for costnt', 'not a learned backend in --backends (sgbm,costnet)')),
    (['real-bench', '--backends', ''], ("--backends '' names no backend",)),
    (['bench', '--backends', 'sgbm', '--profile', '--device', 'cpu'],
     ('--profile, --device apply to the learned backends',)),
    (['bench', '--backends', 'costnet_fast', '--backend-option', 'disparity_range=64'],
     ("unknown costnet_fast option 'disparity_range'",)),
    (['real-bench', '--backend', 'sgbm', '--backends', 'sgbm', '--precision', 'fp16'],
     ('--precision applies to a learned --backend, not sgbm',)),
    (['real-bench', '--backends', 'sgbm', '--figures', __file__ + '/pictures'],
     ('--figures', 'is a file, not a folder')),
])
def test_benchmarks_refuse_settings_they_would_ignore(capsys, argv, words):
    assert_one_line_error(*run_cli(argv, capsys)[::2], *words)


@pytest.mark.parametrize('argv, words', [
    # torch.set_num_threads raised a RuntimeError (a traceback) on -3; 0 meant the default.
    (['bench', '--backends', 'costnet_fast', '--size', '32x32', '--threads', '-3'],
     ("--threads: '-3' is not a whole number of at least 1",)),
    (['bench', '--backends', 'costnet_fast', '--size', '32x32', '--threads', '0'],
     ("--threads: '0' is not a whole number of at least 1",)),
    # -1 made every pair bad (n % -1 == 0), reported as balanced; nan ran a 'fed nan pairs/s'.
    (['soak', '--backend', 'sgbm', '--seconds', '0.2', '--bad-every', '-1'],
     ("--bad-every: '-1' is not a whole number of at least 0",)),
    (['soak', '--backend', 'sgbm', '--seconds', '0.2', '--factor', 'nan'],
     ("--factor: 'nan' is not a finite number above 0",)),
    (['soak', '--backend', 'sgbm', '--seconds', 'nan'],
     ("--seconds: 'nan' is not a finite number above 0",)),
    (['soak', '--backend', 'sgbm', '--seconds', '0'],
     ("--seconds: '0' is not a finite number above 0",)),
    # Negative and NaN limits compared as no limit (the node's parameter is refused below 0).
    (['infer', '--left', 'l.png', '--right', 'r.png', '--out-dir', 'o', '--max-megapixels',
      '-1'], ("--max-megapixels: '-1' is not a number of megapixels from 0 (no limit) to 1000",)),
    (['process-bag', 'in', 'out', '--max-megapixels', 'nan'],
     ("--max-megapixels: 'nan' is not a number of megapixels",)),
    # An infinite slop ended in an OverflowError traceback from the synchronizer (exit 1),
    # after the bag was opened; 0, -1 and nan only there, naming 'slop', not the flag.
    (['process-bag', 'in', 'out', '--approximate-sync', '--slop', 'inf'],
     ("--slop: 'inf' is not a finite number above 0",)),
    (['check-camera', '--bag', 'in', '--approximate-sync', '--slop', 'inf'],
     ("--slop: 'inf' is not a finite number above 0",)),
    (['adapt', '--config', 'c.yaml', '--bag', 'in', '--approximate-sync', '--slop', '-1'],
     ("--slop: '-1' is not a finite number above 0",)),
    # -1 road scenes ran none without a word; 0 frames named the parameter 'n_frames'.
    (['demo', '--road-scenes', '-1'],
     ("--road-scenes: '-1' is not a whole number of at least 0",)),
    (['demo', '--frames', '0'], ("--frames: '0' is not a whole number of at least 1",)),
    (['process-bag', 'in', 'out', '--queue-size', '0'],
     ("--queue-size: '0' is not a whole number of at least 1",)),
])
def test_numeric_options_out_of_range_are_one_line(capsys, argv, words):
    with pytest.raises(SystemExit) as refused:  # argparse's refusal, before any work
        run_cli(argv, capsys)
    assert refused.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and ': error: ' in lines[0], lines
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_infer_says_when_the_nearest_obstacle_is_too_close(images, tmp_path, capsys):
    # The textured plane stands at f B / 6 px = 1.67 m, nearer than min_range 3 m.
    params = tmp_path / 'near.yaml'
    params.write_text('/**/stereo_depth_node:\n  ros__parameters:\n    obstacle:\n'
                      '      min_range: 3.0\n')
    argv = infer_args(images, tmp_path / 'o', '--fx', '100', '--baseline', '0.1')
    code, out, _ = run_cli([*argv, '--params-file', params], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith('nearest obstacle'))
    assert 'too close: nearer than the 3.00 m the range starts at' in line
    code, out, _ = run_cli(argv, capsys)
    assert 'too close' not in out
