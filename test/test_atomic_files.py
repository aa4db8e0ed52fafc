"""Writes that leave a whole file or the previous one: weights, checkpoints, model cards."""

from pathlib import Path

import pytest
import torch

import stereo_depth_ros.training.checkpoint as checkpoint
import stereo_depth_ros.weights as weights
from stereo_depth_ros.atomic_files import written_atomically
from stereo_depth_ros.backends.registry import backend_record
from tiny_architectures import TINY


def _folder_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_a_finished_write_replaces_the_file_and_leaves_nothing_beside(tmp_path):
    target = tmp_path / 'sub' / 'card.yaml'
    with written_atomically(target) as staging:
        assert staging.parent == target.parent and staging != target
        staging.write_text('new')
        assert not target.exists()  # nothing visible before the write finished
    assert target.read_text() == 'new'
    assert _folder_names(target.parent) == ['card.yaml']


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / 'card.yaml'
    target.write_text('old')
    with pytest.raises(RuntimeError, match='disk full'):
        with written_atomically(target) as staging:
            staging.write_text('half')
            raise RuntimeError('disk full')
    assert target.read_text() == 'old'
    assert _folder_names(tmp_path) == ['card.yaml']


def _failing_save_file(tensors, filename, metadata=None):
    """Write the first bytes of a safetensors file, then fail as a full disk would."""
    Path(filename).write_bytes(b'\x10\x00\x00\x00')
    raise OSError('No space left on device')


def _tiny_network():
    return backend_record('costnet').network(**TINY['costnet'])


def test_save_weights_interrupted_keeps_the_loadable_previous_file(tmp_path, monkeypatch):
    path = weights.save_weights(_tiny_network(), tmp_path / 'costnet.safetensors', 'costnet')
    before = path.read_bytes()
    monkeypatch.setattr(weights, 'save_file', _failing_save_file)
    with pytest.raises(OSError, match='No space'):
        weights.save_weights(_tiny_network(), path, 'costnet')
    assert path.read_bytes() == before
    weights.load_model(path, 'costnet')
    assert _folder_names(tmp_path) == ['costnet.safetensors']


def test_checkpoint_interrupted_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _tiny_network()
    optimizer = torch.optim.AdamW(model.parameters())
    prefix = tmp_path / 'checkpoint'
    checkpoint.save_checkpoint(prefix, model, optimizer, step=10)
    monkeypatch.setattr(checkpoint, 'save_file', _failing_save_file)
    with pytest.raises(OSError, match='No space'):
        checkpoint.save_checkpoint(prefix, model, optimizer, step=20)
    assert checkpoint.load_checkpoint(prefix, model, optimizer)['step'] == 10
    assert _folder_names(tmp_path) == ['checkpoint.json', 'checkpoint.safetensors']
