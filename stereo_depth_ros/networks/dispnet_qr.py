"""DispNet with a quantized-regression head (DenseReg, Guler et al., CVPR 2017).

Disparity ``[0, num_bins * bin_width)`` is split into ``num_bins`` bins of ``bin_width``
full-resolution pixels; bin ``k`` covers ``[k * bin_width, (k + 1) * bin_width)`` and has
centre ``(k + 0.5) * bin_width``. The head classifies each pixel into a bin (``logits``) and
regresses one residual per bin (``residuals``, pixels relative to that bin's centre, the
network output is scaled by ``bin_width`` so it learns values of order 0.5). Decoding
(:func:`decode_bins`): centre of the argmax bin + that bin's residual, or (``expectation``)
the softmax-weighted mean of ``centre_k + residual_k``.

The trunk is :class:`~stereo_depth_ros.networks.dispnet.DispNet` (``trunk='dispnet'``, the
report's) or :class:`~stereo_depth_ros.networks.dispnetc.DispNetC` (``trunk='dispnetc'``); the
head upconvolves its
finest (1/2-resolution) decoder features to full resolution, concatenates the upsampled pr1
and (``coarse_offsets``, the default) the offsets ``(pr1 - centre_k) / bin_width`` of that
coarse estimate from every bin centre, and predicts ``logits`` and ``residuals`` there
(``BxKxHxW`` each) after two convolutions of ``head_channels``. With ``coarse_offsets`` each
bin's residual is regressed as a correction to the coarse estimate's offset from that bin's
centre, so a bin the classifier picks wrongly still decodes near the trunk's estimate instead
of at an arbitrary, never-trained residual.

``forward(left, right)`` returns a :class:`QROutput`: ``logits``, ``residuals``, the decoded
full-resolution ``disparity`` (``Bx1xHxW``, decode mode of the model) and
``trunk_predictions`` (the DispNet ``[pr6 .. pr1]``, pixels at their own resolution, usable
for deep supervision). ``predict`` returns ``disparity``. Training loss (project report):
``1000 * cross_entropy(logits, bin_index) + 1 * smooth_l1(gather_bins(residuals, bin_index),
residual)`` with ``bin_index, residual = disparity_to_bins(gt, num_bins, bin_width)``. The
report used 10 bins of 30 px; the default here is ``max_disparity / num_bins`` (19.2 px).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import torch
from torch import nn

from .common import (Float32Conv2d, StereoNet, conv_bn_relu, scaled_channels, upconv_bn_relu,
                     upsample_disparity)
from .dispnet import DispNet
from .dispnetc import DispNetC
from ..backends.options import LearnedOptions
from ..backends.record import BackendRecord
from ..backends.registry import register_backend
from ..settings import option

if TYPE_CHECKING:
    from ..training.config import LossConfig
    from ..training.losses import Loss

DECODE_MODES = ('argmax', 'expectation')
#: Trunks the head can sit on: DispNetSimple (the report's) or DispNetC (1-D correlation).
TRUNKS = {'dispnet': DispNet, 'dispnetc': DispNetC}


def bin_centres(num_bins: int, bin_width: float, device: Optional[torch.device] = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return the ``num_bins`` bin centres ``(k + 0.5) * bin_width``."""
    return (torch.arange(num_bins, device=device, dtype=dtype) + 0.5) * bin_width


def disparity_to_bins(disparity: torch.Tensor, num_bins: int,
                      bin_width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (bin_index int64, residual float) of each disparity value, same shape as input.

    ``bin_index = clamp(floor(d / bin_width), 0, num_bins - 1)`` and
    ``residual = d - (bin_index + 0.5) * bin_width`` (in ``[-bin_width/2, bin_width/2)`` for
    disparities inside the binned range; beyond it the residual grows so decoding stays exact).
    For cross entropy with ``BxKxHxW`` logits pass a ``BxHxW`` disparity (or squeeze dim 1).
    """
    index = torch.clamp(torch.floor(disparity / bin_width), 0, num_bins - 1).long()
    residual = disparity - (index.to(disparity.dtype) + 0.5) * bin_width
    return index, residual


def gather_bins(values: torch.Tensor, bin_index: torch.Tensor) -> torch.Tensor:
    """Return ``values[b, bin_index[b, y, x], y, x]`` as ``Bx1xHxW``.

    ``values`` is ``BxKxHxW``; ``bin_index`` is ``BxHxW`` or ``Bx1xHxW`` (int64).
    """
    if bin_index.dim() == 3:
        bin_index = bin_index.unsqueeze(1)
    return values.gather(1, bin_index)


def decode_bins(logits: torch.Tensor, residuals: torch.Tensor, bin_width: float,
                mode: str = 'argmax') -> torch.Tensor:
    """Return ``Bx1xHxW`` disparity from ``BxKxHxW`` bin logits and per-bin residuals.

    ``argmax``: centre of the most likely bin plus its residual. ``expectation``: sum over
    bins of ``softmax(logits)_k * (centre_k + residual_k)`` (differentiable, smoother).
    """
    if logits.shape != residuals.shape or logits.dim() != 4:
        raise ValueError(f'logits and residuals must both be BxKxHxW, got '
                         f'{tuple(logits.shape)} and {tuple(residuals.shape)}')
    centres = bin_centres(logits.shape[1], bin_width, logits.device, residuals.dtype)
    centres = centres.view(1, -1, 1, 1)
    if mode == 'argmax':
        # max().indices, not argmax(): the same bins, but argmax over the channels of an
        # NCHW tensor takes ~15x longer on CPU (torch 2.13).
        index = logits.max(dim=1, keepdim=True).indices
        return centres.expand_as(residuals).gather(1, index) + residuals.gather(1, index)
    if mode == 'expectation':
        probabilities = torch.softmax(logits.float(), dim=1).to(residuals.dtype)
        return (probabilities * (centres + residuals)).sum(dim=1, keepdim=True)
    raise ValueError(f'decode mode must be one of {DECODE_MODES}, got {mode!r}')


@dataclass
class QROutput:
    """What :class:`DispNetQR` returns; see the module docstring."""

    logits: torch.Tensor
    residuals: torch.Tensor
    disparity: torch.Tensor
    trunk_predictions: list[torch.Tensor]


class DispNetQR(StereoNet):
    """DispNet trunk + quantized-regression head (bin classification + per-bin residuals)."""

    divisor = 64
    loss_kind = 'quantized_regression'
    #: As its DispNetC trunk: the near pass takes over from a third of the range.
    default_near_from = 0.33
    #: Refined within 16 px by matching (chosen on validation scenes, models/README.md,
    #: "Refining by matching").
    default_refine_radius = 16.0

    def __init__(self, num_bins: int = 10, bin_width: Optional[float] = None,
                 width: float = 0.25, max_disparity: float = 192, batch_norm: bool = True,
                 decode: str = 'argmax', head_channels: Optional[int] = None,
                 coarse_offsets: bool = True, trunk: str = 'dispnet') -> None:
        super().__init__(max_disparity)
        if num_bins < 2:
            raise ValueError(f'num_bins must be >= 2, got {num_bins}')
        if bin_width is None:
            bin_width = float(max_disparity) / num_bins
        if bin_width <= 0:
            raise ValueError(f'bin_width must be > 0, got {bin_width}')
        if decode not in DECODE_MODES:
            raise ValueError(f'decode must be one of {DECODE_MODES}, got {decode!r}')
        if trunk not in TRUNKS:
            raise ValueError(f'trunk must be one of {tuple(TRUNKS)}, got {trunk!r}')
        if head_channels is None:
            head_channels = scaled_channels(96, width, minimum=8)
        if head_channels < 1:
            raise ValueError(f'head_channels must be >= 1, got {head_channels}')
        self.num_bins = int(num_bins)
        self.bin_width = float(bin_width)
        self.decode_mode = decode
        self.coarse_offsets = bool(coarse_offsets)
        self.architecture = {'num_bins': self.num_bins, 'bin_width': self.bin_width,
                             'width': float(width), 'max_disparity': float(max_disparity),
                             'batch_norm': bool(batch_norm), 'decode': decode,
                             'head_channels': int(head_channels),
                             'coarse_offsets': self.coarse_offsets, 'trunk': trunk}
        self.trunk = TRUNKS[trunk](width=width, max_disparity=max_disparity,
                                   batch_norm=batch_norm)
        head = int(head_channels)
        inputs = head + 1 + (self.num_bins if self.coarse_offsets else 0)
        self.head_up = upconv_bn_relu(self.trunk.decoder.out_channels, head, batch_norm)
        self.head_conv = nn.Sequential(conv_bn_relu(inputs, head, 3, 1, batch_norm),
                                       conv_bn_relu(head, head, 3, 1, batch_norm))
        self.classifier = nn.Conv2d(head, self.num_bins, 3, padding=1)
        self.regressor = Float32Conv2d(head, self.num_bins, 3, padding=1)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> QROutput:
        """Return logits, residuals (BxKxHxW), decoded disparity and the trunk predictions."""
        predictions, features = self.trunk.features(left, right)
        up = self.head_up(features)
        coarse = upsample_disparity(predictions[-1], up.shape[-2:])  # float32
        inputs = [up, coarse.to(up.dtype)]
        if self.coarse_offsets:
            # Pixels from every bin centre to the coarse estimate (float32).
            centres = bin_centres(self.num_bins, self.bin_width, up.device)
            if up.is_contiguous(memory_format=torch.channels_last):
                # Computed pixel-last, a channels_last map like the head's features (the
                # backends run channels_last): the concatenation, the first convolution and
                # the residual sum below then copy nothing to transpose (about 80 ms less per
                # pair at 384x1248 on a 2-core CPU). The same values as below.
                offsets = (coarse.permute(0, 2, 3, 1) - centres).permute(0, 3, 1, 2)
            else:
                offsets = coarse - centres.view(1, -1, 1, 1)
            inputs.append((offsets / self.bin_width).to(up.dtype))
        x = self.head_conv(torch.cat(inputs, dim=1))
        logits = self.classifier(x)
        residuals = self.regressor(x) * self.bin_width  # float32: sub-pixel steps
        if self.coarse_offsets:
            residuals = residuals + offsets
        disparity = decode_bins(logits, residuals, self.bin_width, self.decode_mode)
        return QROutput(logits, residuals, disparity, predictions)

    def decode(self, output: QROutput, size: Sequence[int]) -> torch.Tensor:
        """Return the decoded full-resolution disparity ``Bx1xHxW`` in pixels."""
        return output.disparity

    def output_float(self, output: QROutput) -> QROutput:
        """Return ``output`` with every tensor in float32."""
        return QROutput(output.logits.float(), output.residuals.float(),
                        output.disparity.float(),
                        [p.float() for p in output.trunk_predictions])

    def make_loss(self, config: 'LossConfig', total_steps: int) -> 'Loss':
        """Return bin cross-entropy + residual smooth-L1 (+ trunk EPE with a schedule)."""
        from ..training.config import ConfigError
        from ..training.losses import LossSchedule, MultiScaleEPELoss, QuantizedRegressionLoss
        if config.unseen_weight != 1.0:
            raise ConfigError('model.loss.unseen_weight weighs a multi-scale EPE; the '
                              'quantized-regression loss of dispnet_qr has none: leave it 1')
        trunk = MultiScaleEPELoss(LossSchedule.from_config(config, total_steps)) \
            if config.schedule else None
        return QuantizedRegressionLoss(
            self.num_bins, self.bin_width, config.ce_weight, config.residual_weight,
            config.trunk_weight, trunk, config.residual_neighbours)

    def apply_options(self, options: LearnedOptions) -> None:
        """Adopt the ``decode`` option of :class:`QROptions` (empty: keep the stored mode)."""
        decode = getattr(options, 'decode', '')
        if decode:
            self.decode_mode = decode


@dataclass(frozen=True)
class QROptions(LearnedOptions):
    """The learned backends' options plus how dispnet_qr turns bins into disparity."""

    decode: str = option('', "DispNet-QR: argmax (centre of the most likely bin plus its "
                         "residual, as trained and scored) or expectation (softmax-weighted "
                         "over all bins); '' keeps the mode stored with the weights.",
                         choices=('',) + DECODE_MODES)


register_backend(BackendRecord(
    'dispnet_qr', 'DispNet with quantized regression (bin classification + residuals)',
    QROptions, network=DispNetQR))
