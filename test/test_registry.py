"""Backend registry: names, clear errors, weights rules, and the SGBM backend's contract."""

import numpy as np
import pytest

from stereo_depth_ros.backends import backend_names, create_backend
from stereo_depth_ros.errors import BackendError, ImageFormatError


def test_unknown_backend_lists_known_names():
    with pytest.raises(BackendError, match='known backends: .*sgbm'):
        create_backend('no_such_net')


def test_sgbm_needs_no_weights_and_rejects_them(tmp_path):
    assert 'sgbm' in backend_names()
    with pytest.raises(BackendError, match='takes no weights'):
        create_backend('sgbm', weights=tmp_path / 'x.safetensors')


def test_sgbm_options_are_validated():
    with pytest.raises(BackendError, match='multiple of 16'):
        create_backend('sgbm', disparity_range=50)
    with pytest.raises(BackendError, match='unknown sgbm option'):
        create_backend('sgbm', num_disp=64)
    with pytest.raises(BackendError, match='mode'):
        create_backend('sgbm', mode='fast')
    with pytest.raises(BackendError, match='disparity_range must be an integer'):
        create_backend('sgbm', disparity_range='6x')


def test_contract_odd_size_grey_and_colour():
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (123, 251, 3), dtype=np.uint8)
    right = np.roll(left, -7, axis=1)
    backend = create_backend('sgbm', disparity_range=32)
    disparity = backend.compute(left, right)
    assert disparity.shape == (123, 251) and disparity.dtype == np.float32
    valid = np.isfinite(disparity)
    assert valid.mean() > 0.5
    assert np.median(disparity[valid]) == pytest.approx(7.0, abs=0.5)
    grey = backend.compute(left[:, :, 0], right[:, :, 0])
    assert grey.shape == (123, 251)


def test_bad_input_is_named():
    backend = create_backend('sgbm')
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    with pytest.raises(ImageFormatError, match='differ in size'):
        backend.compute(image, image[:, :50])
    with pytest.raises(ImageFormatError, match='uint8'):
        backend.compute(image.astype(np.float32), image)
    with pytest.raises(ImageFormatError, match='HxWx3'):
        backend.compute(np.zeros((40, 60, 4), np.uint8), np.zeros((40, 60, 4), np.uint8))


def test_image_narrower_than_disparity_range():
    rng = np.random.default_rng(1)
    left = rng.integers(0, 255, (64, 96), dtype=np.uint8)
    right = np.roll(left, -5, axis=1)
    disparity = create_backend('sgbm', disparity_range=128).compute(left, right)
    assert disparity.shape == (64, 96)
    assert np.nanmedian(disparity) == pytest.approx(5.0, abs=0.5)
