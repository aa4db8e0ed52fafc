"""Tests of which pixels the right camera cannot see (``evaluation.visibility``)."""

import numpy as np
import pytest
import torch

from stereo_depth_ros.data.synthetic import VALIDATION_SEED_OFFSET, make_scene
from stereo_depth_ros.evaluation.visibility import unseen_by_right_camera


def _row(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, np.float32)).view(1, 1, 1, -1)


def test_the_left_border_and_the_background_behind_a_nearer_block_are_unseen():
    disparity = np.full(12, 2.0)
    disparity[6:9] = 5.0  # seen at right columns 1-3, in front of left columns 3-5
    unseen = unseen_by_right_camera(_row(disparity))[0, 0, 0]
    assert unseen.tolist() == [1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]


def test_a_thin_object_hides_only_as_much_background_as_it_is_wide():
    disparity = np.full(300, 70.0)
    disparity[200:203] = 90.0  # 3 px wide, 20 px nearer: covers right columns 110-112
    unseen = unseen_by_right_camera(_row(disparity))[0, 0, 0].numpy()
    assert np.flatnonzero(unseen).tolist() == list(range(70)) + [180, 181, 182]


def test_a_slanted_surface_hides_none_of_itself():
    columns = np.arange(64, dtype=np.float32)
    for slope in (0.9, -0.9):  # squeezed, or stretched almost twice, in the right view
        disparity = 40.0 + slope * columns
        unseen = unseen_by_right_camera(_row(disparity))[0, 0, 0].numpy()
        assert (unseen > 0).tolist() == (columns - disparity < -0.5).tolist()


def test_unknown_pixels_are_neither_counted_nor_hide_others():
    disparity = np.full(12, 2.0)
    disparity[6:9] = np.nan  # the block of the first test, unknown
    disparity[10] = 0.0
    unseen = unseen_by_right_camera(_row(disparity))[0, 0, 0]
    assert unseen.tolist() == [1, 1] + [0] * 10


@pytest.mark.parametrize('kind', ['layered', 'road'])
def test_it_agrees_with_the_right_view_the_generator_renders(kind):
    for seed in range(2):
        scene = make_scene(VALIDATION_SEED_OFFSET + 400 + seed, 192, 640, kind,
                           max_disparity=192)
        left, right = scene.disparity.astype(np.float32), scene.disparity_right
        landing = np.round(np.arange(left.shape[1])[None, :] - left).astype(int)
        rows = np.broadcast_to(np.arange(left.shape[0])[:, None], left.shape)
        inside = landing >= 0
        seen = np.zeros(left.shape, bool)
        seen[inside] = np.abs(right[rows[inside], landing[inside]] - left[inside]) <= 1
        unseen = unseen_by_right_camera(torch.from_numpy(left)[None, None])[0, 0].numpy() > 0
        assert (~seen).any()
        assert (unseen == ~seen).mean() > 0.995


def test_zero_disparity_is_unknown_even_where_a_nearer_surface_lands():
    # KITTI's ground truth marks missing pixels 0: one behind a nearer surface is not unseen.
    disparity = np.full(12, 2.0)
    disparity[5] = 0.0  # the pixel at column 7 (2 px) lands on column 5
    unseen = unseen_by_right_camera(_row(disparity))[0, 0, 0]
    assert unseen.tolist() == [1, 1] + [0] * 10
