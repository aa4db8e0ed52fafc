"""Check a stereo camera's recorded pairs: swaps, rows, disparities, depth limits."""

import argparse
import tempfile
from pathlib import Path
from typing import Any

from .common import positive_int
from ..camera import StereoCameraModel
from ..errors import DatasetError
from ..text import counted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the camera check's options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--bag', default=None,
                        help='rosbag2 with the stereo topics (found by name; its camera_info '
                             'gives the calibration)')
    source.add_argument('--pairs', default=None,
                        help='folder searched recursively for left.png/right.png pairs')
    parser.add_argument('--fx', type=float, default=None,
                        help='with --pairs: focal length in px (with --baseline: depths)')
    parser.add_argument('--baseline', type=float, default=None,
                        help='with --pairs: baseline in metres')
    parser.add_argument('--max-pairs', type=positive_int, default=12,
                        help='pairs checked, spread over the bag or folder (default 12)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run(args: argparse.Namespace) -> int:
    """Print the report of :mod:`stereo_depth_ros.camera_check`."""
    from ..backends import create_backend, DEFAULT_BACKEND
    from ..camera_check import check_one, report_lines
    from ..data.datasets import read_image_rgb
    from ..training.pseudo_labels import find_pairs
    from tqdm import tqdm
    if args.bag and (args.fx is not None or args.baseline is not None):
        raise ValueError('--fx and --baseline apply to --pairs; a bag has its camera_info')
    if (args.fx is None) != (args.baseline is None):
        raise ValueError('give both --fx and --baseline, or neither')
    with tempfile.TemporaryDirectory(prefix='check_camera_') as scratch:
        camera = None
        if args.bag:
            root = Path(scratch)
            camera = _bag_pairs(args.bag, root, args.max_pairs, not args.no_progress)
        else:
            root = Path(args.pairs)
        folders = find_pairs(root)
        folders = [folders[i] for i in _spread(len(folders), args.max_pairs)]
        findings = []
        for folder in tqdm(folders, desc='check pairs', unit='pair', disable=args.no_progress):
            left, right = read_image_rgb(folder / 'left.png'), read_image_rgb(folder / 'right.png')
            if left.shape != right.shape:
                raise DatasetError(f'{folder}: left {left.shape[1]}x{left.shape[0]} and right '
                                   f'{right.shape[1]}x{right.shape[0]} differ')
            findings.append(check_one(str(folder.relative_to(root)), left, right))
        if args.fx is not None:
            camera = StereoCameraModel.from_focal_baseline(args.fx, args.baseline,
                                                           left.shape[1], left.shape[0])
    learned = float(create_backend(DEFAULT_BACKEND, device='cpu').max_disparity)
    where = args.bag or args.pairs
    print(f'{counted(len(findings), "pair")} of {where} ({left.shape[1]}x{left.shape[0]})')
    for line in report_lines(findings, learned, camera):
        print(line)
    return 0


def _spread(total: int, wanted: int) -> list[int]:
    """Return up to ``wanted`` indices spread evenly over ``range(total)``."""
    if total <= wanted:
        return list(range(total))
    return sorted({round(i * (total - 1) / (wanted - 1)) for i in range(wanted)}) \
        if wanted > 1 else [0]


def _bag_pairs(bag: str, out: Path, wanted: int, progress: bool) -> StereoCameraModel:
    """Extract about ``wanted`` pairs spread over the bag into ``out``; return its camera."""
    from ..bags import BagInput, find_stereo_topics
    from ..bags.extract import extract_pairs
    with BagInput(bag) as reader:
        topics = find_stereo_topics(reader.topics)
        total = reader.message_count(topics.left_image) or wanted
        infos: dict[str, Any] = {}
        for connection, _, data in reader.messages():
            if connection.topic in (topics.left_info, topics.right_info):
                infos.setdefault(connection.topic, reader.deserialize(data, connection))
            if len(infos) == 2:
                break
    if len(infos) < 2:
        raise DatasetError(f'{bag}: no message on {topics.left_info} and {topics.right_info}: '
                           'depth needs the calibration')
    camera = StereoCameraModel.from_camera_info(infos[topics.left_info],
                                                infos[topics.right_info])
    extract_pairs(bag, out, every=max(1, total // wanted), limit=wanted,
                  left_topic=topics.left_image, right_topic=topics.right_image,
                  progress=progress)
    return camera
