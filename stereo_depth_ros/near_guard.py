"""Surfaces nearer than a backend measures (``obstacle.near_guard``).

A backend measures disparities up to its ``max_disparity``: ``sgbm``'s 127 px is 1.3 m on a
512-px KITTI-like camera (f B = 166 px m), a learned backend's 384 px 0.43 m. A surface
nearer than that comes out as holes (``sgbm``: 95-98 % of a block at 0.83 m) or as a
confident, farther depth (a network beyond its range), so without more the obstacle search
would say "nothing within range" or name a farther obstacle, the opposite of REP 117's
"too close", and the point cloud would hold a false, farther surface for a costmap to clear
along.

:func:`near_surface_disparity` looks beyond the backend's range on a shrunken copy of the
pair (shrunk so that the search needs at most :data:`MAX_COARSE_DISPARITIES` and the pair
holds at most :data:`MAX_COARSE_PIXELS`, within :data:`SHRINK_LIMITS`): OpenCV
SGBM from 0 to :data:`REACH` times the backend's range (at most 3/4 of the image width),
left-right checked, on views padded on the left (OpenCV matches nothing left of its range's
width; a match that would fall in the padding is dropped). It keeps the pixels it finds
beyond the backend's range by more than one coarse pixel, where the backend has no estimate
or the images confirm the find clearly better than the backend's (:data:`CONFIRM_MARGIN`).
The pipeline gives the obstacle search their coarse depth (which takes them as it takes any
depth: size, clearance; the ground is fitted on the backend's depth), so one found there is
nearer than ``min_range``: ``Range`` says ``-inf``; and it publishes those on surfaces the
search accepts as obstacles as what they are to the backend, too near to measure: depth
``-inf`` (REP 117), disparity and points unknown.
"""

import math
from typing import Optional

import cv2
import numpy as np

from .images import to_gray
from .window_match import warp_to_left, window_zncc

#: The guard searches out to this many times the backend's largest disparity.
REACH = 2.0
#: Largest disparity search (coarse pixels) of the guard; the pair is shrunk to fit it.
MAX_COARSE_DISPARITIES = 64
#: Largest shrunken pair (pixels): the guard costs about 1-8 ms on the CPU of docs/speed.md.
MAX_COARSE_PIXELS = 40_000
#: Bounds of the shrink factor (a 4x smaller KITTI pair is 312x96 px).
SHRINK_LIMITS = (2, 8)
#: Fewest rows of the shrunken pair worth a search.
MIN_COARSE_ROWS = 24
#: A find where the backend has an estimate must cost (1 - ZNCC, 5x5 coarse windows) this
#: much less than the backend's estimate: a repeating texture matches well at both.
CONFIRM_MARGIN = 0.3
#: Product of the two windows' grey variances under which a window is flat (grey levels^4).
_FLAT_VARIANCE = 1.0
#: SGBM settings of the coarse search (block size, uniqueness %, speckle window and range).
_BLOCK = 5
_UNIQUENESS = 10
_SPECKLE_WINDOW = 50
_SPECKLE_RANGE = 2


def guard_reach(width: int, max_disparity: float) -> float:
    """Return the largest disparity (px) searched: REACH times the range, at most 3/4 width."""
    return min(REACH * max_disparity, 0.75 * width)


def guard_plan(width: int, height: int, max_disparity: float) -> Optional[tuple[int, int]]:
    """Return (shrink factor, coarse disparities) of the search, or None if none is useful.

    None where the image leaves no room beyond the backend's range (its reach would be under
    1.25 times the range) or the shrunken pair would be too small to match.
    """
    if not max_disparity > 0 or not math.isfinite(max_disparity):
        return None
    reach = guard_reach(width, max_disparity)
    if reach < 1.25 * max_disparity:
        return None
    shrink = max(math.ceil(reach / MAX_COARSE_DISPARITIES),
                 math.ceil(math.sqrt(width * height / MAX_COARSE_PIXELS)))
    shrink = int(np.clip(shrink, *SHRINK_LIMITS))
    if height // shrink < MIN_COARSE_ROWS:
        return None
    disparities = 16 * math.ceil(reach / shrink / 16)
    return shrink, disparities


def beyond_range_disparity(left: np.ndarray, right: np.ndarray, max_disparity: float,
                           backend_disparity: Optional[np.ndarray] = None
                           ) -> Optional[np.ndarray]:
    """Return full-size disparities (px) found beyond ``max_disparity`` px, NaN elsewhere.

    ``left``/``right`` are the rectified pair (uint8, HxW or HxWx3); ``max_disparity`` is the
    largest disparity the backend measures, in pixels of the pair as given. With the
    backend's ``backend_disparity`` (HxW px, NaN unknown), a find where the backend has an
    estimate is kept only where the images confirm it clearly better
    (:data:`CONFIRM_MARGIN`): a repeating texture matches at both. None where no search is
    useful (:func:`guard_plan`).
    """
    coarse = _coarse_finds(left, right, max_disparity, backend_disparity)
    return None if coarse is None else _full_size(coarse, left.shape)


def near_surface_disparity(left: np.ndarray, right: np.ndarray, max_disparity: float,
                           backend_disparity: Optional[np.ndarray] = None
                           ) -> Optional[np.ndarray]:
    """Return :func:`beyond_range_disparity`'s finds, or None where it finds none.

    The usual frame finds nothing: no full-size map is made then (1.8 ms at 1080p).
    """
    coarse = _coarse_finds(left, right, max_disparity, backend_disparity)
    if coarse is None or not np.isfinite(coarse).any():
        return None
    return _full_size(coarse, left.shape)


def _full_size(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return a coarse map at the pair's size (each coarse pixel over its block)."""
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _coarse_finds(left: np.ndarray, right: np.ndarray, max_disparity: float,
                  backend_disparity: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Return the shrunken pair's disparities beyond the range, in full-size px, else NaN."""
    height, width = left.shape[:2]
    plan = guard_plan(width, height, max_disparity)
    if plan is None:
        return None
    shrink, disparities = plan
    size = (width // shrink, height // shrink)
    small = [to_gray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
             for image in (left, right)]
    matcher = cv2.StereoSGBM.create(
        minDisparity=0, numDisparities=disparities, blockSize=_BLOCK, P1=8 * _BLOCK ** 2,
        P2=32 * _BLOCK ** 2, disp12MaxDiff=1, uniquenessRatio=_UNIQUENESS,
        speckleWindowSize=_SPECKLE_WINDOW, speckleRange=_SPECKLE_RANGE,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    # OpenCV gives nothing left of its search range's width: pad both views on the left (edge
    # pixels), so a near surface there is matched where the right view holds it, then crop.
    padded = [cv2.copyMakeBorder(image, 0, 0, disparities, 0, cv2.BORDER_REPLICATE)
              for image in small]
    coarse = matcher.compute(*padded)[:, disparities:].astype(np.float32) / 16.0
    scale = width / size[0]  # back to pixels of the pair as given (width // shrink rounds)
    beyond = coarse * scale > max_disparity + shrink
    # A match inside the padding (x - d < 0) is none: the right view holds no such pixel.
    beyond &= np.arange(size[0], dtype=np.float32)[None, :] >= coarse
    if backend_disparity is not None and beyond.any():
        theirs = cv2.resize(np.asarray(backend_disparity, np.float32), size,
                            interpolation=cv2.INTER_NEAREST) / scale
        contested = beyond & np.isfinite(theirs)
        if contested.any():
            ours_cost = _window_cost(small[0], small[1], np.where(beyond, coarse, 0.0))
            their_cost = _window_cost(small[0], small[1], np.nan_to_num(theirs))
            beyond &= ~contested | (ours_cost + CONFIRM_MARGIN < their_cost)
    coarse[~beyond] = np.nan
    return coarse * np.float32(scale)


def _window_cost(left: np.ndarray, right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """Return 1 - ZNCC over 5x5 windows of ``left`` and ``right`` warped by ``disparity``.

    0 for a perfect match, up to 2; flat windows (no correlation to measure) cost 1.
    """
    warped, _ = warp_to_left(right, disparity)
    zncc, variance = window_zncc(left.astype(np.float32), warped, _BLOCK)
    return np.where(variance > _FLAT_VARIANCE, 1.0 - zncc, 1.0).astype(np.float32)
