"""Register the learned disparity backends (all share :class:`TorchBackend`)."""

from pathlib import Path
from typing import Any, Optional

from .registry import register_backend
from .torch_backend import TorchBackend
from ..errors import BackendError
from ..networks.dispnet_qr import DECODE_MODES

#: Learned backend names, in the order they are usually listed.
LEARNED_BACKENDS = ('dispnet', 'dispnetc', 'squeezeseg', 'dispnet_qr', 'costnet')


@register_backend('dispnet', needs_weights=True,
                  summary='DispNetSimple encoder-decoder on the concatenated pair')
class DispNetBackend(TorchBackend):
    """DispNet (Mayer et al. 2016) inference."""


@register_backend('dispnetc', needs_weights=True,
                  summary='DispNetC: Siamese features + 1-D correlation + encoder-decoder')
class DispNetCBackend(TorchBackend):
    """DispNetC (Mayer et al. 2016) inference."""


@register_backend('squeezeseg', needs_weights=True,
                  summary='SqueezeSeg Fire/FireDeconv encoder-decoder regressing disparity')
class SqueezeSegBackend(TorchBackend):
    """SqueezeSeg adapted to stereo, inference."""


@register_backend('dispnet_qr', needs_weights=True,
                  summary='DispNet with quantized regression (bin classification + residuals)')
class DispNetQRBackend(TorchBackend):
    """DispNet + quantized-regression head inference.

    ``decode`` chooses how bins become disparity: ``argmax`` (centre of the most likely bin
    plus its residual; the default the model was trained and scored with) or ``expectation``
    (softmax-weighted over all bins). ``None`` keeps the mode stored with the weights.
    """

    def __init__(self, weights: str | Path, decode: Optional[str] = None,
                 **options: Any) -> None:
        if decode is not None and decode not in DECODE_MODES:
            raise BackendError(f'dispnet_qr decode must be one of {DECODE_MODES}, '
                               f'got {decode!r}')
        super().__init__(weights, **options)
        if decode is not None:
            self.model.decode = decode


@register_backend('costnet', needs_weights=True,
                  summary='cost volume at 1/4 resolution, 2-D aggregation, convex upsampling')
class CostNetBackend(TorchBackend):
    """CostNet (the project's real-time design beside the report's four) inference."""
