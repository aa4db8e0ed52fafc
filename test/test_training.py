"""Training: config, data sources, augmentation, losses, loop, checkpoints, shipped weights."""

import json
import math
import os
import re
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from stereo_depth_ros.backends import learned_backend_names
from stereo_depth_ros.errors import BackendError, DatasetError
from stereo_depth_ros.data.synthetic import EVAL_SEED_OFFSET, make_scene
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.networks.dispnet import DispNet
from stereo_depth_ros.networks.dispnet_qr import DispNetQR, disparity_to_bins
from stereo_depth_ros.training.augment import (Photometric, RandomCrop, TrainSample,
                                               VerticalFlip, Vignetting, build_augmentation,
                                               build_transform, vignette)
from stereo_depth_ros.training.config import (ConfigError, TrainConfig, from_dict, load_config,
                                              read_config_data)
from stereo_depth_ros.training.losses import (CostVolumeLoss, LossSchedule, MultiScaleEPELoss,
                                              QuantizedRegressionLoss, build_loss,
                                              downsample_target)
from stereo_depth_ros.training.sources import (TRAIN_SEED_LIMIT, VKITTI2_BASELINE, FileSource,
                                               SyntheticSource, TrainingData, _StepChunks,
                                               batch_iterator, build_source, vkitti2_dataset)
from stereo_depth_ros.training.trainer import (TimeBudget, Trainer, build_lr_scheduler,
                                               build_model, describe_data, train)
from stereo_depth_ros.weights import load_state, read_metadata, save_weights

from tiny_architectures import TINY

ROOT = Path(__file__).resolve().parents[1]
LEARNED = learned_backend_names()
#: Mean EPE (px) each shipped model must stay below on 4 validation synthetic scenes: the value
#: measured with the backend defaults (near pass included) when the weights were shipped or
#: the defaults last changed, plus ~30 % (a regression guard; the comparison with sgbm on 200
#: test scenes and on the real suite is in models/<backend>.yaml). Measured: dispnetc 1.35,
#: dispnet 2.22, squeezeseg 2.44, dispnet_qr 1.35 (refined by matching, their default
#: refine_radius since 2026-12-06, 56 and 64 px for dispnet and squeezeseg; at 32 px 1.89 and
#: 2.07; alone 1.34, 2.96, 3.96, 1.37), costnet 0.84 (stage 13 with
#: match_passes and its FIRST_PASS_PREFERENCE; 0.80 without), costnet_fast 0.88 (stage 7,
#: likewise).
SHIPPED_EPE_BOUNDS = {'dispnetc': 1.78, 'dispnet': 2.89, 'squeezeseg': 3.17, 'dispnet_qr': 1.78,
                      'costnet': 1.09, 'costnet_fast': 1.14}
#: Bad-2 of each shipped network on the real suite (cones, teddy, motorcycle, aloe; mean over
#: the scenes) when it was shipped or the defaults last changed, plus ~10 %: a regression guard
#: on real images. Measured: dispnetc 0.178, dispnet 0.197, squeezeseg 0.206, dispnet_qr 0.178
#: (0.174, 0.191, 0.201 and 0.174 when measured again on 2026-12-07, one torch thread;
#: refined by matching, their default refine_radius since 2026-12-06; dispnet and squeezeseg
#: at 32 px 0.205 and 0.209; alone 0.287, 0.547, 0.595, 0.290), costnet 0.153 (stage 13 with
#: match_passes and its FIRST_PASS_PREFERENCE; 0.154 without; sgbm 0.193), costnet_fast 0.155
#: (stage 7, likewise; stage 3 had 0.161 without).
REAL_BAD2_BOUNDS = {'dispnetc': 0.197, 'dispnet': 0.217, 'squeezeseg': 0.227, 'dispnet_qr': 0.197,
                    'costnet': 0.17, 'costnet_fast': 0.17}
#: Bad-2 of each shipped network on each real scene, measured on 2026-12-07 (one torch
#: thread, as here): a scene may not rise by more than REAL_SCENE_MARGIN above it. The mean's
#: bound alone let one scene go: aloe, the only scene beyond 64 px and two thirds of the
#: suite's pixels, could rise from 16 to 22 % with the mean still under 0.17.
REAL_SCENE_BAD2 = {
    'costnet': {'cones': 0.1531, 'teddy': 0.1575, 'motorcycle': 0.1379, 'aloe': 0.1649},
    'costnet_fast': {'cones': 0.1542, 'teddy': 0.1627, 'motorcycle': 0.1406, 'aloe': 0.1629},
    'dispnetc': {'cones': 0.1375, 'teddy': 0.1612, 'motorcycle': 0.1637, 'aloe': 0.2334},
    'dispnet': {'cones': 0.1546, 'teddy': 0.2098, 'motorcycle': 0.1973, 'aloe': 0.2030},
    'squeezeseg': {'cones': 0.1612, 'teddy': 0.2219, 'motorcycle': 0.2070, 'aloe': 0.2153},
    'dispnet_qr': {'cones': 0.1389, 'teddy': 0.1600, 'motorcycle': 0.1630, 'aloe': 0.2345}}
REAL_SCENE_MARGIN = 0.015


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(tmp_path: Path, **overrides) -> dict:
    """A config for a tiny DispNet on 64x128 crops of 64x128 synthetic scenes."""
    config = {
        'name': 'tiny', 'backend': 'dispnet', 'seed': 5,
        'data': {
            'sources': [{'kind': 'synthetic', 'scene_kinds': ['layered'], 'height': 64,
                         'width': 128, 'max_disparity': 16, 'scene_reuse': 1}],
            'augmentation': [{'name': 'random_crop', 'height': 64, 'width': 128}]},
        'model': {'architecture': {'width': 0.0625, 'max_disparity': 16},
                  'loss': {'schedule_units': 'steps',
                           'schedule': [{'at': 0, 'weights': [0, 0, 0, 0.5, 1, 1]}]}},
        'optimization': {'steps': 6, 'batch_size': 2, 'lr': 1e-3, 'lr_schedule': 'constant',
                         'warmup_steps': 0, 'precision': 'fp32', 'num_threads': 1},
        'evaluation': {'every': 0, 'num_scenes': 1, 'height': 64, 'width': 128},
        'output': {'out_dir': str(tmp_path / 'run'), 'log_every': 2, 'checkpoint_every': 2,
                   'export': ''},
    }
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize('backend', LEARNED)
def test_shipped_configs_load_and_build(backend):
    config = load_config(ROOT / 'config' / f'train_{backend}.yaml')
    assert config.backend == backend
    model = build_model(config)
    loss = build_loss(model, config.model.loss, config.optimization.steps)
    expected = {DispNetQR: QuantizedRegressionLoss,
                CostNet: CostVolumeLoss}.get(type(model), MultiScaleEPELoss)
    assert type(loss) is expected
    assert config.output.export == f'models/{backend}.safetensors'
    build_augmentation(config.data.augmentation)


@pytest.mark.parametrize('section, key', [(None, 'bogus'), ('optimization', 'learning_rate'),
                                          ('data', 'crop'), ('evaluation', 'every_n')])
def test_config_rejects_unknown_keys(tmp_path, section, key):
    config = tiny_config(tmp_path)
    if section is None:
        config[key] = 1
    else:
        config[section][key] = 1
    with pytest.raises(ConfigError, match=key):
        load_config(write_config(tmp_path / 'c.yaml', config))


def test_config_rejects_unknown_nested_keys_and_bad_types():
    with pytest.raises(ConfigError, match='scene_kind'):
        from_dict(TrainConfig, {'data': {'sources': [{'kind': 'synthetic', 'scene_kind': 'x'}]}})
    with pytest.raises(ConfigError, match='optimization.steps'):
        from_dict(TrainConfig, {'optimization': {'steps': 'many'}})


@pytest.mark.parametrize('section, value, words', [
    ('evaluation', {'kind': 'roadd'}, "evaluation.kind 'roadd' is unknown; known: layered, road"),
    ('data', {'sources': [{'kind': 'synthetic', 'scene_kinds': ['layred']}]},
     "synthetic scene_kinds ['layred'] unknown"),
    ('data', {'sources': [{'kind': 'synthetc'}]}, "data source kind 'synthetc' is unknown"),
])
def test_config_refuses_unknown_kinds_when_loaded(tmp_path, section, value, words):
    path = write_config(tmp_path / 'bad.yaml', tiny_config(tmp_path, **{section: value}))
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(path)


@pytest.mark.parametrize('sources, augmentation, words', [
    # A small second source: the run stopped at the first step that drew one of its scenes.
    ([{'height': 128, 'width': 256}, {'height': 64, 'width': 128, 'weight': 0.01}],
     [{'name': 'random_crop', 'height': 128, 'width': 256}],
     'data.sources[1]: random_crop 128x256 is larger than its 64x128 scenes can be after '
     'random_scale (64x128)'),
    # Shrunk by random_scale first: 64x128 scenes can be 51x102.
    ([{'height': 64, 'width': 128}],
     [{'name': 'random_scale', 'low': 0.8, 'high': 1.2},
      {'name': 'random_crop', 'height': 64, 'width': 128}],
     'data.sources[0]: random_crop 64x128 is larger than its 64x128 scenes can be after '
     'random_scale (51x102)'),
])
def test_a_crop_larger_than_a_source_s_scenes_is_refused_when_loaded(tmp_path, sources,
                                                                     augmentation, words):
    base = tiny_config(tmp_path)['data']['sources'][0]
    config = tiny_config(tmp_path, data={'sources': [{**base, **source} for source in sources],
                                         'augmentation': augmentation})
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(write_config(tmp_path / 'bad.yaml', config))


def test_a_source_always_enlarged_before_the_crop_is_accepted(tmp_path):
    # 48x96 scenes doubled every time (probability 1) are 96x192: a 64x128 crop fits.
    base = tiny_config(tmp_path)['data']['sources'][0]
    source = {**base, 'height': 48, 'width': 96, 'augmentation': [
        {'name': 'random_scale', 'low': 2.0, 'high': 2.0, 'probability': 1.0}]}
    config = load_config(write_config(tmp_path / 'ok.yaml', tiny_config(
        tmp_path, data={'sources': [source]})))
    assert TrainingData(config.data, seed=5).sample(0).disparity.shape == (64, 128)


@pytest.mark.parametrize('section, value, words', [
    # Out of range, these made a run climb its loss (a negative learning rate, a negative
    # clip norm) or failed late, in torch's words.
    ('optimization', {'grad_clip': -1}, 'optimization.grad_clip must be >= 0 (0: off), got -1'),
    ('optimization', {'min_lr_ratio': -1}, 'optimization.min_lr_ratio must be in [0, 1], got -1'),
    ('optimization', {'gamma': 2}, 'optimization.gamma must be in (0, 1], got 2'),
    ('optimization', {'milestones': [0.5, 2]}, 'optimization.milestones must be fractions'),
    ('optimization', {'weight_decay': -1}, 'optimization.weight_decay must be >= 0, got -1'),
    ('optimization', {'betas': [0.9, 1.5]}, 'optimization.betas must be two numbers in [0, 1)'),
    ('optimization', {'num_threads': -1}, 'optimization.num_threads must be >= 0'),
    ('optimization', {'warmup_steps': -5}, 'optimization.warmup_steps must be >= 0, got -5'),
    ('data', {'num_workers': -1}, 'data.num_workers must be >= 0, got -1'),
    # DispNet needs sides of 64 px multiples: every step failed, once the run had begun.
    ('data', {'augmentation': [{'name': 'random_crop', 'height': 64, 'width': 96}]},
     'data.augmentation: random_crop 64x96 is not a multiple of 64 px, which dispnet needs'),
    ('seed', -3, 'seed must be >= 0, got -3'),
])
def test_settings_that_would_train_backwards_or_fail_late_are_refused(tmp_path, section, value,
                                                                      words):
    config = tiny_config(tmp_path)
    config = {**config, section: value} if section == 'seed' else \
        tiny_config(tmp_path, **{section: value})
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(write_config(tmp_path / 'bad.yaml', config))


@pytest.mark.parametrize('section, value, words', [
    # each scene draws its largest disparity from 16 x [0.1, 1]: below 3 px at some step
    ('data', {'sources': [{'kind': 'synthetic', 'height': 64, 'width': 128,
                           'max_disparity': 16, 'range_fraction': [0.1, 1.0]}]},
     'data.sources[0] (max_disparity 16 x range_fraction 0.1): max_disparity must be in'),
    # the validation scenes are first made at the end of a run with evaluation.every 0
    ('evaluation', {'max_disparity': 192},
     'evaluation: max_disparity must be in [3.0, width=128)'),
])
def test_scenes_the_generator_refuses_are_refused_when_loaded(tmp_path, section, value, words):
    path = write_config(tmp_path / 'bad.yaml', tiny_config(tmp_path, **{section: value}))
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(path)


def test_an_adaptation_without_real_crops_is_refused_when_loaded(tmp_path):
    # not 'min() arg is an empty sequence' at the first step, after labelling the pairs
    path = write_config(tmp_path / 'bad.yaml', {**tiny_config(tmp_path),
                                                'adaptation': {'batch_size': 0}})
    with pytest.raises(ConfigError, match=re.escape('adaptation.batch_size must be > 0, got 0')):
        load_config(path)


def test_config_extends_another_and_says_only_what_changes(tmp_path):
    base = tiny_config(tmp_path)
    write_config(tmp_path / 'base.yaml', base)
    write_config(tmp_path / 'stage.yaml', {
        'extends': 'base.yaml', 'name': 'stage2', 'optimization': {'lr': 1.0e-5},
        'data': {'augmentation': []}})
    config = load_config(tmp_path / 'stage.yaml')
    assert (config.name, config.optimization.lr) == ('stage2', 1.0e-5)
    # Mappings merge key by key; lists replace as a whole.
    assert config.optimization.steps == base['optimization']['steps']
    assert config.data.augmentation == [] and len(config.data.sources) == 1
    assert config.backend == base['backend'] and config.seed == base['seed']


def test_config_extends_fails_clearly_on_a_missing_or_circular_parent(tmp_path):
    write_config(tmp_path / 'orphan.yaml', {'extends': 'gone.yaml', 'name': 'x'})
    with pytest.raises(ConfigError, match='gone.yaml does not exist'):
        load_config(tmp_path / 'orphan.yaml')
    write_config(tmp_path / 'a.yaml', {'extends': 'b.yaml'})
    write_config(tmp_path / 'b.yaml', {'extends': 'a.yaml'})
    with pytest.raises(ConfigError, match='extends itself'):
        load_config(tmp_path / 'a.yaml')


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


def test_loss_schedule_moves_weight_from_coarse_to_fine():
    schedule = LossSchedule([(0, [1, 0, 0]), (0.25, [0.5, 1, 0]), (0.5, [0, 0.5, 1])],
                            total_steps=100, units='fraction')
    assert schedule.weights(0) == [1, 0, 0]
    assert schedule.weights(24) == [1, 0, 0]
    assert schedule.weights(25) == [0.5, 1, 0]
    assert schedule.weights(99) == [0, 0.5, 1]
    smooth = LossSchedule([(0, [1, 0]), (10, [0, 1])], total_steps=100, interpolate=True)
    assert smooth.weights(5) == pytest.approx([0.5, 0.5])
    assert smooth.weights(50) == [0, 1]
    with pytest.raises(ConfigError):
        LossSchedule([(0, [1, 0]), (5, [1])], total_steps=10)


def test_downsampled_targets_scale_disparity_and_ignore_unknown():
    gt = torch.full((1, 1, 8, 16), 8.0)
    gt[..., :4, :4] = float('nan')
    target, mask = downsample_target(gt, (4, 8))
    assert torch.allclose(target[mask > 0], torch.tensor(4.0))
    assert mask[0, 0, :2, :2].sum() == 0 and mask.sum() == 32 - 4


def test_multiscale_loss_follows_schedule():
    gt = torch.rand(2, 1, 16, 32) * 10 + 1
    sizes = [(4, 8), (8, 16), (16, 32)]
    exact = [downsample_target(gt, size)[0] for size in sizes]
    predictions = [exact[0] + 3.0, exact[1] + 1.0, exact[2]]  # coarse wrong, finest exact
    schedule = LossSchedule([(0, [1, 0, 0]), (10, [0, 0, 1])], total_steps=20)
    loss = MultiScaleEPELoss(schedule)
    early, terms = loss(predictions, gt, step=0)
    late, _ = loss(predictions, gt, step=10)
    assert float(early) == pytest.approx(3.0, abs=1e-4)
    assert float(late) == pytest.approx(0.0, abs=1e-5)
    assert terms['epe_s1'] == pytest.approx(1.0, abs=1e-4)


def test_unseen_weight_weighs_only_the_hidden_pixels_at_every_scale():
    # 2 px everywhere, 5 px on columns 6-8: columns 0-1 fall outside the right view, 3-5 are
    # occluded by the nearer block (unseen_by_right_camera, test_visibility.py).
    disparity = torch.full((1, 1, 2, 12), 2.0)
    disparity[..., 6:9] = 5.0
    prediction = disparity.clone()
    prediction[..., 3:6] += 4.0  # wrong only where occluded
    coarse = downsample_target(disparity, (1, 6))[0]
    coarse_prediction = coarse.clone()
    coarse_prediction[..., 1] += 2.0  # coarse pixel 1 = columns 2-3: half unseen
    schedule = LossSchedule([(0, [1, 1])], total_steps=10)
    predictions = [coarse_prediction, prediction]
    plain, terms = MultiScaleEPELoss(schedule)(predictions, disparity, step=0)
    weighted, weighted_terms = MultiScaleEPELoss(schedule, unseen_weight=3.0)(
        predictions, disparity, step=0)
    assert float(plain) == pytest.approx(2.0 / 6 + 4.0 * 3 / 12, abs=1e-5)
    # Weight 1 + 2 x the unseen share of each pixel, divided by the pixel count.
    assert float(weighted) == pytest.approx(2.0 * 2 / 6 + 4.0 * 3 * 3 / 12, abs=1e-5)
    assert weighted_terms == terms  # what the log reports stays the plain EPE


@pytest.mark.parametrize('network, loss_type', [
    (CostNet(**TINY['costnet']), CostVolumeLoss), (DispNet(**TINY['dispnet']), MultiScaleEPELoss)])
def test_each_multiscale_loss_gets_the_unseen_weight_of_the_config(network, loss_type):
    loss_config = load_config(ROOT / 'config/unseen16_costnet.yaml').model.loss
    assert loss_config.unseen_weight == 2.0
    loss = build_loss(network, loss_config, 100)
    assert isinstance(loss, loss_type) and loss.unseen_weight == 2.0


def test_unseen_weight_is_refused_below_1_and_for_the_qr_loss(tmp_path):
    raw = read_config_data(ROOT / 'config/train_costnet.yaml')
    raw['model']['loss']['unseen_weight'] = 0.5
    (tmp_path / 'low.yaml').write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match='unseen_weight must be >= 1, got 0.5'):
        load_config(tmp_path / 'low.yaml')
    qr = load_config(ROOT / 'config/range_dispnet_qr.yaml').model.loss
    qr.unseen_weight = 2.0
    with pytest.raises(ConfigError, match='unseen_weight weighs a multi-scale EPE'):
        build_loss(DispNetQR(**TINY['dispnet_qr']), qr, 100)


def _true_bin_prediction(batch: int, num_bins: int,
                         bin_width: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random ground truth, logits sure of its bin, and its residual in every bin's slot."""
    gt = torch.rand(batch, 1, 16, 32) * 60 + 1
    bins, residual = disparity_to_bins(gt[:, 0], num_bins, bin_width)
    logits = torch.nn.functional.one_hot(bins, num_bins).permute(0, 3, 1, 2).float() * 50
    return gt, logits, residual.unsqueeze(1).expand(-1, num_bins, -1, -1).clone()


def test_qr_loss_is_zero_for_perfect_predictions_and_not_otherwise():
    num_bins, bin_width = 8, 8.0
    gt, logits, residuals = _true_bin_prediction(2, num_bins, bin_width)
    trunk = [downsample_target(gt, (4, 8))[0]]
    from stereo_depth_ros.networks.dispnet_qr import QROutput, decode_bins
    perfect = QROutput(logits, residuals, decode_bins(logits, residuals, bin_width), trunk)
    loss = QuantizedRegressionLoss(num_bins, bin_width, ce_weight=1000, residual_weight=1,
                                   trunk_weight=1.0,
                                   trunk_loss=MultiScaleEPELoss(LossSchedule([(0, [1])], 10)))
    value, terms = loss(perfect, gt, step=0)
    assert float(value) < 1e-3 and terms['epe'] < 1e-4
    shifted = QROutput(logits.roll(1, dims=1), residuals, perfect.disparity, trunk)
    assert float(loss(shifted, gt, step=0)[0]) > 1000


def test_qr_loss_neighbour_residuals_are_supervised_only_when_asked():
    num_bins, bin_width = 8, 8.0
    gt, logits, only_true = _true_bin_prediction(1, num_bins, bin_width)
    from stereo_depth_ros.networks.dispnet_qr import QROutput, bin_centres
    every_bin = gt - bin_centres(num_bins, bin_width).view(1, -1, 1, 1)
    plain = QuantizedRegressionLoss(num_bins, bin_width)
    neighbours = QuantizedRegressionLoss(num_bins, bin_width, residual_neighbours=1)
    cases = ((only_true, True, False), (every_bin, True, True))
    for residuals, plain_zero, neighbours_zero in cases:
        output = QROutput(logits, residuals, gt, [])
        assert (plain(output, gt, 0)[1]['residual'] < 1e-6) == plain_zero
        assert (neighbours(output, gt, 0)[1]['residual'] < 1e-6) == neighbours_zero
    with pytest.raises(ConfigError, match='residual_neighbours'):
        QuantizedRegressionLoss(num_bins, bin_width, residual_neighbours=-1)


# ---------------------------------------------------------------------------------------------
# Augmentation and data sources
# ---------------------------------------------------------------------------------------------


def _matched_share(sample: TrainSample) -> float:
    """Share of pixels with |left(x) - right(x - d)| < 3 grey levels (match inside the image)."""
    rows, cols = sample.disparity.shape
    xs, ys = np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32))
    map_x = xs - sample.disparity
    warped = cv2.remap(sample.right.astype(np.float32), map_x, ys, cv2.INTER_LINEAR)
    error = np.abs(warped - sample.left).mean(axis=2)[map_x > 1]
    return float((error < 3).mean())


def _mirrored(sample: TrainSample) -> TrainSample:
    return TrainSample(sample.left[:, ::-1], sample.right[:, ::-1], sample.disparity[:, ::-1])


def test_augmentation_keeps_left_right_geometry_and_never_flips_horizontally():
    scene = make_scene(13, height=96, width=192, kind='layered', max_disparity=24,
                       photometric=False)
    sample = TrainSample(scene.left.astype(np.float32), scene.right.astype(np.float32),
                         scene.disparity)
    assert _matched_share(sample) > 0.9
    assert _matched_share(_mirrored(sample)) < 0.5  # what a horizontal flip would do
    augment = build_augmentation([
        {'name': 'random_crop', 'height': 64, 'width': 128},
        {'name': 'photometric', 'brightness': 0.0, 'contrast': 0.0, 'gamma': 0.0,
         'color': 0.0, 'noise': 0.0},
        {'name': 'vertical_flip', 'probability': 0.5}])
    for seed in range(6):
        out = augment(sample, np.random.default_rng(seed))
        assert out.left.shape == (64, 128, 3) and out.disparity.shape == (64, 128)
        assert _matched_share(out) > 0.85
        assert _matched_share(_mirrored(out)) < 0.5
    for name in ('horizontal_flip', 'hflip'):
        with pytest.raises(ConfigError, match='stereo'):
            build_transform({'name': name})


def test_photometric_changes_views_differently_and_flip_moves_all_together():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (16, 32, 3)).astype(np.float32)
    sample = TrainSample(image, image.copy(), np.arange(16 * 32, dtype=np.float32).reshape(16, 32))
    out = Photometric(brightness=0.2, contrast=0.2, gamma=0.2, noise=0.0)(sample, rng)
    assert not np.allclose(out.left, out.right)
    np.testing.assert_array_equal(out.disparity, sample.disparity)
    flipped = VerticalFlip(1.0)(sample, rng)
    np.testing.assert_array_equal(flipped.disparity, sample.disparity[::-1])
    np.testing.assert_array_equal(flipped.left, sample.left[::-1])
    with pytest.raises(ConfigError, match='larger'):
        RandomCrop(32, 64)(sample, rng)


def test_vignetting_darkens_each_view_towards_its_corners_and_keeps_the_disparity():
    flat = np.full((21, 41, 3), 200.0, np.float32)
    darkened = vignette(flat, 0.5)
    assert darkened[10, 20, 0] == pytest.approx(200.0)  # the centre keeps its light
    for corner in ((0, 0), (0, 40), (20, 0), (20, 40)):
        assert darkened[corner][0] == pytest.approx(100.0)  # 1 - 0.5 of it in the corners
    # r over the half diagonal: the middle of the left edge is 20 of sqrt(20**2 + 10**2) out
    assert darkened[10, 0, 0] == pytest.approx(200.0 * (1 - 0.5 * 400 / 500))
    row = darkened[10, :, 0]
    assert np.all(np.diff(row[:21]) > 0) and np.all(np.diff(row[20:]) < 0)
    assert vignette(flat[..., 0], 0.5).shape == (21, 41)
    np.testing.assert_array_equal(vignette(flat, 0.0), flat)
    sample = TrainSample(flat, flat.copy(), np.arange(21 * 41, dtype=np.float32).reshape(21, 41))
    out = Vignetting(strength=0.6, probability=1.0)(sample, np.random.default_rng(3))
    np.testing.assert_array_equal(out.disparity, sample.disparity)
    assert out.left[0, 0, 0] < 199 and out.right[0, 0, 0] < 199
    same_lens = Vignetting(strength=0.6, probability=1.0, difference=0.0)
    out = same_lens(sample, np.random.default_rng(3))
    assert not np.allclose(out.left, out.right)  # each view around its own centre
    assert Vignetting(probability=0.0)(sample, np.random.default_rng(3)) is sample
    for bad in ({'strength': 1.0}, {'strength': -0.1}, {'probability': 2.0}):
        with pytest.raises(ConfigError, match='vignetting'):
            build_transform({'name': 'vignetting', **bad})


def test_synthetic_source_uses_training_seeds_deterministically(tmp_path):
    config = from_dict(TrainConfig, tiny_config(tmp_path))
    source = SyntheticSource(config.data.sources[0], seed=123, group=2)
    seeds = [source.scene_seed(i) for i in range(0, 40)]
    assert all(0 <= s < min(TRAIN_SEED_LIMIT, EVAL_SEED_OFFSET) for s in seeds)
    assert seeds[0] != seeds[1]  # a batch of 2 uses two scenes
    data = TrainingData(config.data, seed=5, batch_size=2)
    first, again = data.batch(3, 2), TrainingData(config.data, seed=5, batch_size=2).batch(3, 2)
    for key in ('left', 'right', 'disparity'):
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first['left'], data.batch(4, 2)['left'])
    assert first['left'].shape == (2, 3, 64, 128) and first['disparity'].shape == (2, 1, 64, 128)


def test_ground_truth_the_shared_scaling_carries_beyond_the_range_is_unknown(tmp_path):
    # The source's scenes reach its 16 px; the shared transforms enlarge every sample 1.25x
    # before the crop, so its largest disparities would reach 20 px.
    config = from_dict(TrainConfig, tiny_config(tmp_path, data={'augmentation': [
        {'name': 'random_scale', 'low': 1.25, 'high': 1.25, 'probability': 1.0},
        {'name': 'random_crop', 'height': 64, 'width': 128}]}))
    data = TrainingData(config.data, seed=5)
    largest = [np.nanmax(data.sample(index).disparity) for index in range(6)]
    assert max(largest) <= 16.0
    plain = TrainingData(from_dict(TrainConfig, tiny_config(tmp_path)).data, seed=5)
    assert max(np.nanmax(plain.sample(index).disparity) for index in range(6)) > 16.0 / 1.25


def test_a_sources_own_augmentation_changes_only_its_samples(tmp_path):
    # Two sources; the second one's samples are doubled in size (random_scale 2x, always)
    # before the shared crop. The first one's samples stay as they were, bit for bit.
    source = tiny_config(tmp_path)['data']['sources'][0]
    plain = from_dict(TrainConfig, tiny_config(tmp_path, data={'sources': [source, source]}))
    scaled_source = {**source, 'augmentation': [
        {'name': 'random_scale', 'low': 2.0, 'high': 2.0, 'probability': 1.0}]}
    scaled = from_dict(TrainConfig, tiny_config(tmp_path,
                                                data={'sources': [source, scaled_source]}))
    before, after = TrainingData(plain.data, seed=5), TrainingData(scaled.data, seed=5)
    picked = []
    for index in range(12):
        rng = np.random.default_rng((5, index))
        which = int(rng.choice(2, p=before.probabilities))
        picked.append(which)
        one, other = before.sample(index), after.sample(index)
        assert other.left.shape == one.left.shape == (64, 128, 3)  # cropped after scaling
        if which == 0:
            # The pipeline of before the change, by hand: source, then the shared transforms.
            by_hand = before.augmentation(before.sources[0].sample(index, rng), rng)
            for unchanged in (one, by_hand):
                np.testing.assert_array_equal(other.disparity, unchanged.disparity)
                np.testing.assert_array_equal(other.left, unchanged.left)
        else:
            # Doubled: beyond the source's 16 px, where it becomes unknown.
            assert np.isnan(other.disparity).mean() > np.isnan(one.disparity).mean()
            assert np.nanmax(other.disparity) <= 16.0 < 2 * np.nanmax(one.disparity)
    assert 0 < sum(picked) < len(picked)  # both sources were drawn
    # The run's recorded data description (log, model card) names the source's own transform.
    assert describe_data(scaled).count('with its own augmentation: random_scale(low=2.0') == 1
    unknown = {**source, 'augmentation': [{'name': 'zoom'}]}
    with pytest.raises(ConfigError, match="unknown augmentation 'zoom'"):
        TrainingData(from_dict(TrainConfig, tiny_config(
            tmp_path, data={'sources': [unknown]})).data, seed=5)


def test_workers_build_the_same_batches_and_each_scene_once(tmp_path, monkeypatch):
    config = from_dict(TrainConfig, tiny_config(tmp_path))
    config.data.sources[0].scene_reuse = 3
    data = TrainingData(config.data, seed=5, batch_size=2)
    assert data.reuse_period == 3
    in_order = list(batch_iterator(data, 2, 9, 2, num_workers=0))
    with_workers = list(batch_iterator(data, 2, 9, 2, num_workers=2))
    assert len(in_order) == len(with_workers) == 7
    for one, other in zip(in_order, with_workers):
        for key in ('left', 'right', 'disparity'):
            assert torch.equal(one[key], other[key])
    # The steps that share scenes go to one worker: chunks start at multiples of the reuse.
    chunks = _StepChunks(data, 2, 9, 2, data.reuse_period)
    assert [len(chunks[i]) for i in range(len(chunks))] == [1, 3, 3]
    built = []
    monkeypatch.setattr('stereo_depth_ros.data.synthetic.make_scene',
                        lambda seed, **kw: built.append(seed) or make_scene(seed, **kw))
    fresh = TrainingData(config.data, seed=5, batch_size=2)
    _StepChunks(fresh, 3, 6, 2, fresh.reuse_period)[0]
    assert len(built) == 2  # 3 steps of 2 samples from the same 2 scenes


def test_samples_of_different_sizes_are_a_config_error_not_a_stack_error(tmp_path):
    config = from_dict(TrainConfig, tiny_config(tmp_path, data={'augmentation': [
        {'name': 'random_crop', 'height': 64, 'width': 128},
        {'name': 'random_scale', 'low': 0.8, 'high': 1.2, 'probability': 1.0}]}))
    data = TrainingData(config.data, seed=5, batch_size=2)
    with pytest.raises(ConfigError, match=r'the samples of step 0 have different sizes .* '
                                          'end data.augmentation with a random_crop'):
        data.batch(0, 2)


def test_a_data_workers_error_is_its_own_one_line(tmp_path):
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'broken.jpg').write_text('not a photograph')
    config = from_dict(TrainConfig, tiny_config(tmp_path, data={'sources': [
        {'kind': 'synthetic', 'scene_kinds': ['photo'], 'photos': str(tmp_path / 'photos'),
         'height': 64, 'width': 128, 'max_disparity': 16}]}))
    data = TrainingData(config.data, seed=5, batch_size=2)
    with pytest.raises(DatasetError) as raised:
        next(batch_iterator(data, 0, 2, 2, num_workers=1))
    # the message, not the worker's traceback around it
    assert str(raised.value) == f'could not read a photograph under {tmp_path / "photos"}'


def _write_rgb(path: Path, seed: int, size=(20, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)


def test_file_sources_on_tiny_fake_folders(tmp_path):
    # SceneFlow (Driving / FlyingThings3D layout): PNG frames + PFM disparity.
    flow = tmp_path / 'sceneflow'
    for side in ('left', 'right'):
        _write_rgb(flow / 'frames_cleanpass' / 'A' / '0000' / side / '0006.png', 1)
    disparity = np.full((20, 40), 7.5, np.float32)
    disparity[0, 0] = 300.0
    (flow / 'disparity' / 'A' / '0000' / 'left').mkdir(parents=True)
    cv2.imwrite(str(flow / 'disparity' / 'A' / '0000' / 'left' / '0006.pfm'), disparity)
    # KITTI 2015: uint16 disparity * 256, 0 = unknown.
    kitti = tmp_path / 'kitti'
    for folder in ('image_2', 'image_3'):
        _write_rgb(kitti / folder / '000000_10.png', 2)
    (kitti / 'disp_occ_0').mkdir()
    raw = np.zeros((20, 40), np.uint16)
    raw[5:, :] = 12 * 256
    cv2.imwrite(str(kitti / 'disp_occ_0' / '000000_10.png'), raw)
    # Virtual KITTI 2: depth PNG in cm, intrinsic.txt with fx per frame.
    vkitti = tmp_path / 'vkitti2' / 'Scene01' / 'clone'
    for camera in ('Camera_0', 'Camera_1'):
        _write_rgb(vkitti / 'frames' / 'rgb' / camera / 'rgb_00000.jpg', 3)
    depth = np.full((20, 40), 1000, np.uint16)  # 10 m
    (vkitti / 'frames' / 'depth' / 'Camera_0').mkdir(parents=True)
    cv2.imwrite(str(vkitti / 'frames' / 'depth' / 'Camera_0' / 'depth_00000.png'), depth)
    (vkitti / 'intrinsic.txt').write_text(
        'frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n0 0 700.0 700.0 20 10\n'
        '0 1 700.0 700.0 20 10\n')
    config = from_dict(TrainConfig, {'data': {'sources': [
        {'kind': 'sceneflow', 'root': str(flow), 'max_disparity': 64},
        {'kind': 'kitti2015', 'root': str(kitti)},
        {'kind': 'vkitti2', 'root': str(tmp_path / 'vkitti2')}]}})
    rng = np.random.default_rng(0)
    flow_sample = build_source(config.data.sources[0], 0).sample(0, rng)
    assert flow_sample.left.shape == (20, 40, 3) and flow_sample.disparity[1, 1] == 7.5
    assert np.isnan(flow_sample.disparity[0, 0])  # beyond max_disparity: ignored
    kitti_sample = build_source(config.data.sources[1], 0).sample(0, rng)
    assert np.isnan(kitti_sample.disparity[0]).all() and (kitti_sample.disparity[5:] == 12).all()
    vk_sample = build_source(config.data.sources[2], 0).sample(0, rng)
    np.testing.assert_allclose(vk_sample.disparity, 700.0 * VKITTI2_BASELINE / 10.0, rtol=1e-5)
    assert len(vkitti2_dataset(tmp_path / 'vkitti2', scenes=['Scene01'])) == 1
    source = FileSource([object()] * 5, seed=1)
    assert sorted(source.item_index(i) for i in range(5)) == list(range(5))
    with pytest.raises(ConfigError, match='root'):
        build_source(from_dict(TrainConfig, {'data': {'sources': [{'kind': 'kitti2015'}]}})
                     .data.sources[0], 0)


# ---------------------------------------------------------------------------------------------
# Training loop, checkpoints, export
# ---------------------------------------------------------------------------------------------


def closed_form_lr(step, opt, total_steps):
    """The schedule as a formula (the trainer's until it used torch's schedulers)."""
    if opt.warmup_steps and step < opt.warmup_steps:
        return opt.lr * (step + 1) / opt.warmup_steps
    if opt.lr_schedule == 'constant':
        return opt.lr
    if opt.lr_schedule == 'step':
        return opt.lr * opt.gamma ** sum(1 for m in opt.milestones if step >= m * total_steps)
    progress = (step - opt.warmup_steps) / max(1, total_steps - opt.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))
    return opt.lr * (opt.min_lr_ratio + (1 - opt.min_lr_ratio) * cosine)


def scheduled_lrs(opt, total_steps):
    """The learning rate of each step, as the trainer's optimizer sees it."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=opt.lr)
    scheduler = build_lr_scheduler(optimizer, opt, total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize('optimization, total', [
    ({'lr': 1.0, 'warmup_steps': 10, 'min_lr_ratio': 0.1}, 110),
    ({'lr': 3e-4, 'warmup_steps': 0, 'min_lr_ratio': 0.02}, 50),
    ({'lr': 3e-4, 'warmup_steps': 1, 'min_lr_ratio': 0.02}, 50),
    ({'lr': 2e-3, 'warmup_steps': 200, 'min_lr_ratio': 0.02}, 1500),
    ({'lr': 1e-3, 'warmup_steps': 5, 'lr_schedule': 'step', 'milestones': [0.5, 0.8],
      'gamma': 0.3}, 40),
    ({'lr': 1e-3, 'warmup_steps': 10, 'lr_schedule': 'step', 'milestones': [0.1, 0.6]}, 40),
    ({'lr': 1e-3, 'warmup_steps': 0, 'lr_schedule': 'step', 'milestones': [0.25]}, 40),
    ({'lr': 1e-3, 'warmup_steps': 4, 'lr_schedule': 'constant'}, 20),
])
def test_lr_schedule_matches_the_formula(optimization, total):
    opt = from_dict(TrainConfig, {'optimization': optimization}).optimization
    expected = [closed_form_lr(step, opt, total) for step in range(total)]
    assert scheduled_lrs(opt, total) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_learning_rate_warmup_and_cosine():
    opt = from_dict(TrainConfig, {'optimization': {'lr': 1.0, 'warmup_steps': 10,
                                                   'min_lr_ratio': 0.1}}).optimization
    lrs = scheduled_lrs(opt, 110)
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3) and 0.1 < lrs[60] < 1.0


@pytest.mark.parametrize('steps', [0, -3])
def test_zero_or_negative_steps_are_refused_not_read_as_the_configs(tmp_path, steps):
    config = from_dict(TrainConfig, tiny_config(tmp_path))
    with pytest.raises(ConfigError, match=f'steps must be > 0, got {steps}'):
        Trainer(config, device='cpu', steps=steps, out_dir=tmp_path / 'run', progress=False)
    assert Trainer(config, device='cpu', out_dir=tmp_path / 'run',
                   progress=False).total_steps == 6  # None: the config's


def test_train_refuses_weights_of_another_backend_and_a_file_for_its_folder(
        tmp_path, capsys):
    from stereo_depth_ros.cli import main
    config = 'config/train_dispnet.yaml'
    assert main(['train', '--config', config, '--weights', 'models/costnet.safetensors',
                 '--out-dir', str(tmp_path / 'run'), '--no-progress']) == 2
    error = capsys.readouterr().err
    assert "holds weights of backend 'costnet', but config/train_dispnet.yaml starts from " \
        "'dispnet' weights" in error and '--backend' not in error  # train has no --backend
    # A config that starts from another backend's weights takes those (dispnet_qr's head
    # on dispnetc's trunk): no refusal before training (here: a file where the folder goes).
    (tmp_path / 'qr').write_text('not a folder')
    assert main(['train', '--config', 'config/train_dispnet_qr.yaml', '--weights',
                 'models/dispnetc.safetensors', '--out-dir', str(tmp_path / 'qr'),
                 '--no-progress']) == 2
    assert 'is an existing file, not a folder' in capsys.readouterr().err
    (tmp_path / 'afile').write_text('mine')
    assert main(['train', '--config', config, '--out-dir', str(tmp_path / 'afile'),
                 '--no-progress']) == 2
    assert '--out-dir ' + str(tmp_path / 'afile') + ' is an existing file, not a folder' in \
        capsys.readouterr().err
    assert not (tmp_path / 'run').exists() and (tmp_path / 'afile').read_text() == 'mine'


def test_resume_continues_the_lr_schedule(tmp_path):
    overrides = tiny_config(tmp_path, optimization={'lr_schedule': 'cosine', 'warmup_steps': 2,
                                                    'min_lr_ratio': 0.1})
    config = from_dict(TrainConfig, overrides)
    train(config, device='cpu', steps=4, out_dir=tmp_path / 'run', progress=False)
    trainer = Trainer(config, device='cpu', steps=7, out_dir=tmp_path / 'run', progress=False)
    trainer.resume()  # the checkpoint of a 4-step run, continued to 7 steps
    expected = [closed_form_lr(step, config.optimization, 7) for step in range(7)]
    lrs = []
    for _ in range(3):
        lrs.append(trainer.optimizer.param_groups[0]['lr'])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert lrs == pytest.approx(expected[4:], rel=1e-6)


def test_a_few_steps_lower_the_loss(tmp_path):
    config = from_dict(TrainConfig, tiny_config(tmp_path, optimization={'lr': 2e-3}))
    trainer = Trainer(config, device='cpu', steps=40, progress=False)
    batch = trainer.data.batch(0, 4)  # one fixed batch: the loss must go down on it
    losses = []
    for _ in range(40):
        loss, _ = trainer._train_step(batch)
        trainer.step += 1
        losses.append(loss)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def simulate_budget(monkeypatch, seconds: float, step_times: list[float],
                    limit: int = 1000) -> tuple[TimeBudget, list[tuple[int, int]]]:
    """Run a TimeBudget on a simulated clock; return it and its (step, planned end) pairs.

    The clock is simulated only inside this function: the caller's later runs see real time.
    """
    clock = [0.0]
    plans = []
    with monkeypatch.context() as patch:
        patch.setattr('stereo_depth_ros.training.trainer.time.perf_counter', lambda: clock[0])
        budget = TimeBudget(seconds)
        budget.start()
        for step, seconds_per_step in enumerate(step_times, start=1):
            clock[0] += seconds_per_step
            planned = budget.plan(step, limit)
            if planned is not None:
                plans.append((step, planned))
    return budget, plans


def test_time_budget_plans_the_run_to_fit_and_anneals_the_lr(tmp_path, monkeypatch, capsys):
    # 20 quick steps from batches the workers built ahead, then 1 s per step
    budget, plans = simulate_budget(monkeypatch, 100.0, [0.1] * 20 + [1.0] * 80)
    # measured from 5 s on, at 1 s/step; the run ends where the 100 s are spent, near step 118
    assert len(plans) == len(TimeBudget.PLAN_AT) and budget.rate == pytest.approx(1.0)
    assert all(110 <= end <= 120 for _, end in plans)
    assert TimeBudget(100.0).plan(50, 60) is None  # not measured yet: no plan
    # the workers' head start lasts 15 s, past the first plan: later plans correct it
    budget, plans = simulate_budget(monkeypatch, 100.0, [0.1] * 150 + [1.0] * 90)
    true_end = 150 + 85
    assert plans[0][1] > 2 * true_end
    assert abs(plans[-1][1] - true_end) <= 5
    assert simulate_budget(monkeypatch, 100.0, [1.0] * 100, limit=40)[1][0][1] == 40

    overrides = tiny_config(tmp_path, optimization={'lr_schedule': 'cosine', 'warmup_steps': 2,
                                                    'min_lr_ratio': 0.1, 'steps': 1000})
    config = from_dict(TrainConfig, overrides)
    # a later end within REPLAN_TOLERANCE leaves the plan as it is; an earlier one replaces it
    plans = {4: 40, 8: 41, 12: 20}
    monkeypatch.setattr(TimeBudget, 'plan', lambda self, step, limit: plans.get(step))
    capsys.readouterr()
    result = train(config, device='cpu', out_dir=tmp_path / 'budget', progress=False,
                   minutes=10.0)  # real time here: far more than the run takes
    assert result.step == 20
    log = capsys.readouterr().out
    assert 'the run ends at step 40 instead of 1000' in log
    assert 'the run ends at step 20 instead of 40' in log and 'step 41' not in log
    lrs = [record['lr'] for record in result.history['train']]
    # each logged lr is the mean over its window of 2 steps: here steps 18 and 19 of 20
    expected = [closed_form_lr(step, config.optimization, 20) for step in (18, 19)]
    assert lrs[-1] == pytest.approx(np.mean(expected), rel=1e-6)
    training = json.loads(read_metadata(result.weights).extra['training'])
    assert training['time_budget_min'] == 10.0 and training['steps'] == 20
    with pytest.raises(ConfigError, match='minutes'):
        Trainer(config, device='cpu', minutes=0)


def test_the_progress_bar_follows_the_time_budgets_plan(tmp_path, monkeypatch):
    from tqdm import tqdm
    from stereo_depth_ros.training import trainer as trainer_module
    totals = []

    class RecordingBar(tqdm):
        def update(self, n=1):
            totals.append(self.total)
            return super().update(n)

    monkeypatch.setattr(trainer_module, 'tqdm', RecordingBar)
    monkeypatch.setattr(TimeBudget, 'plan', lambda self, step, limit: {4: 10}.get(step))
    config = from_dict(TrainConfig, tiny_config(tmp_path, optimization={'steps': 1000}))
    train(config, device='cpu', out_dir=tmp_path / 'run', minutes=10.0)
    # planned to end at step 10 after step 4: not 1000 steps (and their ETA) any more
    assert totals == [1000] * 4 + [10] * 6


def test_resume_continues_from_the_saved_step(tmp_path):
    straight = train(from_dict(TrainConfig, tiny_config(tmp_path)), device='cpu', steps=6,
                     out_dir=tmp_path / 'straight', progress=False)
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    from stereo_depth_ros.training.train import main
    assert main(['--config', str(config_path), '--steps', '4', '--out-dir',
                 str(tmp_path / 'resumed'), '--device', 'cpu', '--no-progress']) == 0
    record = json.loads((tmp_path / 'resumed' / 'checkpoint.json').read_text())
    assert record['step'] == 4
    assert main(['--config', str(config_path), '--steps', '6', '--out-dir',
                 str(tmp_path / 'resumed'), '--no-progress']) == 2  # needs --resume
    resumed = train(load_config(config_path), device='cpu', steps=6, resume=True,
                    out_dir=tmp_path / 'resumed', progress=False)
    assert resumed.step == 6
    assert [r['step'] for r in resumed.history['train']] == [2, 4, 6]
    # Same data stream and restored optimizer state: identical to the uninterrupted run.
    from safetensors.torch import load_file
    a = load_file(straight.weights)
    b = load_file(resumed.weights)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert (tmp_path / 'resumed' / 'curves.png').stat().st_size > 1000
    assert read_metadata(resumed.weights).backend == 'dispnet'


def test_a_resumed_run_keeps_its_length_and_refuses_to_go_back(tmp_path, capsys):
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    from stereo_depth_ros.training.train import main
    out = tmp_path / 'short'
    assert main(['--config', str(config_path), '--steps', '2', '--out-dir', str(out),
                 '--device', 'cpu', '--no-progress']) == 0
    # "continue with --resume": the 2-step run, not the config's 6 steps.
    assert main(['--config', str(config_path), '--resume', '--out-dir', str(out),
                 '--device', 'cpu', '--no-progress']) == 0
    assert json.loads((out / 'checkpoint.json').read_text())['step'] == 2
    assert main(['--config', str(config_path), '--resume', '--steps', '1', '--out-dir',
                 str(out), '--device', 'cpu', '--no-progress']) == 2
    assert 'is at step 2, beyond the 1 steps asked for' in capsys.readouterr().err
    # A mistyped folder with --resume starts afresh, and says so.
    assert main(['--config', str(config_path), '--resume', '--steps', '1', '--out-dir',
                 str(tmp_path / 'typo'), '--device', 'cpu', '--no-progress']) == 0
    assert 'holds no checkpoint: starting at step 0' in capsys.readouterr().out


def test_a_run_the_time_budget_stopped_resumes_to_where_it_stopped(tmp_path, monkeypatch):
    from stereo_depth_ros.training.trainer import Trainer
    stops = iter([False, True])
    monkeypatch.setattr(Trainer, '_follow_budget', lambda self: next(stops, True))
    config = tiny_config(tmp_path)
    train(from_dict(TrainConfig, config), device='cpu', minutes=5, progress=False)
    record = json.loads((tmp_path / 'run' / 'checkpoint.json').read_text())
    assert record['step'] == 2 and record['extra']['planned_steps'] == 2


def test_the_module_entry_point_ends_an_interrupted_run_with_one_line(monkeypatch, capsys):
    from stereo_depth_ros.training import train as train_module

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, 'run', interrupted)
    assert train_module.main(['--config', 'config/train_dispnet.yaml']) == 130
    assert capsys.readouterr().err == 'train: interrupted\n'


def test_a_diverging_run_ends_with_one_line_in_the_log_and_on_stderr(tmp_path, capsys):
    config = tiny_config(tmp_path, optimization={'lr': 1e12, 'grad_clip': 0.0,
                                                 'lr_schedule': 'constant'})
    config_path = write_config(tmp_path / 'diverge.yaml', config)
    from stereo_depth_ros.cli import main as cli_main
    assert cli_main(['train', '--config', str(config_path), '--device', 'cpu', '--no-progress',
                     '--no-export', '--steps', '6']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'training loss became nan at step' in error[0], error
    assert 'lower optimization.lr' in (tmp_path / 'run' / 'train.log').read_text()


def test_a_resumed_run_keeps_the_seed_it_started_with(tmp_path, capsys):
    # A run started with --seed 7 and resumed as the tool says (no --seed) goes on with its
    # own data, not the config's seed 5: the same weights as the run done in one go.
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    from stereo_depth_ros.training.train import main
    common = ['--config', str(config_path), '--device', 'cpu', '--no-progress', '--no-export']
    assert main([*common, '--seed', '7', '--steps', '4', '--out-dir',
                 str(tmp_path / 'straight')]) == 0
    assert main([*common, '--seed', '7', '--steps', '2', '--out-dir',
                 str(tmp_path / 'split')]) == 0
    assert main([*common, '--resume', '--steps', '4', '--out-dir',
                 str(tmp_path / 'split')]) == 0
    from safetensors.torch import load_file
    a = load_file(tmp_path / 'straight' / 'dispnet.safetensors')
    b = load_file(tmp_path / 'split' / 'dispnet.safetensors')
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    record = json.loads((tmp_path / 'split' / 'checkpoint.json').read_text())
    assert record['extra']['config']['seed'] == 7
    # The log says where the second part took over (it read as two unrelated runs).
    assert 'resumed ' in (tmp_path / 'split' / 'train.log').read_text()
    # The weights name the command that started the run, the resumption after it, and the
    # folder the run wrote (not the config's).
    training = read_metadata(tmp_path / 'split' / 'dispnet.safetensors').training()
    assert training['invocation'].startswith('python -m stereo_depth_ros.training.train ')
    assert '--seed 7' in training['invocation']
    assert len(training['resumed_with']) == 1 and '--resume' in training['resumed_with'][0]
    assert training['config']['output']['out_dir'] == str(tmp_path / 'split')
    capsys.readouterr()
    assert main([*common, '--resume', '--seed', '8', '--steps', '6', '--out-dir',
                 str(tmp_path / 'split')]) == 2
    error = capsys.readouterr().err
    assert error.startswith('train: error: --seed 8: the run in ') and \
        'started with seed 7' in error


def test_a_resumed_run_records_the_weights_it_started_from(tmp_path):
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    from stereo_depth_ros.training.train import main
    common = ['--config', str(config_path), '--device', 'cpu', '--no-progress']
    start = tmp_path / 'start' / 'dispnet.safetensors'
    assert main([*common, '--steps', '1', '--no-export', '--out-dir',
                 str(tmp_path / 'start')]) == 0
    assert main([*common, '--weights', str(start), '--steps', '2', '--no-export',
                 '--out-dir', str(tmp_path / 'run')]) == 0
    assert main([*common, '--resume', '--steps', '3', '--no-export', '--out-dir',
                 str(tmp_path / 'run')]) == 0
    training = read_metadata(tmp_path / 'run' / 'dispnet.safetensors').training()
    assert training['config']['model']['init_weights'] == str(start)


def test_a_budget_run_stopped_before_its_plan_resumes_with_what_is_left_of_it(tmp_path):
    # Interrupted before its first plan, a --minutes run had the config's whole length as
    # its plan: resumed, it went on for that (hours for minutes asked). Its budget comes back.
    # Spent by the budget's own clock, which counts validation and checkpoints too (the
    # steps' wall time does not).
    config = tiny_config(tmp_path, output={'checkpoint_every': 1})
    trainer = Trainer(from_dict(TrainConfig, config), device='cpu', steps=None,
                      progress=False, minutes=2)
    assert trainer.budget is not None
    trainer.budget.elapsed = lambda: 90.0
    trainer.wall_time = 60.0
    trainer.step = 1
    trainer.save()
    resumed = Trainer(from_dict(TrainConfig, config), device='cpu', progress=False)
    resumed.resume()
    assert resumed.budget is not None and resumed.budget.seconds == pytest.approx(30.0)
    assert resumed.time_budget_s == pytest.approx(120.0) and resumed.total_steps == 6
    # Spent: the run ends where it stopped, not at the config's length.
    trainer.budget.elapsed = lambda: 150.0
    trainer.save()
    again = Trainer(from_dict(TrainConfig, config), device='cpu', progress=False)
    again.resume()
    assert again.budget is None and again.total_steps == 1


def test_a_ctrl_c_inside_a_step_saves_it_whole_and_resumes_exactly(tmp_path, monkeypatch):
    # Ctrl-C arriving once a step has updated the weights (and BatchNorm's statistics) but
    # before it was counted: the checkpoint must hold whole steps only.
    config = tiny_config(tmp_path, output={'checkpoint_every': 100})
    straight = train(from_dict(TrainConfig, config), device='cpu', steps=5,
                     out_dir=tmp_path / 'straight', progress=False)
    original = Trainer._train_step

    def step_then_ctrl_c(self, batch):
        result = original(self, batch)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, '_train_step', step_then_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            train(from_dict(TrainConfig, config), device='cpu', steps=5,
                  out_dir=tmp_path / 'run', progress=False)
    assert json.loads((tmp_path / 'run' / 'checkpoint.json').read_text())['step'] == 3
    # The step since the last log line (log_every 2) is in the history too.
    history = json.loads((tmp_path / 'run' / 'history.json').read_text())
    assert [record['step'] for record in history['train']] == [2, 3]
    resumed = train(from_dict(TrainConfig, config), device='cpu', steps=5, resume=True,
                    out_dir=tmp_path / 'run', progress=False)
    from safetensors.torch import load_file
    a, b = load_file(straight.weights), load_file(resumed.weights)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_an_interrupt_in_the_final_validation_keeps_the_steps(tmp_path, monkeypatch):
    from stereo_depth_ros.training import trainer as trainer_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, 'validate', interrupted)
    config = tiny_config(tmp_path, output={'checkpoint_every': 100})
    with pytest.raises(KeyboardInterrupt):
        train(from_dict(TrainConfig, config), device='cpu', steps=3, progress=False)
    assert json.loads((tmp_path / 'run' / 'checkpoint.json').read_text())['step'] == 3


def test_an_export_keeps_what_it_replaces_and_harms_nothing_else(tmp_path):
    from stereo_depth_ros.weights import check_export_path
    models = tmp_path / 'models'
    export = models / 'dispnet.safetensors'
    config = tiny_config(tmp_path, output={'export': str(export)})
    first = train(from_dict(TrainConfig, config), device='cpu', steps=1, progress=False,
                  out_dir=tmp_path / 'a')
    before = export.read_bytes()
    train(from_dict(TrainConfig, config), device='cpu', steps=2, progress=False,
          out_dir=tmp_path / 'b')
    kept = models / 'dispnet.previous.safetensors'
    assert kept.read_bytes() == before and export.read_bytes() != before
    assert (models / 'dispnet.previous.yaml').read_text().startswith('# Model card of ')
    assert first.exported == export
    # A third run keeps the second's weights beside the first's: no copy is overwritten.
    second = export.read_bytes()
    train(from_dict(TrainConfig, config), device='cpu', steps=1, progress=False,
          out_dir=tmp_path / 'c')
    assert kept.read_bytes() == before
    assert (models / 'dispnet.previous-2.safetensors').read_bytes() == second
    # An export that fails leaves the file it was to replace in place.
    import stereo_depth_ros.training.trainer as trainer_module
    third = export.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    real = trainer_module.save_weights
    calls = []

    def save_run_folder_only(model, path, *args, **kwargs):
        calls.append(path)
        return real(model, path, *args, **kwargs) if len(calls) == 1 else full_disk()

    from unittest import mock
    with mock.patch.object(trainer_module, 'save_weights', save_run_folder_only):
        with pytest.raises(OSError):
            train(from_dict(TrainConfig, config), device='cpu', steps=1, progress=False,
                  out_dir=tmp_path / 'd')
    assert export.read_bytes() == third
    # The run folder's own weights file as the export: refused.
    from stereo_depth_ros.training.train import main
    config_path = write_config(tmp_path / 'clash.yaml', config)
    assert main(['--config', str(config_path), '--out-dir', str(models), '--steps', '1',
                 '--device', 'cpu', '--no-progress']) == 2
    # Another backend's weights, a file that is no weights, a YAML that is no card: refused.
    with pytest.raises(BackendError, match='holds dispnet weights; costnet weights there'):
        check_export_path(export, 'costnet')
    (models / 'notes.safetensors').write_text('my notes')
    with pytest.raises(BackendError, match='not weights of this package'):
        check_export_path(models / 'notes.safetensors', 'dispnet')
    (models / 'exp.yaml').write_text('name: my experiment\n')
    with pytest.raises(BackendError, match=r'would replace \S*exp\.yaml, which is not a model'):
        check_export_path(models / 'exp.safetensors', 'dispnet')
    check_export_path(export, 'dispnet')  # its own backend's weights with their card: fine


def test_an_export_never_overwrites_a_previous_card_left_alone(tmp_path):
    # <stem>.previous.yaml without its weights (a card whose weights the user deleted, or a
    # file of the user's): an export keeps the weights it replaces as previous-2, card too.
    models = tmp_path / 'models'
    export = models / 'dispnet.safetensors'
    config = tiny_config(tmp_path, output={'export': str(export)})
    train(from_dict(TrainConfig, config), device='cpu', steps=1, progress=False,
          out_dir=tmp_path / 'a')
    before, card = export.read_bytes(), export.with_suffix('.yaml').read_text()
    orphan = models / 'dispnet.previous.yaml'
    orphan.write_text('my notes on the first run\n')
    train(from_dict(TrainConfig, config), device='cpu', steps=1, progress=False,
          out_dir=tmp_path / 'b')
    assert orphan.read_text() == 'my notes on the first run\n'
    assert not (models / 'dispnet.previous.safetensors').exists()
    assert (models / 'dispnet.previous-2.safetensors').read_bytes() == before
    assert (models / 'dispnet.previous-2.yaml').read_text() == card


def test_qr_training_step_and_export_with_card(tmp_path):
    overrides = tiny_config(
        tmp_path, backend='dispnet_qr',
        model={'architecture': {'width': 0.0625, 'max_disparity': 16, 'num_bins': 4},
               'loss': {'kind': 'auto', 'trunk_weight': 1.0, 'schedule_units': 'steps',
                        'schedule': [{'at': 0, 'weights': [0, 0, 0, 0, 0, 1]}]}},
        output={'export': str(tmp_path / 'models' / 'dispnet_qr.safetensors')})
    result = train(from_dict(TrainConfig, overrides), device='cpu', steps=2, progress=False)
    assert set(result.history['train'][0]) >= {'ce', 'residual', 'trunk', 'epe'}
    card_text = (tmp_path / 'models' / 'dispnet_qr.yaml').read_text()
    card = yaml.safe_load(card_text)
    assert card['backend'] == 'dispnet_qr' and card['training']['steps'] == 2
    # The steps the schedule was planned for (--steps 2), not the config file's 6.
    assert card['training']['optimization']['steps'] == 2
    # A models/ folder outside a checkout: the card names the file where it is.
    exported = tmp_path / 'models' / 'dispnet_qr.safetensors'
    assert card_text.startswith(f'# Model card of {exported} ')
    assert card['architecture']['num_bins'] == 4
    assert card['file_size_bytes'] == (tmp_path / 'models' / 'dispnet_qr.safetensors').stat(
    ).st_size
    assert isinstance(build_model(from_dict(TrainConfig, overrides)), DispNetQR)


# ---------------------------------------------------------------------------------------------
# Shipped weights
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize('backend', LEARNED)
def test_shipped_weights_load_and_beat_the_bound(backend):
    weights = ROOT / 'models' / f'{backend}.safetensors'
    assert weights.is_file(), f'{weights} is not shipped'
    assert weights.stat().st_size <= 16 * 2 ** 20
    card = yaml.safe_load((ROOT / 'models' / f'{backend}.yaml').read_text())
    assert card['backend'] == backend and card['training']['steps'] > 0
    from stereo_depth_ros.backends import create_backend
    from stereo_depth_ros.evaluation.metrics import evaluate_pair
    model = create_backend(backend, weights=weights, device='cpu')
    epes = []
    for i in range(4):
        scene = make_scene(EVAL_SEED_OFFSET + 100 + i, height=256, width=512, kind='layered')
        epes.append(evaluate_pair(model.compute(scene.left, scene.right), scene.disparity)['epe'])
    assert np.mean(epes) < SHIPPED_EPE_BOUNDS[backend]


@pytest.mark.parametrize('backend', LEARNED)
def test_shipped_weights_hold_their_bound_on_the_real_suite(backend):
    from stereo_depth_ros.backends import create_backend
    from stereo_depth_ros.data.datasets import real_suite_dataset
    from stereo_depth_ros.evaluation.evaluate import evaluate_backend
    model = create_backend(backend, device='cpu')
    summary = evaluate_backend(model, real_suite_dataset(), progress=False)
    assert summary['n'] == 4 and summary['n_skipped'] == 0
    assert summary['bad2'] < REAL_BAD2_BOUNDS[backend]
    scenes = {row['name']: row['bad2'] for row in summary['pairs']}
    measured = REAL_SCENE_BAD2[backend]
    assert scenes.keys() == measured.keys()
    risen = {name: round(bad2, 4) for name, bad2 in scenes.items()
             if bad2 >= measured[name] + REAL_SCENE_MARGIN}
    assert not risen, f'bad-2 rose on {risen} (measured {measured})'


def test_init_weights_start_fine_tuning_from_a_file(tmp_path):
    config = from_dict(TrainConfig, tiny_config(tmp_path))
    source = build_model(config)
    for parameter in source.parameters():
        torch.nn.init.normal_(parameter, std=0.01)
    path = tmp_path / 'start.safetensors'
    save_weights(source, path, 'dispnet')
    tuned = from_dict(TrainConfig, tiny_config(tmp_path, model={'init_weights': str(path)}))
    trainer = Trainer(tuned, device='cpu', steps=1, progress=False)
    for name, value in source.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
    wrong = from_dict(TrainConfig, tiny_config(tmp_path, backend='squeezeseg', model={
        'architecture': {'width': 0.25, 'max_disparity': 16}, 'init_weights': str(path),
        'loss': {'schedule_units': 'steps', 'schedule': [{'at': 0, 'weights': [0, 0, 1, 1]}]}}))
    with pytest.raises(BackendError, match="'dispnet'"):
        Trainer(wrong, device='cpu', steps=1, progress=False)


@pytest.mark.parametrize('backend', ['dispnet', 'squeezeseg', 'dispnet_qr', 'costnet'])
def test_fine_tuning_configs_load(backend):
    config = load_config(ROOT / 'config' / f'finetune_{backend}.yaml')
    assert config.model.init_weights == f'models/{backend}.safetensors'
    assert config.output.export == f'models/{backend}.safetensors'


@pytest.mark.parametrize('backend', ['dispnetc', 'dispnet'])
def test_photo_configs_widen_the_shipped_weights(backend):
    config = load_config(ROOT / 'config' / f'photo_{backend}.yaml')
    assert config.model.init_weights == f'models/{backend}.safetensors'
    assert config.model.init_weights_widen
    assert config.model.architecture['max_disparity'] == 128
    assert all(source.max_disparity == 128 for source in config.data.sources)


@pytest.mark.parametrize('backend', ['dispnetc', 'dispnet_qr', 'dispnet'])
def test_distillation_configs_label_the_real_pairs_with_costnet(backend):
    config = load_config(ROOT / 'config' / f'distill_{backend}.yaml')
    pseudo = [source for source in config.data.sources if source.kind == 'pseudo']
    assert [(s.labeller, s.hold_out_selection) for s in pseudo] == [('costnet', True)]
    # The run's recorded data description (model cards) names the labeller.
    assert 'pseudo at ../shared/data/unlabeled (labels: costnet' in describe_data(config)


def test_range_configs_train_for_0_to_192_px_on_costnets_labels():
    for name in ('range_dispnetc', 'range_continue_dispnetc', 'range_dispnet'):
        config = load_config(ROOT / 'config' / f'{name}.yaml')
        assert config.model.architecture['max_disparity'] == 192
        assert config.evaluation.max_disparity == 192
        assert all(source.max_disparity == 192 for source in config.data.sources)
        assert [s.labeller for s in config.data.sources if s.kind == 'pseudo'] == ['costnet']
    continued = load_config(ROOT / 'config' / 'range_continue_dispnetc.yaml')
    assert continued.model.init_weights == 'runs/dispnetc_range/dispnetc.safetensors'
    assert (continued.optimization.lr, continued.seed) == (2.0e-4, 48)
    dispnet = load_config(ROOT / 'config' / 'range_dispnet.yaml')
    assert (dispnet.backend, dispnet.model.init_weights) == ('dispnet',
                                                             'models/dispnet.safetensors')


TRAINING_CONFIGS = sorted(path.name for path in (ROOT / 'config').glob('*.yaml')
                          if path.name != 'depth.yaml')


@pytest.mark.parametrize('name', TRAINING_CONFIGS)
def test_every_training_config_loads_for_a_learned_backend(name):
    config = load_config(ROOT / 'config' / name)
    assert config.backend in learned_backend_names()
    assert config.output.out_dir.startswith('runs/')


@pytest.mark.parametrize('backend', ['dispnetc', 'dispnet', 'squeezeseg'])
def test_firm_adaptations_follow_costnet_fully_for_longer(backend):
    base = load_config(ROOT / 'config' / f'adapt_{backend}.yaml')
    firm = load_config(ROOT / 'config' / f'adapt_firm_{backend}.yaml')
    assert (firm.adaptation.pseudo_label, base.adaptation.pseudo_label) == (1.0, 0.3)
    assert (firm.optimization.steps, base.optimization.steps) == (1200, 800)
    assert firm.model.architecture == base.model.architecture
    assert firm.output.out_dir == f'runs/{backend}_adapt_firm'


@pytest.mark.parametrize('backend', ['costnet', 'dispnetc', 'dispnet', 'squeezeseg',
                                     'dispnet_qr'])
def test_adaptation_configs_match_the_shipped_weights(backend):
    config = load_config(ROOT / 'config' / f'adapt_{backend}.yaml')
    shipped = read_metadata(ROOT / 'models' / f'{backend}.safetensors').architecture
    assert config.model.init_weights == f'models/{backend}.safetensors'
    wanted = config.model.architecture['max_disparity']
    assert wanted == shipped['max_disparity'] == config.evaluation.max_disparity
    assert all(source.max_disparity == wanted for source in config.data.sources)
    # The report's networks learn from costnet's labels; costnet from SGBM's, not its own.
    assert config.adaptation.labeller == ('sgbm' if backend == 'costnet' else 'costnet')
    assert config.adaptation.pairs == '../shared/data/unlabeled'
    assert not config.output.export  # adapted weights never overwrite the shipped ones
    # Only the argmax-decoded network scores the labels by its own loss.
    assert (config.adaptation.pseudo_label_loss == 'network') == (backend == 'dispnet_qr')


def test_training_starts_from_weights_of_a_smaller_range(tmp_path):
    narrow = from_dict(TrainConfig, tiny_config(tmp_path, backend='dispnetc'))
    start = save_weights(build_model(narrow), tmp_path / 'narrow.safetensors', 'dispnetc')
    wide = tiny_config(tmp_path, backend='dispnetc', model={
        'architecture': {'width': 0.0625, 'max_disparity': 32}, 'init_weights': str(start)})
    with pytest.raises(BackendError, match='max_disparity'):
        Trainer(from_dict(TrainConfig, wide), device='cpu', steps=1, progress=False)
    wide['model']['init_weights_widen'] = True
    trainer = Trainer(from_dict(TrainConfig, wide), device='cpu', steps=1, progress=False)
    assert trainer.model.architecture['max_displacement'] == 8


def _qr_on_dispnet_config(tmp_path: Path, start: Path, **model) -> TrainConfig:
    return from_dict(TrainConfig, tiny_config(tmp_path, backend='dispnet_qr', model={
        'architecture': {'width': 0.0625, 'max_disparity': 16, 'num_bins': 4},
        'loss': {'kind': 'auto', 'schedule': []}, 'init_weights': str(start),
        'init_weights_backend': 'dispnet', 'init_weights_into': 'trunk', **model}))


def test_torch_compile_option_compiles_the_forward_it_trains(tmp_path, monkeypatch):
    compiled = []

    def recording_compile(function, **options):
        def run(*args):
            compiled.append(options)
            return function(*args)
        return run

    monkeypatch.setattr(torch, 'compile', recording_compile)
    config = tiny_config(tmp_path, optimization={'torch_compile': True, 'steps': 2})
    trainer = Trainer(from_dict(TrainConfig, config), device='cpu', progress=False)
    result = trainer.run()
    assert compiled and all(options == {'dynamic': False} for options in compiled)
    assert math.isfinite(result.final_validation['epe'])
    # The saved weights are the plain module's (no compile wrapper in the keys).
    from safetensors.torch import load_file
    assert set(load_file(result.weights)) == set(
        build_model(from_dict(TrainConfig, config)).state_dict())


def test_a_torch_compile_failure_in_training_names_the_setting(tmp_path, monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    def failing_compile(function, **options):
        def run(*args):
            raise TorchDynamoException('InvalidCxxCompiler: no C++ compiler\ndetail')
        return run

    monkeypatch.setattr(torch, 'compile', failing_compile)
    config = tiny_config(tmp_path, optimization={'torch_compile': True, 'steps': 2})
    trainer = Trainer(from_dict(TrainConfig, config), device='cpu', progress=False)
    with pytest.raises(ConfigError, match=r'^optimization.torch_compile: torch.compile failed '
                                          r'\(TorchDynamoException: InvalidCxxCompiler: no C\+\+ '
                                          r'compiler\); set it to false$'):
        trainer.run()


def test_qr_head_trains_on_a_frozen_dispnet_trunk(tmp_path):
    dispnet = build_model(from_dict(TrainConfig, tiny_config(tmp_path)))
    for parameter in dispnet.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    start = tmp_path / 'dispnet.safetensors'
    save_weights(dispnet, start, 'dispnet')
    trainer = Trainer(_qr_on_dispnet_config(tmp_path, start, freeze=['trunk']), device='cpu',
                      steps=3, progress=False)
    trunk_before = {k: v.clone() for k, v in trainer.model.trunk.state_dict().items()}
    for name, value in dispnet.state_dict().items():
        assert torch.equal(trunk_before[name], value), name
    head_before = trainer.model.classifier.weight.detach().clone()
    trainer.run()
    for name, value in trainer.model.trunk.state_dict().items():
        assert torch.equal(value, trunk_before[name]), name  # weights and BN statistics
    assert not torch.equal(trainer.model.classifier.weight, head_before)


def test_partial_init_and_freeze_name_their_problems(tmp_path):
    dispnet = build_model(from_dict(TrainConfig, tiny_config(tmp_path)))
    start = tmp_path / 'dispnet.safetensors'
    save_weights(dispnet, start, 'dispnet')
    with pytest.raises(ConfigError, match="no submodule 'trunc'.*trunk"):
        Trainer(_qr_on_dispnet_config(tmp_path, start, init_weights_into='trunc'),
                device='cpu', steps=1, progress=False)
    with pytest.raises(ConfigError, match='freeze'):
        Trainer(_qr_on_dispnet_config(tmp_path, start, freeze=['head']), device='cpu', steps=1,
                progress=False)
    with pytest.raises(BackendError, match="'dispnet'"):
        Trainer(_qr_on_dispnet_config(tmp_path, start, init_weights_backend=None),
                device='cpu', steps=1, progress=False)


def test_seed_option_overrides_the_config_and_is_recorded(tmp_path):
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    from stereo_depth_ros.training.train import main
    assert main(['--config', str(config_path), '--steps', '1', '--seed', '77', '--out-dir',
                 str(tmp_path / 'run'), '--device', 'cpu', '--no-progress']) == 0
    metadata = read_metadata(tmp_path / 'run' / 'dispnet.safetensors')
    assert json.loads(metadata.extra['training'])['config']['seed'] == 77


def test_weights_option_starts_from_that_file_and_is_recorded(tmp_path):
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    start = build_model(from_dict(TrainConfig, tiny_config(tmp_path)))
    for parameter in start.parameters():
        torch.nn.init.constant_(parameter, 0.01)
    save_weights(start, tmp_path / 'start.safetensors', 'dispnet')
    from stereo_depth_ros.training.train import main
    assert main(['--config', str(config_path), '--steps', '1', '--weights',
                 str(tmp_path / 'start.safetensors'), '--out-dir', str(tmp_path / 'run'),
                 '--device', 'cpu', '--no-progress']) == 0
    recorded = json.loads(read_metadata(tmp_path / 'run' / 'dispnet.safetensors')
                          .extra['training'])['config']
    assert recorded['model']['init_weights'] == str(tmp_path / 'start.safetensors')
    # One step from constant weights stays near them; from the config's random start it would not.
    trained = build_model(from_dict(TrainConfig, tiny_config(tmp_path)))
    load_state(trained, tmp_path / 'run' / 'dispnet.safetensors', 'dispnet')
    weight = next(trained.parameters())
    assert torch.allclose(weight, torch.full_like(weight, 0.01), atol=0.01)


def test_model_card_scores_in_process_as_the_eval_command_does(capsys):
    from stereo_depth_ros.cli import main as cli_main
    from stereo_depth_ros.training.model_card import eval_command, run_eval
    measured = run_eval('sgbm', 'synthetic', '0:2')
    assert cli_main(eval_command('sgbm', 'synthetic', '0:2')) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert measured.pop('ms_per_pair') > 0 and measured['n'] == 2
    assert measured == {key: printed[key] for key in measured}


def test_model_card_says_where_sgbm_wins_and_what_would_close_the_gap():
    from stereo_depth_ros.training.model_card import gap_to_sgbm
    evaluations = {
        'held_out_synthetic': {'dispnet': {'epe': 4.2}, 'sgbm': {'epe': 4.9},
                               'epe_lower_than_sgbm': True},
        'middlebury2003': {'dispnet': {'epe': 4.9}, 'sgbm': {'epe': 2.4},
                           'epe_lower_than_sgbm': False}}
    training = {'steps': 3000, 'data': 'synthetic layered scenes 512x256 (weight 1); '
                                       'augmentation: random_crop(height=128, width=256)'}
    gap = gap_to_sgbm('dispnet', evaluations, training, {'width': 0.25}, 4 * 2 ** 20)
    assert 'middlebury2003 (EPE 4.90 vs 2.40 px)' in gap and 'held_out' not in gap
    assert 'only synthetic scenes' in gap and '3000' in gap
    assert 'width 0.25 (the 16 MiB file limit allows about 0.5 ' in gap  # 4x the bytes
    real = {**training, 'data': 'kitti2015 at /data/kitti (weight 1); ' + training['data']}
    assert 'only synthetic' not in gap_to_sgbm('dispnet', evaluations, real, {}, 1)
    evaluations['middlebury2003']['dispnet']['epe'] = 2.3
    assert gap_to_sgbm('dispnet', evaluations, training, {'width': 0.25}, 1) is None
    # The full-range entry has no epe_lower_than_sgbm flag: its numbers say it.
    evaluations['full_range_synthetic'] = {'scenes': '20 test layered scenes',
                                           'dispnet': {'epe': 10.5}, 'sgbm': {'epe': 9.8}}
    assert 'full_range_synthetic (EPE 10.50 vs 9.80 px)' in gap_to_sgbm(
        'dispnet', evaluations, training, {'width': 0.25}, 1)


def test_the_cards_network_alone_command_is_one_the_cli_runs(monkeypatch, capsys):
    import shlex
    from stereo_depth_ros.cli import main
    from stereo_depth_ros.evaluation import real_bench
    from stereo_depth_ros.training.model_card import network_alone_command

    def stop(backends, *args, **kwargs):  # the arguments were accepted: stop before scoring
        raise DatasetError(f'scored {[backend.describe() for backend in backends]}')

    monkeypatch.setattr(real_bench, 'run_real_bench', stop)
    argv = shlex.split(network_alone_command('dispnetc'))
    assert argv[0] == 'stereo-depth' and main(argv[1:]) == 2
    error = capsys.readouterr().err
    assert 'scored' in error and 'sgbm' in error and 'refined' not in error


@pytest.mark.parametrize('backend', LEARNED)
def test_each_shipped_card_gives_the_network_alone_command(backend):
    from stereo_depth_ros.training.model_card import network_alone_command, refines_by_default
    card = yaml.safe_load((ROOT / 'models' / f'{backend}.yaml').read_text())
    alone = card['evaluation']['real_suite'].get('without_refinement')
    assert (alone is not None) == refines_by_default(backend)
    if alone is not None:
        assert alone['command'] == network_alone_command(backend)


def test_model_card_names_the_config_of_the_weights_own_run():
    from stereo_depth_ros.training.model_card import training_command
    models = Path(__file__).resolve().parent.parent / 'models'
    assert training_command(models / 'dispnet.safetensors', 'dispnet_finetune', 'dispnet') == \
        'stereo-depth train --config config/finetune_dispnet.yaml'
    assert training_command(models / 'costnet.safetensors', 'costnet', 'costnet') == \
        'stereo-depth train --config config/train_costnet.yaml'
    assert training_command(models / 'dispnetc.safetensors', 'dispnetc_adapt', 'dispnetc',
                            'adapt') == 'stereo-depth adapt --config config/adapt_dispnetc.yaml'
    assert 'not found' in training_command(models / 'x.safetensors', 'nothing_named_so', 'x')
    # Weights exported elsewhere (adapt --export /tmp/...) are traced to this checkout's configs.
    assert training_command(Path('/tmp/elsewhere/mine.safetensors'), 'costnet_adapt', 'costnet',
                            'adapt') == 'stereo-depth adapt --config config/adapt_costnet.yaml'


def test_a_card_without_the_recorded_command_says_what_its_command_is_not(tmp_path):
    """The shipped weights predate `invocation`: their config alone overwrites them."""
    from stereo_depth_ros.resources import default_weights_path
    from stereo_depth_ros.training.model_card import UNRECORDED_COMMAND, build_card, write_card
    copy = tmp_path / 'models' / 'costnet.safetensors'
    copy.parent.mkdir()
    copy.write_bytes(default_weights_path('costnet').read_bytes())
    training = build_card(copy)['training']
    assert training['command'].startswith('stereo-depth train --config config/')
    assert training['command_note'] == UNRECORDED_COMMAND['train']
    adapted = tmp_path / 'models' / 'dispnet.safetensors'  # made by stereo-depth adapt
    adapted.write_bytes(default_weights_path('dispnet').read_bytes())
    training = build_card(adapted)['training']
    assert training['command'].startswith('stereo-depth adapt --config config/')
    assert training['command_note'] == UNRECORDED_COMMAND['adapt']
    # --no-eval keeps what a card of the same weights measured, and their notes.
    card = tmp_path / 'models' / 'costnet.yaml'
    card.write_text((default_weights_path('costnet').parent / 'costnet.yaml').read_text())
    before = yaml.safe_load(card.read_text())
    write_card(copy, card)
    after = yaml.safe_load(card.read_text())
    assert after['evaluation']['real_suite'] == before['evaluation']['real_suite']
    assert after['notes'] == before['notes'] and 'one tuning decision' in \
        after['evaluation']['note']
    other = tmp_path / 'models' / 'costnet_fast.safetensors'  # another file: nothing kept
    other.write_bytes(default_weights_path('costnet_fast').read_bytes())
    write_card(other, card)
    assert 'evaluation' not in yaml.safe_load(card.read_text())


def test_a_card_s_evaluation_command_names_the_options_it_measured_with(tmp_path, capsys):
    from stereo_depth_ros.resources import default_weights_path
    from stereo_depth_ros.training.model_card import build_card, main as card_main
    copy = tmp_path / 'models' / 'costnet.safetensors'
    copy.parent.mkdir()
    copy.write_bytes(default_weights_path('costnet').read_bytes())
    synthetic = {'costnet': {'epe': 1.0, 'bad2': 0.1}, 'sgbm': {'epe': 2.0, 'bad2': 0.2},
                 'epe_lower_than_sgbm': True}
    card = build_card(copy, {'held_out_synthetic': synthetic},
                      '--synthetic eval:2 --no-real --full-range 1')
    assert card['evaluation']['command'] == (
        f'python -m stereo_depth_ros.training.model_card --backend costnet --models-dir '
        f'{tmp_path / "models"} --synthetic eval:2 --no-real --full-range 1')
    # Nothing to do is said, not done silently; a negative count is refused as typed.
    assert card_main(['--all', '--models-dir', str(tmp_path / 'none')]) == 2
    assert 'no weights of a learned backend in' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        card_main(['--backend', 'costnet', '--full-range', '-1'])


def test_export_paths_in_new_folders_are_fine_and_unwritable_ones_refused(tmp_path, monkeypatch):
    from stereo_depth_ros import weights
    weights.check_export_path(tmp_path / 'new' / 'deeper' / 'mine.safetensors')  # no error
    with pytest.raises(BackendError, match='is a folder'):
        weights.check_export_path(tmp_path)
    monkeypatch.setattr(weights.os, 'access', lambda *args: False)
    with pytest.raises(BackendError, match='is not a writable folder'):
        weights.check_export_path(tmp_path / 'new' / 'mine.safetensors')


def test_train_records_its_command_line_and_its_checkpoint_is_no_weights(tmp_path):
    from stereo_depth_ros.cli import main
    from stereo_depth_ros.weights import read_metadata
    config_path = write_config(tmp_path / 'tiny.yaml', tiny_config(tmp_path))
    argv = ['train', '--config', str(config_path), '--steps', '1', '--out-dir',
            str(tmp_path / 'run'), '--device', 'cpu', '--no-progress']
    assert main(argv) == 0
    training = json.loads(read_metadata(tmp_path / 'run' / 'dispnet.safetensors')
                          .extra['training'])
    assert training['invocation'] == 'stereo-depth ' + ' '.join(argv)
    with pytest.raises(BackendError, match='is a training checkpoint'):
        read_metadata(tmp_path / 'run' / 'checkpoint.safetensors')


def test_a_cards_commands_name_weights_that_are_not_the_shipped_ones(tmp_path):
    from stereo_depth_ros.resources import default_weights_path
    from stereo_depth_ros.training.model_card import build_card, unshipped
    shipped = default_weights_path('squeezeseg')
    assert unshipped('squeezeseg', shipped) is None
    copy = tmp_path / 'squeezeseg.safetensors'
    copy.write_bytes(shipped.read_bytes())
    assert unshipped('squeezeseg', copy) == copy
    card = build_card(copy, evaluations={'held_out_synthetic': {}})
    assert card['evaluation']['command'].endswith(f'--models-dir {tmp_path}')


def test_train_refuses_an_adaptation_config(capsys):
    """Its pairs and self-supervised losses would be left out without a word."""
    from stereo_depth_ros.cli import main
    from stereo_depth_ros.resources import find_shared_file
    config = find_shared_file('config/adapt_costnet_fast.yaml')
    assert main(['train', '--config', str(config), '--steps', '1', '--device', 'cpu']) == 2
    assert 'is an adaptation config (its adaptation section is read by stereo-depth adapt ' \
        'only): run stereo-depth adapt' in capsys.readouterr().err


def test_a_missing_pairs_folder_names_the_config_setting(tmp_path):
    """A shipped config points at the development machine's pairs: say what to change."""
    synthetic = tiny_config(tmp_path)['data']['sources'][0]
    pseudo = {'kind': 'pseudo', 'root': str(tmp_path / 'nowhere'), 'weight': 0.5}
    config = from_dict(TrainConfig, tiny_config(tmp_path, data={'sources': [synthetic, pseudo]}))
    with pytest.raises(DatasetError, match=r'pair folder \S*nowhere is not a folder '
                       r'\(data.sources\[1\].root of the config; point it at your own folder'):
        TrainingData(config.data, seed=5, progress=False)


def test_a_card_takes_the_recorded_command_and_fresh_measurements(tmp_path):
    from stereo_depth_ros.resources import default_weights_path
    from stereo_depth_ros.training import model_card
    copy = tmp_path / 'models' / 'costnet.safetensors'
    copy.parent.mkdir()
    copy.write_bytes(default_weights_path('costnet').read_bytes())
    card = tmp_path / 'models' / 'costnet.yaml'
    card.write_text((default_weights_path('costnet').parent / 'costnet.yaml').read_text())
    model_card.write_card(copy, card, evaluations={'extra_measure': {'fresh': 1}})
    evaluation = yaml.safe_load(card.read_text())['evaluation']
    assert evaluation['extra_measure'] == {'fresh': 1}
    assert 'real_suite' not in evaluation  # replaced, not merged with the old card's


def test_a_card_names_the_recorded_invocation(tmp_path, monkeypatch):
    from stereo_depth_ros.resources import default_weights_path
    from stereo_depth_ros.training import model_card
    copy = tmp_path / 'costnet.safetensors'
    copy.write_bytes(default_weights_path('costnet').read_bytes())
    # fake a recorded invocation through read_metadata's training json
    import json
    from stereo_depth_ros import weights as weights_module
    original = weights_module.read_metadata

    def with_invocation(path, *a, **k):
        meta = original(path, *a, **k)
        training = json.loads(meta.extra['training'])
        training['invocation'] = 'stereo-depth train --config x.yaml --weights w'
        meta.extra['training'] = json.dumps(training)
        return meta
    monkeypatch.setattr(model_card, 'read_metadata', with_invocation)
    training = model_card.build_card(copy)['training']
    assert training['command'] == 'stereo-depth train --config x.yaml --weights w'
    assert 'command_note' not in training


def test_kept_measurements_get_the_current_note(tmp_path):
    from stereo_depth_ros.resources import default_weights_path
    from stereo_depth_ros.training.model_card import EVALUATION_NOTE, write_card
    copy = tmp_path / 'costnet.safetensors'
    copy.write_bytes(default_weights_path('costnet').read_bytes())
    card = tmp_path / 'costnet.yaml'
    text = (default_weights_path('costnet').parent / 'costnet.yaml').read_text()
    previous = yaml.safe_load(text)
    previous['evaluation']['note'] = 'old wording'
    card.write_text(yaml.safe_dump(previous))
    write_card(copy, card)
    assert yaml.safe_load(card.read_text())['evaluation']['note'] == EVALUATION_NOTE


def test_an_export_path_in_a_config_expands_home(tmp_path, monkeypatch):
    """A shell expands ~ on the command line, not in YAML: checked at one path, written at
    a folder literally named ~ otherwise."""
    from stereo_depth_ros.training.config import load_config
    monkeypatch.setenv('HOME', str(tmp_path))
    config = tiny_config(tmp_path, output={'export': '~/weights/mine.safetensors'})
    loaded = load_config(write_config(tmp_path / 'home.yaml', config))
    assert loaded.output.export == str(tmp_path / 'weights' / 'mine.safetensors')


def test_coarse_targets_know_a_pixel_only_when_half_its_fine_pixels_are_positive():
    from stereo_depth_ros.training.losses import valid_mask
    assert valid_mask(torch.tensor([0.0, -1.0, float('nan'), 0.5])).tolist() == [0, 0, 0, 1]
    # One known fine pixel of four: the coarse pixel is unknown.
    target, mask = downsample_target(torch.tensor([[[[8.0, 0.0], [0.0, 0.0]]]]), (1, 1))
    assert float(mask) == 0.0
    # Negative and zero disparities are unknown: they take no part in the coarse value.
    target, mask = downsample_target(torch.tensor([[[[10.0, 10.0], [-4.0, 0.0]]]]), (1, 1))
    assert float(mask) == 1.0 and float(target) == pytest.approx(5.0)


def test_visible_in_right_drops_occluded_and_out_of_view_pixels():
    from stereo_depth_ros.training.self_supervised import visible_in_right
    disparity = torch.full((1, 1, 1, 12), 2.0)
    disparity[..., 6] = 4.0  # lands at 2, before x = 4 and 5 (at 2 and 3): it hides them
    visible = visible_in_right(disparity)[0, 0, 0].tolist()
    assert visible == [0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]


def test_photometric_loss_weighs_ssim_by_0_85_and_l1_by_0_15():
    from stereo_depth_ros.training.self_supervised import photometric_loss, ssim_distance
    generator = torch.Generator().manual_seed(0)
    left = torch.rand(1, 3, 8, 12, generator=generator)
    right = 1 - left  # structure inverted: SSIM far off, L1 moderate
    ssim = ssim_distance(right, left).mean()
    l1 = (right - left).abs().mean()
    assert abs(float(ssim) - float(l1)) > 0.2  # so a swap of the weights shows
    loss = photometric_loss(left, right, torch.zeros(1, 1, 8, 12))
    assert float(loss) == pytest.approx(float(0.85 * ssim + 0.15 * l1), rel=1e-5)


def test_smoothness_is_edge_aware_per_direction_and_scale_free():
    from stereo_depth_ros.training.self_supervised import smoothness_loss
    disparity = torch.full((1, 1, 8, 8), 4.0)
    disparity[..., 4:] = 8.0  # a depth step across x
    flat = torch.full((1, 3, 8, 8), 0.5)
    across_x = flat.clone()
    across_x[..., 4:] = 1.0  # an image edge where the depth steps
    across_y = flat.clone()
    across_y[..., 4:, :] = 1.0  # an image edge across the other direction
    plain = float(smoothness_loss(disparity, flat))
    assert plain > 0.0
    assert float(smoothness_loss(disparity, across_x)) < 0.1 * plain
    assert float(smoothness_loss(disparity, across_y)) == pytest.approx(plain)
    assert float(smoothness_loss(3 * disparity, flat)) == pytest.approx(plain)


def test_left_right_check_keeps_disagreements_up_to_one_pixel_only():
    from stereo_depth_ros.training.pseudo_labels import left_right_consistent
    left = np.full((1, 10), 2.0, np.float32)
    right = np.full((1, 10), 2.0, np.float32)
    right[0, 3], right[0, 5] = 3.0, 4.0  # left x = 5 disagrees by 1 px, x = 7 by 2 px
    checked = left_right_consistent(left, right)
    assert checked[0, 5] == 2.0 and np.isnan(checked[0, 7])


def test_the_labeller_checks_the_left_pass_against_the_unmirrored_right_pass(monkeypatch):
    from stereo_depth_ros.training import pseudo_labels
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (6, 100, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (6, 100, 3), dtype=np.uint8)
    left_disparity = np.full((6, 100), 3.0, np.float32)
    right_disparity = np.full((6, 100), 3.0, np.float32)
    right_disparity[:, 20:30] = 9.0  # disagrees with left x = 23..32, not with 67..76
    made = []

    class Fake:
        def compute(self, first, second):
            if np.array_equal(first, left) and np.array_equal(second, right):
                return left_disparity
            assert np.array_equal(first, right[:, ::-1]) and np.array_equal(second, left[:, ::-1])
            return right_disparity[:, ::-1]

    def create(name, *args, **kwargs):
        made.append((name, kwargs))
        return Fake()

    monkeypatch.setattr(pseudo_labels, 'create_backend', create)
    label = pseudo_labels.make_labeller(192.0)(left, right)
    # The search range stops short of the image width (SGBM needs width > range).
    assert made == [('sgbm', {'disparity_range': 96, 'uniqueness_ratio': 15})]
    np.testing.assert_array_equal(
        label, pseudo_labels.left_right_consistent(left_disparity, right_disparity))
    assert np.isnan(label[:, 23:33]).all() and np.isfinite(label[:, 60:80]).all()


def test_augmentations_change_the_view_they_name_and_keep_the_other():
    from stereo_depth_ros.training.augment import CameraDegradation, RandomScale
    rng = np.random.default_rng(1)
    left = rng.uniform(0, 255, (32, 48, 3)).astype(np.float32)
    right = rng.uniform(0, 255, (32, 48, 3)).astype(np.float32)
    sample = TrainSample(left, right, np.full((32, 48), 4.0, np.float32))
    changed = Photometric(noise=0.0)(sample, rng)
    assert not np.allclose(changed.left, left) and not np.allclose(changed.right, right)
    scaled = RandomScale(0.5, 0.5, probability=1.0)(sample, rng)
    np.testing.assert_array_equal(scaled.right, cv2.resize(right, (24, 16),
                                                           interpolation=cv2.INTER_AREA))
    only = dict(blur_probability=0.0, jpeg_probability=0.0, shift_probability=0.0,
                eraser_probability=0.0)
    shifted = CameraDegradation(**{**only, 'shift_probability': 1.0})(sample, rng)
    np.testing.assert_array_equal(shifted.left, left)  # the right camera is misaligned
    assert not np.array_equal(shifted.right, right)
    erased = CameraDegradation(**{**only, 'eraser_probability': 1.0})(sample, rng)
    np.testing.assert_array_equal(erased.left, left)
    kept = (erased.right == right).all(axis=2)
    assert 0.3 < kept.mean() < 1.0
    assert np.allclose(erased.right[~kept], right.reshape(-1, 3).mean(axis=0))


def test_a_card_s_real_suite_row_keeps_the_pooled_figures_beside_the_means():
    from stereo_depth_ros.evaluation.evaluate import pooled_metrics
    from stereo_depth_ros.training.model_card import _real_suite_scores
    rows = [{'name': 'small', 'epe': 1.0, 'bad1': 0.5, 'bad2': 0.4, 'bad3': 0.2, 'd1': 0.1,
             'density': 1.0, 'estimated_bad2': 0.4},
            {'name': 'large', 'epe': 2.0, 'bad1': 0.2, 'bad2': 0.1, 'bad3': 0.0, 'd1': 0.0,
             'density': 1.0, 'estimated_bad2': 0.1}]
    summary = {'epe': 1.5, 'bad1': 0.35, 'bad2': 0.25, 'bad3': 0.1, 'd1': 0.05, 'density': 1.0,
               'n': 2, 'epe_0_32': 1.0, 'bad2_256_inf': float('nan'), 'pairs': rows,
               'pooled': pooled_metrics(rows, [100, 300])}
    scores = _real_suite_scores(summary)
    assert scores['bad2'] == 0.25 and scores['pooled']['bad2'] == 0.175  # (40 + 30) / 400
    assert scores['pooled']['epe'] == 1.75 and 'pixels' not in scores['pooled']
    assert scores['bands'] == {'epe_0_32': 1.0}  # a band no scene reaches is left out
    assert scores['bad2_per_scene'] == {'small': 0.4, 'large': 0.1}
