"""Resumable training checkpoints without pickle: one safetensors file + a readable JSON copy.

``<prefix>.safetensors`` holds the model's state_dict (keys ``model.<name>``), every tensor
of the optimizer state (keys ``optimizer.<param index>.<name>``, e.g. AdamW's ``exp_avg``,
``exp_avg_sq`` and ``step``) and, in its metadata (key ``record``), the JSON record: the step,
the optimizer's param_groups (learning rates, betas, ...), non-tensor optimizer state and any
``extra`` (history, wall time). Everything needed to resume is in that one file, written
beside and renamed, so an interrupted save leaves the previous checkpoint whole.
``<prefix>.json`` is a copy of the record for people and tools to read; loading uses it only
for checkpoints written before the record moved into the tensor file (its ``step`` must then
match the tensor file's).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic_files import written_atomically
from ..errors import first_line, StereoDepthError


#: Prefix of the model's tensors in a checkpoint's tensor file (the optimizer's: ``optimizer.``).
MODEL_PREFIX = 'model.'


class CheckpointError(StereoDepthError, ValueError):
    """A checkpoint that is missing, inconsistent or does not fit the model/optimizer."""


def checkpoint_paths(prefix: str | Path) -> tuple[Path, Path]:
    """Return the (tensor file, JSON file) of a checkpoint prefix."""
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + '.safetensors'), prefix.with_name(prefix.name + '.json')


def has_checkpoint(prefix: str | Path) -> bool:
    """Whether a checkpoint's tensor file exists (the JSON copy is not needed to resume)."""
    return checkpoint_paths(prefix)[0].is_file()


def save_checkpoint(prefix: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, step: int,
                    extra: dict[str, Any] | None = None) -> None:
    """Write the checkpoint of ``model`` and ``optimizer`` after ``step`` completed steps."""
    tensor_path, json_path = checkpoint_paths(prefix)
    tensors = {MODEL_PREFIX + k: v.detach().cpu().contiguous().clone()
               for k, v in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, state in optimizer_state['state'].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f'optimizer.{index}.{name}'] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[name] = value
    record = {'step': int(step), 'param_groups': optimizer_state['param_groups'],
              'optimizer_scalars': scalars, 'extra': extra or {}}
    # Serialised before anything is written: a record that is not JSON changes no file.
    compact = json.dumps(record, separators=(',', ':'), default=float)
    with written_atomically(tensor_path) as staging:
        save_file(tensors, str(staging), metadata={'step': str(int(step)), 'record': compact})
    with written_atomically(json_path) as staging:
        staging.write_text(json.dumps(record, indent=1, default=float))


def _model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the model's state_dict among a checkpoint's tensors."""
    return {key[len(MODEL_PREFIX):]: value for key, value in tensors.items()
            if key.startswith(MODEL_PREFIX)}


@dataclass(frozen=True)
class CheckpointModel:
    """The model part of a checkpoint: its step, state_dict and record (config, history)."""

    step: int
    state: dict[str, torch.Tensor]
    record: dict[str, Any]


def read_model_state(tensor_path: str | Path) -> CheckpointModel:
    """Return the step, the model's state_dict and the record of a checkpoint's tensor file."""
    step, tensors, record = _read_checkpoint(Path(tensor_path), MODEL_PREFIX)
    return CheckpointModel(step, _model_tensors(tensors), record)


def read_record(prefix: str | Path) -> dict[str, Any]:
    """Return the record (step, optimizer scalars, ``extra``) of a checkpoint, no tensors."""
    tensor_path, _ = checkpoint_paths(prefix)
    return _read_checkpoint(tensor_path, prefix='\0')[2]


def _read_checkpoint(tensor_path: Path, prefix: str = ''
                     ) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
    """Return the step, the tensors whose keys start with ``prefix`` and the record.

    CheckpointError if the file cannot be read, holds no model tensors where those are asked
    for, or its record (see :func:`_read_record`) names another step.
    """
    try:
        with safe_open(str(tensor_path), framework='pt') as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()
                       if key.startswith(prefix)}
        step = int(metadata.get('step', -1))
    except (OSError, ValueError, SafetensorError) as error:
        raise CheckpointError(f'cannot read checkpoint {tensor_path}: {error}') from None
    if prefix == MODEL_PREFIX and not tensors:
        raise CheckpointError(f'{tensor_path} holds no model tensors: not a training '
                              f'checkpoint')
    record, source = _read_record(tensor_path, metadata)
    if step != record.get('step'):
        raise CheckpointError(f'checkpoint {tensor_path} (step {step}) and {source} '
                              f'(step {record.get("step")}) do not match')
    return step, tensors, record


def _read_record(tensor_path: Path, metadata: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Return a checkpoint's record and where it was read.

    From the tensor file's metadata; for checkpoints written before the record moved there,
    from the JSON file beside it (``<prefix>.json``).
    """
    if 'record' in metadata:
        source = f'the record in {tensor_path.name}'
        return _parse_record(metadata['record'], source), source
    json_path = tensor_path.with_suffix('.json')
    try:
        text = json_path.read_text()
    except OSError as error:
        raise CheckpointError(f'checkpoint {tensor_path} predates records in the tensor file '
                              f'and its {json_path.name} cannot be read: '
                              f'{error.strerror or error}') from None
    return _parse_record(text, str(json_path)), json_path.name


def _parse_record(text: str, where: str) -> dict[str, Any]:
    """Return the JSON object ``text`` (read from ``where``); CheckpointError if it is not one."""
    try:
        record = json.loads(text)
    except ValueError as error:
        raise CheckpointError(f'{where} is not JSON: {error}') from None
    if not isinstance(record, dict):
        raise CheckpointError(f'{where} is not a JSON object')
    return record


def load_checkpoint(prefix: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer``; return the JSON record (``step``, ``extra``)."""
    tensor_path = checkpoint_paths(prefix)[0]
    if not has_checkpoint(prefix):
        raise CheckpointError(f'no checkpoint at {tensor_path}')
    _, tensors, record = _read_checkpoint(tensor_path)
    model_state = _model_tensors(tensors)
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as error:
        # torch lists every missing key (thousands of characters): its first line, and who
        # saved the checkpoint, say enough.
        config = record.get('extra', {}).get('config') or {}
        saved = (f' (saved by a {config["backend"]} run)'
                 if isinstance(config, dict) and config.get('backend') else '')
        raise CheckpointError(
            f'checkpoint {tensor_path}{saved} does not fit the {type(model).__name__} model '
            f'({first_line(error).rstrip(":")}): continue it with the config that made it, '
            'or start a new --out-dir') from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith('optimizer.'):
            _, index, name = key.split('.', 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in record.get('optimizer_scalars', {}).items():
        state.setdefault(int(index), {}).update(values)
    try:
        optimizer.load_state_dict({'state': state, 'param_groups': record['param_groups']})
    except (ValueError, KeyError) as error:
        raise CheckpointError(f'checkpoint {tensor_path} does not fit the optimizer: '
                              f'{error}') from None
    return record
