"""Register the learned disparity backends (all share :class:`TorchBackend`)."""

from .registry import register_backend
from .torch_backend import TorchBackend

#: Learned backend names, in the order they are usually listed.
LEARNED_BACKENDS = ('dispnet', 'dispnetc', 'squeezeseg', 'dispnet_qr')


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
    """DispNet + quantized-regression head inference."""
