"""SqueezeSeg (Wu et al., ICRA 2018) adapted to regress disparity from a stereo pair.

The input is the concatenated left+right pair (6 channels). As in SqueezeSeg: conv1 (3x3,
/2) plus a full-resolution 1x1 ``conv1_skip``, max pools and Fire modules (1x1 squeeze, then
concatenated 1x1 and 3x3 expands) down to 1/16, FireDeconv modules (squeeze, x2
upconvolution, expands) back up with additive skip connections (fire10 + fire5, fire11 +
fire3, fire12 + conv1, fire13 + conv1_skip). Changes for stereo: down/up-sampling in both
directions (SqueezeSeg only halves the width of LiDAR range images), optional BatchNorm, and
a linear disparity prediction after every FireDeconv (1/8, 1/4, 1/2, 1/1) instead of the
class-score layer and CRF.

Output convention as :class:`~stereo_depth_ros.networks.dispnet.DispNet`: ``forward``
returns four predictions coarse -> fine (1/8 .. full resolution), each in pixels at its own
resolution; ``predict`` returns full-resolution ``Bx1xHxW`` disparity. H, W divisible by 16.
"""

import torch
from torch import nn

from .common import StereoNet, conv_bn_relu, prediction_head, scaled_channels
from ..backends.options import LearnedOptions
from ..backends.record import BackendRecord
from ..backends.registry import register_backend


def _bn_relu(channels: int, batch_norm: bool) -> list[nn.Module]:
    return ([nn.BatchNorm2d(channels)] if batch_norm else []) + [nn.ReLU(inplace=True)]


def _projection(in_channels: int, out_channels: int) -> nn.Module:
    if in_channels == out_channels:
        return nn.Identity()
    return nn.Conv2d(in_channels, out_channels, 1)


class Fire(nn.Module):
    """Fire module: 1x1 squeeze, then concatenated 1x1 and 3x3 expand convolutions."""

    def __init__(self, in_channels: int, squeeze: int, expand1: int, expand3: int,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.squeeze = conv_bn_relu(in_channels, squeeze, 1, 1, batch_norm)
        self.expand1 = conv_bn_relu(squeeze, expand1, 1, 1, batch_norm)
        self.expand3 = conv_bn_relu(squeeze, expand3, 3, 1, batch_norm)
        self.out_channels = expand1 + expand3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the concatenated expand outputs."""
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], dim=1)


class FireDeconv(nn.Module):
    """FireDeconv: 1x1 squeeze, x2 upconvolution (4x4, stride 2), then the two expands."""

    def __init__(self, in_channels: int, squeeze: int, expand1: int, expand3: int,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.squeeze = conv_bn_relu(in_channels, squeeze, 1, 1, batch_norm)
        self.upconv = nn.Sequential(
            nn.ConvTranspose2d(squeeze, squeeze, 4, stride=2, padding=1, bias=not batch_norm),
            *_bn_relu(squeeze, batch_norm))
        self.expand1 = conv_bn_relu(squeeze, expand1, 1, 1, batch_norm)
        self.expand3 = conv_bn_relu(squeeze, expand3, 3, 1, batch_norm)
        self.out_channels = expand1 + expand3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the concatenated expand outputs at twice the input resolution."""
        x = self.upconv(self.squeeze(x))
        return torch.cat([self.expand1(x), self.expand3(x)], dim=1)


class SqueezeSegStereo(StereoNet):
    """SqueezeSeg encoder/decoder regressing multi-scale disparity from a stereo pair.

    ``width`` scales every channel count (1.0 = SqueezeSeg's, about 0.9 M parameters).
    """

    divisor = 16
    #: Refined within 64 px by matching (chosen on validation scenes, models/README.md,
    #: "Refining by matching"; the option's limit).
    default_refine_radius = 64.0

    def __init__(self, width: float = 0.5, max_disparity: float = 192,
                 batch_norm: bool = True) -> None:
        super().__init__(max_disparity)
        self.architecture = {'width': float(width), 'max_disparity': float(max_disparity),
                             'batch_norm': bool(batch_norm)}

        def c(channels: int) -> int:
            return scaled_channels(channels, width)

        def fire(in_channels: int, s: int, e: int) -> Fire:
            return Fire(in_channels, c(s), c(e), c(e), batch_norm)

        def fire_deconv(in_channels: int, s: int, e: int) -> FireDeconv:
            return FireDeconv(in_channels, c(s), c(e), c(e), batch_norm)

        self.conv1 = conv_bn_relu(6, c(64), 3, 2, batch_norm)
        self.conv1_skip = conv_bn_relu(6, c(64), 1, 1, batch_norm)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fire2 = fire(c(64), 16, 64)
        self.fire3 = fire(2 * c(64), 16, 64)
        self.fire4 = fire(2 * c(64), 32, 128)
        self.fire5 = fire(2 * c(128), 32, 128)
        self.fire6 = fire(2 * c(128), 48, 192)
        self.fire7 = fire(2 * c(192), 48, 192)
        self.fire8 = fire(2 * c(192), 64, 256)
        self.fire9 = fire(2 * c(256), 64, 256)
        self.fire10 = fire_deconv(2 * c(256), 64, 128)
        self.fire11 = fire_deconv(2 * c(128), 32, 64)
        self.fire12 = fire_deconv(2 * c(64), 16, 32)
        self.fire13 = fire_deconv(2 * c(32), 16, 32)
        # fire12/fire13 add conv1/conv1_skip; rounding of odd widths may need a projection.
        self.skip12 = _projection(c(64), 2 * c(32))
        self.skip13 = _projection(c(64), 2 * c(32))
        self.heads = nn.ModuleList([prediction_head(2 * c(128)), prediction_head(2 * c(64)),
                                    prediction_head(2 * c(32)), prediction_head(2 * c(32))])

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """Return predictions at 1/8, 1/4, 1/2, 1/1, each in pixels at its own resolution."""
        self.check_input(left, right)
        x = torch.cat([left, right], dim=1)
        conv1 = self.conv1(x)                                         # 1/2
        conv1_skip = self.conv1_skip(x)                               # 1/1
        fire3 = self.fire3(self.fire2(self.pool(conv1)))              # 1/4
        fire5 = self.fire5(self.fire4(self.pool(fire3)))              # 1/8
        fire9 = self.fire9(self.fire8(self.fire7(self.fire6(self.pool(fire5)))))  # 1/16
        fire10 = self.fire10(fire9) + fire5                           # 1/8
        fire11 = self.fire11(fire10) + fire3                          # 1/4
        fire12 = self.fire12(fire11) + self.skip12(conv1)             # 1/2
        fire13 = self.fire13(fire12) + self.skip13(conv1_skip)        # 1/1
        return [head(f) for head, f in zip(self.heads, (fire10, fire11, fire12, fire13))]


register_backend(BackendRecord(
    'squeezeseg', 'SqueezeSeg Fire/FireDeconv encoder-decoder regressing disparity',
    LearnedOptions, network=SqueezeSegStereo))
