"""Check a stereo camera's recorded pairs: swaps, rows, disparities, depth limits."""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from .common import (add_bit_depth_argument, add_calibration_arguments, approximate_slop,
                     calibration_flags, positive_float, positive_int, refuse_lone_slop)
from ..camera import StereoCameraModel
from ..errors import CalibrationError, DatasetError
from ..sync import DEFAULT_SLOP
from ..text import counted

#: Exit status when the check finds swapped pairs or rows that are off (2 is bad input).
EXIT_FOUND_PROBLEMS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the camera check's options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--bag', default=None,
                        help='rosbag2 with the stereo topics (found by name; its camera_info '
                             'gives the calibration)')
    source.add_argument('--pairs', default=None,
                        help='folder searched recursively for left.png/right.png pairs')
    add_calibration_arguments(parser, 'focal length in px, with --baseline: depths for '
                              '--pairs, or for a bag without camera_info')
    parser.add_argument('--left-image', default=None,
                        help='with --bag: the left image topic (default: found by name)')
    parser.add_argument('--right-image', default=None,
                        help='with --bag: the right image topic (default: found by name)')
    parser.add_argument('--approximate-sync', action='store_true',
                        help='with --bag: pair images whose stamps differ by less than --slop')
    parser.add_argument('--slop', type=positive_float, default=None,
                        help=f'with --approximate-sync (refused without it): largest stamp '
                             f'difference in seconds (default {DEFAULT_SLOP})')
    add_bit_depth_argument(parser, 'images (files of --pairs, mono16 messages of --bag)')
    parser.add_argument('--max-pairs', type=positive_int, default=12,
                        help='pairs checked, spread over the bag or folder (default 12)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run(args: argparse.Namespace) -> int:
    """Print the report of :mod:`stereo_depth_ros.camera_check`; 1 when it finds problems."""
    from ..backends import create_backend, DEFAULT_BACKEND
    from ..camera_check import check_one, problems_found, report_lines
    from ..data.datasets import check_same_size, read_image_rgb
    from ..training.pseudo_labels import find_pairs, incomplete_pairs_warning
    from tqdm import tqdm
    if not args.bag and (args.left_image or args.right_image or args.approximate_sync):
        raise ValueError('--left-image, --right-image and --approximate-sync apply to --bag')
    refuse_lone_slop(args.slop, args.approximate_sync)
    given = calibration_flags(args)
    notes = []
    image_notes: list[str] = []
    camera = None
    with tempfile.TemporaryDirectory(prefix='check_camera_') as scratch:
        every = None
        if args.bag:
            root = Path(scratch)
            damage: list[str] = []
            camera_infos, every = _bag_pairs(args, root, image_notes, damage)
            notes += [f'bag: {line}' for line in damage]
            if camera_infos is None and given is None:
                notes.append('depth: the bag has no camera_info; give --fx and --baseline for '
                             'depths')
            elif camera_infos is not None and given is not None:
                raise ValueError('the bag has its camera_info: --fx, --baseline and --doffs '
                                 'are only for a bag without it')
            elif camera_infos is not None:  # a bad calibration is refused before the pairs
                camera = StereoCameraModel.from_camera_info(*camera_infos)
        else:
            root = Path(args.pairs)
            warning = incomplete_pairs_warning(root)
            if warning:
                print(warning, file=sys.stderr)
        folders = find_pairs(root)
        folders = [folders[i] for i in _spread(len(folders), args.max_pairs)]
        # The bag's principal points, or --doffs's: cx_left - cx_right = -doffs.
        offset = (camera.disparity_offset if camera is not None
                  else -given.doffs if given is not None else 0.0)
        findings, sizes = [], set()
        for folder in tqdm(folders, desc='check pairs', unit='pair', disable=args.no_progress):
            left = read_image_rgb(folder / 'left.png', image_notes, args.mono16_bit_depth)
            right = read_image_rgb(folder / 'right.png', image_notes, args.mono16_bit_depth)
            check_same_size(folder, left.shape, right.shape)
            if camera is not None:  # the bag's CameraInfo, before a report made with it
                _check_size(camera, left.shape[1], left.shape[0], args.bag)
            sizes.add((left.shape[1], left.shape[0]))
            findings.append(check_one(_pair_name(folder, root, every), left, right, offset))
        notes += [f'images: {line}' for line in image_notes[:1]]
    by_area = sorted(sizes, key=lambda size: (size[0] * size[1], size))
    shown = ' to '.join(dict.fromkeys(f'{w}x{h}' for w, h in (by_area[0], by_area[-1])))
    if given is not None:  # the size only bounds pixel coordinates, unused here
        camera = given.camera(*by_area[-1])
    learned = create_backend(DEFAULT_BACKEND, device='cpu')
    sgbm = create_backend('sgbm')
    # What each reaches on the narrowest images: no disparity exceeds the width.
    narrowest = min(width for width, _ in sizes)
    print(f'{counted(len(findings), "pair")} of {args.bag or args.pairs} ({shown})')
    for line in report_lines(findings, (DEFAULT_BACKEND, learned.largest_disparity(narrowest)),
                             sgbm.largest_disparity(narrowest), camera) + notes:
        print(line)
    return EXIT_FOUND_PROBLEMS if problems_found(findings) else 0


def _check_size(camera: StereoCameraModel, width: int, height: int, bag: str) -> None:
    """Raise CalibrationError where a bag's images are not the size its CameraInfo says.

    The node and ``process-bag`` refuse such pairs, and depths from that calibration would be
    off by the ratio of the sizes (images scaled after calibration).
    """
    try:
        camera.check_image_size(width, height)
    except CalibrationError as error:
        raise CalibrationError(f'{bag}: {error}, so the node and process-bag refuse every '
                               'pair (scaled images need a CameraInfo of their size, or '
                               'its binning_x/binning_y)') from None


def _pair_name(folder: Path, root: Path, every: Optional[int]) -> str:
    """Return how the report names a pair: a bag's frame number, else its folder."""
    if every is not None:  # extracted: folders 00000, 00001, ... of every every-th frame
        return f'frame {int(folder.name) * every}'
    relative = folder.relative_to(root)
    return root.resolve().name if relative == Path('.') else str(relative)


def _spread(total: int, wanted: int) -> list[int]:
    """Return up to ``wanted`` indices spread evenly over ``range(total)``."""
    if total <= wanted:
        return list(range(total))
    if wanted == 1:
        return [0]
    return sorted({round(i * (total - 1) / (wanted - 1)) for i in range(wanted)})


def _bag_pairs(args: argparse.Namespace, out: Path, notes: list[str],
               damage: list[str]) -> tuple[Optional[tuple[Any, Any]], int]:
    """Extract up to ``--max-pairs`` synchronised pairs spread over the bag into ``out``.

    Return its two CameraInfos (None where the bag has none: the rows and swaps need no
    calibration) and the step between the synchronised frames extracted; a line on 16-bit
    images that use few of their bits goes to ``notes``, and what a damaged bag lost to
    ``damage``.
    """
    from ..bags import BagInput, find_stereo_images, find_stereo_topics
    from ..bags.extract import extract_pairs
    with BagInput(args.bag) as reader:
        left_image, right_image = find_stereo_images(reader.topics, args.left_image,
                                                     args.right_image)
        print(f'stereo images: {left_image} and {right_image}')
        total = reader.message_count(left_image) or args.max_pairs
        try:
            topics = find_stereo_topics(reader.topics, left_image, right_image)
        except DatasetError:  # no camera_info: no calibration, the rest can be checked
            topics = None
        infos: dict[str, Any] = {}
        wanted = (topics.left_info, topics.right_info) if topics else ()
        for connection, _, data in reader.messages() if topics else ():
            if connection.topic in wanted:
                infos.setdefault(connection.topic, reader.deserialize(data, connection))
            if len(infos) == 2:
                break
    # Rounded down: --max-pairs pairs where the bag has that many (15 frames gave 8 rounded
    # up), spread over at least half of its left images.
    every = max(1, total // args.max_pairs)
    extract_pairs(args.bag, out, every=every, limit=args.max_pairs,
                  slop=approximate_slop(args), left_topic=left_image,
                  right_topic=right_image, progress=not args.no_progress,
                  bit_depth=args.mono16_bit_depth, notes=notes, damage=damage)
    if topics is None or len(infos) < 2:
        return None, every
    return (infos[topics.left_info], infos[topics.right_info]), every
