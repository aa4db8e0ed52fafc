"""Tests of the real-image training data: photographs, photo scenes, stereo from mono, labels."""

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.commands.fetch_photos import _extract_archive
from stereo_depth_ros.data.mono_stereo import (fill_from_background, forward_warp,
                                               make_mono_pair)
from stereo_depth_ros.data.photo_scenes import make_photo_scene
from stereo_depth_ros.data.photos import PhotoLibrary, read_photo
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.errors import BackendError, DatasetError
from stereo_depth_ros.training.augment import CameraDegradation, RandomScale, TrainSample
from stereo_depth_ros.training.pseudo_labels import (left_right_consistent, make_labeller,
                                                     pseudo_label)


def _photo_folder(tmp_path: Path) -> Path:
    """Three textured 'photographs' and one cutout (an RGBA disc) in a folder."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for number in range(3):
        noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'photo{number}.jpg'), cv2.resize(noise, (256, 192)))
    rgba = np.zeros((96, 96, 4), np.uint8)
    rgba[..., :3] = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    cv2.circle(rgba, (48, 48), 36, (0, 0, 0, 255), -1)
    rgba[..., 3] = np.where(rgba[..., 3] > 0, 255, 0)
    cv2.imwrite(str(folder / 'cutout.png'), rgba)
    return folder


def _sample_right(right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """Return the right view sampled at ``x - d`` (bilinear), the left view where visible."""
    height, width = disparity.shape
    xs = np.arange(width, dtype=np.float32)[None].repeat(height, 0) - disparity
    ys = np.arange(height, dtype=np.float32)[:, None].repeat(width, 1)
    return cv2.remap(right.astype(np.float32), xs, ys, cv2.INTER_LINEAR)


def _rebuild_error(scene, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (visible, error): where a left pixel is visible in the right view (the right
    view's own ground truth agrees within ``tolerance``), and the grey-level error of the
    right view sampled at ``x - d`` against the left view (0 for exact ground truth)."""
    disparity = scene.disparity
    height, width = disparity.shape
    xr = np.rint(np.arange(width)[None] - disparity).astype(int)
    inside = (xr >= 1) & (xr < width - 1)
    rows = np.broadcast_to(np.arange(height)[:, None], disparity.shape)
    right_truth = np.full_like(disparity, np.nan)
    right_truth[inside] = scene.disparity_right[rows[inside], xr[inside]]
    visible = inside & (np.abs(right_truth - disparity) < tolerance)
    back = _sample_right(scene.right, disparity)
    return visible, np.abs(back - scene.left.astype(np.float32)).mean(axis=2)


def test_photo_library_finds_photographs_and_cutouts(tmp_path: Path) -> None:
    library = PhotoLibrary(_photo_folder(tmp_path))
    assert len(library) == 4 and len(library.png_files) == 1
    rng = np.random.default_rng(1)
    assert library.texture(rng).shape[2] == 3
    cutout = library.cutout(rng)
    assert cutout is not None and 0.3 < float((cutout.alpha > 0.5).mean()) < 0.6
    with pytest.raises(DatasetError, match='does not exist'):
        PhotoLibrary(tmp_path / 'none')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no .jpg'):
        PhotoLibrary(tmp_path / 'empty')


def test_photo_library_cache_keeps_its_byte_budget_and_the_pixels(tmp_path: Path) -> None:
    folder = _photo_folder(tmp_path)
    photo_bytes = 192 * 256 * 3  # one decoded 256x192 RGB photograph, 8 bits per value
    library = PhotoLibrary(folder, cache_mb=2.5 * photo_bytes / 2 ** 20)
    decoded = [read_photo(path, 768) for path in library.files]
    rng = np.random.default_rng(4)
    for _ in range(12):
        texture = library.texture(rng)
        assert texture.dtype == np.float32
        assert any(photo is not None and np.array_equal(texture, photo.rgb) for photo in decoded)
        assert library.cached_bytes <= 2.5 * photo_bytes
    for path in library.files:  # cutout.png, photo0.jpg, photo1.jpg, photo2.jpg
        library._load(path)
    # photo2 took the cache over its budget: the oldest went until it fitted again
    assert list(library._cache) == library.files[2:]
    assert library.cached_bytes == 2 * photo_bytes
    cutout = library.cutout(rng)
    assert cutout is not None and cutout.alpha is not None
    reference = read_photo(folder / 'cutout.png', 768)
    assert reference is not None and reference.alpha is not None
    assert np.array_equal(cutout.alpha, reference.alpha)
    cached = library.files[3]
    photo = library._load(cached)
    assert photo is not None
    photo.rgb[:] = 0  # a caller's changes do not reach the cache
    again = library._load(cached)
    assert cached in library._cache and again is not None and again.rgb.any()


def test_photo_scene_ground_truth_reproduces_the_left_view(tmp_path: Path) -> None:
    library = PhotoLibrary(_photo_folder(tmp_path))
    scene = make_photo_scene(3, library, 96, 192, 40.0, photometric=False)
    again = make_photo_scene(3, library, 96, 192, 40.0, photometric=False)
    assert np.array_equal(scene.left, again.left) and np.array_equal(scene.right, again.right)
    disparity = scene.disparity
    assert np.isfinite(disparity).all() and 1.0 <= disparity.min() and disparity.max() <= 40
    visible, error = _rebuild_error(scene, tolerance=0.25)
    assert visible.mean() > 0.5
    assert np.median(error[visible]) < 2.0


def test_forward_warp_is_exact_for_integer_disparities() -> None:
    rng = np.random.default_rng(2)
    left = rng.uniform(0, 255, (30, 80, 3)).astype(np.float32)
    disparity = np.full((30, 80), 5.0, np.float32)
    disparity[8:22, 30:50] = 12.0  # a nearer square occludes the background behind it
    right, right_disparity, holes = forward_warp(left, disparity)
    rows, cols = np.mgrid[0:30, 0:80]
    landing = cols - disparity.astype(int)
    inside = landing >= 0
    seen = np.zeros_like(inside)
    seen[inside] = np.abs(right_disparity[rows[inside], landing[inside]]
                          - disparity[inside]) < 0.5
    assert seen.mean() > 0.8
    np.testing.assert_array_equal(right[rows[seen], landing[seen]], left[seen])
    # Background left of the square is hidden behind it in the right view ...
    assert not seen[10, 25] and seen[10, 36]
    # ... and the right camera sees background right of the square that the left one does
    # not (right columns 38-44), and beyond the left image's right edge: holes, only there.
    assert holes[8:22, 38:45].all() and holes[:, 75:].all()
    assert not holes[:8, :75].any() and not holes[8:22, :38].any()


def test_a_gap_the_right_camera_sees_behind_an_edge_shows_the_background() -> None:
    # A red object 40 px near on blue background 10.25 px away: the right view's 30 px gap
    # beside it shows background. Inpainting from both sides painted it red for 14 px.
    rng = np.random.default_rng(0)
    left = np.zeros((4, 200, 3), np.float32)
    left[..., 1] = rng.integers(0, 50, (4, 200))  # some texture on the blue
    left[..., 2] = 200.0
    left[:, 80:120] = (250.0, 0.0, 0.0)
    disparity = np.full((4, 200), 10.25, np.float32)
    disparity[:, 80:120] = 40.0
    right, right_disparity, holes = forward_warp(left, disparity)
    assert holes[:, 80:110].all() and not holes[:, 110:189].any()
    filled = fill_from_background(right, right_disparity, holes)
    assert (filled[holes][:, 0] == 0).all() and (filled[holes][:, 2] == 200).all()
    assert np.array_equal(filled[~holes], right[~holes])
    # Mirrored from the background beside the gap: the column next to it repeats it.
    np.testing.assert_array_equal(filled[:, 109], right[:, 110])
    np.testing.assert_array_equal(filled[:, 100], right[:, 119])


def test_mono_pair_is_deterministic_and_exact_where_visible(tmp_path: Path) -> None:
    photo = cv2.resize(np.random.default_rng(3).uniform(0, 255, (24, 32, 3)).astype(np.float32),
                       (160, 120))
    scene = make_mono_pair(photo, 5, 64, 128, 24.0, photometric=False)
    again = make_mono_pair(photo, 5, 64, 128, 24.0, photometric=False)
    assert np.array_equal(scene.right, again.right)
    disparity = scene.disparity
    assert 1.0 <= disparity.min() and disparity.max() <= 24.0
    visible, error = _rebuild_error(scene, tolerance=0.05)
    assert visible.mean() > 0.3
    assert np.median(error[visible]) < 3.0


def test_left_right_check_keeps_consistent_pixels_only() -> None:
    left = np.full((4, 20), 3.0, np.float32)
    right = np.full((4, 20), 3.0, np.float32)
    right[:, 10] = 9.0  # the right view disagrees where left x = 13 lands
    checked = left_right_consistent(left, right)
    assert np.isnan(checked[:, 13]).all()  # disagreement
    assert np.isnan(checked[:, :3]).all()  # lands outside the right view
    assert np.isfinite(checked[:, 3:13]).all() and np.isfinite(checked[:, 14:]).all()


def test_pseudo_label_of_a_shifted_texture_is_its_shift() -> None:
    rng = np.random.default_rng(4)
    texture = cv2.resize(rng.integers(0, 256, (30, 60), dtype=np.uint8), (240, 120),
                         interpolation=cv2.INTER_LINEAR)
    left, right = texture[:, :-8], texture[:, 8:]  # left[x] = right[x - 8]
    label = pseudo_label(np.ascontiguousarray(left), np.ascontiguousarray(right), 32)
    known = np.isfinite(label)
    assert known.mean() > 0.5
    assert np.median(np.abs(label[known] - 8)) < 0.5


def test_a_learned_labeller_labels_densely_and_accurately() -> None:
    # The shipped costnet as the labeller (distillation): on a textured layered scene its
    # checked labels cover most pixels and sit on the true disparity, and the pixels the
    # left-right check drops are the ones where its raw estimate is wrong.
    scene = make_scene(3, 128, 320, 'layered', max_disparity=40)
    label = make_labeller(40.0, 'costnet')(scene.left, scene.right)
    raw = create_backend('costnet', max_disparity=40.0).compute(scene.left, scene.right)
    known = np.isfinite(label)
    assert 0.6 < known.mean() < 0.99
    assert np.array_equal(label[known], raw[known])
    error = np.abs(np.nan_to_num(raw, nan=1e3) - scene.disparity)
    assert np.mean(error[known] > 2) < 0.1
    assert np.mean(error[~known] > 2) > 5 * np.mean(error[known] > 2)


def test_an_unknown_labeller_is_one_clear_error() -> None:
    with pytest.raises(BackendError, match="unknown backend 'nonet'"):
        make_labeller(64.0, 'nonet')


def test_camera_degradation_and_random_scale_keep_the_geometry() -> None:
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 255, (64, 96, 3)).astype(np.float32)
    disparity = np.full((64, 96), 10.0, np.float32)
    disparity[0, 0] = np.nan
    degrade = CameraDegradation(blur_probability=1, jpeg_probability=1, shift_probability=1,
                                eraser_probability=1)
    out = degrade(TrainSample(image, image.copy(), disparity), rng)
    assert out.left.shape == out.right.shape == image.shape
    assert np.array_equal(out.disparity, disparity, equal_nan=True)
    assert not np.array_equal(out.left, image)
    scaled = RandomScale(0.5, 0.5, probability=1)(TrainSample(image, image, disparity), rng)
    assert scaled.left.shape == (32, 48, 3)
    assert np.nanmax(scaled.disparity) == pytest.approx(5.0)


def test_random_scale_keeps_the_depth_edges_of_labels_and_images_together() -> None:
    # A near surface (20 px) left of column 40 and a far one (5 px) right of it, the image
    # bright where it is near. After scaling by f the edge lies at 40 f in both: the image's
    # bright mass and the label's count of near columns must agree, on average over the
    # factors the configs draw (nearest-neighbour labels round it either way, by up to half
    # a pixel; the labels sat about 0.4 px right of the images before).
    image = np.zeros((8, 96, 3), np.float32)
    image[:, :40] = 255.0
    disparity = np.full((8, 96), 5.0, np.float32)
    disparity[:, :40] = 20.0
    offsets = []
    for factor in np.linspace(0.82, 1.25, 41):
        out = RandomScale(factor, factor, probability=1)(
            TrainSample(image, image.copy(), disparity), np.random.default_rng(0))
        scale = out.disparity.shape[1] / 96
        near_columns = np.count_nonzero(out.disparity[4] / scale > 12.5)
        bright_mass = float(out.left[4, :, 0].sum()) / 255.0
        offsets.append(near_columns - bright_mass)
    assert max(abs(offset) for offset in offsets) <= 0.5 + 1e-3
    assert abs(np.mean(offsets)) < 0.15


def test_fetch_photos_extracts_photographs_from_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / 'textures.pk3'
    big = np.random.default_rng(6).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode('.jpg', big, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    with zipfile.ZipFile(archive, 'w') as bundle:
        bundle.writestr('textures/wall/brick.jpg', encoded.tobytes())
        bundle.writestr('textures/wall/brick_norm.jpg', encoded.tobytes())
        bundle.writestr('textures/readme.txt', 'not an image')
    target = tmp_path / 'out'
    target.mkdir()
    assert _extract_archive(archive, target) == 1
    assert [path.name for path in target.iterdir()] == ['textures__wall__brick.jpg']
