"""The row-offset check: a rectification error measured from matched features."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros import plausibility
from stereo_depth_ros.plausibility import (check_pair, MIN_ROW_MATCHES, ROW_OFFSET_LIMIT,
                                           row_offset, row_offset_warning)
from stereo_depth_ros.row_alignment import (ALIGN_FROM_MEAN_PX, ALIGN_FROM_PX, alignment_maps,
                                            worth_aligning)
from stereo_depth_ros.training import row_offset_sweep
from stereo_depth_ros.training.row_offset_sweep import moved_down


@pytest.fixture(scope='module')
def scene():
    return make_scene(5, 192, 384, kind='layered', max_disparity=32)


@pytest.mark.parametrize('shift', [0.0, 2.0, -1.5, 3.0, 20.0])
def test_a_shift_of_the_right_view_is_read_back(scene, shift):
    # 20 px: a wrong cy, say, is read too (the rows searched are an eighth of the height).
    offset = row_offset(scene.left, moved_down(scene.right, shift))
    assert offset is not None and offset.matches >= 50
    assert offset.typical == pytest.approx(abs(shift), abs=0.15)
    assert offset.largest == pytest.approx(abs(shift), abs=0.4)
    assert offset.too_large == (abs(shift) >= ROW_OFFSET_LIMIT)
    if shift:
        assert offset.lower == (shift > 0)


@pytest.mark.parametrize('edge', [3.0, 6.0])
def test_a_rotation_shows_as_offsets_growing_to_the_edges(scene, edge):
    # A roll that puts the left and right edges `edge` px off, the centre not at all.
    height, width = scene.right.shape[:2]
    degrees = np.degrees(np.arctan2(edge, width / 2))
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    right = cv2.warpAffine(scene.right, rotation, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    offset = row_offset(scene.left, right)
    assert offset is not None and offset.too_large
    # The features nearest the edges lie a little inside them.
    assert 0.75 * edge < offset.largest <= edge + 0.3 and offset.largest > 1.5 * offset.typical


def test_dark_and_deep_images_are_read_too(scene):
    # A dark exposure, and a 12-bit camera in a uint16 image: the contrast is stretched.
    low = moved_down(scene.right, 2.0)
    for left, right in (((scene.left * 0.12).astype(np.uint8), (low * 0.12).astype(np.uint8)),
                        (scene.left.astype(np.uint16) * 16, low.astype(np.uint16) * 16)):
        offset = row_offset(left, right)
        assert offset is not None and offset.typical == pytest.approx(2.0, abs=0.2)


def test_nothing_to_match_gives_no_estimate():
    flat = np.full((120, 200, 3), 128, np.uint8)
    assert row_offset(flat, flat) is None
    assert row_offset(np.zeros((20, 400), np.uint8), np.zeros((20, 400), np.uint8)) is None


def test_check_pair_reads_no_rows_of_a_swapped_pair(scene):
    swapped = check_pair(scene.right, scene.left)
    assert swapped.swapped and swapped.row_offset is None and not swapped.misaligned
    moved = check_pair(scene.left, moved_down(scene.right, 2.0))
    assert not moved.swapped and moved.misaligned


def _principal_points_apart(right: np.ndarray, offset: int) -> np.ndarray:
    """Return the right view of a rig with ``cx_left - cx_right = offset`` px (edges repeated).

    A left pixel x of disparity d then matches right pixel x - d - offset.
    """
    moved = np.roll(right, -offset, axis=1)  # moved[:, u] = right[:, u + offset]
    if offset < 0:
        moved[:, :-offset] = right[:, :1]
    else:
        moved[:, -offset:] = right[:, -1:]
    return moved


def test_a_rig_whose_principal_points_are_apart_is_not_taken_for_a_swap(scene):
    # cx_left - cx_right = -40 px: a point at infinity has disparity -40, and this scene's
    # disparities of up to 32 px come out negative, rightly so.
    right = _principal_points_apart(scene.right, -40)
    assert check_pair(scene.left, right).swapped  # as if the offset were 0
    found = check_pair(scene.left, right, disparity_offset=-40.0)
    assert not found.swapped
    assert found.row_offset is not None and not found.misaligned
    # Offsets are not whole pixels: a far scene whose rows match half at one whole shift
    # and half at the next is not a swap either way.
    texture = np.random.default_rng(2).integers(0, 256, (120, 320, 3)).astype(np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
    for offset in (0.5, 1.5, 3.5, -0.5, -3.5):
        # far[:, u] = texture[:, u + offset]: every pixel at disparity `offset`, infinity.
        far = cv2.warpAffine(texture, np.float32([[1, 0, -offset], [0, 1, 0]]), (320, 120),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        assert not check_pair(texture, far, disparity_offset=offset).swapped, offset
    # With cx_left - cx_right = +40 px, exchanged views are still found.
    right = _principal_points_apart(scene.right, 40)
    assert not check_pair(scene.left, right, disparity_offset=40.0).swapped
    assert check_pair(right, scene.left, disparity_offset=40.0).swapped


def test_the_warning_says_how_far_and_which_way(scene):
    offset = row_offset(scene.left, moved_down(scene.right, -2.0))
    line = row_offset_warning('a.png / b.png', offset)
    prefix = 'warning: a.png / b.png: rows of the right image are '
    assert line.startswith(prefix)
    assert float(line[len(prefix):].split()[0]) == pytest.approx(offset.typical, abs=0.05)
    assert f'(up to {offset.largest:.1f} px;' in line
    assert 'shows the scene higher' in line and 'rectification' in line


def test_the_sweep_lists_the_pairs_of_a_folder(scene, tmp_path, capsys):
    for name, right in (('good', scene.right), ('low', moved_down(scene.right, 2.0))):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / 'left.png'), scene.left[:, :, ::-1])
        cv2.imwrite(str(tmp_path / name / 'right.png'), right[:, :, ::-1])
    assert row_offset_sweep.main(['--pairs', str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('good: typical 0.') and '(warned)' not in lines[0]
    assert lines[1].startswith('low: typical 2.') and lines[1].endswith('(warned)')
    assert lines[2].startswith('at most: typical 2.')


def test_the_sweep_refuses_nothing_to_do(tmp_path, capsys):
    assert row_offset_sweep.main([]) == 2
    assert row_offset_sweep.main(['--pairs', str(tmp_path)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0] == 'row_offset_sweep: give --shifts, --pairs or both'
    assert errors[1].startswith('row_offset_sweep: no left.png/right.png pairs under')


H, W = 192, 384
BLANK = np.zeros((H, W), np.uint8)


def fake_matches(monkeypatch, groups, seed=0):
    """Feed row_offset these matches: groups of (count, dy, disparity, x range)."""
    rng = np.random.default_rng(seed)
    left, right = [], []
    for count, dy, disparity, (x0, x1) in groups:
        x = rng.uniform(x0, x1, count)
        y = rng.uniform(30, H - 30, count)
        dys = dy(rng, count) if callable(dy) else np.full(count, dy) + rng.normal(0, 0.05, count)
        left.append(np.column_stack([x, y]))
        right.append(np.column_stack([x - disparity, y + dys]))
    points = (np.concatenate(left).astype(np.float32), np.concatenate(right).astype(np.float32))
    monkeypatch.setattr(plausibility, '_matched_points', lambda *args: points)


def test_matches_with_negative_disparity_do_not_count(monkeypatch):
    # Wrong matches of a repeated texture, right of their left point: they outnumber the good.
    fake_matches(monkeypatch, [(100, 0.0, 8.0, (20, W - 20)), (150, 1.5, -8.0, (20, W - 20))])
    offset = row_offset(BLANK, BLANK)
    assert offset is not None and offset.typical < 0.2 and not offset.too_large


def test_matches_beyond_the_rows_searched_do_not_count(monkeypatch):
    # 40 px is more than an eighth of 192 rows.
    fake_matches(monkeypatch, [(100, 0.5, 8.0, (20, W - 20)), (150, 40.0, 8.0, (20, W - 20))])
    offset = row_offset(BLANK, BLANK)
    assert offset is not None and offset.typical == pytest.approx(0.5, abs=0.1)


def test_scattered_wrong_matches_do_not_tilt_the_plane(monkeypatch):
    # Good matches 0.2 px off everywhere; wrong ones 1.3-4 px off on the right third.
    fake_matches(monkeypatch, [(200, 0.2, 8.0, (20, W - 20)),
                               (80, lambda rng, n: rng.uniform(1.3, 4.0, n), 8.0,
                                (2 * W / 3, W - 20))])
    offset = row_offset(BLANK, BLANK)
    assert offset is not None and offset.largest < 0.5 and not offset.too_large


def test_too_few_matches_give_no_estimate(monkeypatch):
    fake_matches(monkeypatch, [(MIN_ROW_MATCHES - 5, 2.0, 8.0, (20, W - 20))])
    assert row_offset(BLANK, BLANK) is None


@pytest.mark.parametrize('shift', [0.6, -0.6, 1.25, -1.25])
def test_the_limit_is_one_pixel(scene, shift):
    offset = row_offset(scene.left, moved_down(scene.right, shift))
    assert offset is not None and offset.too_large == (abs(shift) >= ROW_OFFSET_LIMIT)


def _blocks(seed, width=96, height=64, shift=6):
    """A fronto-parallel plane of 2x2-px random blocks at disparity ``shift``."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 2, (width + shift) // 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    return texture[:, :width].copy(), texture[:, shift:shift + width].copy()


@pytest.mark.parametrize('seed', [1, 4])
def test_rows_off_are_not_taken_for_a_swap(seed):
    # Two rows off, a texture without vertical structure matches at random shifts along the
    # rows compared, and likely_swapped says "swapped"; the matched corners, all at +6 px,
    # say otherwise: the check reports the rows.
    left, right = _blocks(seed)
    low = np.roll(right, 2, axis=0)
    assert plausibility.likely_swapped(left, low)
    found = check_pair(left, low)
    assert not found.swapped and found.misaligned
    assert check_pair(right, left).swapped  # a real swap stays one


def fitted(x, y, dy):
    """Return the RowOffset fitted to matches at left (x, y) whose right rows are dy off."""
    left = np.column_stack([x, y]).astype(np.float32)
    right = np.column_stack([x - 8.0, y + dy]).astype(np.float32)
    return plausibility._fitted_offset(left, right, (H, W))


def test_a_scale_between_the_views_is_aligned_though_its_typical_corner_is_not_off():
    # As indoors: most corners in the middle rows, a few near the top and bottom. The right
    # view is scaled about the middle row: on the left's there, a pixel off at the top and
    # bottom rows, half a pixel on average over the image.
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.uniform(66, 126, 300), rng.uniform(10, 40, 20),
                        rng.uniform(152, 182, 20)])
    x = rng.uniform(20, W - 20, y.size)
    offset = fitted(x, y, (y - H / 2) / (H / 2) + rng.normal(0, 0.1, y.size))
    assert offset is not None and offset.typical < ALIGN_FROM_PX
    assert offset.surely_off == pytest.approx(0.5, abs=0.1)
    assert worth_aligning(offset, (H, W))
    assert offset.summary().endswith(f'at least {offset.surely_off:.2f} px on average over '
                                     'the image')


def test_a_loose_plane_of_a_few_scattered_matches_is_not_surely_off():
    # 24 matches 0.3 px apart at random around rows that are right: the plane fitted to them
    # tilts by chance, a quarter of a pixel off on average over the image, but its standard
    # errors at the edges are as large, so nothing is aligned.
    rng = np.random.default_rng(38)
    x, y = rng.uniform(20, W - 20, 24), rng.uniform(30, H - 30, 24)
    offset = fitted(x, y, rng.normal(0, 0.3, 24))
    assert offset is not None and offset.typical < ALIGN_FROM_PX
    columns, rows = np.meshgrid(np.linspace(0, W - 1, 24), np.linspace(0, H - 1, 24))
    extrapolated = replace(offset, span=None)  # the plane beyond its matches too
    assert np.abs(extrapolated.at(columns, rows)).mean() > ALIGN_FROM_MEAN_PX
    assert offset.surely_off < 0.1 and not worth_aligning(offset, (H, W))


def test_a_rectified_pair_is_surely_on_the_rows(scene):
    offset = row_offset(scene.left, scene.right)
    assert offset is not None and offset.surely_off < 0.1
    shifted = row_offset(scene.left, moved_down(scene.right, 0.6))
    assert shifted is not None and shifted.surely_off == pytest.approx(0.6, abs=0.15)


def test_matches_on_one_line_tell_nothing_surely_away_from_it():
    # All matches on one slanted edge: the plane is not determined across it. Normalised in
    # float32 the design was a rounding error off singular and the plane tilted by 1e5 px
    # (surely_off 1.9e5, aligned); pinv of design.T @ design took that tilt as sure.
    rng = np.random.default_rng(5)
    x = rng.integers(0, W, 30).astype(float)
    offset = fitted(x, x * (H / W) + 17, rng.normal(0.05, 0.1, 30))
    assert offset is not None and offset.typical < ALIGN_FROM_PX
    assert np.abs(offset.plane).max() < 1.0
    assert offset.surely_off == 0.0 and not worth_aligning(offset, (H, W))
    for y in (np.full(30, 40.0), np.full(30, H / 2)):  # one row, off the middle or on it
        offset = fitted(x, y, rng.normal(0.05, 0.1, 30))
        assert offset is not None and offset.surely_off == 0.0


def test_matches_in_one_corner_are_not_extrapolated_over_the_image():
    # A rectified pair with texture only in its top-left corner (the rest flat, as sky or a
    # blank wall): the few matches there, some wrong, tilt the plane by 6 px over the height.
    # Extrapolated, it read 0.8 px surely off on average and the pair was aligned by it.
    height, width = 256, 512
    pair = make_scene(1000021, height, width, kind='road', max_disparity=64)
    left, right = pair.left.copy(), pair.right.copy()
    flat = np.ones((height, width), bool)
    flat[:int(0.35 * height), :int(0.35 * width)] = False
    left[flat] = right[flat] = 128
    offset = row_offset(left, right)
    assert offset is not None and offset.typical < ALIGN_FROM_PX
    assert abs(offset.plane[2]) > 3  # the tilt the matches give
    assert offset.surely_off < ALIGN_FROM_MEAN_PX and not worth_aligning(offset, left.shape)


def test_a_plane_of_matches_in_one_corner_is_not_extrapolated_where_it_resamples():
    # 30 matches in the top-left quarter, whose rows tilt by chance: fitted to them, the plane
    # reaches pixels at the far corner. Resampled by it, the rows there would be wrecked; it
    # holds its value at the last matched column and row instead.
    rng = np.random.default_rng(3)
    x, y = rng.uniform(10, W / 4, 30), rng.uniform(10, H / 4, 30)
    offset = fitted(x, y, 0.3 + 0.01 * (x - 10) + rng.normal(0, 0.05, 30))
    assert offset is not None and offset.span is not None
    first_column, last_column, first_row, last_row = offset.span
    assert last_column <= W / 4 and last_row <= H / 4
    far = float(offset.at(np.array([W - 1.0]), np.array([H - 1.0]))[0])
    edge = float(offset.at(np.array([last_column]), np.array([last_row]))[0])
    assert far == pytest.approx(edge) and abs(far) < 1.5
    assert abs(float(replace(offset, span=None).at(np.array([W - 1.0]),
                                                   np.array([H - 1.0]))[0])) > 3.5
    maps = alignment_maps(offset)
    rows_read = cv2.convertMaps(*maps, cv2.CV_32FC2)[0][..., 1] - np.arange(H)[:, None]
    assert np.abs(rows_read).max() < 1.5


def test_a_plane_whose_matches_reach_the_detectors_margin_is_held_at_the_border():
    # A vertical scale between the views, the top and bottom rows 2 px off. ORB finds no
    # corner within its patch (31 px) of the border, so the matches stop 31 px inside it:
    # held there, the aligned top and bottom rows stayed up to 0.7 px off.
    height, width = 256, 512
    pair = make_scene(1000000, height, width, kind='layered', max_disparity=64)
    scale = 1 + 2.0 / (height / 2)
    matrix = np.array([[1, 0, 0], [0, scale, height / 2 * (1 - scale)]])
    right = cv2.warpAffine(pair.right, matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    offset = row_offset(pair.left, right)
    assert offset is not None and worth_aligning(offset, pair.left.shape)
    assert offset.span is not None and offset.span[2:] == (0.0, height - 1.0)
    columns = np.arange(width, dtype=np.float64)
    for row in (0.0, height - 1.0):
        true = (scale - 1) * row + matrix[1, 2]
        assert np.abs(offset.at(columns, np.full(width, row)) - true).max() < 0.3
