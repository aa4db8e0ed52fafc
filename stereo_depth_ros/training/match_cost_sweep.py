"""How dense and how right the learned backends are at each ``max_match_cost``.

``python -m stereo_depth_ros.training.match_cost_sweep --backends costnet --costs 0.5,1``
runs each backend (its defaults, plus the option) on full-range scenes with exact ground truth
and prints, per value (0 = off, the dense output), over the pixels of all scenes pooled:

- density: the share of pixels with ground truth that keep an estimate;
- estimated bad-3, overall and at >= 64 px (a KITTI camera: nearer than 6 m): how many of the
  kept pixels are wrong by more than 3 px;
- unseen unknown: of the pixels the right camera cannot see (outside its view or occluded,
  :func:`~stereo_depth_ros.evaluation.visibility.unseen_by_right_camera`), where no estimate can
  be confirmed, the share left unknown;
- right lost: of the pixels the dense output has right (within 3 px), the share left unknown;
- filled EPE and bad-2: the output filled as the KITTI devkit does, as every benchmark of
  the package scores it (what the option does to those scores).

The network runs once per scene, with the backend's defaults; each value then leaves unknown
what the backend with the option would
(:func:`~stereo_depth_ros.networks.confidence.drop_unconfirmed`, the backend's own step).
``sgbm`` (its defaults) gets the same columns. Validation scenes (the default, as
``selection --synthetic``) choose a value; ``--test N`` scores the model cards' N test scenes.
``--figure`` draws one scene: left view, truth, each backend dense and at ``--figure-cost``,
and ``sgbm``, with the wrong pixels in red and the unknown ones black.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .selection import (FULL_RANGE_SEED_OFFSET, full_range_scenes, full_range_seeds,
                        full_range_test_scenes)
from ..backends import backend_options, backend_record, create_backend
from ..backends.options import CHOSEN_MAX_MATCH_COST
from ..data.datasets import StereoSample
from ..data.photos import DEFAULT_PHOTO_CACHE
from ..errors import EXIT_BAD_INPUT, StereoDepthError
from ..evaluation.metrics import LARGE_DISPARITY, fill_invalid_kitti, gt_valid_mask, share
from ..evaluation.visibility import unseen_by_right_camera
from ..networks.confidence import drop_unconfirmed
from ..networks.inference import images_to_tensor
from ..visualize import colorize_disparity, grid, save_rgb, titled

#: Error (px) above which an estimate counts as wrong.
WRONG = 3.0
#: Error (px) above which a pixel of the filled output counts as wrong (its bad-2).
FILLED_WRONG = 2.0
#: Widest figure (px); a wider one is shrunk to this.
FIGURE_WIDTH = 1600
#: Pixel counts one scene adds to a row: kept, known, kept wrong, kept large, kept wrong
#: large, unseen, unseen kept, dense right, dense right kept; then the filled output's summed
#: error and its count of errors above FILLED_WRONG.
_COUNTS = 11
#: The printed columns: (key of :func:`summarise`, header, width, percent).
COLUMNS = (('density', 'density', 9, True), ('estimated_bad3', 'est bad-3', 11, True),
           ('estimated_bad3_large', 'est >=64 px', 13, True),
           ('unseen_unknown', 'unseen unknown', 16, True), ('right_lost', 'right lost', 12, True),
           ('filled_epe', 'filled EPE', 12, False), ('filled_bad2', 'filled bad-2', 14, True))
_LABEL_WIDTH = 30


def tally(estimate: np.ndarray, dense: np.ndarray, truth: np.ndarray,
          unseen: np.ndarray) -> np.ndarray:
    """Return the :data:`_COUNTS` pixel counts of one scene (``estimate`` NaN = unknown).

    ``dense`` is the backend's estimate without the option, which defines the right pixels.
    """
    known = gt_valid_mask(truth)
    kept = known & np.isfinite(estimate)
    with np.errstate(invalid='ignore'):
        wrong = kept & (np.abs(estimate - truth) > WRONG)
        large = known & (truth >= LARGE_DISPARITY)
        right = known & (np.abs(dense - truth) <= WRONG)
    hidden = known & unseen
    filled_error = np.abs(fill_invalid_kitti(estimate) - truth)[known]
    return np.array([kept.sum(), known.sum(), wrong.sum(), (kept & large).sum(),
                     (wrong & large).sum(), hidden.sum(), (hidden & kept).sum(), right.sum(),
                     (right & kept).sum(), filled_error.sum(),
                     (filled_error > FILLED_WRONG).sum()], dtype=np.float64)


def summarise(counts: np.ndarray) -> dict[str, float]:
    """Return density, estimated bad-3 (all, >= 64 px), lost shares and filled scores."""
    (kept, known, wrong, kept_large, wrong_large, hidden, hidden_kept, right, right_kept,
     filled_error, filled_wrong) = counts
    return {'density': share(kept, known), 'estimated_bad3': share(wrong, kept),
            'estimated_bad3_large': share(wrong_large, kept_large),
            'unseen_unknown': 1.0 - share(hidden_kept, hidden),
            'right_lost': 1.0 - share(right_kept, right),
            'filled_epe': share(filled_error, known), 'filled_bad2': share(filled_wrong, known)}


def _row(label: str, scores: dict[str, float]) -> str:
    cells = []
    for key, _, width, percent in COLUMNS:
        value = scores[key]
        text = (f'{100 * value:.1f}' if percent else f'{value:.2f}') if np.isfinite(value) \
            else '-'
        cells.append(f'{text:>{width}}')
    return f'{label:<{_LABEL_WIDTH}}' + ''.join(cells)


def _header() -> str:
    return (f'{"backend, max_match_cost":<{_LABEL_WIDTH}}'
            + ''.join(f'{title:>{width}}' for _, title, width, _ in COLUMNS)
            + '   (%; EPE px)')


def _figure(path: str, sample: StereoSample, estimates: dict[str, np.ndarray]) -> None:
    """Save one scene with every estimate and its wrong pixels (red; unknown black)."""
    truth = np.asarray(sample.disparity, np.float32)
    top = float(np.nanmax(truth))
    panels = [titled(sample.left, 'left view'),
              titled(colorize_disparity(truth, top), 'ground truth')]
    for name, estimate in estimates.items():
        shown = colorize_disparity(estimate, top)
        shown[~np.isfinite(estimate)] = 0
        with np.errstate(invalid='ignore'):
            wrong = gt_valid_mask(truth) & (np.abs(estimate - truth) > WRONG)
        shown[wrong] = (255, 40, 40)
        panels.append(titled(shown, f'{name}: wrong by > {WRONG:g} px red, unknown black'))
    picture = grid(panels, columns=2)
    if picture.shape[1] > FIGURE_WIDTH:
        height = round(picture.shape[0] * FIGURE_WIDTH / picture.shape[1])
        picture = cv2.resize(picture, (FIGURE_WIDTH, height), interpolation=cv2.INTER_AREA)
    save_rgb(path, picture)


def _costs(text: str) -> list[float]:
    """Return 0 and the comma-separated values of ``--costs``, sorted (or raise)."""
    try:
        values = [float(value) for value in text.split(',')]
    except ValueError:
        raise StereoDepthError(f'--costs must be numbers separated by commas, got {text!r}') \
            from None
    return sorted({0.0, *values})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.match_cost_sweep',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--backends', default='costnet',
                        help='learned backends, comma-separated (default costnet)')
    parser.add_argument('--costs', default=f'{CHOSEN_MAX_MATCH_COST:g}',
                        help='max_match_cost values, comma-separated (0, the dense output, '
                        f'is always scored; default {CHOSEN_MAX_MATCH_COST:g})')
    scenes = parser.add_mutually_exclusive_group()
    scenes.add_argument('--synthetic', type=int, default=6, metavar='N',
                        help='full-range validation scenes per kind (default 6)')
    scenes.add_argument('--test', type=int, default=None, metavar='N',
                        help="score the model cards' first N full-range test scenes instead")
    parser.add_argument('--synthetic-start', type=int, default=0, metavar='K',
                        help='skip the first K validation scenes of each kind (default 0)')
    parser.add_argument('--synthetic-kinds', default='layered,photo',
                        help='kinds of the validation scenes (default layered,photo)')
    parser.add_argument('--photos', default=str(DEFAULT_PHOTO_CACHE),
                        help=f'photographs of the photo scenes (default {DEFAULT_PHOTO_CACHE})')
    parser.add_argument('--figure', default='',
                        help='save one scene with the estimates to this image file (.png)')
    parser.add_argument('--figure-scene', type=int, default=None, metavar='I',
                        help='with --figure: index of the scene drawn (default 0, the first)')
    parser.add_argument('--figure-cost', type=float, default=None,
                        help='with --figure: the max_match_cost drawn beside the dense output '
                        f'(default {CHOSEN_MAX_MATCH_COST:g}; one of --costs)')
    return parser


def _check_learned(names: list[str], text: str) -> None:
    """Refuse an empty ``--backends`` and backends without the option (sgbm: always scored)."""
    if not names:
        raise StereoDepthError(f'--backends names no backend: {text!r}')
    for name in names:
        if backend_record(name).network is None:
            raise StereoDepthError(f'--backends: {name} is not a learned backend (sgbm is '
                                   'always scored, with its defaults, as the reference)')


def _check_scene_counts(args: argparse.Namespace) -> None:
    """Refuse scene counts below 1 and a negative ``--synthetic-start``."""
    if args.test is not None and args.test < 1:
        raise StereoDepthError(f'--test must be >= 1, got {args.test}')
    if args.synthetic < 1:
        raise StereoDepthError(f'--synthetic must be >= 1, got {args.synthetic}')
    full_range_seeds(args.synthetic, args.synthetic_start)  # not into the test seeds


def _figure_choice(args: argparse.Namespace, costs: list[float]) -> tuple[int, float]:
    """Return the scene index and value drawn; refuse what cannot be drawn, before any work."""
    if not args.figure:
        if args.figure_scene is not None or args.figure_cost is not None:
            raise StereoDepthError('--figure-scene and --figure-cost need --figure')
        return 0, CHOSEN_MAX_MATCH_COST
    scene = 0 if args.figure_scene is None else args.figure_scene
    cost = CHOSEN_MAX_MATCH_COST if args.figure_cost is None else args.figure_cost
    if cost not in costs:
        raise StereoDepthError(f'--figure-cost {cost:g} is not one of --costs')
    path = Path(args.figure)
    if not path.resolve().parent.is_dir():
        raise StereoDepthError(f'--figure {args.figure}: its folder does not exist')
    if path.is_dir() or not cv2.haveImageWriter(str(path)):
        raise StereoDepthError(f'--figure {args.figure}: not an image file name OpenCV can '
                               'write (e.g. figure.png)')
    return scene, cost


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print density and accuracy of the kept pixels for each backend and value."""
    args = _parser().parse_args(argv)
    try:
        costs = _costs(args.costs)
        names = [name.strip() for name in args.backends.split(',') if name.strip()]
        _check_learned(names, args.backends)
        _check_scene_counts(args)
        figure_scene, figure_cost = _figure_choice(args, costs)
        # Checked first: a bad backend name or value is refused before any scene is made.
        for name in names:
            for cost in costs:
                backend_options(backend_record(name), {'max_match_cost': cost})
        backends = {name: create_backend(name, device='cpu') for name in names}
        if args.test is not None:
            scenes = full_range_test_scenes(args.test)
            where = f'{args.test} test scenes (layered, eval:{args.test})'
        else:
            kinds = [kind for kind in args.synthetic_kinds.split(',') if kind]
            scenes = full_range_scenes(args.synthetic, kinds, args.photos, args.synthetic_start)
            where = (f'{len(scenes)} validation scenes ({args.synthetic_kinds}, seeds from '
                     f'{FULL_RANGE_SEED_OFFSET + args.synthetic_start})')
        if not scenes:
            raise StereoDepthError('no scenes to score: --synthetic-kinds names no kind')
        if args.figure and not 0 <= figure_scene < len(scenes):
            raise StereoDepthError(f'--figure-scene {figure_scene} is not one of the '
                                   f'{len(scenes)} scenes (0-{len(scenes) - 1})')
    except (StereoDepthError, ValueError) as error:
        print(f'match_cost_sweep: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    sgbm = create_backend('sgbm')
    keys = [(name, cost) for name in names for cost in costs]
    rows = {key: np.zeros(_COUNTS) for key in [*keys, ('sgbm', 0.0)]}
    for index, sample in enumerate(tqdm(scenes, desc='scenes', unit='scene')):
        truth = np.asarray(sample.disparity, np.float32)
        unseen = unseen_by_right_camera(torch.from_numpy(truth)[None, None])[0, 0].numpy() > 0
        left, right = (images_to_tensor([image], torch.device('cpu'))
                       for image in (sample.left, sample.right))
        estimates: dict[tuple[str, float], np.ndarray] = {}
        for name, backend in backends.items():
            dense = backend.compute(sample.left, sample.right)
            for cost in costs:
                estimates[(name, cost)] = (drop_unconfirmed(dense.copy(), left, right, cost)
                                           if cost else dense)
        estimates[('sgbm', 0.0)] = sgbm.compute(sample.left, sample.right)
        for (name, cost), estimate in estimates.items():
            dense = estimates[(name, 0.0)]
            rows[(name, cost)] += tally(estimate, dense, truth, unseen)
        if index == figure_scene and args.figure:
            _figure(args.figure, sample, {
                (f'{name}, max_match_cost {cost:g}' if cost else name): estimate
                for (name, cost), estimate in estimates.items()
                if name == 'sgbm' or cost in (0.0, figure_cost)})
    print(f'{where}, pixels pooled; wrong = error > {WRONG:g} px')
    print(_header())
    for (name, cost), counts in rows.items():
        scores = summarise(counts)
        if name == 'sgbm':  # its own output is its dense one: nothing it had right is lost
            scores['right_lost'] = float('nan')
        print(_row(f'{name}, {cost:g}' if name != 'sgbm' else 'sgbm (defaults)', scores))
    return 0


if __name__ == '__main__':
    sys.exit(main())
