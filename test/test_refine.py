"""Tests of the refinement of a learned estimate by matching (option ``refine_radius``)."""

import numpy as np
import pytest
import torch

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.data.datasets import SyntheticSamples
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.evaluation.visibility import unseen_by_right_camera
from stereo_depth_ros.networks.common import StereoNet
from stereo_depth_ros.networks.confidence import lands_outside
from stereo_depth_ros.networks.inference import (images_to_tensor, predict_with_near_pass,
                                                 resolve_refine_radius)
from stereo_depth_ros.networks.refine import (FINE_RADIUS, first_smallest, refine_by_matching,
                                              sub_pixel)
from stereo_depth_ros.training import selection


def _refined(left: np.ndarray, right: np.ndarray, estimate: np.ndarray,
             radius: float) -> np.ndarray:
    device = torch.device('cpu')
    left_t, right_t = images_to_tensor([left], device), images_to_tensor([right], device)
    return refine_by_matching(left_t, right_t, torch.from_numpy(estimate)[None, None],
                              radius)[0, 0].numpy()


@pytest.fixture(scope='module')
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A generated scene (odd width), its truth and the pixels the right camera sees."""
    sample = SyntheticSamples([4], 'layered', 127, 321, 48.0)[0]  # odd height and width
    truth = np.asarray(sample.disparity, np.float32)
    unseen = unseen_by_right_camera(torch.from_numpy(truth)[None, None])[0, 0].numpy() > 0
    return sample.left, sample.right, truth, ~unseen


@pytest.mark.parametrize('offset', [-6.0, -2.5, 3.0, 7.0])
def test_an_estimate_off_by_less_than_the_radius_is_brought_to_the_truth(scene, offset) -> None:
    left, right, truth, seen = scene
    estimate = truth + np.float32(offset)
    refined = _refined(left, right, estimate, 8.0)
    # Where the estimate's match falls left of the right image it is not searched around
    # (next test): an estimate too large there stays. (The median reaches 2 px further.)
    searched = seen & (np.arange(truth.shape[1])[None, :] - estimate >= 2.5)
    error = np.abs(refined - truth)[searched]
    assert np.mean(error > 2.0) < 0.15  # every pixel was wrong by more than 2 px


def test_the_truth_mostly_stays(scene) -> None:
    left, right, truth, seen = scene
    error = np.abs(_refined(left, right, truth, 8.0) - truth)[seen]
    assert np.mean(error > 1.0) < 0.25 and np.mean(error > 2.0) < 0.06


def test_the_search_never_leaves_the_radius_of_the_estimate(scene) -> None:
    """An estimate 20 px off with radius 4 cannot reach the truth: it moves at most that far."""
    left, right, truth, _ = scene
    estimate = truth + np.float32(20.0)
    refined = _refined(left, right, estimate, 4.0)
    known = np.isfinite(refined)
    # The median may take a neighbour's value, which is itself within reach of its estimate.
    reach = 4.0 + FINE_RADIUS + 0.5
    assert np.mean(np.abs(refined - estimate)[known] <= reach) > 0.97
    assert np.mean(np.abs(refined - truth)[known] <= 1.0) < 0.05


def test_unknown_pixels_stay_unknown_and_matches_outside_the_right_view_keep_the_estimate(
        scene) -> None:
    left, right, truth, _ = scene
    estimate = truth.copy()
    estimate[40:60, 150:200] = np.nan
    refined = _refined(left, right, estimate, 8.0)
    assert np.isnan(refined[40:60, 150:200]).all()
    assert np.isfinite(np.delete(refined, np.s_[150:200], axis=1)).all()
    assert np.isfinite(np.delete(refined, np.s_[40:60], axis=0)).all()
    # With an estimate of 30 px and radius 8 every candidate is above 19.5 px, so left of
    # column 19 every match lands left of the right image: nothing to match, the estimate
    # stays (the last two columns before it are within the final median's reach).
    estimate = np.full(truth.shape, 30.0, np.float32)
    refined = _refined(left, right, estimate, 8.0)
    assert np.all(refined[:, :17] == 30.0) and not np.all(refined[:, 30:] == 30.0)


def test_an_estimate_whose_match_falls_left_of_the_right_image_is_not_searched(scene) -> None:
    """Nothing there to match it against: a nearer surface at the left border stays near.

    With an estimate of 30 px and radius 24, candidates down to 6 px land inside the right
    image from column 6 on; any of them matching better than the replicated border column
    pulled such a pixel far.
    """
    left, right, truth, _ = scene
    estimate = np.full(truth.shape, 30.0, np.float32)
    refined = _refined(left, right, estimate, 24.0)
    # Left of column 29.5 the estimate's match falls outside (the median reaches 2 px).
    assert np.all(refined[:, :27] == 30.0) and not np.all(refined[:, 34:] == 30.0)


def test_an_unknown_pixel_at_a_block_corner_does_not_spoil_its_block(scene) -> None:
    """The half-resolution search of a block whose first pixel is unknown uses the others."""
    left, right, truth, seen = scene
    estimate = truth + np.float32(3.0)
    holed = estimate.copy()
    holed[20:100:2, 60:260:2] = np.nan  # the first pixel of every block in the patch
    patch = np.zeros(truth.shape, bool)
    patch[20:100, 60:260] = True
    known = patch & seen & np.isfinite(holed)
    whole = np.abs(_refined(left, right, estimate, 16.0) - truth)[known]
    holes = np.abs(_refined(left, right, holed, 16.0) - truth)[known]
    # A quarter of the pixels unknown still costs some (their neighbours' windows see them
    # at 0 px); searched around 0, as before the blocks used their known pixels, 94 %.
    assert np.mean(whole > 2.0) < 0.2 and np.mean(holes > 2.0) < 0.35


def test_nothing_is_moved_beyond_the_range_and_an_estimate_beyond_it_stays(scene) -> None:
    left, right, truth, _ = scene
    limit = float(np.percentile(truth, 50))
    estimate = truth.copy()
    estimate[:, :100] = limit + 10.0  # beyond the range: stays for the backend to mask
    device = torch.device('cpu')
    left_t, right_t = images_to_tensor([left], device), images_to_tensor([right], device)
    refined = refine_by_matching(left_t, right_t, torch.from_numpy(estimate)[None, None], 16.0,
                                 limit)[0, 0].numpy()
    inside = estimate <= limit
    assert np.all(refined[inside] <= limit)
    # Away from the median's reach of the pixels in range, the ones beyond it keep their value.
    assert np.all(refined[:, :97][~inside[:, :97]] == limit + 10.0)


def test_no_negative_disparity_is_chosen() -> None:
    """Views whose best match lies right of each pixel (-3 px) cannot pull it below 0."""
    rng = np.random.default_rng(2)
    texture = np.repeat(rng.integers(0, 256, (64, 110)).astype(np.uint8), 2, axis=1)
    left, right = texture[:, 3:203].copy(), texture[:, :200].copy()
    estimate = np.full((64, 200), 2.0, np.float32)
    refined = _refined(left, right, estimate, 8.0)
    assert refined.min() >= 0.0
    # Estimates of 0 and 6 px in alternate columns: a block's shift, chosen for its first
    # pixel (6 px), must not carry the other one below 0.
    steps = np.where(np.arange(200) % 2 == 0, 6.0, 0.0).astype(np.float32)
    refined = _refined(left, right, np.broadcast_to(steps, (64, 200)).copy(), 8.0)
    assert refined.min() >= 0.0
    # An estimate that is itself negative stays (the backend masks it as unknown).
    assert np.mean(_refined(left, right, estimate - 5.0, 8.0) < -2.0) > 0.9


@pytest.mark.parametrize('truth, first, others, limit',
                         [(2, 8.0, 1.0, np.inf), (10, 4.0, 11.0, 12.0)])
def test_a_pixel_its_block_s_shift_carries_out_of_range_is_searched_around_its_estimate(
        truth: int, first: float, others: float, limit: float) -> None:
    """Each 2x2 block's first pixel is 6 px off, the other three 1 px, the other way.

    The block's shift, found for its first pixel, would carry the others out of range (below
    0, above the limit): they are searched around their own estimate instead and found at
    the truth, not left at their estimate.
    """
    rng = np.random.default_rng(3)
    texture = np.repeat(np.repeat(rng.integers(0, 256, (32, 110)).astype(np.uint8), 2, axis=0),
                        2, axis=1)
    left, right = texture[:, :200].copy(), texture[:, truth:200 + truth].copy()
    estimate = np.full((64, 200), others, np.float32)
    estimate[::2, ::2] = first
    device = torch.device('cpu')
    left_t, right_t = images_to_tensor([left], device), images_to_tensor([right], device)
    refined = refine_by_matching(left_t, right_t, torch.from_numpy(estimate)[None, None], 8.0,
                                 limit)[0, 0].numpy()
    inner = refined[4:-4, 12:-4]  # away from the borders
    assert np.mean(np.abs(inner - truth) <= 0.5) > 0.95


def test_a_batch_gives_the_results_of_its_images_one_by_one(scene) -> None:
    left, right, truth, _ = scene
    device = torch.device('cpu')
    lefts = images_to_tensor([left, right], device)
    rights = images_to_tensor([right, left], device)
    estimates = torch.from_numpy(np.stack([truth + 3, truth - 3]))[:, None]
    batch = refine_by_matching(lefts, rights, estimates, 8.0)
    first = _refined(left, right, truth + 3, 8.0)
    second = _refined(right, left, truth - 3, 8.0)
    np.testing.assert_array_equal(batch[0, 0].numpy(), first)
    np.testing.assert_array_equal(batch[1, 0].numpy(), second)


def test_a_radius_must_be_positive(scene) -> None:
    left, right, truth, _ = scene
    with pytest.raises(ValueError, match='radius'):
        _refined(left, right, truth, 0.0)


class _OffNetwork(StereoNet):
    """Answers the truth of one scene plus a constant, whatever the images."""

    divisor = 1

    def __init__(self, truth: np.ndarray, offset: float) -> None:
        super().__init__(64.0)
        self.answer = torch.from_numpy(truth + np.float32(offset))[None, None]

    def predict(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.answer.clone()


def test_the_inference_path_refines_only_when_asked(scene) -> None:
    left, right, truth, seen = scene
    network = _OffNetwork(truth, 4.0)
    device = torch.device('cpu')
    left_t, right_t = images_to_tensor([left], device), images_to_tensor([right], device)
    plain = predict_with_near_pass(network, left_t, right_t)[0, 0].numpy()
    refined = predict_with_near_pass(network, left_t, right_t, refine_radius=8.0)[0, 0].numpy()
    np.testing.assert_allclose(plain, truth + 4.0, atol=1e-4)
    assert np.mean(np.abs(refined - truth)[seen] > 2.0) < 0.15


def test_minus_one_stands_for_the_network_s_own_radius() -> None:
    class Refined(StereoNet):
        default_refine_radius = 12.0

    assert resolve_refine_radius(Refined, -1.0) == 12.0
    assert resolve_refine_radius(Refined, 0.0) == 0.0
    assert resolve_refine_radius(Refined, 5.0) == 5.0
    assert resolve_refine_radius(StereoNet, -1.0) == StereoNet.default_refine_radius
    assert create_backend('dispnet', device='cpu').refine_radius == 56.0
    assert create_backend('squeezeseg', device='cpu').refine_radius == 64.0
    assert create_backend('costnet_fast', device='cpu').refine_radius == 0.0


def test_the_backend_option_is_checked_and_described() -> None:
    with pytest.raises(BackendError, match='refine_radius'):
        create_backend('costnet_fast', device='cpu', refine_radius=-0.5)
    with pytest.raises(BackendError, match='refine_radius'):
        create_backend('costnet_fast', device='cpu', refine_radius=100.0)
    backend = create_backend('costnet_fast', device='cpu', refine_radius=6.0)
    assert 'refined within 6 px' in backend.describe()
    assert 'refined' not in create_backend('costnet_fast', device='cpu',
                                           refine_radius=0.0).describe()


def test_the_backend_refines_its_output(scene) -> None:
    """A weak network's output gets closer to the truth of the pixels both cameras see."""
    left, right, truth, seen = scene
    plain = create_backend('squeezeseg', device='cpu', refine_radius=0.0)
    refined = create_backend('squeezeseg', device='cpu', refine_radius=16.0)
    before = np.abs(plain.compute(left, right) - truth)[seen]
    after = np.abs(refined.compute(left, right) - truth)[seen]
    # Unknown pixels (NaN) count as wrong: masking more is no improvement.
    assert np.mean(~(after <= 2.0)) < np.mean(~(before <= 2.0)) - 0.05


def test_selection_refuses_a_bad_radius(capsys) -> None:
    assert selection.main(['models/costnet_fast.safetensors', '--refine-radius', '-3']) == 2
    assert 'refine_radius' in capsys.readouterr().err


def test_first_smallest_is_argmin_with_ties_to_the_first() -> None:
    rng = np.random.default_rng(0)
    costs = rng.integers(0, 3, (7, 20, 30)).astype(np.float32)
    costs[3, 0, 0] = np.inf
    costs[0, 1, 1] = np.inf
    costs[:, 2, 2] = np.inf
    np.testing.assert_array_equal(first_smallest(costs), np.argmin(costs, axis=0))


def test_the_option_help_names_each_network_s_own_radius() -> None:
    from stereo_depth_ros.backends import backend_record, learned_backend_names
    from stereo_depth_ros.backends.options import LearnedOptions
    from stereo_depth_ros.settings import option_specs
    text = next(spec.description for spec in option_specs(LearnedOptions)
                if spec.name == 'refine_radius')
    clause = text.split('default_refine_radius: ')[1].split(';')[0]
    named = {}
    for part in clause.split(', '):
        radius, names = part.split(' for ')
        named.update({name: float(radius) for name in names.split(' and ')})
    assert named == {name: backend_record(name).network.default_refine_radius
                     for name in learned_backend_names()}


def test_sub_pixel_is_the_parabola_vertex_inside_the_search_and_zero_at_its_ends() -> None:
    """Towards the lower neighbour, 0 where the costs are flat and at the first and last step."""
    costs = np.array([[2.0, 3.0, 1.0, 1.0], [1.0, 1.0, 2.0, 1.0], [1.5, 2.0, 3.0, 1.0]],
                     np.float32)[:, None, :]
    best = np.array([[1, 0, 2, 1]])
    # Column 0: 2, 1, 1.5 -> vertex (2 - 1.5) / 2 / 1.5 = +1/6 step, towards the 1.5.
    np.testing.assert_allclose(sub_pixel(costs, best)[0], [1 / 6, 0.0, 0.0, 0.0], atol=1e-6)


def test_a_result_whose_match_falls_left_of_the_right_image_keeps_the_estimate(scene) -> None:
    """Estimates 5 px short: near the left border the search would move them out of view."""
    left, right, truth, _ = scene
    estimate = truth - np.float32(5.0)
    refined = _refined(left, right, estimate, 8.0)
    # Pixels whose estimate matches inside the right image but whose result would not keep
    # the estimate; only the final median can still carry a neighbour's value out (2 here,
    # 131 when such results were taken).
    assert np.sum(lands_outside(refined) & ~lands_outside(estimate)) < 10


def test_candidates_beyond_the_range_do_not_hide_the_best_one_in_it(scene) -> None:
    """A better match beyond the limit is never chosen; the best one within it is.

    Were it taken and then undone (the estimate kept), the pixels whose truth is in range
    would be found less often: 25 % of them more than 2 px off here, 31 % that way.
    """
    left, right, truth, seen = scene
    limit = float(np.percentile(truth, 50))
    estimate = truth - np.float32(3.0)
    device = torch.device('cpu')
    left_t, right_t = images_to_tensor([left], device), images_to_tensor([right], device)
    refined = refine_by_matching(left_t, right_t, torch.from_numpy(estimate)[None, None], 16.0,
                                 limit)[0, 0].numpy()
    in_range = seen & (truth <= limit)
    assert np.mean(np.abs(refined - truth)[in_range] > 2.0) < 0.28
