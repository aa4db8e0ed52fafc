"""Backend registry: one :class:`BackendRecord` per backend, loaded lazily, one factory.

The built-in backends are listed once, by name and module, in :data:`BUILTIN_BACKENDS`;
a module registers its record when it is imported, and it is imported only when its record
is first needed (building ``sgbm`` does not import torch). A module that fails to import is
reported as itself, not as an unknown backend.
"""

import importlib
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from .base import DisparityBackend
from .record import BackendRecord
from ..errors import BackendError
from ..resources import find_shared_file
from ..settings import check_device, parse_options

#: Built-in backend name -> the module that registers it, in the order they are listed.
BUILTIN_BACKENDS: dict[str, str] = {
    'sgbm': 'stereo_depth_ros.backends.sgbm',
    'dispnet': 'stereo_depth_ros.networks.dispnet',
    'dispnetc': 'stereo_depth_ros.networks.dispnetc',
    'squeezeseg': 'stereo_depth_ros.networks.squeezeseg',
    'dispnet_qr': 'stereo_depth_ros.networks.dispnet_qr',
    'costnet': 'stereo_depth_ros.networks.costnet',
    'costnet_fast': 'stereo_depth_ros.networks.costnet',
}

#: The backend the node, its parameter file and the command line use unless told otherwise:
#: the faster of the two CostNet backends, which beat ``sgbm`` on the real suite by the most
#: (bad-2 15.5 against 19.3 %, a fifth of a point behind ``costnet``, in about 1.5x ``sgbm``'s
#: time on a CPU against ``costnet``'s 2.1x; README, "Backends and what they measure", Speed).
DEFAULT_BACKEND = 'costnet_fast'

_REGISTRY: dict[str, BackendRecord] = {}


def register_backend(record: BackendRecord) -> BackendRecord:
    """Register ``record`` under its name (once) and return it."""
    if record.name in _REGISTRY:
        raise BackendError(f'backend {record.name!r} is registered twice: by '
                           f'{_module_of(_REGISTRY[record.name])} and by {_module_of(record)}')
    _REGISTRY[record.name] = record
    return record


def _module_of(record: BackendRecord) -> str:
    """Return the module that defines ``record``'s network or factory."""
    return getattr(record.network or record.factory, '__module__', '?')


def backend_names() -> list[str]:
    """Return the backend names: the built-in ones in their order, then any registered later."""
    return list(BUILTIN_BACKENDS) + sorted(set(_REGISTRY) - set(BUILTIN_BACKENDS))


def backend_record(name: str) -> BackendRecord:
    """Return the record of ``name``; BackendError listing the known names if unknown.

    Imports the backend's module the first time; an import failure (e.g. torch missing) is
    raised as a BackendError that names the backend and the import error.
    """
    if name not in _REGISTRY and name in BUILTIN_BACKENDS:
        try:
            importlib.import_module(BUILTIN_BACKENDS[name])
        except ImportError as error:
            raise BackendError(f'backend {name!r} cannot be loaded: {error} (Python at '
                               f'{sys.executable})') from error
        if name not in _REGISTRY:
            raise BackendError(f'module {BUILTIN_BACKENDS[name]} did not register backend '
                               f'{name!r}')
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ', '.join(backend_names())
        raise BackendError(f'unknown backend {name!r}; known backends: {known}') from None


def learned_backend_names() -> list[str]:
    """Return the names of the backends that run a learned network, in listing order."""
    return [name for name in backend_names() if backend_record(name).needs_weights]


def create_backend(name: str, weights: Optional[str | Path] = None, device: str = 'auto',
                   **options: Any) -> DisparityBackend:
    """Build the backend ``name``.

    ``weights`` defaults to the shipped file in ``models/`` for learned backends; backends
    that need none reject a weights file. ``device`` is ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``. Keyword ``options`` are checked against the backend's options dataclass
    (names or aliases, types, limits; see ``stereo-depth backends``).
    """
    record = backend_record(name)
    try:
        check_device(device)
    except ValueError as error:
        raise BackendError(str(error)) from None
    parsed = backend_options(record, options)
    if record.network is None:
        if weights:
            raise BackendError(f'backend {name!r} takes no weights file, got {weights}')
        assert record.factory is not None
        return record.factory(parsed, device)
    # ``~`` as a shell would expand it: a parameter file or `ros2 launch weights:=~/...`
    # reaches here unexpanded.
    path = Path(weights).expanduser() if weights else record.default_weights()
    if weights and path is not None and path.is_dir():
        inside = path / f'{name}.safetensors'  # as in a run folder of train or adapt
        example = f'{inside} is there; ' if inside.is_file() else ''
        raise BackendError(f'weights file {weights} is a folder; name the {name} weights '
                           f'file in it ({example}--weights; node parameter weights)')
    if weights and path is not None and not path.is_file():
        relative = '' if path.is_absolute() else f', relative to the current folder {Path.cwd()}'
        raise BackendError(f'weights file {weights} does not exist{relative}; give the path '
                           f'of an existing {name} weights file (--weights; node parameter '
                           'weights; an absolute path works from any folder)')
    if path is None or not path.is_file():
        config = find_shared_file(f'config/train_{name}.yaml')
        train = (f'train them with `stereo-depth train --config {config}` or ' if config
                 else 'train them with `stereo-depth train --config <your config>`, or ')
        raise BackendError(f'backend {name!r} needs weights and models/{name}.safetensors does '
                           f'not exist; {train}give other weights (--weights; node parameter '
                           'weights)')
    from .torch_backend import TorchBackend
    return TorchBackend(record, path, device, parsed)


def backend_options(record: BackendRecord, options: Mapping[str, Any]) -> Any:
    """Return ``record``'s options dataclass filled from ``options`` (checked)."""
    return parse_options(record.options, options, record.name)
