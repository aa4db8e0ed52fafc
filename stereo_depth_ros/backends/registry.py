"""Backend registry: backends register by name, one factory builds them."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .base import DisparityBackend
from ..errors import BackendError
from ..resources import default_weights_path


@dataclass(frozen=True)
class BackendInfo:
    """What the registry knows about one backend."""

    name: str
    needs_weights: bool
    summary: str
    factory: Callable[..., DisparityBackend]

    def default_weights(self) -> Optional[Path]:
        """Return the shipped weights file of this backend, or None where there is none."""
        if not self.needs_weights:
            return None
        return default_weights_path(self.name)


_REGISTRY: dict[str, BackendInfo] = {}


def register_backend(name: str, *, needs_weights: bool, summary: str) -> Callable:
    """Class or function decorator that registers a backend factory under ``name``."""
    def decorator(factory: Callable[..., DisparityBackend]) -> Callable[..., DisparityBackend]:
        if name in _REGISTRY:
            raise BackendError(f'backend {name!r} is registered twice')
        if isinstance(factory, type):
            factory.name = name
            factory.needs_weights = needs_weights
        _REGISTRY[name] = BackendInfo(name, needs_weights, summary, factory)
        return factory
    return decorator


def backend_names() -> list[str]:
    """Return the registered backend names, sorted."""
    _load_builtin_backends()
    return sorted(_REGISTRY)


def backend_info(name: str) -> BackendInfo:
    """Return the registry entry of ``name`` or raise BackendError listing the known names."""
    _load_builtin_backends()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ', '.join(sorted(_REGISTRY)) or 'none'
        raise BackendError(f'unknown backend {name!r}; known backends: {known}') from None


def create_backend(name: str, weights: Optional[str | Path] = None, device: str = 'auto',
                   **options: Any) -> DisparityBackend:
    """Build the backend ``name``.

    ``weights`` defaults to the shipped file in ``models/`` for learned backends; backends
    that need none reject a weights file. ``device`` is ``auto``, ``cpu`` or ``cuda``.
    Extra keyword ``options`` go to the backend (e.g. SGBM parameters, ``precision``).
    """
    info = backend_info(name)
    if info.needs_weights:
        path = Path(weights) if weights else info.default_weights()
        if path is None or not path.is_file():
            where = str(weights) if weights else f'models/{name}.safetensors'
            raise BackendError(
                f'backend {name!r} needs weights and {where} does not exist; train them with '
                f'`stereo-depth train --config config/train_{name}.yaml` or pass --weights')
        return info.factory(weights=path, device=device, **options)
    if weights:
        raise BackendError(f'backend {name!r} takes no weights file, got {weights}')
    return info.factory(device=device, **options)


_LOADED = False


def _load_builtin_backends() -> None:
    """Import the modules that register the built-in backends (once)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import sgbm  # noqa: F401
    from . import learned  # noqa: F401
