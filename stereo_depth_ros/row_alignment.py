"""Put the right view's rows back on the left's where the pair check measured them off.

A rectified pair has each scene point on the same row in both views; a calibration that is a
little off (a camera that shifted or warmed up, a factory calibration of a cheap stereo
camera, a rectification of slightly wrong parameters) leaves the right view's rows off by a
fraction of a pixel to a few pixels, often growing towards the edges. Every matcher compares
rows, so that costs all of them many wrong pixels (README, "Rows off", has the figures).

:func:`~stereo_depth_ros.plausibility.row_offset` fits a plane to the row offsets of matched
corners (each refined to a fraction of a pixel); :func:`align_right_rows` resamples the right
view along its columns by that plane, so that its rows are the left's again. The columns are
left as they are: the disparities, and the depth they give in the left camera's frame, do not
move. Pairs whose rows are less than :data:`ALIGN_FROM_PX` off both at a typical matched
corner and, as far as the matches can tell, on average over the image are left alone
(:func:`worth_aligning`): a well rectified camera's pairs then go through unchanged, not
resampled for nothing.
"""

from typing import Optional

import cv2
import numpy as np

from .plausibility import RowOffset

#: Pairs whose fitted row offset is this many px or more at a typical matched corner
#: (:attr:`~stereo_depth_ros.plausibility.RowOffset.typical`) are aligned. Not the plane's
#: value at the image's corners: extrapolated there it is less sure. A first rule by the
#: corners (0.25 px, with whole-pixel corners) aligned 41 of the 50 unlabeled real pairs,
#: among them the perfectly rectified Middlebury 2014 Q pair PlaytableP, which lost
#: left-right consistent pixels by it (README, "Rows off"; ``python -m
#: stereo_depth_ros.training.row_offset_sweep --pairs ../shared/data/unlabeled --align``).
ALIGN_FROM_PX = 0.25
#: Pairs whose plane is this far off on average over the image, less two standard errors
#: (:attr:`~stereo_depth_ros.plausibility.RowOffset.surely_off`), are aligned too: a scale
#: between the views leaves the middle rows, where most corners lie, on the left's and the
#: top and bottom rows a pixel off (the OAK-D Lite pairs of ``../shared/data/unlabeled``).
#: The 24 rectified full-range validation scenes of ``row_offset_sweep --shifts 0`` read at
#: most 0.01 px; on small images with a few dozen matches the plane's plain mean read up to
#: 0.32 px, more than this (README, "Rows off").
#: (The same number as ALIGN_FROM_PX, set apart: the two measure different things.)
ALIGN_FROM_MEAN_PX = 0.25
#: How the pair check's reading that makes a pair aligned is said in help texts.
ALIGN_RULE = (f"{ALIGN_FROM_PX:g} px or more off the left's at a typical matched corner, or "
              f'surely {ALIGN_FROM_MEAN_PX:g} px or more on average over the image')


def worth_aligning(offset: Optional[RowOffset], shape: tuple[int, ...]) -> bool:
    """Return whether ``offset``, measured on images of ``shape``, is worth aligning.

    Only an offset measured on images of the same height and width counts, and only one whose
    typical matched corner is :data:`ALIGN_FROM_PX` or more off, or whose plane is surely
    :data:`ALIGN_FROM_MEAN_PX` or more off on average over the image.
    """
    if offset is None or tuple(offset.shape) != tuple(shape[:2]):
        return False
    return offset.typical >= ALIGN_FROM_PX or offset.surely_off >= ALIGN_FROM_MEAN_PX


def alignment_maps(offset: RowOffset) -> tuple[np.ndarray, np.ndarray]:
    """Return OpenCV's fixed-point remap maps that put a right view on the left's rows.

    The right view shows the scene point of left row ``y`` at row ``y + offset.at(x, y)``;
    each pixel is read there, in its own column. Fixed-point maps remap about a fifth faster
    than float ones, with the same values (OpenCV interpolates in 1/32 px steps either way).
    """
    height, width = offset.shape
    columns = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)
    shifted = rows[:, None] + offset.at(columns[None, :], rows[:, None]).astype(np.float32)
    grid = np.ascontiguousarray(np.broadcast_to(columns[None, :], (height, width)))
    return cv2.convertMaps(grid, shifted.astype(np.float32), cv2.CV_16SC2)


def align_right_rows(right: np.ndarray, offset: RowOffset,
                     maps: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """Return ``right`` resampled so that its rows show what the left view's rows show.

    Bilinear, the border repeated, in the image's own dtype and channels; ``maps`` are
    :func:`alignment_maps` of ``offset`` where the caller keeps them. ``right`` must have the
    shape ``offset`` was measured on.
    """
    height, width = right.shape[:2]
    if tuple(offset.shape) != (height, width):
        raise ValueError(f'row offset measured on {offset.shape[1]}x{offset.shape[0]} '
                         f'images, not {width}x{height}')
    first, second = maps if maps is not None else alignment_maps(offset)
    return cv2.remap(right, first, second, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def aligned_right(left: np.ndarray, right: np.ndarray,
                  offset: Optional[RowOffset]) -> tuple[np.ndarray, bool]:
    """Return the right view aligned by ``offset`` where :func:`worth_aligning`, and whether.

    ``left`` only gives the shape the offset must have been measured on. A one-off
    :class:`RowAligner`: the maps are built at each call (a stream keeps one aligner).
    """
    return RowAligner()(left, right, offset)


class RowAligner:
    """Align the right views of one stream, keeping the maps of the latest offset.

    Called as :func:`aligned_right` is. A node applies one measured offset to every pair
    until the next check (10 s); building the maps takes about as long as the remap itself,
    so they are built again only when the offset changes.
    """

    def __init__(self) -> None:
        self._offset: Optional[RowOffset] = None
        self._maps: Optional[tuple[np.ndarray, np.ndarray]] = None

    def __call__(self, left: np.ndarray, right: np.ndarray,
                 offset: Optional[RowOffset]) -> tuple[np.ndarray, bool]:
        """Return the right view aligned by ``offset`` where it is worth it, and whether."""
        if not worth_aligning(offset, left.shape):
            return right, False
        assert offset is not None  # worth_aligning says so
        if offset != self._offset or self._maps is None:
            self._offset, self._maps = offset, alignment_maps(offset)
        return align_right_rows(right, offset, self._maps), True
