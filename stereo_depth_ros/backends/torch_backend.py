"""Shared inference backend of the learned networks (torch, safetensors weights).

Input uint8 grey or RGB images are replicated to 3 channels, normalised per image
(:func:`~stereo_depth_ros.networks.common.normalize_image`), padded right/bottom to the
network's divisor, run under ``torch.inference_mode`` and cropped back. Output float32 HxW;
NaN where the prediction is non-finite, negative or above ``max_disparity``.

Options: ``device`` ``auto`` (CUDA when available) | ``cpu`` | ``cuda[:n]``; ``precision``
``fp32`` (CPU default) | ``bf16`` (bfloat16 autocast, CPU or CUDA; never chosen by itself,
and warned about on CPUs without native bfloat16, where it is 15-45x slower) | ``fp16`` (CUDA
autocast, the CUDA default); ``pad_mode`` ``replicate`` | ``zeros``;
``max_disparity`` (finite, > 0; defaults to the network's); ``num_threads`` (CPU intra-op
threads, 0 or None: torch's default);
``fuse`` (default True: fold each BatchNorm into the convolution before it, exact in eval
mode); ``scale`` (0 < scale <= 1, default 1: the network sees the images resized by it and
the disparity is upsampled back and divided by it, so the range grows to
``max_disparity / scale`` and the cost falls with ``scale**2``). The network runs in
channels_last memory format (faster with oneDNN on the CPU and with tensor cores on CUDA).
"""

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .base import DisparityBackend
from ..errors import BackendError
from ..images import to_rgb
from ..networks.common import normalize_image, pad_to_divisor, upsample_disparity
from ..weights import WeightsMetadata, load_model

PRECISIONS = ('fp32', 'bf16', 'fp16')
LOGGER = logging.getLogger('stereo_depth_ros.backends')
PAD_MODES = ('replicate', 'zeros')


def resolve_device(device: str) -> torch.device:
    """Return the torch device for ``auto``/``cpu``/``cuda[:n]``; BackendError if unusable."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cpu':
        return torch.device('cpu')
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise BackendError(f'device {device!r} requested but CUDA is not available; '
                               f'use --device cpu')
        try:
            return torch.device(device)
        except RuntimeError as error:
            raise BackendError(f'invalid device {device!r}: {error}') from None
    raise BackendError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {device!r}")


#: bfloat16 counts as slow on a CPU where it takes longer than this times fp32.
BF16_SLOW_RATIO = 1.2


@functools.lru_cache(maxsize=1)
def cpu_bf16_slowdown() -> float:
    """Return time(bf16 autocast) / time(fp32) of a small convolution on this CPU (measured).

    Measured once per process (about 0.1 s), single-threaded, best of several runs: whether
    bfloat16 helps depends on the CPU (native on Intel AMX and AVX512-BF16 parts, emulated and
    15-45x slower on others), so it is measured rather than guessed from flags.
    """
    conv = nn.Conv2d(32, 32, 3, padding=1).eval()
    image = torch.randn(1, 32, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for enabled in (False, True):
            with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16,
                                                        enabled=enabled):
                conv(image)
                best = math.inf
                for _ in range(5):
                    start = time.perf_counter()
                    conv(image)
                    best = min(best, time.perf_counter() - start)
            times.append(best)
    finally:
        torch.set_num_threads(threads)
    return times[1] / max(times[0], 1e-9)


def resolve_precision(precision: Optional[str], device: torch.device) -> str:
    """Return the precision to use: the given one if valid on ``device``, else the default.

    The default is fp16 on CUDA and fp32 on the CPU, never bf16. Asking for bf16 on a CPU
    where it is slower than fp32 (:func:`cpu_bf16_slowdown`) works but logs a warning that
    says so and why.
    """
    if precision is None or precision == 'auto':
        return 'fp16' if device.type == 'cuda' else 'fp32'
    if precision not in PRECISIONS:
        raise BackendError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise BackendError('precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU')
    if precision == 'bf16' and device.type == 'cpu':
        warn_if_bf16_slow('precision bf16')
    return precision


def warn_if_bf16_slow(what: str) -> None:
    """Log a warning naming ``what`` when bfloat16 is slower than fp32 on this CPU."""
    slowdown = cpu_bf16_slowdown()
    if slowdown > BF16_SLOW_RATIO:
        LOGGER.warning(f'{what} is {slowdown:.1f}x slower than fp32 on this CPU (measured on a '
                       f'small convolution: no native bfloat16, it is emulated); use fp32')


def _check_num_threads(value: Any) -> int:
    """Return ``num_threads`` as an int (0 or None: torch's default); BackendError if invalid."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or int(value) != value or value < 0:
        raise BackendError(f'num_threads must be an integer >= 1 (0 or None: torch\'s default), '
                           f'got {value!r}')
    return int(value)


def _check_max_disparity(value: Any) -> float:
    """Return ``max_disparity`` as a float; BackendError unless it is finite and > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float('nan')
    if not math.isfinite(number) or number <= 0:
        raise BackendError(f'max_disparity must be a finite number > 0, got {value!r}')
    return number


def _check_scale(value: Any) -> float:
    """Return the inference ``scale`` as a float; BackendError unless 0 < scale <= 1."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float('nan')
    if not 0 < number <= 1:
        raise BackendError(f'scale must be a number in (0, 1] (the network sees the images '
                           f'resized by it), got {value!r}')
    return number


def fuse_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a (transposed) conv in a Sequential.

    The model must be in eval mode; it is changed in place and returned. Outputs are the same
    up to float rounding.
    """
    if model.training:
        raise ValueError('fuse_batch_norm needs a model in eval mode')
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and \
                    isinstance(norm, nn.BatchNorm2d):
                module[index] = fuse_conv_bn_eval(
                    conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                module[index + 1] = nn.Identity()
    return model


class TorchBackend(DisparityBackend):
    """A learned network loaded from a safetensors file, run with torch."""

    def __init__(self, weights: str | Path, device: str = 'auto',
                 precision: Optional[str] = None, pad_mode: str = 'replicate',
                 max_disparity: Optional[float] = None,
                 num_threads: Optional[int] = None, fuse: bool = True,
                 scale: float = 1.0, **unknown: Any) -> None:
        if not self.name:
            raise BackendError(f'{type(self).__name__} is not a registered backend')
        if unknown:
            raise BackendError(
                f'unknown {self.name} option(s) {sorted(unknown)}; known: device, precision, '
                f'pad_mode, max_disparity, num_threads, fuse, scale')
        self.scale = _check_scale(scale)
        if pad_mode not in PAD_MODES:
            raise BackendError(f'pad_mode must be one of {PAD_MODES}, got {pad_mode!r}')
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.pad_mode = pad_mode
        threads = _check_num_threads(num_threads)
        if max_disparity is not None:
            _check_max_disparity(max_disparity)
        if threads:
            torch.set_num_threads(threads)
        model, self.metadata = load_model(weights, self.name)
        self.weights_path = Path(weights)
        self._max_disparity = _check_max_disparity(
            max_disparity if max_disparity is not None else model.max_disparity / self.scale)
        model = model.eval()
        if fuse:
            model = fuse_batch_norm(model)
        self.model = model.to(self.device, memory_format=torch.channels_last)

    @property
    def min_disparity(self) -> float:
        """Smallest disparity output (0 px)."""
        return 0.0

    @property
    def max_disparity(self) -> float:
        """Largest valid disparity; larger predictions become NaN."""
        return self._max_disparity

    @property
    def weights_metadata(self) -> WeightsMetadata:
        """Metadata of the loaded weights file."""
        return self.metadata

    def describe(self) -> str:
        """One line with backend, weights, device and precision."""
        scale = f', scale {self.scale:g}' if self.scale != 1.0 else ''
        return (f'{self.name} ({self.weights_path.name}, {self.device}, {self.precision}'
                f'{scale}, disparity 0..{self._max_disparity:g} px)')

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(to_rgb(image).transpose(2, 0, 1))
        tensor = torch.from_numpy(array).unsqueeze(0).to(self.device)
        return normalize_image(tensor)

    def _autocast(self) -> Any:
        if self.precision == 'fp32':
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == 'bf16' else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def predict_tensor(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Run the network on normalised ``Bx3xHxW`` tensors of any size; ``Bx1xHxW`` fp32.

        With ``scale`` < 1 the network sees both images resized by it (area averaging) and
        its disparity is upsampled back, its values divided by the scale: a network trained
        for 0..D px then covers 0..D/scale px, at a fraction of the cost.
        """
        if self.scale != 1.0:
            size = left.shape[-2:]
            small = [max(int(round(side * self.scale)), 1) for side in size]
            left = F.interpolate(left, size=small, mode='area')
            right = F.interpolate(right, size=small, mode='area')
            return upsample_disparity(self._predict(left, right), size)
        return self._predict(left, right)

    def _predict(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        divisor = self.model.divisor
        left_padded, (height, width) = pad_to_divisor(left, divisor, self.pad_mode)
        right_padded, _ = pad_to_divisor(right, divisor, self.pad_mode)
        left_padded = left_padded.contiguous(memory_format=torch.channels_last)
        right_padded = right_padded.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            disparity = self.model.predict(left_padded, right_padded)
        return disparity[..., :height, :width].float()

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            left_t, right_t = self._to_tensor(left), self._to_tensor(right)
        disparity = self.predict_tensor(left_t, right_t)[0, 0].cpu().numpy()
        disparity = np.ascontiguousarray(disparity, dtype=np.float32)
        with np.errstate(invalid='ignore'):
            invalid = ~np.isfinite(disparity) | (disparity < 0) | \
                (disparity > self._max_disparity)
        disparity[invalid] = np.nan
        return disparity
