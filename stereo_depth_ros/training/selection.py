"""Score weights files on unlabeled real pairs, to choose between runs without ground truth.

``python -m stereo_depth_ros.training.selection WEIGHTS [WEIGHTS ...] [--pairs DIR]``

For each file: the photometric loss (SSIM + L1 of the right view warped by the predicted
disparity, masked where it is occluded) and the agreement with the left-right-checked SGBM
pseudo-labels (EPE and bad-2 on the pixels that have one), averaged over the pairs that
``stereo-depth adapt`` holds out (every 8th) and every 4th other pair, whole images, through
the backends' own inference path. Lower is better for all three. These are the numbers the
model cards quote when a stage is shipped; the scenes with ground truth never choose a run.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .adapt import split_pairs
from .losses import masked_epe, valid_mask
from .pseudo_labels import pseudo_labelled_dataset
from .self_supervised import photometric_loss
from ..data.datasets import StereoSample
from ..errors import StereoDepthError
from ..networks.common import StereoNet
from ..networks.inference import images_to_tensor, predict_disparity
from ..weights import load_model, read_metadata

#: ``stereo-depth adapt`` holds out every 8th pair; every 4th other pair joins them here.
HELD_OUT_EVERY = 8
TRAINING_EVERY = 4


def selection_pairs(samples: Sequence[StereoSample]) -> list[StereoSample]:
    """Return the held-out pairs of ``adapt`` plus every 4th of the others."""
    kept, held = split_pairs(samples, HELD_OUT_EVERY)
    return held + kept[::TRAINING_EVERY]


@torch.no_grad()
def score_pairs(model: StereoNet, samples: Sequence[StereoSample]) -> dict[str, float]:
    """Return mean ``photometric``, ``pseudo_epe`` and ``pseudo_bad2`` of ``model``."""
    model.eval()
    rows = []
    for sample in samples:
        left = images_to_tensor([sample.left], torch.device('cpu'))
        right = images_to_tensor([sample.right], torch.device('cpu'))
        disparity = predict_disparity(model, left, right)
        raw_left = torch.from_numpy(sample.left.transpose(2, 0, 1).copy())[None].float() / 255
        raw_right = torch.from_numpy(sample.right.transpose(2, 0, 1).copy())[None].float() / 255
        label = torch.from_numpy(np.asarray(sample.disparity, np.float32))[None, None]
        mask = valid_mask(label)
        label = torch.nan_to_num(label)
        wrong = ((disparity - label).abs() > 2).float() * mask
        rows.append((float(photometric_loss(raw_left, raw_right, disparity)),
                     float(masked_epe(disparity, label, mask)),
                     float(wrong.sum() / mask.sum().clamp_min(1))))
    photometric, epe, bad2 = (float(np.mean(column)) for column in zip(*rows))
    return {'photometric': photometric, 'pseudo_epe': epe, 'pseudo_bad2': bad2}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the unlabeled-pair scores of each weights file."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.selection',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', nargs='+', help='weights files to score')
    parser.add_argument('--pairs', default='../shared/data/unlabeled',
                        help='folder of rectified pairs (<name>/left.png, right.png)')
    parser.add_argument('--max-disparity', type=float, default=192.0,
                        help='largest disparity of the SGBM pseudo-labels (px)')
    args = parser.parse_args(argv)
    try:
        pairs = selection_pairs(pseudo_labelled_dataset(args.pairs, args.max_disparity))
        if not pairs:
            raise StereoDepthError(f'no stereo pairs under {args.pairs}')
        print(f'{len(pairs)} pairs under {args.pairs} (adapt\'s held-out ones and every '
              f'{TRAINING_EVERY}th other); lower is better')
        print(f'{"weights":<50} {"photometric":>11} {"pseudo EPE":>10} {"pseudo bad-2":>12}')
        for path in tqdm(args.weights, desc='scoring', unit='file', leave=False):
            model, _ = load_model(path, read_metadata(path).backend)
            scores = score_pairs(model, pairs)
            tqdm.write(f'{str(Path(path))[-50:]:<50} {scores["photometric"]:>11.4f} '
                       f'{scores["pseudo_epe"]:>10.3f} {100 * scores["pseudo_bad2"]:>11.1f}%')
    except StereoDepthError as error:
        print(f'selection: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
