"""stereo-depth check-camera: swaps, rows, disparities and depth limits of recorded pairs."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.camera_check import (check_one, far_limit, PairFindings, problems_found,
                                           report_lines)
from stereo_depth_ros.cli import main
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.plausibility import RowOffset


def test_far_limit_is_where_the_depth_error_reaches_a_tenth():
    # dz = z^2 dd / (f B): at z = 0.1 f B / dd, dz / z = 0.1.
    limit = far_limit(33.8, 0.5)
    assert limit == pytest.approx(6.76)
    assert limit ** 2 * 0.5 / 33.8 / limit == pytest.approx(0.1)


def findings(name, typical, largest, disparities, swapped=False):
    offset = RowOffset(typical, largest, True, 100) if typical is not None else None
    return PairFindings(name, swapped, offset, np.asarray(disparities, np.float32))


def test_the_report_names_what_needs_doing():
    near = np.linspace(2.0, 150.0, 1000)  # 99th percentile above sgbm's 128 px
    swapped = findings('c', None, None, np.full(1000, 220.0), swapped=True)
    lines = report_lines([findings('a', 0.2, 0.5, near), findings('b', 1.4, 1.6, near),
                          findings('d', None, None, near), swapped], ('costnet_fast', 384.0),
                         127.0, StereoCameraModel.from_focal_baseline(451.0, 0.075, 640, 480))
    text = '\n'.join(lines)
    assert lines[0].startswith('rows: 1 of 2 measured pairs off by 1 px or more')
    assert 'typical at most 1.40 px (b)' in lines[0] and 'CHECK THE RECTIFICATION' in lines[0]
    assert lines[0].endswith("CALIBRATION; 1 of them 0.25 px or more off the left's at a "
                             'typical matched corner, or surely 0.25 px or more on average '
                             'over the image, whose right view the node, process-bag, infer, '
                             "eval and real-bench resample onto the left's rows (align_rows)")
    assert lines[1] == 'rows: 1 of 4 pairs had too few matching corners to measure'
    assert lines[2].startswith('left/right: 1 of 4 pairs look swapped (first: c): exchange')
    assert 'unless the calibration' not in lines[2]  # equal principal points: no other cause
    # With principal points apart, a wrong offset is the other cause the line names.
    offset = StereoCameraModel.from_focal_baseline(451.0, 0.075, 640, 480, doffs=25.0)
    assert "unless the calibration's cx_left - cx_right (-25 px) is wrong" in report_lines(
        [swapped], ('costnet_fast', 384.0), 127.0, offset)[0]
    # Nothing lies beyond f B / 25 px = 1.35 m there: the far limit is that, not 6.8 m.
    assert ('  nothing farther than 1.4 m is measured (a disparity of 0 px, cx_left - cx_right '
            'being -25 px): set obstacle.max_range (default 40 m) and max_depth (default none) '
            'to about 1.4 m') in report_lines([findings('a', 0.1, 0.2, near)],
                                              ('costnet_fast', 384.0), 127.0, offset)
    # The swapped pair's 220 px are left out: the advice comes from the others.
    assert 'set sgbm.disparity_range to 160 or more' in text
    assert 'f B = 33.8 px m' in text
    assert 'set obstacle.max_range (default 40 m) and max_depth (default none) to about 6.8 m' \
        in text
    assert ('nearest depth each can measure: 0.27 m with sgbm (127 px), 0.09 m with '
            'costnet_fast') in text
    assert 'costnet_fast (384 px) covers them' in text
    # Beyond a learned backend's range too: the near passes to set.
    wide = report_lines([findings('a', 0.1, 0.2, np.linspace(2.0, 450.0, 1000))],
                        ('costnet_fast', 384.0), 127.0)
    assert any('costnet_fast reaches 384 px: the nearest 1 % lie beyond; set '
               'learned.near_passes 2 (768 px)' in line for line in wide)
    assert not any('cover' in line for line in wide)
    kitti = report_lines([findings('a', 0.1, 0.2, [5.0, 20.0, 60.0])], ('costnet_fast', 384.0),
                         127.0, StereoCameraModel(1242, 375, 721.0, 721.0, 620.0, 600.0, 187.0,
                                                  0.54))
    assert kitti[0].endswith(': OK') and kitti[1].endswith(': OK')
    assert any('the default obstacle.max_range (40 m) is within it' in line for line in kitti)
    assert any('cover them' in line for line in kitti)
    # Depth is f B / (d - (cx_l - cx_r)): the nearest sgbm sees is f B / (127 - 20).
    assert any(f'{721 * 0.54 / 107:.2f} m with sgbm (127 px)' in line for line in kitti)
    assert not problems_found([findings('a', 0.1, 0.2, [5.0])])
    assert problems_found([findings('a', 1.5, 1.6, [5.0])]) and problems_found([swapped])


def _pairs(root: Path, right_shift: int = 0) -> Path:
    for seed in range(2):
        scene = make_scene(seed, 128, 256, 'layered', max_disparity=24)
        folder = root / f'pair{seed}'
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / 'left.png'), scene.left[:, :, ::-1])
        right = np.roll(scene.right, right_shift, axis=0)
        cv2.imwrite(str(folder / 'right.png'), right[:, :, ::-1])
    return root


def test_check_camera_on_a_folder_of_pairs(tmp_path, capsys):
    good = _pairs(tmp_path / 'good')
    assert main(['check-camera', '--pairs', str(good), '--fx', '200', '--baseline', '0.1',
                 '--no-progress']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'2 pairs of {good} (256x128)'
    assert out[1].startswith('rows: 0 of 2 measured pairs') and out[1].endswith(': OK')
    assert any(line.startswith('depth: f B = 20.0 px m') for line in out)
    # On 256-px-wide images no disparity exceeds 255 px, whatever a backend's range.
    assert out[-1] == ('  nearest depth each can measure: 0.16 m with sgbm (127 px), 0.08 m '
                       'with costnet_fast (255 px)')
    low = _pairs(tmp_path / 'low', right_shift=3)
    assert main(['check-camera', '--pairs', str(low), '--no-progress']) == 1  # problems found
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith('rows: 2 of 2 measured pairs') and 'CHECK THE' in out[1]
    assert not any(line.startswith('depth:') for line in out)  # no calibration given


def test_check_camera_on_a_bag_reads_its_calibration(tmp_path, capsys):
    from stereo_depth_ros.bags import kitti_to_bag
    from stereo_depth_ros.kitti import write_raw_drive
    scenes = [make_scene(seed, 128, 256, 'layered', max_disparity=24) for seed in range(3)]
    camera = StereoCameraModel(256, 128, 200.0, 200.0, 127.5, 127.5, 63.5, 0.3)
    stamps = [1_000_000_000 + i * 100_000_000 for i in range(3)]
    drive = write_raw_drive(tmp_path / 'kitti', [s.left for s in scenes],
                            [s.right for s in scenes], camera, stamps)
    kitti_to_bag(drive, tmp_path / 'bag', progress=False)
    assert main(['check-camera', '--bag', str(tmp_path / 'bag'), '--no-progress']) == 0
    out = capsys.readouterr().out
    # Which topics were read (found by name), then the report.
    assert out.startswith('stereo images: /stereo/left/image_rect and /stereo/right/image_rect\n'
                          f'3 pairs of {tmp_path / "bag"} (256x128)')
    assert 'f B = 60.0 px m (fx 200.0 px, baseline 0.3000 m)' in out


@pytest.mark.parametrize('arguments, words', [
    (['--pairs', 'x', '--fx', '1'], 'give both --fx and --baseline'),
    (['--pairs', 'x', '--fx', '0', '--baseline', '0.1'], '--fx must be a positive number'),
    (['--pairs', 'x', '--left-image', '/l'], '--left-image, --right-image and'),
    (['--pairs', '{empty}'], 'no left.png/right.png pairs under'),
])
def test_check_camera_refuses_bad_input_in_one_line(tmp_path, capsys, arguments, words):
    arguments = [a.replace('{empty}', str(tmp_path)) for a in arguments]
    assert main(['check-camera', *arguments, '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_check_camera_on_a_bag_without_camera_info(tmp_path, capsys):
    from bad_input_helpers import write_stereo_bag
    bag = write_stereo_bag(tmp_path / 'bag', frames=3, width=192, height=128,
                           camera_infos=False)
    assert main(['check-camera', '--bag', str(bag), '--no-progress']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ['stereo images: /stereo/left/image_rect and /stereo/right/image_rect',
                       f'3 pairs of {bag} (192x128)']
    assert out[-1] == 'depth: the bag has no camera_info; give --fx and --baseline for depths'
    assert main(['check-camera', '--bag', str(bag), '--fx', '80', '--baseline', '0.3',
                 '--no-progress']) == 0
    assert 'depth: f B = 24.0 px m' in capsys.readouterr().out


def test_check_camera_refuses_a_bag_whose_images_are_not_the_size_of_its_camera_info(
        tmp_path, capsys):
    # Images scaled to half after calibration: the node refuses every pair, and depths from
    # the full-size fx were twice too far (the check had said OK).
    from bad_input_helpers import write_stereo_bag
    bag = write_stereo_bag(tmp_path / 'bag', frames=3, width=96, height=64,
                           info_size=(192, 128))
    assert main(['check-camera', '--bag', str(bag), '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert 'images are 96x64 but the CameraInfo says 192x128' in err[0]


def test_check_camera_takes_max_pairs_pairs_of_a_longer_bag(tmp_path, capsys):
    # 15 frames: every frame up to the 12th (every second one gave 8 pairs).
    from bad_input_helpers import write_stereo_bag
    bag = write_stereo_bag(tmp_path / 'bag', frames=15, width=96, height=64,
                           camera_infos=False)
    assert main(['check-camera', '--bag', str(bag), '--no-progress']) == 0
    assert capsys.readouterr().out.splitlines()[1] == f'12 pairs of {bag} (96x64)'
    assert main(['check-camera', '--bag', str(bag), '--no-progress', '--max-pairs', '5']) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith(f'5 pairs of {bag}')


def test_check_camera_on_a_bag_of_a_12_bit_camera_names_the_bit_depth(tmp_path, capsys):
    from bad_input_helpers import write_stereo_bag
    from stereo_depth_ros.bags.extract import extract_pairs
    bag = write_stereo_bag(tmp_path / 'bag', frames=3, encoding='mono12')
    assert main(['check-camera', '--bag', str(bag), '--no-progress']) == 0
    out = capsys.readouterr().out
    assert 'images: 16-bit images that use few of their bits' in out
    assert '--mono16-bit-depth' in out
    assert main(['check-camera', '--bag', str(bag), '--no-progress',
                 '--mono16-bit-depth', '12']) == 0
    assert '16-bit images' not in capsys.readouterr().out
    # The extracted pairs are scaled over the sensor's 12 bits: the full 8-bit range.
    notes: list = []
    extract_pairs(bag, tmp_path / 'pairs', bit_depth=12, notes=notes, progress=False)
    left = cv2.imread(str(tmp_path / 'pairs' / '00000' / 'left.png'), cv2.IMREAD_UNCHANGED)
    assert left.dtype == np.uint8 and left.max() > 200 and notes == []
    extract_pairs(bag, tmp_path / 'dark', notes=notes, progress=False)
    dark = cv2.imread(str(tmp_path / 'dark' / '00000' / 'left.png'), cv2.IMREAD_UNCHANGED)
    assert dark.max() < 16 and len(notes) == 1


def test_the_check_sees_disparities_beyond_its_full_search() -> None:
    # A block at 300 px on a 1024-px camera: beyond the 256 px searched at full size.
    scene = make_scene(11, 256, 1024, 'road')
    texture = cv2.resize(np.random.default_rng(7).integers(0, 256, (98, 100), dtype=np.uint8),
                         (200, 196), interpolation=cv2.INTER_NEAREST)[:, :, None]
    left, right = scene.left.copy(), scene.right.copy()
    left[60:, 600:800] = texture
    right[60:, 300:500] = texture
    found = check_one('near', left, right)
    assert (found.searched, found.reached) == (256, 512)
    assert np.percentile(found.disparities, 99) == pytest.approx(300.0, abs=8.0)
    line = report_lines([found], ('costnet_fast', 384.0), 127.0)[2]
    assert line.startswith('disparities (SGBM, left-right checked, up to 256 px, beyond on a '
                           '2-8x smaller pair up to 512 px; on ')


def test_check_camera_surfaces_drop_stray_pixels():
    from stereo_depth_ros.camera_check import _surfaces
    found = np.zeros((100, 100), bool)
    found[10:60, 10:60] = True
    found[90, 90] = True
    surfaces = _surfaces(found)
    assert surfaces[20, 20] and not surfaces[90, 90]


@pytest.mark.parametrize('columns', [(150, 250), (300, 400), (530, 630)])
def test_a_near_block_is_measured_wherever_it_stands(columns) -> None:
    # The search measured only a strip in the middle (columns 256 to about 384 of 640): a
    # block at a side was missed and the check said sgbm covered the scene.
    rng = np.random.default_rng(3)
    texture = cv2.resize(rng.integers(0, 256, (240, 400), dtype=np.uint8), (800, 480),
                         interpolation=cv2.INTER_NEAREST)
    left = texture[:, 0:640].copy()  # a wall at 10 px
    right = texture[:, 10:650].copy()
    block = cv2.resize(rng.integers(0, 256, (120, 60), dtype=np.uint8), (120, 240),
                       interpolation=cv2.INTER_NEAREST)
    start, stop = columns
    left[200:440, start:stop] = block[:, :stop - start]
    right[200:440, start - 140:stop - 140] = block[:, :stop - start]  # at 140 px
    found = check_one('block', left, right)
    assert found.matched > 0.5
    assert np.percentile(found.disparities, 99) == pytest.approx(140.0, abs=2.0)
    lines = report_lines([found], ('costnet_fast', 384.0), 127.0)
    assert any('sgbm reaches 127 px by default: the nearest 1 % lie beyond' in line
               for line in lines), lines


def test_views_of_two_scenes_are_no_measurement_of_either() -> None:
    # Their few chance matches said 288-504 px and sgbm.disparity_range 512.
    rng = np.random.default_rng(4)
    left, right = (rng.integers(0, 256, (240, 320), dtype=np.uint8) for _ in range(2))
    found = check_one('two scenes', left, right)
    assert found.matched < 0.01 and problems_found([found])
    lines = report_lines([found], ('costnet_fast', 384.0), 127.0)
    assert any(line.startswith('matches: 1 of 1 pairs had a left-right consistent disparity '
                               'on under 1% of their pixels') for line in lines), lines
    assert not any(line.startswith('disparities') for line in lines)


def test_a_12_bit_camera_read_as_16_bits_is_measured_as_lit() -> None:
    # Values up to 16 of 255: SGBM matched them 16x too dark, and the depths were off.
    scene = make_scene(5, 240, 320, 'layered')
    lit = check_one('lit', scene.left, scene.right)
    dark = check_one('dark', scene.left // 16, scene.right // 16)
    assert dark.matched > 0.5 * lit.matched
    assert np.median(dark.disparities) == pytest.approx(np.median(lit.disparities), abs=1.0)


def test_a_pair_that_matches_little_is_suspect_and_left_out() -> None:
    # A swapped Middlebury pair whose principal points hid the swap matched 7 % (82 % the
    # right way round) and its false disparities set the advice.
    from dataclasses import replace
    good = findings('good', 0.1, 0.2, np.linspace(5.0, 60.0, 1000))
    suspect = replace(findings('suspect', 0.1, 0.2, np.full(1000, 250.0)), matched=0.07)
    lines = report_lines([good, suspect], ('costnet_fast', 384.0), 127.0)
    assert any(line.startswith('matches: 1 of 2 pairs had a left-right consistent disparity '
                               'on under 25% of their pixels (first: suspect, 7%')
               for line in lines)
    assert problems_found([suspect]) and not problems_found([good])
    assert any('sgbm (127 px by default) and costnet_fast (384 px) cover them' in line
               for line in lines), lines  # 250 px left out


def test_a_narrow_pair_is_searched_over_half_its_width() -> None:
    # 200 px wide: 100 px searched, not the 256 px of a wide pair.
    rng = np.random.default_rng(9)
    texture = cv2.resize(rng.integers(0, 256, (60, 110), dtype=np.uint8), (220, 120),
                         interpolation=cv2.INTER_NEAREST)
    found = check_one('narrow', texture[:, :200].copy(), texture[:, 12:212].copy())
    assert found.searched == 100
    assert np.median(found.disparities) == pytest.approx(12.0, abs=1.0)


def test_one_image_on_both_topics_measures_no_disparity() -> None:
    # Matches at 0 px (no depth: beyond any range, or one camera twice) are no measurement.
    scene = make_scene(5, 120, 200, 'layered')
    found = check_one('twice', scene.left, scene.left)
    assert found.matched < 0.01 and found.disparities.size == 0


def test_the_nearest_reach_the_search_only_when_they_come_near_it() -> None:
    # No coarse search beyond (reached 0): 100 px of the 256 searched is no "reach".
    lines = report_lines([findings('a', 0.1, 0.2, np.linspace(2.0, 100.0, 1000))],
                         ('costnet_fast', 384.0), 127.0)
    assert not any('the nearest reach the' in line for line in lines), lines
    lines = report_lines([findings('a', 0.1, 0.2, np.linspace(2.0, 250.0, 1000))],
                         ('costnet_fast', 384.0), 127.0)
    assert any('the nearest reach the 256 px searched here' in line for line in lines), lines


def test_disparities_at_the_principal_points_offset_have_no_depth() -> None:
    # cx_left - cx_right = 5 px: a match at 5 px is at infinity, left out of the depths.
    camera = StereoCameraModel.from_focal_baseline(451.0, 0.075, 640, 480, doffs=-5.0)
    assert camera.disparity_offset == 5.0
    values = [5.0] * 10 + [20.0] * 5
    lines = report_lines([findings('a', 0.1, 0.2, values)], ('costnet_fast', 384.0), 127.0,
                         camera)
    assert any('the nearest 1 % at 2.25 m, median 2.25 m' in line for line in lines), lines


def test_the_reach_beyond_is_claimed_only_where_every_pair_was_searched_that_far() -> None:
    # One pair searched beyond 256 px (to 512), one not: the line claims 256 px.
    near = np.linspace(2.0, 100.0, 1000)
    beyond = PairFindings('a', False, None, near.astype(np.float32), 256, 512)
    within = PairFindings('b', False, None, near.astype(np.float32), 256, 0)
    line = next(line for line in report_lines([beyond, within], ('costnet_fast', 384.0), 127.0)
                if line.startswith('disparities'))
    assert line.startswith('disparities (SGBM, left-right checked, up to 256 px; on '), line
    line = next(line for line in report_lines([beyond], ('costnet_fast', 384.0), 127.0)
                if line.startswith('disparities'))
    assert 'beyond on a 2-8x smaller pair up to 512 px' in line


def test_check_camera_takes_doffs_as_cx_right_minus_cx_left(tmp_path, capsys):
    # Right images 20 px to the right: matches fall below 0 px but above cx_l - cx_r = -30.
    shifted = tmp_path / 'shifted'
    for seed in range(2):
        scene = make_scene(seed, 128, 256, 'layered', max_disparity=24)
        folder = shifted / f'pair{seed}'
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / 'left.png'), scene.left[:, :, ::-1])
        cv2.imwrite(str(folder / 'right.png'), np.roll(scene.right, 20, axis=1)[:, :, ::-1])
    calibration = ['--fx', '200', '--baseline', '0.1', '--no-progress']
    main(['check-camera', '--pairs', str(shifted), *calibration, '--doffs', '30'])
    assert 'left/right: 0 of 2 pairs look swapped: OK' in capsys.readouterr().out
    main(['check-camera', '--pairs', str(shifted), *calibration])
    assert 'left/right: 2 of 2 pairs look swapped' in capsys.readouterr().out


def test_check_camera_warns_of_a_folder_holding_one_view_only(tmp_path, capsys):
    root = _pairs(tmp_path / 'pairs')
    (root / 'pair1' / 'right.png').unlink()
    assert main(['check-camera', '--pairs', str(root), '--no-progress']) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f'1 pair of {root} (256x128)'
    assert captured.err.strip() == (f'warning: 1 folder(s) under {root} hold only one of '
                                    f'left.png and right.png and are left out (first: '
                                    f'{root / "pair1"})')


def test_check_camera_refuses_fx_for_a_bag_with_camera_info(tmp_path, capsys):
    from bad_input_helpers import write_stereo_bag
    bag = write_stereo_bag(tmp_path / 'bag', frames=2, width=96, height=64)
    assert main(['check-camera', '--bag', str(bag), '--fx', '80', '--baseline', '0.3',
                 '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'the bag has its camera_info: --fx, --baseline' in err[0]
