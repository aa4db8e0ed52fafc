"""Losses that need no ground truth: photometric reconstruction and edge-aware smoothness.

Images are ``Bx3xHxW`` floats in 0..1, disparity ``Bx1xHxW`` in full-resolution pixels (left
view: the left pixel ``x`` matches the right pixel ``x - d``).
"""

import torch
import torch.nn.functional as F

from ..networks.common import warp_right_to_left

#: Weight of the SSIM term against the L1 term of the photometric loss (Monodepth's 0.85).
SSIM_WEIGHT = 0.85


def visible_in_right(disparity: torch.Tensor) -> torch.Tensor:
    """Return the float mask of left pixels the right camera sees (inside, not occluded).

    A left pixel is hidden when a pixel further right lands at or before its own landing
    point ``x - d`` in the right view (a nearer surface covers it); this is the left-right
    check done on one disparity map.
    """
    width = disparity.shape[-1]
    xs = torch.arange(width, device=disparity.device, dtype=disparity.dtype)
    landing = xs - disparity.detach()
    flipped = torch.flip(landing, dims=[-1])
    later = torch.flip(torch.cummin(flipped, dim=-1).values, dims=[-1])
    later = torch.cat([later[..., 1:], torch.full_like(later[..., :1], float('inf'))], -1)
    return ((landing < later) & (landing >= 0)).to(disparity.dtype)


def ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the per-pixel ``(1 - SSIM) / 2`` of two images over 3x3 windows, in [0, 1]."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    pad_x, pad_y = F.pad(x, (1, 1, 1, 1), mode='reflect'), F.pad(y, (1, 1, 1, 1), mode='reflect')
    mu_x, mu_y = F.avg_pool2d(pad_x, 3, 1), F.avg_pool2d(pad_y, 3, 1)
    sigma_x = F.avg_pool2d(pad_x ** 2, 3, 1) - mu_x ** 2
    sigma_y = F.avg_pool2d(pad_y ** 2, 3, 1) - mu_y ** 2
    sigma_xy = F.avg_pool2d(pad_x * pad_y, 3, 1) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / \
        ((mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2))
    return torch.clamp((1 - ssim) / 2, 0, 1)


def photometric_loss(left: torch.Tensor, right: torch.Tensor,
                     disparity: torch.Tensor) -> torch.Tensor:
    """Mean SSIM + L1 error of the left view rebuilt from the right, over visible pixels."""
    rebuilt = warp_right_to_left(right, disparity)
    error = SSIM_WEIGHT * ssim_distance(rebuilt, left).mean(1, keepdim=True) + \
        (1 - SSIM_WEIGHT) * (rebuilt - left).abs().mean(1, keepdim=True)
    mask = visible_in_right(disparity)
    return (error * mask).sum() / mask.sum().clamp_min(1.0)


def smoothness_loss(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the mean-normalised disparity (weaker across image edges)."""
    normalised = disparity / disparity.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    grad_x = (normalised[..., :, 1:] - normalised[..., :, :-1]).abs()
    grad_y = (normalised[..., 1:, :] - normalised[..., :-1, :]).abs()
    edge_x = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    edge_y = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (grad_x * torch.exp(-edge_x * 10)).mean() + (grad_y * torch.exp(-edge_y * 10)).mean()
