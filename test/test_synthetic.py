"""Synthetic stereo scenes: determinism, exact ground truth, right-view consistency, speed."""

import time

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data.datasets import SyntheticSamples, parse_seed_spec
from stereo_depth_ros.data.synthetic import (EVAL_SEED_OFFSET, MIN_DISPARITY, ROAD_BASELINE,
                                             SKY_DISPARITY, TEST_SEED_OFFSET,
                                             VALIDATION_SEED_OFFSET, SyntheticScene,
                                             check_training_seed,
                                             eval_seeds, make_road_sequence, make_scene)
from stereo_depth_ros.errors import DatasetError


def _warp_right_to_left(right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """Sample the right image at x - d (bilinear): the left view where nothing is occluded."""
    height, width = disparity.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] - disparity
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    return cv2.remap(right.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _matched(scene: SyntheticScene) -> np.ndarray:
    """Left pixels whose two neighbouring right pixels at x - d show the same surface."""
    height, width = scene.disparity.shape
    xr = np.arange(width, dtype=np.float32)[None, :] - scene.disparity
    x0 = np.floor(xr).astype(int)
    inside = (x0 >= 0) & (x0 + 1 < width)
    x0 = np.clip(x0, 0, width - 2)
    rows = np.arange(height)[:, None]
    same = np.ones_like(inside)
    for offset in (0, 1):
        same &= np.abs(scene.disparity_right[rows, x0 + offset] - scene.disparity) < 0.3
    return inside & same


def _photometric_error(scene: SyntheticScene, disparity: np.ndarray) -> np.ndarray:
    warped = _warp_right_to_left(scene.right, disparity)
    return np.abs(warped - scene.left.astype(np.float32)).mean(axis=2)


@pytest.mark.parametrize('kind', ['layered', 'road'])
def test_same_seed_same_scene_other_seed_other_scene(kind):
    first = make_scene(11, 64, 128, kind=kind)
    again = make_scene(11, 64, 128, kind=kind)
    other = make_scene(12, 64, 128, kind=kind)
    for name in ('left', 'right', 'disparity'):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.camera == again.camera
    assert not np.array_equal(first.left, other.left)
    assert not np.array_equal(first.disparity, other.disparity)


@pytest.mark.parametrize('kind,max_disparity', [('layered', 64.0), ('layered', 24.0),
                                                ('road', 64.0), ('road', 32.0)])
def test_images_and_disparity_ranges(kind, max_disparity):
    for seed in range(3):
        scene = make_scene(seed, 96, 192, kind=kind, max_disparity=max_disparity)
        assert scene.kind == kind
        assert scene.left.shape == scene.right.shape == (96, 192, 3)
        assert scene.left.dtype == scene.right.dtype == np.uint8
        assert scene.disparity.shape == (96, 192) and scene.disparity.dtype == np.float32
        assert np.isfinite(scene.disparity).all()
        assert scene.disparity.min() >= MIN_DISPARITY - 1e-4
        assert scene.disparity.max() <= max_disparity + 1e-4
        # Scenes use a good part of the range, not a constant.
        assert scene.disparity.max() - scene.disparity.min() > 0.2 * max_disparity
        assert scene.left.std() > 10


@pytest.mark.parametrize('kind', ['layered', 'road'])
def test_right_view_is_left_view_warped_by_ground_truth(kind):
    for seed in (EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 1):
        scene = make_scene(seed, 128, 256, kind=kind, photometric=False)
        matched = _matched(scene)
        assert matched.mean() > 0.6  # the rest: occluded or out of the right view
        error = _photometric_error(scene, scene.disparity)[matched]
        # Only 8-bit rounding and bilinear re-sampling of the right image separate the views.
        assert np.median(error) < 0.8
        assert error.mean() < 1.2
        assert np.percentile(error, 95) < 3.5
        # Sub-pixel exact: half a pixel off already doubles the error, two pixels much more.
        half = _photometric_error(scene, scene.disparity + 0.5)[matched]
        assert half.mean() > 2 * error.mean()
        shifted = _photometric_error(scene, scene.disparity + 2.0)[matched]
        assert shifted.mean() > 4 * error.mean()


def test_photometric_noise_is_mild():
    scene = make_scene(5, 128, 256)
    clean = make_scene(5, 128, 256, photometric=False)
    np.testing.assert_array_equal(scene.disparity, clean.disparity)
    difference = np.abs(scene.left.astype(np.float32) - clean.left)
    assert 0.2 < difference.mean() < 4.0
    matched = _matched(scene)
    assert _photometric_error(scene, scene.disparity)[matched].mean() < 10.0


def test_road_ground_truth_follows_camera_geometry():
    scene = make_scene(EVAL_SEED_OFFSET + 2, 128, 256, kind='road')
    camera = scene.camera
    assert camera.baseline == ROAD_BASELINE and camera.disparity_offset == 0
    disparity, mask = scene.disparity, scene.obstacle_mask
    assert mask is not None and mask.any()
    # The nearest obstacle is fronto-parallel at obstacle_distance: d = fx * B / Z.
    np.testing.assert_allclose(disparity[mask], camera.focal_baseline / scene.obstacle_distance,
                               rtol=1e-5)
    # Sky: the top row is the backdrop at SKY_DISPARITY.
    np.testing.assert_allclose(disparity[0], SKY_DISPARITY)
    # Ground: rows below the obstacles back-project onto one plane y = camera height.
    rows = np.arange(scene.disparity.shape[0], dtype=np.float64)[:, None]
    bottom = disparity[-5:].astype(np.float64)
    height = (rows[-5:] - camera.cy) / camera.fy * camera.focal_baseline / bottom
    assert np.ptp(height) < 1e-3
    assert 1.0 < height.mean() < 3.0
    # Each ground row has one disparity, growing linearly downwards.
    slope = np.diff(bottom[:, 0])
    np.testing.assert_allclose(slope, slope[0], rtol=1e-4)
    assert slope[0] > 0


def test_obstacle_mask_is_the_nearest_obstacle():
    for seed in range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 4):
        scene = make_scene(seed, 128, 256, kind='road')
        nearest = scene.camera.focal_baseline / scene.obstacle_distance
        assert scene.obstacle_mask.sum() > 20
        # Nothing outside the mask is as near as the obstacle except the ground below it.
        rows = np.nonzero(scene.obstacle_mask)[0]
        above_bottom = np.zeros_like(scene.obstacle_mask)
        above_bottom[:rows.max() + 1] = True
        others = ~scene.obstacle_mask & above_bottom
        assert (scene.disparity[others] < nearest - 1e-3).all()
        assert 4.0 <= scene.obstacle_distance <= 30.0


def test_empty_road_has_no_obstacle():
    scene = make_scene(3, 96, 192, kind='road', obstacles=0)
    assert scene.obstacle_mask is None and scene.obstacle_distance is None
    with pytest.raises(DatasetError, match='obstacles'):
        make_scene(3, 96, 192, kind='road', obstacles=9)


def test_road_sequence_obstacle_approaches():
    frames = make_road_sequence(4, 5, 96, 192)
    assert len(frames) == 5
    distances = [frame.obstacle_distance for frame in frames]
    assert distances[0] == pytest.approx(30.0) and distances[-1] == pytest.approx(8.0)
    assert np.all(np.diff(distances) < 0)
    areas = [frame.obstacle_mask.sum() for frame in frames]
    assert np.all(np.diff(areas) > 0)
    assert all(frame.camera == frames[0].camera for frame in frames)
    # Same world: the sky row does not change from frame to frame (apart from noise).
    top = [frame.left[:4].astype(np.float32) for frame in frames]
    assert np.abs(top[0] - top[-1]).mean() < 3.0
    again = make_road_sequence(4, 5, 96, 192)
    np.testing.assert_array_equal(again[2].left, frames[2].left)


def test_dataset_and_seed_convention():
    dataset = SyntheticSamples(list(eval_seeds(3)), 'road', 64, 128)
    assert len(dataset) == 3 and dataset.seeds[0] == TEST_SEED_OFFSET
    np.testing.assert_array_equal(dataset[1].left, make_scene(TEST_SEED_OFFSET + 1, 64, 128,
                                                              'road', 64.0).left)
    # Test seeds (eval:N) never overlap the validation seeds that steer training decisions.
    assert VALIDATION_SEED_OFFSET == EVAL_SEED_OFFSET < TEST_SEED_OFFSET
    assert min(eval_seeds(1000)) >= TEST_SEED_OFFSET
    assert parse_seed_spec('eval:3') == list(eval_seeds(3))
    assert check_training_seed(EVAL_SEED_OFFSET - 1) == EVAL_SEED_OFFSET - 1
    with pytest.raises(DatasetError, match='reserved'):
        check_training_seed(EVAL_SEED_OFFSET)


@pytest.mark.parametrize('kwargs,match', [({'kind': 'forest'}, 'kind'),
                                          ({'height': 8}, 'at least'),
                                          ({'max_disparity': 1.0}, 'max_disparity')])
def test_bad_arguments_raise_dataset_error(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        make_scene(0, **{'height': 64, 'width': 128, **kwargs})


def test_generation_is_fast():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        make_scene(0, 256, 512)
        for kind in ('layered', 'road'):
            times = []
            for seed in range(3):
                start = time.process_time()
                make_scene(seed, 256, 512, kind=kind)
                times.append(time.process_time() - start)
            # About 50 ms of CPU on one core; generous bound for a busy machine.
            assert np.median(times) < 0.2, (kind, times)
    finally:
        cv2.setNumThreads(threads)


def test_forward_warp_shows_the_nearer_of_two_pixels_landing_together():
    from stereo_depth_ros.data.mono_stereo import forward_warp
    left = np.arange(20, dtype=np.float32)[None, :, None].repeat(3, axis=2) * 10
    disparity = np.full((1, 20), 5.0, np.float32)
    disparity[0, 11] = 6.0  # x = 10 and x = 11 both land at 5; the nearer x = 11 wins
    right, right_disparity, _ = forward_warp(left, disparity)
    np.testing.assert_array_equal(right[0, 5], left[0, 11])
    assert right_disparity[0, 5] == 6.0


def test_mono_disparity_is_slanted_and_nearer_towards_the_bottom():
    from stereo_depth_ros.data.mono_stereo import plausible_disparity
    photo = cv2.resize(np.random.default_rng(0).uniform(0, 255, (8, 16, 3)).astype(np.float32),
                       (96, 48))
    slanted, bottom_minus_top = [], []
    for seed in range(12):
        disparity = plausible_disparity(photo, np.random.default_rng(seed), 40.0)
        slanted.append(np.mean(np.diff(disparity, axis=1) != 0))
        bottom_minus_top.append(disparity[-12:].mean() - disparity[:12].mean())
    assert np.median(slanted) > 0.5  # planes tilt sideways, not only at segment edges
    assert np.mean(bottom_minus_top) > 2.0
