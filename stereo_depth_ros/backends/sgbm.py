"""Classical semi-global block matching (OpenCV StereoSGBM); needs no weights."""

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from .base import DisparityBackend
from .registry import register_backend
from ..errors import BackendError
from ..images import to_gray

_MODES = {
    'sgbm': cv2.STEREO_SGBM_MODE_SGBM,
    'hh': cv2.STEREO_SGBM_MODE_HH,
    'sgbm_3way': cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    'hh4': cv2.STEREO_SGBM_MODE_HH4,
}


@dataclass
class SGBMParameters:
    """StereoSGBM settings, named as in ``stereo_image_proc``'s disparity node.

    ``p1``/``p2`` of 0 mean the usual ``8*cn*block^2`` and ``32*cn*block^2``.
    """

    min_disparity: int = 0
    disparity_range: int = 128
    block_size: int = 5
    p1: int = 0
    p2: int = 0
    disp12_max_diff: int = 1
    pre_filter_cap: int = 31
    uniqueness_ratio: int = 10
    speckle_window_size: int = 100
    speckle_range: int = 2
    mode: str = 'sgbm_3way'

    def validate(self) -> None:
        """Raise BackendError naming the first invalid setting."""
        for item in fields(self):
            value = getattr(self, item.name)
            expected = str if item.name == 'mode' else int
            if not isinstance(value, expected) or isinstance(value, bool):
                raise BackendError(f'sgbm {item.name} must be {expected.__name__}, '
                                   f'got {value!r}')
        if self.disparity_range <= 0 or self.disparity_range % 16:
            raise BackendError(
                f'sgbm disparity_range must be a positive multiple of 16, got '
                f'{self.disparity_range}')
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise BackendError(f'sgbm block_size must be odd and >= 1, got {self.block_size}')
        if self.mode not in _MODES:
            raise BackendError(
                f'sgbm mode must be one of {sorted(_MODES)}, got {self.mode!r}')
        if self.p2 and self.p2 <= self.p1:
            raise BackendError(f'sgbm needs p2 > p1, got p1={self.p1} p2={self.p2}')


@register_backend('sgbm', needs_weights=False,
                  summary='OpenCV semi-global block matching (classical, no weights)')
class SGBMBackend(DisparityBackend):
    """OpenCV StereoSGBM with left-right consistency; invalid pixels are NaN."""

    def __init__(self, device: str = 'auto', **options: Any) -> None:
        known = {f.name for f in fields(SGBMParameters)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise BackendError(f'unknown sgbm option(s) {unknown}; known: {sorted(known)}')
        self.params = SGBMParameters(**options)
        self.params.validate()
        self._matchers: dict[int, Any] = {}

    def _matcher(self, disparity_range: int) -> Any:
        if disparity_range not in self._matchers:
            p = self.params
            area = p.block_size ** 2
            self._matchers[disparity_range] = cv2.StereoSGBM_create(
                minDisparity=p.min_disparity, numDisparities=disparity_range,
                blockSize=p.block_size, P1=p.p1 or 8 * area, P2=p.p2 or 32 * area,
                disp12MaxDiff=p.disp12_max_diff, preFilterCap=p.pre_filter_cap,
                uniquenessRatio=p.uniqueness_ratio, speckleWindowSize=p.speckle_window_size,
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

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        left_gray, right_gray = to_gray(left), to_gray(right)
        disparity_range, pad = _search_range(self.params.min_disparity,
                                             self.params.disparity_range, left.shape[1])
        if pad:
            left_gray = cv2.copyMakeBorder(left_gray, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
            right_gray = cv2.copyMakeBorder(right_gray, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        try:
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
