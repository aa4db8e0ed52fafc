"""Tests of the pixels a learned estimate leaves unconfirmed (option ``max_match_cost``)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.data.datasets import SyntheticSamples
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.evaluation.visibility import unseen_by_right_camera
from stereo_depth_ros.networks.confidence import (block_samples, lands_outside, padded_to_multiple,
                                                  unconfirmed)
from stereo_depth_ros.networks.inference import images_to_tensor
from stereo_depth_ros.training import match_cost_sweep
from stereo_depth_ros.window_match import warp_to_left, window_mean, window_zncc

from learned_estimates import costnet_fast_estimates

HEIGHT, WIDTH = 64, 192
SHIFT = 12


def _tensors(left: np.ndarray, right: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    device = torch.device('cpu')
    return images_to_tensor([left], device), images_to_tensor([right], device)


def _shifted_pair() -> tuple[np.ndarray, np.ndarray]:
    """Return a random texture seen at a constant disparity of SHIFT px (uint8 grey)."""
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 256, (HEIGHT // 2, (WIDTH + SHIFT) // 2)).astype(np.uint8)
    texture = cv2.resize(texture, (WIDTH + SHIFT, HEIGHT), interpolation=cv2.INTER_NEAREST)
    return texture[:, :WIDTH].copy(), texture[:, SHIFT:].copy()


def _mask(left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
          max_cost: float = 0.5) -> np.ndarray:
    left_t, right_t = _tensors(left, right)
    return unconfirmed(left_t, right_t, torch.from_numpy(disparity)[None, None], max_cost)[0]


def test_the_true_disparity_is_confirmed_and_a_wrong_one_is_not() -> None:
    left, right = _shifted_pair()
    true = np.full((HEIGHT, WIDTH), float(SHIFT), np.float32)
    inside = np.zeros((HEIGHT, WIDTH), bool)
    inside[4:-4, SHIFT + 4:-4] = True  # away from the borders the windows reach over
    assert _mask(left, right, true)[inside].mean() < 0.02
    assert _mask(left, right, true + 5)[inside].mean() > 0.95
    assert _mask(left, right, true - 5)[inside].mean() > 0.95


def test_a_match_left_of_the_right_image_is_unconfirmed_even_if_right() -> None:
    left, right = _shifted_pair()
    true = np.full((HEIGHT, WIDTH), float(SHIFT), np.float32)
    mask = _mask(left, right, true, max_cost=4.0)  # the cost alone would keep every pixel
    columns = np.arange(WIDTH)
    assert mask[:, columns < SHIFT].all()
    assert not mask[:, columns >= SHIFT].any()
    # A match lands outside from half a pixel left of the first column on.
    for shift, first_kept in ((SHIFT + 0.4, SHIFT), (SHIFT + 0.6, SHIFT + 1)):
        mask = _mask(left, right, np.full((HEIGHT, WIDTH), shift, np.float32), max_cost=4.0)
        assert mask[:, :first_kept].all() and not mask[:, first_kept:].any()


def test_unknown_pixels_stay_out_of_the_mask_and_flat_images_are_unconfirmed() -> None:
    left, right = _shifted_pair()
    disparity = np.full((HEIGHT, WIDTH), float(SHIFT), np.float32)
    disparity[:, 100:120] = np.nan
    mask = _mask(left, right, disparity, max_cost=4.0)
    assert not mask[:, 100:120].any()
    flat = np.full((HEIGHT, WIDTH), 128, np.uint8)
    # Without texture the correlation is undefined: nothing confirms the estimate.
    assert _mask(flat, flat, np.full((HEIGHT, WIDTH), 4.0, np.float32))[:, 8:].all()


def test_odd_sizes_and_batches_give_the_masks_of_single_even_images() -> None:
    """An odd size is padded, so the right disparity is confirmed as well as at an even one."""
    scene = SyntheticSamples([3], 'layered', 128, 320, 48.0)[0]
    truth = np.asarray(scene.disparity, np.float32)
    unseen = unseen_by_right_camera(torch.from_numpy(truth)[None, None])[0, 0].numpy() > 0
    even = _mask(scene.left, scene.right, truth)
    odd = _mask(scene.left[:127, :317], scene.right[:127, :317], truth[:127, :317])
    # The same blocks of 2x2 px (only the per-image normalisation differs a little): the masks
    # agree on the part they share, away from the crop's edge.
    assert (odd[:120, :310] == even[:120, :310]).mean() > 0.995
    assert odd[~unseen[:127, :317]].mean() < 1.2 * even[~unseen].mean() + 0.005
    left_t, right_t = _tensors(scene.left, scene.right)
    pair = torch.from_numpy(np.stack([truth, truth + 6]))[:, None]
    batch = unconfirmed(left_t.expand(2, -1, -1, -1), right_t.expand(2, -1, -1, -1), pair, 0.5)
    np.testing.assert_array_equal(batch[0], even)
    np.testing.assert_array_equal(batch[1], _mask(scene.left, scene.right, truth + 6))


def test_max_cost_must_be_positive() -> None:
    left, right = _shifted_pair()
    with pytest.raises(ValueError, match='max_cost'):
        _mask(left, right, np.zeros((HEIGHT, WIDTH), np.float32), max_cost=0.0)


def test_the_pixels_the_right_camera_cannot_see_are_unconfirmed() -> None:
    """With the exact disparity of a generated scene, the unseen pixels fail, the rest pass."""
    scene = SyntheticSamples([1], 'layered', 128, 320, 48.0)[0]
    truth = np.asarray(scene.disparity, np.float32)
    unseen = unseen_by_right_camera(torch.from_numpy(truth)[None, None])[0, 0].numpy() > 0
    assert 0.05 < unseen.mean() < 0.3
    mask = _mask(scene.left, scene.right, truth)
    assert mask[unseen].mean() > 0.85
    assert mask[~unseen].mean() < 0.1
    assert _mask(scene.left, scene.right, truth + 6)[~unseen].mean() > 0.7


def test_the_backend_reports_unconfirmed_pixels_as_unknown() -> None:
    found = costnet_fast_estimates(max_match_cost=0.5)
    dense, sparse, kept = found.dense, found.filtered, found.kept
    assert 'match cost 0.5' in found.description
    assert np.isfinite(dense).all() and 0.4 < kept.mean() < 0.98
    # What it keeps is the dense estimate itself, and it is right more often.
    np.testing.assert_array_equal(sparse[kept], dense[kept])
    wrong = np.abs(dense - found.truth) > 3
    assert wrong[kept].mean() < 0.7 * wrong.mean()
    # Where the estimate's match would leave the right image, nothing is reported.
    columns = np.arange(dense.shape[1])[None, :]
    assert not kept[dense > columns + 0.5].any()


def test_the_option_is_checked() -> None:
    with pytest.raises(BackendError, match='max_match_cost'):
        create_backend('costnet_fast', device='cpu', max_match_cost=-1.0)


def test_sweep_counts_and_shares() -> None:
    truth = np.array([[10.0, 80.0, 80.0, np.nan]], np.float32)
    dense = np.array([[10.0, 80.0, 70.0, 5.0]], np.float32)
    sparse = np.array([[10.0, np.nan, 70.0, 5.0]], np.float32)
    unseen = np.array([[False, True, False, False]])
    counts = match_cost_sweep.tally(sparse, dense, truth, unseen)
    scores = match_cost_sweep.summarise(counts)
    assert scores['density'] == pytest.approx(2 / 3)
    assert scores['estimated_bad3'] == pytest.approx(1 / 2)
    assert scores['estimated_bad3_large'] == pytest.approx(1.0)
    assert scores['unseen_unknown'] == pytest.approx(1.0)
    assert scores['right_lost'] == pytest.approx(1 / 2)
    # Filled as KITTI does, the unknown pixel takes the smaller neighbour, 10 px: 70 px wrong.
    assert scores['filled_epe'] == pytest.approx((0 + 70 + 10) / 3)
    assert scores['filled_bad2'] == pytest.approx(2 / 3)


def test_sweep_command_prints_rows_and_draws(tmp_path: Path, capsys) -> None:
    figure = tmp_path / 'sweep.png'
    assert match_cost_sweep.main(['--backends', 'costnet_fast', '--costs', '0.5', '--test', '1',
                                  '--figure', str(figure)]) == 0
    out = capsys.readouterr().out
    assert '1 test scenes' in out
    rows = {line[:30].strip(): [float(value) if value != '-' else np.nan
                                for value in line[30:].split()]
            for line in out.splitlines()[2:]}
    assert 'unseen unknown' in out.splitlines()[1]
    assert list(rows) == ['costnet_fast, 0', 'costnet_fast, 0.5', 'sgbm (defaults)']
    dense, sparse = rows['costnet_fast, 0'], rows['costnet_fast, 0.5']
    assert dense[0] > sparse[0]  # density falls
    assert dense[1] > sparse[1]  # and the kept pixels are right more often
    assert sparse[3] > dense[3] == 0.0  # unseen pixels left unknown
    assert np.isnan(rows['sgbm (defaults)'][4])
    assert all(len(row) == 7 for row in rows.values())
    assert cv2.imread(str(figure)) is not None


@pytest.mark.parametrize('arguments, named', [
    (['--costs', '-1'], 'max_match_cost'),
    (['--costs', 'abc'], '--costs'),
    (['--backends', ','], '--backends'),
    (['--figure', 'no_such_folder/sweep.png'], '--figure'),
    (['--figure', 'sweep.png', '--figure-cost', '0.7'], '--figure-cost'),
    (['--figure', 'sweep.png', '--figure-scene', '1'], '--figure-scene'),
    (['--test', '1', '--synthetic', '2'], 'not allowed with'),
    (['--test', '0'], '--test'),
    (['--test', '-1'], '--test'),
    (['--synthetic-start', '-1'], '--synthetic-start'),
    (['--backends', 'sgbm'], 'not a learned backend'),
    (['--costs', '0.5,,0.6'], '--costs'),
    (['--figure-scene', '0'], 'need --figure'),
    (['--figure', '.'], 'image file'),
    (['--figure', 'sweep.txt'], 'image file'),
])
def test_sweep_command_refuses_bad_input(arguments: list[str], named: str, tmp_path: Path,
                                         monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    command = ['--backends', 'costnet_fast', '--test', '1'] + arguments
    if arguments[0] == '--test':
        command = ['--backends', 'costnet_fast'] + arguments
    elif arguments[0] == '--backends':
        command = ['--test', '1'] + arguments
    try:
        code = match_cost_sweep.main(command)
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert named in error[-1]
    assert len(error) == 1 or error[0].startswith('usage:')  # one line, or argparse's usage
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_match_exactly_half_a_pixel_left_of_the_first_column_is_inside() -> None:
    # x - d = -2.5, -1.5, -0.5, 0.5: only below -0.5 is outside.
    np.testing.assert_array_equal(lands_outside(np.full((1, 4), 2.5, np.float32)),
                                  [[True, True, False, False]])


def test_unknown_pixels_stay_out_of_the_mask_where_their_cost_is_high() -> None:
    """At 0 px (where an unknown pixel's window sees it) the shifted pair matches badly."""
    left, right = _shifted_pair()
    disparity = np.full((HEIGHT, WIDTH), float(SHIFT), np.float32)
    disparity[:, 100:140] = np.nan
    mask = _mask(left, right, disparity, max_cost=0.5)
    assert not mask[:, 100:140].any()
    everywhere = _mask(left, right, np.zeros((HEIGHT, WIDTH), np.float32), max_cost=0.5)
    assert everywhere[4:-4, 104:136].mean() > 0.9  # known at 0 px, the same pixels fail


def test_odd_sizes_repeat_their_last_row_and_column() -> None:
    images = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    expected = torch.tensor([[0, 1, 2, 2], [3, 4, 5, 5], [6, 7, 8, 8], [6, 7, 8, 8]],
                            dtype=torch.float32)
    assert torch.equal(padded_to_multiple(images)[0, 0], expected)
    # A block whose first pixel is unknown takes the mean of its known ones, the repeated
    # edge among them: the right column's blocks hold 4 and the copy of (1, 2).
    disparity = np.full((3, 3), 4.0, np.float32)
    disparity[0, 2] = np.nan
    np.testing.assert_array_equal(block_samples(disparity), np.full((2, 2), 2.0, np.float32))


def test_the_checks_warp_takes_the_edge_outside_and_reads_unknown_pixels_at_zero() -> None:
    """The torch-free warp of the near guard and the view check (window_match)."""
    right = np.tile(np.arange(1, 11, dtype=np.float32) * 10, (3, 1))
    disparity = np.full((3, 10), 2.0, np.float32)
    disparity[1] = np.nan
    warped, sources = warp_to_left(right, disparity)
    np.testing.assert_array_equal(warped[0], [10, 10, 10, 20, 30, 40, 50, 60, 70, 80])
    np.testing.assert_array_equal(warped[1], right[1])  # NaN: d = 0
    np.testing.assert_array_equal(sources[1], np.arange(10))


def test_the_checks_windows_mirror_the_edges_and_floor_only_tiny_variances() -> None:
    ramp = np.tile(np.arange(10, dtype=np.float32), (5, 1))
    # Window 5 at column 0 sees columns 1, 0 | 0, 1, 2 (mirrored, edge pixel repeated).
    assert window_mean(ramp, 5)[2, 0] == pytest.approx(0.8)
    # A faint texture (variance 0.01 each) still correlates fully with itself.
    faint = (np.indices((9, 9)).sum(axis=0) % 2 * 0.2).astype(np.float32)
    zncc, variance = window_zncc(faint, faint, 3)
    assert variance[4, 4] == pytest.approx(1e-4, rel=0.1)
    assert zncc[4, 4] == pytest.approx(1.0, abs=0.02)


def test_a_cost_equal_to_the_limit_is_confirmed() -> None:
    """Only a match worse than ``max_match_cost`` is dropped (README, docs/ros.md).

    Two equal flat views cost exactly 1 (no correlation, no difference) at every pixel.
    """
    flat = np.full((HEIGHT, WIDTH), 128, np.uint8)
    disparity = np.full((HEIGHT, WIDTH), 4.0, np.float32)
    assert not _mask(flat, flat, disparity, max_cost=1.0)[:, 8:].any()
    below = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    assert _mask(flat, flat, disparity, max_cost=below)[:, 8:].all()
