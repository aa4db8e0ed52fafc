"""Pixels without texture in the left image are unknown for the learned backends."""

import cv2
import numpy as np
import pytest

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.networks.textureless import WINDOW, textureless


def test_only_windows_of_a_single_grey_level_are_textureless() -> None:
    image = np.full((40, 60), 255, np.uint8)
    image[:, 30:] = np.random.default_rng(0).integers(0, 256, (40, 30), dtype=np.uint8)
    image[20, 5] = 254  # one grey level of noise is texture
    flat = textureless(image)
    half = WINDOW // 2
    near_noise = np.zeros_like(flat)
    near_noise[20 - half:20 + half + 1, :5 + half + 1] = True  # windows that hold (20, 5)
    np.testing.assert_array_equal(flat[:, :30 - half], ~near_noise[:, :30 - half])
    assert not flat[:, 30 - half:].any()  # these windows reach the random half
    colour = np.repeat(image[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(textureless(colour), flat)


@pytest.mark.parametrize('value', [0, 255])
def test_a_learned_backend_gives_a_blank_pair_no_disparity(value) -> None:
    # A covered lens or a black frame: costnet_fast gave 2-28 px everywhere, a surface a few
    # metres away that the obstacle search reported as an obstacle.
    blank = np.full((64, 96, 3), value, np.uint8)
    assert np.isnan(create_backend('costnet_fast').compute(blank, blank)).all()


def test_a_learned_backend_keeps_the_textured_pixels_of_a_partly_blank_pair() -> None:
    rng = np.random.default_rng(1)
    right = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    left = np.roll(right, 4, axis=1)  # 4 px of disparity
    left[:, 80:] = 255  # saturated on the right
    disparity = create_backend('costnet_fast').compute(left, right)
    flat = textureless(left)
    assert flat[:, 90:].all() and np.isnan(disparity[flat]).all()
    assert np.isfinite(disparity[:, 8:70]).all()


def test_the_window_is_15_px_square_around_each_pixel() -> None:
    image = np.full((41, 41), 100, np.uint8)
    image[20, 20] = 101
    flat = textureless(image)
    assert WINDOW == 15
    expected = np.ones_like(flat)
    expected[13:28, 13:28] = False  # 7 px either side of the dot see it, 8 px do not
    np.testing.assert_array_equal(flat, expected)


def test_colour_images_are_weighed_as_rgb() -> None:
    """Red and a teal of the same RGB grey level (76) are one level; read as BGR they are not."""
    image = np.zeros((30, 30, 3), np.uint8)
    image[:, :15] = (255, 0, 0)
    image[:, 15:] = (0, 110, 100)
    as_rgb = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    assert (as_rgb == 76).all()
    assert textureless(image).all()
    assert not textureless(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)).all()
