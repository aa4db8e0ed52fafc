"""Building blocks and conventions shared by every disparity network.

Conventions (all networks in :mod:`stereo_depth_ros.networks`):

* Inputs are the left and right images as float tensors ``Bx3xHxW`` normalised by
  :func:`normalize_image` (per-image zero mean / unit standard deviation). ``H`` and ``W``
  must be multiples of the network's ``divisor`` attribute (64 for DispNet/DispNetC/DispNetQR,
  16 for SqueezeSegStereo); :func:`pad_to_divisor` pads, the backend crops back.
* ``forward(left, right)`` returns a list of disparity predictions ordered coarse -> fine,
  each ``Bx1xhxw``, **in pixels at that prediction's own resolution** (a disparity of 10 px
  at full resolution is 5 at 1/2 resolution). A multi-scale loss compares prediction ``k``
  with the full-resolution ground truth downsampled to ``(h, w)``
  (:func:`~stereo_depth_ros.training.losses.downsample_target`). The QR network returns a
  :class:`~stereo_depth_ros.networks.dispnet_qr.QROutput` instead (see its docstring).
* :func:`full_resolution` turns the finest prediction into ``Bx1xHxW`` full-resolution
  pixels; every network's ``predict(left, right)`` returns exactly that, so inference code
  never needs to know the architecture.
* ``model.architecture`` is the dict of constructor keyword arguments that rebuilds the model
  (stored in the weights file's metadata).
* Each network owns its training loss (:meth:`StereoNet.make_loss`) and the decoding of its
  output (:meth:`StereoNet.decode`, :meth:`StereoNet.output_float`), so training code never
  branches on the architecture either.
"""

import math
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..backends.options import LearnedOptions
    from ..training.config import LossConfig
    from ..training.losses import Loss


def scaled_channels(channels: int, width: float, minimum: int = 4) -> int:
    """Return ``channels * width`` rounded to a multiple of 4, at least ``minimum``."""
    return max(minimum, int(round(channels * width / 4.0)) * 4)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 batch_norm: bool = True, dilation: int = 1) -> nn.Sequential:
    """Return Conv2d (+ BatchNorm2d) + ReLU with 'same' padding for odd kernels."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                  padding=dilation * (kernel_size // 2), dilation=dilation,
                  bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def upconv_bn_relu(in_channels: int, out_channels: int,
                   batch_norm: bool = True) -> nn.Sequential:
    """Return a x2 upconvolution (ConvTranspose2d 4x4 stride 2) (+ BatchNorm2d) + ReLU."""
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1,
                           bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def area_mean(tensor: torch.Tensor, factor: int) -> torch.Tensor:
    """Return the means of ``factor`` x ``factor`` blocks of ``...xHxW`` (H, W multiples of it).

    The values of ``avg_pool2d`` up to float rounding, from strided slices: faster on
    channels_last tensors with few channels (images, disparities).
    """
    return _sum_strided(_sum_strided(tensor, factor, -2), factor, -1) * (1.0 / factor ** 2)


def _sum_strided(tensor: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """Return the sums of ``factor`` consecutive entries along ``dim`` (a multiple of it)."""
    index: list[slice] = [slice(None)] * tensor.dim()
    index[dim] = slice(0, None, factor)
    total = tensor[tuple(index)]
    for offset in range(1, factor):
        index[dim] = slice(offset, None, factor)
        total = total + tensor[tuple(index)]
    return total


def warp_right_to_left(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Return ``right`` (image or features) sampled at ``x - d``: the left view, where d is right.

    ``disparity`` is ``Bx1xHxW`` in pixels of ``right``'s resolution; samples outside the
    image repeat its border.
    """
    batch, _, height, width = right.shape
    # The sampling grid is float32 under any autocast: in bfloat16 a column index of 600
    # could only move in steps of 4 px.
    with torch.autocast(right.device.type, enabled=False):
        xs = torch.arange(width, device=right.device, dtype=torch.float32).view(1, 1, width)
        ys = torch.arange(height, device=right.device, dtype=torch.float32).view(1, height, 1)
        x = (xs - disparity[:, 0].float()) * (2.0 / max(width - 1, 1)) - 1.0
        y = (ys * (2.0 / max(height - 1, 1)) - 1.0).expand(batch, height, width)
        grid = torch.stack([x, y], dim=-1)
        warped = F.grid_sample(right.float(), grid, mode='bilinear', padding_mode='border',
                               align_corners=True)
    return warped.to(right.dtype)


def single_output_conv3x3(x: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor | None) -> torch.Tensor:
    """Return the 3x3 'same' (zero-padded) convolution of ``x`` to one channel.

    ``weight`` is ``1xCx3x3``. Computed as a 1x1 convolution to the nine taps (one map per
    kernel position) and the sum of those maps shifted into place: the same values up to float
    rounding, about twice as fast on the CPU, where oneDNN's convolutions with one output
    channel are about as slow as with twelve (0.9 against 1.9 ms for a 12-channel 192x624 map
    on a 2-core AMD EPYC; a small part of a whole network's time). :class:`Float32Conv2d` uses
    it on the CPU only: on a GPU it would be ten kernels instead of one.
    """
    height, width = x.shape[-2:]
    # Padded by 1: a border of zero taps (no bias), which is the zero padding of x.
    padded = F.conv2d(x, weight.permute(2, 3, 0, 1).reshape(9, -1, 1, 1), padding=1)
    out = padded[:, 0:1, :height, :width].clone()
    for tap in range(1, 9):
        row, column = divmod(tap, 3)
        out = out.add_(padded[:, tap:tap + 1, row:row + height, column:column + width])
    return out if bias is None else out.add_(bias.view(1, 1, 1, 1))


class Float32Conv2d(nn.Conv2d):
    """A Conv2d that computes in float32 even under autocast.

    For the layers that output disparity: in bfloat16 (8-bit mantissa) a value of 64-128 px
    could only take steps of 0.5 px. Same parameters and state-dict keys as ``nn.Conv2d``.
    On the CPU a 3x3 'same' convolution to one channel (the prediction heads) runs as
    :func:`single_output_conv3x3`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` cast to float32, with autocast off; the result is float32."""
        with torch.autocast(x.device.type, enabled=False):
            if x.device.type == 'cpu' and self._single_output_3x3():
                return single_output_conv3x3(x.float(), self.weight, self.bias)
            return super().forward(x.float())

    def _single_output_3x3(self) -> bool:
        """Return whether this is a 3x3, stride-1, zero-padded 'same' conv to one channel."""
        return (self.out_channels == 1 and self.kernel_size == (3, 3)
                and self.stride == (1, 1) and self.padding == (1, 1)
                and self.dilation == (1, 1) and self.groups == 1
                and self.padding_mode == 'zeros')


def prediction_head(in_channels: int, out_channels: int = 1) -> nn.Conv2d:
    """Return the linear 3x3 convolution that predicts disparity (no activation, float32)."""
    return Float32Conv2d(in_channels, out_channels, 3, padding=1)


def upsample_disparity(disparity: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinearly resize ``Bx1xhxw`` disparity to ``size`` (h, w) and rescale its pixel units.

    Computed and returned in float32 (also under autocast), like the prediction heads.
    """
    height, width = int(size[0]), int(size[1])
    disparity = disparity.float()
    if disparity.shape[-2:] == (height, width):
        return disparity
    scale = width / disparity.shape[-1]
    with torch.autocast(disparity.device.type, enabled=False):
        resized = F.interpolate(disparity, size=(height, width), mode='bilinear',
                                align_corners=False)
    return resized * scale


def full_resolution(predictions: Sequence[torch.Tensor] | torch.Tensor,
                    size: Sequence[int]) -> torch.Tensor:
    """Return the finest prediction as ``Bx1xHxW`` disparity in full-resolution pixels.

    ``predictions`` is the coarse -> fine list a network's forward returns (or one tensor);
    ``size`` is the network input's ``(H, W)``.
    """
    finest = predictions if isinstance(predictions, torch.Tensor) else predictions[-1]
    return upsample_disparity(finest, size)


def normalize_image(image: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Normalise ``Bx3xHxW`` (or ``Bx1xHxW``, replicated) images to zero mean, unit std.

    Input values are in 0..255 (uint8 or float). Statistics are taken per image over all
    channels and pixels, which makes the networks insensitive to global gain/offset changes
    between datasets and between the two cameras.
    """
    if image.shape[1] not in (1, 3):
        raise ValueError(f'expected Bx3xHxW or Bx1xHxW images, got shape {tuple(image.shape)}')
    # A converted (uint8) image is a fresh tensor that can be centred in place; a float32
    # one is the caller's.
    converted = image.dtype != torch.float32
    image = image.float()
    if image.shape[1] == 1:
        image, converted = image.expand(-1, 3, -1, -1), False
    # The statistics of image / 255 without dividing every pixel: (x/255 - m/255) / (s/255 +
    # eps) = (x - m) / (s + 255 eps). The (unbiased) standard deviation is the norm of the
    # centred image: one reduction fewer than Tensor.std, which centres the image again.
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    centred = image.sub_(mean) if converted else image - mean
    count = centred[0].numel()
    norm = torch.linalg.vector_norm(centred, dim=(1, 2, 3), keepdim=True)
    return centred.div_(norm / math.sqrt(max(count - 1, 1)) + 255.0 * eps)


def pad_to_divisor(image: torch.Tensor, divisor: int,
                   mode: str = 'replicate') -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``BxCxHxW`` on the right/bottom to multiples of ``divisor``; return it and (H, W)."""
    height, width = image.shape[-2:]
    pad_h = (-height) % divisor
    pad_w = (-width) % divisor
    if pad_h or pad_w:
        if mode == 'zeros':
            image = F.pad(image, (0, pad_w, 0, pad_h))
        else:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    return image, (height, width)


class StereoNet(nn.Module):
    """Base class: ``divisor``, ``max_disparity``, ``architecture``, ``predict``, loss."""

    #: Input height and width must be multiples of this.
    divisor: int = 64
    #: The ``model.loss.kind`` of a training config that :meth:`make_loss` builds.
    loss_kind: str = 'multiscale_epe'
    #: The backend option ``near_from`` that 0 stands for: where a near pass takes over, as
    #: a fraction of the range of the pass before it. Chosen per network on full-range
    #: validation scenes and the unlabeled pairs (models/README.md, "The near pass").
    default_near_from: float = 0.5
    #: What the backend option ``match_passes`` ``auto`` stands for: whether the passes'
    #: estimates compete by matching cost (:mod:`~stereo_depth_ros.networks.pass_choice`).
    #: Chosen per network on the same scenes and pairs (models/README.md, "Choosing between
    #: the passes").
    default_match_passes: bool = False
    #: What the backend option ``refine_radius`` -1 stands for: how far (px) around the
    #: network's estimate :func:`~stereo_depth_ros.networks.refine.refine_by_matching`
    #: searches; 0 = no refinement. Chosen per network on full-range validation scenes
    #: (models/README.md, "Refining by matching").
    default_refine_radius: float = 0.0

    def __init__(self, max_disparity: float) -> None:
        super().__init__()
        self.max_disparity = float(max_disparity)
        self.architecture: dict = {}

    def check_input(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Raise ValueError unless left/right are Bx3xHxW of one size divisible by divisor."""
        if left.dim() != 4 or left.shape[1] != 3 or left.shape != right.shape:
            raise ValueError(
                f'{type(self).__name__} expects left and right Bx3xHxW of one shape, got '
                f'{tuple(left.shape)} and {tuple(right.shape)}')
        height, width = left.shape[-2:]
        if height % self.divisor or width % self.divisor:
            raise ValueError(
                f'{type(self).__name__} needs H and W divisible by {self.divisor}, got '
                f'{height}x{width}; pad with pad_to_divisor()')

    def predict(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Return full-resolution disparity ``Bx1xHxW`` in pixels."""
        return self.decode(self(left, right), left.shape[-2:])

    def decode(self, output: Any, size: Sequence[int]) -> torch.Tensor:
        """Return the full-resolution ``Bx1xHxW`` disparity of a ``forward`` output."""
        return full_resolution(output, size)

    def output_float(self, output: Any) -> Any:
        """Return a ``forward`` output with its tensors in float32 (after autocast)."""
        return [prediction.float() for prediction in output]

    def make_loss(self, config: 'LossConfig', total_steps: int) -> 'Loss':
        """Return the training loss of this network (multi-scale EPE by default)."""
        from ..training.losses import LossSchedule, MultiScaleEPELoss
        return MultiScaleEPELoss(LossSchedule.required(config, total_steps),
                                 config.unseen_weight)

    def apply_options(self, options: 'LearnedOptions') -> None:
        """Adopt inference options that change the network (none by default)."""
