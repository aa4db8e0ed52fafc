"""Learned disparity networks (plain torch ``nn.Module``s, one module per architecture).

See :mod:`stereo_depth_ros.networks.common` for the shared input/output conventions.
``NETWORKS`` maps each learned backend name to its network class.
"""

from .common import (StereoNet, downsample_disparity, full_resolution, multiscale_targets,
                     normalize_image, pad_to_divisor, upsample_disparity)
from .correlation import Correlation1d, correlation_1d
from .costnet import CostNet
from .dispnet import DispNet
from .dispnet_qr import DispNetQR, QROutput, decode_bins, disparity_to_bins, gather_bins
from .dispnetc import DispNetC
from .squeezeseg import SqueezeSegStereo

NETWORKS: dict[str, type[StereoNet]] = {
    'dispnet': DispNet,
    'dispnetc': DispNetC,
    'squeezeseg': SqueezeSegStereo,
    'dispnet_qr': DispNetQR,
    'costnet': CostNet,
}

__all__ = ['NETWORKS', 'Correlation1d', 'CostNet', 'DispNet', 'DispNetC', 'DispNetQR', 'QROutput',
           'SqueezeSegStereo', 'StereoNet', 'correlation_1d', 'decode_bins',
           'disparity_to_bins', 'downsample_disparity', 'full_resolution', 'gather_bins',
           'multiscale_targets', 'normalize_image', 'pad_to_divisor', 'upsample_disparity']
