"""DispNetC (DispNetCorr1D, Mayer et al., CVPR 2016) with BatchNorm and a width multiplier.

Siamese feature towers with shared weights (conv1 7x7 /2, conv2 5x5 /4) run on the left and
right images; a 1-D horizontal correlation at 1/4 resolution compares left features with right
features shifted by 0..``max_displacement`` (default ``ceil(max_disparity / 4)``) columns;
a 1x1 ``redir`` convolution of the left features is concatenated to the cost volume and the
DispNet encoder (conv3 .. conv6) / decoder (upconv, skips from the left tower, pr6 .. pr1)
follows.

Output convention as :class:`~stereo_depth_ros.networks.dispnet.DispNet`: ``forward`` returns
``[pr6 .. pr1]`` (1/64 .. 1/2 resolution), each in pixels at its own resolution;
``predict`` returns full-resolution ``Bx1xHxW`` disparity. H, W divisible by 64.
"""

import math
from typing import Optional

import torch

from .common import StereoNet, conv_bn_relu, scaled_channels
from .correlation import Correlation1d
from .dispnet import DECODER_CHANNELS, ENCODER_CHANNELS, DispNetDecoder, DispNetEncoderTail
from ..backends.options import LearnedOptions
from ..backends.record import BackendRecord
from ..backends.registry import register_backend

#: Channels of the ``redir`` 1x1 convolution of the left features at width 1.
REDIR_CHANNELS = 64


class DispNetC(StereoNet):
    """DispNet with a Siamese front end and a 1-D correlation layer at 1/4 resolution."""

    divisor = 64
    #: Weak in the upper part of its range: the near pass takes over from a third of it.
    default_near_from = 0.33
    #: Refined within 16 px by matching (chosen on validation scenes, models/README.md,
    #: "Refining by matching").
    default_refine_radius = 16.0

    def __init__(self, width: float = 0.25, max_disparity: float = 192,
                 batch_norm: bool = True, max_displacement: Optional[int] = None) -> None:
        super().__init__(max_disparity)
        if max_displacement is None:
            max_displacement = int(math.ceil(max_disparity / 4.0))
        self.architecture = {'width': float(width), 'max_disparity': float(max_disparity),
                             'batch_norm': bool(batch_norm),
                             'max_displacement': int(max_displacement)}
        enc = [scaled_channels(c, width) for c in ENCODER_CHANNELS]
        dec = [scaled_channels(c, width) for c in DECODER_CHANNELS]
        redir = scaled_channels(REDIR_CHANNELS, width)
        self.conv1 = conv_bn_relu(3, enc[0], 7, 2, batch_norm)
        self.conv2 = conv_bn_relu(enc[0], enc[1], 5, 2, batch_norm)
        self.correlation = Correlation1d(max_displacement)
        self.redir = conv_bn_relu(enc[1], redir, 1, 1, batch_norm)
        self.tail = DispNetEncoderTail(redir + max_displacement + 1, enc[2:], batch_norm)
        self.decoder = DispNetDecoder(
            [enc[4], enc[3], enc[2], enc[1], enc[0]], enc[5], dec, batch_norm)

    def features(self, left: torch.Tensor,
                 right: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return (predictions coarse -> fine, finest 1/2-resolution decoder features)."""
        self.check_input(left, right)
        batch = left.shape[0]
        both = self.conv1(torch.cat([left, right], dim=0))
        both2 = self.conv2(both)
        f1, f2 = both[:batch], both2[:batch]
        volume = self.correlation(f2, both2[batch:])
        f3, f4, f5, f6 = self.tail(torch.cat([self.redir(f2), volume], dim=1))
        return self.decoder([f5, f4, f3, f2, f1], f6)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """Return [pr6 .. pr1], each Bx1xhxw in pixels at its own resolution."""
        return self.features(left, right)[0]


register_backend(BackendRecord(
    'dispnetc', 'DispNetC: Siamese features + 1-D correlation + encoder-decoder',
    LearnedOptions, network=DispNetC))
