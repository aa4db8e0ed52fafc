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


def test_mono_pair_is_exact_where_visible_and_shows_background_in_its_holes(monkeypatch):
    # A red square 40 px near on textured blue 10 px away, no photometric changes: the right
    # view at x - d is the left pixel exactly wherever visible; the 30 px gap the right camera
    # sees beside the square, and the columns beyond the left image's right edge, show blue
    # background, not red nor black; a row whose every pixel lands outside the right view
    # (disparity beyond the width) is inpainted, and the rows after it are still rendered.
    from stereo_depth_ros.data import mono_stereo
    rng = np.random.default_rng(0)
    left = np.zeros((9, 200, 3), np.float32)
    left[..., 1] = rng.integers(0, 50, (9, 200))
    left[..., 2] = 200.0
    left[:, 80:120] = (250.0, 0.0, 0.0)
    disparity = np.full((9, 200), 10.0, np.float32)
    disparity[:, 80:120] = 40.0
    disparity[4] = 250.0  # and no two neighbours of one surface: no segment in that row
    disparity[4, ::2] = 252.0
    monkeypatch.setattr(mono_stereo, '_fit', lambda photo, rng, height, width: photo.copy())
    scene = mono_stereo.make_mono_pair(left, 0, 9, 200, 64.0, photometric=False,
                                       disparity=disparity)
    assert np.array_equal(scene.left, left.astype(np.uint8))
    rows, cols = np.mgrid[0:9, 0:200]
    landing = cols - disparity.astype(int)
    inside = landing >= 0
    seen = np.zeros_like(inside)
    seen[inside] = scene.disparity_right[rows[inside], landing[inside]] == disparity[inside]
    assert seen[[0, 1, 2, 3, 5, 6, 7, 8]].mean() > 0.7
    np.testing.assert_array_equal(scene.right[rows[seen], landing[seen]], scene.left[seen])
    holes = np.isnan(scene.disparity_right)
    assert holes[:, 80:110].all() and holes[:, 190:].all() and holes[4].all()
    others = np.delete(scene.right, 4, axis=0)[np.delete(holes, 4, axis=0)]
    assert (others[:, 0] == 0).all() and (others[:, 2] == 200).all()
    neighbours = (scene.right[3].astype(np.float32) + scene.right[5]) / 2
    assert np.abs(scene.right[4] - neighbours).mean() < 20


def test_forward_warp_of_a_slanted_surface_keeps_both_views_consistent():
    # Disparity falling linearly along x stretches the surface in the right view: each right
    # pixel xr shows the left point x = xr + d_right(xr), where the left disparity is d_right
    # and a texture linear in x takes the value it has at x.
    from stereo_depth_ros.data.mono_stereo import forward_warp
    cols = np.arange(60, dtype=np.float32)
    disparity = (20.0 - 0.3 * cols)[None].repeat(2, axis=0)
    left = (3.0 * cols)[None, :, None].repeat(2, axis=0).repeat(3, axis=2)
    right, right_disparity, holes = forward_warp(left, disparity)
    known = ~holes[0]
    assert known.sum() > 50
    xr = np.flatnonzero(known).astype(np.float64)
    x = xr + right_disparity[0, known]
    np.testing.assert_allclose(right_disparity[0, known], np.interp(x, cols, disparity[0]),
                               atol=1e-4)
    np.testing.assert_allclose(right[0, known, 0], 3.0 * x, atol=1e-3)


def test_forward_warp_leaves_a_hole_at_a_two_pixel_depth_step():
    # Near (7 px) left of column 10, far (5 px) right of it: the right camera sees between
    # them (right columns 3 and 4) what the left one does not. Those are holes; no right
    # pixel takes a disparity between the two surfaces' (a flying pixel).
    from stereo_depth_ros.data.mono_stereo import forward_warp
    disparity = np.full((1, 30), 5.0, np.float32)
    disparity[0, :10] = 7.0
    left = np.random.default_rng(1).uniform(0, 255, (1, 30, 3)).astype(np.float32)
    _, right_disparity, holes = forward_warp(left, disparity)
    assert holes[0, 3:5].all() and not holes[0, :3].any() and not holes[0, 5:25].any()
    known = right_disparity[~holes]
    assert set(np.unique(known)) == {5.0, 7.0}


def test_mono_disparity_spans_its_range_with_depth_edges():
    from stereo_depth_ros.data.mono_stereo import plausible_disparity
    photo = cv2.resize(np.random.default_rng(0).uniform(0, 255, (8, 16, 3)).astype(np.float32),
                       (96, 48))
    lows, highs, edges = [], [], []
    for seed in range(12):
        disparity = plausible_disparity(photo, np.random.default_rng(seed), 4.0)
        lows.append(disparity.min())
        highs.append(disparity.max())
        disparity = plausible_disparity(photo, np.random.default_rng(seed), 40.0)
        edges.append(np.mean(np.abs(np.diff(disparity, axis=1)) > 1.0))
    assert min(lows) >= MIN_DISPARITY and max(highs) <= 4.0
    assert min(lows) < MIN_DISPARITY + 0.5 and max(highs) > 3.5
    # Piecewise planar: several segments, with depth steps between them in most maps.
    assert np.mean(np.array(edges) > 0) > 0.75


def _noise(shape, seed=0):
    """Return uint8 noise of ``shape``."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_photo_library_reads_upper_case_suffixes_in_sub_folders(tmp_path):
    # Cameras write IMG_0001.JPG; photograph collections come in folders of folders.
    from stereo_depth_ros.data.photos import PhotoLibrary
    (tmp_path / 'trip' / 'day1').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'trip' / 'day1' / 'IMG_0001.JPG'), _noise((40, 60, 3)))
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = _noise((64, 64, 3), 1)
    cv2.circle(rgba, (32, 32), 20, (0, 0, 0, 255), -1)
    rgba[..., 3] = np.where(rgba[..., 3] > 0, 255, 0)
    cv2.imwrite(str(tmp_path / 'trip' / 'CUTOUT.PNG'), rgba)
    library = PhotoLibrary(tmp_path)
    assert len(library) == 2 and len(library.png_files) == 1
    cutout = library.cutout(np.random.default_rng(0))
    assert cutout is not None and cutout.alpha is not None


def test_read_photo_shrinks_the_longer_side_and_scales_16_bit_images(tmp_path):
    from stereo_depth_ros.data.photos import read_photo
    cv2.imwrite(str(tmp_path / 'wide.jpg'), _noise((192, 256, 3)))
    photo = read_photo(tmp_path / 'wide.jpg', 128)
    assert photo is not None and photo.rgb.shape == (96, 128, 3) and photo.alpha is None
    # A 16-bit photograph whose values reach 4095 (12-bit sensor): spread over 0-255.
    deep = (np.linspace(0, 4095, 64 * 64).reshape(64, 64, 1) * np.ones(3)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    photo = read_photo(tmp_path / 'deep.png', 128)
    assert photo is not None and photo.rgb.min() == 0 and photo.rgb.max() >= 254


def test_an_opaque_png_is_a_texture_never_a_cutout(tmp_path):
    # Its alpha outlines nothing: cutout() has none to give (an object cut by it would be a
    # full rectangle, and a photo without alpha as a cutout stops the scene generator).
    from stereo_depth_ros.data.photos import PhotoLibrary, read_photo
    rgba = np.full((48, 48, 4), 255, np.uint8)
    rgba[..., :3] = _noise((48, 48, 3))
    cv2.imwrite(str(tmp_path / 'opaque.png'), rgba)
    photo = read_photo(tmp_path / 'opaque.png', 768)
    assert photo is not None and photo.alpha is None and photo.rgb.shape == (48, 48, 3)
    library = PhotoLibrary(tmp_path)
    assert library.cutout(np.random.default_rng(0)) is None
    assert library.texture(np.random.default_rng(0)).shape == (48, 48, 3)


def test_photo_cache_drops_the_least_recently_used_photograph(tmp_path):
    from stereo_depth_ros.data.photos import PhotoLibrary
    for name in 'abc':
        cv2.imwrite(str(tmp_path / f'{name}.png'), _noise((32, 32, 3)))
    library = PhotoLibrary(tmp_path, cache_mb=2.5 * 32 * 32 * 3 / 2 ** 20)
    a, b, c = library.files
    for path in (a, b, a, c):  # a used again after b: b is the one to go
        library._load(path)
    assert list(library._cache) == [a, c]


def test_photo_scene_refuses_a_size_it_cannot_make(tmp_path):
    from stereo_depth_ros.data.photo_scenes import make_photo_scene
    from stereo_depth_ros.data.photos import PhotoLibrary
    cv2.imwrite(str(tmp_path / 'photo.jpg'), _noise((64, 64, 3)))
    library = PhotoLibrary(tmp_path)
    with pytest.raises(DatasetError, match='max_disparity'):
        make_photo_scene(0, library, 32, 48, max_disparity=64.0)
    with pytest.raises(DatasetError, match='16x16'):
        make_photo_scene(0, library, 8, 48, max_disparity=4.0)


def test_a_cutout_shape_is_the_photograph_s_silhouette():
    # A disc of radius 20 px at scale 1, its centre placed at (50, 40): inside the disc in,
    # outside it (in the photograph or beyond its border) out, whatever the rotation.
    from stereo_depth_ros.data.photo_scenes import _alpha_shape, _PhotoMap
    alpha = np.zeros((64, 64), np.float32)
    cv2.circle(alpha, (32, 32), 20, 1.0, -1)
    for seed in range(4):
        mapping = _PhotoMap(np.random.default_rng(seed), alpha.shape, (50.0, 40.0), 1.0)
        mapping.target = (np.float32(32), np.float32(32))
        shape = _alpha_shape(alpha, mapping)
        x = np.array([[50, 60, 50, 76, 150, -60]], np.float32)
        y = np.array([[40, 40, 28, 40, 40, 40]], np.float32)
        assert shape(x, y).tolist() == [[True, True, True, False, False, False]]
