"""Compute disparity (and, with calibration, depth and the nearest obstacle) for one pair."""

import argparse
import io
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from .common import (add_backend_arguments, add_bit_depth_argument, add_calibration_arguments,
                     add_size_limit_argument, calibration_flags, check_output_folder,
                     input_settings, pipeline_from_args)
from ..camera import wide_baseline
from ..data.datasets import read_image_rgb
from ..errors import ImageFormatError
from ..images import size_mismatch
from ..pipeline import PipelineResult
from ..plausibility import check_image_size, check_pair, row_offset_warning, swap_warning
from ..atomic_files import replace_files
from ..view_check import Views
from ..visualize import colorize_disparity, encode_rgb, overlay_obstacle, robust_max

#: Every file infer may write into --out-dir (depth and obstacle only with calibration).
OUTPUT_FILES = ('disparity.npy', 'disparity.png', 'depth.npy', 'obstacle.png')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the infer options."""
    add_backend_arguments(parser, params_file=True)
    parser.add_argument('--left', required=True, help='left rectified image')
    parser.add_argument('--right', required=True, help='right rectified image')
    add_calibration_arguments(parser, 'focal length in pixels')
    parser.add_argument('--out-dir', required=True, help='folder for the outputs')
    add_bit_depth_argument(parser, 'image files', params_file=True)
    add_size_limit_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the pipeline on one pair and write the outputs."""
    for path in (args.left, args.right):
        if Path(path).is_dir():
            raise FileNotFoundError(f'{path} is a folder, not an image file')
        if not Path(path).is_file():
            raise FileNotFoundError(f'no such image: {path}')
    out = check_output_folder(args.out_dir)
    # Before the images: a wrong backend or parameter file is named whatever the pair holds.
    configured = pipeline_from_args(args)
    pipeline = configured.pipeline
    max_megapixels, bit_depth = input_settings(args, configured)
    left, right = _read_pair(args.left, args.right, bit_depth)
    given = calibration_flags(args)
    check_image_size(left.shape[1], left.shape[0], max_megapixels)
    camera = None
    if given is not None:
        camera = given.camera(left.shape[1], left.shape[0])
        wide = wide_baseline(camera.baseline)  # accepted (below 10 m), but more likely cm
        if wide:
            print(f'warning: --baseline {wide}: depths scale with it', file=sys.stderr)
    if camera is None and (pipeline.min_depth or pipeline.max_depth):
        print('warning: min_depth/max_depth of the parameter file need --fx and --baseline '
              '(depth); without them they are ignored', file=sys.stderr)
    check = check_pair(left, right, camera.disparity_offset if camera is not None else 0.0)
    if check.swapped and not pipeline.check_views:  # else the pipeline's note says it
        print(swap_warning(f'{args.left} / {args.right}'), file=sys.stderr)
    if check.misaligned:
        assert check.row_offset is not None
        aligned = pipeline.aligns_rows(check.row_offset, left.shape)
        print(row_offset_warning(f'{args.left} / {args.right}', check.row_offset, aligned),
              file=sys.stderr)
    result = pipeline.process(left, right, camera, outputs=frozenset({'depth', 'obstacle'}),
                              swapped=check.swapped, row_offset=check.row_offset)
    if result.rows_aligned and not check.misaligned:  # the warning says it from 1 px on
        assert check.row_offset is not None
        print(f'rows aligned: the right image\'s rows were {check.row_offset.summary()}; it '
              'was resampled onto the left\'s rows before matching (align_rows)',
              file=sys.stderr)
    # One picture, coloured over this pair's own disparities (to their 99th percentile), not
    # over the backend's whole range as the node's disparity/color is (0-384 px for costnet:
    # a 0-60 px scene would be all blue).
    top = robust_max(result.disparity)
    contents = {'disparity.npy': npy_bytes(result.disparity),
                'disparity.png': encode_rgb(colorize_disparity(result.disparity,
                                                               max_disparity=top))}
    if camera is not None:
        assert result.depth is not None  # computed whenever there is a camera
        contents['depth.npy'] = npy_bytes(result.depth)
        contents['obstacle.png'] = encode_rgb(overlay_obstacle(left, result.obstacle))
    # Outputs of an earlier run (another pair, say) go: none is left beside these.
    replace_files(out, contents, OUTPUT_FILES)
    if camera is not None:
        print(_obstacle_line(result))
    for note in result.notes:
        print(f'warning: {note}', file=sys.stderr)
    picture = (f'disparity.png (colours 0-{top:.0f} px)' if np.isfinite(result.disparity).any()
               else 'disparity.png (all unknown)')
    written = [picture if name == 'disparity.png' else name for name in contents]
    if result.views is not None and result.views.verdict is Views.SWAPPED:
        timing = 'not run on a pair that looks swapped'
    else:
        timing = (f'{result.timings["disparity_ms"]:.1f} ms (one first call, start-up '
                  'included: stereo-depth bench times warm ones)')
    print(f'{pipeline.backend.describe()}: {timing}; wrote {", ".join(written)} to {out}')
    return 0


def _read_pair(left_path: str, right_path: str,
               bit_depth: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the two images as RGB, warning once about their grey levels; same size both."""
    notes: list[str] = []
    left = read_image_rgb(left_path, notes, bit_depth)
    right = read_image_rgb(right_path, notes, bit_depth)
    for note in notes[:1]:
        print(f'warning: {note}', file=sys.stderr)
    mismatch = size_mismatch(left.shape, right.shape)  # both read as RGB: one layout
    if mismatch is not None:
        raise ImageFormatError(mismatch.message((f'left {left_path}', f'right {right_path}')))
    return left, right


def _obstacle_line(result: PipelineResult) -> str:
    """Return the line that says where the nearest obstacle is (a pair with a camera)."""
    if result.views_unconfirmed:
        return ('nearest obstacle: unknown, the views do not confirm the disparity or look '
                'swapped (see the warning)')
    if result.obstacle is not None and result.obstacle.found:
        assert result.obstacle.bbox is not None  # found: it has a box
        x, y, width, height = result.obstacle.bbox
        close = (f' - too close: nearer than the {result.min_range:.2f} m the range '
                 'starts at (the node\'s Range says -inf)'
                 if result.obstacle.distance < result.min_range else '')
        return (f'nearest obstacle: {result.obstacle.distance:.2f} m, box x {x} y {y} '
                f'width {width} height {height} px{close}')
    return 'nearest obstacle: none found'


def npy_bytes(array: np.ndarray) -> bytes:
    """Return ``array`` as the bytes of a ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
