"""Pseudo-labels for real pairs without ground truth: SGBM that passes a left-right check.

The ``sgbm`` backend matches the pair twice, left-to-right and (on the mirrored images)
right-to-left; a left pixel keeps its disparity ``d`` only where the right view's disparity at
``x - d`` agrees within :data:`LR_TOLERANCE` px. Occlusions, repeated patterns and most
gross errors fail that check, so what is left is sparse but mostly right: a supervised signal
on real textures, optics and noise for the networks (unknown pixels are left out of the loss).
"""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..backends import create_backend
from ..data.datasets import StereoSample, read_image_rgb
from ..errors import DatasetError

#: Largest left-right disagreement (px) that still counts as consistent.
LR_TOLERANCE = 1.0
#: Stricter than the backend's default uniqueness, as wrong labels cost more than few labels.
UNIQUENESS_RATIO = 15


def _sgbm_range(max_disparity: float, width: int) -> int:
    wanted = int(np.ceil(max_disparity / 16.0)) * 16
    return max(16, min(wanted, (width - 1) // 16 * 16))


def left_right_consistent(left_disparity: np.ndarray, right_disparity: np.ndarray,
                          tolerance: float = LR_TOLERANCE) -> np.ndarray:
    """Return ``left_disparity`` with NaN where the right view's disparity disagrees.

    ``right_disparity[y, x]`` is the right view's disparity (its match in the left view is at
    ``x + d``); a left pixel ``x`` with disparity ``d`` is checked against the right view at
    the nearest column to ``x - d``.
    """
    height, width = left_disparity.shape
    cols = np.arange(width, dtype=np.float32)[None, :]
    with np.errstate(invalid='ignore'):
        target = np.rint(cols - left_disparity)
        inside = np.isfinite(target) & (target >= 0) & (target < width)
    rows = np.broadcast_to(np.arange(height)[:, None], (height, width))
    matched = np.full_like(left_disparity, np.nan)
    matched[inside] = right_disparity[rows[inside], target[inside].astype(np.int64)]
    with np.errstate(invalid='ignore'):
        agree = inside & (np.abs(matched - left_disparity) <= tolerance)
    return np.where(agree, left_disparity, np.nan).astype(np.float32)


def pseudo_label(left: np.ndarray, right: np.ndarray, max_disparity: float) -> np.ndarray:
    """Return the left-right consistent SGBM disparity of a pair (NaN = no label)."""
    backend = create_backend('sgbm', disparity_range=_sgbm_range(max_disparity, left.shape[1]),
                             uniqueness_ratio=UNIQUENESS_RATIO)
    left_disparity = backend.compute(left, right)
    mirrored = backend.compute(np.ascontiguousarray(right[:, ::-1]),
                               np.ascontiguousarray(left[:, ::-1]))
    right_disparity = np.ascontiguousarray(mirrored[:, ::-1])
    return left_right_consistent(left_disparity, right_disparity)


def find_pairs(root: str | Path) -> list[Path]:
    """Return every folder under ``root`` (itself included) holding left.png and right.png."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f'pair folder {root} is not a folder')
    folders = sorted({path.parent for path in root.rglob('left.png')
                      if (path.parent / 'right.png').is_file()})
    if not folders:
        raise DatasetError(f'no left.png/right.png pairs under {root}')
    return folders


def pseudo_labelled_dataset(root: str | Path, max_disparity: float) -> list[StereoSample]:
    """Read every pair under ``root`` and label it with :func:`pseudo_label`."""
    samples = []
    for folder in tqdm(find_pairs(root), desc='pseudo-labels', unit='pair', leave=False):
        left, right = read_image_rgb(folder / 'left.png'), read_image_rgb(folder / 'right.png')
        if left.shape != right.shape:
            raise DatasetError(f'{folder}: left {left.shape} and right {right.shape} differ')
        samples.append(StereoSample(folder.name, left, right,
                                    pseudo_label(left, right, max_disparity)))
    return samples
