"""Convert a KITTI raw drive or KITTI stereo 2015 folder into a rosbag2 bag."""

import argparse
import sys

from ..bags.from_kitti import kitti_to_bag
from ..bags.writer import DISTROS, METADATA_VERSION, STORAGE_PLUGINS
from ..msgs.images import COMPRESSION_CODECS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the kitti2bag options."""
    parser.add_argument('drive', metavar='DRIVE_DIR',
                        help='KITTI raw drive (<date>/<date>_drive_XXXX_sync, calibration in '
                             'the parent) or stereo 2015 folder (image_2, image_3, '
                             'calib_cam_to_cam)')
    parser.add_argument('out_bag', metavar='OUT_BAG', help='output bag folder (must not exist)')
    parser.add_argument('--storage', choices=sorted(STORAGE_PLUGINS), default='mcap',
                        help='rosbag2 storage plugin (default: mcap)')
    parser.add_argument('--frames', default=None, metavar='A:B',
                        help='frames to convert, a python slice of the sorted frames '
                             '(10:20, :5, 7; a negative start needs the = form: '
                             '--frames=-3:) (default: all)')
    parser.add_argument('--keep-camera-stamps', action='store_true',
                        help="keep each camera's recorded stamp (default: the right image "
                             "gets the left image's stamp)")
    parser.add_argument('--topic-prefix', default='/stereo',
                        help='namespace of the image and camera_info topics (default /stereo)')
    parser.add_argument('--ros-distro', choices=sorted(DISTROS), default='jazzy',
                        help='message definitions stored in the bag (default jazzy; the '
                             'messages written are the same in humble)')
    parser.add_argument('--compressed', choices=sorted(COMPRESSION_CODECS), default=None,
                        help='write the images as sensor_msgs/CompressedImage on '
                             '<prefix>/{left,right}/image_rect/compressed, as image_transport '
                             'does (png: lossless; jpeg: smaller, and worse for matching); '
                             'default: raw sensor_msgs/Image')
    parser.add_argument('--strict', action='store_true',
                        help='fail on the first unreadable image (default: skip such frames, '
                             'convert the rest and list them)')


def run(args: argparse.Namespace) -> int:
    """Write the bag and print what it holds."""
    summary = kitti_to_bag(args.drive, args.out_bag, storage=args.storage, frames=args.frames,
                           keep_camera_stamps=args.keep_camera_stamps,
                           topic_prefix=args.topic_prefix, distro=args.ros_distro,
                           strict=args.strict, compression=args.compressed)
    print(f'wrote {summary.frames} frames of the KITTI {summary.layout} layout to {summary.bag} '
          f'({args.storage}, rosbag2 metadata version {METADATA_VERSION})')
    print(f'stereo: fx {summary.fx:.2f} px, baseline {summary.baseline:.4f} m')
    for topic, count in summary.topics.items():
        print(f'  {topic}: {count} messages')
    if summary.skipped:
        names = ', '.join(name for name, _ in summary.skipped)
        print(f'skipped {len(summary.skipped)} of {summary.frames + len(summary.skipped)} '
              f'frames whose images are unreadable or of the wrong size: {names} '
              f'(first: {summary.skipped[0][1]}); '
              'use --strict to fail instead', file=sys.stderr)
    return 0
