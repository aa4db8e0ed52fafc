"""Score weights files on unlabeled real pairs, to choose between runs without ground truth.

``python -m stereo_depth_ros.training.selection WEIGHTS [WEIGHTS ...] [--pairs DIR]
[--near-scale S] [--near-from F] [--near-passes N] [--match-passes auto|always|never]
[--refine-radius R] [--synthetic N [--synthetic-start K] [--synthetic-kinds KINDS]
[--visibility] [--vignetting S] [--noise SIGMA]] [--bands] [--sgbm]``

For each file: the photometric loss (SSIM + L1 of the right view warped by the predicted
disparity, masked where it is occluded) and the agreement with the left-right-checked SGBM
pseudo-labels (EPE and bad-2 on the pixels that have one), averaged over the pairs that
``stereo-depth adapt`` holds out (every 8th) and every 4th other pair, whole images, through
the backends' own inference path. Lower is better for all three. These are the numbers the
model cards quote when a stage is shipped; the scenes with ground truth never choose a run.
``--sgbm`` adds a row for ``sgbm`` with its defaults (filled as KITTI does), the baseline a
learned backend has to beat; its pseudo-label columns are empty, the labels being its own.
``--bands`` adds the pseudo-label bad-2 by the labels' disparity band (0-32, 32-64, 64-128,
128-256, 256+ px), where a range weakness shows without ground truth. ``--visibility`` adds the
full-range bad-3 at >= 64 px of all scenes' pixels pooled, overall and split by whether the
right camera sees the pixel (:func:`~stereo_depth_ros.evaluation.visibility.
unseen_by_right_camera` of the truth).

``--synthetic N`` adds N full-range validation scenes per kind (384x1248, 0-192 px, seeds
from :data:`FULL_RANGE_SEED_OFFSET`, disjoint from the trainer's validation seeds and from
the test seeds): EPE, bad-2, and bad-3 where the true disparity is 64 px or more.
``--vignetting S`` and ``--noise SIGMA`` show them as a cheap real camera would
(:func:`through_lens`): both views darkened towards their corners, then Gaussian noise.
``--near-scale``, ``--near-from``, ``--near-passes``, ``--match-passes`` and
``--refine-radius`` are the backends' options of the same names (the coarser passes for near
objects, the choice between them by matching cost, and the search around the estimate);
``--near-scale`` 0 (the default) scores the network alone, as the model cards' stage tables
do, ``--match-passes`` is ``never`` and ``--refine-radius`` 0 (off) unless asked for.
"""

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .augment import vignette
from .pair_split import TRAINING_EVERY, selection_pairs
from .losses import masked_epe, valid_mask
from .pseudo_labels import PSEUDO_LABEL_MAX_DISPARITY, pseudo_labelled_dataset
from .self_supervised import photometric_loss
from ..backends.options import MATCH_PASSES_CHOICES
from ..backends.registry import backend_options, backend_record, create_backend
from ..data.datasets import StereoSample
from ..data.photos import DEFAULT_PHOTO_CACHE
from ..data.synthetic import TEST_SEED_OFFSET, VALIDATION_SEED_OFFSET
from ..errors import EXIT_BAD_INPUT, StereoDepthError
from ..evaluation.metrics import (DISPARITY_BANDS, LARGE_DISPARITY, band_key, band_label,
                                  fill_invalid_kitti, pooled_visibility, visibility_counts)
from ..networks.common import StereoNet
from ..networks.inference import (images_to_tensor, NEAR_PASS_TARGET_RANGE, near_pass_scales,
                                  predict_with_near_pass, resolve_match_passes,
                                  resolve_refine_radius)
from ..weights import load_model, read_metadata

#: First seed of the full-range validation scenes (validation range, above the trainer's).
FULL_RANGE_SEED_OFFSET = VALIDATION_SEED_OFFSET + 400
#: Size and range of the full-range validation scenes (a KITTI camera at full resolution).
FULL_RANGE_SHAPE = (384, 1248)
FULL_RANGE_MAX_DISPARITY = 192.0


def _predictions(model: StereoNet, samples: Sequence[StereoSample], near_scales: Sequence[float],
                 near_from: float, match_passes: bool = False, refine_radius: float = 0.0
                 ) -> Iterator[tuple[StereoSample, torch.Tensor]]:
    """Yield each sample with the ``Bx1xHxW`` prediction of ``model`` (in eval mode)."""
    model.eval()
    for sample in samples:
        left = images_to_tensor([sample.left], torch.device('cpu'))
        right = images_to_tensor([sample.right], torch.device('cpu'))
        yield sample, predict_with_near_pass(model, left, right, near_scales=near_scales,
                                             near_from=near_from, match_passes=match_passes,
                                             refine_radius=refine_radius)


def sgbm_predictions(samples: Sequence[StereoSample]
                     ) -> Iterator[tuple[StereoSample, torch.Tensor]]:
    """Yield each sample with ``sgbm``'s disparity (its defaults), filled as KITTI does.

    The baseline a learned backend has to beat, scored like the networks (``1x1xHxW``).
    """
    backend = create_backend('sgbm')
    for sample in samples:
        disparity = fill_invalid_kitti(backend.compute(sample.left, sample.right))
        yield sample, torch.from_numpy(np.ascontiguousarray(disparity, np.float32))[None, None]


def score_pairs(model: StereoNet, samples: Sequence[StereoSample],
                near_scales: Sequence[float] = (), near_from: float = 0.0,
                match_passes: bool = False, refine_radius: float = 0.0) -> dict[str, float]:
    """Return the :func:`score_pair_predictions` of ``model`` on ``samples``."""
    return score_pair_predictions(_predictions(model, samples, near_scales, near_from,
                                               match_passes, refine_radius))


@torch.no_grad()
def score_pair_predictions(predictions: Iterable[tuple[StereoSample, torch.Tensor]]
                           ) -> dict[str, float]:
    """Return mean ``photometric``, ``pseudo_epe`` and ``pseudo_bad2`` of the predictions.

    Also ``pseudo_bad2_<low>_<high>``: bad-2 against the labels in each band of
    :data:`~stereo_depth_ros.evaluation.metrics.DISPARITY_BANDS` of the label's disparity,
    over the labelled pixels of all pairs together (NaN for a band without any; their number
    is ``pseudo_pixels_<low>_<high>``): where the network and the left-right checked labels
    part, by range.
    """
    rows = []
    band_wrong = np.zeros(len(DISPARITY_BANDS))
    band_count = np.zeros(len(DISPARITY_BANDS))
    for sample, disparity in predictions:
        raw_left = torch.from_numpy(sample.left.transpose(2, 0, 1).copy())[None].float() / 255
        raw_right = torch.from_numpy(sample.right.transpose(2, 0, 1).copy())[None].float() / 255
        label = torch.from_numpy(np.asarray(sample.disparity, np.float32))[None, None]
        mask = valid_mask(label)
        label = torch.nan_to_num(label)
        wrong = ((disparity - label).abs() > 2).float() * mask
        rows.append((float(photometric_loss(raw_left, raw_right, disparity)),
                     float(masked_epe(disparity, label, mask)),
                     float(wrong.sum() / mask.sum().clamp_min(1))))
        for index, (low, high) in enumerate(DISPARITY_BANDS):
            inside = mask * ((label >= low) & (label < high)).float()
            band_wrong[index] += float((wrong * inside).sum())
            band_count[index] += float(inside.sum())
    photometric, epe, bad2 = (float(np.mean(column)) for column in zip(*rows))
    scores = {'photometric': photometric, 'pseudo_epe': epe, 'pseudo_bad2': bad2}
    for index, band in enumerate(DISPARITY_BANDS):
        scores[band_key('pseudo_bad2', band)] = (band_wrong[index] / band_count[index]
                                                 if band_count[index] else float('nan'))
        scores[band_key('pseudo_pixels', band)] = float(band_count[index])
    return scores


def full_range_seeds(count: int, start: int = 0) -> range:
    """Return the seeds of ``count`` full-range validation scenes from ``start``.

    Refused (StereoDepthError) where they would reach the test seeds
    (:data:`~stereo_depth_ros.data.synthetic.TEST_SEED_OFFSET`): runs are never chosen on the
    scenes the reported figures come from.
    """
    first = FULL_RANGE_SEED_OFFSET + start
    if start < 0 or first + count > TEST_SEED_OFFSET:
        raise StereoDepthError(
            f'--synthetic-start {start} with {count} scenes: the validation scenes are '
            f'{FULL_RANGE_SEED_OFFSET}-{TEST_SEED_OFFSET - 1}, so start must be 0 to '
            f'{TEST_SEED_OFFSET - FULL_RANGE_SEED_OFFSET - count} (the seeds above are the '
            'test scenes)')
    return range(first, first + count)


def full_range_scenes(count: int, kinds: Sequence[str],
                      photos: str | Path = DEFAULT_PHOTO_CACHE,
                      start: int = 0) -> list[StereoSample]:
    """Return ``count`` full-range validation scenes of each of ``kinds``.

    Their seeds start ``start`` after :data:`FULL_RANGE_SEED_OFFSET`: a probe that picks a
    constant on the first scenes can have its rule scored on later ones it never saw.
    """
    from ..data.datasets import SyntheticSamples
    from ..data.photo_scenes import make_photo_scene
    from ..data.photos import PhotoLibrary
    height, width = FULL_RANGE_SHAPE
    seeds = full_range_seeds(count, start)
    scenes: list[StereoSample] = []
    for kind in kinds:
        if kind == 'photo':
            library = PhotoLibrary(photos)
            for seed in seeds:
                scene = make_photo_scene(seed, library, height, width, FULL_RANGE_MAX_DISPARITY)
                scenes.append(StereoSample(f'photo_{seed}', scene.left, scene.right,
                                           scene.disparity))
        else:
            scenes.extend(SyntheticSamples(list(seeds), kind, height, width,
                                           FULL_RANGE_MAX_DISPARITY))
    return scenes


def through_lens(scenes: Sequence[StereoSample], vignetting: float,
                 noise: float) -> list[StereoSample]:
    """Return ``scenes`` as a cheap camera would see them: vignetted, then noisy.

    Each view is darkened around its own centre by :func:`~stereo_depth_ros.training.augment.
    vignette` with strength ``vignetting`` and gets Gaussian noise of ``noise`` grey levels,
    drawn from a generator seeded by the scene's position, so a run repeats exactly.
    """
    seen = []
    for index, scene in enumerate(scenes):
        rng = np.random.default_rng([index, 17])
        views = [np.clip(vignette(view, vignetting)
                         + rng.normal(0, noise, view.shape).astype(np.float32) + 0.5,
                         0, 255).astype(np.uint8) for view in (scene.left, scene.right)]
        seen.append(StereoSample(scene.name, views[0], views[1], scene.disparity))
    return seen


def full_range_test_scenes(count: int) -> list[StereoSample]:
    """Return the first ``count`` full-range test scenes (``layered``, never used to choose).

    The model cards' ``full_range_synthetic`` scenes: :data:`FULL_RANGE_SHAPE`, disparities
    up to :data:`FULL_RANGE_MAX_DISPARITY`, seeds ``eval:count``.
    """
    from ..data.datasets import SyntheticSamples
    from ..data.synthetic import eval_seeds
    height, width = FULL_RANGE_SHAPE
    return list(SyntheticSamples(list(eval_seeds(count)), 'layered', height, width,
                                 FULL_RANGE_MAX_DISPARITY))


def score_full_range(model: StereoNet, samples: Sequence[StereoSample],
                     near_scales: Sequence[float] = (), near_from: float = 0.0,
                     match_passes: bool = False, refine_radius: float = 0.0
                     ) -> dict[str, Any]:
    """Return the :func:`score_full_range_predictions` of ``model`` on ``samples``."""
    return score_full_range_predictions(_predictions(model, samples, near_scales, near_from,
                                                     match_passes, refine_radius))


@torch.no_grad()
def score_full_range_predictions(predictions: Iterable[tuple[StereoSample, torch.Tensor]]
                                 ) -> dict[str, Any]:
    """Return mean ``epe``, ``bad2`` and ``bad3_large`` (true disparity >= 64 px) of scenes.

    Also, with the pixels of all scenes pooled, the :func:`~stereo_depth_ros.evaluation.
    metrics.pooled_visibility` scores under the key ``pooled``: bad-3 at >= 64 px overall,
    where the right camera sees the pixel, where it cannot, and the share it cannot see.
    """
    rows = []
    counts = np.zeros(4)
    for sample, prediction in predictions:
        # Non-finite predictions count as wrong (0 px), not as missing.
        disparity = np.nan_to_num(prediction[0, 0].numpy(), nan=0.0, posinf=0.0, neginf=0.0)
        truth = np.asarray(sample.disparity, np.float32)
        known = np.isfinite(truth)
        error = np.abs(disparity - truth)[known]
        large = truth[known] >= LARGE_DISPARITY
        rows.append((float(error.mean()), float((error > 2).mean()),
                     float((error[large] > 3).mean()) if large.any() else np.nan))
        counts += visibility_counts(disparity, truth)
    epe, bad2, bad3_large = (_mean_of_numbers(column) for column in zip(*rows))
    return {'epe': epe, 'bad2': bad2, 'bad3_large': bad3_large,
            'pooled': pooled_visibility(counts)}


def _mean_of_numbers(values: Sequence[float]) -> float:
    """Return the mean of the values that are not NaN; NaN (no warning) if none is."""
    numbers = [value for value in values if not np.isnan(value)]
    return float(np.mean(numbers)) if numbers else float('nan')


def _synthetic_columns(scores: dict[str, Any]) -> str:
    """Return the full-range columns of a row: EPE, bad-2, bad-3 at >= 64 px."""
    return (f' {scores["epe"]:>11.2f} {_percent(scores["bad2"]):>6} '
            f'{_percent(scores["bad3_large"]):>9}')


def _visibility_line(scores: dict[str, Any]) -> str:
    """Return the indented line of the full-range bad-3 at >= 64 px by visibility."""
    pooled = scores['pooled']
    return (f'{"":<50} bad-3 at >= {LARGE_DISPARITY:g} px, pixels of all scenes pooled: '
            f'{_percent(pooled["bad3_large"])}; {_percent(pooled["bad3_large_seen"])} where '
            f'the right camera sees the pixel, {_percent(pooled["bad3_large_unseen"])} where '
            f'it cannot ({_percent(pooled["unseen_large_share"])} of them)')


def _percent(fraction: float) -> str:
    """Return ``fraction`` as a percentage with one decimal, ``-`` where it is NaN."""
    return '-' if np.isnan(fraction) else f'{100 * fraction:.1f}%'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the unlabeled-pair scores of each weights file."""
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
        backends = {path: read_metadata(path).backend for path in args.weights}
        # Checked as the backends check them, before any work: one clear line for a bad value.
        near_options = {path: backend_options(backend_record(backend), {
            'near_scale': args.near_scale, 'near_from': args.near_from,
            'near_passes': args.near_passes, 'match_passes': args.match_passes,
            'refine_radius': args.refine_radius})
            for path, backend in backends.items()}
        if args.match_passes != 'never' and not args.near_scale:
            print(f'selection: --match-passes {args.match_passes} has nothing to choose between '
                  'without near passes (--near-scale 0): the network alone is scored',
                  file=sys.stderr)
        pairs = selection_pairs(pseudo_labelled_dataset(args.pairs, args.max_disparity))
        if not pairs:
            raise StereoDepthError(f'no stereo pairs under {args.pairs}')
        kinds = [kind for kind in args.synthetic_kinds.split(',') if kind]
        scenes = (full_range_scenes(args.synthetic, kinds, args.photos, args.synthetic_start)
                  if args.synthetic else [])
        if args.vignetting or args.noise:
            scenes = through_lens(scenes, args.vignetting, args.noise)
        print(f'{len(pairs)} pairs under {args.pairs} (adapt\'s held-out ones and every '
              f'{TRAINING_EVERY}th other); lower is better')
        if scenes:
            first_seed = FULL_RANGE_SEED_OFFSET + args.synthetic_start
            lens = (f', through a lens (vignetting {args.vignetting:g}, noise {args.noise:g})'
                    if args.vignetting or args.noise else '')
            print(f'{len(scenes)} full-range validation scenes ({args.synthetic_kinds}, seeds '
                  f'from {first_seed}{lens}): EPE, bad-2, bad-3 at >= {LARGE_DISPARITY:g} px')
        header = f'{"weights":<50} {"photometric":>11} {"pseudo EPE":>10} {"pseudo bad-2":>12}'
        print(header + ('   synth EPE  bad-2  bad-3>=64' if scenes else ''))
        for path in tqdm(args.weights, desc='scoring', unit='file', leave=False):
            _print_weights_scores(args, path, backends[path], near_options[path], pairs,
                                  scenes)
        if args.sgbm:
            _print_sgbm_scores(args, pairs, scenes)
    except StereoDepthError as error:
        print(f'selection: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser of :func:`main`."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.selection',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', nargs='+', help='weights files to score')
    parser.add_argument('--pairs', default='../shared/data/unlabeled',
                        help='folder of rectified pairs (<name>/left.png, right.png; default '
                             '../shared/data/unlabeled, from the repository root)')
    parser.add_argument('--max-disparity', type=float, default=PSEUDO_LABEL_MAX_DISPARITY,
                        help='largest disparity of the SGBM pseudo-labels (px; default '
                             f'{PSEUDO_LABEL_MAX_DISPARITY:g}, as training\'s pseudo source)')
    parser.add_argument('--near-scale', type=float, default=0.0,
                        help='backend option near_scale (default 0: the network alone)')
    parser.add_argument('--near-from', type=float, default=0.0,
                        help="backend option near_from (default 0: the network's own, as the "
                        'backends)')
    parser.add_argument('--near-passes', type=int, default=0,
                        help='backend option near_passes (default 0: as the backends, one and '
                        f'more while the range is below {NEAR_PASS_TARGET_RANGE:g} px)')
    parser.add_argument('--match-passes', choices=MATCH_PASSES_CHOICES, default='never',
                        help="backend option match_passes (default never, as these scores were "
                        "measured before it existed; auto: the network's own, as the backends)")
    parser.add_argument('--refine-radius', type=float, default=0.0, metavar='R',
                        help='backend option refine_radius (px; default 0: off, as these '
                        "scores were measured before it existed; -1: the network's own, as "
                        'the backends)')
    parser.add_argument('--bands', action='store_true',
                        help='also print bad-2 against the pseudo-labels by the labels\' '
                        'disparity band (pixels of all pairs pooled)')
    parser.add_argument('--synthetic', type=int, default=0, metavar='N',
                        help='also score N full-range validation scenes per kind (default 0)')
    parser.add_argument('--synthetic-start', type=int, default=0, metavar='K',
                        help='skip the first K full-range scenes of each kind: score scenes '
                        'a probe did not use (default 0)')
    parser.add_argument('--synthetic-kinds', default='layered,photo',
                        help='kinds of the full-range scenes (default layered,photo; photo '
                        'reads --photos)')
    parser.add_argument('--visibility', action='store_true',
                        help='also print the full-range bad-3 at >= 64 px where the right '
                        'camera sees the pixel and where it cannot (pixels of all scenes '
                        'pooled; needs --synthetic)')
    parser.add_argument('--vignetting', type=float, default=0.0, metavar='S',
                        help='show the full-range scenes through a lens whose corners get '
                        '1 - S of the light (0 <= S < 1; default 0: none)')
    parser.add_argument('--noise', type=float, default=0.0, metavar='SIGMA',
                        help='add Gaussian noise of SIGMA grey levels to the full-range '
                        'scenes, after the vignetting (default 0: none)')
    parser.add_argument('--photos', default=str(DEFAULT_PHOTO_CACHE),
                        help=f'photographs of the photo scenes (default {DEFAULT_PHOTO_CACHE})')
    parser.add_argument('--sgbm', action='store_true',
                        help="also score sgbm with its defaults, filled as KITTI does (its "
                        "pseudo-label columns are '-': the labels are its own)")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Refuse (StereoDepthError) options that contradict each other, before any file is read."""
    if args.visibility and not args.synthetic:
        raise StereoDepthError('--visibility splits the full-range scores: it needs '
                               '--synthetic N')
    full_range_seeds(args.synthetic, args.synthetic_start)  # refused here: no file read
    if not 0 <= args.vignetting < 1 or not 0 <= args.noise < math.inf:
        raise StereoDepthError(f'--vignetting must be in [0, 1) and --noise a number >= 0, '
                               f'got {args.vignetting:g} and {args.noise:g}')
    if (args.vignetting or args.noise) and not args.synthetic:
        raise StereoDepthError('--vignetting and --noise change the full-range scenes: '
                               'they need --synthetic N')


def _print_weights_scores(args: argparse.Namespace, path: str, backend: str, options: Any,
                          pairs: Sequence[StereoSample], scenes: Sequence[StereoSample]
                          ) -> None:
    """Print one weights file's line of scores (and its visibility and band lines)."""
    model, _ = load_model(path, backend)
    near = dict(near_from=options.near_from, near_scales=near_pass_scales(
        model, 1.0, options.near_scale, options.near_from, options.near_passes),
        match_passes=resolve_match_passes(model, options.match_passes),
        refine_radius=resolve_refine_radius(model, options.refine_radius))
    scores = score_pairs(model, pairs, **near)
    line = (f'{str(Path(path))[-50:]:<50} {scores["photometric"]:>11.4f} '
            f'{scores["pseudo_epe"]:>10.3f} {100 * scores["pseudo_bad2"]:>11.1f}%')
    full_range = score_full_range(model, scenes, **near) if scenes else None
    if full_range:
        line += _synthetic_columns(full_range)
    tqdm.write(line)
    if full_range and args.visibility:
        tqdm.write(_visibility_line(full_range))
    if args.bands:
        tqdm.write(f'{"":<50} pseudo bad-2 by band: ' + ', '.join(
            f'{band_label(band)} {_percent(scores[band_key("pseudo_bad2", band)])}'
            f' of {scores[band_key("pseudo_pixels", band)]:.0f}'
            for band in DISPARITY_BANDS))


def _print_sgbm_scores(args: argparse.Namespace, pairs: Sequence[StereoSample],
                       scenes: Sequence[StereoSample]) -> None:
    """Print sgbm's line (its pseudo-label columns '-': the labels are its own)."""
    scores = score_pair_predictions(sgbm_predictions(pairs))
    line = f'{"sgbm (defaults)":<50} {scores["photometric"]:>11.4f} {"-":>10} {"-":>12}'
    full_range = (score_full_range_predictions(sgbm_predictions(scenes)) if scenes
                  else None)
    if full_range:
        line += _synthetic_columns(full_range)
    print(line)
    if full_range and args.visibility:
        print(_visibility_line(full_range))


if __name__ == '__main__':
    sys.exit(main())
