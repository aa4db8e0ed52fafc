"""Cheap checks that a stereo pair is what it claims to be, before trusting its result.

* :func:`check_image_size` refuses pairs larger than a configurable limit (megapixels), so
  a 4000x3000 photo does not take gigabytes of memory before anything is said;
* :func:`likely_swapped` says whether left and right look exchanged: on a few rows, the
  horizontal shift that matches best is negative for most of them (a correct rectified
  pair only has positive disparities), which turns the scene into phantom near obstacles.
"""

from typing import Optional

import numpy as np

from .errors import ImageFormatError
from .images import to_gray

#: Default ``--max-megapixels``: larger than 1080p and 2048x1536, smaller than 4000x3000.
DEFAULT_MAX_MEGAPIXELS = 4.0


def check_image_size(width: int, height: int, max_megapixels: Optional[float],
                     option: str = '--max-megapixels') -> None:
    """Raise ImageFormatError when ``width x height`` exceeds ``max_megapixels`` (None: none).

    The message says how large the image is and how to raise the limit with ``option``.
    """
    if max_megapixels is None or max_megapixels <= 0:
        return
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        needed = np.ceil(megapixels * 10) / 10
        raise ImageFormatError(
            f'images are {width}x{height} ({megapixels:.1f} MP), above the limit of '
            f'{max_megapixels:g} MP that keeps memory bounded; downscale them or raise the '
            f'limit with {option} {needed:g} (0 = no limit)')


def _row_shift_scores(left: np.ndarray, right: np.ndarray, rows: np.ndarray,
                      max_shift: int) -> np.ndarray:
    """Return the mean absolute difference of each row for shifts ``-max_shift..max_shift``.

    Shift ``s`` compares left pixel ``x`` with right pixel ``x - s`` (positive disparity).
    """
    width = left.shape[1]
    scores = np.full((len(rows), 2 * max_shift + 1), np.inf, np.float32)
    for column, shift in enumerate(range(-max_shift, max_shift + 1)):
        lo, hi = max(shift, 0), width + min(shift, 0)
        if hi - lo < width // 2:
            continue
        a = left[rows, lo:hi].astype(np.float32)
        b = right[rows, lo - shift:hi - shift].astype(np.float32)
        scores[:, column] = np.abs(a - b).mean(axis=1)
    return scores


def likely_swapped(left: np.ndarray, right: np.ndarray, n_rows: int = 16,
                   max_shift: Optional[int] = None) -> bool:
    """Return True when left and right look exchanged (see the module docstring).

    ``n_rows`` textured rows are compared at shifts up to ``max_shift`` (default: a quarter
    of the width, at most 64 px). The pair counts as swapped when at least two thirds of
    the rows with a clear best shift match best at a negative one, and at least four do.
    """
    gray_left, gray_right = to_gray(left), to_gray(right)
    height, width = gray_left.shape
    if width < 16 or height < 4:
        return False
    max_shift = max_shift or max(2, min(64, width // 4))
    texture = np.abs(np.diff(gray_left.astype(np.int16), axis=1)).mean(axis=1)
    candidates = np.argsort(texture)[::-1][:max(n_rows * 4, n_rows)]
    rows = np.sort(candidates[np.linspace(0, len(candidates) - 1, n_rows).astype(int)])
    rows = rows[texture[rows] > 1.0]
    if len(rows) < 4:
        return False
    scores = _row_shift_scores(gray_left, gray_right, rows, max_shift)
    best = scores.argmin(axis=1) - max_shift
    clear = [shift for shift, row in zip(best, scores)
             if shift != 0 and np.min(row) < 0.8 * np.median(row[np.isfinite(row)])]
    negative = sum(1 for shift in clear if shift < 0)
    return negative >= 4 and negative >= 2 * len(clear) / 3


#: What :func:`likely_swapped` saw, as every warning about it says it.
SWAP_SYMPTOM = ('left and right look swapped (the best match on most rows is at a negative '
                'disparity)')


def swap_warning(name: str, advice: str = 'exchange the inputs') -> str:
    """Return the warning line for a pair that :func:`likely_swapped`; ``name`` may be ''."""
    where = f' {name}:' if name else ''
    return f'warning:{where} {SWAP_SYMPTOM}; obstacles would be phantoms - {advice}'
