"""Which pixels of a left view the right camera cannot see, by the true disparity.

A stereo network can only match a pixel the other camera sees. The ones it cannot (outside
its view at the left border, or occluded by something nearer) are right only if the network
infers them from their surroundings, so they are worth scoring apart (as KITTI scores its
non-occluded pixels apart from all of them).
"""

import torch

#: How much nearer (px of disparity) than a pixel the surface in front of it in the right view
#: must be for the pixel to count as occluded (sampling and interpolation stay below it).
OCCLUSION_MARGIN = 1.0


def unseen_by_right_camera(disparity: torch.Tensor) -> torch.Tensor:
    """Return the float mask of known pixels that a ``Bx1xHxW`` true disparity hides.

    A left pixel at column ``x`` with disparity ``d`` lands at ``x - d`` in the right view.
    It is outside that view when it lands left of its first pixel (``x - d < -0.5``). It is
    occluded when the right view's z-buffer holds a disparity above ``d`` by more than
    :data:`OCCLUSION_MARGIN` at the column it lands on: every known pixel is splatted with its
    disparity onto the two columns around its landing point (the nearest one wins), which
    leaves no gap along a surface stretched up to twice in the right view. A surface
    compressed there to under half its width (its disparity rising by more than 0.5 px per
    column) has pixels more than the margin apart land on one column, and some of them are
    flagged though seen (the layered and road scenes' surfaces rise by 0.15 px per column at
    most; found by review with a plane of slope 0.6). Unknown pixels
    (NaN, inf, <= 0) are neither counted nor occlude. Ground truth must be dense: missing
    occluders cannot hide anything.
    """
    known = torch.isfinite(disparity) & (disparity > 0)
    values = torch.where(known, disparity, torch.zeros_like(disparity))
    width = values.shape[-1]
    columns = torch.arange(width, device=values.device, dtype=values.dtype)
    landing = columns - values
    splat = torch.where(known, values, torch.full_like(values, float('-inf')))
    # Column -1 and column `width` collect what lands outside; the buffer is shifted by one.
    front = torch.full((*values.shape[:-1], width + 2), float('-inf'), device=values.device,
                       dtype=values.dtype)
    for rounding in (torch.floor, torch.ceil):
        index = (rounding(landing).clamp(-1, width) + 1).long()
        front.scatter_reduce_(-1, index, splat, reduce='amax')
    seen_at = (torch.round(landing).clamp(-1, width) + 1).long()
    occluded = front.gather(-1, seen_at) > values + OCCLUSION_MARGIN
    outside = landing < -0.5
    return ((occluded | outside) & known).to(torch.float32)
