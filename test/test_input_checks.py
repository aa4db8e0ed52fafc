"""Input checks of the training sources: pair shapes and the seeds of synthetic scenes."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import stereo_depth_ros.data.synthetic as synthetic
from stereo_depth_ros.data.datasets import StereoSample
from stereo_depth_ros.errors import DatasetError
from stereo_depth_ros.training.config import DataConfig, SourceConfig
from stereo_depth_ros.training.sources import (TRAIN_SEED_LIMIT, FileSource, SyntheticSource,
                                               TrainingData)

torch.set_num_threads(1)


def _pair(name: str, left: tuple, right: tuple, disparity: tuple) -> StereoSample:
    return StereoSample(name, np.zeros(left, np.uint8), np.zeros(right, np.uint8),
                        np.ones(disparity, np.float32))


@pytest.mark.parametrize('pair, message', [
    (_pair('A/0000/0006', (20, 40, 3), (20, 40, 3), (20, 41)), r'disparity \(20, 41\)'),
    (_pair('A/0000/0007', (20, 40, 3), (21, 40, 3), (20, 40)), r'right image \(21, 40, 3\)'),
    (_pair('A/0000/0008', (20, 40), (20, 40), (20, 40)), 'HxWx3'),
])
def test_file_source_names_the_pair_with_mismatched_shapes(pair: StereoSample,
                                                           message: str) -> None:
    source = FileSource([pair], seed=0)
    with pytest.raises(DatasetError, match=f"'{pair.name}'.*{message}"):
        source.sample(0, np.random.default_rng(0))


def test_file_source_accepts_matching_shapes() -> None:
    source = FileSource([_pair('ok', (20, 40, 3), (20, 40, 3), (20, 40))], seed=0)
    sample = source.sample(0, np.random.default_rng(0))
    assert sample.left.shape == (20, 40, 3) and sample.disparity.shape == (20, 40)


def _record_make_scene(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace make_scene where sources.py looks it up; return the list of seeds it gets."""
    seeds: list[int] = []

    def fake_make_scene(seed: int, height: int, width: int, kind: str,
                        **options: object) -> SimpleNamespace:
        seeds.append(int(seed))
        image = np.full((height, width, 3), seed % 256, np.uint8)
        return SimpleNamespace(left=image, right=image,
                               disparity=np.ones((height, width), np.float32))

    monkeypatch.setattr(synthetic, 'make_scene', fake_make_scene)
    return seeds


def _data_config() -> DataConfig:
    return DataConfig(sources=[SourceConfig(height=16, width=32, scene_reuse=2)],
                      augmentation=[])


def test_training_batches_use_scene_seeds_below_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = _record_make_scene(monkeypatch)
    batch_size = 3
    for config_seed in (0, 5, 10 ** 12 + 7, 2 ** 62 - 1):
        seeds.clear()
        data = TrainingData(_data_config(), seed=config_seed, batch_size=batch_size)
        for step in range(6):
            batch = data.batch(step, batch_size)
            assert batch['left'].shape == (batch_size, 3, 16, 32)
        assert len(seeds) == 9  # 18 samples, each scene serves 2 steps
        assert all(0 <= seed < TRAIN_SEED_LIMIT for seed in seeds)
        source = data.sources[0]
        assert sorted(seeds) == sorted({source.scene_seed(i) for i in range(6 * batch_size)})


def test_synthetic_scenes_are_generated_with_scene_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = _record_make_scene(monkeypatch)
    returned: list[int] = []
    original = SyntheticSource.scene_seed

    def spy(self: SyntheticSource, index: int) -> int:
        seed = original(self, index)
        returned.append(seed)
        return seed

    monkeypatch.setattr(SyntheticSource, 'scene_seed', spy)
    data = TrainingData(_data_config(), seed=123, batch_size=2)
    for step in range(4):
        data.batch(step, 2)
    assert seeds and seeds == returned
