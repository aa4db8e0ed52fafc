"""Evaluate a backend on a dataset with ground truth (EPE, D1, bad-N, density)."""

import argparse
import sys
from typing import Sequence

import numpy as np

from .common import (add_align_rows_argument, add_backend_arguments, aligned_rows_line,
                     backend_from_args, json_line)
from ..pipeline_config import obstacle_parameters_from_options
from ..settings import parse_key_values
from ..errors import DatasetError
from ..backends.base import DisparityBackend
from ..data.datasets import DATASET_KINDS, load_dataset, StereoSample
from ..evaluation.evaluate import (beyond_reach, BeyondReach, BEYOND_REACH_SHARE,
                                   evaluate_backend)
from ..text import counted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the eval options."""
    add_backend_arguments(parser)
    parser.add_argument('--dataset', required=True, choices=DATASET_KINDS,
                        help='dataset layout of --root')
    parser.add_argument('--root', required=True,
                        help='dataset folder; for synthetic, seeds: eval:N, A:B or a,b,c')
    parser.add_argument('--nonoccluded', action='store_true',
                        help='middlebury2014, kitti2012 and kitti2015: score only the pixels '
                             'both cameras see (mask0nocc.png, disp_noc, disp_noc_0), as the '
                             'benchmarks\' non-occluded figures do')
    parser.add_argument('--synthetic-kind', default='layered', choices=('layered', 'road'),
                        help='scene kind of the synthetic dataset (default: layered)')
    add_align_rows_argument(parser)
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object as the last line')
    parser.add_argument('--per-pair', action='store_true',
                        help='also list per-pair metrics (with --obstacle: per scene)')
    parser.add_argument('--obstacle', action='store_true',
                        help='synthetic road scenes only: score the nearest-obstacle mask '
                             '(IoU with the true mask, distance error) instead of disparity')
    parser.add_argument('--obstacle-option', action='append', default=[], metavar='KEY=VALUE',
                        help='with --obstacle, repeatable: a setting of the obstacle search, '
                             'as the node parameter obstacle.KEY (e.g. '
                             'distance_band_fraction=0.2; default: the node\'s)')


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics."""
    if args.obstacle and args.nonoccluded:
        raise ValueError('--nonoccluded scores disparity on middlebury2014, kitti2012 or '
                         'kitti2015, not --obstacle')
    if args.obstacle:
        return _run_obstacle(args)
    if args.obstacle_option:
        raise ValueError('--obstacle-option needs --obstacle')
    options = {'scene_kind': args.synthetic_kind} if args.dataset == 'synthetic' else {}
    samples = load_dataset(args.dataset, args.root, nonoccluded=args.nonoccluded, **options)
    backend = backend_from_args(args)
    far: list[BeyondReach] = []

    def note_reach(sample: StereoSample, _: np.ndarray) -> None:
        found = beyond_reach(backend, sample)
        if found is not None:
            far.append(found)

    summary = evaluate_backend(backend, samples, on_prediction=note_reach,
                               align_rows=args.align_rows)
    if far:
        print(beyond_reach_warning(backend, far, len(samples)), file=sys.stderr)
    if summary['rows_aligned']:
        print(aligned_rows_line(summary['rows_aligned'], summary['n']), file=sys.stderr)
    pairs = summary.pop('pairs')
    if summary['n_skipped'] == summary['n']:
        raise DatasetError(f'no pair of {args.root} has usable ground truth ({summary["n"]} '
                           f'pairs, all without known disparity): nothing to score')
    summary = {'backend': args.backend, 'dataset': args.dataset,
               'nonoccluded': args.nonoccluded, **summary,
               'beyond_reach': [{'name': pair.name, 'share': pair.share, 'reach': pair.reach}
                                for pair in far]}
    if args.per_pair:
        for row in pairs:
            print(' '.join(_per_pair_field(key, value) for key, value in row.items()))
    if args.json:
        if args.per_pair:
            summary['pairs'] = pairs
        print(json_line(summary))
    else:
        skipped = summary.get('n_skipped', 0)
        pairs_text = counted(summary['n'], 'pair') + (
            f', {skipped} without ground truth skipped' if skipped else '')
        which = ', non-occluded pixels' if args.nonoccluded else ''
        print(f'{args.backend} on {args.dataset}{which} ({pairs_text}): '
              f'{_metrics_text(summary)}, {summary["ms_per_pair"]:.1f} ms/pair (means over the '
              'pairs; ms: the median of one call each, the first at each image size with '
              'start-up)')
        if summary['n'] - skipped > 1:
            pooled = summary['pooled']
            print(f'  pooled over the pairs\' {pooled["pixels"]:,.0f} ground-truth pixels '
                  f'(as KITTI\'s devkit scores a set): {_metrics_text(pooled)}')
    return 0


def beyond_reach_warning(backend: DisparityBackend, far: Sequence[BeyondReach],
                         count: int) -> str:
    """Return the line naming the pairs whose ground truth the backend's range cannot reach."""
    most = max(far, key=lambda pair: pair.share)
    if most.reach < float(backend.max_disparity):
        wider = (f'the pair is only {most.width} px wide, and on it {backend.name} searches '
                 f'no farther than {most.reach:g} px (no match lies beyond the width)')
    elif backend.name == 'sgbm':
        wider = 'widen the range with a larger --backend-option disparity_range'
    else:
        wider = ('widen the range with --backend-option near_passes (each pass extends it by '
                 '1/near_scale), a smaller scale, or max_disparity 0 (the whole range)')
    return (f'warning: on {len(far)} of {counted(count, "pair")}, '
            f'{100 * BEYOND_REACH_SHARE:g} % or more of the ground truth lies beyond the '
            f'largest disparity {backend.name} gives (most: {most.name}, '
            f'{100 * most.share:.1f} % above {most.reach:g} px); those pixels count as wrong: '
            f'{wider}')


#: Per-pair metrics that are fractions of the pixels: printed in %, as the summary line is.
_FRACTIONS = frozenset({'d1', 'bad1', 'bad2', 'bad3', 'density', 'estimated_bad2'})


def _per_pair_field(key: str, value: object) -> str:
    """Return one ``key=value`` of a per-pair line, fractions in % and EPE in px."""
    if key in _FRACTIONS and isinstance(value, float):
        return f'{key}={100 * value:.2f}%'
    if key == 'epe' and isinstance(value, float):
        return f'{key}={value:.4f}px'
    return f'{key}={value:.4f}' if isinstance(value, float) else f'{key}={value}'


def _obstacle_field(key: str, value: object) -> str:
    """Return one ``key=value`` of a per-scene obstacle line: IoU, metres, error in %."""
    if key == 'distance_error' and isinstance(value, float):
        return f'{key}={100 * value:.1f}%'
    if key in ('distance', 'true_distance') and isinstance(value, float):
        return f'{key}={value:.2f}m'
    return f'{key}={value:.3f}' if isinstance(value, float) else f'{key}={value}'


def _metrics_text(metrics: dict) -> str:
    """Return EPE, D1, bad-1/2/3 and density as eval prints them, means or pooled."""
    return (f'EPE {metrics["epe"]:.3f} px, D1 {100 * metrics["d1"]:.2f} %, '
            f'bad-1 {100 * metrics["bad1"]:.2f} %, bad-2 {100 * metrics["bad2"]:.2f} %, '
            f'bad-3 {100 * metrics["bad3"]:.2f} %, density {100 * metrics["density"]:.1f} %')


def _run_obstacle(args: argparse.Namespace) -> int:
    from ..data.datasets import parse_seed_spec
    from ..evaluation.obstacles import evaluate_obstacles
    if args.dataset != 'synthetic' or args.synthetic_kind != 'road':
        raise ValueError('--obstacle needs --dataset synthetic --synthetic-kind road '
                         '(scenes with a known obstacle mask)')
    summary = evaluate_obstacles(backend_from_args(args), parse_seed_spec(args.root),
                                 params=obstacle_parameters_from_options(parse_key_values(
                                     args.obstacle_option, '--obstacle-option')),
                                 align_rows=args.align_rows)
    pairs = summary.pop('pairs')
    if summary['rows_aligned']:
        print(aligned_rows_line(summary['rows_aligned'], summary['n']), file=sys.stderr)
    summary = {'backend': args.backend, 'dataset': 'synthetic-road', **summary}
    if args.per_pair:
        for row in pairs:
            print(' '.join(_obstacle_field(key, value) for key, value in row.items()))
    if args.json:
        if args.per_pair:
            summary['pairs'] = pairs
        print(json_line(summary))
    else:
        print(f'{args.backend} nearest obstacle on {summary["n"]} road scenes: IoU mean '
              f'{summary["iou_mean"]:.3f} min {summary["iou_min"]:.3f}, found '
              f'{100 * summary["found_rate"]:.0f} %, distance error median '
              f'{100 * summary["distance_error_median"]:.1f} % max '
              f'{100 * summary["distance_error_max"]:.1f} %')
    return 0
