"""Pictures of the nearest obstacle with two obstacle settings side by side, on real pairs.

For pairs without ground truth (e.g. the OAK-D Lite pairs of ``../shared/data/unlabeled``):
one row per pair, the disparity and the obstacle found with each setting. Reproduces the
figure of docs/obstacle.md::

    python -m stereo_depth_ros.evaluation.obstacle_pictures \
        ../shared/data/unlabeled/oakd_lite/{desk,living_room,bedroom_chair,corridor} \
        --fx 451.03 --baseline 0.075 --option distance_band_fraction=0 \
        --out docs/images/obstacle_indoor.png
"""

import argparse
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..backends import create_backend
from ..backends.registry import DEFAULT_BACKEND
from ..camera import StereoCameraModel
from ..data.datasets import read_image_rgb
from ..obstacle import segment_nearest_obstacle
from ..pipeline import StereoPipeline
from ..pipeline_config import obstacle_parameters_from_options
from ..settings import parse_key_values
from ..visualize import colorize_disparity, grid, overlay_obstacle, save_rgb, titled

#: Width (px) each picture of the figure is drawn at.
PICTURE_WIDTH = 400


def _shrunk(image: np.ndarray) -> np.ndarray:
    height = round(image.shape[0] * PICTURE_WIDTH / image.shape[1])
    return cv2.resize(image, (PICTURE_WIDTH, height), interpolation=cv2.INTER_AREA)


def draw(pairs: Sequence[Path], fx: float, baseline: float, options: Sequence[str],
         out: Path, backend_name: str = DEFAULT_BACKEND) -> Path:
    """Draw, per pair folder (``left.png``, ``right.png``), default and ``options`` obstacles."""
    pipeline = StereoPipeline(create_backend(backend_name),
                              obstacle_params=obstacle_parameters_from_options({}))
    changes = parse_key_values(options, '--option')
    other = obstacle_parameters_from_options(changes)
    changed = ', '.join(f'{key}={value}' for key, value in changes.items())
    pictures = []
    for folder in tqdm(pairs, desc='obstacle pictures', unit='pair'):
        left, right = (read_image_rgb(Path(folder) / name) for name in ('left.png', 'right.png'))
        camera = StereoCameraModel.from_focal_baseline(fx, baseline, left.shape[1],
                                                       left.shape[0])
        result = pipeline.process(left, right, camera, outputs={'depth', 'obstacle'})
        assert result.depth is not None  # asked for, with a camera
        name = Path(folder).name
        pictures += [titled(_shrunk(colorize_disparity(result.disparity)),
                            f'{name}: {backend_name}'),
                     titled(_shrunk(overlay_obstacle(left, result.obstacle)),
                            'obstacle, node defaults'),
                     titled(_shrunk(overlay_obstacle(left, segment_nearest_obstacle(
                         result.depth, camera, other))), f'obstacle, {changed}')]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_rgb(out, grid(pictures, columns=3))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Draw the figure; print where it went."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.evaluation.'
                                          'obstacle_pictures',
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument('pairs', nargs='+', type=Path, help='folders with left.png, right.png')
    parser.add_argument('--fx', type=float, required=True, help='focal length, px')
    parser.add_argument('--baseline', type=float, required=True, help='baseline, m')
    parser.add_argument('--option', action='append', required=True, metavar='KEY=VALUE',
                        help='obstacle setting of the third column (node parameter '
                             'obstacle.KEY), repeatable; the second has the defaults')
    parser.add_argument('--backend', default=DEFAULT_BACKEND, help='disparity backend')
    parser.add_argument('--out', type=Path, required=True, help='PNG to write')
    args = parser.parse_args(argv)
    print(f'wrote {draw(args.pairs, args.fx, args.baseline, args.option, args.out, args.backend)}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
