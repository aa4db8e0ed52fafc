"""Training data path: pair split, pseudo-labels, augmentation geometry and sources' seeds."""

import json
import re

import numpy as np
import pytest
import torch

from stereo_depth_ros.data.datasets import StereoSample
from stereo_depth_ros.data.synthetic import (EVAL_SEED_OFFSET, TEST_SEED_OFFSET,
                                             VALIDATION_SEED_OFFSET)
from stereo_depth_ros.networks.common import StereoNet
from stereo_depth_ros.training.augment import (CameraDegradation, Photometric, RandomCrop,
                                               RandomScale, TrainSample, Vignetting,
                                               build_transform, vignette)
from stereo_depth_ros.training.checkpoint import (CheckpointError, load_checkpoint,
                                                  read_model_state, save_checkpoint)
from stereo_depth_ros.training.config import (AdaptationConfig, ConfigError, DataConfig,
                                              EvaluationConfig, SourceConfig, TrainConfig,
                                              from_dict, validate)
from stereo_depth_ros.training.pair_split import selection_pairs, split_pairs, training_pairs
from stereo_depth_ros.training.pseudo_labels import left_right_consistent, make_labeller
from stereo_depth_ros.training.sources import (FileSource, SyntheticSource, TrainingData,
                                               forget_beyond, read_vkitti2_focals)
from stereo_depth_ros.training.validate import heldout_scenes, predict_batch
from stereo_depth_ros.training.validate import validate as run_validation

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# Pair split
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('every', [0, 1])
def test_a_holdout_of_every_0_or_1_pair_holds_out_nothing(every: int) -> None:
    # holdout_every below 2 switches the hold-out off: the run trains on every pair.
    assert split_pairs(['a', 'b', 'c'], every) == (['a', 'b', 'c'], [])


# ---------------------------------------------------------------------------------------------
# Pseudo-labels: the left-right check
# ---------------------------------------------------------------------------------------------

def _one_row(left_value: float, column: int, right: dict[int, float],
             width: int = 12) -> np.ndarray:
    """Check one left pixel with ``left_value`` at ``column``; return its checked label."""
    left = np.full((1, width), np.nan, np.float32)
    left[0, column] = left_value
    right_disparity = np.full((1, width), 50.0, np.float32)  # disagrees with everything
    for x, value in right.items():
        right_disparity[0, x] = value
    return left_right_consistent(left, right_disparity)[0, column]


def test_the_left_right_check_looks_at_the_nearest_right_column() -> None:
    # x = 10, d = 2.4: the match lies at 7.6, nearest column 8 (not 7, below it).
    assert _one_row(2.4, 10, {8: 2.4, 7: 40.0}) == pytest.approx(2.4)
    assert np.isnan(_one_row(2.4, 10, {7: 2.4, 8: 40.0}))


def test_a_match_in_the_first_right_column_is_checked_not_dropped() -> None:
    assert _one_row(3.0, 3, {0: 3.0}) == pytest.approx(3.0)
    assert np.isnan(_one_row(4.0, 3, {0: 4.0}))  # its match is outside the right view


def test_sgbm_labels_reach_a_range_that_is_no_multiple_of_16() -> None:
    # A random texture moved 36 px: asked for labels up to 40 px, SGBM must search past 32.
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 192), dtype=np.uint8)
    texture = np.repeat(texture[:, :, None], 3, axis=2)
    left = texture[:, :128].copy()
    right = texture[:, 36:36 + 128].copy()  # left[x] is right[x - 36]
    labels = make_labeller(40.0)(left, right)
    known = np.isfinite(labels[:, 60:])
    assert known.mean() > 0.5
    assert np.abs(labels[:, 60:][known] - 36.0).max() <= 1.0


# ---------------------------------------------------------------------------------------------
# Augmentation: ground truth stays exact
# ---------------------------------------------------------------------------------------------

def test_random_scale_multiplies_disparities_by_the_width_ratio_exactly() -> None:
    # 16x100 at 0.55: the width becomes 55 (0.55), the height 9 (0.5625). Disparities scale
    # with the width only.
    disparity = np.full((16, 100), 20.0, np.float32)
    image = np.zeros((16, 100, 3), np.float32)
    out = RandomScale(0.55, 0.55, probability=1.0)(TrainSample(image, image, disparity),
                                                   np.random.default_rng(0))
    assert out.disparity.shape == (9, 55)
    np.testing.assert_allclose(out.disparity, 20.0 * 55 / 100, rtol=1e-6)


def test_random_scale_never_blends_labels_across_an_edge_or_into_unknown() -> None:
    disparity = np.full((32, 64), 4.0, np.float32)
    disparity[:, 21:] = 30.0
    disparity[10:17, 5:15] = np.nan
    image = np.zeros((32, 64, 3), np.float32)
    for factor in (0.7, 0.83, 1.17, 1.3):
        out = RandomScale(factor, factor, probability=1.0)(
            TrainSample(image, image, disparity), np.random.default_rng(0))
        scale = out.disparity.shape[1] / 64
        values = out.disparity[np.isfinite(out.disparity)] / scale
        assert np.all(np.isclose(values, 4.0) | np.isclose(values, 30.0)), factor
        assert np.isnan(out.disparity).sum() >= 0.8 * 70 * factor ** 2


def test_camera_degradation_moves_the_right_view_vertically_only() -> None:
    # Only the misalignment on: a view that changes along the columns only keeps every pixel
    # under a vertical shift (the labels stay exact); one that changes along the rows moves.
    shift_only = CameraDegradation(blur=0.0, jpeg_probability=0.0, vertical_shift=1.0,
                                   shift_probability=1.0, eraser_probability=0.0)
    columns = np.broadcast_to(np.arange(48, dtype=np.float32)[None, :, None] * 5,
                              (24, 48, 3)).copy()
    rows = np.broadcast_to(np.arange(24, dtype=np.float32)[:, None, None] * 10,
                           (24, 48, 3)).copy()
    disparity = np.full((24, 48), 3.0, np.float32)
    for seed in range(4):
        out = shift_only(TrainSample(columns, columns.copy(), disparity),
                         np.random.default_rng(seed))
        np.testing.assert_allclose(out.right, columns, atol=1e-3)
        np.testing.assert_array_equal(out.left, columns)
        moved = shift_only(TrainSample(rows, rows.copy(), disparity),
                           np.random.default_rng(seed))
        assert np.abs(moved.right - rows).max() > 0.1


def test_vignetting_of_each_view_has_its_own_strength_around_a_fixed_centre() -> None:
    flat = np.full((21, 41, 3), 200.0, np.float32)
    sample = TrainSample(flat, flat.copy(), np.zeros((21, 41), np.float32))
    centred = Vignetting(strength=0.6, probability=1.0, difference=0.5, centre_jitter=0.0)
    out = centred(sample, np.random.default_rng(1))
    assert out.left[10, 20, 0] == out.right[10, 20, 0] == pytest.approx(200.0)
    assert out.left[0, 0, 0] != pytest.approx(out.right[0, 0, 0])
    same = Vignetting(strength=0.6, probability=1.0, difference=0.0, centre_jitter=0.0)
    out = same(sample, np.random.default_rng(1))
    np.testing.assert_array_equal(out.left, out.right)
    # A strength near 1 made larger for one view stays below 1 (vignette refuses 1).
    strong = Vignetting(strength=0.999, probability=1.0, difference=0.9, centre_jitter=0.0)
    for seed in range(5):
        strong(sample, np.random.default_rng(seed))


def test_a_vignette_around_an_off_centre_point_keeps_light_everywhere() -> None:
    # Past the half diagonal the lens gives no less than 1 - strength, never a negative.
    flat = np.full((21, 41), 100.0, np.float32)
    out = vignette(flat, 0.8, centre=(0.0, 0.0))
    assert out.min() == pytest.approx(20.0)
    assert out[0, 0] == pytest.approx(100.0)


@pytest.mark.parametrize('spec', [
    {'name': 'random_crop', 'height': 0, 'width': 16},
    {'name': 'random_crop', 'height': 16, 'width': 0},
    {'name': 'vertical_flip', 'probability': 1.5},
    {'name': 'random_scale', 'low': 1.2, 'high': 0.8},
    {'name': 'photometric', 'gamma': 1.0},
    {'name': 'photometric', 'contrast': 1.0},
])
def test_augmentation_settings_out_of_range_are_refused(spec: dict) -> None:
    with pytest.raises(ConfigError, match=spec['name']):
        build_transform(spec)


def test_a_crop_wider_than_the_image_is_a_config_error() -> None:
    image = np.zeros((32, 40, 3), np.float32)
    sample = TrainSample(image, image, np.zeros((32, 40), np.float32))
    with pytest.raises(ConfigError, match='larger'):
        RandomCrop(16, 64)(sample, np.random.default_rng(0))
    assert Photometric(probability=0.0)(sample, np.random.default_rng(0)) is sample


# ---------------------------------------------------------------------------------------------
# Sources: which scenes and pairs a run sees
# ---------------------------------------------------------------------------------------------

def test_training_scene_seeds_wrap_below_the_validation_seeds() -> None:
    # Seed 0 starts at scene seed 0: the millionth scene must wrap to 0 again, never reach
    # the first validation seed.
    source = SyntheticSource(SourceConfig(height=16, width=32), seed=0)
    assert [source.scene_seed(n) for n in (0, 1, 999_999)] == [0, 1, 999_999]
    assert source.scene_seed(1_000_000) == 0 and source.scene_seed(1_000_001) == 1
    assert max(source.scene_seed(n) for n in range(999_990, 1_000_010)) < EVAL_SEED_OFFSET


def test_ground_truth_at_the_range_is_kept_and_above_it_unknown() -> None:
    image = np.zeros((1, 3, 3), np.float32)
    sample = TrainSample(image, image, np.array([[16.0, 16.5, np.nan]], np.float32))
    out = forget_beyond(sample, 16.0)
    assert out.disparity[0, 0] == 16.0 and np.isnan(out.disparity[0, 1:]).all()
    assert np.array_equal(sample.disparity, [[16.0, 16.5, np.nan]], equal_nan=True)


def test_a_range_fraction_above_1_or_a_negative_source_weight_is_refused() -> None:
    # Scenes beyond the source's max_disparity; a source drawn with a negative probability.
    with pytest.raises(ConfigError, match='range_fraction'):
        SyntheticSource(SourceConfig(height=16, width=32, range_fraction=[0.5, 1.5]), seed=0)
    sources = [SourceConfig(height=16, width=32, weight=2.0),
               SourceConfig(height=16, width=32, weight=-1.0)]
    with pytest.raises(ConfigError, match='weights must be >= 0'):
        TrainingData(DataConfig(sources=sources), seed=0)


def _named_pairs(count: int) -> list[StereoSample]:
    image = np.zeros((4, 4, 3), np.uint8)
    return [StereoSample(f'p{i}', image, image, np.zeros((4, 4), np.float32))
            for i in range(count)]


def test_a_file_source_shows_every_pair_once_an_epoch_in_a_new_order_per_epoch_and_seed() -> None:
    pairs = _named_pairs(8)
    source = FileSource(pairs, seed=3)
    epochs = [[source.item_index(epoch * 8 + i) for i in range(8)] for epoch in range(3)]
    assert all(sorted(order) == list(range(8)) for order in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    other = FileSource(pairs, seed=4)
    assert [other.item_index(i) for i in range(8)] != epochs[0]
    assert [FileSource(pairs, seed=3).item_index(i) for i in range(24)] == sum(epochs, [])


def test_virtual_kitti_focals_are_those_of_the_left_camera(tmp_path) -> None:
    intrinsics = tmp_path / 'intrinsic.txt'
    intrinsics.write_text('frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n'
                          '0 0 700.0 700.0 600.0 180.0\n'
                          '0 1 999.0 999.0 600.0 180.0\n'
                          '1 1 998.0 998.0 600.0 180.0\n'
                          '1 0 701.5 701.5 600.0 180.0\n')
    assert read_vkitti2_focals(intrinsics) == {0: 700.0, 1: 701.5}


# ---------------------------------------------------------------------------------------------
# Refused settings at their limits
# ---------------------------------------------------------------------------------------------

def _validated(**sections: dict) -> TrainConfig:
    return validate(from_dict(TrainConfig, sections))


@pytest.mark.parametrize('section, value, words', [
    ('optimization', {'steps': 0}, 'optimization.steps must be > 0'),
    ('optimization', {'min_lr_ratio': 1.5}, 'optimization.min_lr_ratio must be in [0, 1]'),
    ('optimization', {'gamma': 0.0}, 'optimization.gamma must be in (0, 1]'),
    ('optimization', {'betas': [0.9, 1.0]}, 'optimization.betas must be two numbers in [0, 1)'),
    ('evaluation', {'num_scenes': -1}, 'evaluation.every and evaluation.num_scenes must be'),
    ('output', {'checkpoint_every': 0}, 'output.log_every and output.checkpoint_every must'),
])
def test_settings_just_past_their_limits_are_refused(section: str, value: dict,
                                                     words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        _validated(**{section: value})


def test_a_yes_or_no_is_not_taken_for_a_number_of_steps() -> None:
    with pytest.raises(ConfigError, match='optimization.steps must be an integer'):
        from_dict(TrainConfig, {'optimization': {'steps': True}})


def _source(height: int, width: int) -> dict:
    return {'kind': 'synthetic', 'height': height, 'width': width, 'max_disparity': 16}


@pytest.mark.parametrize('transforms', [
    # wider than the scenes
    [{'name': 'random_crop', 'height': 64, 'width': 192}],
    # an enlarging scale that leaves half the samples alone: those keep the scenes' size
    [{'name': 'random_scale', 'low': 1.5, 'high': 1.5, 'probability': 0.5},
     {'name': 'random_crop', 'height': 64, 'width': 192}],
    # a crop, then a halving: the second crop is of the first one halved
    [{'name': 'random_crop', 'height': 64, 'width': 128},
     {'name': 'random_scale', 'low': 0.5, 'high': 0.5, 'probability': 1.0},
     {'name': 'random_crop', 'height': 64, 'width': 64}],
])
def test_crops_larger_than_what_the_transforms_before_them_leave_are_refused(
        transforms: list) -> None:
    with pytest.raises(ConfigError, match='random_crop .* is larger than'):
        _validated(data={'sources': [_source(128, 128) if len(transforms) == 3
                                     else _source(64, 128)],
                         'augmentation': transforms})


def test_the_batches_crop_is_the_last_one_and_must_fit_the_network() -> None:
    with pytest.raises(ConfigError, match='random_crop 64x96 is not a multiple of 64'):
        _validated(data={'augmentation': [{'name': 'random_crop', 'height': 128, 'width': 256},
                                          {'name': 'random_crop', 'height': 64, 'width': 96}]})


def test_adapt_holds_out_by_default_only_pairs_that_selection_judges() -> None:
    # Selection scores runs on adapt's held-out pairs: a different default would hold out
    # pairs that selection never looks at, and a pseudo source that leaves out the
    # selection pairs would still train on pairs adapt validates with.
    pairs = list(range(40))
    _, held = split_pairs(pairs, AdaptationConfig().holdout_every)
    assert held and set(held) <= set(selection_pairs(pairs))
    assert not set(held) & set(training_pairs(pairs))


# ---------------------------------------------------------------------------------------------
# Validation and checkpoints
# ---------------------------------------------------------------------------------------------

def test_validation_scenes_use_validation_seeds_and_the_configured_range(monkeypatch) -> None:
    import stereo_depth_ros.data.synthetic as synthetic
    calls: list = []
    original = synthetic.make_scene

    def spy(seed: int, *args, **options):
        calls.append((seed, options.get('max_disparity')))
        return original(seed, *args, **options)

    monkeypatch.setattr(synthetic, 'make_scene', spy)
    scenes = heldout_scenes(EvaluationConfig(num_scenes=3, height=32, width=64,
                                             max_disparity=12.0))
    assert len(scenes) == 3 and len({seed for seed, _ in calls}) == 3
    for seed, max_disparity in calls:
        assert VALIDATION_SEED_OFFSET <= seed < TEST_SEED_OFFSET  # not training's, not eval:N's
        assert max_disparity == 12.0
    assert max(np.nanmax(scene[2]) for scene in scenes) <= 12.0


class _RampNet(StereoNet):
    """Predicts the column index minus 3 everywhere: negative, in range and above it."""

    def __init__(self) -> None:
        super().__init__(max_disparity=40.0)
        self.divisor = 16
        self.scale = torch.nn.Parameter(torch.ones(()))

    def predict(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        columns = torch.arange(left.shape[-1], dtype=torch.float32) - 3
        return (columns * self.scale).expand(left.shape[0], 1, *left.shape[-2:]).clone()


def test_validation_masks_predictions_outside_the_range_and_keeps_training_mode() -> None:
    model = _RampNet()
    image = np.zeros((16, 64, 3), np.uint8)
    predicted = predict_batch(model, [image], [image], torch.device('cpu'))[0]
    assert np.isnan(predicted[:, :3]).all() and np.isnan(predicted[:, 44:]).all()
    np.testing.assert_allclose(predicted[:, 3:44], np.broadcast_to(np.arange(41.0), (16, 41)))
    truth = np.full((16, 64), 10.0, np.float32)
    model.train()
    run_validation(model, [(image, image, truth)], torch.device('cpu'))
    assert model.training  # training goes on with its BatchNorm statistics updating
    model.eval()
    run_validation(model, [(image, image, truth)], torch.device('cpu'))
    assert not model.training


def test_a_checkpoint_restores_optimizer_state_that_is_not_a_tensor(tmp_path) -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    optimizer.state[model.weight]['passes'] = 3
    save_checkpoint(tmp_path / 'ckpt', model, optimizer, step=4)
    restored = torch.nn.Linear(2, 1)
    again = torch.optim.SGD(restored.parameters(), lr=0.5, momentum=0.9)
    assert load_checkpoint(tmp_path / 'ckpt', restored, again)['step'] == 4
    assert again.state[restored.weight]['passes'] == 3
    assert torch.equal(again.state[restored.weight]['momentum_buffer'],
                       optimizer.state[model.weight]['momentum_buffer'])


def test_a_file_without_model_tensors_is_no_checkpoint_to_read_a_model_from(tmp_path) -> None:
    from safetensors.torch import save_file
    path = tmp_path / 'optimizer_only.safetensors'
    save_file({'optimizer.0.exp_avg': torch.zeros(2)}, str(path),
              metadata={'step': '1', 'record': json.dumps({'step': 1})})
    with pytest.raises(CheckpointError, match='holds no model tensors'):
        read_model_state(path)
