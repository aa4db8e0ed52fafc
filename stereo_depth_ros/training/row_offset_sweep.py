"""What a rectification error costs, and what the row-offset check reads on real pairs.

``python -m stereo_depth_ros.training.row_offset_sweep --shifts 0,0.5,1,1.5,2`` moves the
right view of full-range validation scenes down by each shift (bilinear resampling, so the
half-pixel shifts are also a little blurred) and prints, per backend, the bad-2 and bad-3 of
its output filled as the KITTI devkit does, and what
:func:`~stereo_depth_ros.plausibility.row_offset` measures on the moved pairs. These figures
set :data:`~stereo_depth_ros.plausibility.ROW_OFFSET_LIMIT`.

``--pairs DIR`` prints the row offset of every left.png/right.png pair under ``DIR`` (e.g.
``../shared/data/unlabeled``, real cameras): what the check reads on a camera that needs no
warning.

``--align`` adds, for each backend, the same scores with the right view put back on the
left's rows by the measured offset (:mod:`~stereo_depth_ros.row_alignment`, the pipeline's
``align_rows``), and ``--figure PNG`` draws the first scene at the largest shift: each
backend's disparity and wrong pixels as the pair comes and aligned. With ``--pairs``, which
have no ground truth, ``--align`` prints the share of each pair's pixels whose disparity the
left-right check confirms (the backend run on the mirrored pair gives the right view's;
within 1 px), as the pair comes and aligned, and ``--pairs-figure PNG`` draws the first
aligned pairs: the first backend's confirmed disparity as each comes and aligned.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .pseudo_labels import find_pairs, left_right_consistent
from .selection import FULL_RANGE_SEED_OFFSET, full_range_scenes
from ..backends import create_backend
from ..backends.base import DisparityBackend
from ..data.datasets import read_image_rgb
from ..data.photos import DEFAULT_PHOTO_CACHE
from ..errors import EXIT_BAD_INPUT, StereoDepthError
from ..evaluation.metrics import bad_n, fill_invalid_kitti
from ..evaluation.real_bench import disparity_panels, truth_panels
from ..plausibility import row_offset, RowOffset
from ..row_alignment import ALIGN_FROM_PX, aligned_right
from ..visualize import colorize_disparity, grid, save_rgb, titled


def moved_down(image: np.ndarray, shift: float) -> np.ndarray:
    """Return ``image`` with its content ``shift`` px lower (bilinear; edges mirrored)."""
    if shift == 0:
        return image
    height, width = image.shape[:2]
    matrix = np.array([[1, 0, 0], [0, 1, shift]], np.float32)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def describe(offset: Optional[RowOffset]) -> str:
    """Return one line about a row offset (or that too few features matched)."""
    if offset is None:
        return 'too few matched features'
    side = 'lower' if offset.lower else 'higher'
    flag = '  (warned)' if offset.too_large else ''
    corner = float(np.abs(offset.corner_offsets()).max())
    # Three decimals for the two figures the alignment compares with 0.25 px: 0.249 is not
    # aligned, and .2f would print it as 0.25.
    return (f'typical {offset.typical:.3f} px, largest {offset.largest:.2f} px, right view '
            f'{side}, {offset.matches} features, {corner:.2f} px at the worst corner, surely '
            f'{offset.surely_off:.3f} px on average{flag}')


def sweep_shifts(shifts: Sequence[float], names: Sequence[str], count: int,
                 photos: str, align: bool = False, figure: Optional[str] = None) -> None:
    """Print bad-2/3 per backend and the measured offset for each shift of the right view.

    ``align``: each backend also on the pair aligned by the measured offset (column
    ``name aligned``). ``figure``: a PNG of the first scene at the largest shift, each
    column's disparity and its pixels more than 2 px off.
    """
    scenes = full_range_scenes(count, ['layered', 'photo'], photos)
    backends = {name: create_backend(name, device='cpu') for name in names}
    columns = [(name, False) for name in names] + [(name, True) for name in names if align]
    print(f'{len(scenes)} full-range validation scenes (layered, photo; seeds from '
          f'{FULL_RANGE_SEED_OFFSET}), right view moved down; bad-2 / bad-3 of the filled '
          'output, mean over the scenes; measured: plausibility.row_offset'
          + ('; "aligned": the right view put back on the left\'s rows by it' if align else ''))
    header = ''.join(f'{name + (" aligned" if aligned else ""):>22s}'
                     for name, aligned in columns)
    print(f'{"shift px":>9s}{header}{"measured typical":>18s}{"min-max":>14s}'
          f'{"surely on average, max":>24s}')
    panels: list[np.ndarray] = []
    for shift in shifts:
        scores: dict[tuple[str, bool], list[tuple[float, float]]] = {key: [] for key in columns}
        measured: list[float] = []
        surely: list[float] = []
        for sample in tqdm(scenes, desc=f'shift {shift:g}', unit='scene', leave=False):
            right = moved_down(sample.right, shift)
            offset = row_offset(sample.left, right)
            measured.append(np.nan if offset is None else offset.typical)
            surely.append(np.nan if offset is None else offset.surely_off)
            views = {False: right}
            if align:
                views[True] = aligned_right(sample.left, right, offset)[0]
            drawn = figure is not None and shift == max(shifts) and not panels
            if drawn:
                panels += truth_panels(sample)
            for name, aligned in columns:
                disparity = backends[name].compute(sample.left, views[aligned])
                filled = fill_invalid_kitti(disparity)
                scores[name, aligned].append((bad_n(filled, sample.disparity, 2.0),
                                              bad_n(filled, sample.disparity, 3.0)))
                if drawn:
                    label = (f'{name}, right view {shift:g} px low, '
                             + ('aligned' if aligned else 'as it comes'))
                    panels += disparity_panels(sample, disparity, label)
        cells = ''.join(f'{100 * np.mean([s[0] for s in scores[key]]):15.1f} / '
                        f'{100 * np.mean([s[1] for s in scores[key]]):4.1f}'
                        for key in columns)
        print(f'{shift:9.2f}{cells}{np.nanmedian(measured):18.2f}'
              f'{np.nanmin(measured):8.2f}-{np.nanmax(measured):.2f}'
              f'{np.nanmax(surely):19.2f}', flush=True)
    if figure is not None and panels:
        save_rgb(figure, grid(panels, columns=2))
        print(f'figure: {figure}')


#: How many aligned pairs ``--pairs-figure`` draws.
FIGURE_PAIRS = 3
#: How wide (px) the ``--pairs-figure`` picture is at the most: a wider one is shrunk to it.
FIGURE_WIDTH = 1440


def confirmed_disparity(backend: DisparityBackend, left: np.ndarray,
                        right: np.ndarray) -> np.ndarray:
    """Return a pair's disparity where the left-right check confirms it, NaN elsewhere."""
    disparity = backend.compute(left, right)
    mirrored = backend.compute(np.ascontiguousarray(right[:, ::-1]),
                               np.ascontiguousarray(left[:, ::-1]))
    return left_right_consistent(disparity, np.ascontiguousarray(mirrored[:, ::-1]))


def confirmed_share(confirmed: np.ndarray) -> float:
    """Return the share of a pair's pixels a :func:`confirmed_disparity` map confirms."""
    return float(np.isfinite(confirmed).mean())


def confirmed_panels(name: str, label: str, left: np.ndarray,
                     maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Return [left, confirmed disparity as the pair comes, aligned] of a pair, titled.

    ``maps``: the :func:`confirmed_disparity` of backend ``label`` as the pair comes and
    aligned. One colour scale for both (the aligned estimate's 99th percentile); black where
    the left-right check does not confirm the disparity.
    """
    scale = float(np.nanpercentile(maps[1], 99)) if np.isfinite(maps[1]).any() else 1.0
    panels = [titled(left, f'{name}: left')]
    for disparity, how in zip(maps, ('as it comes', 'aligned')):
        panels.append(titled(colorize_disparity(disparity, scale),
                             f'{label}, {how}: {100 * confirmed_share(disparity):.1f} % '
                             'confirmed (black: not)'))
    return panels


def list_pairs(root: str, names: Sequence[str] = (), align: bool = False,
               figure: Optional[str] = None) -> None:
    """Print the row offset of every pair under ``root`` and the largest of them.

    ``align``: also each backend's :func:`confirmed_share` as the pair comes and aligned, and
    their means over the pairs the alignment changes, and over those of them whose typical
    matched corner is under :data:`~stereo_depth_ros.row_alignment.ALIGN_FROM_PX` (aligned by
    the image-wide mean alone). ``figure``: a PNG of the first :data:`FIGURE_PAIRS` aligned
    pairs, the first backend's confirmed disparity as each comes and aligned.
    """
    backends = {name: create_backend(name, device='cpu') for name in names} if align else {}
    typical, largest = 0.0, 0.0
    shares: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    by_mean: list[bool] = []  # per aligned pair: by the image-wide mean alone
    panels: list[np.ndarray] = []
    for folder in find_pairs(root):
        left, right = read_image_rgb(folder / 'left.png'), read_image_rgb(folder / 'right.png')
        offset = row_offset(left, right)
        line = f'{folder.relative_to(Path(root).expanduser())}: {describe(offset)}'
        if offset is not None:
            typical, largest = max(typical, offset.typical), max(largest, offset.largest)
        if backends:  # --align: the pair aligned where it is worth it, and each score
            aligned, changed = aligned_right(left, right, offset)
            if not changed:
                line += '; not aligned'
            else:
                assert offset is not None  # aligned by it
                by_mean.append(offset.typical < ALIGN_FROM_PX)
            for index, (name, backend) in enumerate(backends.items() if changed else ()):
                maps = [confirmed_disparity(backend, left, view) for view in (right, aligned)]
                pair = (confirmed_share(maps[0]), confirmed_share(maps[1]))
                shares[name].append(pair)
                line += f'; {name} confirms {100 * pair[0]:.1f} -> {100 * pair[1]:.1f} %'
                if figure is not None and index == 0 and len(by_mean) <= FIGURE_PAIRS:
                    panels += confirmed_panels(folder.name, name, left, maps)
        print(line, flush=True)
    print(f'at most: typical {typical:.2f} px, largest {largest:.2f} px')
    for name, pairs in shares.items():
        if pairs:
            before, after = np.mean(pairs, axis=0)
            print(f'{name}, the {len(pairs)} aligned pairs: {100 * before:.1f} % of the pixels '
                  f'confirmed by the left-right check as they come, {100 * after:.1f} % aligned')
        if any(by_mean):
            before, after = np.mean([pair for pair, mean in zip(pairs, by_mean) if mean], axis=0)
            print(f'{name}, the {sum(by_mean)} of them aligned by the image-wide mean alone: '
                  f'{100 * before:.1f} % as they come, {100 * after:.1f} % aligned')
    if figure is not None:
        if not panels:
            print(f'{figure}: not written, no pair was aligned')
            return
        picture = grid(panels, columns=3)
        if picture.shape[1] > FIGURE_WIDTH:
            size = (FIGURE_WIDTH, round(picture.shape[0] * FIGURE_WIDTH / picture.shape[1]))
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
        save_rgb(figure, picture)
        print(f'figure: {figure}')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.row_offset_sweep',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--shifts', default='',
                        help='right-view shifts in px, comma-separated (e.g. 0,0.5,1,1.5,2)')
    parser.add_argument('--backends', default='sgbm,costnet_fast',
                        help='backends scored at each shift (default sgbm,costnet_fast)')
    parser.add_argument('--synthetic', type=int, default=6, metavar='N',
                        help='full-range validation scenes per kind (default 6)')
    parser.add_argument('--photos', default=str(DEFAULT_PHOTO_CACHE),
                        help=f'photographs of the photo scenes (default {DEFAULT_PHOTO_CACHE})')
    parser.add_argument('--pairs', default='', metavar='DIR',
                        help='print the row offset of every left.png/right.png pair under DIR')
    parser.add_argument('--figure', default=None, metavar='PNG',
                        help='with --shifts: draw the first scene at the largest shift, '
                             'each backend as the pair comes (and aligned, with --align)')
    parser.add_argument('--pairs-figure', default=None, metavar='PNG',
                        help=f'with --pairs and --align: draw the first {FIGURE_PAIRS} aligned '
                             'pairs, the first backend\'s disparity where the left-right check '
                             'confirms it, as each comes and aligned')
    parser.add_argument('--align', action='store_true',
                        help='also score each backend with the right view put back on the '
                             'left\'s rows by the measured offset')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the sweep and/or the listing asked for; 2 on bad arguments."""
    args = _parser().parse_args(argv)
    try:
        shifts = [float(text) for text in args.shifts.split(',') if text.strip()]
        names = [name.strip() for name in args.backends.split(',') if name.strip()]
        if not shifts and not args.pairs:
            raise StereoDepthError('give --shifts, --pairs or both')
        if shifts and (not names or args.synthetic < 1):
            raise StereoDepthError('--shifts needs --backends and --synthetic of at least 1')
        if args.align and not names:
            raise StereoDepthError('--align needs --backends')
        if args.figure and not shifts:
            raise StereoDepthError('--figure needs --shifts')
        if args.pairs_figure and not (args.pairs and args.align):
            raise StereoDepthError('--pairs-figure needs --pairs and --align')
        if args.pairs:
            find_pairs(args.pairs)  # refused before any scene is made
    except (StereoDepthError, ValueError) as error:
        print(f'row_offset_sweep: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.pairs:
        list_pairs(args.pairs, names, args.align, args.pairs_figure)
    if shifts:
        sweep_shifts(shifts, names, args.synthetic, args.photos, args.align, args.figure)
    return 0


if __name__ == '__main__':
    sys.exit(main())
