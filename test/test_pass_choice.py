"""Tests of the choice between the inference passes by matching cost (``match_passes``)."""

import numpy as np
import pytest
import torch

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.networks.dispnet import DispNet
from stereo_depth_ros.networks.inference import images_to_tensor, resolve_match_passes
from stereo_depth_ros.networks.pass_choice import (BLEND_PREFERENCE, choose_by_matching,
                                                   matching_costs)

HEIGHT, WIDTH = 64, 160
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
    chosen = choose_by_matching(*images, blend, [right_pass, wrong_pass])[0, 0].numpy()
    matched = _matched()
    np.testing.assert_array_equal(chosen[matched], truth[matched])


def test_the_blend_stays_where_no_estimate_is_clearly_better() -> None:
    # A flat image matches every estimate equally: nothing is better by BLEND_PREFERENCE.
    flat = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    images = [images_to_tensor([flat], torch.device('cpu'))] * 2
    assert BLEND_PREFERENCE > 0
    chosen = choose_by_matching(*images, _maps(5.0), [_maps(9.0), _maps(30.0)])
    np.testing.assert_array_equal(chosen.numpy(), 5.0)


def test_an_unusable_estimate_is_never_chosen() -> None:
    # The pass that would match is NaN on its left half and negative on its right half.
    left, right, truth = _textured_pair()
    images = [images_to_tensor([image], torch.device('cpu')) for image in (left, right)]
    broken = np.where(np.arange(WIDTH) < WIDTH // 2, np.nan, -1.0).astype(np.float32)
    chosen = choose_by_matching(*images, _maps(3.0), [_maps(broken)])
    np.testing.assert_array_equal(chosen.numpy(), 3.0)
    nowhere = choose_by_matching(*images, _maps(np.nan), [_maps(np.nan)])
    assert not np.isfinite(nowhere.numpy()).any()


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
def test_the_costnet_backend_matches_its_passes_by_default(setting: str, matched: bool) -> None:
    backend = create_backend('costnet', device='cpu', match_passes=setting)
    assert backend.match_passes is matched
    assert ('passes matched' in backend.describe()) is matched
    left, right, _ = _textured_pair()
    disparity = backend.compute(left, right)
    assert disparity.shape == (HEIGHT, WIDTH) and np.isfinite(disparity).mean() > 0.9
