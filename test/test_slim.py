"""Tests of narrowing a trained CostNet (stereo_depth_ros.training.slim)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from stereo_depth_ros.data.datasets import SyntheticSamples
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.networks.inference import images_to_tensor
from stereo_depth_ros.training import slim
from stereo_depth_ros.weights import load_model, read_metadata, save_weights

WIDE = {'width': 0.5, 'max_disparity': 32, 'refine_channels': 4}


def _wide_with_idle_channels(seed: int = 0) -> tuple[CostNet, dict[str, torch.Tensor]]:
    """A width-0.5 CostNet in which only the channels a width-0.25 one keeps carry signal.

    Each group keeps a random subset of its channels; the others output exactly zero (their
    batch norm's scale and shift are 0, the matching convolution's rows are 0), so that a
    narrow network of the kept channels computes exactly what the wide one does.
    """
    torch.manual_seed(seed)
    wide = CostNet(**WIDE)
    narrow_sizes = slim.group_sizes(CostNet(**dict(WIDE, width=0.25)))
    kept = {}
    with torch.no_grad():
        for module in wide.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        # The refinement's output starts at zero: give it weights, so that it counts.
        nn.init.normal_(wide.refine.residual.weight, std=0.1)
        for name, size in slim.group_sizes(wide).items():
            kept[name] = torch.randperm(size)[:narrow_sizes[name]].sort().values
            idle = torch.ones(size, dtype=torch.bool)
            idle[kept[name]] = False
            layer = next(layer for layer in slim.LAYERS if layer.output == name)
            module = wide.get_submodule(layer.path)
            if layer.batch_norm:
                norm = module[1]
                norm.bias[~idle] = 1.0  # kept channels are active
                norm.weight[idle] = 0.0
                norm.bias[idle] = 0.0
            else:
                module.weight[idle] = 0.0
                module.bias[idle] = 0.0
    return wide.eval(), kept


def _scenes(count: int = 2) -> list:
    return list(SyntheticSamples(list(range(count)), 'layered', 64, 128, 32.0))


def _outputs(model: CostNet, scene) -> list[torch.Tensor]:
    cpu = torch.device('cpu')
    with torch.no_grad():
        return model(images_to_tensor([scene.left], cpu), images_to_tensor([scene.right], cpu))


def test_the_channels_that_carry_signal_are_kept_and_give_the_same_output() -> None:
    wide, active = _wide_with_idle_channels()
    scenes = _scenes()
    narrow = slim.slim_costnet(wide, 0.25, samples=scenes)
    assert narrow.architecture == dict(wide.architecture, width=0.25)
    wide_count = sum(p.numel() for p in wide.parameters())
    assert sum(p.numel() for p in narrow.parameters()) < wide_count
    # The importance measure finds exactly the channels that carry signal.
    importance = slim.channel_importance(wide, slim.mean_activations(wide, scenes))
    chosen = slim.kept_channels(importance, slim.group_sizes(narrow))
    assert {name: index.tolist() for name, index in chosen.items()} == {
        name: index.tolist() for name, index in active.items()}
    for scene in scenes:
        for expected, actual in zip(_outputs(wide, scene), _outputs(narrow, scene)):
            torch.testing.assert_close(actual, expected, atol=1e-3, rtol=1e-4)


def test_dropping_channels_that_carry_signal_changes_the_output() -> None:
    # The same network narrowed to other channels: the test above can tell the difference.
    wide, active = _wide_with_idle_channels()
    others = {name: torch.tensor([i for i in range(size) if i not in active[name]][
        :active[name].numel()]) for name, size in slim.group_sizes(wide).items()}
    scene = _scenes(1)[0]
    narrow = slim.slim_costnet(wide, 0.25, kept=others)
    assert not torch.allclose(_outputs(narrow, scene)[-1], _outputs(wide, scene)[-1],
                              atol=1e-2)


def test_slim_command_writes_a_narrow_file_for_another_backend(tmp_path: Path, capsys) -> None:
    wide, _ = _wide_with_idle_channels()
    source = save_weights(wide, tmp_path / 'wide.safetensors', 'costnet')
    out = tmp_path / 'narrow.safetensors'
    assert slim.main([str(source), str(out), '--width', '0.25', '--backend', 'costnet_fast',
                      '--scenes', '1']) == 0
    assert 'width 0.25' in capsys.readouterr().out
    metadata = read_metadata(out)
    assert metadata.backend == 'costnet_fast'
    model, _ = load_model(out, 'costnet_fast')
    assert model.architecture['width'] == 0.25
    assert model.architecture['refine_channels'] == WIDE['refine_channels']


@pytest.mark.parametrize('args, message', [
    (['--width', '0.5'], 'between 0 and'),
    (['--width', '0'], 'between 0 and'),
    (['--width', '0.25', '--backend', 'dispnet'], '--backend dispnet does not run a CostNet'),
    (['--width', '0.25', '--backend', 'nonsense'], "unknown backend 'nonsense'"),
    (['--width', '0.25', '--scenes', '0'], '--scenes must be at least 1'),
])
def test_slim_command_rejects_bad_arguments_in_one_line(tmp_path: Path, capsys, args,
                                                        message) -> None:
    wide, _ = _wide_with_idle_channels()
    source = save_weights(wide, tmp_path / 'wide.safetensors', 'costnet')
    out = tmp_path / 'narrow.safetensors'
    assert slim.main([str(source), str(out), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('slim: ') and message in error and '\n' not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ['wide.safetensors']


def test_slim_command_never_overwrites_its_input_or_a_folder(tmp_path: Path, capsys) -> None:
    wide, _ = _wide_with_idle_channels()
    source = save_weights(wide, tmp_path / 'wide.safetensors', 'costnet')
    before = source.read_bytes()
    assert slim.main([str(source), str(source), '--width', '0.25']) == 2
    assert 'is the input file' in capsys.readouterr().err
    assert slim.main([str(source), str(tmp_path), '--width', '0.25']) == 2
    assert 'is a folder' in capsys.readouterr().err
    assert source.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ['wide.safetensors']


def test_slim_command_keeps_what_it_replaces_and_leaves_other_files(tmp_path: Path,
                                                                    capsys) -> None:
    wide, _ = _wide_with_idle_channels()
    source = save_weights(wide, tmp_path / 'wide.safetensors', 'costnet')
    out = tmp_path / 'narrow.safetensors'
    arguments = [str(source), str(out), '--width', '0.25', '--backend', 'costnet_fast',
                 '--scenes', '1']
    assert slim.main(arguments) == 0
    first = out.read_bytes()
    assert slim.main(arguments) == 0
    kept = tmp_path / 'narrow.previous.safetensors'
    assert f'the file it replaced is kept as {kept}' in capsys.readouterr().out
    assert kept.read_bytes() == first
    notes = tmp_path / 'notes.safetensors'  # not weights of this package: left alone
    notes.write_bytes(b'mine')
    assert slim.main([str(source), str(notes), '--width', '0.25', '--scenes', '1']) == 2
    assert 'not weights of this package' in capsys.readouterr().err
    assert notes.read_bytes() == b'mine'


def test_slim_command_rejects_a_network_that_is_not_a_costnet(tmp_path: Path, capsys) -> None:
    from stereo_depth_ros.networks.dispnet import DispNet
    source = save_weights(DispNet(width=0.125, max_disparity=64), tmp_path / 'd.safetensors',
                          'dispnet')
    assert slim.main([str(source), str(tmp_path / 'out.safetensors')]) == 2
    assert 'not a CostNet' in capsys.readouterr().err
