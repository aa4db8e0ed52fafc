"""Tests of averaging a run's final weights with its checkpoints (training.average)."""

import json
from pathlib import Path

import pytest
import torch

from stereo_depth_ros.backends.registry import backend_record
from stereo_depth_ros.training import average
from stereo_depth_ros.training.checkpoint import save_checkpoint
from stereo_depth_ros.weights import load_model, read_metadata, save_weights
from tiny_architectures import TINY


def _network(seed: int, backend: str = 'costnet') -> torch.nn.Module:
    torch.manual_seed(seed)
    network = backend_record(backend).network(**TINY[backend])
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.num_batches_tracked.fill_(seed)
    return network


def _checkpoint(network: torch.nn.Module, path: Path, step: int) -> Path:
    save_checkpoint(path, network, torch.optim.SGD(network.parameters(), lr=0.1), step)
    return path.with_name(path.name + '.safetensors')


def test_the_average_is_the_mean_of_every_floating_tensor(tmp_path: Path, capsys) -> None:
    final, late, later = _network(1), _network(2), _network(3)
    weights = save_weights(final, tmp_path / 'final.safetensors', 'costnet',
                           extra_metadata={'training': {'steps': 30}})
    checkpoints = [_checkpoint(late, tmp_path / 'a', 10), _checkpoint(later, tmp_path / 'b', 20)]
    out = tmp_path / 'mean.safetensors'
    assert average.main([str(weights), *map(str, checkpoints), '--out', str(out)]) == 0
    assert f'({weights}, step 10, step 20)' in capsys.readouterr().out
    model, metadata = load_model(out, 'costnet')
    states = [network.state_dict() for network in (final, late, later)]
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            expected = sum(state[key] for state in states) / 3
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        else:  # counters: the final weights'
            assert torch.equal(value, states[0][key])
    labels = json.loads(metadata.extra['averaged_from'])['labels']
    assert labels == [str(weights), 'step 10', 'step 20']
    assert json.loads(metadata.extra['training']) == {'steps': 30}
    # Not the identity: the mean differs from each input.
    assert not torch.equal(model.state_dict()['tower.0.0.weight'],
                           states[0]['tower.0.0.weight'])


def test_weights_files_average_as_a_soup(tmp_path: Path) -> None:
    ingredients = [save_weights(_network(seed), tmp_path / f'{seed}.safetensors', 'costnet')
                   for seed in (1, 2)]
    out = tmp_path / 'soup.safetensors'
    assert average.main([*map(str, ingredients), '--out', str(out)]) == 0
    soup, _ = load_model(out, 'costnet')
    first, second = (load_model(path, 'costnet')[0].state_dict() for path in ingredients)
    torch.testing.assert_close(soup.state_dict()['logits.weight'],
                               (first['logits.weight'] + second['logits.weight']) / 2)


def test_other_networks_and_bad_outputs_get_one_line_and_exit_2(tmp_path: Path,
                                                                capsys) -> None:
    weights = save_weights(_network(1), tmp_path / 'final.safetensors', 'costnet')
    narrow = backend_record('costnet').network(**dict(TINY['costnet'], width=0.125))
    cases = {
        'other width': [str(weights), str(_checkpoint(narrow, tmp_path / 'n', 5)),
                        '--out', str(tmp_path / 'x.safetensors')],
        'other width, weights': [str(weights), str(save_weights(narrow, tmp_path / 'n.sft',
                                                                'costnet')),
                                 '--out', str(tmp_path / 'y.safetensors')],
        'other backend': [str(weights), str(save_weights(_network(1, 'dispnet'),
                                                         tmp_path / 'd.sft', 'dispnet')),
                          '--out', str(tmp_path / 'z.safetensors')],
        'not safetensors': [str(weights), str(tmp_path / 'n'), '--out', str(tmp_path / 'w')],
        'out is an input': [str(weights), str(_checkpoint(_network(2), tmp_path / 'c', 5)),
                            '--out', str(weights)],
        'out is a folder': [str(weights), str(tmp_path / 'c.safetensors'),
                            '--out', str(tmp_path)],
    }
    before = sorted(path.name for path in tmp_path.iterdir())
    for name, argv in cases.items():
        assert average.main(argv) == 2, name
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith('average: '), (name, error)
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    assert read_metadata(weights).backend == 'costnet'


def test_average_states_refuses_different_keys() -> None:
    with pytest.raises(average.StereoDepthError, match='other tensors'):
        average.average_states([{'a': torch.zeros(1)}, {'b': torch.zeros(1)}])
