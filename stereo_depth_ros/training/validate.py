"""Validation during training: held-out synthetic scenes scored with the project's metrics.

The scenes use the validation seeds ``VALIDATION_SEED_OFFSET + i`` (never used for training,
and disjoint from the test seeds of ``stereo-depth eval --root eval:N``, because validation
steers decisions) at that command's default size and kind, and predictions go through the
same steps as the learned backends (per-image normalisation, padding to the network divisor,
NaN outside ``[0, max_disparity]``), then :func:`~stereo_depth_ros.evaluation.metrics.
evaluate_pair` (KITTI-style filling). It scores the network alone: one pass, without the
backends' near pass (``near_scale``), so that runs are compared on their weights; that
command with ``--backend-option near_scale=0`` gives the same numbers.
"""

from typing import Sequence

import numpy as np
import torch

from .config import EvaluationConfig
from ..evaluation.metrics import evaluate_pair, mean_metrics
from ..networks.common import StereoNet
from ..networks.inference import images_to_tensor, mask_invalid, predict_disparity


def heldout_scenes(config: EvaluationConfig) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return (left, right, disparity) of the first ``num_scenes`` held-out scenes."""
    from ..data.synthetic import VALIDATION_SEED_OFFSET, make_scene
    scenes = []
    for i in range(config.num_scenes):
        scene = make_scene(VALIDATION_SEED_OFFSET + i, height=config.height, width=config.width,
                           kind=config.kind, max_disparity=config.max_disparity)
        scenes.append((scene.left, scene.right, scene.disparity))
    return scenes


def predict_batch(model: StereoNet, lefts: Sequence[np.ndarray],
                  rights: Sequence[np.ndarray], device: torch.device,
                  precision: str = 'fp32') -> np.ndarray:
    """Return NxHxW float32 disparity of uint8 RGB pairs, NaN outside [0, max_disparity].

    The learned backends' own path without the near pass
    (:func:`~stereo_depth_ros.networks.inference.predict_disparity`), batched.
    """
    disparity = predict_disparity(model, images_to_tensor(lefts, device),
                                  images_to_tensor(rights, device), precision=precision)
    return mask_invalid(disparity[:, 0].cpu().numpy(), model.max_disparity)


def validate(model: StereoNet, scenes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
             device: torch.device, batch_size: int = 4) -> dict[str, float]:
    """Return mean epe, d1, bad1-3 and density of ``model`` on ``scenes`` (eval mode)."""
    was_training = model.training
    model.eval()
    rows: list[dict[str, float]] = []
    try:
        for start in range(0, len(scenes), batch_size):
            chunk = scenes[start:start + batch_size]
            predictions = predict_batch(model, [s[0] for s in chunk], [s[1] for s in chunk],
                                        device)
            rows.extend(evaluate_pair(p, s[2]) for p, s in zip(predictions, chunk))
    finally:
        model.train(was_training)
    return mean_metrics(rows)
