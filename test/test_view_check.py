"""The view check: pairs whose views do not confirm their disparity come out unknown."""

import copy
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.msgs.obstacle import make_obstacle_range
from stereo_depth_ros.msgs.types import MessageTypes
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.view_check import (check_views, MIN_AGREEMENT, pixel_noise,
                                         SWAPPED_VIEWS, Views)
from fake_backends import ConstantBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
import view_check_sweep  # noqa: E402  (a script in tools/, not a package)


@pytest.fixture(scope='module')
def scene():
    return make_scene(3, height=128, width=256, kind='layered', max_disparity=32)


def test_the_true_disparity_is_confirmed(scene):
    found = check_views(scene.left, scene.right, scene.disparity)
    assert found.verdict is Views.MATCH and found.agreement > 0.8 and found.note() == ''


def test_a_wrong_disparity_is_not(scene):
    # The same views, every estimate 12 px off: nothing the right view confirms.
    found = check_views(scene.left, scene.right, scene.disparity + 12)
    assert found.verdict is Views.NO_MATCH and found.agreement < MIN_AGREEMENT


def _noisy(rng, image, sigma):
    return np.clip(np.rint(image + rng.normal(0, sigma, image.shape)), 0, 255).astype(np.uint8)


def test_sensor_noise_on_a_blank_wall_is_not_texture(scene):
    # A textured strip beside a blank wall, both views noisy (10 grey levels): the wall's
    # noise matches nothing, but it is noise, not texture the estimate could be judged by.
    rng = np.random.default_rng(2)
    left, right = (np.full_like(scene.left, 120) for _ in range(2))
    left[:, :24], right[:, :24] = scene.left[:, :24], scene.right[:, :24]
    left, right = (_noisy(rng, image.astype(np.float32), 10) for image in (left, right))
    found = check_views(left, right, scene.disparity)
    assert found.verdict is Views.MATCH and found.judged < 0.15


def test_a_dark_scene_is_still_judged_by_its_texture(scene):
    # Underexposed (gain 0.05) with read noise of 2 levels: a few grey levels of scene.
    rng = np.random.default_rng(3)
    views = (scene.left, scene.right)
    left, right = (_noisy(rng, image * np.float32(0.05), 2) for image in views)
    found = check_views(left, right, scene.disparity)
    assert found.verdict is Views.MATCH


def test_a_ramp_along_the_rows_confirms_nothing():
    # Light leaking onto a covered lens: a ramp of shade along the rows is the same ramp at
    # every disparity, its mean aside.
    rng = np.random.default_rng(7)
    ramp = np.repeat(np.linspace(20, 220, 200, dtype=np.float32)[None, :], 120, axis=0)
    left, right = (_noisy(rng, ramp, 1) for _ in range(2))
    for shift in (0.0, 7.0, 30.0, 60.0):
        found = check_views(left, right, np.full((120, 200), shift, np.float32))
        assert found.verdict is Views.NO_TEXTURE


def test_a_small_textured_patch_is_still_judged(scene):
    # A blank view but for a patch of about 0.2 % of the pair: little, but enough to judge.
    left, right = (np.full((256, 512, 3), 100, np.uint8) for _ in range(2))
    left[100:112, 200:212] = scene.left[50:62, 100:112]
    right[100:112, 190:202] = scene.left[50:62, 100:112]  # 10 px to the left
    found = check_views(left, right, np.full((256, 512), 10.0, np.float32))
    assert 0.001 < found.judged < 0.005 and found.verdict is Views.MATCH


def test_absurd_disparities_are_no_estimate_and_raise_no_warning(scene):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        found = check_views(scene.left, scene.right, np.full(scene.disparity.shape, 1e300))
    assert found.verdict is Views.NO_TEXTURE


def test_texture_that_varies_only_down_the_image_confirms_nothing():
    # A vertical ramp of shade looks the same at every disparity: it is not judged at all.
    rng = np.random.default_rng(4)
    ramp = np.repeat(np.linspace(20, 220, 120, dtype=np.float32)[:, None], 200, axis=1)
    left, right = (_noisy(rng, ramp, 1) for _ in range(2))
    for shift in (0.0, 7.0, 30.0):
        found = check_views(left, right, np.full((120, 200), shift, np.float32))
        assert found.verdict is Views.NO_TEXTURE


def test_road_scenes_paired_with_another_road_do_not_match():
    # Road and sky shade down the image; what is left to judge belongs to different scenes.
    road = [make_scene(seed, height=256, width=512, kind='road') for seed in (3, 4, 5)]
    for other in road[1:]:
        found = check_views(road[0].left, other.right, road[0].disparity)
        assert found.verdict is Views.NO_MATCH, found
    assert check_views(road[0].left, road[0].right, road[0].disparity).verdict is Views.MATCH


def test_views_of_two_scenes_or_a_black_right_view_do_not_match(scene):
    other = make_scene(4, height=128, width=256, kind='layered', max_disparity=32)
    for right in (other.right, np.zeros_like(scene.right)):
        found = check_views(scene.left, right, scene.disparity)
        assert found.verdict is Views.NO_MATCH
        assert found.note().startswith('left and right views do not match: the right view '
                                       f'confirms {100 * found.agreement:.1f} % ')


def test_the_pixel_noise_is_the_median_step_of_the_rows():
    rng = np.random.default_rng(6)
    noisy = np.clip(np.rint(rng.normal(120, 10, (200, 300))), 0, 255).astype(np.uint8)
    assert pixel_noise(noisy) == pytest.approx(10, rel=0.1)
    for image in (noisy, noisy[:, :41], rng.integers(0, 4, (60, 77), dtype=np.uint8)):
        steps = np.abs(np.diff(image[::4].astype(np.float32), axis=1))
        assert pixel_noise(image) == np.median(steps) / (0.6745 * math.sqrt(2))
    # An even count of steps (1 and 2): the mean of the two middle ones, as np.median has it.
    assert pixel_noise(np.array([[0, 1, 3]], np.uint8)) == 1.5 / (0.6745 * math.sqrt(2))


def test_a_random_dot_pair_matches_though_its_texture_looks_like_noise():
    # Random dots are noise to the noise estimate, but both views share them; independent
    # noise of the same kind does not match.
    rng = np.random.default_rng(8)
    dots = rng.integers(0, 256, (120, 208), dtype=np.uint8)
    left, right = dots[:, :200].copy(), dots[:, 8:].copy()  # disparity 8 px
    found = check_views(left, right, np.full((120, 200), 8.0, np.float32))
    assert found.verdict is Views.MATCH and found.agreement > 0.9
    other = rng.integers(0, 256, (120, 200), dtype=np.uint8)
    found = check_views(left, other, np.full((120, 200), 8.0, np.float32))
    assert found.verdict is Views.NO_TEXTURE and found.judged < 0.001
    assert found.note().startswith('no texture to match: 0 % of the pair has texture above')


def test_blank_views_leave_nothing_to_match():
    grey = np.full((120, 200, 3), 90, np.uint8)
    found = check_views(grey, grey, np.full((120, 200), 5.0, np.float32))
    assert found.verdict is Views.NO_TEXTURE and math.isnan(found.agreement)
    assert found.note().startswith('no texture to match: 0 % of the pair has texture above')


def test_noise_in_the_dark_does_not_pass():
    # Shrinking averages most of the noise away; what is left matches nothing.
    rng = np.random.default_rng(0)
    for shape in ((120, 200), (384, 1248)):
        dark = [np.clip(rng.normal(8, 3, shape), 0, 255).astype(np.uint8) for _ in range(2)]
        found = check_views(*dark, np.full(shape, 5.0, np.float32))
        assert found.verdict is not Views.MATCH


def test_no_estimate_on_a_textured_pair_leaves_nothing_to_judge(scene):
    found = check_views(scene.left, scene.right, np.full(scene.disparity.shape, np.nan))
    assert found.verdict is Views.NO_TEXTURE


def test_a_pair_too_small_to_judge_passes():
    tiny = np.zeros((30, 30), np.uint8)
    assert check_views(tiny, tiny, np.full((30, 30), np.nan)).verdict is Views.MATCH


def test_a_pair_that_shrinks_to_the_least_side_is_judged(scene):
    # 40x40 px shrinks to 20x20 (MIN_SIDE): judged, so a black right view fails it; a pair
    # too small to judge passes without the warning about a view with no disparity.
    left = np.ascontiguousarray(scene.left[40:80, 100:140])
    found = check_views(left, np.zeros_like(left), scene.disparity[40:80, 100:140])
    assert found.verdict is not Views.MATCH
    tiny = np.zeros((30, 30), np.uint8)
    passed = check_views(tiny, tiny, np.zeros((30, 30), np.float32))
    assert passed.verdict is Views.MATCH and passed.caution() == ''
    result = StereoPipeline(ConstantBackend(0.0, 16.0)).process(tiny, tiny)
    assert not result.views_unconfirmed and result.notes == []


def test_matches_beyond_either_edge_of_the_right_image_are_not_judged(scene):
    # An estimate that puts every match outside the right image (beyond its left edge, or
    # its right one) leaves nothing to judge: its edge column, repeated, is no view.
    for beyond in (1000.0, -1000.0):
        found = check_views(scene.left, scene.right, np.full(scene.disparity.shape, beyond))
        assert found.verdict is Views.NO_TEXTURE, beyond


def test_a_negative_disparity_is_depth_not_a_still_view(scene):
    # Principal points apart (cx_left - cx_right < 0) give negative disparities: a view at
    # -8 px has depth; only estimates near 0 px say "no disparity in view".
    right = np.roll(scene.left, 8, axis=1)  # right x + 8 shows left x: disparity -8 px
    found = check_views(scene.left, right, np.full(scene.disparity.shape, -8.0, np.float32))
    assert found.verdict is Views.MATCH
    assert found.still == 0.0 and found.caution() == ''


def test_the_pipeline_reports_a_pair_whose_views_do_not_match_as_unknown(scene):
    backend = create_backend('sgbm', disparity_range=48)
    black = np.zeros_like(scene.right)
    result = StereoPipeline(backend).process(scene.left, black, scene.camera,
                                             outputs={'depth', 'obstacle', 'points', 'color'})
    assert np.isnan(result.disparity).all() and np.isnan(result.depth).all()
    assert np.isnan(result.points).all() and not result.color.any()  # unknown is black
    assert not result.obstacle.found and result.max_range == result.min_range
    assert len(result.notes) == 1 and 'views do not match' in result.notes[0]
    assert result.timings['view_check_ms'] > 0
    types = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))
    header = types.Header(stamp=types.Time(sec=1, nanosec=0), frame_id='cam')
    reading = make_obstacle_range(result.obstacle.distance, header, types, result.min_range,
                                  result.max_range).range
    assert math.isnan(reading)  # no valid reading, not "nothing within range" (+inf)
    # Without the check the chance matches come through, as before.
    unchecked = StereoPipeline(backend, check_views=False).process(
        scene.left, black, scene.camera, outputs={'depth'})
    assert np.isfinite(unchecked.disparity).any() and unchecked.notes == []
    assert unchecked.max_range > unchecked.min_range


def test_one_image_on_both_topics_is_not_a_pair(scene):
    # Both topics from one camera: every estimate near 0 px matches, and a network paints a
    # surface. Two real cameras differ by their sensors' noise on nearly every pixel.
    for estimate in (np.zeros(scene.disparity.shape, np.float32), scene.disparity):
        found = check_views(scene.left, scene.left.copy(), estimate)
        assert found.verdict is Views.SAME_IMAGE, found
    assert found.note().startswith('left and right images are the same image (more than 99 %'
                                   ' of their textured pixels equal)')
    noisy = np.clip(scene.left + np.random.default_rng(0).normal(0, 1.0, scene.left.shape),
                    0, 255).astype(np.uint8)
    assert check_views(scene.left, noisy, np.zeros(scene.disparity.shape, np.float32)
                       ).verdict is not Views.SAME_IMAGE
    for backend in (create_backend('sgbm', disparity_range=48), ConstantBackend(3.0, 47.0)):
        result = StereoPipeline(backend).process(scene.left, scene.left.copy(), scene.camera,
                                                 outputs={'depth', 'obstacle'})
        assert np.isnan(result.depth).all() and not result.obstacle.found
        assert len(result.notes) == 1 and 'same image' in result.notes[0]


def test_one_camera_s_image_twice_with_noise_passes_with_a_warning(scene):
    # Re-encoded or noisy, one camera's image on both topics is not equal: it matches at 0 px
    # everywhere, which a view all beyond the camera's reach does too, and the Range said
    # "nothing within range" without a word.
    rng = np.random.default_rng(1)
    twice = _noisy(rng, scene.left, 1.0), _noisy(rng, scene.left, 1.0)
    result = StereoPipeline(create_backend('sgbm', disparity_range=48)).process(
        *twice, scene.camera, outputs={'obstacle'})
    assert result.views.verdict is Views.MATCH and result.views.still > 0.99
    assert len(result.notes) == 1 and result.notes[0].startswith(
        'no disparity in view: the estimate is below 0.5 px on 100 % of the pixels with '
        "texture: is one camera's image sent as both topics")
    found = check_views(scene.left, scene.right, scene.disparity)  # a scene with depth
    assert found.still < 0.5 and found.caution() == ''


class CountingPainter(ConstantBackend):
    """A painter that counts its calls."""

    calls = 0

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super()._compute(left, right)


def test_a_pair_said_to_be_swapped_is_unknown_without_running_the_backend(scene):
    # Views that match well (the true pair), so only ``swapped`` can make it unknown.
    backend = CountingPainter(40.0, 64.0)
    result = StereoPipeline(backend).process(scene.left, scene.right, scene.camera,
                                             outputs={'depth', 'obstacle', 'color', 'points'},
                                             swapped=True)
    assert backend.calls == 0 and result.views is SWAPPED_VIEWS and result.views_unconfirmed
    assert np.isnan(result.disparity).all() and np.isnan(result.depth).all()
    assert np.isnan(result.points).all() and not result.color.any()
    assert not result.obstacle.found and math.isnan(result.obstacle.distance)
    assert result.min_range == result.max_range
    assert len(result.notes) == 1
    assert result.notes[0].startswith('left and right look swapped: the pair check found')
    # check_views false: the backend's output, swapped or not.
    kept = StereoPipeline(backend, check_views=False).process(
        scene.left, scene.right, scene.camera, outputs={'obstacle'}, swapped=True)
    assert backend.calls == 1 and kept.obstacle.found and kept.notes == []


def test_an_unknown_pair_leaves_the_stream_s_colour_scale_alone(scene):
    pipeline = StereoPipeline(create_backend('sgbm', disparity_range=48))
    pipeline.process(scene.left, scene.right, scene.camera, outputs={'color'})
    before = copy.deepcopy(vars(pipeline.colour_scale))
    black = pipeline.process(scene.left, np.zeros_like(scene.right), scene.camera,
                             outputs={'color'})
    assert not black.color.any() and vars(pipeline.colour_scale) == before


def test_a_pair_whose_views_match_is_left_as_the_backend_gives_it(scene):
    backend = create_backend('sgbm', disparity_range=48)
    checked = StereoPipeline(backend).process(scene.left, scene.right, scene.camera)
    unchecked = StereoPipeline(backend, check_views=False).process(scene.left, scene.right,
                                                                   scene.camera)
    assert checked.notes == []
    np.testing.assert_array_equal(checked.disparity, unchecked.disparity)
    np.testing.assert_array_equal(checked.depth, unchecked.depth)


def _painter() -> ConstantBackend:
    """A backend that paints a near surface (40 px) whatever it is shown, as a network can."""
    return ConstantBackend(40.0, 64.0, 'painter')


def test_no_obstacle_is_made_up_from_views_that_do_not_match(scene):
    other = make_scene(5, height=128, width=256, kind='layered', max_disparity=32)
    unchecked = StereoPipeline(_painter(), check_views=False).process(
        scene.left, other.right, scene.camera, outputs={'obstacle'})
    assert unchecked.obstacle.found  # the painted surface
    checked = StereoPipeline(_painter()).process(scene.left, other.right, scene.camera,
                                                 outputs={'obstacle'})
    assert not checked.obstacle.found and math.isnan(checked.obstacle.distance)


def test_the_sweep_builds_its_failing_pairs():
    rng = np.random.default_rng(1)
    real = [(f'scene{i}', np.full((60 + i, 80, 3), i, np.uint8),
             np.full((60 + i, 80, 3), i, np.uint8)) for i in range(10)]
    pairs = list(view_check_sweep.failing_pairs(real, rng))
    groups = [group for group, *_ in pairs]
    assert groups.count('two scenes') == 4 and groups.count('right black') == 2
    for group, name, left, right in pairs:
        assert left.shape == right.shape and left.dtype == right.dtype == np.uint8
    two = next(pair for pair in pairs if pair[0] == 'two scenes')
    assert two[1] == 'scene0 + scene7' and two[2].shape == (60, 80, 3)
    dark = view_check_sweep.darker(rng, np.full((10, 10), 200, np.uint8))
    assert 3 < dark.mean() < 9
    image = np.full((16, 16, 3), 100, np.uint8)
    groups = dict(view_check_sweep.DEGRADATIONS)
    assert set(groups) == {'dark', 'noisy', 'rows 2 px', 'rows 3 px', 'right gain .5',
                           'right gamma', 'JPEG 10'}
    for degrade in groups.values():
        left, right = degrade(rng, image, image)
        assert left.shape == right.shape == image.shape and right.dtype == np.uint8
