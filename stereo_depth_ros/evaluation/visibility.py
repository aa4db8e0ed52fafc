"""Which pixels of a left view the right camera cannot see, by the true disparity.

A stereo network can only match a pixel the other camera sees. The ones it cannot (outside
its view at the left border, or occluded by something nearer) are right only if the network
infers them from their surroundings; benchmarks count them apart (KITTI's "noc" and "all").
"""

import torch


def _valid(disparity: torch.Tensor) -> torch.Tensor:
    """Return the boolean mask of known ground truth (finite and > 0)."""
    return torch.isfinite(disparity) & (disparity > 0)


def unseen_by_right_camera(disparity: torch.Tensor) -> torch.Tensor:
    """Return the float mask of known pixels that a ``Bx1xHxW`` true disparity hides.

    A left pixel at column ``x`` with disparity ``d`` is seen at ``x - d`` in the right view.
    It is hidden there when that column lies left of the right image (outside the view), or
    when a pixel further right lands at or left of it (occluded: ``x' - d(x') <= x - d(x)``
    for some ``x' > x``, which along one surface needs a disparity slope of 1 or more). No
    right camera can match these pixels; a network gets them right only from their
    surroundings.
    """
    known = _valid(disparity)
    values = torch.where(known, disparity, torch.zeros_like(disparity))
    columns = torch.arange(values.shape[-1], device=values.device, dtype=values.dtype)
    lead = values - columns  # minus the right-image column of each pixel
    # Largest lead strictly to the right of each pixel: a cumulative max from the right edge.
    from_right = torch.cummax(lead.flip(-1), dim=-1).values.flip(-1)
    beyond = torch.nn.functional.pad(from_right[..., 1:], (0, 1), value=float('-inf'))
    hidden = (beyond >= lead) | (columns < values)
    return (hidden & known).to(torch.float32)
