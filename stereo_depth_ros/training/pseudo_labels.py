"""Pseudo-labels for real pairs without ground truth: disparities that pass a left-right check.

A labelling backend matches the pair twice, left-to-right and (on the mirrored images)
right-to-left; a left pixel keeps its disparity ``d`` only where the right view's disparity at
``x - d`` agrees within :data:`LR_TOLERANCE` px. Occlusions, repeated patterns and most
gross errors fail that check, so what is left is mostly right: a supervised signal on real
textures, optics and noise for the networks (unknown pixels are left out of the loss).

The labeller is ``sgbm`` by default (sparse labels, independent of any network). A learned
backend can label instead (``labeller: costnet``): a stronger network's checked, dense
disparities teach a weaker one (distillation), still without any ground truth.
"""

from pathlib import Path
from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from .config import DEFAULT_LABELLER
from ..backends import backend_record, create_backend
from ..backends.base import DisparityBackend
from ..data.datasets import check_same_shape, read_image_as_stored, StereoSample
from ..errors import BackendError, DatasetError
from ..images import to_rgb

#: The largest disparity (px) of pseudo-labels where a source or command names none: the
#: full range of a KITTI camera at full resolution, which training and selection share.
PSEUDO_LABEL_MAX_DISPARITY = 192.0

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


#: A labelling function: uint8 left, right -> float32 disparity of the left view (NaN: none).
Labeller = Callable[[np.ndarray, np.ndarray], np.ndarray]


def check_labeller(backend: str, weights: Optional[str] = None) -> None:
    """Raise one-line BackendError unless ``backend`` (with ``weights``) can label pairs.

    Cheap (nothing is loaded): commands call it before any slow work such as extracting a bag.
    """
    try:
        record = backend_record(backend)
    except BackendError as error:
        raise BackendError(f'labeller: {error}') from None
    if weights is None:
        return
    if record.network is None:
        raise BackendError(f'labeller {backend} takes no weights, got {weights}')
    if not Path(weights).expanduser().is_file():
        raise BackendError(f'labeller weights {weights} do not exist')


def make_labeller(max_disparity: float, backend: str = DEFAULT_LABELLER,
                  weights: Optional[str] = None) -> Labeller:
    """Return the left-right checked disparity of a pair by ``backend``, up to ``max_disparity``.

    ``sgbm`` searches ``max_disparity`` (rounded up to 16, capped by the image width) with a
    strict uniqueness ratio; a learned backend runs with its default options (``weights``:
    its shipped file unless given) and drops values above ``max_disparity``.
    """
    check_labeller(backend, weights)
    matcher: Optional[DisparityBackend] = None
    if backend != DEFAULT_LABELLER:
        matcher = create_backend(backend, weights, max_disparity=max_disparity)

    def label(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        run = matcher or create_backend(
            DEFAULT_LABELLER, disparity_range=_sgbm_range(max_disparity, left.shape[1]),
            uniqueness_ratio=UNIQUENESS_RATIO)
        left_disparity = run.compute(left, right)
        mirrored = run.compute(np.ascontiguousarray(right[:, ::-1]),
                               np.ascontiguousarray(left[:, ::-1]))
        right_disparity = np.ascontiguousarray(mirrored[:, ::-1])
        return left_right_consistent(left_disparity, right_disparity)

    return label


def pseudo_label(left: np.ndarray, right: np.ndarray, max_disparity: float) -> np.ndarray:
    """Return the left-right consistent SGBM disparity of a pair (NaN = no label)."""
    return make_labeller(max_disparity)(left, right)


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


def incomplete_pairs_warning(root: str | Path) -> Optional[str]:
    """Return a warning naming folders under ``root`` with left.png or right.png alone.

    :func:`find_pairs` leaves them out, so a pair with a missing view would otherwise vanish
    from a run without a word. None when there is none (or ``root`` is not a folder).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    halves = {path.parent for name in ('left.png', 'right.png') for path in root.rglob(name)}
    alone = sorted(folder for folder in halves
                   if not ((folder / 'left.png').is_file() and (folder / 'right.png').is_file()))
    if not alone:
        return None
    return (f'warning: {len(alone)} folder(s) under {root} hold only one of left.png and '
            f'right.png and are left out (first: {alone[0]})')


def pseudo_labelled_dataset(root: str | Path, max_disparity: float,
                            labeller: str = DEFAULT_LABELLER,
                            labeller_weights: Optional[str] = None,
                            progress: bool = True, bit_depth: Optional[int] = None,
                            notes: Optional[list[str]] = None) -> list[StereoSample]:
    """Read every pair under ``root`` and label it (:func:`make_labeller`; SGBM by default).

    16-bit files are scaled over ``bit_depth`` bits (None: all 16); a line on files that use
    few of their bits goes to ``notes``. A pair of two sizes, or of a grey file and a colour
    one, is DatasetError naming its folder.
    """
    label = make_labeller(max_disparity, labeller, labeller_weights)
    samples = []
    for folder in tqdm(find_pairs(root), desc=f'{labeller} labels', unit='pair', leave=False,
                       disable=not progress):
        left, right = (read_image_as_stored(folder / name, notes, bit_depth)
                       for name in ('left.png', 'right.png'))
        check_same_shape(folder, left.shape, right.shape)
        left, right = to_rgb(left), to_rgb(right)
        samples.append(StereoSample(folder.name, left, right, label(left, right)))
    return samples
