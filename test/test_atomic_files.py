"""Writes that leave a whole new file or the previous one: weights files and checkpoints."""

import json
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors.torch import load_file, save_file

import stereo_depth_ros.training.checkpoint as checkpoint
import stereo_depth_ros.weights as weights
from stereo_depth_ros.atomic_files import written_atomically
from stereo_depth_ros.backends.registry import backend_record
from tiny_architectures import TINY


def _folder_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_finished_write_replaces_the_file_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target = tmp_path / 'sub' / 'card.yaml'
    with written_atomically(target) as staging:
        assert staging.parent == target.parent and staging != target
        staging.write_text('new')
        assert not target.exists()  # nothing visible before the write finished
    assert target.read_text() == 'new'
    assert _folder_names(target.parent) == ['card.yaml']


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / 'card.yaml'
    target.write_text('old')
    with pytest.raises(RuntimeError, match='disk full'):
        with written_atomically(target) as staging:
            staging.write_text('half')
            raise RuntimeError('disk full')
    assert target.read_text() == 'old'
    assert _folder_names(tmp_path) == ['card.yaml']


def test_a_folder_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / 'card.yaml').mkdir()
    with pytest.raises(IsADirectoryError, match='card.yaml is a folder'):
        with written_atomically(tmp_path / 'card.yaml') as staging:
            staging.write_text('new')
    assert _folder_names(tmp_path) == ['card.yaml']


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Run the test under umask 022 (a CI runner may have another) and restore it."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_get_a_new_files_mode(tmp_path: Path, umask_022) -> None:
    # safetensors writes private (0600) files; the rename must not make the shipped weights
    # unreadable to a node running as another user.
    path = weights.save_weights(_tiny_network(), tmp_path / 'costnet.safetensors', 'costnet')
    assert _mode(path) == 0o644
    os.chmod(path, 0o600)  # an older private file does not stay private
    weights.save_weights(_tiny_network(), path, 'costnet')
    assert _mode(path) == 0o644
    with written_atomically(tmp_path / 'card.yaml') as staging:
        staging.write_text('x')
        os.chmod(staging, 0o600)
    assert _mode(tmp_path / 'card.yaml') == 0o644
    assert os.umask(0o022) == 0o022  # left as it was


def _failing_save_file(tensors, filename, metadata=None):
    """Write the first bytes of a safetensors file, then fail as a full disk would."""
    Path(filename).write_bytes(b'\x10\x00\x00\x00')
    raise OSError('No space left on device')


def _tiny_network() -> torch.nn.Module:
    return backend_record('costnet').network(**TINY['costnet'])


def test_save_weights_interrupted_keeps_the_loadable_previous_file(tmp_path: Path,
                                                                   monkeypatch) -> None:
    path = weights.save_weights(_tiny_network(), tmp_path / 'costnet.safetensors', 'costnet')
    before = path.read_bytes()
    monkeypatch.setattr(weights, 'save_file', _failing_save_file)
    with pytest.raises(OSError, match='No space'):
        weights.save_weights(_tiny_network(), path, 'costnet')
    assert path.read_bytes() == before
    weights.load_model(path, 'costnet')
    assert _folder_names(tmp_path) == ['costnet.safetensors']


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = _tiny_network()
    return model, torch.optim.AdamW(model.parameters())


@pytest.mark.parametrize('failure', ['tensors', 'record'])
def test_checkpoint_interrupted_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch,
                                                              failure: str) -> None:
    model, optimizer = _model_and_optimizer()
    prefix = tmp_path / 'checkpoint'
    checkpoint.save_checkpoint(prefix, model, optimizer, step=10)
    extra: dict[str, object] = {}
    if failure == 'tensors':
        monkeypatch.setattr(checkpoint, 'save_file', _failing_save_file)
    else:
        extra = {'not_json': object()}  # fails while the record is serialised
    with pytest.raises((OSError, TypeError)):
        checkpoint.save_checkpoint(prefix, model, optimizer, step=20, extra=extra)
    assert checkpoint.load_checkpoint(prefix, model, optimizer)['step'] == 10
    assert _folder_names(tmp_path) == ['checkpoint.json', 'checkpoint.safetensors']


def test_the_tensor_file_alone_resumes(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer()
    prefix = tmp_path / 'checkpoint'
    checkpoint.save_checkpoint(prefix, model, optimizer, step=7, extra={'wall_time_s': 3.0})
    json_copy = tmp_path / 'checkpoint.json'
    assert json.loads(json_copy.read_text())['step'] == 7  # the readable copy
    json_copy.unlink()
    assert checkpoint.has_checkpoint(prefix)
    record = checkpoint.load_checkpoint(prefix, model, optimizer)
    assert record['step'] == 7 and record['extra'] == {'wall_time_s': 3.0}


def test_an_older_checkpoint_reads_its_json_and_checks_the_step(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer()
    prefix = tmp_path / 'checkpoint'
    checkpoint.save_checkpoint(prefix, model, optimizer, step=5)
    tensor_path, json_path = checkpoint.checkpoint_paths(prefix)
    # As written before the record moved into the tensor file: the step alone in its metadata.
    save_file(load_file(str(tensor_path)), str(tensor_path), metadata={'step': '5'})
    assert checkpoint.load_checkpoint(prefix, model, optimizer)['step'] == 5
    record = json.loads(json_path.read_text())
    json_path.write_text(json.dumps(dict(record, step=6)))
    with pytest.raises(checkpoint.CheckpointError, match='do not match'):
        checkpoint.load_checkpoint(prefix, model, optimizer)
    json_path.unlink()
    with pytest.raises(checkpoint.CheckpointError, match='checkpoint.json cannot be read'):
        checkpoint.load_checkpoint(prefix, model, optimizer)


def test_the_record_in_the_tensor_file_wins_over_a_stale_json_copy(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer()
    prefix = tmp_path / 'checkpoint'
    checkpoint.save_checkpoint(prefix, model, optimizer, step=8)
    json_path = checkpoint.checkpoint_paths(prefix)[1]
    json_path.write_text(json.dumps({'step': 99}))
    assert checkpoint.load_checkpoint(prefix, model, optimizer)['step'] == 8


def _disk_full_on_the_second_file(monkeypatch, interrupt: bool = False) -> list[str]:
    """Make replace_files' second file of each set fail as a full disk; return the calls.

    With ``interrupt`` it is a Ctrl-C (KeyboardInterrupt) there instead.
    """
    import stereo_depth_ros.atomic_files as atomic_files
    real = atomic_files.written_atomically
    calls: list[str] = []

    def full_on_the_second(path):
        calls.append(Path(path).name)
        if len(calls) == 2:
            if interrupt:
                raise KeyboardInterrupt
            raise OSError(28, 'No space left on device', str(path))
        return real(path)

    monkeypatch.setattr(atomic_files, 'written_atomically', full_on_the_second)
    return calls


def test_replace_files_leaves_the_whole_new_set_or_none_of_it(tmp_path: Path,
                                                              monkeypatch) -> None:
    import stereo_depth_ros.atomic_files as atomic_files
    outputs = ('a.npy', 'b.png', 'c.npy')
    for name in (*outputs, 'mine.txt'):
        (tmp_path / name).write_text('old')
    atomic_files.replace_files(tmp_path, {'a.npy': b'A', 'b.png': b'B'}, outputs)
    # The earlier run's c.npy is gone: only this run's set stays beside the user's file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.npy', 'b.png', 'mine.txt']
    assert (tmp_path / 'a.npy').read_bytes() == b'A'
    calls = _disk_full_on_the_second_file(monkeypatch)
    with pytest.raises(OSError, match='No space left'):
        atomic_files.replace_files(tmp_path, {'a.npy': b'A2', 'b.png': b'B2'}, outputs)
    assert calls == ['a.npy', 'b.png']  # the first was written, then removed again
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mine.txt']


def test_replace_files_removes_the_folders_it_made_for_a_set_it_could_not_write(
        tmp_path: Path, monkeypatch) -> None:
    import stereo_depth_ros.atomic_files as atomic_files
    calls = _disk_full_on_the_second_file(monkeypatch)
    (tmp_path / 'kept').mkdir()
    for folder in (tmp_path / 'new' / 'out', tmp_path / 'kept'):
        calls.clear()
        with pytest.raises(OSError, match='No space left'):
            atomic_files.replace_files(folder, {'a.npy': b'A', 'b.png': b'B'}, ('a.npy', 'b.png'))
    # 'new/out' did not exist before the run: neither it nor 'new' stays, empty; the folder
    # that was there stays.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['kept']
    assert list((tmp_path / 'kept').iterdir()) == []


def test_replace_files_interrupted_by_ctrl_c_leaves_none_of_the_new_set(
        tmp_path: Path, monkeypatch) -> None:
    # A KeyboardInterrupt is no Exception: it too must remove the files already written and
    # the folders made for them.
    import stereo_depth_ros.atomic_files as atomic_files
    calls = _disk_full_on_the_second_file(monkeypatch, interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        atomic_files.replace_files(tmp_path / 'out', {'a.npy': b'A', 'b.png': b'B'},
                                   ('a.npy', 'b.png'))
    assert calls == ['a.npy', 'b.png']
    assert list(tmp_path.iterdir()) == []


def test_replace_files_refuses_a_folder_in_the_way_before_removing_anything(
        tmp_path: Path) -> None:
    from stereo_depth_ros.atomic_files import replace_files
    (tmp_path / 'a.npy').write_text('old')
    (tmp_path / 'b.png').mkdir()
    with pytest.raises(IsADirectoryError, match='b.png is a folder'):
        replace_files(tmp_path, {'a.npy': b'new'}, ('a.npy', 'b.png'))
    assert (tmp_path / 'a.npy').read_text() == 'old'  # a refused run keeps what was there


def test_a_checkpoint_of_another_network_is_one_short_line(tmp_path: Path) -> None:
    torch.manual_seed(0)
    saved = backend_record('costnet').network(**TINY['costnet'])
    other = backend_record('dispnet').network(**TINY['dispnet'])
    prefix = tmp_path / 'checkpoint'
    checkpoint.save_checkpoint(prefix, saved, torch.optim.Adam(saved.parameters()), 3,
                               extra={'config': {'backend': 'costnet'}})
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load_checkpoint(prefix, other, torch.optim.Adam(other.parameters()))
    text = str(error.value)
    assert '(saved by a costnet run) does not fit the DispNet model' in text
    assert len(text) < 400 and '\n' not in text  # not torch's list of every missing key
