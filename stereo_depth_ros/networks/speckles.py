"""Small islands of a learned estimate, cut off from their surroundings (option ``speckle_size``).

Where a network cannot match (weak texture under sensor noise, occlusions) it leaves islands
of far-off disparities: the blotches of 30-50 px on the white walls of an OAK-D Lite where the
wall is at about 15 px, phantom surfaces under 1 m for a costmap. ``sgbm`` removes such
islands with OpenCV's speckle filter; :func:`drop_speckles` applies the same filter to a
learned backend's float estimate: a region of at most ``max_size`` pixels, connected by
steps between 4-neighbours of at most ``max_step`` px, becomes unknown. On full-range
validation scenes 94 % of the pixels it removed from ``costnet_fast`` (800 px, 1 px) were
more than 2 px off (models/README.md, ``costnet_fast`` item 14).
"""

import cv2
import numpy as np

#: The filter works on OpenCV's fixed-point disparities: this many steps per pixel.
SUBPIXEL_STEPS = 16
#: The fixed-point value of an unknown pixel (below every disparity the backends give).
_UNKNOWN = -SUBPIXEL_STEPS


def drop_speckles(disparity: np.ndarray, max_size: int, max_step: float) -> np.ndarray:
    """Set the speckles of an ``HxW`` float32 disparity (px, NaN unknown) to NaN, in place.

    A speckle is a region of at most ``max_size`` known pixels whose 4-neighbours within it
    differ by at most ``max_step`` px, every other neighbour by more (or unknown). The values
    are compared at 1/16 px, as ``sgbm``'s are; disparities above 2047 px count as 2047.
    """
    known = np.isfinite(disparity)
    fixed = np.full(disparity.shape, _UNKNOWN, np.int16)
    fixed[known] = np.clip(np.rint(disparity[known] * SUBPIXEL_STEPS), 0,
                           np.iinfo(np.int16).max)
    cv2.filterSpeckles(fixed, _UNKNOWN, int(max_size), int(round(max_step * SUBPIXEL_STEPS)))
    disparity[known & (fixed == _UNKNOWN)] = np.nan
    return disparity
