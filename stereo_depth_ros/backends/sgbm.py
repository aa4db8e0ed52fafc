"""Classical semi-global block matching (OpenCV StereoSGBM); needs no weights."""

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .base import DisparityBackend
from .record import BackendRecord
from .registry import register_backend
from ..errors import BackendError
from ..images import to_gray
from ..settings import option

_MODES = {
    'sgbm': cv2.STEREO_SGBM_MODE_SGBM,
    'hh': cv2.STEREO_SGBM_MODE_HH,
    'sgbm_3way': cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    'hh4': cv2.STEREO_SGBM_MODE_HH4,
}


@dataclass(frozen=True)
class SGBMOptions:
    """StereoSGBM settings under ``stereo_image_proc``'s disparity-node names.

    The names this package used before (``block_size``, ``p1``, ``p2``, ``pre_filter_cap``,
    ``speckle_window_size``) are accepted as aliases. ``P1``/``P2`` of 0 mean the usual
    ``8*cn*block^2`` and ``32*cn*block^2``, with ``cn`` = 1: the matcher runs on grey images.
    """

    min_disparity: int = option(0, 'SGBM: smallest disparity searched (px).',
                                limits=(-1024, 1024))
    disparity_range: int = option(128, 'SGBM: number of disparities searched (multiple of '
                                  '16).', limits=(16, 1024), step=16)
    correlation_window_size: int = option(5, 'SGBM: matched block size (odd).',
                                          limits=(1, 51), step=2, aliases=('block_size',))
    P1: int = option(0, 'SGBM: penalty of +-1 disparity changes; 0 = 8*'
                     'correlation_window_size^2 (grey images).', limits=(0, 100000),
                     aliases=('p1',))
    P2: int = option(0, 'SGBM: penalty of larger disparity changes (> P1); 0 = 32*'
                     'correlation_window_size^2 (grey images).', limits=(0, 400000),
                     aliases=('p2',))
    disp12_max_diff: int = option(1, 'SGBM: left-right consistency tolerance (px); -1 '
                                  'disables the check.', limits=(-1, 1024))
    prefilter_cap: int = option(31, 'SGBM: clip of the pre-filtered image derivatives.',
                                limits=(1, 63), aliases=('pre_filter_cap',))
    uniqueness_ratio: int = option(10, 'SGBM: margin (%) by which the best cost must win.',
                                   limits=(0, 100))
    speckle_size: int = option(100, 'SGBM: largest speckle (px) removed; 0 disables speckle '
                               'filtering.', limits=(0, 10000),
                               aliases=('speckle_window_size',))
    speckle_range: int = option(2, 'SGBM: disparity variation within one speckle region.',
                                limits=(0, 64))
    mode: str = option('sgbm_3way', 'SGBM: OpenCV matching mode (paths, memory).',
                       choices=tuple(_MODES))

    def penalties(self) -> tuple[int, int]:
        """Return the P1 and P2 the matcher uses: as set, or 8 and 32 x block^2 where 0."""
        area = self.correlation_window_size ** 2
        return self.P1 or 8 * area, self.P2 or 32 * area

    def validate(self) -> None:
        """Raise BackendError unless P2 > P1, either of them automatic (0) or not.

        OpenCV would raise a P2 at or below P1 to P1 + 1 without a word.
        """
        p1, p2 = self.penalties()
        if p2 <= p1:
            automatic = ' (0: 8 or 32 x correlation_window_size^2)'
            said = [f'{name}={value}' + ('' if set_value else automatic)
                    for name, value, set_value in (('P1', p1, self.P1), ('P2', p2, self.P2))]
            raise BackendError(f'sgbm needs P2 > P1, got {" ".join(said)}')


class SGBMBackend(DisparityBackend):
    """OpenCV StereoSGBM with left-right consistency; invalid pixels are NaN.

    Safe to call from several threads: the cached OpenCV matcher keeps buffers of its own
    (the speckle filter's among them), so calls take turns on it; two threads computing at
    once had corrupted each other's disparities.
    """

    name = 'sgbm'

    def __init__(self, options: SGBMOptions = SGBMOptions()) -> None:
        self.params = options
        self._matchers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _matcher(self, disparity_range: int) -> Any:
        if disparity_range not in self._matchers:
            p = self.params
            p1, p2 = p.penalties()
            self._matchers[disparity_range] = cv2.StereoSGBM.create(
                minDisparity=p.min_disparity, numDisparities=disparity_range,
                blockSize=p.correlation_window_size, P1=p1,
                P2=p2, disp12MaxDiff=p.disp12_max_diff,
                preFilterCap=p.prefilter_cap, uniquenessRatio=p.uniqueness_ratio,
                speckleWindowSize=p.speckle_size,
                speckleRange=p.speckle_range, mode=_MODES[p.mode])
        return self._matchers[disparity_range]

    @property
    def min_disparity(self) -> float:
        """Smallest disparity searched, in pixels."""
        return float(self.params.min_disparity)

    @property
    def max_disparity(self) -> float:
        """Largest disparity searched, in pixels."""
        return float(self.params.min_disparity + self.params.disparity_range - 1)

    def largest_disparity(self, width: int) -> float:
        """Return the largest disparity (px) searched on a ``width``-px image.

        Narrow images search fewer disparities, in steps of 16 (:func:`_search_range`): on a
        100-px image 95 px, not 99.
        """
        search, _ = _search_range(self.params.min_disparity, self.params.disparity_range,
                                  width)
        return min(float(self.params.min_disparity + search - 1), float(width - 1))

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        left_gray, right_gray = to_gray(left), to_gray(right)
        disparity_range, pad = _search_range(self.params.min_disparity,
                                             self.params.disparity_range, left.shape[1])
        if pad:
            left_gray = cv2.copyMakeBorder(left_gray, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
            right_gray = cv2.copyMakeBorder(right_gray, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        try:
            with self._lock:
                fixed = self._matcher(disparity_range).compute(left_gray, right_gray)[:, pad:]
        except cv2.error as error:
            height, width = left.shape[:2]
            text = ' '.join(str(error).split())
            if 'Insufficient memory' in text:
                raise MemoryError(f'sgbm ran out of memory on a {width}x{height} pair') \
                    from None
            raise BackendError(f'sgbm failed on a {width}x{height} pair: {text}') from None
        disparity = fixed.astype(np.float32) / 16.0
        disparity[fixed < (self.params.min_disparity * 16)] = np.nan
        return np.ascontiguousarray(disparity)


def _search_range(min_disparity: int, disparity_range: int, width: int) -> tuple[int, int]:
    """Return the disparity range OpenCV can search on ``width`` columns and a left padding.

    No disparity can exceed the image width, so narrow images search a shorter range.
    OpenCV needs ``width > max(min + range, 0) - min(min, 0)`` and fails (or crashes)
    otherwise; images narrower than that even at the shortest range (16 px) are padded on
    the left with their edge pixels, and the padding is cropped off the result.
    """
    def needed(search: int) -> int:
        return max(min_disparity + search, 0) - min(min_disparity, 0) + 1

    search = disparity_range
    while search > 16 and needed(search) > width:
        search -= 16
    return search, max(0, needed(search) - width)


register_backend(BackendRecord(
    'sgbm', 'OpenCV semi-global block matching (classical, no weights)', SGBMOptions,
    factory=lambda options, device: SGBMBackend(options)))
