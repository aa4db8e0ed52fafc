"""Print training seeds whose synthetic scenes no config of the repository has used.

A training run's synthetic scene ``n`` has the generator seed ``(seed * 7919 + n) mod
1_000_000`` (``stereo_depth_ros/training/sources.py``), and a run of ``S`` samples with
``scene_reuse: 3`` uses scenes ``n < S / 3``. So neighbouring seeds share scenes: seed 83
starts 7,919 scenes after seed 82, and config/selflabel16b_costnet.yaml's CPU run of seed 82
(25,840 samples, about 8,600 scenes) already used seed 83's first scenes; a GPU call of 8
minutes with all 16 cores (about 70,000 samples, 23,000 scenes) spans three seeds. This script
takes the seeds named in ``config/*.yaml`` as taken for ``--config-window`` scenes each (the
runs of the configs so far made at most 40,000 samples) and those of ``--used`` (earlier
calls on the lent machine) for ``--window`` scenes, and prints ``--count`` seeds whose own
windows of ``--window`` scenes meet none of them nor each other::

    python3 tools/gpu_lease/seeds.py --count 2            # e.g. "100 106"
    python3 tools/gpu_lease/seeds.py --count 1 --used 100 106   # seeds of earlier calls

run.sh calls it when ``SEEDS`` is not given. Standard library only (it runs on the lent
machine before anything else).
"""

import argparse
import re
import sys
from pathlib import Path

#: The scene seeds of training (sources.TRAIN_SEED_LIMIT) and the step between two seeds.
LIMIT = 1_000_000
STRIDE = 7919


def windows(seed: int, width: int) -> list[tuple[int, int]]:
    """Return the scene-seed intervals of a run with ``seed`` over ``width`` scenes."""
    start = seed * STRIDE % LIMIT
    if start + width <= LIMIT:
        return [(start, start + width)]
    return [(start, LIMIT), (0, start + width - LIMIT)]


def overlaps(first: list[tuple[int, int]], second: list[tuple[int, int]]) -> bool:
    """Whether two lists of half-open intervals meet."""
    return any(a < d and c < b for a, b in first for c, d in second)


def config_seeds(folder: Path, exclude: set[str]) -> set[int]:
    """Return the ``seed:`` values of the YAML files in ``folder`` (except ``exclude``)."""
    found = set()
    for path in sorted(folder.glob('*.yaml')):
        if path.stem in exclude:
            continue
        for match in re.finditer(r'^seed:\s*(\d+)\s*$', path.read_text(), re.M):
            found.add(int(match.group(1)))
    return found


def free_seeds(taken: list[tuple[int, int]], count: int, width: int,
               start: int = 100) -> list[int]:
    """Return ``count`` seeds from ``start`` on whose windows of ``width`` scenes meet neither
    the ``taken`` intervals nor each other."""
    taken = list(taken)
    chosen: list[int] = []
    seed = start
    while len(chosen) < count:
        if seed > start + 100 * LIMIT // STRIDE:
            raise SystemExit(f'seeds.py: fewer than {count} free seeds; lower --window')
        own = windows(seed, width)
        if not overlaps(own, taken):
            chosen.append(seed)
            taken.extend(own)
        seed += 1
    return chosen


def main() -> None:
    """Print the seeds, separated by spaces."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=1)
    parser.add_argument('--config', type=Path, default=Path('config'),
                        help='folder of the training configs (default config)')
    parser.add_argument('--used', type=int, nargs='*', default=[],
                        help='more seeds to avoid (e.g. of earlier calls)')
    parser.add_argument('--exclude-config', nargs='*', default=[],
                        help='configs (names without .yaml) whose seed does not count as used')
    parser.add_argument('--window', type=int, default=30000,
                        help='scenes of a new seed and of each --used one (default 30000: '
                             '90,000 samples with scene_reuse 3, a 10-minute call)')
    parser.add_argument('--config-window', type=int, default=15000,
                        help='scenes of each config seed (default 15000: 45,000 samples)')
    parser.add_argument('--start', type=int, default=100, help='smallest seed to print')
    args = parser.parse_args()
    if not args.config.is_dir():
        sys.exit(f'seeds.py: {args.config} is not a folder')
    taken = [interval for seed in sorted(config_seeds(args.config, set(args.exclude_config)))
             for interval in windows(seed, args.config_window)]
    taken += [interval for seed in args.used for interval in windows(seed, args.window)]
    print(' '.join(map(str, free_seeds(taken, args.count, args.window, args.start))))


if __name__ == '__main__':
    main()
