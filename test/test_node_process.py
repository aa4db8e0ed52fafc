"""stereo_depth_node as its own process, as stereo_image_proc's launch test runs its node.

The node is started the way ``ros2 run`` starts it (``main()`` of the ``depth_node`` entry
point, here through ``python -m stereo_depth_ros.node_entry``) with a namespace and parameters
given as ROS arguments; a fixture publisher sends a synthetic stereo pair with its
CameraInfos until a ``stereo_msgs/DisparityImage`` and a depth image arrive. Ctrl-C (SIGINT)
then ends the node with status 0. Skipped without rclpy and the message packages.
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('message_filters')
pytest.importorskip('stereo_msgs.msg')

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from stereo_msgs.msg import DisparityImage  # noqa: E402

from stereo_depth_ros.data.synthetic import make_scene  # noqa: E402
from test_node_ros import StereoSource  # noqa: E402

NAMESPACE = f'/stereo_depth_process_test_{os.getpid()}'
TIMEOUT_S = 90.0


class Lines:
    """A child's output lines read by a thread, so a wait for a line can time out (and fail)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.text = ''
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)

    def until(self, words: str, timeout: float = TIMEOUT_S) -> str:
        """Return the output so far once it holds ``words``; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while words not in self.text:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f'no {words!r} within {timeout:g} s:\n{self.text}'
            try:
                self.text += self._lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                assert self.process.poll() is None or not self._lines.empty(), self.text
        return self.text

    def next_line(self, timeout: float = TIMEOUT_S) -> str:
        """Return the output so far with one more line; fail after ``timeout`` s."""
        self.text += self._lines.get(timeout=timeout)
        return self.text


@pytest.fixture
def node_process():
    """The depth node in a child process, in NAMESPACE, with a small SGBM range."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'stereo_depth_ros.node_entry', '--ros-args', '-r',
         f'__ns:={NAMESPACE}', '-p', 'backend:=sgbm', '-p', 'sgbm.disparity_range:=64'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_launched_node_publishes_disparity_and_depth(node_process):
    context = rclpy.context.Context()
    rclpy.init(context=context)
    helper = rclpy.create_node('stereo_depth_fixture_publisher', namespace=NAMESPACE,
                               context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(helper)
    try:
        received = {}
        helper.create_subscription(DisparityImage, 'disparity',
                                   lambda msg: received.setdefault('disparity', msg),
                                   QoSProfile(depth=2))
        helper.create_subscription(Image, 'depth/image_rect',
                                   lambda msg: received.setdefault('depth', msg),
                                   QoSProfile(depth=2))
        helper.create_subscription(CameraInfo, 'depth/camera_info',
                                   lambda msg: received.setdefault('depth_info', msg),
                                   QoSProfile(depth=2))
        source = StereoSource(helper, make_scene(5, 128, 256, kind='road', max_disparity=48))
        deadline, last = time.monotonic() + TIMEOUT_S, 0.0
        while len(received) < 3:
            assert node_process.poll() is None, node_process.communicate()[0][-2000:]
            assert time.monotonic() < deadline, 'no DisparityImage, depth and camera_info in time'
            if time.monotonic() - last > 0.2:
                source.publish()
                last = time.monotonic()
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        helper.destroy_node()
        rclpy.try_shutdown(context=context)
    assert received['disparity'].image.width == 256 and received['disparity'].max_disparity > 0
    assert received['depth'].encoding == '32FC1'
    info = received['depth_info']
    assert (info.width, info.height) == (received['depth'].width, received['depth'].height)
    assert info.header.frame_id == received['depth'].header.frame_id
    for msg in (received['depth'], received['disparity'], info):
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec in source.stamps
    # A terminal's Ctrl-C under ros2 launch reaches the node twice (the terminal's SIGINT
    # and the one launch forwards): the second must not turn the clean-up into a traceback.
    node_process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    try:
        os.kill(node_process.pid, signal.SIGINT)  # also when it is already exiting
    except ProcessLookupError:
        pass
    output = node_process.communicate(timeout=30)[0]
    assert node_process.returncode == 0, output[-2000:]
    assert 'Traceback' not in output and 'KeyboardInterrupt' not in output, output[-2000:]


def test_a_bad_parameter_stops_the_start_with_one_line_of_the_named_node():
    # As `ros2 run ... --ros-args -p learned.near_scale:=0.01`: refused by the parameter's
    # check, logged once by the node's own logger (its namespace in the line), status 2.
    process = subprocess.run(
        [sys.executable, '-m', 'stereo_depth_ros.node_entry', '--ros-args', '-r',
         f'__ns:={NAMESPACE}', '-p', 'backend:=costnet_fast', '-p', 'learned.near_scale:=0.01'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
    assert process.returncode == 2, process.stdout[-2000:]
    lines = [line for line in process.stdout.splitlines() if 'cannot start' in line]
    assert len(lines) == 1, process.stdout[-2000:]
    assert f'{NAMESPACE.strip("/")}.stereo_depth_node' in lines[0]
    assert 'near_scale' in lines[0] and 'Traceback' not in process.stdout


def test_unknown_and_old_parameter_names_are_named_at_start_up():
    # A typo is ignored by ROS itself: the node names it. An old name and the new one with
    # different values are refused, one line and status 2.
    base = [sys.executable, '-m', 'stereo_depth_ros.node_entry', '--ros-args', '-r',
            f'__ns:={NAMESPACE}', '-p', 'backend:=sgbm']
    process = subprocess.Popen([*base, '-p', 'backnd:=dispnet', '-p', 'sgbm.block_size:=7'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = Lines(process)
        lines.until('waiting for')
        output = lines.next_line()  # the warnings follow the start-up line
        assert 'ignoring parameter(s) this node does not have: backnd' in output, output
        assert 'sgbm.block_size is the old name of sgbm.correlation_window_size' in output
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    clash = subprocess.run([*base, '-p', 'sgbm.block_size:=7', '-p',
                            'sgbm.correlation_window_size:=9'], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
    assert clash.returncode == 2, clash.stdout[-2000:]
    assert 'sgbm.block_size (the old name, 7) and sgbm.correlation_window_size (9) are both ' \
        'given' in clash.stdout


def test_with_sim_time_and_no_clock_the_node_still_says_nothing_arrives():
    # use_sim_time before a bag plays: /clock is silent and the node clock stands still. The
    # line saying that no input arrives runs on wall time and must still come.
    process = subprocess.Popen(
        [sys.executable, '-m', 'stereo_depth_ros.node_entry', '--ros-args', '-r',
         f'__ns:={NAMESPACE}', '-p', 'backend:=sgbm', '-p', 'use_sim_time:=true', '-p',
         'stats_period:=1.0'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        Lines(process).until('no message on', timeout=30.0)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
