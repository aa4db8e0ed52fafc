"""Shared inference backend of the learned networks (torch, safetensors weights).

One :class:`TorchBackend` runs any learned backend: it is given the backend's
:class:`~stereo_depth_ros.backends.record.BackendRecord` and its checked
:class:`~stereo_depth_ros.backends.options.LearnedOptions` (precision, max_disparity,
num_threads, scale, pad_mode, fuse, near_scale, near_from, near_passes, match_passes,
refine_radius, max_match_cost, speckle_size, speckle_range, torch_compile: see there). Input
uint8 grey or RGB images go through
:func:`~stereo_depth_ros.networks.inference.predict_with_near_pass`: the inference path that
training validation uses too, plus coarser passes for near objects (large disparities) unless
``near_scale`` is 0; the output is float32 HxW, NaN where the
prediction is non-finite, negative or above ``max_disparity``, where the left image has no
texture (:func:`~stereo_depth_ros.networks.textureless.drop_textureless`), and with
``max_match_cost`` where the images do not confirm it (:func:`~stereo_depth_ros.networks.
confidence.drop_unconfirmed`), with ``speckle_size`` on small islands of it
(:func:`~stereo_depth_ros.networks.speckles.drop_speckles`). The network runs in
channels_last memory format (faster with oneDNN on the CPU and with tensor cores on CUDA).
With ``torch_compile`` its forward is compiled
(:class:`~stereo_depth_ros.torch_runtime.CompiledForward`).
"""

from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .base import DisparityBackend
from .options import LearnedOptions
from .record import BackendRecord
from ..errors import BackendError
from ..networks.confidence import drop_unconfirmed
from ..networks.speckles import drop_speckles
from ..networks.inference import (disparity_range, images_to_tensor, mask_invalid,
                                  near_pass_scales, predict_with_near_pass,
                                  resolve_match_passes, resolve_refine_radius)
from ..networks.textureless import drop_textureless
from ..torch_runtime import (CompiledForward, keep_freed_cpu_memory, resolve_device,
                             resolve_precision, use_thread_count)
from ..weights import load_model

#: Any module type: :func:`fuse_batch_norm` returns the model it is given.
ModuleT = TypeVar('ModuleT', bound=nn.Module)


def fuse_batch_norm(model: ModuleT) -> ModuleT:
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

    def __init__(self, record: BackendRecord, weights: str | Path, device: str = 'auto',
                 options: LearnedOptions = LearnedOptions()) -> None:
        self.name = record.name
        self.options = options
        self.scale = options.scale
        self.device = resolve_device(device)
        if self.device.type == 'cpu':
            keep_freed_cpu_memory()
        self.precision = resolve_precision(options.precision, self.device)
        model, self.metadata = load_model(weights, record.name)
        model.apply_options(options)
        self.weights_path = Path(weights)
        # No near pass runs where a capped range ends before it could take over.
        self.near_scales = near_pass_scales(model, self.scale, options.near_scale,
                                            options.near_from, options.near_passes,
                                            options.max_disparity)
        self.match_passes = resolve_match_passes(model, options.match_passes)
        self.refine_radius = resolve_refine_radius(model, options.refine_radius)
        coarsest = self.near_scales[-1] if self.near_scales else self.scale
        searched = disparity_range(model, coarsest)
        if options.max_disparity > searched * (1 + 1e-9):
            # The DisparityImage, the Range's min_range and the near guard all take this as
            # the range searched: a nearer surface would be reported farther, not too near.
            raise BackendError(
                f'max_disparity {options.max_disparity:g} px is above the range {record.name} '
                f'searches (0-{searched:g} px: passes at scale '
                f'{", ".join(f"{s:g}" for s in [self.scale, *self.near_scales])}); '
                'max_disparity can only narrow it: leave it 0, or widen the range with '
                'near_passes or a smaller scale')
        self._max_disparity = options.max_disparity or searched
        use_thread_count(options.num_threads)  # once all is checked: a refusal changes nothing
        model = model.eval()
        if options.fuse:
            model = fuse_batch_norm(model)
        # Module.to accepts memory_format (torch documents it); its typed overloads omit it.
        self.model = model.to(self.device,  # type: ignore[call-overload]
                              memory_format=torch.channels_last)
        self.compiled = (CompiledForward(self.model, f'{self.name} backend')
                         if options.torch_compile else None)

    @property
    def min_disparity(self) -> float:
        """Smallest disparity output (0 px)."""
        return 0.0

    @property
    def max_disparity(self) -> float:
        """Largest valid disparity; larger predictions become NaN."""
        return self._max_disparity

    def describe(self) -> str:
        """One line with backend, weights, device and precision."""
        scale = f', scale {self.scale:g}' if self.scale != 1.0 else ''
        passes = ''.join(f', near pass x{near / self.scale:g}' for near in self.near_scales)
        matched = ', passes matched' if self.match_passes and self.near_scales else ''
        refined = f', refined within {self.refine_radius:g} px' if self.refine_radius else ''
        compiled = ', torch.compile' if self.compiled and self.compiled.active else ''
        confirmed = (f', unknown above match cost {self.options.max_match_cost:g}'
                     if self.options.max_match_cost else '')
        confirmed += (f', speckles of {self.options.speckle_size} px unknown'
                      if self.options.speckle_size else '')
        return (f'{self.name} ({self.weights_path.name}, {self.device}, {self.precision}'
                f'{scale}{passes}{matched}{refined}{compiled}{confirmed}, '
                f'disparity 0..{self._max_disparity:g} px)')

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        use_thread_count(self.options.num_threads)  # this thread's: e.g. the node's worker
        with torch.inference_mode():
            left_t = images_to_tensor([left], self.device)
            right_t = images_to_tensor([right], self.device)
        if self.compiled:
            disparity = self.compiled.call(lambda: self._predict(left_t, right_t))
        else:
            disparity = self._predict(left_t, right_t)
        # No match lies farther than the image is wide: a near pass of a narrow image (10x15
        # px, padded to 64x64) answered 168 px on a 60-px-wide pair, and the blend took it.
        array = mask_invalid(np.ascontiguousarray(disparity[0, 0].cpu().numpy(),
                                                  dtype=np.float32),
                             self.largest_disparity(left.shape[1]))
        if self.options.max_match_cost:
            # On the masked estimate: what the network said beyond its range is unknown here too.
            drop_unconfirmed(array, left_t, right_t, self.options.max_match_cost)
        if self.options.speckle_size:
            drop_speckles(array, self.options.speckle_size, self.options.speckle_range)
        return drop_textureless(array, left)

    def _predict(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Return the ``1x1xHxW`` disparity of normalised images, near passes included."""
        return predict_with_near_pass(
            self.model, left, right, precision=self.precision, pad_mode=self.options.pad_mode,
            scale=self.scale, near_scales=self.near_scales, near_from=self.options.near_from,
            match_passes=self.match_passes, refine_radius=self.refine_radius)
