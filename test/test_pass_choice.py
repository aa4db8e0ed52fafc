"""Tests of the choice between the inference passes by matching cost (``match_passes``)."""

from pathlib import Path
from typing import Any

import numpy as np
import yaml
import pytest
import torch

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.networks.dispnet import DispNet
from stereo_depth_ros.networks.inference import images_to_tensor, resolve_match_passes
from stereo_depth_ros.networks import inference
from stereo_depth_ros.networks import pass_choice
from stereo_depth_ros.networks.pass_choice import (BLEND_PREFERENCE, FIRST_PASS_PREFERENCE,
                                                   MEDIAN_SIZE, choose_by_matching,
                                                   choose_one, matching_costs,
                                                   median_of_usable)

HEIGHT, WIDTH = 64, 160
#: Ranges of the two passes the tests give (px): a first pass and one near pass.
RANGES = (64.0, 128.0)
#: Shape of the half-resolution cost maps of a HEIGHT x WIDTH pair.
COST_SHAPE = (HEIGHT // 2, WIDTH // 2)
#: True disparity of the left half and of the right half of the test pair (px).
FAR, NEAR = 8.0, 24.0


def _textured_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a random-texture pair (uint8 RGB) and its exact left disparity.

    The right view's left half is the texture seen at FAR px, its right half at NEAR px. A left
    pixel of the left half matches at FAR; one of the right half at NEAR where its match,
    NEAR px further left, is still in the right view's right half (:func:`_matched`).
    """
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (HEIGHT, WIDTH + 64, 3)).astype(np.uint8)
    texture = np.repeat(np.repeat(texture[:, ::2], 2, axis=1), 1, axis=0)[:, :WIDTH + 64]
    left = texture[:, 32:32 + WIDTH].copy()
    right = np.empty_like(left)
    columns = np.arange(WIDTH)
    half = WIDTH // 2
    for shift, chosen in ((FAR, columns < half), (NEAR, columns >= half)):
        source = texture[:, 32 + int(shift):32 + int(shift) + WIDTH]
        right[:, chosen] = source[:, chosen]
    disparity = np.where(columns < half, FAR, NEAR).astype(np.float32)
    return left, right, np.broadcast_to(disparity, (HEIGHT, WIDTH)).copy()


def _matched(width_margin: int = 6) -> np.ndarray:
    """Return the ``HxW`` mask of left pixels whose match is in the right view, with margins."""
    columns = np.arange(WIDTH)
    half = WIDTH // 2
    rows = np.zeros(HEIGHT, bool)
    rows[width_margin:-width_margin] = True
    inside = (((columns >= FAR + width_margin) & (columns < half - width_margin))
              | ((columns >= half + NEAR + width_margin) & (columns < WIDTH - width_margin)))
    return rows[:, None] & inside[None, :]


def _full(value: float) -> np.ndarray:
    """Return a full-resolution ``HxW`` float32 map of ``value``."""
    return np.full((HEIGHT, WIDTH), value, np.float32)


def _choose_with_costs(monkeypatch: pytest.MonkeyPatch, costs: list[np.ndarray],
                       candidates: list[np.ndarray], limits: tuple = RANGES) -> np.ndarray:
    """Return :func:`choose_one` of ``candidates`` given their half-resolution ``costs``.

    A candidate equal to the blend everywhere is not scored: the costs of the others are given.
    """
    scored = [costs[0], *(cost for cost, candidate in zip(costs[1:], candidates[1:])
                          if not np.array_equal(candidate, candidates[0]))]

    def given_costs(left: Any, right: Any, disparities: list[np.ndarray]) -> np.ndarray:
        assert len(disparities) == len(scored)
        return np.stack(scored)

    monkeypatch.setattr(pass_choice, 'matching_costs', given_costs)
    grey = np.zeros(COST_SHAPE, np.float32)
    return choose_one(grey, grey, candidates, limits)


def _flat_pair() -> list[torch.Tensor]:
    """Return a uniform grey pair (normalised tensors): every estimate matches it equally."""
    flat = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    return [images_to_tensor([flat], torch.device('cpu'))] * 2


def _maps(value: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.broadcast_to(value, (HEIGHT, WIDTH)).copy(),
                           dtype=torch.float32)[None, None]


def test_the_true_disparity_costs_least() -> None:
    left, right, truth = _textured_pair()
    grey = [image.mean(axis=2).astype(np.float32) / 255 for image in (left, right)]
    costs = matching_costs(*grey, [truth, truth + 3, truth - 3])
    matched = _matched()
    assert (costs[0][matched] < costs[1][matched]).mean() > 0.95
    assert (costs[0][matched] < costs[2][matched]).mean() > 0.95


def test_each_pixel_gets_the_estimate_that_matches() -> None:
    # The blend is right on the left half only; one pass is right on the right half only,
    # the other nowhere: the right half comes from the first pass, the rest stays the blend.
    left, right, truth = _textured_pair()
    images = [images_to_tensor([image], torch.device('cpu')) for image in (left, right)]
    blend = _maps(FAR)
    right_pass = _maps(NEAR)
    wrong_pass = _maps(40.0)
    chosen = choose_by_matching(*images, blend, [right_pass, wrong_pass], RANGES)[0, 0].numpy()
    matched = _matched()
    np.testing.assert_array_equal(chosen[matched], truth[matched])


def test_equal_costs_keep_the_blend() -> None:
    # A flat image matches every estimate equally (a tie, whatever the preference): the
    # blend stays. The preference itself: the two tests below.
    images = _flat_pair()
    chosen = choose_by_matching(*images, _maps(5.0), [_maps(9.0), _maps(30.0)], RANGES)
    np.testing.assert_array_equal(chosen.numpy(), 5.0)


@pytest.mark.parametrize('margin, expected', [(0.6, 5.0), (1.4, 9.0)])
def test_another_estimate_must_be_better_by_the_preference(
        monkeypatch: pytest.MonkeyPatch, margin: float, expected: float) -> None:
    # The pass's cost is lower than the blend's by 0.6 or 1.4 times BLEND_PREFERENCE.
    blend = np.full(COST_SHAPE, 0.5, np.float32)
    chosen = _choose_with_costs(monkeypatch, [blend, blend - margin * BLEND_PREFERENCE],
                                [_full(5.0), _full(9.0)])
    np.testing.assert_array_equal(chosen, expected)


@pytest.mark.parametrize('margin, expected', [(0.6, 5.0), (1.4, 9.0)])
def test_where_the_blend_is_the_first_pass_the_smaller_preference_holds(
        monkeypatch: pytest.MonkeyPatch, margin: float, expected: float) -> None:
    # The blend is the first pass's own estimate (5 px); the near pass's cost is lower by 0.6
    # or 1.4 times FIRST_PASS_PREFERENCE, far less than BLEND_PREFERENCE.
    assert 1.4 * FIRST_PASS_PREFERENCE < BLEND_PREFERENCE
    blend = np.full(COST_SHAPE, 0.5, np.float32)
    chosen = _choose_with_costs(
        monkeypatch, [blend, blend, blend - margin * FIRST_PASS_PREFERENCE],
        [_full(5.0), _full(5.0), _full(9.0)], (RANGES[1], *RANGES))
    np.testing.assert_array_equal(chosen, expected)


def test_the_smaller_preference_holds_only_where_the_blend_is_the_first_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Left half: the blend is the first pass (5 px), the near pass (9 px) is cheaper by
    # 2 * FIRST_PASS_PREFERENCE and wins. Right half: the blend is the near pass (30 px), the
    # first pass is cheaper by as much and does not win (BLEND_PREFERENCE holds there).
    assert 2 * FIRST_PASS_PREFERENCE < BLEND_PREFERENCE
    left_half = np.arange(WIDTH) < WIDTH // 2
    blend = _full(1.0) * np.where(left_half, 5.0, 30.0).astype(np.float32)
    near = _full(1.0) * np.where(left_half, 9.0, 30.0).astype(np.float32)
    cost = np.full(COST_SHAPE, 0.5, np.float32)
    cheaper = cost - 2 * FIRST_PASS_PREFERENCE
    small_left_half = np.arange(COST_SHAPE[1]) < COST_SHAPE[1] // 2
    costs = [cost, np.where(small_left_half, cost, cheaper),
             np.where(small_left_half, cheaper, cost)]
    chosen = _choose_with_costs(monkeypatch, costs, [blend, _full(5.0), near],
                                (RANGES[1], *RANGES))
    np.testing.assert_array_equal(chosen, _full(1.0) * np.where(left_half, 9.0, 30.0))


def test_a_candidate_equal_to_the_blend_is_not_scored_and_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing near in view: the blend is the first pass, which is then never chosen, so
    # leaving it unscored changes nothing.
    left, right, _ = _textured_pair()
    grey = [image.mean(axis=2).astype(np.float32)[::2, ::2].copy() / 255
            for image in (left, right)]
    blend = np.where(np.arange(WIDTH) < WIDTH // 2, FAR, 30.0).astype(np.float32)
    blend = np.broadcast_to(blend, (HEIGHT, WIDTH)).copy()
    near = _full(NEAR)
    scored: list[int] = []

    def counted(*args: Any) -> np.ndarray:
        scored.append(len(args[2]))
        return matching_costs(*args)

    monkeypatch.setattr(pass_choice, 'matching_costs', counted)
    limits = (RANGES[1], *RANGES)
    # One float step apart at a pixel the half-resolution costs do not sample: scored, with
    # the same costs and preferences.
    first = blend.copy()
    first[1, 1] = np.nextafter(first[1, 1], np.float32(np.inf))
    chosen = choose_one(*grey, [blend, blend.copy(), near], limits)
    apart = choose_one(*grey, [blend, first, near], limits)
    assert scored == [2, 3]
    np.testing.assert_array_equal(chosen, apart)
    assert (chosen == NEAR).mean() > 0.3  # the near pass is chosen on the right half


def test_a_candidate_equal_to_the_blend_beyond_its_own_range_is_still_scored() -> None:
    # The first pass reads a block 24.5 px, beyond its 24 px range though within the blend's
    # 48: it is scored there as 0 px, a cost unlike the blend's, which can lower the best
    # cost the near pass must beat. Skipped as equal to the blend, it changed the choice of
    # 53 px of this pair (a made-up 1/2-resolution one at 4 px).
    rng = np.random.default_rng(8)
    left = rng.random((32, 48)).astype(np.float32)
    right = np.roll(left, -4, axis=1) + rng.normal(0, 0.02, left.shape).astype(np.float32)
    blend = np.full((64, 96), 8.0, np.float32) + rng.random((64, 96)).astype(np.float32)
    blend[30:34, 40:44] = 24.5
    near = blend + rng.normal(0, 1.5, blend.shape).astype(np.float32)
    limits = (48.0, 24.0, 48.0)
    first = blend.copy()
    first[1, 1] = np.nextafter(first[1, 1], np.float32(np.inf))  # not sampled: scored
    np.testing.assert_array_equal(choose_one(left, right, [blend, blend.copy(), near], limits),
                                  choose_one(left, right, [blend, first, near], limits))


def test_the_blend_alone_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _choose_with_costs(monkeypatch, [np.full(COST_SHAPE, 0.5, np.float32)],
                                [_full(5.0)], (RANGES[1],))
    np.testing.assert_array_equal(chosen, 5.0)


def test_a_lone_choice_is_removed_by_the_median(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pass wins at one pixel of the cost map only (a 2x2 block at full resolution).
    blend = np.full(COST_SHAPE, 0.5, np.float32)
    other = blend.copy()
    other[10, 20] = 0.0
    chosen = _choose_with_costs(monkeypatch, [blend, other], [_full(5.0), _full(9.0)])
    np.testing.assert_array_equal(chosen, 5.0)


def test_the_median_keeps_the_values_around_an_unusable_pixel() -> None:
    # Varied values: OpenCV's median of a window holding NaN would differ from its input.
    disparity = np.random.default_rng(5).uniform(0, 50, (12, 12)).astype(np.float32)
    disparity[6, 6] = np.nan
    filtered = median_of_usable(disparity, np.isfinite(disparity))
    reach = MEDIAN_SIZE // 2
    near = (slice(6 - reach, 6 + reach + 1),) * 2  # the pixels whose window holds it
    np.testing.assert_array_equal(filtered[near], disparity[near])
    padded = np.pad(disparity, reach, mode='edge')
    assert filtered[0, 11] == np.median(padded[0:MEDIAN_SIZE, 11:11 + MEDIAN_SIZE])


def test_the_chosen_map_is_filtered_around_its_unusable_pixels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The blend wins everywhere; it has varied values and one NaN, whose window keeps them.
    # The NaN is at an odd row and column: not sampled by the cost map, where the blend's
    # usable neighbour stands for it (a usable pass would replace it where it is sampled).
    blend = np.random.default_rng(6).uniform(0, 50, (HEIGHT, WIDTH)).astype(np.float32)
    blend[21, 31] = np.nan
    chosen = _choose_with_costs(monkeypatch, [np.zeros(COST_SHAPE), np.ones(COST_SHAPE)],
                                [blend, _full(9.0)])
    np.testing.assert_array_equal(chosen, median_of_usable(blend, np.isfinite(blend)))
    window = (slice(19, 24), slice(29, 34))
    np.testing.assert_array_equal(chosen[window], blend[window])


def test_the_blend_counts_up_to_the_largest_range() -> None:
    # A blend of 100 px is beyond the first pass's 64 px but within the near pass's 128 px:
    # usable, so on a flat image (no estimate better) it stays.
    images = _flat_pair()
    chosen = choose_by_matching(*images, _maps(100.0), [_maps(9.0), _maps(30.0)], RANGES)
    np.testing.assert_array_equal(chosen.numpy(), 100.0)
    with pytest.raises(ValueError, match='2 passes but 1 ranges'):
        choose_by_matching(*images, _maps(100.0), [_maps(9.0), _maps(30.0)], RANGES[:1])


def test_a_pass_is_not_taken_where_it_is_out_of_range_between_its_samples(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The pass wins everywhere and is in range at the pixels the cost map samples (even rows
    # and columns), but 500 px (beyond its 128 px) at the others: those keep the blend.
    rows, columns = np.indices((HEIGHT, WIDTH))
    pass_values = np.where((rows % 2 == 0) & (columns % 2 == 0), 9.0, 500.0).astype(np.float32)
    chosen = _choose_with_costs(monkeypatch, [np.ones(COST_SHAPE), np.zeros(COST_SHAPE)],
                                [_full(5.0), pass_values], (128.0, 128.0))
    assert set(np.unique(chosen)) <= {5.0, 9.0}


def test_cards_record_the_word_that_reproduces_them() -> None:
    from stereo_depth_ros.training.model_card import default_inference_options
    models = Path(__file__).resolve().parents[1] / 'models'
    for backend, word in (('costnet', 'always'), ('costnet_fast', 'always'), ('dispnet', 'never'),
                          ('dispnetc', 'never'), ('squeezeseg', 'never'),
                          ('dispnet_qr', 'never')):
        assert default_inference_options(backend)['match_passes'] == word
        card = yaml.safe_load((models / f'{backend}.yaml').read_text())
        assert card['evaluation']['backend_options']['match_passes'] == word


def test_the_median_removes_a_lone_value_and_leaves_unusable_pixels_alone() -> None:
    disparity = np.full((12, 12), 10.0, np.float32)
    disparity[3, 3] = 40.0  # a lone wrong choice
    disparity[8, 8] = np.nan  # unusable: stays, and its window keeps its own values
    usable = np.isfinite(disparity)
    filtered = median_of_usable(disparity, usable)
    assert filtered[3, 3] == 10.0
    assert np.isnan(filtered[8, 8])
    reach = MEDIAN_SIZE // 2
    window = filtered[8 - reach:8 + reach + 1, 8 - reach:8 + reach + 1]
    assert np.isnan(window).sum() == 1 and np.nanmax(window) == 10.0


def test_an_unusable_estimate_is_never_chosen() -> None:
    # The pass that would match is NaN on its left half and negative on its right half.
    left, right, truth = _textured_pair()
    images = [images_to_tensor([image], torch.device('cpu')) for image in (left, right)]
    broken = np.where(np.arange(WIDTH) < WIDTH // 2, np.nan, -1.0).astype(np.float32)
    chosen = choose_by_matching(*images, _maps(3.0), [_maps(broken)], RANGES[:1])
    np.testing.assert_array_equal(chosen.numpy(), 3.0)
    nowhere = choose_by_matching(*images, _maps(np.nan), [_maps(np.nan)], RANGES[:1])
    assert not np.isfinite(nowhere.numpy()).any()


def test_an_estimate_beyond_its_pass_range_is_never_chosen() -> None:
    # The matching pass holds NEAR px, above the 20 px range it is given: the blend stays.
    left, right, truth = _textured_pair()
    images = [images_to_tensor([image], torch.device('cpu')) for image in (left, right)]
    chosen = choose_by_matching(*images, _maps(FAR), [_maps(truth)], [20.0])
    np.testing.assert_array_equal(chosen.numpy()[0, 0][_matched()], FAR)


def test_a_batch_of_odd_sized_pairs_is_chosen_image_by_image() -> None:
    left, right, truth = _textured_pair()
    left, right, truth = left[:61, :157], right[:61, :157], truth[:61, :157]
    pairs = [(left, right), (right[:, ::-1].copy(), left[:, ::-1].copy())]
    estimates = [np.full(truth.shape, FAR, np.float32), truth, truth + 5]
    one_by_one = [choose_by_matching(*(images_to_tensor([image], torch.device('cpu'))
                                       for image in pair),
                                     torch.from_numpy(estimates[0])[None, None],
                                     [torch.from_numpy(e)[None, None] for e in estimates[1:]],
                                     RANGES)[0, 0] for pair in pairs]
    batch = choose_by_matching(
        images_to_tensor([pair[0] for pair in pairs], torch.device('cpu')),
        images_to_tensor([pair[1] for pair in pairs], torch.device('cpu')),
        torch.from_numpy(np.stack([estimates[0]] * 2))[:, None],
        [torch.from_numpy(np.stack([e] * 2))[:, None] for e in estimates[1:]], RANGES)
    assert batch.shape == (2, 1, 61, 157)
    for index in range(2):
        np.testing.assert_array_equal(batch[index, 0].numpy(), one_by_one[index].numpy())


def test_auto_means_the_networks_own_choice() -> None:
    assert resolve_match_passes(CostNet, 'auto') is True
    assert resolve_match_passes(DispNet, 'auto') is False
    assert resolve_match_passes(DispNet, 'always') is True
    assert resolve_match_passes(CostNet, 'never') is False


def test_the_backend_option_takes_words_yaml_does_not_read_as_booleans() -> None:
    # 'off' would arrive as False from a YAML parameter file; the option refuses it by name.
    with pytest.raises(BackendError, match='match_passes'):
        create_backend('costnet', device='cpu', match_passes=False)
    with pytest.raises(BackendError, match='match_passes'):
        create_backend('costnet', device='cpu', match_passes='off')


@pytest.mark.parametrize('setting, matched', [('auto', True), ('never', False)])
def test_the_costnet_backend_matches_its_passes_by_default(
        monkeypatch: pytest.MonkeyPatch, setting: str, matched: bool) -> None:
    calls: list[int] = []

    def counted(*args: Any) -> Any:
        calls.append(1)
        return choose_by_matching(*args)

    monkeypatch.setattr(inference, 'choose_by_matching', counted)
    backend = create_backend('costnet', device='cpu', match_passes=setting)
    assert backend.match_passes is matched
    assert ('passes matched' in backend.describe()) is matched
    left, right, _ = _textured_pair()
    disparity = backend.compute(left, right)
    assert disparity.shape == (HEIGHT, WIDTH) and np.isfinite(disparity).mean() > 0.9
    assert len(calls) == int(matched)
