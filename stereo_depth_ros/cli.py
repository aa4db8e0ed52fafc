"""`stereo-depth` command line: one sub-command per module in ``stereo_depth_ros.commands``."""

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .errors import StereoDepthError

#: Sub-command name -> module in ``stereo_depth_ros.commands`` with add_arguments() and run().
COMMANDS = {
    'backends': 'backends',
    'infer': 'infer',
    'eval': 'evaluate',
    'demo': 'demo',
    'train': 'train',
    'bench': 'bench',
    'kitti2bag': 'kitti2bag',
    'process-bag': 'process_bag',
    'fetch-photos': 'fetch_photos',
    'real-bench': 'real_bench',
    'adapt': 'adapt',
}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog='stereo-depth',
        description='Stereo disparity, metric depth and nearest-obstacle segmentation.')
    subparsers = parser.add_subparsers(dest='command', required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f'stereo_depth_ros.commands.{module_name}')
        except ModuleNotFoundError as error:
            if error.name != f'stereo_depth_ros.commands.{module_name}':
                raise
            continue
        doc = (module.__doc__ or '').strip().splitlines()[0] if module.__doc__ else ''
        sub = subparsers.add_parser(name, help=doc, description=doc)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; bad input exits 2 with one clear line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (StereoDepthError, FileNotFoundError, ValueError) as error:
        print(f'stereo-depth {args.command}: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'stereo-depth {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
