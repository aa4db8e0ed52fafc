"""Where the pixels the right camera cannot see lie, and how far a row's surface explains them.

Prints, over full-range scenes (true disparity 1-192 px at 1248x384), the share of the pixels
of 64 px and more that the right camera cannot see, the share of those that lie in their row's
left strip, and how many of the strip's pixels of 64 px and more are wrong by more than 3 px:
as a backend gives them, and as a straight line through the row's visible surface gives them.

A row's left strip is everything left of its first pixel that the right camera sees and whose
match lands within 3 px of the right view's left edge (the true disparity says which): every
pixel there is out of view or behind that surface. The line is fitted to the visible pixels of
the next 24 columns that lie within 24 px of the boundary's disparity, once through the truth
(what a surface's visible part says of its hidden part) and once through the backend's
estimate where its matching cost is below 0.5.

    .venv/bin/python tools/left_strip_analysis.py --scenes test
    .venv/bin/python tools/left_strip_analysis.py --scenes validation --backend costnet

``test``: the model cards' 20 full-range test scenes (ground truth only unless --backend);
``validation``: the first 6 layered and 6 photo full-range validation scenes.
"""

import argparse
from typing import Optional

import numpy as np
import torch

from stereo_depth_ros.backends.registry import create_backend
from stereo_depth_ros.evaluation.visibility import unseen_by_right_camera
from stereo_depth_ros.images import to_gray
from stereo_depth_ros.networks.pass_choice import matching_costs
from stereo_depth_ros.training.selection import full_range_scenes, full_range_test_scenes

LARGE = 64.0
EDGE = 3.0
FIT_COLUMNS = 24
CONFIDENT_COST = 0.5


def line_through(values: np.ndarray, usable: np.ndarray, start: int) -> tuple[float, float]:
    """Return (intercept, slope) of the row's surface from column ``start`` rightwards."""
    end = min(start + FIT_COLUMNS, values.size)
    columns = [x for x in range(start, end)
               if usable[x] and abs(values[x] - values[start]) < FIT_COLUMNS]
    if len(columns) < 4:
        return float(values[start]), 0.0
    slope, intercept = np.polyfit(columns, values[columns], 1)
    return float(intercept), float(slope)


def wrong(predicted: np.ndarray, target: np.ndarray) -> int:
    """Return how many of ``predicted`` are off ``target`` by more than 3 px (NaN: wrong)."""
    return int((~(np.abs(predicted - target) <= 3)).sum())


def count_scene(truth: np.ndarray, estimate: Optional[np.ndarray],
                confident: Optional[np.ndarray], counts: dict[str, int]) -> None:
    """Add one scene's pixel counts to ``counts``."""
    hidden = unseen_by_right_camera(torch.from_numpy(truth)[None, None]).numpy()[0, 0] > 0.5
    known = np.isfinite(truth) & (truth > 0)
    large = known & (truth >= LARGE)
    seen = known & ~hidden
    columns = np.arange(truth.shape[1], dtype=np.float32)
    landing = columns[None, :] - truth
    at_edge = seen & (landing >= -0.5) & (landing < EDGE)
    counts['large'] += int(large.sum())
    counts['hidden'] += int((large & hidden).sum())
    counts['out_of_view'] += int((large & (landing < -0.5)).sum())
    for row in range(truth.shape[0]):
        first = np.flatnonzero(at_edge[row])
        if first.size == 0:
            continue
        boundary = int(first[0])
        strip = np.flatnonzero(large[row, :boundary])
        if strip.size == 0:
            continue
        target = truth[row, strip]
        counts['strip'] += strip.size
        counts['strip_hidden'] += int(hidden[row, strip].sum())
        intercept, slope = line_through(truth[row], seen[row], boundary)
        counts['line_truth_wrong'] += wrong(intercept + slope * strip, target)
        if estimate is None or confident is None:
            continue
        counts['backend_wrong'] += wrong(estimate[row, strip], target)
        # No line where the estimate at the boundary is unknown: as wrong as an unknown pixel.
        intercept, slope = line_through(estimate[row], confident[row], boundary)
        counts['line_estimate_wrong'] += wrong(intercept + slope * strip, target)


def main() -> None:
    """Print the shares for the scenes and backend named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenes', choices=['test', 'validation'], default='test')
    parser.add_argument('--backend', default=None, help='also score this backend')
    args = parser.parse_args()
    scenes = (full_range_test_scenes(20) if args.scenes == 'test'
              else full_range_scenes(6, ['layered', 'photo']))
    backend = create_backend(args.backend) if args.backend else None
    counts = dict.fromkeys(['large', 'hidden', 'out_of_view', 'strip', 'strip_hidden',
                            'line_truth_wrong', 'backend_wrong', 'line_estimate_wrong'], 0)
    for scene in scenes:
        truth = np.asarray(scene.disparity, np.float32).squeeze()
        estimate = confident = None
        if backend is not None:
            estimate = backend.compute(scene.left, scene.right)
            grey = [to_gray(image).astype(np.float32) / 255.0
                    for image in (scene.left, scene.right)]
            cost = matching_costs(grey[0], grey[1], [np.nan_to_num(estimate)])[0]
            confident = np.isfinite(estimate) & (cost < CONFIDENT_COST)
        count_scene(truth, estimate, confident, counts)

    def share(part: str, whole: str) -> str:
        return f'{100.0 * counts[part] / max(counts[whole], 1):.1f} %'

    print(f'{len(scenes)} {args.scenes} scenes, {counts["large"]} pixels of >= 64 px')
    print(f'  unseen by the right camera: {share("hidden", "large")} '
          f'(out of its view: {share("out_of_view", "large")})')
    print(f'  of the unseen, in their row\'s left strip: {share("strip_hidden", "hidden")}')
    print(f'  strip pixels of >= 64 px wrong by > 3 px, a line through the truth: '
          f'{share("line_truth_wrong", "strip")}')
    if backend is not None:
        print(f'  ... {args.backend} as it is: {share("backend_wrong", "strip")}; a line '
              f'through its confident estimate: {share("line_estimate_wrong", "strip")}')


if __name__ == '__main__':
    main()
