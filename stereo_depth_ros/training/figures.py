"""Before/after pictures of a network on pairs without ground truth (adaptation results).

``python -m stereo_depth_ros.training.figures BACKEND BEFORE AFTER --pairs DIR --out FILE``
draws two weights files of one backend on up to six pairs of a folder in one picture: left
view, disparity before, disparity after, a row per pair. ``--after-option KEY=VALUE`` runs the
right column with backend options of its own (the same file twice: what an option does).
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from ..backends import create_backend
from ..commands.common import check_output_folder, parse_backend_options
from ..errors import DatasetError, EXIT_BAD_INPUT, StereoDepthError
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
    written = []
    for folder, row in _rows(backend, before, after, pairs_root, device):
        path = out / f'{folder.parent.name}_{folder.name}.png'
        save_rgb(path, row)
        written.append(path)
    return written


def _rows(backend: str, before: str | Path, after: str | Path, pairs_root: str | Path,
          device: str, after_options: Optional[dict[str, Any]] = None
          ) -> list[tuple[Path, np.ndarray]]:
    """Return (pair folder, left | before | after picture) for each of :func:`figure_pairs`.

    ``after_options``: backend options of the right column's backend.
    """
    models = [create_backend(backend, weights=before, device=device),
              create_backend(backend, weights=after, device=device, **(after_options or {}))]
    after_title = ' '.join([f'{backend} after'] + [f'{key}={value}' for key, value
                                                   in (after_options or {}).items()])
    rows = []
    for folder in figure_pairs(pairs_root):
        left, right = read_image_rgb(folder / 'left.png'), read_image_rgb(folder / 'right.png')
        first, second = (model.compute(left, right) for model in models)
        scale = max(robust_max(first), robust_max(second), 1.0)
        panels = [titled(left, f'{folder.name}: left'),
                  titled(colorize_disparity(first, scale), f'{backend} before'),
                  titled(colorize_disparity(second, scale), after_title)]
        rows.append((folder, grid(panels, columns=3)))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Draw one before/after picture of two weights files on a folder of pairs."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.figures',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('backend', help='learned backend of both weights files')
    parser.add_argument('before', help='weights file drawn in the middle column')
    parser.add_argument('after', help='weights file drawn in the right column')
    parser.add_argument('--pairs', required=True, help='folder of pairs (<name>/left.png, '
                        f'right.png); up to {MAX_PAIRS} of them, spread over the folder')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--device', default='auto', help='where the backend runs')
    parser.add_argument('--after-option', action='append', default=[], metavar='KEY=VALUE',
                        help='repeatable: a backend option of the right column only (e.g. '
                             'speckle_size=800 with the same file twice)')
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if out.is_dir() or not cv2.haveImageWriter(str(out)):
            raise DatasetError(f'--out {out}: not an image file name OpenCV can write (e.g. '
                               'before_after.png)')
        check_output_folder(out.parent, f'--out {out}:')  # before the networks run
        rows = _rows(args.backend, args.before, args.after, args.pairs, args.device,
                     parse_backend_options(args.after_option, '--after-option'))
        width = max(row.shape[1] for _, row in rows)
        sheet = grid([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)))
                      for _, row in rows], columns=1)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_rgb(out, sheet)
    except (StereoDepthError, OSError, ValueError) as error:  # ValueError: KEY=VALUE
        print(f'figures: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
