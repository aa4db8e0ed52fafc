"""The real benchmark: backends side by side on the shipped real scenes with ground truth.

Scenes: :data:`~stereo_depth_ros.data.datasets.REAL_SUITE` (Middlebury 2003 cones and teddy,
Middlebury 2014 motorcycle, Middlebury 2006 aloe at full size, disparities up to 211 px).
Metrics are those of ``stereo-depth eval`` (KITTI-style filling of missing estimates, density
reported separately) plus EPE, bad-2 and bad-3 per true-disparity band, so that a network
that cannot reach large disparities shows it. Overall figures are means over the scenes (as
Middlebury averages per image); ``pooled`` (:func:`~stereo_depth_ros.evaluation.evaluate.
pooled_metrics`) counts every ground-truth pixel once instead, where aloe, at full size, holds
two thirds of them.
"""

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .evaluate import evaluate_backend, rows_aligned_sample
from .metrics import (DISPARITY_BANDS, band_key, band_label, fill_invalid_kitti,
                      gt_valid_mask)
from ..backends.base import DisparityBackend
from ..data.datasets import StereoSample, real_suite_dataset
from ..visualize import colorize_disparity, grid, save_rgb, titled

#: Main metrics of the table, in print order, with their labels.
MAIN_METRICS = (('epe', 'EPE px'), ('bad1', 'bad-1 %'), ('bad2', 'bad-2 %'),
                ('bad3', 'bad-3 %'), ('d1', 'D1 %'), ('density', 'dens %'),
                ('estimated_bad2', 'est b-2 %'))


def run_real_bench(backends: Sequence[DisparityBackend], root: Optional[str | Path] = None,
                   figures: Optional[str | Path] = None, progress: bool = True,
                   align_rows: bool = True) -> dict:
    """Evaluate each backend on the real suite; return {backend: summary with ``pairs``}.

    ``align_rows``: as :func:`~stereo_depth_ros.evaluation.evaluate.evaluate_backend`'s.

    ``figures``: folder for one PNG per scene (left view, ground truth, each backend's
    disparity on the ground truth's colour scale, and where its error exceeds 2 px; the
    titles say the scale and what black means).
    """
    samples = list(real_suite_dataset(root))
    aligned: list[str] = []
    if align_rows:  # measured and resampled once for all backends
        aligned_samples = [rows_aligned_sample(sample) for sample in samples]
        samples = [sample for sample, _ in aligned_samples]
        aligned = [sample.name for sample, done in aligned_samples if done]
    pixels = {sample.name: int(gt_valid_mask(sample.disparity).sum()) for sample in samples}
    results: dict[str, dict] = {}
    panels: dict[str, list[np.ndarray]] = {sample.name: [] for sample in samples}
    for backend in backends:
        def draw(sample: StereoSample, disparity: np.ndarray,
                 name: str = backend.name) -> None:
            if figures is not None:
                panels[sample.name].extend(disparity_panels(sample, disparity, name))
        summary = evaluate_backend(backend, samples, progress=progress, bands=True,
                                   on_prediction=draw, align_rows=False)
        summary['rows_aligned'] = aligned
        summary['scene_pixels'] = pixels
        results[backend.name] = summary
    if figures is not None:
        folder = Path(figures)
        folder.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            save_rgb(folder / f'{sample.name}.png',
                     grid(truth_panels(sample) + panels[sample.name], columns=2))
    return results


def _scale(sample: StereoSample) -> float:
    return float(np.nanmax(np.where(np.isfinite(sample.disparity), sample.disparity, np.nan)))


def truth_panels(sample: StereoSample) -> list[np.ndarray]:
    """Return [left view, colourised ground truth] of a scene, titled."""
    return [titled(sample.left, f'{sample.name}: left'),
            titled(colorize_disparity(sample.disparity, _scale(sample)),
                   f'ground truth: 0-{_scale(sample):.0f} px, red near; black unknown')]


def disparity_panels(sample: StereoSample, disparity: np.ndarray,
                     name: str) -> list[np.ndarray]:
    """Return [colourised disparity, bad-2 map] of one backend on one scene, titled."""
    filled = fill_invalid_kitti(disparity)
    known = gt_valid_mask(sample.disparity)
    wrong = known & (np.abs(filled - np.nan_to_num(sample.disparity)) > 2)
    errors = np.zeros(disparity.shape + (3,), np.uint8)
    errors[known & ~wrong] = (60, 60, 60)
    errors[wrong] = (255, 60, 30)
    share = 100 * wrong.sum() / max(int(known.sum()), 1)
    return [titled(colorize_disparity(disparity, _scale(sample)),
                   f'{name}: the same scale; black no estimate'),
            titled(errors, f'{name}: error > 2 px (red), {share:.1f} %')]


def format_tables(results: dict[str, dict]) -> str:
    """Return the per-scene table and the per-band table as text."""
    column = max([12, *(len(name) + 1 for name in results)])  # names and a gap
    header = ''.join(f'{label:>10}' for _, label in MAIN_METRICS)
    lines = [f'{"backend":<{column}}{"scene":<12}{header}{"ms":>9}']
    note = ('EPE, bad-N and D1 score the output filled as the KITTI devkit does; dens and est '
            'b-2 (bad-2) the pixels with an estimate; "all" is the mean over the scenes (as '
            'Middlebury averages per image), "pooled" counts each ground-truth pixel of the '
            'scenes once, so the largest scene weighs most; ms is the median over the scenes '
            'of one call each, start-up at each scene size included (stereo-depth bench times '
            'warm calls)')
    for name, summary in results.items():
        rows = [(row['name'], row) for row in summary['pairs']] + [('all', summary)]
        if 'pooled' in summary:
            rows.append(('pooled', summary['pooled']))
        for scene, row in rows:
            values = ''.join(
                f'{row[key]:>10.3f}' if key == 'epe' else f'{100 * row[key]:>10.1f}'
                for key, _ in MAIN_METRICS)
            ms = f'{summary["ms_per_pair"]:>9.0f}' if scene == 'all' else f'{"":>9}'
            lines.append(f'{name:<{column}}{scene:<12}{values}{ms}')
    counts = next((summary['scene_pixels'] for summary in results.values()
                   if 'scene_pixels' in summary), None)
    if counts:
        total = sum(counts.values())
        lines.append('ground-truth pixels: ' + ', '.join(
            f'{scene} {count:,} ({100 * count / total:.0f} %)' for scene, count in counts.items()))
    lines.append('')
    lines.append('by true disparity (mean over the scenes that reach a band): '
                 'EPE px / bad-2 % / bad-3 %')
    bands = ''.join(f'{band_label(band):>24}' for band in DISPARITY_BANDS)
    lines.append(f'{"backend":<{column}}{bands}')
    for name, summary in results.items():
        cells = []
        for band in DISPARITY_BANDS:
            epe = summary[band_key('epe', band)]
            bad2, bad3 = summary[band_key('bad2', band)], summary[band_key('bad3', band)]
            cells.append(f'{epe:.2f} / {100 * bad2:.1f} / {100 * bad3:.1f}'
                         if np.isfinite(epe) else '-')
        lines.append(f'{name:<{column}}' + ''.join(f'{cell:>24}' for cell in cells))
    return '\n'.join([*lines, '', note])
