"""How the pipeline's view check (``check_views``) scores pairs that match and pairs that do not.

For every backend named, runs it on real pairs without ground truth (``unlabeled/``); on every
fourth of them made harder in the ways of real cameras (:data:`DEGRADATIONS`: dark, noisy,
rows 2 or 3 px off, the right camera's exposure or gamma off, JPEG at quality 10); on full-range
validation scenes; and on pairs built to fail from the unlabeled images: the left
view of one scene with the right view of another (cropped to a common size), a right view of
dark noise, of black, a left view of noise, and dark noise in both. Prints, per group, the
lowest and highest share of judged pixels the right view confirms
(:func:`~stereo_depth_ros.view_check.check_views`) and how many pairs each verdict got. The
thresholds of ``stereo_depth_ros/view_check.py`` were chosen from its output, on these sets
only (no scene with ground truth):

    .venv/bin/python tools/view_check_sweep.py
    .venv/bin/python tools/view_check_sweep.py --backends sgbm,costnet_fast --every 2
"""

import argparse
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from stereo_depth_ros.backends.registry import backend_names, create_backend
from stereo_depth_ros.data.datasets import read_image_rgb
from stereo_depth_ros.training.selection import full_range_scenes
from stereo_depth_ros.view_check import check_views, MIN_AGREEMENT, Views

Pair = tuple[str, str, np.ndarray, np.ndarray]
UNLABELED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'unlabeled'


def noise(rng: np.random.Generator, shape: tuple[int, ...], mean: float,
          spread: float) -> np.ndarray:
    """Return uint8 Gaussian noise of ``shape``."""
    return np.clip(rng.normal(mean, spread, shape), 0, 255).astype(np.uint8)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Return ``values`` rounded and clipped to uint8."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def darker(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Return ``image`` as an underexposed frame: gain 0.03, read noise of 2 grey levels."""
    return to_uint8(image.astype(np.float32) * 0.03 + rng.normal(0, 2, image.shape))


def noisier(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Return ``image`` with Gaussian noise of 10 grey levels."""
    return to_uint8(image.astype(np.float32) + rng.normal(0, 10, image.shape))


def jpeg(image: np.ndarray, quality: int = 10) -> np.ndarray:
    """Return ``image`` through JPEG at ``quality``."""
    ok, data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


Degrade = Callable[[np.random.Generator, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: Real pairs made harder: (group, what it does to left and right).
DEGRADATIONS: tuple[tuple[str, Degrade], ...] = (
    ('dark', lambda rng, left, right: (darker(rng, left), darker(rng, right))),
    ('noisy', lambda rng, left, right: (noisier(rng, left), noisier(rng, right))),
    ('rows 2 px', lambda rng, left, right: (left, np.roll(right, 2, axis=0))),
    ('rows 3 px', lambda rng, left, right: (left, np.roll(right, 3, axis=0))),
    ('right gain .5', lambda rng, left, right: (left, to_uint8(right * 0.5))),
    ('right gamma', lambda rng, left, right: (left, to_uint8(255 * (right / 255) ** 2.2))),
    ('JPEG 10', lambda rng, left, right: (jpeg(left), jpeg(right))),
)


def unlabeled_pairs(root: Path, every: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Return (name, left, right) of every ``every``-th pair under ``root/<set>/<scene>``."""
    folders = sorted(path.parent for path in root.glob('*/*/left.png'))[::every]
    return [(f'{folder.parent.name}/{folder.name}', read_image_rgb(folder / 'left.png'),
             read_image_rgb(folder / 'right.png')) for folder in folders]


def failing_pairs(real: list[tuple[str, np.ndarray, np.ndarray]],
                  rng: np.random.Generator) -> Iterator[Pair]:
    """Yield (group, name, left, right) of pairs whose views do not match."""
    for index in range(0, len(real), 3):
        name, left, _ = real[index]
        other_name, _, other = real[(index + 7) % len(real)]
        height, width = (min(a, b) for a, b in zip(left.shape[:2], other.shape[:2]))
        if left.ndim == other.ndim:
            yield ('two scenes', f'{name} + {other_name}',
                   np.ascontiguousarray(left[:height, :width]),
                   np.ascontiguousarray(other[:height, :width]))
        if index % 9 == 0:
            yield 'right noise', name, left, noise(rng, left.shape, 10, 4)
            yield 'right black', name, left, np.zeros_like(left)
            yield 'left noise', name, noise(rng, left.shape, 128, 40), left
            yield 'dark noise', name, noise(rng, left.shape, 8, 3), noise(rng, left.shape, 8, 3)


def all_pairs(every: int, validation: int, rng: np.random.Generator) -> list[Pair]:
    """Return the groups of pairs the sweep scores."""
    real = unlabeled_pairs(UNLABELED, 1)
    pairs: list[Pair] = [('real', name, left, right) for name, left, right in real[::every]]
    for group, degrade in DEGRADATIONS:
        pairs += [(group, name, *degrade(rng, left, right)) for name, left, right in real[::4]]
    pairs += [('validation', scene.name, scene.left, scene.right)
              for scene in full_range_scenes(validation, ['layered', 'photo'])]
    pairs += list(failing_pairs(real, rng))
    return pairs


def main() -> None:
    """Print the sweep's table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backends', default=','.join(backend_names()),
                        help='comma-separated backends (default: all)')
    parser.add_argument('--every', type=int, default=1,
                        help='score every N-th real pair (default 1: all of them)')
    parser.add_argument('--validation', type=int, default=4,
                        help='full-range validation scenes per kind (default 4)')
    args = parser.parse_args()
    names = [name for name in args.backends.split(',') if name]
    pairs = all_pairs(args.every, args.validation, np.random.default_rng(5))
    shares: dict[tuple[str, str], list[float]] = defaultdict(list)
    verdicts: dict[tuple[str, str], list[Views]] = defaultdict(list)
    for name in names:
        backend = create_backend(name)
        for group, _, left, right in tqdm(pairs, desc=name, unit='pair'):
            check = check_views(left, right, backend.compute(left, right))
            shares[name, group].append(check.agreement)
            verdicts[name, group].append(check.verdict)
    print(f'confirmed share of the judged pixels (views match at {MIN_AGREEMENT:g} or more); '
          'verdicts match / no match / no texture')
    groups = list(dict.fromkeys(group for group, *_ in pairs))
    print(f'{"backend":<13} {"group":<14} {"pairs":>5} {"lowest":>7} {"highest":>7}  verdicts')
    for name in names:
        for group in groups:
            judged = [share for share in shares[name, group] if not math.isnan(share)]
            low, high = (f'{min(judged):.3f}', f'{max(judged):.3f}') if judged else ('-', '-')
            counts = ' / '.join(str(verdicts[name, group].count(verdict)) for verdict in Views)
            print(f'{name:<13} {group:<14} {len(shares[name, group]):>5} {low:>7} {high:>7}  '
                  f'{counts}')


if __name__ == '__main__':
    main()
