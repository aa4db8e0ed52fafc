"""What the package knows about one backend, in one record.

A :class:`BackendRecord` holds the backend's name, a one-line summary, its options
dataclass and either its network class (learned backends: run by
:class:`~stereo_depth_ros.backends.torch_backend.TorchBackend`, weights from
``models/<name>.safetensors``) or a factory (classical backends). The network class owns its
training loss and the decoding of its output. Every list of backends in the package is
derived from the registered records (:mod:`stereo_depth_ros.backends.registry`).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from ..errors import BackendError
from ..resources import default_weights_path

if TYPE_CHECKING:
    from .base import DisparityBackend
    from ..networks.common import StereoNet


@dataclass(frozen=True)
class BackendRecord:
    """One backend: name, summary, options dataclass and its network class or factory.

    ``factory(options, device)`` builds a classical backend; learned backends leave it None
    and give ``network``.
    """

    name: str
    summary: str
    options: type
    network: Optional[type['StereoNet']] = None
    factory: Optional[Callable[[Any, str], 'DisparityBackend']] = None

    def __post_init__(self) -> None:
        """Check that exactly one of ``network`` and ``factory`` is given."""
        if (self.network is None) == (self.factory is None):
            raise ValueError(f'backend {self.name!r} needs exactly one of network and factory')

    @property
    def needs_weights(self) -> bool:
        """Whether the backend runs a learned network (and so needs a weights file)."""
        return self.network is not None

    def default_weights(self) -> Optional[Path]:
        """Return the shipped weights file of this backend, or None where there is none."""
        if not self.needs_weights:
            return None
        return default_weights_path(self.name)

    def build_network(self, architecture: Mapping[str, Any]) -> 'StereoNet':
        """Construct the network from constructor keyword arguments; BackendError if unfit."""
        if self.network is None:
            raise BackendError(f'backend {self.name!r} has no network')
        try:
            return self.network(**dict(architecture))
        # RuntimeError: torch's own refusals, e.g. a negative channel count or a layer too
        # large to allocate (a weights file's architecture metadata is anyone's JSON).
        except (TypeError, ValueError, RuntimeError, MemoryError) as error:
            raise BackendError(f'invalid {self.name} architecture {dict(architecture)}: '
                               f'{error}') from None
