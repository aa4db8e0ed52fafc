"""Replay a rosbag2 with rclpy at its recorded timing: a stand-in for ``ros2 bag play``.

For ROS 2 installs without rosbag2 (e.g. a minimal from-source build). The bag is read with
``rosbags``; each message is published on its topic, with its original type and bytes, at the
offset from the first message it was recorded at. Run it in a sourced ROS 2 environment::

    python3 tools/ros_check/play_bag.py BAG [--loops N]
"""

import argparse
import time
from pathlib import Path

import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from rosidl_runtime_py.utilities import get_message

#: Seconds to wait after creating the publishers, so subscribers discover them.
DISCOVERY_S = 2.0


def read_messages(bag: Path) -> list[tuple[str, int, type, bytes]]:
    """Return (topic, time ns, message class, CDR bytes) of every message of a known type."""
    messages = []
    with Reader(bag) as reader:
        for connection, stamp, raw in reader.messages():
            try:
                message_type = get_message(connection.msgtype)
            except (AttributeError, ModuleNotFoundError, ValueError):
                print(f'skipping {connection.topic}: type {connection.msgtype} is not installed')
                continue
            messages.append((connection.topic, stamp, message_type, bytes(raw)))
    return messages


def main() -> None:
    """Publish the bag's messages ``--loops`` times at their recorded pace."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('bag', type=Path, help='rosbag2 folder (sqlite3 or mcap)')
    parser.add_argument('--loops', type=int, default=1, help='times to play it (default 1)')
    args = parser.parse_args()
    messages = read_messages(args.bag)
    if not messages:
        raise SystemExit(f'{args.bag}: no message of an installed type')
    rclpy.init()
    node = rclpy.create_node('bag_player')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST)
    # /tf_static is latched, as ros2 bag play offers it: a late subscriber still gets it.
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publishers = {}
    for topic, _, message_type, _ in messages:
        if topic not in publishers:
            publishers[topic] = node.create_publisher(
                message_type, topic, latched if topic == '/tf_static' else qos)
    time.sleep(DISCOVERY_S)
    for _ in range(args.loops):
        start_wall, start_bag = time.monotonic(), messages[0][1]
        for topic, stamp, message_type, raw in messages:
            wait = (stamp - start_bag) / 1e9 - (time.monotonic() - start_wall)
            if wait > 0:
                time.sleep(wait)
            publishers[topic].publish(deserialize_message(raw, message_type))
    print(f'published {len(messages) * args.loops} messages in {args.loops} loop(s)')
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
