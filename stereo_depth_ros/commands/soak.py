"""Overload the node's processing core (no ROS) and check every pair is accounted for."""

import argparse

from .common import (add_backend_arguments, backend_from_args, non_negative_int, parse_size,
                     positive_float)
from ..pipeline import StereoPipeline
from ..soak import run_soak


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the soak options."""
    add_backend_arguments(parser)
    parser.add_argument('--seconds', type=positive_float, default=30.0,
                        help='how long to feed pairs (default 30)')
    parser.add_argument('--factor', type=positive_float, default=3.0,
                        help="input rate as a multiple of the backend's rate (default 3)")
    parser.add_argument('--size', default='240x320', metavar='HxW',
                        help='image size, height first as in `stereo-depth bench` (default '
                             '240x320)')
    parser.add_argument('--bad-every', type=non_negative_int, default=10, metavar='N',
                        help='every N-th pair is bad input (a 32FC1 image; 0 = none; '
                             'default 10)')


def run(args: argparse.Namespace) -> int:
    """Run the soak and print the counts; exit 1 when it fails (:meth:`SoakResult.problems`)."""
    height, width = parse_size(args.size)
    pipeline = StereoPipeline(backend_from_args(args))
    result = run_soak(pipeline, args.seconds, args.factor, width, height,
                      bad_every=args.bad_every)
    print(f'backend: {pipeline.backend.describe()}')
    for line in result.lines():
        print(line)
    return 1 if result.problems() else 0
