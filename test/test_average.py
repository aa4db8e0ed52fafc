"""Tests of averaging weights files and checkpoints of one network (training.average)."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from stereo_depth_ros.backends.registry import backend_record
from stereo_depth_ros.training import average
from stereo_depth_ros.training.checkpoint import save_checkpoint
from stereo_depth_ros.weights import load_model, save_weights
from tiny_architectures import TINY


def _network(seed: int, backend: str = 'costnet', **architecture) -> torch.nn.Module:
    torch.manual_seed(seed)
    network = backend_record(backend).network(**dict(TINY[backend], **architecture))
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.num_batches_tracked.fill_(seed)
    return network


def _checkpoint(network: torch.nn.Module, path: Path, step: int,
                backend: str = 'costnet') -> Path:
    """Save a checkpoint whose record names the run's backend and architecture, as train's."""
    config = {'backend': backend, 'model': {'architecture': dict(network.architecture)}}
    save_checkpoint(path, network, torch.optim.SGD(network.parameters(), lr=0.1), step,
                    {'config': config})
    return path.with_name(path.name + '.safetensors')


def test_the_average_is_the_mean_of_every_floating_tensor(tmp_path: Path, capsys) -> None:
    final, late, later = _network(1), _network(2), _network(3)
    trained = 'stereo-depth train --config final.yaml'
    weights = save_weights(final, tmp_path / 'final.safetensors', 'costnet',
                           extra_metadata={'training': {'steps': 30, 'invocation': trained,
                                                        'final_validation': {'epe': 1.0}}})
    checkpoints = [_checkpoint(late, tmp_path / 'a', 10), _checkpoint(later, tmp_path / 'b', 20)]
    out = tmp_path / 'mean.safetensors'
    assert average.main([str(weights), *map(str, checkpoints), '--out', str(out)]) == 0
    assert f'({weights}, {checkpoints[0]} (step 10), {checkpoints[1]} (step 20))' in \
        capsys.readouterr().out
    model, metadata = load_model(out, 'costnet')
    states = [network.state_dict() for network in (final, late, later)]
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            expected = sum(state[key] for state in states) / 3
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        else:  # counters: the first file's
            assert torch.equal(value, states[0][key])
    # Not the identity: the mean differs from each input.
    assert not torch.equal(model.state_dict()['tower.0.0.weight'],
                           states[0]['tower.0.0.weight'])
    training = json.loads(metadata.extra['training'])
    assert training['steps'] == 30 and 'final_validation' not in training  # not validated
    assert training['averaged_from']['inputs'][1:] == [f'{checkpoints[0]} (step 10)',
                                                       f'{checkpoints[1]} (step 20)']
    # The command of the file (its model card's) is the average's, not the training's.
    assert training['invocation'] == (
        f'python -m stereo_depth_ros.training.average {weights} {checkpoints[0]} '
        f'{checkpoints[1]} --out {out}')
    assert training['averaged_from']['weights_invocation'] == trained


def test_the_average_keeps_what_it_replaces_and_never_another_backend_s(tmp_path: Path,
                                                                        capsys) -> None:
    weights = save_weights(_network(1), tmp_path / 'final.safetensors', 'costnet')
    other = save_weights(_network(2), tmp_path / 'other.safetensors', 'costnet')
    out = tmp_path / 'mean.safetensors'
    assert average.main([str(weights), str(other), '--out', str(out)]) == 0
    first = out.read_bytes()
    assert average.main([str(other), str(weights), '--out', str(out)]) == 0
    assert 'the file it replaced is kept as' in capsys.readouterr().out
    assert (tmp_path / 'mean.previous.safetensors').read_bytes() == first
    # average writes no model card: a card beside OUT goes with the weights it describes,
    # and a YAML of the user's there is neither a reason to refuse nor touched.
    from stereo_depth_ros.weights import CARD_FIRST_LINE
    card = tmp_path / 'mean.yaml'
    card.write_text(CARD_FIRST_LINE + ' of the first mean\n')
    assert average.main([str(weights), str(other), '--out', str(out)]) == 0
    assert not card.exists()
    assert (tmp_path / 'mean.previous-2.yaml').read_text().endswith('of the first mean\n')
    card.write_text('my notes\n')
    assert average.main([str(weights), str(other), '--out', str(out)]) == 0
    assert card.read_text() == 'my notes\n'
    fast = save_weights(_network(3), tmp_path / 'fast.safetensors', 'costnet_fast')
    before = fast.read_bytes()
    assert average.main([str(weights), str(other), '--out', str(fast)]) == 2
    assert 'holds costnet_fast weights' in capsys.readouterr().err
    assert fast.read_bytes() == before


def test_weights_files_average_as_a_soup_in_their_precision(tmp_path: Path) -> None:
    ingredients = [save_weights(_network(seed), tmp_path / f'{seed}.safetensors', 'costnet',
                                dtype='fp16') for seed in (1, 2)]
    out = tmp_path / 'soup.safetensors'
    assert average.main([*map(str, ingredients), '--out', str(out)]) == 0
    soup, metadata = load_model(out, 'costnet')
    assert metadata.extra['dtype'] == 'fp16'
    first, second = (load_model(path, 'costnet')[0].state_dict() for path in ingredients)
    torch.testing.assert_close(soup.state_dict()['logits.weight'],
                               (first['logits.weight'] + second['logits.weight']) / 2,
                               rtol=1e-3, atol=1e-3)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unfit_inputs_and_bad_outputs_get_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    weights = save_weights(_network(1), tmp_path / 'final.safetensors', 'costnet')
    good = _checkpoint(_network(2), tmp_path / 'c', 5)
    broken = _network(3)
    with torch.no_grad():
        broken.logits.weight[0, 0] = float('nan')
    unrecorded = tmp_path / 'u'
    save_checkpoint(unrecorded, _network(4), torch.optim.SGD(_network(4).parameters(), lr=1), 1)
    (tmp_path / 'notes.txt').write_text('not safetensors')
    cases = {
        'other width': _checkpoint(_network(5, width=0.125), tmp_path / 'n', 5),
        # Same shapes, another meaning: only the run's recorded architecture tells.
        'other topk_radius': _checkpoint(_network(6, topk_radius=3), tmp_path / 't', 5),
        'other backend': _checkpoint(_network(7, 'costnet_fast'), tmp_path / 'f', 5,
                                     backend='costnet_fast'),
        'NaN': _checkpoint(broken, tmp_path / 'nan', 5),
        'no record of its network': unrecorded.with_name('u.safetensors'),
        'weights of another width': save_weights(_network(8, width=0.125),
                                                 tmp_path / 'w.sft', 'costnet'),
        'weights of another backend': save_weights(_network(9, 'dispnet'), tmp_path / 'd.sft',
                                                   'dispnet'),
        'not safetensors': tmp_path / 'notes.txt',
        'missing': tmp_path / 'missing.safetensors',
        'given twice': good,
    }
    before = {path.name: _digest(path) for path in tmp_path.iterdir()}
    for name, path in cases.items():
        inputs = [str(good), str(path)] if name == 'given twice' else [str(path)]
        argv = [str(weights), *inputs, '--out', str(tmp_path / 'out.safetensors')]
        assert average.main(argv) == 2, name
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith('average: '), (name, error)
    for out in (weights, tmp_path):  # an input, a folder
        assert average.main([str(weights), str(good), '--out', str(out)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert {path.name: _digest(path) for path in tmp_path.iterdir()} == before
    with pytest.raises(SystemExit) as usage:
        average.main([str(weights), str(good)])  # no --out
    assert usage.value.code == 2


def test_average_states_names_the_input_with_other_keys() -> None:
    with pytest.raises(average.StereoDepthError, match='b.sft has other tensors than a.sft'):
        average.average_states([{'a': torch.zeros(1)}, {'b': torch.zeros(1)}],
                               ['a.sft', 'b.sft'])
