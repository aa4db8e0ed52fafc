"""DispNet (DispNetSimple, Mayer et al., CVPR 2016) with BatchNorm and a width multiplier.

Contracting part: conv1 (7x7, /2) .. conv6b (/64) on the concatenated left+right images
(6 channels). Expanding part: for each scale 5..1 an upconvolution (ConvTranspose2d 4x4,
stride 2), concatenated with the upsampled coarser prediction and the encoder skip
connection, an ``iconv`` 3x3 convolution and a linear 3x3 prediction ``pr``. Predictions
pr6 (1/64) .. pr1 (1/2 resolution) are produced coarse to fine, each fed (upsampled, x2 in
value) into the next finer stage. Every conv is followed by BatchNorm + ReLU (training
without BN failed in the project report).

Output convention (shared by all networks, see :mod:`stereo_depth_ros.networks.common`):
``forward(left, right)`` always returns ``[pr6, pr5, pr4, pr3, pr2, pr1]``, each ``Bx1xhxw``
in pixels **at its own resolution**; ``predict(left, right)`` returns the full-resolution
``Bx1xHxW`` disparity (pr1 upsampled bilinearly and multiplied by 2). Inputs: normalised
``Bx3xHxW`` tensors (:func:`~stereo_depth_ros.networks.common.normalize_image`), H and W
divisible by 64.
"""

from typing import Sequence

import torch
from torch import nn

from .common import (StereoNet, conv_bn_relu, prediction_head, scaled_channels,
                     upconv_bn_relu, upsample_disparity)
from ..backends.options import LearnedOptions
from ..backends.record import BackendRecord
from ..backends.registry import register_backend

#: Channel counts of the paper at width 1: conv1..conv6 outputs and upconv5..upconv1 outputs.
ENCODER_CHANNELS = (64, 128, 256, 512, 512, 1024)
DECODER_CHANNELS = (512, 256, 128, 64, 32)


class DispNetEncoderTail(nn.Module):
    """conv3a/b .. conv6a/b: from 1/4-resolution features to the 1/64 bottleneck."""

    def __init__(self, in_channels: int, channels: Sequence[int], batch_norm: bool) -> None:
        super().__init__()
        c3, c4, c5, c6 = channels
        self.conv3 = nn.Sequential(conv_bn_relu(in_channels, c3, 5, 2, batch_norm),
                                   conv_bn_relu(c3, c3, 3, 1, batch_norm))
        self.conv4 = nn.Sequential(conv_bn_relu(c3, c4, 3, 2, batch_norm),
                                   conv_bn_relu(c4, c4, 3, 1, batch_norm))
        self.conv5 = nn.Sequential(conv_bn_relu(c4, c5, 3, 2, batch_norm),
                                   conv_bn_relu(c5, c5, 3, 1, batch_norm))
        self.conv6 = nn.Sequential(conv_bn_relu(c5, c6, 3, 2, batch_norm),
                                   conv_bn_relu(c6, c6, 3, 1, batch_norm))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return [conv3b, conv4b, conv5b, conv6b] features (1/8 .. 1/64)."""
        f3 = self.conv3(x)
        f4 = self.conv4(f3)
        f5 = self.conv5(f4)
        f6 = self.conv6(f5)
        return [f3, f4, f5, f6]


class DispNetDecoder(nn.Module):
    """Expanding part: upconv + upsampled prediction + skip -> iconv -> prediction, x5."""

    def __init__(self, skip_channels: Sequence[int], bottleneck_channels: int,
                 decoder_channels: Sequence[int], batch_norm: bool) -> None:
        """``skip_channels``: channels of the 1/32, 1/16, 1/8, 1/4, 1/2 skip features."""
        super().__init__()
        self.pr6 = prediction_head(bottleneck_channels)
        self.upconvs = nn.ModuleList()
        self.iconvs = nn.ModuleList()
        self.heads = nn.ModuleList()
        previous = bottleneck_channels
        for skip, channels in zip(skip_channels, decoder_channels):
            self.upconvs.append(upconv_bn_relu(previous, channels, batch_norm))
            self.iconvs.append(conv_bn_relu(channels + 1 + skip, channels, 3, 1, batch_norm))
            self.heads.append(prediction_head(channels))
            previous = channels
        self.out_channels = previous

    def forward(self, skips: Sequence[torch.Tensor],
                bottleneck: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return (predictions coarse -> fine, finest iconv features)."""
        prediction = self.pr6(bottleneck)
        predictions = [prediction]
        features = bottleneck
        for skip, upconv, iconv, head in zip(skips, self.upconvs, self.iconvs, self.heads):
            up = upconv(features)
            # The features' dtype (bfloat16 under autocast): a float32 map here would make the
            # concatenation, and the convolution's input, float32 too.
            coarse = upsample_disparity(prediction, up.shape[-2:]).to(up.dtype)
            features = iconv(torch.cat([up, coarse, skip], dim=1))
            prediction = head(features)
            predictions.append(prediction)
        return predictions, features


class DispNet(StereoNet):
    """DispNetSimple: one encoder-decoder on the concatenated stereo pair.

    ``width`` scales every channel count (1.0 = paper, ~38 M parameters; 0.25 ~ 2.4 M).
    ``max_disparity`` (full-resolution pixels) is recorded for the backend's validity mask.
    """

    divisor = 64
    #: Refined within 56 px by matching (chosen on validation scenes, models/README.md,
    #: "Refining by matching": 64 px raised the pseudo-label EPE above the network's own).
    default_refine_radius = 56.0

    def __init__(self, width: float = 0.25, max_disparity: float = 192,
                 batch_norm: bool = True) -> None:
        super().__init__(max_disparity)
        self.architecture = {'width': float(width), 'max_disparity': float(max_disparity),
                             'batch_norm': bool(batch_norm)}
        enc = [scaled_channels(c, width) for c in ENCODER_CHANNELS]
        dec = [scaled_channels(c, width) for c in DECODER_CHANNELS]
        self.conv1 = conv_bn_relu(6, enc[0], 7, 2, batch_norm)
        self.conv2 = conv_bn_relu(enc[0], enc[1], 5, 2, batch_norm)
        self.tail = DispNetEncoderTail(enc[1], enc[2:], batch_norm)
        self.decoder = DispNetDecoder(
            [enc[4], enc[3], enc[2], enc[1], enc[0]], enc[5], dec, batch_norm)

    def features(self, left: torch.Tensor,
                 right: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return (predictions coarse -> fine, finest 1/2-resolution decoder features)."""
        self.check_input(left, right)
        f1 = self.conv1(torch.cat([left, right], dim=1))
        f2 = self.conv2(f1)
        f3, f4, f5, f6 = self.tail(f2)
        return self.decoder([f5, f4, f3, f2, f1], f6)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """Return [pr6 .. pr1], each Bx1xhxw in pixels at its own resolution."""
        return self.features(left, right)[0]


register_backend(BackendRecord(
    'dispnet', 'DispNetSimple encoder-decoder on the concatenated pair',
    LearnedOptions, network=DispNet))
