"""Evaluate a backend on a dataset: per-pair metrics, averages and timing."""

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from .metrics import evaluate_pair, mean_metrics
from ..backends.base import DisparityBackend
from ..data.datasets import StereoSample


def evaluate_backend(backend: DisparityBackend, samples: Sequence[StereoSample],
                     progress: bool = True, bands: bool = False,
                     on_prediction: Optional[Callable[[StereoSample, np.ndarray], None]] = None
                     ) -> dict:
    """Return mean metrics (epe, d1, bad1-3, density), ``n``, ``ms_per_pair`` and per-pair rows.

    ``n`` counts all pairs; ``n_skipped`` those without ground truth, which the means leave
    out (see :func:`~stereo_depth_ros.evaluation.metrics.mean_metrics`).
    Timing covers ``backend.compute`` only (median over pairs, in milliseconds). ``bands``
    adds the per-disparity-band metrics of
    :func:`~stereo_depth_ros.evaluation.metrics.band_metrics`; ``on_prediction(sample,
    disparity)`` sees each raw prediction (e.g. to draw it).
    """
    rows: list[dict[str, Any]] = []
    times = []
    for sample in tqdm(samples, desc=f'eval {backend.name}', unit='pair', disable=not progress):
        start = time.perf_counter()
        prediction = backend.compute(sample.left, sample.right)
        times.append((time.perf_counter() - start) * 1e3)
        metrics = evaluate_pair(prediction, sample.disparity, bands=bands)
        rows.append({'name': sample.name, **metrics})
        if on_prediction is not None:
            on_prediction(sample, prediction)
    summary: dict[str, Any] = dict(
        mean_metrics([{k: v for k, v in row.items() if k != 'name'} for row in rows]))
    summary['n'] = len(rows)
    summary['ms_per_pair'] = float(np.median(times)) if times else float('nan')
    summary['pairs'] = rows
    return summary
