"""Evaluate a backend on a dataset: per-pair metrics, averages and timing."""

import time
from dataclasses import replace
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
from tqdm import tqdm

from .metrics import evaluate_pair, gt_valid_mask, mean_metrics
from ..backends.base import DisparityBackend
from ..data.datasets import StereoSample
from ..plausibility import row_offset
from ..row_alignment import aligned_right


#: A pair is named when this share of its known ground truth lies beyond the backend's reach.
BEYOND_REACH_SHARE = 0.01


class BeyondReach(NamedTuple):
    """A pair whose known ground truth the backend's range cannot reach, in part."""

    name: str
    #: Of the pair's known ground-truth pixels, the share above ``reach``.
    share: float
    #: The largest disparity (px) the backend gives at the pair's width.
    reach: float
    #: The pair's width (px): a narrow pair limits the reach.
    width: int


def beyond_reach(backend: DisparityBackend, sample: StereoSample) -> Optional[BeyondReach]:
    """Return how much of a pair's ground truth the backend cannot give, if enough to matter.

    The share of its ground-truth pixels (:func:`~stereo_depth_ros.evaluation.metrics.
    gt_valid_mask`) above :meth:`~stereo_depth_ros.backends.base.DisparityBackend.
    largest_disparity` at its width, where that is :data:`BEYOND_REACH_SHARE` or more (else
    None): those pixels count as wrong whatever the backend does.
    """
    truth = sample.disparity[gt_valid_mask(sample.disparity)]
    width = int(sample.disparity.shape[1])
    reach = backend.largest_disparity(width)
    share = float(np.mean(truth > reach)) if truth.size else 0.0
    return (BeyondReach(sample.name, share, reach, width) if share >= BEYOND_REACH_SHARE
            else None)


#: The metrics :func:`pooled_metrics` pools: each a mean over a pair's ground-truth pixels
#: (``estimated_bad2`` over those with an estimate).
POOLED_METRICS = ('epe', 'bad1', 'bad2', 'bad3', 'd1', 'density', 'estimated_bad2')


def pooled_metrics(pairs: Sequence[dict], pixels: Sequence[int]) -> dict[str, float]:
    """Return :data:`POOLED_METRICS` over all pairs' ground-truth pixels pooled, and the count.

    ``pairs`` are the per-pair rows, ``pixels`` their ground-truth pixel counts, in order.
    Each metric but ``estimated_bad2`` is a mean over a pair's ground-truth pixels, so it is
    weighted by their count; ``estimated_bad2``, over those with an estimate, by that count.
    This is how KITTI's devkit scores a set (errors over all its images' pixels), where the
    means over the pairs weigh a small image as much as a large one.
    """
    weights = np.array(pixels, np.float64)
    pooled: dict[str, float] = {'pixels': float(weights.sum())}
    for key in POOLED_METRICS:
        values = np.array([row[key] for row in pairs], np.float64)
        share = weights * np.array([row['density'] for row in pairs], np.float64) \
            if key == 'estimated_bad2' else weights
        known = np.isfinite(values) & (share > 0)
        pooled[key] = (float(np.sum(values[known] * share[known]) / np.sum(share[known]))
                       if known.any() else float('nan'))
    return pooled


def rows_aligned_sample(sample: StereoSample) -> tuple[StereoSample, bool]:
    """Return ``sample`` with its right view put on the left's rows where worth it, and whether.

    As the node's ``align_rows`` does: by the row offset the pair check measures
    (:func:`~stereo_depth_ros.row_alignment.aligned_right`).
    """
    right, aligned = aligned_right(sample.left, sample.right,
                                   row_offset(sample.left, sample.right))
    return (replace(sample, right=right) if aligned else sample), aligned


def evaluate_backend(backend: DisparityBackend, samples: Sequence[StereoSample],
                     progress: bool = True, bands: bool = False,
                     on_prediction: Optional[Callable[[StereoSample, np.ndarray], None]] = None,
                     align_rows: bool = True) -> dict:
    """Return mean metrics (epe, d1, bad1-3, density), ``n``, ``ms_per_pair`` and per-pair rows.

    ``n`` counts all pairs; ``n_skipped`` those without ground truth, which the means leave
    out (see :func:`~stereo_depth_ros.evaluation.metrics.mean_metrics`). ``pooled``: the
    same metrics over all pairs' ground-truth pixels together (:func:`pooled_metrics`).
    Timing covers ``backend.compute`` only (median over pairs, in milliseconds). ``bands``
    adds the per-disparity-band metrics of
    :func:`~stereo_depth_ros.evaluation.metrics.band_metrics`; ``on_prediction(sample,
    disparity)`` sees each raw prediction (e.g. to draw it). With ``align_rows`` (the
    default, as the node's) each pair's right view is put on the left's rows first where
    its measured row offset is worth it (:func:`rows_aligned_sample`); ``rows_aligned``
    names those pairs.
    """
    rows: list[dict[str, Any]] = []
    pixels: list[int] = []
    times = []
    aligned_pairs: list[str] = []
    for sample in tqdm(samples, desc=f'eval {backend.name}', unit='pair', disable=not progress):
        if align_rows:
            sample, aligned = rows_aligned_sample(sample)
            if aligned:
                aligned_pairs.append(sample.name)
        start = time.perf_counter()
        prediction = backend.compute(sample.left, sample.right)
        times.append((time.perf_counter() - start) * 1e3)
        metrics = evaluate_pair(prediction, sample.disparity, bands=bands)
        rows.append({'name': sample.name, **metrics})
        pixels.append(int(gt_valid_mask(sample.disparity).sum()))
        if on_prediction is not None:
            on_prediction(sample, prediction)
    summary: dict[str, Any] = dict(
        mean_metrics([{k: v for k, v in row.items() if k != 'name'} for row in rows]))
    summary['n'] = len(rows)
    summary['ms_per_pair'] = float(np.median(times)) if times else float('nan')
    summary['pooled'] = pooled_metrics(rows, pixels)
    summary['rows_aligned'] = aligned_pairs
    summary['pairs'] = rows
    return summary
