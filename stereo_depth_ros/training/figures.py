"""Before/after pictures of a network on pairs without ground truth (adaptation results)."""

from pathlib import Path
from typing import Optional

from ..backends import create_backend
from ..data.datasets import read_image_rgb
from ..visualize import colorize_disparity, grid, robust_max, save_rgb, titled
from .pseudo_labels import find_pairs

#: Pairs drawn at most.
MAX_PAIRS = 6


def before_after(backend: str, before: str | Path, after: str | Path,
                 pairs_root: Optional[str | Path], out_dir: str | Path,
                 device: str = 'auto') -> list[Path]:
    """Draw left view | disparity before | disparity after for up to :data:`MAX_PAIRS` pairs.

    Both disparities of a pair share one colour scale (the larger 99th percentile). Returns
    the written PNG paths (none without pairs).
    """
    if pairs_root is None:
        return []
    folders = find_pairs(pairs_root)
    step = max(len(folders) // MAX_PAIRS, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = [create_backend(backend, weights=path, device=device) for path in (before, after)]
    written = []
    for folder in folders[::step][:MAX_PAIRS]:
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
