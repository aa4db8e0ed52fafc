"""Network weights files: safetensors only (never pickle), with self-describing metadata.

A weights file stores the model's ``state_dict`` (fp32 or fp16) and string metadata:

* ``backend`` - the learned backend name, whose record
  (:func:`~stereo_depth_ros.backends.registry.backend_record`) gives the network class;
* ``architecture`` - JSON of the constructor keyword arguments (``model.architecture``);
* ``format_version`` - :data:`FORMAT_VERSION`;
* anything passed as ``extra_metadata`` (strings kept, other values JSON-encoded), e.g. the
  training config, step count, validation EPE.

``load_model(path, expected_backend)`` checks the metadata before touching the tensors and
raises :class:`~stereo_depth_ros.errors.BackendError` for a file of another backend, another
architecture (when ``expected_architecture`` is given), a newer format, or tensors that do
not fit the network (missing/unexpected keys, shape mismatches), are not floating point
where the network's are, or hold NaN/Inf values.
"""

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .atomic_files import written_atomically
from .backends.registry import backend_record
from .errors import BackendError

if TYPE_CHECKING:
    from .networks.common import StereoNet

FORMAT_VERSION = 1
_RESERVED = ('backend', 'architecture', 'format_version')
_PREFIXES = ('module.', '_orig_mod.')


@dataclass(frozen=True)
class WeightsMetadata:
    """The decoded metadata of a weights file."""

    backend: str
    architecture: dict
    format_version: int
    extra: dict = field(default_factory=dict)

    def training(self) -> dict[str, Any]:
        """Return the decoded ``training`` metadata (how the weights were made); {} if none.

        Metadata that is not a JSON object counts as none.
        """
        try:
            training = json.loads(self.extra.get('training', '{}'))
        except (TypeError, ValueError):
            return {}
        return training if isinstance(training, dict) else {}


def plain_key(key: str) -> str:
    """Return a state_dict key without DataParallel's and torch.compile's prefixes."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
        key = key.replace('._orig_mod.', '.')
    return key


def _unwrap(model: nn.Module) -> nn.Module:
    """Return the plain module inside DataParallel/DDP (``.module``) or torch.compile wrappers."""
    while True:
        inner = getattr(model, '_orig_mod', None) or getattr(model, 'module', None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_weights(model: nn.Module, path: str | Path, backend: str,
                 architecture: Optional[Mapping[str, Any]] = None,
                 extra_metadata: Optional[Mapping[str, Any]] = None,
                 dtype: str = 'fp32') -> Path:
    """Write ``model``'s state_dict to a safetensors file at ``path`` and return the path.

    The file appears whole or not at all
    (:func:`~stereo_depth_ros.atomic_files.written_atomically`).

    ``architecture`` defaults to ``model.architecture``; ``dtype`` ``fp16`` halves the file
    (floating tensors only; loading converts back to fp32).
    """
    if dtype not in ('fp32', 'fp16'):
        raise ValueError(f"dtype must be 'fp32' or 'fp16', got {dtype!r}")
    plain = _unwrap(model)
    if architecture is None:
        architecture = getattr(plain, 'architecture', None)
        if architecture is None:
            raise ValueError('save_weights needs architecture= for a model without '
                             '.architecture')
    target = torch.float16 if dtype == 'fp16' else torch.float32
    tensors = {}
    for key, value in plain.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(target)
        tensors[plain_key(key)] = value.contiguous().clone()
    metadata = {'backend': backend, 'architecture': json.dumps(dict(architecture),
                                                               sort_keys=True),
                'format_version': str(FORMAT_VERSION), 'dtype': dtype}
    for key, value in (extra_metadata or {}).items():
        if key in _RESERVED or key == 'dtype':
            raise ValueError(f'extra_metadata may not override {key!r}')
        metadata[str(key)] = value if isinstance(value, str) else json.dumps(value, default=str)
    path = Path(path)
    with written_atomically(path) as staging:
        save_file(tensors, str(staging), metadata=metadata)
    return path


#: How a model card (``<weights>.yaml``) starts; a YAML beside an export that does not is
#: someone's own file, never replaced by a card.
CARD_FIRST_LINE = '# Model card of '


def check_export_path(path: str | Path, backend: Optional[str] = None,
                      out_dir: Optional[str | Path] = None, card: bool = True) -> None:
    """Raise BackendError where exporting ``backend`` weights to ``path`` would do harm.

    Checked before a training run, not after it: a folder in its place, no writable folder
    above it, a file there that is not this project's weights or holds another backend's
    (exporting over it would make that backend unusable), a YAML beside it (where the
    model card goes) that is not a model card (with ``card``: a tool that writes none
    leaves such a file alone), or, with the run folder ``out_dir``, the run's own weights
    file ``<out_dir>/<backend>.safetensors`` (the run writes it itself, so an export there
    would replace the file before anything could keep it).
    """
    path = Path(path)
    if out_dir is not None and backend is not None \
            and path.resolve() == (Path(out_dir) / f'{backend}.safetensors').resolve():
        raise BackendError(f'export path {path} is the file the run folder {out_dir} writes '
                           'its own weights to: choose another --out-dir or export path')
    if path.is_dir():
        raise BackendError(f'export path {path} is a folder; name a .safetensors file')
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BackendError(f'export path {path}: {parent} is not a writable folder')
    if path.exists() and backend is not None:
        try:
            held = read_metadata(path).backend
        except BackendError:
            raise BackendError(f'export path {path} holds a file that is not weights of this '
                               'package; it is left alone: name another file') from None
        if held != backend:
            raise BackendError(f'export path {path} holds {held} weights; {backend} weights '
                               f'there would make {held} unusable: name another file')
    beside = path.with_suffix('.yaml')
    if card and beside.is_file() and not is_model_card(beside):
        raise BackendError(f'the model card of {path} would replace {beside}, which is not a '
                           'model card: name another export file')


def is_model_card(path: Path) -> bool:
    """Return whether ``path`` is a model card this package wrote (its first line)."""
    return path.read_text(errors='replace').startswith(CARD_FIRST_LINE)


def set_aside_stale_card(path: str | Path) -> None:
    """Remove the model card beside weights ``path`` that a tool writing none replaced.

    :func:`keep_previous_export` has kept it beside the old weights; left here it would
    describe the new file with the old one's hash and history. A YAML that is no model card
    is the user's and stays.
    """
    card = Path(path).with_suffix('.yaml')
    if card.is_file() and is_model_card(card):
        card.unlink()


def keep_previous_export(path: str | Path) -> Optional[Path]:
    """Copy weights (and their card) at ``path`` to a free ``<stem>.previous[-N].*``.

    A training run's export replaces the file, e.g. the shipped ``models/<backend>.safetensors``
    after a short trial run; the previous weights stay recoverable. A copy, not a move: if the
    export then fails, the file is still there. Earlier copies are never overwritten. Returns
    the copy (None: nothing there).
    """
    path = Path(path)
    if not path.is_file():
        return None
    number = 1
    while True:
        tag = 'previous' if number == 1 else f'previous-{number}'
        kept = path.with_name(f'{path.stem}.{tag}{path.suffix}')
        if not kept.exists() and not kept.with_suffix('.yaml').exists():
            break
        number += 1
    shutil.copy2(path, kept)
    card = path.with_suffix('.yaml')
    if card.is_file():
        shutil.copy2(card, kept.with_suffix('.yaml'))
    return kept


def read_metadata(path: str | Path) -> WeightsMetadata:
    """Return the metadata of a weights file; BackendError if it is not one of ours."""
    path = Path(path)
    if path.is_dir():
        raise BackendError(f'weights file {path} is a folder; name a .safetensors file in it')
    if not path.is_file():
        raise BackendError(f'weights file {path} does not exist')
    try:
        with safe_open(str(path), framework='pt') as handle:
            raw = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise BackendError(f'{path} is not a readable safetensors file ({error}): it is cut '
                           'short, damaged or no weights file; copy it again or use other '
                           'weights') from None
    missing = [key for key in _RESERVED if key not in raw]
    if missing:
        if (path.parent / f'{path.stem}.json').is_file():  # a checkpoint of train or adapt
            raise BackendError(f'{path} is a training checkpoint (for --resume), not weights: '
                               f'use the <backend>.safetensors of {path.parent}')
        raise BackendError(f'{path} lacks the metadata {missing}; it was not written by '
                           f'stereo_depth_ros.weights.save_weights')
    try:
        architecture = json.loads(raw['architecture'])
        version = int(raw['format_version'])
    except (ValueError, TypeError) as error:
        raise BackendError(f'{path} has malformed metadata: {error}') from None
    if not isinstance(architecture, dict):
        raise BackendError(f'{path}: architecture metadata is not a JSON object')
    if version > FORMAT_VERSION:
        raise BackendError(f'{path} has weights format {version}; this version reads up to '
                           f'{FORMAT_VERSION}, update stereo_depth_ros')
    extra = {k: v for k, v in raw.items() if k not in _RESERVED}
    return WeightsMetadata(raw['backend'], architecture, version, extra)


def _check_backend(metadata: WeightsMetadata, path: Path, expected_backend: str) -> None:
    if metadata.backend != expected_backend:
        raise BackendError(
            f'{path} holds weights of backend {metadata.backend!r}, not {expected_backend!r}; '
            f'name the matching backend or other weights (--backend / --weights; node '
            f'parameters backend / weights)')


def _check_architecture(metadata: WeightsMetadata, path: Path,
                        expected: Mapping[str, Any], only_recorded: bool = False) -> None:
    recorded = metadata.architecture
    different = {key: value for key, value in expected.items()
                 if recorded.get(key) != value and not (only_recorded and key not in recorded)}
    if different:
        # A setting the file does not record (older weights) is said so, not 'file None'.
        details = ', '.join(f'{key}: file {recorded[key]!r} vs expected {want!r}'
                            if key in recorded else
                            f'{key}: not recorded in the file, expected {want!r}'
                            for key, want in sorted(different.items()))
        raise BackendError(f'{path} was saved for another {metadata.backend} architecture '
                           f'({details})')


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework='pt') as handle:
            return {plain_key(key): handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise BackendError(f'cannot read the tensors of {path} ({error}): the file is '
                           'damaged; copy it again or use other weights') from None


def load_state(model: nn.Module, path: str | Path, expected_backend: str,
               new_modules: Sequence[str] = (), widen_inputs: bool = False) -> WeightsMetadata:
    """Load the weights at ``path`` into an existing ``model``; return the file's metadata.

    The file must belong to ``expected_backend`` and, where the model has ``.architecture``,
    to the same architecture; key or shape mismatches and NaN/Inf values in floating tensors
    raise BackendError. The submodules named in ``new_modules`` may be missing from the file
    (they keep their initialisation); the architecture is then compared only on the settings
    the file records. With ``widen_inputs`` the architecture is not compared and a tensor
    with fewer input channels (dimension 1) than the network's fills its leading ones, the
    others start at zero (:func:`widened`): a network whose cost volume has more
    displacements, appended after the file's, then computes exactly what the file's did.
    """
    path = Path(path)
    metadata = read_metadata(path)
    _check_backend(metadata, path, expected_backend)
    plain = _unwrap(model)
    architecture = getattr(plain, 'architecture', None)
    if architecture and not widen_inputs:
        _check_architecture(metadata, path, architecture, only_recorded=bool(new_modules))
    state = plain.state_dict()
    tensors = _read_tensors(path)
    prefixes = tuple(f'{name}.' for name in new_modules)
    missing = sorted(key for key in set(state) - set(tensors)
                     if not (prefixes and key.startswith(prefixes)))
    unexpected = sorted(set(tensors) - set(state))
    if missing or unexpected:
        raise BackendError(
            f'{path} does not fit the {expected_backend} network: missing keys '
            f'{missing[:5]}{"..." if len(missing) > 5 else ""}, unexpected keys '
            f'{unexpected[:5]}{"..." if len(unexpected) > 5 else ""}')
    for key, value in tensors.items():
        if widen_inputs and value.shape != state[key].shape:
            value = widened(value, state[key].shape, f'{path}: {key}')
        if value.shape != state[key].shape:
            raise BackendError(
                f'{path} does not fit the {expected_backend} network: {key} has shape '
                f'{tuple(value.shape)} in the file, {tuple(state[key].shape)} in the network')
        if state[key].is_floating_point() and not value.is_floating_point():
            raise BackendError(
                f'{path} stores {key} as {str(value.dtype).replace("torch.", "")}, not as '
                f'floating point: the weights are not usable (a wrong conversion?); save '
                f'them as fp32 or fp16')
        check_finite(value, path, key)
        tensors[key] = value.to(state[key].dtype)
    try:
        plain.load_state_dict(tensors, strict=not new_modules)
    except RuntimeError as error:
        raise BackendError(f'{path} does not fit the {expected_backend} network: {error}')
    return metadata


def check_finite(value: torch.Tensor, path: str | Path, key: str) -> None:
    """Raise BackendError if the floating tensor ``key`` of ``path`` holds NaN or Inf."""
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise BackendError(f'{path} holds non-finite values (NaN or Inf) in {key}; the weights '
                           f'are corrupt (e.g. a diverged training run)')


def widened(tensor: torch.Tensor, shape: Sequence[int], name: str) -> torch.Tensor:
    """Return ``tensor`` zero-padded at the end of dimension 1 to ``shape``.

    Only the number of input channels may grow; any other difference raises BackendError.
    """
    grows = (tensor.dim() == len(shape) >= 2 and tensor.shape[0] == shape[0]
             and tensor.shape[1] < shape[1] and tuple(tensor.shape[2:]) == tuple(shape[2:]))
    if not grows:
        raise BackendError(f'{name} has shape {tuple(tensor.shape)}, the network '
                           f'{tuple(shape)}: only more input channels can be added')
    grown = tensor.new_zeros(tuple(shape))
    grown[:, :tensor.shape[1]] = tensor
    return grown


def load_model(path: str | Path, expected_backend: str,
               expected_architecture: Optional[Mapping[str, Any]] = None
               ) -> tuple['StereoNet', WeightsMetadata]:
    """Build the network described by the file at ``path``, load its weights, return both.

    The model is returned on the CPU in eval mode, fp32. ``expected_architecture`` (a subset
    of constructor arguments) makes a file with other values raise BackendError.
    """
    path = Path(path)
    metadata = read_metadata(path)
    _check_backend(metadata, path, expected_backend)
    if expected_architecture:
        _check_architecture(metadata, path, expected_architecture)
    try:
        model = backend_record(expected_backend).build_network(metadata.architecture)
    except BackendError as error:
        raise BackendError(f'{path}: {error}; its architecture metadata describes no network '
                           'this version can build (damaged, or written by another version): '
                           'use other weights') from None
    load_state(model, path, expected_backend)
    model.eval()
    return model, metadata
