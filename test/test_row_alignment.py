"""Rows off: the offset read to a fraction of a pixel, and the right view put back on them."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores

from stereo_depth_ros import plausibility
from stereo_depth_ros.commands import common
from stereo_depth_ros.data.datasets import StereoSample
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.evaluation.evaluate import evaluate_backend
from stereo_depth_ros.evaluation.metrics import bad_n, fill_invalid_kitti
from stereo_depth_ros.msgs.images import array_to_image
from stereo_depth_ros.msgs.stereo import make_camera_infos
from stereo_depth_ros.msgs.types import make_header, MessageTypes
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.pipeline_config import PipelineManager
from stereo_depth_ros.plausibility import row_offset, row_offset_warning, RowOffset
from stereo_depth_ros.processing import StereoFrameProcessor, StereoPair
from stereo_depth_ros.row_alignment import (ALIGN_FROM_MEAN_PX, ALIGN_FROM_PX,
                                            align_right_rows, aligned_right, RowAligner,
                                            worth_aligning)
from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.training import row_offset_sweep
from stereo_depth_ros.training.row_offset_sweep import moved_down

TYPES = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))


@pytest.fixture(scope='module')
def scene():
    return make_scene(7, 192, 384, kind='layered', max_disparity=32)


@pytest.fixture(scope='module')
def road():
    # A road in perspective: its rows change fast with height, so rows off cost the most.
    return make_scene(3, 192, 384, kind='road', max_disparity=32)


@pytest.fixture(scope='module')
def sgbm():
    return create_backend('sgbm', disparity_range=48)


def bad2(backend, left, right, truth):
    return bad_n(fill_invalid_kitti(backend.compute(left, right)), truth, 2.0)


@pytest.mark.parametrize('shift', [0.2, 0.4, -0.7, 1.3])
def test_a_fraction_of_a_pixel_is_read(scene, shift):
    # Each corner's offset is whole pixels; hundreds of them fitted give the fraction.
    offset = row_offset(scene.left, moved_down(scene.right, shift))
    assert offset is not None and offset.plane[0] == pytest.approx(shift, abs=0.11)
    assert offset.typical == pytest.approx(abs(shift), abs=0.11)
    assert offset.shape == scene.left.shape[:2]


def test_each_corner_is_refined_to_a_fraction_of_a_pixel(monkeypatch):
    # A sparse scene (54-68 matched corners): whole-pixel corners put the plane a quarter of
    # a pixel off; refined ones within 0.06 px.
    sparse = make_scene(11, 192, 384, kind='layered', max_disparity=32)
    for shift in (0.0, 0.2):
        offset = row_offset(sparse.left, moved_down(sparse.right, shift))
        assert offset is not None and abs(offset.plane[0] - shift) < 0.07
    monkeypatch.setattr(plausibility, '_refined', lambda gray_left, gray_right, left, right: right)
    for shift in (0.0, 0.2):
        offset = row_offset(sparse.left, moved_down(sparse.right, shift))
        assert offset is not None and abs(offset.plane[0] - shift) > 0.2


def test_a_refined_match_keeps_its_left_point_s_fraction():
    # The right view is the left one 10 px left and 1 px down; a left point off its pixel
    # (as a feature detector with a pyramid gives) keeps its fraction in its match.
    rng = np.random.default_rng(3)
    left = cv2.GaussianBlur(rng.integers(0, 256, (80, 120)).astype(np.uint8), (0, 0), 1.5)
    right = np.roll(np.roll(left, -10, axis=1), 1, axis=0)
    points_left = np.array([[60.3, 40.6]], np.float32)
    points_right = np.array([[50.3, 41.6]], np.float32)
    refined = plausibility._refined(left, right, points_left, points_right)
    assert refined[0] == pytest.approx([50.3, 41.6], abs=0.05)
    with pytest.raises(ValueError, match='no fitted plane'):
        RowOffset(1.0, 1.0, True, 50).at(np.array([0]), np.array([0]))


def test_a_rotation_is_read_as_a_plane(scene):
    height, width = scene.right.shape[:2]
    degrees = 0.3  # about +-1 px at the left and right edges
    rotation = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
    right = cv2.warpAffine(scene.right, rotation, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    offset = row_offset(scene.left, right)
    assert offset is not None and offset.shape == (height, width)
    edge = np.tan(np.radians(degrees)) * width  # from the left edge to the right edge
    centre, across, down = offset.plane
    # Turned anticlockwise on screen (OpenCV's positive angle), the right side rises.
    assert across == pytest.approx(-edge, abs=0.25)
    assert abs(centre) < 0.15 and abs(down) < 0.25


def test_whole_pixel_offsets_are_undone_exactly(scene):
    right = np.roll(scene.right, 2, axis=0)  # content 2 px lower
    offset = RowOffset(2.0, 2.0, True, 100, plane=(2.0, 0.0, 0.0), shape=right.shape[:2])
    aligned = align_right_rows(right, offset)
    assert aligned.dtype == right.dtype and aligned.shape == right.shape
    assert np.array_equal(aligned[:-2], scene.right[:-2])


def test_each_pixel_is_read_where_the_plane_puts_its_row():
    height, width = 40, 60
    rows = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    offset = RowOffset(0.5, 1.0, True, 100, plane=(0.3, 1.2, -0.8), shape=(height, width))
    aligned = align_right_rows(rows, offset)
    ys, xs = np.mgrid[0:height, 0:width]
    expected = ys + offset.at(xs, ys)
    inside = (expected >= 0) & (expected <= height - 1)
    # OpenCV's bilinear remap weighs in steps of 1/32 px.
    assert np.allclose(aligned[inside], expected[inside], atol=1 / 32 + 1e-4)
    for dtype in (np.uint8, np.uint16):  # the camera's own type and channels come back
        image = np.zeros((height, width, 3), dtype)
        assert align_right_rows(image, offset).dtype == dtype
    with pytest.raises(ValueError, match='measured on 60x40 images, not 61x40'):
        align_right_rows(np.zeros((height, width + 1), np.float32), offset)


def test_only_offsets_worth_it_are_aligned():
    def offset(typical, shape=(100, 200), corner=0.0):
        # ``corner``: a tilt that puts the image's corners that much further off.
        return RowOffset(typical, typical, True, 50, plane=(typical, 0.0, 2 * corner),
                         shape=shape)
    image = np.zeros((100, 200), np.uint8)
    assert not worth_aligning(None, image.shape)
    assert not worth_aligning(offset(ALIGN_FROM_PX - 0.01), image.shape)
    assert worth_aligning(offset(ALIGN_FROM_PX), image.shape)
    assert not worth_aligning(offset(1.0, shape=(100, 201)), image.shape)  # another size
    # The plane extrapolated to the corners does not count: the typical corner does, and how
    # far the rows are surely off on average over the image.
    assert not worth_aligning(offset(0.1, corner=0.5), image.shape)
    assert worth_aligning(replace(offset(0.1), surely_off=ALIGN_FROM_MEAN_PX), image.shape)
    assert not worth_aligning(replace(offset(0.1), surely_off=ALIGN_FROM_MEAN_PX - 0.01),
                              image.shape)
    same, changed = aligned_right(image, image, offset(0.1))
    assert same is image and not changed


def test_a_stream_keeps_the_maps_of_its_offset(scene, monkeypatch):
    from stereo_depth_ros import row_alignment
    built = []
    real = row_alignment.alignment_maps
    monkeypatch.setattr(row_alignment, 'alignment_maps',
                        lambda offset: built.append(offset) or real(offset))
    aligner = RowAligner()
    first = RowOffset(1.0, 1.0, True, 50, plane=(1.0, 0.0, 0.0), shape=scene.left.shape[:2])
    second = RowOffset(2.0, 2.0, True, 50, plane=(2.0, 0.0, 0.0), shape=scene.left.shape[:2])
    results = [aligner(scene.left, scene.right, offset)[0] for offset in (first, first, second)]
    assert built == [first, second]
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(results[2], align_right_rows(scene.right, second))


def test_aligning_gives_the_matches_back(road, sgbm):
    clean = bad2(sgbm, road.left, road.right, road.disparity)  # 0.9 % wrong
    for shift in (1.0, -2.0):
        right = moved_down(road.right, shift)
        offset = row_offset(road.left, right)
        aligned, changed = aligned_right(road.left, right, offset)
        assert changed
        off = bad2(sgbm, road.left, right, road.disparity)  # 21 and 37 % wrong
        back = bad2(sgbm, road.left, aligned, road.disparity)
        assert back < clean + 0.005 and off > clean + 0.15


def test_the_pipeline_aligns_when_told_the_offset(road, sgbm):
    right = moved_down(road.right, 2.0)
    offset = row_offset(road.left, right)
    result = StereoPipeline(sgbm).process(road.left, right, row_offset=offset)
    assert result.rows_aligned and 'align_ms' in result.timings
    assert bad_n(fill_invalid_kitti(result.disparity), road.disparity, 2.0) < \
        bad2(sgbm, road.left, right, road.disparity) - 0.1
    for pipeline, kwargs in ((StereoPipeline(sgbm, align_rows=False), {}),
                             (StereoPipeline(sgbm), {'swapped': True})):
        assert not pipeline.process(road.left, right, row_offset=offset, **kwargs).rows_aligned
    assert not StereoPipeline(sgbm).process(road.left, right).rows_aligned


def _stereo_pair(scene, right):
    header = make_header(1_700_000_000_000_000_000, 'stereo_left', TYPES)
    left_info, right_info = make_camera_infos(scene.camera, header, header, TYPES)
    return StereoPair(array_to_image(scene.left, 'rgb8', header, TYPES.Image),
                      array_to_image(right, 'rgb8', header, TYPES.Image), left_info, right_info)


@pytest.mark.parametrize('align', [True, False])
def test_the_node_aligns_from_the_first_pairs_check(scene, align):
    manager = PipelineManager({'backend': 'sgbm', 'sgbm.disparity_range': 48,
                               'align_rows': align})
    processor = StereoFrameProcessor(TYPES)
    output = processor.process(_stereo_pair(scene, moved_down(scene.right, 1.5)),
                               manager.pipeline, ['disparity'])
    assert output.early_check is not None  # the first pair is checked before it is processed
    assert processor.row_offset is not None and processor.row_offset.typical > 1.0
    assert output.rows_aligned == align


def test_eval_aligns_by_default_and_names_the_pairs(road, sgbm):
    samples = [StereoSample('straight', road.left, road.right, road.disparity),
               StereoSample('low', road.left, moved_down(road.right, 1.5), road.disparity)]
    aligned = evaluate_backend(sgbm, samples, progress=False)
    as_they_come = evaluate_backend(sgbm, samples, progress=False, align_rows=False)
    assert aligned['rows_aligned'] == ['low'] and as_they_come['rows_aligned'] == []
    assert aligned['pairs'][0]['bad2'] == as_they_come['pairs'][0]['bad2']
    assert aligned['pairs'][1]['bad2'] < as_they_come['pairs'][1]['bad2'] - 0.1
    line = common.aligned_rows_line(['low'], 2)
    assert line.startswith('rows aligned: 1 of 2 pairs') and '(low;' in line


def test_the_warning_says_when_the_rows_are_aligned(scene):
    offset = row_offset(scene.left, moved_down(scene.right, 2.0))
    assert "resampled onto the left's rows (align_rows), but check the rectification" in \
        row_offset_warning('', offset, aligned=True)
    assert 'much worse - check the rectification' in row_offset_warning('', offset)


def test_the_sweep_scores_aligned_pairs(scene, tmp_path, capsys):
    for name, right in (('good', scene.right), ('low', moved_down(scene.right, 2.0))):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / 'left.png'), scene.left[:, :, ::-1])
        cv2.imwrite(str(tmp_path / name / 'right.png'), right[:, :, ::-1])
    assert row_offset_sweep.main(['--pairs', str(tmp_path), '--align',
                                  '--backends', 'sgbm']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith('; not aligned')
    before, after = (float(text) for text in
                     lines[1].split('sgbm confirms ')[1].rstrip(' %').split(' -> '))
    assert after > before + 5
    assert lines[-1].startswith('sgbm, the 1 aligned pairs: ')
    assert row_offset_sweep.main(['--pairs', str(tmp_path), '--align', '--backends', '']) == 2


def test_the_pairs_figure_draws_the_confirmed_disparity_of_aligned_pairs(
        scene, tmp_path, capsys):
    for name, right in (('good', scene.right), ('low', moved_down(scene.right, 2.0)),
                        ('lower', moved_down(scene.right, 3.0))):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / 'left.png'), scene.left[:, :, ::-1])
        cv2.imwrite(str(tmp_path / name / 'right.png'), right[:, :, ::-1])
    figure = tmp_path / 'pairs.png'
    assert row_offset_sweep.main(['--pairs', str(tmp_path), '--align', '--backends', 'sgbm',
                                  '--pairs-figure', str(figure)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f'figure: {figure}'
    picture = cv2.imread(str(figure))
    # The two aligned pairs (not the good one), a row each: left, as it comes, aligned.
    height, width = scene.left.shape[:2]
    assert picture.shape[0] == 2 * (height + 26) + 4 and picture.shape[1] == 3 * width + 8
    # Confirmed disparities are drawn in colour, the rest black: the aligned low pair (second
    # row's last panel) has more colour than as it came (its middle panel).
    row = picture[height + 26 + 4 + 26:]
    coloured = [int((row[:, at:at + width].max(axis=2) > 0).sum())
                for at in (width + 4, 2 * width + 8)]
    assert coloured[1] > 1.2 * coloured[0]
    (tmp_path / 'lower' / 'right.png').write_bytes((tmp_path / 'good' / 'right.png').read_bytes())
    (tmp_path / 'low' / 'right.png').write_bytes((tmp_path / 'good' / 'right.png').read_bytes())
    assert row_offset_sweep.main(['--pairs', str(tmp_path), '--align', '--backends', 'sgbm',
                                  '--pairs-figure', str(tmp_path / 'none.png')]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith('not written, no pair was aligned')
    assert not (tmp_path / 'none.png').exists()
    assert row_offset_sweep.main(['--pairs', str(tmp_path), '--pairs-figure', 'x.png']) == 2
    assert capsys.readouterr().err.strip() == ('row_offset_sweep: --pairs-figure needs --pairs '
                                               'and --align')


def test_the_plane_is_read_at_left_image_columns_and_rows():
    # centre + across * (x / width - 0.5) + down * (y / height - 0.5), by hand.
    offset = RowOffset(1.0, 4.0, True, 50, plane=(1.0, 2.0, 4.0), shape=(100, 200))
    assert offset.at(np.array(0), np.array(0)) == pytest.approx(-2.0)
    assert offset.at(np.array(200), np.array(100)) == pytest.approx(4.0)
    assert offset.at(np.array(100), np.array(25)) == pytest.approx(0.0)
    assert offset.at(np.array(50), np.array(50)) == pytest.approx(0.5)
    corners = [1 + 2 * (x / 200 - 0.5) + 4 * (y / 100 - 0.5)
               for x, y in ((0, 0), (199, 0), (0, 99), (199, 99))]
    assert np.allclose(offset.corner_offsets(), corners)


def test_a_third_of_a_pixel_off_is_aligned():
    def offset(typical):
        return RowOffset(typical, typical, True, 50, plane=(typical, 0.0, 0.0),
                         shape=(100, 200))
    assert worth_aligning(offset(0.3), (100, 200)) and not worth_aligning(offset(0.2), (100, 200))


def test_the_rows_the_view_lacks_repeat_its_last(scene):
    right = scene.right
    offset = RowOffset(2.0, 2.0, True, 100, plane=(2.0, 0.0, 0.0), shape=right.shape[:2])
    aligned = align_right_rows(right, offset)
    # Read 2 px lower, the last two rows have nothing under them: the border repeats.
    assert np.array_equal(aligned[-2:], np.broadcast_to(right[-1], aligned[-2:].shape))


def test_a_pipeline_that_does_not_check_views_aligns_a_swapped_pair_too(road, sgbm):
    right = moved_down(road.right, 2.0)
    offset = row_offset(road.left, right)
    pipeline = StereoPipeline(sgbm, check_views=False)
    assert pipeline.process(road.left, right, swapped=True, row_offset=offset).rows_aligned


def test_another_camera_does_not_get_the_old_cameras_offset(scene):
    processor = StereoFrameProcessor(TYPES)
    pair = _stereo_pair(scene, moved_down(scene.right, 1.5))
    processor.process(pair, StereoPipeline(create_backend('sgbm', disparity_range=48)),
                      ['disparity'])
    assert processor.row_offset is not None
    other = replace(scene.camera, baseline=2 * scene.camera.baseline)
    header = make_header(1_700_000_000_000_000_000, 'stereo_left', TYPES)
    left_info, right_info = make_camera_infos(other, header, header, TYPES)
    processor.camera(left_info, right_info)  # the next pair's camera: not measured yet
    assert processor.row_offset is None


def test_obstacle_scores_align_each_scene_by_its_own_offset(road, monkeypatch):
    from stereo_depth_ros.evaluation import obstacles
    low = moved_down(road.right, 2.0)
    seen = []
    real = StereoPipeline.process

    def process(self, left, right, camera, outputs, row_offset=None):
        result = real(self, left, right, camera, outputs, row_offset=row_offset)
        seen.append(result.rows_aligned)
        return result
    monkeypatch.setattr(StereoPipeline, 'process', process)
    monkeypatch.setattr(obstacles, 'make_scene',
                        lambda seed, height, width, kind: replace(road, right=low))
    sgbm = create_backend('sgbm', disparity_range=48)
    obstacles.evaluate_obstacles(sgbm, [0], 192, 384, progress=False)
    obstacles.evaluate_obstacles(sgbm, [0], 192, 384, progress=False, align_rows=False)
    assert seen == [True, False]


def _parsed(module, argv):
    import argparse
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize('flags', [[], ['--no-align-rows']])
def test_eval_and_real_bench_pass_no_align_rows_on(flags, road, monkeypatch, capsys):
    from stereo_depth_ros.commands import evaluate as evaluate_command, real_bench
    from stereo_depth_ros.data import datasets
    from stereo_depth_ros.evaluation import real_bench as bench
    samples = [StereoSample('straight', road.left, road.right, road.disparity),
               StereoSample('low', road.left, moved_down(road.right, 1.5), road.disparity)]
    monkeypatch.setattr(evaluate_command, 'load_dataset', lambda *args, **kwargs: samples)
    args = _parsed(evaluate_command, ['--dataset', 'synthetic', '--root', '1', '--backend',
                                      'sgbm', '--backend-option', 'disparity_range=48', *flags])
    assert evaluate_command.run(args) == 0
    said = capsys.readouterr().err
    assert ('rows aligned: 1 of 2 pairs' in said) == (not flags)
    told = []

    def run_real_bench(backends, root, figures, align_rows=True):
        told.append(align_rows)
        return {'sgbm': {'rows_aligned': ['cones'] if align_rows else [], 'pairs': [{}, {}]}}
    monkeypatch.setattr(datasets, 'real_suite_dataset', lambda root: None)
    monkeypatch.setattr(bench, 'run_real_bench', run_real_bench)
    monkeypatch.setattr(bench, 'format_tables', lambda results: '')
    assert real_bench.run(_parsed(real_bench, ['--backends', 'sgbm', '--figures', '',
                                               *flags])) == 0
    assert told == [not flags]
    assert ('rows aligned: 1 of 2 pairs' in capsys.readouterr().out) == (not flags)


def test_real_bench_measures_each_scene_s_rows_once_for_all_backends(road, monkeypatch):
    from stereo_depth_ros.evaluation import evaluate, real_bench as bench
    samples = [StereoSample('straight', road.left, road.right, road.disparity),
               StereoSample('low', road.left, moved_down(road.right, 1.5), road.disparity)]
    monkeypatch.setattr(bench, 'real_suite_dataset', lambda root: samples)
    measured = []

    def counted_row_offset(left, right, *args, **kwargs):
        measured.append(1)
        return row_offset(left, right, *args, **kwargs)
    monkeypatch.setattr(evaluate, 'row_offset', counted_row_offset)
    backends = [create_backend('sgbm', disparity_range=48),
                create_backend('sgbm', disparity_range=32)]
    results = bench.run_real_bench(backends, progress=False)
    assert len(measured) == len(samples)  # not once per backend (both are named sgbm)
    assert results['sgbm']['rows_aligned'] == ['low']
    aligned_bad2 = results['sgbm']['pairs'][1]['bad2']
    plain = bench.run_real_bench(backends[1:], progress=False, align_rows=False)['sgbm']
    assert plain['rows_aligned'] == [] and plain['pairs'][1]['bad2'] > aligned_bad2 + 0.05


def test_the_aligned_pairs_line_names_ten():
    names = [f'p{i}' for i in range(12)]
    line = common.aligned_rows_line(names, 20)
    assert '(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 and 2 more;' in line
    assert 'more' not in common.aligned_rows_line(names[:10], 20)
    assert '(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 and 1 more;' in \
        common.aligned_rows_line(names[:11], 20)


def test_the_shift_sweep_scores_the_aligned_view(road, monkeypatch, capsys):
    from stereo_depth_ros.training import row_offset_sweep as sweep
    monkeypatch.setattr(sweep, 'full_range_scenes', lambda count, kinds, photos: [
        StereoSample('road', road.left, road.right, road.disparity)])
    monkeypatch.setattr(sweep, 'create_backend',
                        lambda name, device: create_backend(name, disparity_range=48))
    sweep.sweep_shifts([2.0], ['sgbm'], 1, '', align=True)
    row = capsys.readouterr().out.splitlines()[-1].split()
    # shift, sgbm bad-2 / bad-3, sgbm aligned bad-2 / bad-3, measured
    as_it_comes, aligned = float(row[1]), float(row[4])
    assert aligned < as_it_comes - 10


def test_the_shift_sweep_draws_the_scene_at_its_largest_shift(road, monkeypatch, tmp_path,
                                                              capsys):
    from stereo_depth_ros.training import row_offset_sweep as sweep
    monkeypatch.setattr(sweep, 'full_range_scenes', lambda count, kinds, photos: [
        StereoSample('road', road.left, road.right, road.disparity)])
    monkeypatch.setattr(sweep, 'create_backend',
                        lambda name, device: create_backend(name, disparity_range=48))
    drawn = []
    monkeypatch.setattr(sweep, 'disparity_panels',
                        lambda sample, disparity, label: drawn.append(label) or [])
    figure = tmp_path / 'rows.png'
    sweep.sweep_shifts([0.0, 2.0], ['sgbm'], 1, '', align=True, figure=str(figure))
    assert drawn == ['sgbm, right view 2 px low, as it comes',
                     'sgbm, right view 2 px low, aligned']
    assert capsys.readouterr().out.splitlines()[-1] == f'figure: {figure}'
    assert cv2.imread(str(figure)) is not None
    assert sweep.main(['--pairs', str(tmp_path), '--figure', str(figure)]) == 2
    assert capsys.readouterr().err.strip() == 'row_offset_sweep: --figure needs --shifts'


@pytest.mark.parametrize('flags', [[], ['--no-align-rows']])
def test_eval_obstacle_passes_no_align_rows_on(flags, monkeypatch):
    from stereo_depth_ros.commands import evaluate as evaluate_command
    from stereo_depth_ros.evaluation import obstacles
    told = []

    def evaluate_obstacles(backend, seeds, params, align_rows=True):
        told.append(align_rows)
        raise KeyboardInterrupt  # what it was told is all this test wants
    monkeypatch.setattr(obstacles, 'evaluate_obstacles', evaluate_obstacles)
    args = _parsed(evaluate_command, ['--dataset', 'synthetic', '--synthetic-kind', 'road',
                                      '--root', '1', '--obstacle', '--backend', 'sgbm', *flags])
    with pytest.raises(KeyboardInterrupt):
        evaluate_command.run(args)
    assert told == [not flags]


def test_eval_obstacle_names_the_scenes_it_aligned(road, sgbm, monkeypatch):
    from stereo_depth_ros.evaluation import obstacles
    low = replace(road, right=moved_down(road.right, 1.5))
    monkeypatch.setattr(obstacles, 'make_scene',
                        lambda seed, height, width, kind: low if seed == 1 else road)
    aligned = obstacles.evaluate_obstacles(sgbm, [0, 1], progress=False)
    assert aligned['rows_aligned'] == ['road_1']
    as_they_come = obstacles.evaluate_obstacles(sgbm, [0, 1], progress=False, align_rows=False)
    assert as_they_come['rows_aligned'] == []
