"""Subscribe to every output of stereo_depth_node for a while; print rates and a few checks.

Run it in a sourced ROS 2 environment while the node runs and a bag plays::

    python3 tools/ros_check/watch_outputs.py [--namespace /stereo] [--seconds 15]

It prints, per output topic, how many messages came and at what rate; then, from the last
ones, the DisparityImage's ``f``, ``t`` and range beside the focal length and baseline of the
CameraInfos (right ``P[3] = -fx * B``), the depth image's encoding and share of finite
pixels, whether depth/camera_info carries the depth image's header, and the obstacle range.
"""

import argparse
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range
from stereo_msgs.msg import DisparityImage

OUTPUTS = {'disparity': DisparityImage, 'depth/image_rect': Image,
           'depth/camera_info': CameraInfo, 'obstacle/mask': Image, 'obstacle/range': Range,
           'disparity/color': Image, 'points2': PointCloud2}


def report(arrivals: dict, last: dict, infos: dict, depth_headers: dict) -> list[str]:
    """Return the lines printed at the end: rates, then checks of the last messages.

    ``depth_headers`` maps each depth image's stamp (sec, nanosec) to its header.
    """
    lines = []
    for topic, times in arrivals.items():
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        lines.append(f'{topic:20s} n={len(times):3d} rate={rate:5.2f} Hz')
    if 'disparity' in last and {'left', 'right'} <= set(infos):
        message, left, right = last['disparity'], infos['left'], infos['right']
        fx = left.p[0]
        baseline = (left.p[3] - right.p[3]) / fx
        image = np.frombuffer(bytes(message.image.data), np.float32)
        lines.append(f'disparity: f={message.f:.4f} t={message.t:.5f} (CameraInfo fx={fx:.4f} '
                     f'B={baseline:.5f}) encoding={message.image.encoding} '
                     f'range {message.min_disparity}..{message.max_disparity} '
                     f'delta_d={message.delta_d:.4f} '
                     f'invalid={np.mean(image < message.min_disparity):.3f}')
    if 'depth/image_rect' in last:
        depth = last['depth/image_rect']
        values = np.frombuffer(bytes(depth.data), np.float32)
        lines.append(f'depth: {depth.encoding} {depth.width}x{depth.height} '
                     f'finite={np.isfinite(values).mean():.3f} frame={depth.header.frame_id}')
        if 'depth/camera_info' in last:
            # The last camera_info may belong to a depth image that came after listening ended.
            info = last['depth/camera_info'].header
            match = depth_headers.get((info.stamp.sec, info.stamp.nanosec))
            verdict = 'no depth image of its stamp seen' if match is None else match == info
            lines.append(f'depth/camera_info has its depth image\'s header: {verdict}')
    if 'obstacle/range' in last:
        found = last['obstacle/range']
        lines.append(f'obstacle/range: {found.range:.2f} m in [{found.min_range}, '
                     f'{found.max_range}] frame={found.header.frame_id}')
    return lines


def main() -> None:
    """Listen for ``--seconds``, then print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--namespace', default='/stereo', help='the node\'s (default /stereo)')
    parser.add_argument('--seconds', type=float, default=15.0, help='how long to listen')
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node('stereo_depth_output_watch')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    arrivals: dict = {topic: [] for topic in OUTPUTS}
    last: dict = {}
    infos: dict = {}
    depth_headers: dict = {}

    def keep(topic: str):
        def callback(message) -> None:
            arrivals[topic].append(time.monotonic())
            last[topic] = message
            if topic == 'depth/image_rect':
                stamp = message.header.stamp
                depth_headers[(stamp.sec, stamp.nanosec)] = message.header
        return callback

    for topic, message_type in OUTPUTS.items():
        node.create_subscription(message_type, f'{args.namespace}/{topic}', keep(topic), qos)
    for side in ('left', 'right'):
        node.create_subscription(CameraInfo, f'{args.namespace}/{side}/camera_info',
                                 lambda message, side=side: infos.__setitem__(side, message),
                                 qos)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print('\n'.join(report(arrivals, last, infos, depth_headers)))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
