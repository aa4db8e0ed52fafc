"""Score nearest-obstacle segmentation on synthetic road scenes with a known obstacle mask."""

from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..backends.base import DisparityBackend
from ..data.synthetic import make_scene
from ..obstacle import ObstacleParameters
from ..pipeline import StereoPipeline
from ..plausibility import row_offset


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (NaN when both are empty)."""
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else float('nan')


def evaluate_obstacles(backend: DisparityBackend, seeds: Sequence[int], height: int = 256,
                       width: int = 512, params: Optional[ObstacleParameters] = None,
                       progress: bool = True, align_rows: bool = True) -> dict:
    """Return mean/min IoU, found rate and distance errors over road scenes ``seeds``.

    ``align_rows``: each pair's measured row offset goes to the pipeline, which aligns the
    right view where it is worth it, as the node's does; ``rows_aligned`` names those scenes.

    ``pairs`` holds each scene's: name, IoU, whether an obstacle was found, its distance, the
    true distance and the relative distance error (NaN where none was found).
    """
    pipeline = StereoPipeline(backend, obstacle_params=params, align_rows=align_rows)
    ious, errors, found = [], [], 0
    pairs: list[dict] = []
    aligned: list[str] = []
    for seed in tqdm(seeds, desc='obstacles', unit='scene', disable=not progress):
        scene = make_scene(seed, height=height, width=width, kind='road')
        offset = (row_offset(scene.left, scene.right,
                             disparity_offset=scene.camera.disparity_offset)
                  if align_rows else None)
        result = pipeline.process(scene.left, scene.right, scene.camera, outputs={'obstacle'},
                                  row_offset=offset)
        if offset is not None and result.rows_aligned:
            aligned.append(f'road_{seed}')
        obstacle = result.obstacle
        # Asked for, with a camera; a road scene has 1-3 obstacles.
        assert obstacle is not None
        assert scene.obstacle_mask is not None and scene.obstacle_distance is not None
        ious.append(mask_iou(obstacle.mask, scene.obstacle_mask))
        error = float('nan')
        if obstacle.found:
            found += 1
            error = abs(obstacle.distance - scene.obstacle_distance) / scene.obstacle_distance
            errors.append(error)
        pairs.append({'name': f'road_{seed}', 'iou': ious[-1], 'found': bool(obstacle.found),
                      'distance': float(obstacle.distance) if obstacle.found else float('nan'),
                      'true_distance': float(scene.obstacle_distance),
                      'distance_error': float(error)})
    return {
        'n': len(ious),
        'iou_mean': float(np.nanmean(ious)),
        'iou_min': float(np.nanmin(ious)),
        'found_rate': found / len(ious),
        'distance_error_median': float(np.median(errors)) if errors else float('nan'),
        'distance_error_max': float(np.max(errors)) if errors else float('nan'),
        'rows_aligned': aligned,
        'pairs': pairs,
    }
