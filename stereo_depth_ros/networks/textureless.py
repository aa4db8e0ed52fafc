"""Pixels whose neighbourhood in the left image holds no texture at all.

Where the left image is one grey level over :data:`WINDOW` x :data:`WINDOW` pixels (sky
saturated at the sensor's top value, shadows clipped to black, a covered lens) no stereo match
can be measured. ``sgbm`` leaves such pixels unknown; a network would still give them a
disparity, its guess from elsewhere: on a blank pair ``costnet_fast`` gave 2-28 px everywhere,
a surface a few metres away that the obstacle search reported. The learned backends report
these pixels as unknown too (:func:`drop_textureless`). Sensor noise of one grey level is
texture here: only exactly flat windows count.
"""

import cv2
import numpy as np

#: Side (px) of the square window that must hold a single grey level.
WINDOW = 15


def textureless(image: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Return where the ``window`` x ``window`` neighbourhood of ``image`` is one grey level.

    ``image`` is a uint8 HxW grey or HxWx3 colour image; borders repeat the edge pixels.
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    kernel = np.ones((window, window), np.uint8)
    brightest = cv2.dilate(grey, kernel, borderType=cv2.BORDER_REPLICATE)
    darkest = cv2.erode(grey, kernel, borderType=cv2.BORDER_REPLICATE)
    return brightest == darkest


def drop_textureless(disparity: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Set the pixels of an ``HxW`` disparity where ``left`` has no texture to NaN (in place)."""
    disparity[textureless(left)] = np.nan
    return disparity
