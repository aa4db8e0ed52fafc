"""Run the stereo pipeline over a bag and write disparity, depth and obstacle topics."""

import argparse
import sys

from .common import (add_backend_arguments, add_bit_depth_argument, add_size_limit_argument,
                     input_settings, pipeline_from_args, positive_float, positive_int,
                     refuse_lone_slop)
from ..bags.process import process_bag
from ..sync import DEFAULT_QUEUE_SIZE, DEFAULT_SLOP
from ..bags.writer import DISTROS, STORAGE_PLUGINS
from ..errors import EXIT_INTERRUPTED
from ..settings import float_value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the process-bag options."""
    parser.add_argument('in_bag', metavar='IN_BAG', help='input rosbag2 folder (sqlite3/mcap)')
    parser.add_argument('out_bag', metavar='OUT_BAG', help='output bag folder (must not exist)')
    add_backend_arguments(parser, params_file=True)
    parser.add_argument('--approximate-sync', action=argparse.BooleanOptionalAction,
                        default=None,
                        help='pair messages whose stamps differ by less than --slop '
                             "(default: --params-file's approximate_sync, else exact stamps)")
    parser.add_argument('--slop', type=positive_float, default=None,
                        help='approximate sync: largest stamp difference in seconds, refused '
                             'where pairing is exact (default: '
                             "--params-file's approximate_sync_tolerance_seconds, else "
                             f'{DEFAULT_SLOP})')
    parser.add_argument('--queue-size', type=positive_int, default=DEFAULT_QUEUE_SIZE,
                        help=f'messages kept per topic while pairing (default '
                             f'{DEFAULT_QUEUE_SIZE})')
    for side in ('left', 'right'):
        parser.add_argument(f'--{side}-image', default=None, metavar='TOPIC',
                            help=f'{side} image topic (default: found by type and name)')
        parser.add_argument(f'--{side}-info', default=None, metavar='TOPIC',
                            help=f'{side} camera_info topic (default: beside the image)')
    parser.add_argument('--namespace', default=None,
                        help='namespace of the output topics (default: common namespace of '
                             'the image topics, e.g. /stereo); topics the input bag already '
                             'has are refused')
    parser.add_argument('--points', action='store_true',
                        help='also write <ns>/points2 (as publish_points: true does)')
    parser.add_argument('--points-organized', action='store_true',
                        help='points2 organised as the image, NaN where unknown (as '
                             'points_organized: true does; implies --points)')
    add_bit_depth_argument(parser, 'mono16 images', params_file=True)
    parser.add_argument('--storage', choices=sorted(STORAGE_PLUGINS), default='mcap',
                        help='storage plugin of the output bag (default: mcap)')
    parser.add_argument('--ros-distro', choices=sorted(DISTROS), default='jazzy',
                        help='message definitions used for decoding and writing, except '
                             'for types the input bag defines itself (default jazzy)')
    parser.add_argument('--strict', action='store_true',
                        help='fail on the first undecodable message or damaged chunk '
                             '(default: skip and count them, keep the rest)')
    add_size_limit_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Process the bag and print a summary."""
    config = pipeline_from_args(args)
    pipeline = config.pipeline
    max_megapixels, bit_depth = input_settings(args, config)
    # As the node pairs with the same file (its defaults without one); the queue stays looser.
    approximate = args.approximate_sync
    if approximate is None:
        approximate = bool(config.values['approximate_sync'])
    refuse_lone_slop(args.slop, approximate)
    slop, slop_name = args.slop, '--slop'
    if slop is None:
        slop = float_value(config.values, 'approximate_sync_tolerance_seconds')
        if args.params_file:
            slop_name = f'approximate_sync_tolerance_seconds of {args.params_file}'
    topics = {'left_image': args.left_image, 'right_image': args.right_image,
              'left_info': args.left_info, 'right_info': args.right_info}
    organized = args.points_organized or bool(config.values['points_organized'])
    summary = process_bag(args.in_bag, args.out_bag, pipeline, topics=topics,
                          slop=slop if approximate else None, queue_size=args.queue_size,
                          points=args.points or args.points_organized,
                          points_organized=organized, storage=args.storage,
                          distro=args.ros_distro, namespace=args.namespace,
                          mono16_bit_depth=bit_depth, strict=args.strict,
                          max_megapixels=max_megapixels, outputs=config.topics,
                          slop_name=slop_name)
    print(f'backend: {pipeline.backend.describe()}')
    warnings = summary.warnings()
    for line in summary.lines():
        print(line, file=sys.stderr if line in warnings else sys.stdout)
    return EXIT_INTERRUPTED if summary.interrupted else 0
