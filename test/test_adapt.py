"""Tests of self-supervised adaptation: its losses, the trainer and ``stereo-depth adapt``."""

import argparse
import json
import logging
import shlex
import shutil
import warnings
from pathlib import Path

import cv2
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from stereo_depth_ros import torch_runtime
from stereo_depth_ros.backends import backend_record, create_backend
from stereo_depth_ros.cli import main
from stereo_depth_ros.data.datasets import StereoSample
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.errors import BackendError, DatasetError, StereoDepthError
from stereo_depth_ros.networks.common import StereoNet
from stereo_depth_ros.networks.costnet import volume_cross_entropy
from stereo_depth_ros.training.adapt import _crop_batch, AdaptTrainer, pair_warnings
from stereo_depth_ros.training.config import ConfigError, TrainConfig, from_dict, validate
from stereo_depth_ros.training.losses import (CostVolumeLoss, LossSchedule, MultiScaleEPELoss,
                                              masked_epe, valid_mask)
from stereo_depth_ros.training.pseudo_labels import pseudo_labelled_dataset
from stereo_depth_ros.training.selection import main as selection_main
from stereo_depth_ros.training.model_card import build_card
from stereo_depth_ros.training.pair_split import selection_pairs, training_pairs
from stereo_depth_ros.training.selection import (_synthetic_columns, full_range_scenes,
                                                 score_full_range, score_full_range_predictions,
                                                 score_pairs, sgbm_predictions, through_lens)
from stereo_depth_ros.training.augment import vignette
from stereo_depth_ros.training.self_supervised import (photometric_loss, smoothness_loss,
                                                       ssim_distance, visible_in_right,
                                                       warp_right_to_left)
from stereo_depth_ros.weights import read_metadata, save_weights
from tiny_architectures import TINY

torch.set_num_threads(1)


def _pairs_folder(tmp_path: Path, count: int = 2, size: tuple[int, int] = (64, 128)) -> Path:
    """Synthetic pairs saved as left.png/right.png (no ground truth) under one folder."""
    root = tmp_path / 'pairs'
    for seed in range(count):
        scene = make_scene(seed, *size, 'layered', max_disparity=24)
        folder = root / f'pair{seed}'
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / 'left.png'), scene.left[:, :, ::-1])
        cv2.imwrite(str(folder / 'right.png'), scene.right[:, :, ::-1])
    return root


def test_figures_command_draws_two_weights_files_on_pairs_in_one_picture(
        tmp_path: Path, capsys) -> None:
    from stereo_depth_ros.training.figures import main as figures_main
    torch.manual_seed(0)
    network = backend_record('costnet').network
    before = save_weights(network(**TINY['costnet']), tmp_path / 'a.safetensors', 'costnet')
    after = save_weights(network(**TINY['costnet']), tmp_path / 'b.safetensors', 'costnet')
    pairs = _pairs_folder(tmp_path, 2)
    out = tmp_path / 'sheet' / 'before_after.png'
    assert figures_main(['costnet', str(before), str(after), '--pairs', str(pairs),
                         '--out', str(out)]) == 0
    assert capsys.readouterr().out.strip() == f'wrote {out}'
    sheet = cv2.imread(str(out))
    assert sheet.shape[0] > 2 * 64 and sheet.shape[1] > 3 * 128  # two rows of three panels
    assert figures_main(['costnet', str(before), str(after), '--pairs', str(tmp_path / 'no'),
                         '--out', str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f'figures: pair folder {tmp_path / "no"} is not a folder']
    # Refused before the networks run, in one line: a name OpenCV cannot write, a file for
    # a folder.
    for bad, why in ((tmp_path / 'sheet.xyz', 'not an image file name OpenCV can write'),
                     (before / 'x.png', f'x.png: {before} is an existing file, not a folder')):
        assert figures_main(['costnet', str(before), str(after), '--pairs', str(pairs),
                             '--out', str(bad)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith('figures: --out ') and why in error[0]
    # A malformed option: one line naming the flag as typed (it was a traceback naming
    # --backend-option).
    assert figures_main(['costnet', str(before), str(after), '--pairs', str(pairs),
                         '--out', str(out), '--after-option', 'bad']) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "figures: --after-option needs KEY=VALUE, got 'bad'"]


def test_figures_draw_what_a_backend_option_does_to_one_weights_file(
        tmp_path: Path, capsys, monkeypatch) -> None:
    from stereo_depth_ros.training import figures
    from stereo_depth_ros.training.figures import main as figures_main
    made = []
    create = figures.create_backend
    monkeypatch.setattr(figures, 'create_backend',
                        lambda *args, **options: made.append(options) or create(*args, **options))
    torch.manual_seed(0)
    network = backend_record('costnet').network
    weights = save_weights(network(**TINY['costnet']), tmp_path / 'a.safetensors', 'costnet')
    pairs = _pairs_folder(tmp_path, 1)
    argv = ['costnet', str(weights), str(weights), '--pairs', str(pairs), '--out']
    sheets = []
    for name, option in (('same.png', []), ('option.png', ['--after-option', 'scale=0.5'])):
        assert figures_main([*argv, str(tmp_path / name), *option]) == 0
        sheets.append(cv2.imread(str(tmp_path / name)))
    capsys.readouterr()
    assert 'scale' not in made[2] and made[3]['scale'] == 0.5  # the right column's only
    assert sheets[0].shape == sheets[1].shape and not np.array_equal(*sheets)
    assert figures_main([*argv, str(tmp_path / 'bad.png'), '--after-option', 'nosuch=1']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith('figures: ') and 'nosuch' in error[0]
    assert not (tmp_path / 'bad.png').exists()


def test_pairs_of_two_sizes_are_named_with_their_sizes(tmp_path: Path) -> None:
    root = _pairs_folder(tmp_path, 1)
    right = cv2.imread(str(root / 'pair0' / 'right.png'))
    cv2.imwrite(str(root / 'pair0' / 'right.png'), right[:, :100])
    with pytest.raises(DatasetError, match=r'pair0: left is 128x64 but right is 100x64: '
                                           r'left and right images must be one size$'):
        pseudo_labelled_dataset(root, 24, progress=False)


def test_a_grey_view_beside_a_colour_one_is_refused_naming_the_pair(tmp_path: Path) -> None:
    # Read as RGB both, a grey view and a colour one differ in every pixel's colour: the
    # photometric loss would train on an error that no disparity explains.
    root = _pairs_folder(tmp_path, 1)
    left = root / 'pair0' / 'left.png'
    cv2.imwrite(str(left), cv2.imread(str(left), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(DatasetError, match=r'pair0: left is grey but right is colour: both '
                                           r'cameras must be grey or both colour$'):
        pseudo_labelled_dataset(root, 24, progress=False)
    right = root / 'pair0' / 'right.png'
    cv2.imwrite(str(right), cv2.imread(str(right), cv2.IMREAD_GRAYSCALE))
    grey, = pseudo_labelled_dataset(root, 24, progress=False)  # both grey: one camera's
    assert grey.left.shape == (64, 128, 3)


def test_a_grey_view_with_alpha_is_grey_beside_a_grey_one(tmp_path: Path) -> None:
    # OpenCV reads a grey+alpha PNG as BGRA; the alpha dropped, it is a grey view, not colour.
    from PIL import Image
    from stereo_depth_ros.data.datasets import read_image_as_stored
    root = _pairs_folder(tmp_path, 1)
    left, right = root / 'pair0' / 'left.png', root / 'pair0' / 'right.png'
    grey = cv2.imread(str(left), cv2.IMREAD_GRAYSCALE)
    Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), 'LA').save(left)
    assert np.array_equal(read_image_as_stored(left), grey)
    with pytest.raises(DatasetError, match=r'pair0: left is grey but right is colour'):
        pseudo_labelled_dataset(root, 24, progress=False)  # a true colour view still is
    cv2.imwrite(str(right), cv2.imread(str(right), cv2.IMREAD_GRAYSCALE))
    pair, = pseudo_labelled_dataset(root, 24, progress=False)
    assert np.array_equal(pair.left, np.repeat(grey[:, :, None], 3, axis=2))
    # A colour file with alpha stays colour, even where its channels are equal.
    Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 255)]), 'RGBA').save(left)
    assert read_image_as_stored(left).shape == (*grey.shape, 3)


def test_a_bag_of_a_grey_and_a_colour_camera_is_refused_at_its_first_pair(
        tmp_path: Path, capsys) -> None:
    from bad_input_helpers import START_NS, write_stereo_bag
    from stereo_depth_ros.bags.extract import extract_pairs
    bag = write_stereo_bag(tmp_path / 'bag', frames=3, right_encoding='mono8')
    line = (rf'/stereo/left/image_rect is rgb8 \(colour\) but /stereo/right/image_rect is '
            rf'mono8 \(grey\) \(pair at stamp {START_NS / 1e9:.6f}\): both cameras must be '
            'grey or both colour')
    with pytest.raises(DatasetError, match=f'^{line}$'):
        extract_pairs(bag, tmp_path / 'pairs', progress=False)
    weights, config = _tiny_run(tmp_path)
    out = tmp_path / 'out'
    assert main(['adapt', '--config', str(config), '--bag', str(bag), '--weights', str(weights),
                 '--device', 'cpu', '--no-progress', '--export', '', '--out-dir', str(out)]) == 2
    assert capsys.readouterr().err.count('both cameras must be grey or both colour') == 1
    assert not out.exists()


def test_a_bag_of_two_image_sizes_is_refused_at_its_first_pair(
        tmp_path: Path, capsys) -> None:
    # Refused while extracting, naming the topics, not once the whole bag is extracted with
    # the name of a pair file that the failed run then removes.
    from bad_input_helpers import START_NS, write_stereo_bag
    from stereo_depth_ros.bags.extract import extract_pairs
    bag = write_stereo_bag(tmp_path / 'bag', frames=3, right_width=80)
    line = (rf'/stereo/left/image_rect is 96x64 but /stereo/right/image_rect is 80x64 \(pair at '
            rf'stamp {START_NS / 1e9:.6f}\): left and right images must be one size')
    with pytest.raises(DatasetError, match=f'^{line}$'):
        extract_pairs(bag, tmp_path / 'pairs', progress=False)
    assert not (tmp_path / 'pairs').exists()
    weights, config = _tiny_run(tmp_path)
    out = tmp_path / 'out'
    assert main(['adapt', '--config', str(config), '--bag', str(bag), '--weights', str(weights),
                 '--device', 'cpu', '--no-progress', '--export', '', '--out-dir', str(out)]) == 2
    error = capsys.readouterr().err
    assert 'must be one size' in error and str(out) not in error and not out.exists()


def _tiny_config(tmp_path: Path, weights: Path, steps: int, **adaptation) -> TrainConfig:
    return from_dict(TrainConfig, {
        'name': 'adapt_test', 'backend': 'costnet', 'seed': 1,
        'data': {'sources': [{'kind': 'synthetic', 'height': 64, 'width': 128,
                              'max_disparity': 24}]},
        'model': {'architecture': TINY['costnet'], 'init_weights': str(weights),
                  'loss': {'schedule': [{'at': 0, 'weights': [0.5, 1.0]}], 'ce_weight': 1.0}},
        'optimization': {'steps': steps, 'batch_size': 1, 'lr': 2e-3, 'warmup_steps': 0,
                         'lr_schedule': 'constant'},
        'evaluation': {'every': 0, 'num_scenes': 0},
        'output': {'out_dir': str(tmp_path / 'run'), 'log_every': 1,
                   'checkpoint_every': 100},
        'adaptation': {'crop': [64, 128], 'batch_size': 1, **adaptation}})


def test_true_disparity_rebuilds_the_left_view_best() -> None:
    scene = make_scene(7, 64, 128, 'layered', max_disparity=20, photometric=False)
    left = torch.from_numpy(scene.left.transpose(2, 0, 1).copy())[None].float() / 255
    right = torch.from_numpy(scene.right.transpose(2, 0, 1).copy())[None].float() / 255
    truth = torch.from_numpy(scene.disparity)[None, None]
    rebuilt = warp_right_to_left(right, truth)
    visible = visible_in_right(truth)
    assert 0.6 < float(visible.mean()) < 1.0
    error = ((rebuilt - left).abs().mean(1, keepdim=True) * visible).sum() / visible.sum()
    assert float(error) < 0.02
    assert photometric_loss(left, right, truth) < photometric_loss(left, right, truth * 0 + 3)
    flat = torch.full_like(truth, 5.0)
    assert float(smoothness_loss(flat, left)) == 0.0 < float(smoothness_loss(truth, left))


def test_volume_cross_entropy_targets_the_true_disparity() -> None:
    disparity = torch.tensor([[[[2.25]]]])
    mask = torch.ones_like(disparity)
    logits = torch.full((1, 6, 1, 1), -20.0)
    logits[0, 2], logits[0, 3] = np.log(0.75), np.log(0.25)
    best = volume_cross_entropy(logits, disparity, mask)
    logits[0, 2], logits[0, 3] = np.log(0.25), np.log(0.75)
    assert volume_cross_entropy(logits, disparity, mask) > best
    beyond = volume_cross_entropy(logits, torch.tensor([[[[9.0]]]]), mask)
    assert float(beyond) == 0.0  # outside the volume: not scored


def test_ssim_distance_is_0_for_equal_views_and_near_1_for_inverted_structure() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 8, 8, generator=generator)
    assert float(ssim_distance(image, image).abs().max()) < 1e-5
    # Flat views differing only in brightness: SSIM is its luminance term alone,
    # 2 x 0.2 x 0.6 / (0.2^2 + 0.6^2) = 0.6, so the distance (1 - SSIM) / 2 is 0.2.
    dark, bright = torch.full((1, 3, 6, 6), 0.2), torch.full((1, 3, 6, 6), 0.6)
    assert torch.allclose(ssim_distance(dark, bright), torch.tensor(0.2), atol=1e-3)
    # A checkerboard against its negative: the structure term is about -1.
    board = ((torch.arange(8).view(8, 1) + torch.arange(8)) % 2).float().expand(1, 3, 8, 8)
    assert float(ssim_distance(board, 1 - board).min()) > 0.95


def test_photometric_loss_is_a_mean_over_the_pixels_the_right_camera_sees() -> None:
    # Flat views: every pixel the right camera sees has the same error, so leaving half the
    # view out of sight changes nothing, and a view wholly out of sight scores 0, not NaN.
    left, right = torch.full((1, 3, 4, 12), 0.3), torch.full((1, 3, 4, 12), 0.7)
    seen = float(photometric_loss(left, right, torch.zeros(1, 1, 4, 12)))
    assert seen > 0.1
    half = float(photometric_loss(left, right, torch.full((1, 1, 4, 12), 6.0)))
    assert half == pytest.approx(seen, rel=1e-5)
    assert float(photometric_loss(left, right, torch.full((1, 1, 4, 12), 12.0))) == 0.0


def test_smoothness_treats_both_directions_alike_and_small_disparities_too() -> None:
    disparity = torch.full((1, 1, 8, 8), 4.0)
    disparity[..., 4:] = 8.0  # a depth step across x
    flat = torch.full((1, 3, 8, 8), 0.5)
    edge = flat.clone()
    edge[..., 4:] = 1.0  # an image edge where the depth steps
    for image in (flat, edge):
        along_x = float(smoothness_loss(disparity, image))
        along_y = float(smoothness_loss(disparity.transpose(-1, -2), image.transpose(-1, -2)))
        assert along_x > 0.0 and along_y == pytest.approx(along_x)
    # Scale free for disparities of a fraction of a pixel as well (far scenes).
    assert float(smoothness_loss(0.05 * disparity, flat)) == pytest.approx(
        float(smoothness_loss(disparity, flat)))


def test_pseudo_label_error_leaves_out_unknown_and_infinite_labels() -> None:
    # As the adaptation scores its pseudo-labels: only the label of 2 px is known.
    label = torch.tensor([[[[2.0, float('inf'), float('nan'), 0.0, -1.0]]]])
    prediction = torch.full_like(label, 3.0)
    epe = masked_epe(prediction, torch.nan_to_num(label), valid_mask(label))
    assert float(epe) == pytest.approx(1.0)


def test_cost_volume_loss_adds_its_weighted_cross_entropy_at_the_volume_size() -> None:
    truth = torch.full((1, 1, 4, 8), 8.0)  # 2 px at the 1/4-resolution volume
    logits = torch.full((1, 6, 1, 2), -20.0)
    logits[0, 2], logits[0, 3] = np.log(0.5), np.log(0.5)  # half on 2, half on 3
    model = argparse.Namespace(last_logits=logits)
    loss = CostVolumeLoss(LossSchedule([(0, [1.0, 1.0])], 10), model, ce_weight=0.5)
    coarse, full = torch.full((1, 1, 1, 2), 2.0), torch.full((1, 1, 4, 8), 9.0)
    total, terms = loss([coarse, full], truth, step=0)
    assert terms['ce'] == pytest.approx(np.log(2), abs=1e-4)
    assert terms['epe_s0'] == pytest.approx(0.0) and terms['epe_s1'] == pytest.approx(1.0)
    assert float(total) == pytest.approx(1.0 + 0.5 * np.log(2), abs=1e-4)


def test_the_reported_epe_is_in_full_resolution_pixels() -> None:
    # DispNet's finest prediction is at half resolution, in half-resolution pixels.
    truth = torch.full((1, 1, 4, 8), 8.0)
    loss = MultiScaleEPELoss(LossSchedule([(0, [1.0])], 10))
    _, terms = loss([torch.full((1, 1, 2, 4), 4.5)], truth, step=0)
    assert terms['epe_s0'] == pytest.approx(0.5) and terms['epe'] == pytest.approx(1.0)


def test_an_interpolated_schedule_moves_between_entries_after_the_first() -> None:
    schedule = LossSchedule([(10, [1, 0]), (20, [0, 1])], total_steps=100, interpolate=True)
    assert schedule.weights(5) == [1, 0]
    assert schedule.weights(15) == pytest.approx([0.5, 0.5])
    assert schedule.weights(20) == [0, 1]


def test_adaptation_lowers_its_loss_on_a_fixture_pair(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'start.safetensors', 'costnet')
    pairs = pseudo_labelled_dataset(_pairs_folder(tmp_path, 1), 24)
    trainer = AdaptTrainer(_tiny_config(tmp_path, weights, 12, holdout_every=0), pairs,
                           device='cpu', progress=False)
    batch = _crop_batch(pairs, np.random.default_rng(0), 1, (64, 128), 16)
    trainer.model.eval()
    with torch.no_grad():
        before, _ = trainer.real_loss(batch)
    trainer.run()
    trainer.model.eval()
    with torch.no_grad():
        after, terms = trainer.real_loss(batch)
    assert float(after) < 0.9 * float(before)
    assert set(terms) == {'photo', 'smooth', 'pseudo_epe'}
    assert (tmp_path / 'run' / 'curves.png').is_file()


@pytest.mark.parametrize('keep', [True, False])
def test_adaptation_keeps_the_batch_norm_statistics_of_its_weights(tmp_path: Path,
                                                                   keep: bool) -> None:
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'start.safetensors', 'costnet')
    pairs = pseudo_labelled_dataset(_pairs_folder(tmp_path, 1), 24)
    trainer = AdaptTrainer(_tiny_config(tmp_path, weights, 3, holdout_every=0,
                                        keep_batch_norm_statistics=keep),
                           pairs, device='cpu', progress=False)

    def statistics() -> list[torch.Tensor]:
        return [buffer.clone() for name, buffer in trainer.model.named_buffers()
                if name.endswith(('running_mean', 'running_var'))]
    before = statistics()
    trainer.run()
    unchanged = [torch.equal(a, b) for a, b in zip(before, statistics())]
    assert len(unchanged) > 5
    # Kept: every layer's statistics as loaded; else the small batches replace them.
    assert all(unchanged) if keep else not any(unchanged)


def test_adaptation_crops_fit_the_network_divisor(tmp_path: Path) -> None:
    # DispNet needs sides divisible by 64: a 100x150 pair gives 64x128 crops, and a network
    # of divisor 64 adapts on it (its held-out loss is of the largest such crop).
    pairs = pseudo_labelled_dataset(_pairs_folder(tmp_path, 2, (100, 150)), 24)
    rng = np.random.default_rng(0)
    assert _crop_batch(pairs, rng, 2, (256, 512), 64)['left'].shape == (2, 3, 64, 128)
    assert _crop_batch(pairs, rng, 1, (72, 512), 16)['disparity'].shape == (1, 1, 64, 144)
    with pytest.raises(ConfigError, match='divisor 128'):
        _crop_batch(pairs, rng, 1, (256, 512), 128)
    config = from_dict(TrainConfig, {
        'name': 'adapt_dispnet', 'backend': 'dispnet', 'seed': 1,
        'data': {'sources': [{'kind': 'synthetic', 'height': 64, 'width': 128,
                              'max_disparity': 24}]},
        'model': {'architecture': TINY['dispnet'], 'loss': {
            'schedule': [{'at': 0, 'weights': [0, 0, 0, 0, 0.5, 1]}]}},
        'optimization': {'steps': 1, 'batch_size': 1, 'warmup_steps': 0},
        'evaluation': {'every': 0, 'num_scenes': 0},
        'output': {'out_dir': str(tmp_path / 'run')},
        'adaptation': {'crop': [256, 512], 'batch_size': 1, 'holdout_every': 2}})
    trainer = AdaptTrainer(config, pairs, device='cpu', progress=False)
    assert trainer.run().step == 1
    assert set(trainer.held_out_losses()) == {'photo', 'smooth', 'pseudo_epe'}


@pytest.mark.parametrize('scoring', ['epe', 'network'])
def test_quantized_regression_bins_learn_from_pseudo_labels_by_the_network_loss(
        tmp_path: Path, scoring: str) -> None:
    # DispNet-QR decodes by argmax: the error of the decoded disparity gives its bin
    # classifier no gradient; its own training loss against the pseudo-labels does.
    torch.manual_seed(0)
    weights = save_weights(backend_record('dispnet_qr').network(**TINY['dispnet_qr']),
                           tmp_path / 'start.safetensors', 'dispnet_qr')
    config = from_dict(TrainConfig, {
        'name': 'adapt_qr', 'backend': 'dispnet_qr', 'seed': 1,
        'data': {'sources': [{'kind': 'synthetic', 'height': 64, 'width': 128,
                              'max_disparity': 24}]},
        'model': {'architecture': TINY['dispnet_qr'], 'init_weights': str(weights),
                  'loss': {'kind': 'quantized_regression', 'ce_weight': 1.0}},
        'optimization': {'steps': 1, 'batch_size': 1, 'warmup_steps': 0},
        'evaluation': {'every': 0, 'num_scenes': 0},
        'output': {'out_dir': str(tmp_path / 'run')},
        'adaptation': {'crop': [64, 128], 'batch_size': 1, 'holdout_every': 0,
                       'pseudo_label_loss': scoring}})
    pairs = pseudo_labelled_dataset(_pairs_folder(tmp_path, 1), 24)
    trainer = AdaptTrainer(config, pairs, device='cpu', progress=False)
    loss, terms = trainer.real_loss(_crop_batch(pairs, np.random.default_rng(0), 1,
                                                (64, 128), 64))
    loss.backward()
    gradient = trainer.model.classifier.weight.grad
    learns = gradient is not None and float(gradient.abs().sum()) > 0
    assert learns == (scoring == 'network')
    assert ('pseudo_loss' in terms) == (scoring == 'network') and 'pseudo_epe' in terms
    with pytest.raises(ConfigError, match='pseudo_label_loss must be epe or network'):
        validate(from_dict(TrainConfig, {**config.to_dict(),
                                         'adaptation': {'pseudo_label_loss': 'l2'}}))


def test_adapt_command_writes_weights_curves_and_before_after(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'start.safetensors', 'costnet')
    config = _tiny_config(tmp_path, weights, 2, holdout_every=2)
    import yaml
    path = tmp_path / 'adapt.yaml'
    path.write_text(yaml.safe_dump(config.to_dict()))
    pairs = _pairs_folder(tmp_path)
    command = ['adapt', '--config', str(path), '--pairs', str(pairs), '--weights', str(weights),
               '--device', 'cpu', '--no-progress']
    # The shipped costnet labels the pairs (a stronger network teaching this one).
    code = main([*command, '--out-dir', str(tmp_path / 'out'), '--export', '',
                 '--labeller', 'costnet', '--seed', '5'])
    assert code == 0
    out = capsys.readouterr().out
    assert 'adapted 2 steps' in out
    assert (tmp_path / 'out' / 'costnet.safetensors').is_file()
    assert (tmp_path / 'out' / 'adaptation.json').is_file()
    assert len(list((tmp_path / 'out' / 'before_after').glob('*.png'))) == 2
    training = read_metadata(tmp_path / 'out' / 'costnet.safetensors').extra['training']
    data = json.loads(training)['data']
    assert json.loads(training)['config']['seed'] == 5  # --seed: a second round's new crops
    # The card can say how the run was started, flags included.
    assert json.loads(training)['invocation'] == shlex.join(
        ['stereo-depth', *command, '--out-dir', str(tmp_path / 'out'), '--export', '',
         '--labeller', 'costnet', '--seed', '5'])
    assert f'adapted on 1 real pair at {pairs} (1 held out; labels: costnet,' in data
    card = build_card(tmp_path / 'out' / 'costnet.safetensors')
    assert card['training']['command'].startswith('stereo-depth adapt ')
    # The run folder's checkpoint is continued with --resume (the hint of an interrupt),
    # and is not silently restarted without it.
    again = [*command, '--out-dir', str(tmp_path / 'out'), '--export', '', '--steps', '3']
    assert main(again) == 2
    assert 'already holds a checkpoint; pass --resume' in capsys.readouterr().err
    assert main([*again, '--resume']) == 0
    history = json.loads((tmp_path / 'out' / 'history.json').read_text())
    assert [entry['step'] for entry in history['train']] == [1, 2, 3]  # 1-2, then only 3
    resumed = capsys.readouterr().out
    assert 'adapted 3 steps' in resumed and 'at step 2' in resumed  # not a fresh 3-step run
    # Too few pairs for one to be held out: it runs, and says there is nothing to compare by.
    lone = tmp_path / 'lone.yaml'
    lone.write_text(yaml.safe_dump(_tiny_config(tmp_path, weights, 1, holdout_every=8)
                                   .to_dict()))
    assert main(['adapt', '--config', str(lone), '--pairs', str(pairs), '--weights',
                 str(weights), '--device', 'cpu', '--no-progress', '--export', '',
                 '--out-dir', str(tmp_path / 'lone')]) == 0
    assert ('warning: no pair is held out (there are 2 pairs and one in 8 is held out; give 8 '
            'or more)') in capsys.readouterr().out
    assert not (tmp_path / 'lone' / 'adaptation.json').exists()
    # Bad input: one line, exit 2, before any work (no run folder).
    for bad in (['--pairs', str(tmp_path / 'none')], ['--labeller', 'nonet'],
                ['--labeller', 'sgbm', '--labeller-weights', str(weights)],
                ['--labeller', 'costnet', '--labeller-weights', str(tmp_path / 'no.st')]):
        arguments = [*command, '--out-dir', str(tmp_path / 'bad'), *bad]
        assert main(arguments) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / 'bad').exists()


def test_inference_scale_widens_the_range_and_keeps_the_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = save_weights(backend_record('dispnet').network(**TINY['dispnet']),
                        tmp_path / 'w.safetensors', 'dispnet')
    half = create_backend('dispnet', weights=path, device='cpu', scale=0.5, near_scale=0)
    assert half.max_disparity == 128 and 'scale 0.5' in half.describe()
    both = create_backend('dispnet', weights=path, device='cpu', scale=0.5, near_scale=0.5)
    assert both.max_disparity == 256 and 'near pass x0.5' in both.describe()
    left = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    assert half.compute(left, left).shape == (60, 90)
    for bad in (0, 1.5, 'x'):
        with pytest.raises(BackendError, match='scale must be'):
            create_backend('dispnet', weights=path, device='cpu', scale=bad)


def test_bf16_on_a_cpu_where_it_is_slow_is_warned_about(monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch_runtime, 'cpu_bf16_slowdown', lambda: 20.0)
    cpu = torch.device('cpu')
    assert torch_runtime.resolve_precision(None, cpu) == 'fp32'
    assert torch_runtime.resolve_precision('auto', cpu) == 'fp32'
    with caplog.at_level(logging.WARNING):
        assert torch_runtime.resolve_precision('bf16', cpu) == 'bf16'
    assert '20.0x slower than fp32' in caplog.text
    caplog.clear()
    monkeypatch.setattr(torch_runtime, 'cpu_bf16_slowdown', lambda: 0.7)
    with caplog.at_level(logging.WARNING):
        torch_runtime.resolve_precision('bf16', cpu)
    assert caplog.text == ''


def test_pairs_are_extracted_from_a_bag(tmp_path: Path) -> None:
    from stereo_depth_ros.bags import kitti_to_bag
    from stereo_depth_ros.bags.extract import extract_pairs
    from stereo_depth_ros.camera import StereoCameraModel
    from stereo_depth_ros.kitti import write_raw_drive
    rng = np.random.default_rng(8)
    lefts = [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8) for _ in range(5)]
    rights = [np.roll(left, -3, axis=1) for left in lefts]
    camera = StereoCameraModel(80, 48, 60.0, 60.0, 39.5, 39.5, 23.5, 0.2)
    stamps = [1_000_000_000 + i * 100_000_000 for i in range(5)]
    drive = write_raw_drive(tmp_path / 'kitti', lefts, rights, camera, stamps)
    bag = tmp_path / 'bag'
    kitti_to_bag(drive, bag, progress=False)
    count = extract_pairs(bag, tmp_path / 'pairs', every=2, progress=False)
    assert count == 3  # pairs 0, 2 and 4
    saved = cv2.imread(str(tmp_path / 'pairs' / '00001' / 'left.png'))[:, :, ::-1]
    np.testing.assert_array_equal(saved, lefts[2])
    with pytest.raises(DatasetError, match='every'):
        extract_pairs(bag, tmp_path / 'none', every=0, progress=False)
    # adapt --left-image names the topic; a wrong one lists the bag's topics.
    with pytest.raises(DatasetError, match='--left-image /nope: no such topic in the bag'):
        extract_pairs(bag, tmp_path / 'none', left_topic='/nope', progress=False)
    config = Path(__file__).resolve().parents[1] / 'config' / 'adapt_costnet.yaml'
    assert main(['adapt', '--bag', str(bag), '--left-image', '/nope', '--config', str(config),
                 '--out-dir', str(tmp_path / 'bad')]) == 2
    assert main(['adapt', '--pairs', str(tmp_path / 'pairs'), '--left-image', '/cam/left',
                 '--config', str(config), '--out-dir', str(tmp_path / 'bad')]) == 2
    # A named topic is taken as given.
    from stereo_depth_ros.bags import BagInput, find_stereo_images
    with BagInput(bag) as reader:
        left_topic, right_topic = find_stereo_images(reader.topics)
    assert extract_pairs(bag, tmp_path / 'named', every=2, left_topic=left_topic,
                         right_topic=right_topic, progress=False) == 3


def test_a_bag_with_jittered_stamps_needs_and_gets_approximate_sync(tmp_path: Path) -> None:
    from bad_input_helpers import write_stereo_bag
    from stereo_depth_ros.bags.extract import extract_pairs
    bag = write_stereo_bag(tmp_path / 'bag', frames=4, right_offset_ns=2_000_000)  # +2 ms
    # Exact sync pairs nothing; the line says how far apart the stamps are and what helps.
    with pytest.raises(DatasetError, match=r'never matched: the closest set spans 0\.002000 s.*'
                                           r'--approximate-sync \(slop 0\.02 s\) would pair '
                                           r'about 4 of 4'):
        extract_pairs(bag, tmp_path / 'exact', progress=False)
    assert extract_pairs(bag, tmp_path / 'approx', slop=0.05, progress=False) == 4
    # Too small a slop says so.
    with pytest.raises(DatasetError, match=r'above --slop 0\.001 s: raise it'):
        extract_pairs(bag, tmp_path / 'tight', slop=0.001, progress=False)
    config = Path(__file__).resolve().parents[1] / 'config' / 'adapt_costnet.yaml'
    assert main(['adapt', '--pairs', str(tmp_path / 'approx'), '--approximate-sync',
                 '--config', str(config), '--out-dir', str(tmp_path / 'bad')]) == 2


def test_pairs_that_match_but_cannot_be_decoded_are_explained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bad_input_helpers import write_stereo_bag
    from stereo_depth_ros.bags import extract
    from stereo_depth_ros.errors import ImageFormatError

    def undecodable(message, *args):
        raise ImageFormatError('unsupported encoding yuv422')

    monkeypatch.setattr(extract, 'stereo_input_from_message', undecodable)
    bag = write_stereo_bag(tmp_path / 'bag', frames=3)
    with pytest.raises(DatasetError, match=r'3 pairs matched on .*, none could be decoded '
                                           r'\(first: unsupported encoding yuv422\)'):
        extract.extract_pairs(bag, tmp_path / 'pairs', progress=False)


def test_adapt_hands_its_sync_options_to_the_extraction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stereo_depth_ros.bags import extract
    calls = []

    def stop(bag, out, **options):  # record, then end the command before any training
        calls.append(options['slop'])
        raise DatasetError('stopped here')

    monkeypatch.setattr(extract, 'extract_pairs', stop)
    config = Path(__file__).resolve().parents[1] / 'config' / 'adapt_costnet.yaml'
    # The config's photo folder, ~/.cache/stereo_depth_ros/photos, with one photograph.
    photos = tmp_path / 'home' / '.cache' / 'stereo_depth_ros' / 'photos'
    photos.mkdir(parents=True)
    cv2.imwrite(str(photos / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    argv = ['adapt', '--bag', str(tmp_path), '--config', str(config), '--out-dir',
            str(tmp_path / 'run')]
    assert main(argv) == 2
    assert main([*argv, '--approximate-sync']) == 2
    assert main([*argv, '--approximate-sync', '--slop', '0.04']) == 2
    assert calls == [None, 0.02, 0.04]


def test_adapt_refuses_bad_settings_before_extracting_pairs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from stereo_depth_ros.bags import extract
    from stereo_depth_ros.training.trainer import run_checkpoint_prefix

    def extracted(*args, **options):
        raise AssertionError('pairs extracted before the settings were checked')

    monkeypatch.setattr(extract, 'extract_pairs', extracted)
    monkeypatch.setenv('HOME', str(tmp_path / 'empty_home'))  # no photo cache there
    config = Path(__file__).resolve().parents[1] / 'config' / 'adapt_costnet.yaml'
    argv = ['adapt', '--bag', str(tmp_path), '--config', str(config), '--out-dir',
            str(tmp_path / 'run')]
    assert main([*argv, '--steps', '0']) == 2
    assert 'steps must be > 0, got 0' in capsys.readouterr().err
    assert main(argv) == 2
    assert 'photo folder' in capsys.readouterr().err
    photos = tmp_path / 'empty_home' / '.cache' / 'stereo_depth_ros' / 'photos'
    photos.mkdir(parents=True)
    cv2.imwrite(str(photos / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    prefix = run_checkpoint_prefix(tmp_path / 'run')
    prefix.parent.mkdir()
    prefix.with_suffix('.safetensors').write_bytes(b'')  # an earlier run's checkpoint
    assert main(argv) == 2
    assert 'already holds a checkpoint; pass --resume' in capsys.readouterr().err
    assert not (tmp_path / 'run' / 'pairs').exists()


class _ConstantNet(StereoNet):
    """Predicts a fixed disparity map (to score the selection metrics against)."""

    divisor = 1

    def __init__(self, disparity: np.ndarray) -> None:
        super().__init__(max_disparity=64)
        self.disparity = torch.from_numpy(disparity.astype(np.float32))[None, None]

    def predict(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.disparity


def test_selection_scores_prefer_the_true_disparity() -> None:
    scene = make_scene(3, 64, 128, 'layered', max_disparity=24)
    sample = StereoSample('s', scene.left, scene.right, scene.disparity)
    truth = score_pairs(_ConstantNet(np.nan_to_num(scene.disparity)), [sample])
    zero = score_pairs(_ConstantNet(np.zeros_like(scene.disparity)), [sample])
    assert truth['pseudo_epe'] < 0.01 and truth['pseudo_bad2'] == 0.0
    assert zero['pseudo_epe'] > 3 and zero['pseudo_bad2'] > 0.5
    assert truth['photometric'] < zero['photometric']
    samples = [StereoSample(str(i), scene.left, scene.right, scene.disparity) for i in range(17)]
    assert [s.name for s in selection_pairs(samples)] == ['7', '15', '0', '4', '9', '13']
    assert [s.name for s in training_pairs(samples)] == [
        '1', '2', '3', '5', '6', '8', '10', '11', '12', '14', '16']


def test_selection_scores_split_the_pseudo_label_errors_by_band() -> None:
    scene = make_scene(5, 64, 256, 'layered', max_disparity=120)
    sample = StereoSample('s', scene.left, scene.right, scene.disparity)
    truth = np.nan_to_num(scene.disparity)
    labelled = truth[np.isfinite(scene.disparity)]
    assert (labelled < 32).any() and (labelled >= 64).any()  # bands on both sides
    # 5 px too far wherever the label is 64 px or more, exact below.
    scores = score_pairs(_ConstantNet(np.where(truth >= 64, truth + 5, truth)), [sample])
    assert scores['pseudo_bad2_0_32'] == 0.0 and scores['pseudo_bad2_64_128'] == 1.0
    assert scores['pseudo_bad2'] == pytest.approx((labelled >= 64).mean(), abs=1e-6)
    # Two pairs: the second labels only 100 pixels of 32-64 px, all wrong. Pooled over pixels
    # that band is 100 / (its pixels in both), not the mean of the pairs' shares.
    sparse = np.full_like(scene.disparity, np.nan)
    middle = np.flatnonzero((scene.disparity >= 32) & (scene.disparity < 64))
    assert middle.size > 100
    sparse.flat[middle[:100]] = scene.disparity.flat[middle[:100]] + 5
    pair = StereoSample('sparse', scene.left, scene.right, sparse)
    both = score_pairs(_ConstantNet(np.where(truth >= 64, truth + 5, truth)), [sample, pair])
    assert both['pseudo_pixels_32_64'] == middle.size + 100
    assert both['pseudo_bad2_32_64'] == pytest.approx(100 / (middle.size + 100))
    assert np.isnan(scores['pseudo_bad2_128_256'])  # no label there
    assert scores['pseudo_pixels_128_256'] == 0 and scores['pseudo_pixels_64_128'] == (
        (labelled >= 64) & (labelled < 128)).sum()


def test_a_pseudo_source_can_leave_out_the_selection_pairs(tmp_path: Path) -> None:
    from stereo_depth_ros.training.config import SourceConfig
    from stereo_depth_ros.training.sources import build_source
    root = _pairs_folder(tmp_path, 9)
    everything = build_source(SourceConfig(kind='pseudo', root=str(root)), seed=0)
    held_out = build_source(SourceConfig(kind='pseudo', root=str(root),
                                         hold_out_selection=True), seed=0)
    names = [sample.name for sample in everything.dataset]
    judged = [sample.name for sample in selection_pairs(everything.dataset)]
    assert len(names) == 9 and judged == ['pair7', 'pair0', 'pair4']
    assert [sample.name for sample in held_out.dataset] == [
        name for name in names if name not in judged]


def test_a_pseudo_source_takes_its_labels_from_the_labeller(tmp_path: Path) -> None:
    from stereo_depth_ros.training.config import SourceConfig
    from stereo_depth_ros.training.pseudo_labels import make_labeller
    from stereo_depth_ros.training.sources import build_source
    root = _pairs_folder(tmp_path, 1)
    source = build_source(SourceConfig(kind='pseudo', root=str(root), max_disparity=32,
                                       labeller='costnet'), seed=0)
    sample = source.dataset[0]
    taught = make_labeller(32.0, 'costnet')(sample.left, sample.right)
    assert np.array_equal(sample.disparity, taught, equal_nan=True)
    sgbm = make_labeller(32.0)(sample.left, sample.right)
    assert np.isfinite(taught).sum() > np.isfinite(sgbm).sum()  # denser than SGBM's


def test_selection_command_scores_weights_files(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'tiny.safetensors', 'costnet')
    assert selection_main([str(weights), '--pairs', str(_pairs_folder(tmp_path, 3))]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if 'tiny.safetensors' in line]
    assert len(row) == 1 and row[0].endswith('%')
    assert selection_main([str(weights), '--pairs', str(tmp_path / 'pairs'), '--bands']) == 0
    bands = [line for line in capsys.readouterr().out.splitlines() if 'by band' in line]
    assert len(bands) == 1 and '0-32 px ' in bands[0] and '128-256 px - of 0, ' in bands[0]
    assert bands[0].endswith('256+ px - of 0')
    assert selection_main([str(weights), '--pairs', str(tmp_path / 'none')]) == 2


def test_full_range_scores_count_large_disparities_apart() -> None:
    scene = make_scene(5, 64, 256, 'layered', max_disparity=120)
    sample = StereoSample('s', scene.left, scene.right, scene.disparity)
    truth = np.nan_to_num(scene.disparity)
    exact = score_full_range(_ConstantNet(truth), [sample])
    assert exact['epe'] < 1e-4 and exact['bad2'] == 0.0 and exact['bad3_large'] == 0.0
    # 5 px too far wherever the true disparity is 64 px or more, exact below.
    far_wrong = score_full_range(_ConstantNet(np.where(truth >= 64, truth + 5, truth)), [sample])
    large = truth[np.isfinite(scene.disparity)] >= 64
    assert far_wrong['bad3_large'] == 1.0
    assert far_wrong['bad2'] == pytest.approx(large.mean(), abs=1e-6)
    # Non-finite predictions count as wrong, not as missing.
    broken = score_full_range(_ConstantNet(np.full_like(truth, np.nan)), [sample])
    assert broken['bad2'] > 0.9 and np.isfinite(broken['epe'])


def test_full_range_scores_without_large_disparities_are_nan_quietly() -> None:
    scene = make_scene(5, 64, 256, 'layered', max_disparity=40)
    sample = StereoSample('s', scene.left, scene.right, scene.disparity)
    truth = np.nan_to_num(scene.disparity)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # numpy's "mean of empty slice"
        scores = score_full_range(_ConstantNet(truth), [sample, sample])
    assert np.isnan(scores['bad3_large']) and scores['bad2'] == 0.0
    assert _synthetic_columns(scores).split() == ['0.00', '0.0%', '-']


def test_full_range_scenes_can_start_after_the_first_ones() -> None:
    first_four = full_range_scenes(4, ['layered'])
    later = full_range_scenes(2, ['layered'], start=2)
    assert [scene.name for scene in later] == [scene.name for scene in first_four[2:]]
    for scene, same in zip(later, first_four[2:]):
        np.testing.assert_array_equal(scene.disparity, same.disparity)
    assert later[0].name != first_four[0].name


def test_full_range_scenes_through_a_lens_are_darker_at_the_corners_and_repeat() -> None:
    scenes = full_range_scenes(1, ['layered'])
    seen = through_lens(scenes, 0.5, 3.0)
    assert through_lens(scenes, 0.5, 3.0)[0].left.tobytes() == seen[0].left.tobytes()
    np.testing.assert_array_equal(seen[0].disparity, scenes[0].disparity)
    for original, changed in ((scenes[0].left, seen[0].left), (scenes[0].right, seen[0].right)):
        assert changed.dtype == np.uint8 and changed.shape == original.shape
        corner = changed[:40, :40].astype(float).mean() / original[:40, :40].astype(float).mean()
        middle = (changed[172:212, 604:644].astype(float).mean()
                  / original[172:212, 604:644].astype(float).mean())
        assert corner < 0.6 and middle > 0.97
    noisy = through_lens(scenes, 0.0, 3.0)[0].left.astype(float) - scenes[0].left
    assert 2.5 < noisy.std() < 3.5
    # The noise comes after the lens: as strong in the dark corners as in the middle.
    corner = seen[0].left[:20, :20] - vignette(scenes[0].left, 0.5)[:20, :20]
    assert 2.5 < corner.std() < 3.5


def test_selection_refuses_a_lens_without_synthetic_scenes(tmp_path: Path, capsys) -> None:
    for noise in ('nan', 'inf', '-1'):
        assert selection_main([str(tmp_path / 'missing.safetensors'), '--synthetic', '1',
                               '--noise', noise]) == 2
        assert capsys.readouterr().err.strip().endswith(f'got 0 and {float(noise):g}')
    assert selection_main([str(tmp_path / 'missing.safetensors'), '--vignetting', '0.5']) == 2
    assert capsys.readouterr().err.strip() == ('selection: --vignetting and --noise change '
                                               'the full-range scenes: they need --synthetic N')
    assert selection_main([str(tmp_path / 'missing.safetensors'), '--synthetic', '1',
                           '--vignetting', '1']) == 2
    assert capsys.readouterr().err.strip() == ('selection: --vignetting must be in [0, 1) and '
                                               '--noise a number >= 0, got 1 and 0')


@pytest.mark.parametrize('count, start', [('1', '-1'), ('12', '99590')])
def test_selection_refuses_a_start_outside_the_validation_seeds(
        tmp_path: Path, capsys, count, start) -> None:
    # 99,590 + 12 scenes after seed 1,000,400 would reach the test seeds (1,100,000 on).
    assert selection_main([str(tmp_path / 'missing.safetensors'), '--synthetic', count,
                           '--synthetic-start', start]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f'selection: --synthetic-start {start} with {count} scenes: the '
                     'validation scenes are 1000400-1099999, so start must be 0 to '
                     f'{99600 - int(count)} (the seeds above are the test scenes)']


def test_selection_command_scores_full_range_scenes_with_the_near_pass(
        tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'tiny.safetensors', 'costnet')
    assert selection_main([str(weights), '--pairs', str(_pairs_folder(tmp_path, 3)),
                           '--synthetic', '1', '--synthetic-kinds', 'layered',
                           '--near-scale', '0.5']) == 0
    out = capsys.readouterr().out
    assert '1 full-range validation scenes (layered, seeds from 1000400)' in out
    row = [line for line in out.splitlines() if 'tiny.safetensors' in line]
    assert len(row) == 1 and len(row[0].split()) == 7 and row[0].endswith('%')
    assert selection_main([str(weights), '--pairs', str(tmp_path / 'pairs'), '--synthetic', '1',
                           '--synthetic-kinds', 'layered', '--visibility']) == 0
    out = capsys.readouterr().out
    split = [line for line in out.splitlines() if 'where the right camera sees' in line]
    assert len(split) == 1 and 'pixels of all scenes pooled' in split[0]
    assert selection_main([str(weights), '--pairs', str(tmp_path / 'pairs'),
                           '--visibility']) == 2
    assert capsys.readouterr().err.strip() == ('selection: --visibility splits the full-range '
                                               'scores: it needs --synthetic N')
    # The near options are checked as the backends' are: one line, exit code 2.
    assert selection_main([str(weights), '--pairs', str(tmp_path / 'pairs'),
                           '--near-scale', '0.9']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith('selection: ') and 'near_scale' in error[0]


def test_selection_command_passes_match_passes_on(tmp_path: Path, capsys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from stereo_depth_ros.networks import inference
    calls: list[int] = []
    choose = inference.choose_by_matching

    def counted(*args: Any) -> Any:
        calls.append(1)
        return choose(*args)

    monkeypatch.setattr(inference, 'choose_by_matching', counted)
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'tiny.safetensors', 'costnet')
    pairs = str(_pairs_folder(tmp_path, 3))
    base = [str(weights), '--pairs', pairs, '--near-scale', '0.5']
    assert selection_main(base) == 0 and not calls  # never, unless asked for
    assert selection_main(base + ['--match-passes', 'auto']) == 0
    scored = len(calls)
    assert scored >= 1  # costnet's own choice: once per scored pair
    capsys.readouterr()
    assert selection_main([str(weights), '--pairs', pairs, '--match-passes', 'always']) == 0
    assert 'nothing to choose between' in capsys.readouterr().err and len(calls) == scored
    with pytest.raises(SystemExit) as refused:  # argparse: 'off' is not one of the words
        selection_main(base + ['--match-passes', 'off'])
    assert refused.value.code == 2


def test_sgbm_is_scored_as_the_baseline_with_its_holes_filled(tmp_path: Path, capsys) -> None:
    scene = make_scene(4, 128, 320, 'layered', max_disparity=96)
    assert (scene.disparity >= 64).any()  # bad-3 at >= 64 px is scored too
    sample = StereoSample('s', scene.left, scene.right, scene.disparity)
    (_, disparity), = list(sgbm_predictions([sample]))
    assert disparity.shape == (1, 1, 128, 320) and torch.isfinite(disparity).all()
    sgbm = score_full_range_predictions([(sample, disparity)])
    truth = torch.from_numpy(scene.disparity.astype(np.float32))[None, None]
    perfect = score_full_range_predictions([(sample, truth)])['pooled']
    assert perfect['bad3_large'] == 0 and perfect['bad3_large_unseen'] == 0
    assert 0 < perfect['unseen_large_share'] < 1
    zero = score_full_range(_ConstantNet(np.zeros_like(scene.disparity)), [sample])
    assert sgbm['epe'] < 0.5 * zero['epe'] and sgbm['bad2'] < zero['bad2']
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'tiny.safetensors', 'costnet')
    assert selection_main([str(weights), '--pairs', str(_pairs_folder(tmp_path, 3)),
                           '--synthetic', '1', '--synthetic-kinds', 'layered', '--sgbm']) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith('sgbm (defaults)')]
    assert len(rows) == 1 and rows[0][3:5] == ['-', '-'] and rows[0][-1].endswith('%')
    assert len(rows[0]) == 8  # name (2 words), photometric, 2 x '-', EPE, bad-2, bad-3


def test_pairs_that_look_swapped_or_misaligned_are_warned_about():
    scene = make_scene(5, 192, 384, 'layered', max_disparity=32)

    def low(rows):  # the right view `rows` px lower
        return np.roll(scene.right, rows, axis=0)

    pairs = [StereoSample('good', scene.left, scene.right, None),
             StereoSample('first', scene.right, scene.left, None),
             StereoSample('low3', scene.left, low(3), None),
             StereoSample('low6', scene.left, low(6), None),
             StereoSample('second', scene.right, scene.left, None),
             StereoSample('low2', scene.left, low(2), None)]
    lines = pair_warnings(pairs)
    assert len(lines) == 2
    assert lines[0].startswith('warning: 2 of 6 pairs (first: first): left and right look '
                               'swapped')
    assert lines[1].startswith('warning: 3 of 6 pairs have rows of the right image 1 px')
    assert '(worst: low6, up to 6.' in lines[1]
    assert pair_warnings(pairs[:1]) == []
    # Most pairs swapped is the camera's topics or files exchanged: refused, not warned.
    with pytest.raises(DatasetError, match=r'^2 of 3 pairs \(first: first\): left and right '
                       r'look swapped.*: with most pairs so, adapting would teach'):
        pair_warnings([pairs[1], pairs[0], pairs[4]])


def _tiny_run(tmp_path: Path) -> tuple[Path, Path]:
    """Tiny costnet start weights and a 1-step adaptation config using them, as files."""
    torch.manual_seed(0)
    weights = save_weights(backend_record('costnet').network(**TINY['costnet']),
                           tmp_path / 'start.safetensors', 'costnet')
    config = tmp_path / 'adapt.yaml'
    config.write_text(yaml.safe_dump(_tiny_config(tmp_path, weights, 1, holdout_every=2)
                                     .to_dict()))
    return weights, config


def test_adapt_prints_the_pair_warnings(tmp_path: Path, capsys) -> None:
    weights, config = _tiny_run(tmp_path)
    pairs = _pairs_folder(tmp_path, 2, size=(128, 256))
    left, right = pairs / 'pair1' / 'left.png', pairs / 'pair1' / 'right.png'
    left_bytes, right_bytes = left.read_bytes(), right.read_bytes()
    left.write_bytes(right_bytes)  # pair1 exchanged
    right.write_bytes(left_bytes)
    (pairs / 'half').mkdir()
    (pairs / 'half' / 'left.png').write_bytes(left_bytes)  # no right.png: left out, named
    assert main(['adapt', '--config', str(config), '--pairs', str(pairs), '--weights',
                 str(weights), '--device', 'cpu', '--no-progress', '--export', '',
                 '--out-dir', str(tmp_path / 'out')]) == 0
    printed = capsys.readouterr()
    assert 'warning: 1 of 2 pairs (first: pair1): left and right look swapped' in printed.out
    assert (f'warning: 1 folder(s) under {pairs} hold only one of left.png and right.png and '
            f'are left out (first: {pairs / "half"})') in printed.err


def _bag_adaptation(tmp_path: Path) -> tuple[list, Path, Path, list[str]]:
    """A 2-frame bag, tiny start weights and config; (scenes, bag, run folder, adapt argv)."""
    from stereo_depth_ros.bags import kitti_to_bag
    from stereo_depth_ros.camera import StereoCameraModel
    from stereo_depth_ros.kitti import write_raw_drive
    scenes = [make_scene(seed, 64, 128, 'layered', max_disparity=24) for seed in range(2)]
    camera = StereoCameraModel(128, 64, 100.0, 100.0, 63.5, 63.5, 31.5, 0.2)
    stamps = [1_000_000_000 + i * 100_000_000 for i in range(2)]
    drive = write_raw_drive(tmp_path / 'kitti', [s.left for s in scenes],
                            [s.right for s in scenes], camera, stamps)
    bag = tmp_path / 'bag'
    kitti_to_bag(drive, bag, progress=False)
    weights, config = _tiny_run(tmp_path)
    out = tmp_path / 'out'
    command = ['adapt', '--config', str(config), '--bag', str(bag), '--bag-every', '1',
               '--weights', str(weights), '--device', 'cpu', '--no-progress', '--export', '',
               '--out-dir', str(out)]
    return scenes, bag, out, command


def test_adapt_from_a_12_bit_camera_s_bag_warns_and_takes_its_bit_depth(
        tmp_path: Path, capsys) -> None:
    # Extracted over 16 bits, a 12-bit sensor's pairs keep 4 bits of grey: a network adapted
    # on them would learn from images darker than the node will give it.
    import argparse
    from bad_input_helpers import write_stereo_bag
    from stereo_depth_ros.commands.adapt import _bag_pairs
    bag = write_stereo_bag(tmp_path / 'bag', frames=2, encoding='mono12')
    args = argparse.Namespace(bag=str(bag), bag_every=1, approximate_sync=False, slop=None,
                              left_image=None, right_image=None, no_progress=True,
                              mono16_bit_depth=None)
    pairs = _bag_pairs(args, tmp_path / 'dark', resumed=False)
    assert 'warning: 16-bit images that use few of their bits' in capsys.readouterr().err
    assert cv2.imread(str(pairs / '00000' / 'left.png')).max() < 16
    args.mono16_bit_depth = 12
    pairs = _bag_pairs(args, tmp_path / 'full', resumed=False)
    assert 'warning' not in capsys.readouterr().err
    assert cv2.imread(str(pairs / '00000' / 'left.png')).max() > 200


@pytest.mark.parametrize('flag', [['--left-image', '/l'], ['--approximate-sync'],
                                  ['--bag-every', '2']])
def test_bag_flags_without_a_bag_are_refused(tmp_path: Path, capsys, flag) -> None:
    assert main(['adapt', '--config', 'config/adapt_costnet_fast.yaml', '--pairs',
                 str(tmp_path), '--out-dir', str(tmp_path / 'out'), *flag]) == 2
    error = capsys.readouterr().err
    assert 'apply to --bag; give --bag' in error and flag[0] in error
    assert not (tmp_path / 'out').exists()


def test_a_resume_on_the_same_bag_at_another_bit_depth_is_refused(
        tmp_path: Path, capsys) -> None:
    # Pairs extracted over 16 bits and over 12 are other pairs: --resume continues on its own.
    _, bag, out, command = _bag_adaptation(tmp_path)
    out.mkdir()
    (out / 'adapting_on.txt').write_text(f'--bag {bag.resolve()} --bag-every 1\n')
    assert main([*command, '--resume', '--mono16-bit-depth', '12']) == 2
    error = capsys.readouterr().err
    assert '--resume continues on those, not' in error and '--mono16-bit-depth 12' in error


def test_a_link_to_nothing_as_the_run_folder_is_named(tmp_path: Path, capsys) -> None:
    (tmp_path / 'run').symlink_to(tmp_path / 'gone')
    assert main(['adapt', '--config', 'config/adapt_costnet_fast.yaml', '--pairs',
                 str(tmp_path), '--out-dir', str(tmp_path / 'run')]) == 2
    assert f'--out-dir {tmp_path / "run"} is a link to nothing' in capsys.readouterr().err


def test_16_bit_pairs_of_a_12_bit_camera_are_named_and_read_over_their_bits(
        tmp_path: Path) -> None:
    # adapt --pairs on a 12-bit sensor's 16-bit PNGs: over 16 bits they keep 4 bits of grey.
    from stereo_depth_ros.training.pseudo_labels import pseudo_labelled_dataset
    scene = make_scene(3, 64, 128, 'layered', max_disparity=16)
    folder = tmp_path / 'pairs' / 'a'
    folder.mkdir(parents=True)
    for name, image in (('left.png', scene.left), ('right.png', scene.right)):
        cv2.imwrite(str(folder / name), image.astype(np.uint16) * 16)
    notes: list = []
    dark = pseudo_labelled_dataset(tmp_path / 'pairs', 32.0, progress=False, notes=notes)
    assert dark[0].left.max() <= 16 and len(notes) == 2
    assert '--mono16-bit-depth' in notes[0]
    notes.clear()
    full = pseudo_labelled_dataset(tmp_path / 'pairs', 32.0, progress=False, bit_depth=12,
                                   notes=notes)
    assert full[0].left.max() > 200 and notes == []


def config_of(command: list[str]) -> Path:
    """Return the --config file of an adapt command line."""
    return Path(command[command.index('--config') + 1])


def test_adapt_from_a_bag_trains_on_that_bag_only_and_checks_its_flags_first(
        tmp_path: Path, capsys) -> None:
    scenes, bag, out, command = _bag_adaptation(tmp_path)
    # Flags that would fail after training are refused before anything is extracted.
    mismatched = tmp_path / 'mismatched' / 'pair'
    mismatched.mkdir(parents=True)
    cv2.imwrite(str(mismatched / 'left.png'), scenes[0].left)
    cv2.imwrite(str(mismatched / 'right.png'), scenes[0].left[:32])
    for bad, why in ((['--figures-on', str(tmp_path / 'none')], 'is not a folder'),
                     (['--figures-on', str(mismatched.parent)],
                      'left is 128x64 but right is 128x32'),
                     (['--export', str(tmp_path)], 'is a folder')):
        assert main([*command, *bad]) == 2
        assert why in capsys.readouterr().err
        assert not out.exists()
    with pytest.raises(SystemExit):
        main([*command, '--seed', '-1'])
    assert "argument --seed: '-1' is not a whole number of at least 0" in capsys.readouterr().err
    # A pairs folder adapt did not extract is the user's: refused, kept.
    stale = out / 'pairs' / 'stale'
    stale.mkdir(parents=True)
    for name in ('left.png', 'right.png'):
        cv2.imwrite(str(stale / name), scenes[0].left)
    assert main(command) == 2
    assert 'holds files adapt did not extract' in capsys.readouterr().err
    assert (stale / 'left.png').is_file() and not (out / 'adapting_on.txt').exists()
    # Pairs an earlier run extracted (and marked) are not trained on: they are replaced.
    (out / 'pairs' / 'extracted_by_adapt.txt').write_text('an earlier bag\n')
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert 'extracted 2 pairs of /stereo/left/image_rect and /stereo/right/image_rect from ' \
        in printed and 'adapting on 1 pair under' in printed  # 2 - 1 held
    assert not stale.exists() and not (out / 'pairs.partial').exists()
    extracted = sorted(p.name for p in (out / 'pairs').iterdir())
    assert extracted == ['00000', '00001', 'extracted_by_adapt.txt']
    # A resumed run keeps its pairs, and refuses another bag or another --bag-every.
    other = tmp_path / 'other'
    shutil.copytree(bag, other)
    resumed = [*command, '--resume', '--steps', '2']
    assert main([*resumed[:4], str(other), *resumed[5:]]) == 2
    assert 'adapts on --bag' in capsys.readouterr().err
    every = resumed.index('--bag-every') + 1
    assert main([*resumed[:every], '2', *resumed[every + 1:]]) == 2
    assert 'adapts on --bag' in capsys.readouterr().err
    assert main(resumed) == 0
    assert 'resuming on the pairs extracted before' in capsys.readouterr().out
    # Resumed again with no step left: no held-out losses are recorded twice.
    data = yaml.safe_load(config_of(command).read_text())
    data['evaluation']['num_scenes'] = 1  # a final validation, on a synthetic scene too
    config_of(command).write_text(yaml.safe_dump(data))
    for _ in range(2):
        assert main([*resumed[:-1], '3']) == 0
        held = [record['step'] for record in json.loads((out / 'adaptation.json').read_text())]
        assert held == sorted(set(held)) and held[-1] == 3
        val = [record['step'] for record in json.loads((out / 'history.json').read_text())['val']]
        assert val == sorted(set(val)) and val[-1] == 3
    # Nor does it continue on a folder of pairs instead.
    pairs = _pairs_folder(tmp_path, 2)
    assert main([*resumed[:3], '--pairs', str(pairs), *resumed[7:]]) == 2
    assert f'not --pairs {pairs.resolve()}' in capsys.readouterr().err


def test_adapt_from_a_bag_never_mixes_in_pairs_of_another_run(
        tmp_path: Path, capsys, monkeypatch) -> None:
    from stereo_depth_ros.bags import extract
    scenes, bag, out, command = _bag_adaptation(tmp_path)
    other = tmp_path / 'other'
    shutil.copytree(bag, other)
    with pytest.raises(SystemExit):
        main([*command, '--bag-every', '0'])
    assert "argument --bag-every: '0' is not a whole number of at least 1" in \
        capsys.readouterr().err
    # An unusable device is refused before anything is extracted.
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert main([*command, '--device', 'cuda']) == 2
    assert 'CUDA is not available' in capsys.readouterr().err and not out.exists()
    monkeypatch.undo()
    # An interrupted extraction leaves no staging folder behind.
    real = extract.extract_pairs

    def interrupted(bag_path, out_dir, **options):
        real(bag_path, out_dir, **options)
        raise KeyboardInterrupt

    monkeypatch.setattr(extract, 'extract_pairs', interrupted)
    assert main(command) == 130
    assert not out.exists()  # the run made the folder and stopped before a checkpoint
    out.mkdir()
    assert main(command) == 130
    assert list(out.iterdir()) == []  # an existing folder: what the run wrote goes
    monkeypatch.undo()
    # A run that fails after extracting its pairs removes them with its records...
    monkeypatch.setattr('stereo_depth_ros.training.adapt.adapt',
                        lambda *args, **kwargs: (_ for _ in ()).throw(DatasetError('failed')))
    assert main([*command[:4], str(other), *command[5:]]) == 2
    assert list(out.iterdir()) == []  # so a --resume cannot name that bag
    monkeypatch.undo()
    # ... pairs of another bag that a killed run left are replaced, and so is its staging
    # folder (pairs of a longer bag).
    for left_over in (out / 'pairs' / '00005', out / 'pairs.partial' / '00007'):
        left_over.mkdir(parents=True)
        for name in ('left.png', 'right.png'):
            cv2.imwrite(str(left_over / name), scenes[0].left)
    (out / 'pairs' / 'extracted_by_adapt.txt').write_text(f'{other}\n')
    assert main(command) == 0
    assert sorted(p.name for p in (out / 'pairs').iterdir() if p.is_dir()) == ['00000',
                                                                               '00001']
    assert str(other.resolve()) not in (out / 'adapting_on.txt').read_text()
    assert (out / 'pairs' / 'extracted_by_adapt.txt').read_text() == f'{bag}\n'


def test_a_failed_adapt_leaves_nothing_and_a_resume_without_checkpoint_says_so(
        tmp_path: Path, capsys) -> None:
    scenes, bag, out, command = _bag_adaptation(tmp_path)
    at = command.index(str(bag))
    assert main([*command[:at], str(tmp_path / 'no_bag'), *command[at + 1:]]) == 2
    assert 'does not exist' in capsys.readouterr().err and not out.exists()
    nested = tmp_path / 'new' / 'run'  # the folders it made go, not only the last one
    at_out = command.index(str(out))
    assert main([*command[:at], str(tmp_path / 'no_bag'), *command[at + 1:at_out],
                 str(nested), *command[at_out + 1:]]) == 2
    assert not (tmp_path / 'new').exists()
    # A run folder naming its pairs but holding no checkpoint (a killed run): --resume
    # starts at step 0 and says so.
    assert main([*command, '--steps', '1']) == 0
    for path in out.iterdir():
        if path.name.startswith('checkpoint'):
            path.unlink()
    assert main([*command, '--resume']) == 0
    assert f'{out} holds no checkpoint yet: starting at step 0' in capsys.readouterr().out


def _pairs_run(tmp_path: Path, out: Path) -> list[str]:
    """Tiny start weights, config and pairs; the adapt argv of a 1-step run into ``out``."""
    weights, config = _tiny_run(tmp_path)
    pairs = _pairs_folder(tmp_path, 2)
    return ['adapt', '--config', str(config), '--pairs', str(pairs), '--weights', str(weights),
            '--device', 'cpu', '--no-progress', '--export', '', '--out-dir', str(out),
            '--steps', '1']


def _failing_adapt(error: BaseException):
    """A stand-in for training.adapt.adapt that fails before writing anything."""
    def adapt(*args, **kwargs):
        raise error
    return adapt


def test_an_adapt_stopped_after_its_checkpoint_keeps_the_run_for_resume(
        tmp_path: Path, monkeypatch) -> None:
    from stereo_depth_ros.training import adapt as adapt_module
    from stereo_depth_ros.training.checkpoint import has_checkpoint
    out = tmp_path / 'new' / 'run'  # folders the run makes: removed only without checkpoint
    command = _pairs_run(tmp_path, out)
    real = adapt_module.adapt

    def interrupted(*args, **kwargs):  # Ctrl-C once the steps and their checkpoint are done
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(adapt_module, 'adapt', interrupted)
    assert main(command) == 130
    assert has_checkpoint(out / 'checkpoint')
    assert (out / 'adapting_on.txt').read_text().startswith('--pairs ')


def test_a_failed_adapt_keeps_the_users_own_empty_folders(tmp_path: Path, monkeypatch) -> None:
    keep = tmp_path / 'keep'  # the user's, empty: not the run's to remove
    keep.mkdir()
    command = _pairs_run(tmp_path, keep / 'new' / 'run')
    monkeypatch.setattr('stereo_depth_ros.training.adapt.adapt',
                        _failing_adapt(DatasetError('failed')))
    assert main(command) == 2
    assert keep.is_dir() and not (keep / 'new').exists()


def test_a_failed_bag_run_in_an_existing_folder_leaves_only_the_users_files(
        tmp_path: Path, monkeypatch) -> None:
    # README: a run that fails before its first checkpoint leaves nothing behind; in a folder
    # that existed, the pairs it extracted, its records, log and held-out losses went too.
    from stereo_depth_ros.training.adapt import AdaptTrainer
    _, _, out, command = _bag_adaptation(tmp_path)
    out.mkdir()
    (out / 'notes.txt').write_text('mine\n')
    (out / 'mine').mkdir()

    def fail(self):  # after the first validation wrote adaptation.json and the log
        assert (out / 'adaptation.json').is_file() and (out / 'pairs').is_dir()
        raise RuntimeError('out of memory')

    monkeypatch.setattr(AdaptTrainer, 'run', fail)
    with pytest.raises(RuntimeError, match='out of memory'):
        main(command)
    assert sorted(path.name for path in out.iterdir()) == ['mine', 'notes.txt']
    assert (out / 'notes.txt').read_text() == 'mine\n'


def test_a_failed_resume_keeps_the_record_of_its_pairs(tmp_path: Path, monkeypatch) -> None:
    # A run killed before its first checkpoint left its folder; a --resume that fails must
    # leave the record of the pairs it started on, or the next --resume could take others.
    out = tmp_path / 'out'
    command = _pairs_run(tmp_path, out)
    out.mkdir()
    record = out / 'adapting_on.txt'
    record.write_text(f'--pairs {(tmp_path / "pairs").resolve()}\n')
    monkeypatch.setattr('stereo_depth_ros.training.adapt.adapt',
                        _failing_adapt(DatasetError('failed')))
    assert main([*command, '--resume']) == 2
    assert record.is_file()
    assert record.read_text() == f'--pairs {(tmp_path / "pairs").resolve()}\n'


def test_adapt_finds_the_configs_weights_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    from stereo_depth_ros.commands.adapt import _start_weights
    from stereo_depth_ros.resources import default_weights_path
    monkeypatch.chdir(tmp_path)
    found = _start_weights('adapt_costnet_fast.yaml', 'models/costnet_fast.safetensors', False)
    assert found.resolve() == default_weights_path('costnet_fast').resolve()
    with pytest.raises(StereoDepthError, match='^--weights typo.safetensors: no such file$'):
        _start_weights('adapt_costnet_fast.yaml', 'typo.safetensors', True)
    with pytest.raises(StereoDepthError, match=r'models/none.safetensors \(model.init_weights '
                       r'of adapt_costnet_fast.yaml\) do not exist; pass --weights'):
        _start_weights('adapt_costnet_fast.yaml', 'models/none.safetensors', False)


def test_adapt_never_exports_over_the_shipped_or_its_start_weights(tmp_path: Path,
                                                                   capsys) -> None:
    from stereo_depth_ros.resources import default_weights_path
    weights, config = _tiny_run(tmp_path)
    pairs = _pairs_folder(tmp_path, 2, size=(128, 256))
    out = tmp_path / 'out'
    command = ['adapt', '--config', str(config), '--pairs', str(pairs), '--weights',
               str(weights), '--device', 'cpu', '--no-progress', '--out-dir', str(out)]
    shipped = default_weights_path('costnet_fast')
    before = shipped.read_bytes()
    for target in (shipped, weights):
        assert main([*command, '--export', str(target)]) == 2
        assert 'would replace the weights the adaptation starts from or the shipped ones' \
            in capsys.readouterr().err
        assert not out.exists()
    assert shipped.read_bytes() == before
    earlier = tmp_path / 'mine.safetensors'  # an earlier export of the user's
    earlier.write_bytes(weights.read_bytes())
    assert main([*command, '--export', str(earlier), '--steps', '1']) == 0
    assert f'warning: --export {earlier} exists and is replaced' in capsys.readouterr().err
    # Replaced by the adapted weights (the run folder's), the old ones kept beside it.
    from safetensors.torch import load_file
    exported, adapted = load_file(earlier), load_file(out / 'costnet.safetensors')
    assert exported.keys() == adapted.keys()
    assert all(torch.equal(exported[key], adapted[key]) for key in adapted)
    assert not all(torch.equal(exported[key], value) for key, value in load_file(weights).items())
    assert (tmp_path / 'mine.previous.safetensors').read_bytes() == weights.read_bytes()
    # A file there that is no weights of this package is never replaced.
    (tmp_path / 'notes.safetensors').write_bytes(b'my notes')
    assert main([*command, '--export', str(tmp_path / 'notes.safetensors'), '--steps', '1',
                 '--out-dir', str(tmp_path / 'other')]) == 2
    assert 'not weights of this package' in capsys.readouterr().err


def test_adapt_without_pairs_names_the_configs_folder_and_the_flags(tmp_path, capsys):
    weights, config = _tiny_run(tmp_path)
    data = yaml.safe_load(config.read_text())
    data['adaptation']['pairs'] = str(tmp_path / 'elsewhere')
    config.write_text(yaml.safe_dump(data))
    assert main(['adapt', '--config', str(config), '--weights', str(weights), '--device',
                 'cpu', '--no-progress', '--out-dir', str(tmp_path / 'out')]) == 2
    error = capsys.readouterr().err
    assert f"adapts on adaptation.pairs = '{tmp_path / 'elsewhere'}'" in error
    assert 'give your pairs with --pairs DIR or --bag BAG' in error
    assert not (tmp_path / 'out').exists()


def test_curves_show_the_held_out_real_pairs_of_an_adaptation(tmp_path: Path) -> None:
    from stereo_depth_ros.training.report import plot_curves
    train = [{'step': 50, 'loss': 2.0, 'epe': 1.5}]  # one logged point: drawn as a marker
    val = [{'step': 0, 'epe': 3.0}, {'step': 50, 'epe': 2.5}]
    plain = cv2.imread(str(plot_curves({'train': train, 'val': val}, tmp_path / 'a.png')))
    adapted = cv2.imread(str(plot_curves(
        {'train': train, 'val': val, 'adapt_val': [
            {'step': 0, 'photo': 0.05, 'pseudo_epe': 1.2},
            {'step': 50, 'photo': 0.04, 'pseudo_epe': 1.1}]}, tmp_path / 'b.png')))
    assert adapted.shape[1] > 1.4 * plain.shape[1]  # a third panel
    # The training-loss panel is not empty: some pixels of its left third are line colour.
    panel = plain[:, : plain.shape[1] // 2]
    blue = (panel[:, :, 0] > 150) & (panel[:, :, 2] < 100)
    assert blue.sum() > 10


def test_a_resume_takes_the_pairs_and_the_export_the_run_started_with(
        tmp_path: Path, capsys) -> None:
    """An interrupted run has not exported yet: its --resume must not forget where to."""
    out, export = tmp_path / 'run', tmp_path / 'mine' / 'costnet_mine.safetensors'
    command = _pairs_run(tmp_path, out)
    command[command.index('--export') + 1] = str(export)
    assert main(command) == 0 and export.is_file()
    export.unlink()  # as if the run had stopped before its export
    export.with_suffix('.yaml').unlink()
    resume = [arg for index, arg in enumerate(command)
              if arg not in ('--pairs', '--export') and command[index - 1] not in ('--pairs',
                                                                                   '--export')]
    assert main([*resume[:-1], '2', '--resume']) == 0
    err = capsys.readouterr().err
    assert f'--resume: adapting on --pairs {(tmp_path / "pairs").resolve()}, as the run ' \
        'started' in err
    assert f'--resume: exporting to {export.resolve()}, as the run started' in err
    assert export.is_file() and read_metadata(export).backend == 'costnet'


def test_a_resumed_adapt_keeps_its_seed_and_refuses_another(tmp_path: Path, capsys) -> None:
    out = tmp_path / 'run'
    command = _pairs_run(tmp_path, out)
    assert main([*command, '--seed', '3']) == 0
    resume = [*command[:-1], '2', '--resume']
    capsys.readouterr()
    assert main([*resume, '--seed', '4']) == 2
    assert 'started with seed 3' in capsys.readouterr().err
    assert main(resume) == 0
    record = json.loads((out / 'checkpoint.json').read_text())
    assert record['step'] == 2 and record['extra']['config']['seed'] == 3


def _resume_args(**given):
    base = dict(bag=None, pairs=None, bag_every=None, mono16_bit_depth=None, export=None)
    base.update(given)
    return argparse.Namespace(**base)


def test_resume_restores_bag_every_bits_and_keeps_given_flags(tmp_path):
    from stereo_depth_ros.commands.adapt import _resume_as_started
    (tmp_path / 'adapting_on.txt').write_text('--bag /data/my bag --bag-every 3 '
                                              '--mono16-bit-depth 12\n')
    (tmp_path / 'exporting_to.txt').write_text('/old/place.safetensors\n')
    args = _resume_args()
    _resume_as_started(args, tmp_path)
    assert (args.bag, args.bag_every, args.mono16_bit_depth, args.export) == \
        ('/data/my bag', 3, 12, '/old/place.safetensors')
    (tmp_path / 'adapting_on.txt').write_text('--pairs /p q --mono16-bit-depth 10\n')
    args = _resume_args(export='/new.safetensors', mono16_bit_depth=12)
    _resume_as_started(args, tmp_path)
    assert (args.pairs, args.mono16_bit_depth, args.export) == ('/p q', 12, '/new.safetensors')


def test_a_resume_naming_its_bag_takes_the_bag_every_it_started_with(tmp_path, capsys):
    # --bag-every's default (5) made the same bag other pairs: --resume --bag was refused, and
    # after a warning that the --export would be replaced.
    from stereo_depth_ros.commands.adapt import _resume_as_started
    scenes, bag, out, command = _bag_adaptation(tmp_path)
    export = tmp_path / 'mine.safetensors'
    command[command.index('--export') + 1] = str(export)
    every = command.index('--bag-every')
    assert main([*command[:every], '--bag-every', '2', *command[every + 2:], '--steps',
                 '1']) == 0
    resume = [*command[:every], *command[every + 2:]]
    resume.remove('--export')
    resume.remove(str(export))
    capsys.readouterr()
    other = tmp_path / 'other'
    shutil.copytree(bag, other)
    assert main([*resume[:4], str(other), *resume[5:], '--resume']) == 2
    error = capsys.readouterr().err
    assert 'adapts on --bag' in error and 'warning' not in error
    assert main([*resume, '--resume', '--steps', '2']) == 0
    printed = capsys.readouterr()
    assert f'--resume: adapting on --bag {bag.resolve()} --bag-every 2, as the run started' \
        in printed.err and 'resuming on the pairs extracted before' in printed.out
    assert json.loads((out / 'checkpoint.json').read_text())['step'] == 2
    args = _resume_args(bag=str(bag), bag_every=3)  # given: kept, and refused later
    _resume_as_started(args, out)
    assert args.bag_every == 3


def test_resume_from_another_folder_exports_where_the_run_started(tmp_path, monkeypatch):
    out = tmp_path / 'run'
    command = _pairs_run(tmp_path, out)
    monkeypatch.chdir(tmp_path)
    command[command.index('--export') + 1] = 'mine/costnet_mine.safetensors'  # relative
    assert main(command) == 0
    export = tmp_path / 'mine' / 'costnet_mine.safetensors'
    export.unlink()
    export.with_suffix('.yaml').unlink()
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    i = command.index('--export')
    resume = command[:i] + command[i + 2:]
    resume[resume.index('--steps') + 1] = '2'
    assert main([*resume, '--resume']) == 0
    assert export.is_file()


def test_a_failed_run_in_an_existing_folder_leaves_no_export_record(tmp_path, monkeypatch):
    from stereo_depth_ros.training import adapt as adapt_module
    out = tmp_path / 'run'
    out.mkdir()
    command = _pairs_run(tmp_path, out)
    command[command.index('--export') + 1] = str(tmp_path / 'mine' / 'x.safetensors')
    monkeypatch.setattr(adapt_module, 'adapt', _failing_adapt(RuntimeError('boom')))
    with pytest.raises(RuntimeError):
        main(command)
    assert not (out / 'adapting_on.txt').exists() and not (out / 'exporting_to.txt').exists()


def test_adapt_warns_of_a_bag_it_had_to_recover(tmp_path: Path, capsys) -> None:
    # A cut-off mcap file is recovered as process-bag recovers it: adapt said nothing of it.
    from argparse import Namespace
    from bad_input_helpers import write_stereo_bag
    from stereo_depth_ros.commands.adapt import _bag_pairs
    bag = write_stereo_bag(tmp_path / 'bag', frames=4)
    (bag / 'metadata.yaml').unlink()  # the Reader cannot open it; the scan reads it whole
    args = Namespace(bag=str(bag), bag_every=1, left_image=None, right_image=None,
                     approximate_sync=False, slop=None, no_progress=True, mono16_bit_depth=None)
    pairs = _bag_pairs(args, tmp_path / 'out', resumed=False)
    assert len([path for path in pairs.iterdir() if path.is_dir()]) == 4
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'recovered' in line]
    assert warnings == [f'warning: bag {bag}: recovered: bag {bag} has no metadata.yaml']
