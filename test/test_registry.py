"""Backend registry: names, clear errors, weights rules, and the SGBM backend's contract."""

import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from stereo_depth_ros.backends import (BackendRecord, DisparityBackend, backend_names,
                                       backend_record, create_backend, register_backend)
from stereo_depth_ros.backends import registry
from stereo_depth_ros.errors import BackendError, ImageFormatError
from stereo_depth_ros.settings import option


@dataclass(frozen=True)
class ShiftOptions:
    """Options of the toy backend below."""

    shift: float = option(1.0, 'Constant disparity the toy backend outputs (px).',
                          limits=(0.0, 10.0), aliases=('offset',))


class ShiftBackend(DisparityBackend):
    """A toy classical backend: a constant disparity."""

    name = 'shift'

    def __init__(self, options: ShiftOptions) -> None:
        self.options = options

    @property
    def min_disparity(self) -> float:
        return 0.0

    @property
    def max_disparity(self) -> float:
        return 10.0

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.full(left.shape[:2], self.options.shift, np.float32)


@pytest.fixture
def shift_backend(monkeypatch):
    """Register the toy backend for one test (the registry is restored afterwards)."""
    # Loaded before the copy: a built-in module first imported into the copy would stay
    # imported, its backend gone from the restored registry.
    backend_record('sgbm')
    monkeypatch.setattr(registry, '_REGISTRY', dict(registry._REGISTRY))
    return register_backend(BackendRecord('shift', 'constant disparity (test only)',
                                          ShiftOptions,
                                          factory=lambda options, device: ShiftBackend(options)))


def test_a_backend_added_by_one_record_is_listed_built_and_checked(shift_backend):
    assert backend_names()[-1] == 'shift' and backend_record('shift') is shift_backend
    image = np.zeros((20, 30, 3), np.uint8)
    assert create_backend('shift', offset=2.5).compute(image, image)[0, 0] == 2.5
    with pytest.raises(BackendError, match='shift offset must be within 0 .. 10'):
        create_backend('shift', offset=11.0)
    with pytest.raises(BackendError, match="unknown shift option 'gain'; known: shift"):
        create_backend('shift', gain=1.0)
    impostor = BackendRecord('shift', 'another module', ShiftOptions,
                             factory=registry.create_backend)  # any callable of another module
    with pytest.raises(BackendError, match=r"'shift' is registered twice: by \S*test_registry "
                                           r'and by stereo_depth_ros\.backends\.registry'):
        register_backend(impostor)


def test_a_backend_breaking_its_contract_or_the_node_sections_is_one_clear_error(
        shift_backend, monkeypatch):
    from stereo_depth_ros.node_config import validate
    # Its options are neither SGBMOptions nor LearnedOptions: the node cannot declare them,
    # and a parameter file naming it is refused at once, saying what would make it fit.
    with pytest.raises(BackendError, match=r"backend 'shift' has options \(ShiftOptions\) "
                                           r'.*must subclass SGBMOptions \(sgbm\.\*\) or '
                                           r'LearnedOptions \(learned\.\*\)'):
        validate({'backend': 'shift'})
    image = np.zeros((20, 30, 3), np.uint8)
    backend = create_backend('shift')
    monkeypatch.setattr(backend, '_compute', lambda left, right: np.zeros((20, 30)))
    with pytest.raises(BackendError, match="'shift' broke its contract: returned float64 "
                                           r'\(20, 30\), expected float32 \(20, 30\)'):
        backend.compute(image, image)
    monkeypatch.setattr(backend, '_compute', lambda left, right: None)  # forgot to return
    with pytest.raises(BackendError, match='broke its contract: returned NoneType'):
        backend.compute(image, image)


def test_one_sgbm_backend_shared_by_threads_gives_each_the_sequential_result():
    import threading
    from stereo_depth_ros.data.synthetic import make_scene
    backend = create_backend('sgbm')
    scenes = [make_scene(seed, 96, 192, kind='road') for seed in (1, 2, 3)]
    expected = [backend.compute(scene.left, scene.right) for scene in scenes]
    differ = []

    def work() -> None:
        for _ in range(10):
            for scene, reference in zip(scenes, expected):
                result = backend.compute(scene.left, scene.right)
                differ.append(not np.array_equal(result, reference, equal_nan=True))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(differ) == 120 and not any(differ)


def test_missing_weights_name_a_training_config_only_where_one_exists(monkeypatch, tmp_path):
    # A file the user names: where it was looked for, not a training run.
    with pytest.raises(BackendError, match=r'^weights file /no/such.safetensors does not exist; '
                                           r'give the path of an existing costnet weights file'):
        create_backend('costnet', weights='/no/such.safetensors')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BackendError, match=r'weights file w/x.safetensors does not exist, '
                       rf'relative to the current folder {re.escape(str(tmp_path))};'):
        create_backend('costnet', weights='w/x.safetensors')
    # ~ as a shell expands it (a parameter file's or a launch argument's value is not).
    monkeypatch.setenv('HOME', str(tmp_path))
    shipped = registry.backend_record('costnet_fast').default_weights()
    (tmp_path / 'mine.safetensors').write_bytes(shipped.read_bytes())
    assert create_backend('costnet_fast', weights='~/mine.safetensors', device='cpu').name == \
        'costnet_fast'
    with pytest.raises(BackendError, match=r"'costnet' needs weights and models/costnet"
                                           r'.safetensors does not exist; .*--config '
                                           r'\S*config/train_costnet'):
        monkeypatch.setattr(registry.BackendRecord, 'default_weights', lambda record: None)
        create_backend('costnet')
    monkeypatch.undo()
    from stereo_depth_ros.backends.options import LearnedOptions
    backend_record('sgbm')  # loaded before the copy (see shift_backend)
    monkeypatch.setattr(registry, '_REGISTRY', dict(registry._REGISTRY))
    register_backend(BackendRecord('toynet', 'no config (test only)', LearnedOptions,
                                   network=backend_record('costnet').network))
    with pytest.raises(BackendError, match=r"'toynet' needs weights and models/toynet"
                                           r'.safetensors does not exist; train them with '
                                           r'`stereo-depth train --config <your config>`, or '
                                           r'give other weights'):
        create_backend('toynet')


def test_a_backend_whose_module_fails_to_import_is_named_with_the_import_error(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, 'broken', 'stereo_depth_ros.no_such_module')
    with pytest.raises(BackendError, match="backend 'broken' cannot be loaded: No module named"):
        create_backend('broken')


def test_building_sgbm_does_not_import_torch():
    code = ('import sys; from stereo_depth_ros.node_config import build_backend, validate; '
            'build_backend(validate({"backend": "sgbm"})); print("torch" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == 'False'


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
    with pytest.raises(ImageFormatError, match='must be one size'):
        backend.compute(image, image[:, :50])
    with pytest.raises(ImageFormatError, match='uint8'):
        backend.compute(image.astype(np.float32), image)
    with pytest.raises(ImageFormatError, match='HxWx3'):
        backend.compute(np.zeros((40, 60, 4), np.uint8), np.zeros((40, 60, 4), np.uint8))
    with pytest.raises(ImageFormatError, match=r'^left image is colour but right image is '
                                               r'grey: both cameras must be grey or both'):
        backend.compute(image, image[:, :, 0])


def test_image_narrower_than_disparity_range():
    rng = np.random.default_rng(1)
    left = rng.integers(0, 255, (64, 96), dtype=np.uint8)
    right = np.roll(left, -5, axis=1)
    disparity = create_backend('sgbm', disparity_range=128).compute(left, right)
    assert disparity.shape == (64, 96)
    assert np.nanmedian(disparity) == pytest.approx(5.0, abs=0.5)


def test_sgbm_reaches_at_most_width_minus_1_on_a_padded_narrow_image():
    # Under 17 px wide sgbm searches 16 px on a padded copy: no match lies beyond width - 1.
    backend = create_backend('sgbm')
    assert backend.largest_disparity(10) == 9.0
    assert backend.largest_disparity(100) == 95.0  # a searched range, in steps of 16


def test_a_speckle_range_below_a_sixteenth_of_a_pixel_is_refused():
    # Below 1/16 px almost every pair of neighbours differs by more: all would be speckles.
    with pytest.raises(BackendError, match='speckle_range'):
        create_backend('costnet_fast', speckle_range=0.0)
    assert create_backend('costnet_fast', speckle_range=0.0625, device='cpu') is not None
