"""Before/after pictures of a network on pairs without ground truth (adaptation results)."""

from pathlib import Path
from typing import Optional

import cv2

from ..backends import create_backend
from ..errors import DatasetError
from ..data.datasets import check_same_size, read_image_rgb
from ..visualize import colorize_disparity, grid, robust_max, save_rgb, titled
from .pseudo_labels import find_pairs

#: Pairs drawn at most.
MAX_PAIRS = 6


def figure_pairs(pairs_root: str | Path) -> list[Path]:
    """Return the pair folders :func:`before_after` draws; DatasetError for a bad one.

    Checked before an adaptation runs: a pair whose images differ in size is named.
    """
    folders = find_pairs(pairs_root)
    chosen = folders[::max(len(folders) // MAX_PAIRS, 1)][:MAX_PAIRS]
    for folder in chosen:
        shapes = []
        for name in ('left.png', 'right.png'):
            image = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise DatasetError(f'{folder / name} is not a readable image')
            shapes.append(image.shape[:2])
        check_same_size(folder, *shapes)
    return chosen


def before_after(backend: str, before: str | Path, after: str | Path,
                 pairs_root: Optional[str | Path], out_dir: str | Path,
                 device: str = 'auto') -> list[Path]:
    """Draw left view | disparity before | disparity after for up to :data:`MAX_PAIRS` pairs.

    Both disparities of a pair share one colour scale (the larger 99th percentile). Returns
    the written PNG paths (none without pairs).
    """
    if pairs_root is None:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = [create_backend(backend, weights=path, device=device) for path in (before, after)]
    written = []
    for folder in figure_pairs(pairs_root):
        left, right = read_image_rgb(folder / 'left.png'), read_image_rgb(folder / 'right.png')
        first, second = (model.compute(left, right) for model in models)
        scale = max(robust_max(first), robust_max(second), 1.0)
        panels = [titled(left, f'{folder.name}: left'),
                  titled(colorize_disparity(first, scale), f'{backend} before'),
                  titled(colorize_disparity(second, scale), f'{backend} after')]
        path = out / f'{folder.parent.name}_{folder.name}.png'
        save_rgb(path, grid(panels, columns=3))
        written.append(path)
    return written
