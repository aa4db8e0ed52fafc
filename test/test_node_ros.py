"""stereo_depth_node in-process with rclpy: synthetic stereo in, disparity and depth out.

Skipped where rclpy (or the message packages) are not installed, i.e. outside a sourced ROS 2
workspace. Run it after ``colcon build`` with ``colcon test --packages-select
stereo_depth_ros`` or ``python3 -m pytest test/test_node_ros.py``.
"""

import math
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('message_filters')
pytest.importorskip('stereo_msgs.msg')

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import (CameraInfo, CompressedImage, Image, PointCloud2,  # noqa: E402
                             Range)
from stereo_msgs.msg import DisparityImage  # noqa: E402

from stereo_depth_ros.data.synthetic import make_scene  # noqa: E402
from stereo_depth_ros.msgs.images import (array_to_compressed, array_to_image,  # noqa: E402
                                          image_to_array)
from stereo_depth_ros.msgs.stereo import disparity_from_message, make_camera_infos  # noqa: E402
from stereo_depth_ros.msgs.types import make_header, MessageTypes  # noqa: E402
from stereo_depth_ros.node import StereoDepthNode  # noqa: E402

NAMESPACE = f'/stereo_depth_test_{os.getpid()}'
TIMEOUT_S = 60.0


@pytest.fixture(scope='module')
def scene():
    return make_scene(5, 128, 256, kind='road', max_disparity=48)


@pytest.fixture
def ros():
    """A private context with the depth node and a helper node on one executor."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    depth_node = StereoDepthNode(context=context, namespace=NAMESPACE, parameter_overrides=[
        Parameter('backend', value='sgbm'), Parameter('sgbm.disparity_range', value=64),
        Parameter('stats_period', value=1.0)])
    helper = rclpy.create_node('stereo_depth_test_helper', namespace=NAMESPACE,
                               context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(depth_node)
    executor.add_node(helper)
    yield depth_node, helper, executor
    executor.shutdown()
    depth_node.destroy_node()
    helper.destroy_node()
    rclpy.try_shutdown(context=context)


class StereoSource:
    """Publishes the scene as four synchronised topics with increasing stamps."""

    def __init__(self, helper, scene):
        self.types = MessageTypes.from_rclpy()
        self.scene = scene
        qos = QoSProfile(depth=5)
        self.publishers = {name: helper.create_publisher(kind, name, qos) for name, kind in (
            ('left/image_rect', Image), ('right/image_rect', Image),
            ('left/camera_info', CameraInfo), ('right/camera_info', CameraInfo))}
        self.stamps = []

    def publish(self, swap_baseline: bool = False, stamp: int = 0,
                right: bool = True) -> None:
        stamp = stamp or time.time_ns()
        header = make_header(stamp, 'stereo_left', self.types)
        left_info, right_info = make_camera_infos(self.scene.camera, header, header, self.types)
        if swap_baseline:
            p = list(right_info.p)
            p[3] = -p[3]
            right_info.p = p
        self.stamps.append(stamp)
        messages = {
            'left/camera_info': left_info, 'right/camera_info': right_info,
            'left/image_rect': array_to_image(self.scene.left, 'rgb8', header,
                                              self.types.Image),
            'right/image_rect': array_to_image(self.scene.right, 'rgb8', header,
                                               self.types.Image)}
        for name, publisher in self.publishers.items():
            if right or name != 'right/image_rect':
                publisher.publish(messages[name])


def _spin_until(executor, done, source=None, swap_baseline=False, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    last = 0.0
    while not done():
        assert time.monotonic() < deadline, 'timed out waiting for the node'
        if source is not None and time.monotonic() - last > 0.2:
            source.publish(swap_baseline)
            last = time.monotonic()
        executor.spin_once(timeout_sec=0.05)


def test_disparity_and_depth_arrive_with_the_right_geometry(ros, scene):
    depth_node, helper, executor = ros
    received = {}
    reliable = QoSProfile(depth=2)
    helper.create_subscription(DisparityImage, 'disparity',
                               lambda msg: received.setdefault('disparity', msg), reliable)
    helper.create_subscription(Image, 'depth/image_rect',
                               lambda msg: received.setdefault('depth', msg),
                               reliable)
    source = StereoSource(helper, scene)
    _spin_until(executor, lambda: len(received) == 2, source)

    disparity_msg, depth_msg = received['disparity'], received['depth']
    camera = scene.camera
    assert disparity_msg.f == pytest.approx(camera.fx)
    assert disparity_msg.t == pytest.approx(camera.baseline)
    assert depth_msg.encoding == '32FC1' and depth_msg.header.frame_id == 'stereo_left'
    stamp = depth_msg.header.stamp.sec * 10**9 + depth_msg.header.stamp.nanosec
    assert stamp in source.stamps

    disparity, f, t = disparity_from_message(disparity_msg)
    depth, _ = image_to_array(depth_msg)
    truth = camera.focal_baseline / scene.disparity
    valid = np.isfinite(depth)
    assert valid.mean() > 0.4
    assert np.median(np.abs(depth[valid] - truth[valid]) / truth[valid]) < 0.05
    both = valid & np.isfinite(disparity)
    np.testing.assert_allclose(depth[both], f * t / disparity[both], rtol=1e-4)


def test_bad_pairs_are_skipped_and_the_node_keeps_running(ros, scene):
    depth_node, helper, executor = ros
    received = []
    helper.create_subscription(Image, 'depth/image_rect', received.append, QoSProfile(depth=2))
    source = StereoSource(helper, scene)
    monitor = depth_node._worker.monitor
    _spin_until(executor, lambda: monitor.total_skipped > 0, source, swap_baseline=True)
    assert not received
    _spin_until(executor, lambda: bool(received), source)
    assert received[0].encoding == '32FC1'


def test_a_black_right_camera_gives_unknown_depth_and_no_obstacle(ros, scene):
    depth_node, helper, executor = ros
    ranges, depths = [], []
    helper.create_subscription(Range, 'obstacle/range', ranges.append, QoSProfile(depth=2))
    helper.create_subscription(Image, 'depth/image_rect', depths.append, QoSProfile(depth=2))
    black = SimpleNamespace(left=scene.left, right=np.zeros_like(scene.right),
                            camera=scene.camera)
    source = StereoSource(helper, black)
    _spin_until(executor, lambda: bool(ranges and depths), source)
    assert math.isnan(ranges[0].range) and ranges[0].max_range == ranges[0].min_range
    assert np.isnan(image_to_array(depths[0])[0]).all()
    # With the check off the node publishes what sgbm makes of it, as before.
    depth_node.set_parameters([Parameter('check_views', value=False)])
    _spin_until(executor, lambda: not math.isnan(ranges[-1].range), source)
    assert ranges[-1].max_range > ranges[-1].min_range


def test_swapped_image_topics_come_out_unknown_after_the_check(ros, scene):
    # sgbm's matches on this swapped road pair pass the view check and put an obstacle at
    # about 3.3 m: a phantom. The first pair is checked before it is processed: none is sent.
    depth_node, helper, executor = ros
    ranges, depths = [], []
    helper.create_subscription(Range, 'obstacle/range', ranges.append, QoSProfile(depth=5))
    helper.create_subscription(Image, 'depth/image_rect', depths.append, QoSProfile(depth=5))
    swapped = SimpleNamespace(left=scene.right, right=scene.left, camera=scene.camera)
    source = StereoSource(helper, swapped)
    _spin_until(executor, lambda: len(ranges) >= 3 and len(depths) >= 3, source)
    assert all(math.isnan(r.range) and r.max_range == r.min_range for r in ranges)
    assert all(np.isnan(image_to_array(depth)[0]).all() for depth in depths)


def test_nothing_is_computed_without_subscribers(ros, scene):
    depth_node, helper, executor = ros
    monitor = depth_node._worker.monitor
    source = StereoSource(helper, scene)
    _spin_until(executor, lambda: monitor.total_received >= 3, source)
    assert monitor.total_processed == 0 and monitor.total_skipped == 0


def test_parameter_changes_are_validated_and_reload_the_model(ros):
    depth_node, _, _ = ros
    results = depth_node.set_parameters([Parameter('backend', value='nope')])
    assert not results[0].successful and 'unknown backend' in results[0].reason
    results = depth_node.set_parameters([Parameter('sgbm.disparity_range', value=100)])
    assert not results[0].successful  # rejected by the descriptor's step of 16
    results = depth_node.set_parameters([Parameter('queue_size', value=9)])
    assert not results[0].successful  # read-only
    assert depth_node.get_parameter('backend').value == 'sgbm'
    results = depth_node.set_parameters([Parameter('sgbm.disparity_range', value=48)])
    assert results[0].successful
    assert depth_node._manager.pipeline.backend.max_disparity == 47.0
    assert depth_node.get_parameter('sgbm.disparity_range').value == 48


def test_old_sgbm_names_work_at_start_up_and_at_run_time():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = StereoDepthNode(context=context, namespace=NAMESPACE, parameter_overrides=[
        Parameter('backend', value='sgbm'), Parameter('sgbm.block_size', value=7),
        Parameter('sgbm.p2', value=2000)])  # above the automatic P1 up to block 13 (1352)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        params = node._manager.pipeline.backend.params
        assert (params.correlation_window_size, params.P2) == (7, 2000)
        # ros2 param get of the new names shows the values given under the old ones.
        assert node.get_parameter('sgbm.correlation_window_size').value == 7
        assert node.get_parameter('sgbm.P2').value == 2000
        results = node.set_parameters([Parameter('sgbm.block_size', value=9)])
        assert results[0].successful
        assert node._manager.pipeline.backend.params.correlation_window_size == 9
        for _ in range(20):
            executor.spin_once(timeout_sec=0.05)
        assert node.get_parameter('sgbm.correlation_window_size').value == 9
        assert not node.set_parameters([Parameter('sgbm.block_size', value=4)])[0].successful
        # The new name set afterwards updates the old one it was given under: a `ros2 param
        # dump` of the node holds no contradiction its next start would refuse.
        assert node.set_parameters([Parameter('sgbm.correlation_window_size',
                                              value=11)])[0].successful
        for _ in range(20):
            executor.spin_once(timeout_sec=0.05)
        assert node.get_parameter('sgbm.block_size').value == 11
        assert node.get_parameter('sgbm.correlation_window_size').value == 11
        assert node._manager.pipeline.backend.params.correlation_window_size == 11
        # An old name never given stays unset.
        assert node.get_parameter('sgbm.p1').value is None
        # Both names in one request (a `ros2 param load` of a dump): the last one accepted
        # wins under both names, and the sync ends (a leaked 0 s timer once spun a core).
        calls = []
        sync = node._sync_aliases
        node._sync_aliases = lambda *args: (calls.append(1), sync(*args))[1]
        assert all(result.successful for result in node.set_parameters([
            Parameter('sgbm.block_size', value=9),
            Parameter('sgbm.correlation_window_size', value=13)]))
        for _ in range(40):
            executor.spin_once(timeout_sec=0.02)
        assert node.get_parameter('sgbm.block_size').value == 13
        assert node.get_parameter('sgbm.correlation_window_size').value == 13
        assert node._manager.pipeline.backend.params.correlation_window_size == 13
        assert node._sync_timer is None and len(calls) < 10
        # An old name deleted stays deleted; the new name still sets.
        node.undeclare_parameter('sgbm.block_size')
        assert node.set_parameters([Parameter('sgbm.correlation_window_size',
                                              value=7)])[0].successful
        for _ in range(20):
            executor.spin_once(timeout_sec=0.02)
        assert node._manager.pipeline.backend.params.correlation_window_size == 7
        assert not node.has_parameter('sgbm.block_size')
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_a_silent_input_topic_is_named(ros, scene):
    depth_node, helper, executor = ros
    source = StereoSource(helper, scene)
    del source.publishers['right/camera_info']
    arrivals = depth_node._arrivals
    _spin_until(executor, lambda: arrivals._counts[f'{NAMESPACE}/left/camera_info'] > 0,
                source)
    text, problem = arrivals.diagnosis(1.0, approximate=False)
    assert problem
    assert text.startswith(f'no message on {NAMESPACE}/right/camera_info in 1 s')


def test_a_bag_played_again_pairs_again(ros, scene):
    # A first pass whose right camera stops after two sets leaves six unpaired sets of the
    # other three topics, stamped later than anything of a second pass of the same stamps;
    # message_filters alone would drop each message of the second pass on arrival.
    depth_node, helper, executor = ros
    received = []
    helper.create_subscription(DisparityImage, 'disparity', received.append,
                               QoSProfile(depth=10))
    source = StereoSource(helper, scene)
    _spin_until(executor, lambda: bool(received), source)  # connected
    base = time.time_ns()
    for first_pass in (True, False):
        for index in range(8 if first_pass else 4):
            count = len(received)
            source.publish(stamp=base + index * 100_000_000, right=index < 2 or not first_pass)
            if index < 2 or not first_pass:
                _spin_until(executor, lambda: len(received) > count, timeout=10.0)
            else:
                end = time.monotonic() + 0.1
                while time.monotonic() < end:
                    executor.spin_once(timeout_sec=0.02)
    stamps = [msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec for msg in received]
    assert stamps[-6:] == [base + index * 100_000_000 for index in (0, 1, 0, 1, 2, 3)]


def test_an_organised_cloud_keeps_the_image_s_grid(scene):
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = StereoDepthNode(context=context, namespace=NAMESPACE, parameter_overrides=[
        Parameter('backend', value='sgbm'), Parameter('sgbm.disparity_range', value=64),
        Parameter('publish_points', value=True), Parameter('points_organized', value=True)])
    helper = rclpy.create_node('stereo_depth_test_cloud', namespace=NAMESPACE, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(helper)
    try:
        clouds = []
        helper.create_subscription(PointCloud2, 'points2', clouds.append, QoSProfile(depth=2))
        _spin_until(executor, lambda: bool(clouds), StereoSource(helper, scene))
        cloud = clouds[0]
        assert (cloud.height, cloud.width) == scene.left.shape[:2] and not cloud.is_dense
        assert cloud.row_step == 16 * cloud.width
    finally:
        executor.shutdown()
        node.destroy_node()
        helper.destroy_node()
        rclpy.try_shutdown(context=context)


def test_compressed_images_arrive_on_the_remapped_base_topic(scene):
    context = rclpy.context.Context()
    rclpy.init(context=context)
    # image_transport's naming: the remapped base topic plus /compressed.
    node = StereoDepthNode(
        context=context, namespace=NAMESPACE,
        cli_args=['--ros-args', '-r', 'left/image_rect:=cam/left/image_rect'],
        parameter_overrides=[Parameter('backend', value='sgbm'),
                             Parameter('sgbm.disparity_range', value=64),
                             Parameter('image_transport', value='compressed')])
    helper = rclpy.create_node('stereo_depth_test_compressed', namespace=NAMESPACE,
                               context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(helper)
    try:
        topics = sorted(sub.sub.topic_name for sub in node._input_subs)
        assert topics == [f'{NAMESPACE}/cam/left/image_rect/compressed',
                          f'{NAMESPACE}/left/camera_info', f'{NAMESPACE}/right/camera_info',
                          f'{NAMESPACE}/right/image_rect/compressed']
        types = MessageTypes.from_rclpy()
        qos = QoSProfile(depth=5)
        publishers = {name: helper.create_publisher(kind, name, qos) for name, kind in (
            ('cam/left/image_rect/compressed', CompressedImage),
            ('right/image_rect/compressed', CompressedImage),
            ('left/camera_info', CameraInfo), ('right/camera_info', CameraInfo))}
        received = []
        helper.create_subscription(Image, 'depth/image_rect', received.append, QoSProfile(depth=2))
        deadline, last = time.monotonic() + TIMEOUT_S, 0.0
        while not received:
            assert time.monotonic() < deadline, 'timed out waiting for the node'
            if time.monotonic() - last > 0.2:
                header = make_header(time.time_ns(), 'stereo_left', types)
                infos = make_camera_infos(scene.camera, header, header, types)
                images = [array_to_compressed(image, 'rgb8', header, types)
                          for image in (scene.left, scene.right)]
                for publisher, msg in zip(publishers.values(), (*images, *infos)):
                    publisher.publish(msg)
                last = time.monotonic()
            executor.spin_once(timeout_sec=0.05)
        depth, _ = image_to_array(received[0])
        truth = scene.camera.focal_baseline / scene.disparity
        valid = np.isfinite(depth)
        assert valid.mean() > 0.4
        assert np.median(np.abs(depth[valid] - truth[valid]) / truth[valid]) < 0.05
    finally:
        executor.shutdown()
        node.destroy_node()
        helper.destroy_node()
        rclpy.try_shutdown(context=context)
