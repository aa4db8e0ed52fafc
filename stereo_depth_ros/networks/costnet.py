"""CostNet: a correlation cost volume at 1/4 resolution, 2-D aggregation, convex upsampling.

A compact real-time design in the manner of the 2-D-aggregation stereo networks that followed
DispNetC (a cost volume aggregated by an hourglass of 2-D convolutions instead of 3-D ones,
regressed with a soft-argmin and upsampled with learned convex weights, as in RAFT):

1. **Features.** One shared tower (3x3 conv /2, 3x3 conv /4, 3x3 conv) gives 1/4-resolution
   features of each image; a 1x1 projection gives the matching features.
2. **Cost volume.** :func:`~stereo_depth_ros.networks.correlation.correlation_1d` of the
   matching features over ``max_disparity / 4`` displacements: one channel per 4 px of
   full-resolution disparity, so the range is an explicit, declared property of the network.
3. **Aggregation.** The volume and the left features go down to 1/8 and 1/16 and back up
   (2-D convolutions with skips); at 1/4 a 1x1 convolution turns the raw volume, the left
   features and the upsampled context into one logit per displacement.
4. **Regression.** A soft-argmin: over all displacements in training, restricted at
   inference to the ``2 * topk_radius + 1`` displacements around the most likely one
   (sub-pixel, and not pulled between two far-apart modes).
5. **Upsampling.** Each full-resolution pixel is a convex combination of the 3x3 coarse
   estimates around it, with weights predicted from the 1/4-resolution features: edges stay
   sharp instead of being blurred by bilinear interpolation.
6. **Refinement** (``refine_channels`` > 0; :class:`DisparityRefinement`). At 1/2 resolution
   a few (dilated) convolutions see the tower's left features, their difference from the
   right features warped by the estimate, and the estimate itself, and add a residual:
   sub-pixel precision and object edges that the 1/4-resolution volume cannot resolve.

Training supervises the output disparities (L1) and the cost volume itself
(:func:`volume_cross_entropy`: cross-entropy against the two displacements that bracket the
true disparity), which teaches the volume one sharp, sub-pixel mode far faster than the L1
through the soft-argmin alone.

``forward(left, right)`` returns ``[coarse, full]``: the 1/4-resolution estimate in 1/4-res
pixels and the full-resolution disparity in pixels (the project's multi-scale convention).
H and W must be multiples of ``divisor`` (16).
"""

import math
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from .common import (Float32Conv2d, StereoNet, area_mean, conv_bn_relu, scaled_channels,
                     upconv_bn_relu, warp_right_to_left)
from .correlation import correlation_1d
from ..backends.options import LearnedOptions
from ..backends.record import BackendRecord
from ..backends.registry import register_backend

if TYPE_CHECKING:
    from ..training.config import LossConfig
    from ..training.losses import Loss

#: Full-resolution pixels per cost-volume displacement (the volume is at 1/4 resolution).
VOLUME_STRIDE = 4
#: Channel counts at width 1: feature tower (1/2, 1/4), aggregation (1/8, 1/16).
TOWER_CHANNELS = (16, 32)
AGGREGATION_CHANNELS = (48, 64)
#: Disparities (px of the layer's resolution) are divided by this before they enter a
#: convolution.
DISPARITY_INPUT_SCALE = 64.0


class DisparityRefinement(nn.Module):
    """Residual correction of a full-resolution disparity, computed at 1/2 resolution.

    Inputs: the left and right 1/2-resolution features of the tower and the disparity. The
    right features are warped to the left view by the (pooled) disparity; where it is right
    they match the left ones. The last convolution starts at zero, so an untrained refinement
    leaves the disparity as it is.
    """

    def __init__(self, features: int, channels: int) -> None:
        super().__init__()
        self.inputs = conv_bn_relu(2 * features + 1, channels, 1)
        self.body = nn.Sequential(conv_bn_relu(channels, channels, 3),
                                  conv_bn_relu(channels, channels, 3, dilation=2),
                                  conv_bn_relu(channels, channels, 3, dilation=4))
        self.residual = Float32Conv2d(channels, 1, 3, padding=1)
        for parameter in self.residual.parameters():  # weight and bias
            nn.init.zeros_(parameter)

    def project_inputs(self, half: torch.Tensor, left: torch.Tensor,
                       right: torch.Tensor) -> torch.Tensor:
        """Return the input convolution of ``[left, left - warped right, half / 64]``.

        Computed without building that 2F+1-channel map: a 1x1 convolution and the bilinear
        warp are both linear in the features at each pixel, so with the convolution's weights
        split as ``W = [W_l, W_d, w_h]`` it equals ``(W_l + W_d) left - warp(W_d right) +
        w_h half / 64``: the right features are projected to the refinement's fewer channels
        before they are warped, and nothing is concatenated (about 1.7 ms less per pass at
        1/2 of 384x1248 on a 2-core CPU). Where the features have fewer channels than the
        refinement (``costnet_fast``), they are warped first and projected after: the warp
        costs per channel. Batch norm and ReLU follow as in ``inputs``.
        """
        conv = cast(nn.Conv2d, self.inputs[0])  # 1x1, stride 1, no padding: per pixel
        features = left.shape[1]
        w_left, w_difference, w_disparity = conv.weight.split([features, features, 1], dim=1)
        projected = F.conv2d(left, w_left + w_difference, conv.bias)
        if features < conv.out_channels:
            warped = F.conv2d(warp_right_to_left(right, half), w_difference)
        else:
            warped = warp_right_to_left(F.conv2d(right, w_difference), half)
        # In place on the fresh convolution output: two passes over it instead of four.
        projected = projected.sub_(warped)
        projected = projected.addcmul_(w_disparity.reshape(1, -1, 1, 1), half,
                                       value=1.0 / DISPARITY_INPUT_SCALE)
        return self.inputs[1:](projected.to(left.dtype))

    def forward(self, disparity: torch.Tensor, left: torch.Tensor,
                right: torch.Tensor) -> torch.Tensor:
        """Return ``disparity`` (``Bx1xHxW``, px) plus the residual of 1/2-res features."""
        # The 2x2 mean of the disparity, halved (1/2-resolution pixels).
        half = area_mean(disparity, 2) * 0.5
        residual = self.residual(self.body(self.project_inputs(half, left, right)))
        with torch.autocast(residual.device.type, enabled=False):
            upsampled = F.interpolate(residual, scale_factor=2, mode='bilinear',
                                      align_corners=False)
        return torch.add(disparity, upsampled, alpha=2)


class CostNet(StereoNet):
    """Correlation volume at 1/4 resolution with 2-D aggregation and convex upsampling."""

    divisor = 16
    loss_kind = 'cost_volume'
    default_match_passes = True
    #: The cost-volume logits of the latest forward pass (the training loss uses them).
    last_logits: torch.Tensor

    def __init__(self, width: float = 1.0, max_disparity: float = 192,
                 topk_radius: int = 2, refine_channels: int = 0) -> None:
        super().__init__(max_disparity)
        if int(topk_radius) < 0:  # every pair would then fail in regress, not the loading
            raise ValueError(f'topk_radius must be >= 0, got {topk_radius}')
        levels = int(math.ceil(float(max_disparity) / VOLUME_STRIDE))
        self.levels = levels
        self.topk_radius = int(topk_radius)
        self.architecture = {'width': float(width), 'max_disparity': float(max_disparity),
                             'topk_radius': self.topk_radius}
        if refine_channels:
            # Recorded only when used: weights saved before the refinement existed load as 0.
            self.architecture['refine_channels'] = int(refine_channels)
        half, quarter = (scaled_channels(c, width) for c in TOWER_CHANNELS)
        mid, low = (scaled_channels(c, width) for c in AGGREGATION_CHANNELS)
        self.tower = nn.Sequential(conv_bn_relu(3, half, 3, 2), conv_bn_relu(half, quarter, 3, 2),
                                   conv_bn_relu(quarter, quarter, 3, 1))
        self.match = nn.Conv2d(quarter, quarter, 1)
        self.down8 = nn.Sequential(conv_bn_relu(levels + quarter, mid, 3, 2),
                                   conv_bn_relu(mid, mid, 3, 1))
        self.down16 = nn.Sequential(conv_bn_relu(mid, low, 3, 2), conv_bn_relu(low, low, 3, 1))
        self.up8 = upconv_bn_relu(low, mid)
        self.fuse8 = conv_bn_relu(2 * mid, mid, 3, 1)
        self.up4 = upconv_bn_relu(mid, quarter)
        self.logits = Float32Conv2d(levels + 2 * quarter, levels, 1)
        self.mask = nn.Sequential(conv_bn_relu(2 * quarter, 2 * quarter, 1, 1),
                                  nn.Conv2d(2 * quarter, 9 * VOLUME_STRIDE ** 2, 1))
        self.refine = (DisparityRefinement(half, int(refine_channels)) if refine_channels
                       else None)

    def regress(self, logits: torch.Tensor) -> torch.Tensor:
        """Return the soft-argmin of ``BxDxhxw`` logits in 1/4-resolution pixels.

        In training over all displacements (every logit gets a gradient, which teaches the
        volume one sharp mode); in eval mode over the window around the most likely one.
        """
        logits = logits.float()
        if self.training:
            levels = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
            return (torch.softmax(logits, dim=1) * levels.view(1, -1, 1, 1)).sum(1, True)
        # max(...).indices: the argmax, in about half the time of argmax on channels_last.
        best = logits.max(dim=1, keepdim=True).indices
        offsets = torch.arange(-self.topk_radius, self.topk_radius + 1, device=logits.device)
        window = (best + offsets.view(1, -1, 1, 1)).clamp(0, logits.shape[1] - 1)
        weights = torch.softmax(torch.gather(logits, 1, window), dim=1)
        return (weights * window.to(weights.dtype)).sum(dim=1, keepdim=True)

    def upsample(self, disparity: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Convex x4 upsampling of ``Bx1xhxw`` (1/4-res pixels) to full-resolution pixels."""
        batch, _, height, width = disparity.shape
        factor = VOLUME_STRIDE
        # Pixel-last layout (the network runs channels_last): mask channel k * 16 + s is the
        # weight of 3x3 neighbour k for sub-pixel s = row * 4 + column.
        weights = mask.float().permute(0, 2, 3, 1).reshape(batch, height, width, 9,
                                                           factor * factor)
        weights = torch.softmax(weights, dim=3)
        patches = F.unfold(disparity.contiguous() * factor, 3, padding=1)
        patches = patches.view(batch, 9, height, width).permute(0, 2, 3, 1).unsqueeze(3)
        # Per pixel (1x9 neighbours) @ (9x16 weights): no 9x16 product map in memory, unlike
        # a multiply and a sum; in float32 under any autocast (disparity values).
        with torch.autocast(disparity.device.type, enabled=False):
            full = torch.matmul(patches, weights).view(batch, height, width, factor, factor)
        return full.permute(0, 1, 3, 2, 4).reshape(batch, 1, height * factor, width * factor)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """Return [1/4-resolution disparity (1/4-res px), full-resolution disparity (px)]."""
        self.check_input(left, right)
        (left_half, right_half), (left_features, right_features) = self.towers(left, right)
        volume = correlation_1d(self.match(left_features).float(),
                                self.match(right_features).float(),
                                self.levels - 1).to(left_features.dtype)
        x8 = self.down8(torch.cat([volume, left_features], dim=1))
        x16 = self.down16(x8)
        x8 = self.fuse8(torch.cat([self.up8(x16), x8], dim=1))
        context = self.up4(x8)
        logits = self.logits(torch.cat([volume, left_features, context], dim=1))
        self.last_logits = logits
        coarse = self.regress(logits)
        mask = self.mask(torch.cat([left_features, context], dim=1))
        full = self.upsample(coarse, mask)
        if self.refine is not None:
            full = self.refine(full, left_half, right_half)
        return [coarse, full]

    def towers(self, left: torch.Tensor, right: torch.Tensor
               ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Return the tower's 1/2- and 1/4-resolution features: ``(halves, quarters)``.

        Each is a ``(left, right)`` pair. In training both views go through as one batch, so
        that batch norm takes its statistics over both. In eval mode on the CPU (batch norm on
        its running statistics: the same values) each view goes alone, which oneDNN runs
        faster: 4.4 against 6.1 ms for ``costnet_fast``'s tower and matching projection at
        384x1248 on a 2-core AMD EPYC, two batches of one against one of two (a GPU keeps the
        one batch).
        """
        if not self.training and left.device.type == 'cpu':
            halves = self.tower[0](left), self.tower[0](right)
            return halves, (self.tower[1:](halves[0]), self.tower[1:](halves[1]))
        batch = left.shape[0]
        both = self.tower[0](torch.cat([left, right], dim=0))
        features = self.tower[1:](both)
        return (both[:batch], both[batch:]), (features[:batch], features[batch:])

    def make_loss(self, config: 'LossConfig', total_steps: int) -> 'Loss':
        """Return multi-scale EPE plus the cost volume's cross-entropy (``ce_weight``)."""
        from ..training.losses import CostVolumeLoss, LossSchedule
        return CostVolumeLoss(LossSchedule.required(config, total_steps), self,
                              config.ce_weight, config.unseen_weight)


def volume_cross_entropy(logits: torch.Tensor, disparity: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``BxDxhxw`` logits against a two-hot target of the true disparity.

    ``disparity`` is ``Bx1xhxw`` in 1/4-resolution pixels (= displacements) and ``mask`` marks
    known pixels. The target puts ``1 - f`` on ``floor(d)`` and ``f`` on the next displacement
    (``f`` its fraction), so its expectation is exactly ``d``; pixels beyond the volume are
    left out.
    """
    levels = logits.shape[1]
    inside = mask * (disparity < levels - 1).to(mask.dtype) * (disparity >= 0).to(mask.dtype)
    value = disparity.clamp(0, levels - 1.001)
    low = value.floor()
    fraction = value - low
    target = torch.zeros_like(logits, dtype=torch.float32)
    target.scatter_(1, low.long(), 1 - fraction)
    target.scatter_add_(1, (low + 1).long(), fraction)
    log_p = torch.log_softmax(logits.float(), dim=1)
    loss = -(target * log_p).sum(dim=1, keepdim=True)
    return (loss * inside).sum() / inside.sum().clamp_min(1.0)


register_backend(BackendRecord(
    'costnet', 'cost volume at 1/4 resolution, 2-D aggregation, convex upsampling',
    LearnedOptions, network=CostNet))
register_backend(BackendRecord(
    'costnet_fast', 'costnet at half width (its channels narrowed from costnet, retrained): '
    'faster, less accurate', LearnedOptions, network=CostNet))
