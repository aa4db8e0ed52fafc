"""The node's per-pair processing, hand-over slot, statistics and worker, without rclpy."""

import dataclasses
import math
import posixpath
import threading
import time

import cv2
import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores

from fake_backends import ConstantBackend
from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.errors import CalibrationError, ImageFormatError
from stereo_depth_ros.msgs.images import array_to_compressed, array_to_image, image_to_array
from stereo_depth_ros.msgs.points import point_cloud2_to_arrays
from stereo_depth_ros.msgs.stereo import disparity_from_message, make_camera_infos
from stereo_depth_ros.msgs.types import make_header, MessageTypes
from stereo_depth_ros.monitoring import format_stats, LogThrottle, ThroughputMonitor
from stereo_depth_ros.node_config import SPECS
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.pipeline_config import PipelineManager
from stereo_depth_ros import plausibility, processing
from stereo_depth_ros.processing import (NARROW_16_BIT_FRAMES, note_kind, obstacle_field_of_view,
                                         StereoFrameProcessor, StereoPair)
from stereo_depth_ros.topics import OUTPUT_BY_NAME, OUTPUT_TOPICS, OUTPUTS, pipeline_outputs
from stereo_depth_ros.worker import LatestSlot, StereoWorker

TYPES = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))
STAMP_NS = 1_700_000_000_123_456_789


@pytest.fixture(scope='module')
def scene():
    return make_scene(3, 128, 256, kind='road', max_disparity=48)


#: The geometry of these tests is checked on sgbm's pixels (no weights, exact on this scene).
SGBM64 = {'backend': 'sgbm', 'sgbm.disparity_range': 64}


@pytest.fixture(scope='module')
def manager():
    return PipelineManager(SGBM64)


def make_pair(scene, left=None, right=None, encoding='rgb8', camera=None, stamp_ns=STAMP_NS):
    header = make_header(stamp_ns, 'stereo_left', TYPES)
    left_info, right_info = make_camera_infos(camera or scene.camera, header, header, TYPES)
    left = scene.left if left is None else left
    right = scene.right if right is None else right
    return StereoPair(array_to_image(left, encoding, header, TYPES.Image),
                      array_to_image(right, encoding, header, TYPES.Image),
                      left_info, right_info)


# ------------------------------------------------------------------ processing


def test_the_topic_table_names_real_types_outputs_and_switches():
    assert len(OUTPUT_BY_NAME) == len(OUTPUTS) == len(OUTPUT_TOPICS)
    for topic in OUTPUTS:
        assert hasattr(TYPES, topic.message)
        assert topic.output in (None, 'depth', 'obstacle', 'color', 'points')
        assert SPECS[topic.switch].kind is bool
    switches = {spec.name for spec in SPECS.values() if spec.name.startswith('publish_')}
    assert switches == {topic.switch for topic in OUTPUTS}
    assert pipeline_outputs(['disparity']) == frozenset()
    assert pipeline_outputs(['obstacle/range', 'points2']) == {'obstacle', 'points'}
    with pytest.raises(ValueError, match='unknown output topic'):
        pipeline_outputs(['disparity/raw'])


def test_good_pair_gives_every_output_with_the_right_geometry(scene, manager):
    output = StereoFrameProcessor(TYPES).process(make_pair(scene), manager.pipeline,
                                                 OUTPUT_TOPICS)
    messages = output.messages
    assert set(messages) == set(OUTPUT_TOPICS)
    camera = scene.camera
    for message in messages.values():
        assert message.header.frame_id == 'stereo_left'
        assert message.header.stamp.sec * 10**9 + message.header.stamp.nanosec == STAMP_NS

    disparity_msg = messages['disparity']
    assert disparity_msg.f == pytest.approx(camera.fx)
    assert disparity_msg.t == pytest.approx(0.54)  # the road scenes' baseline, metres
    disparity, f, t = disparity_from_message(disparity_msg)
    depth, encoding = image_to_array(messages['depth/image_rect'])
    assert encoding == '32FC1' and depth.shape == (128, 256)
    # depth = f * t / d on every pixel where both are known
    both = np.isfinite(disparity) & np.isfinite(depth)
    assert both.mean() > 0.4
    np.testing.assert_allclose(depth[both], f * t / disparity[both], rtol=1e-4)
    truth = camera.focal_baseline / scene.disparity
    relative = np.abs(depth[both] - truth[both]) / truth[both]
    assert np.median(relative) < 0.05

    mask, encoding = image_to_array(messages['obstacle/mask'])
    assert encoding == 'mono8' and set(np.unique(mask)) <= {0, 255} and mask.any()
    assert (mask[scene.obstacle_mask] == 255).mean() > 0.5
    range_msg = messages['obstacle/range']
    assert range_msg.range == pytest.approx(scene.obstacle_distance, rel=0.1)
    # The nearest depth sgbm's 0-63 px can measure is above obstacle.min_range (0.3 m).
    nearest = camera.focal_baseline / (63 - camera.disparity_offset)
    assert nearest > 0.3
    assert range_msg.min_range == pytest.approx(nearest) and range_msg.max_range == 40.0
    assert range_msg.field_of_view == pytest.approx(2 * math.atan(128 / camera.fx), rel=1e-3)

    color, encoding = image_to_array(messages['disparity/color'])
    assert encoding == 'bgr8' and color.shape == (128, 256, 3)
    xyz, rgb = point_cloud2_to_arrays(messages['points2'])
    assert len(xyz) == np.isfinite(depth).sum()
    assert np.allclose(np.sort(xyz[:, 2]), np.sort(depth[np.isfinite(depth)]))
    assert rgb is not None and rgb.shape == xyz.shape


def test_the_depth_camera_info_is_where_image_transport_looks_for_it():
    # image_transport's rule (depth_image_proc, rviz's DepthCloud): an image topic's
    # CameraInfo is the camera_info beside it, <its namespace>/camera_info.
    depth = [topic.name for topic in OUTPUTS
             if topic.output == 'depth' and topic.message == 'Image']
    assert depth == ['depth/image_rect']
    assert OUTPUT_BY_NAME[posixpath.join(posixpath.dirname(depth[0]), 'camera_info')].message \
        == 'CameraInfo'


def test_depth_camera_info_travels_with_depth(scene, manager):
    pair = make_pair(scene)
    messages = StereoFrameProcessor(TYPES).process(
        pair, manager.pipeline, {'depth/image_rect', 'depth/camera_info'}).messages
    info = messages['depth/camera_info']
    assert info.header == messages['depth/image_rect'].header == pair.left_image.header
    assert (info.width, info.height) == (256, 128)
    np.testing.assert_allclose(info.p, pair.left_info.p)
    np.testing.assert_allclose(info.k, pair.left_info.k)


def test_messages_carry_the_limits_of_the_pipeline_that_computed_them(scene):
    manager = PipelineManager({'backend': 'sgbm', 'sgbm.min_disparity': 16,
                               'sgbm.disparity_range': 48, 'obstacle.min_range': 1.0,
                               'obstacle.max_range': 25.0})
    messages = StereoFrameProcessor(TYPES).process(
        make_pair(scene), manager.pipeline, {'disparity', 'obstacle/range'}).messages
    offset = scene.camera.disparity_offset
    assert messages['disparity'].min_disparity == pytest.approx(16 - offset)
    assert messages['disparity'].max_disparity == pytest.approx(63 - offset)
    nearest = scene.camera.focal_baseline / (63 - offset)  # 1.26 m
    farthest = scene.camera.focal_baseline / (16 - offset)  # 4.97 m: sgbm sees no farther
    assert messages['obstacle/range'].min_range == pytest.approx(max(1.0, nearest))
    assert messages['obstacle/range'].max_range == pytest.approx(min(25.0, farthest))
    assert farthest < 25.0


def test_the_range_says_what_the_search_could_not_see(scene):
    # The obstacle stands at 17.6 m. Beyond max_depth it is blanked before the search: the
    # Range's +inf must then mean "nothing up to 12 m", not "nothing up to 40 m".
    assert scene.obstacle_distance > 12.0
    manager = PipelineManager({**SGBM64, 'max_depth': 12.0, 'min_depth': 2.0})
    message = StereoFrameProcessor(TYPES).process(
        make_pair(scene), manager.pipeline, {'obstacle/range'}).messages['obstacle/range']
    assert message.range == math.inf
    assert (message.min_range, message.max_range) == (2.0, 12.0)


def test_an_obstacle_nearer_than_the_range_is_too_close_not_absent(scene):
    # The obstacle at 17.6 m is nearer than min_depth: depth marks it -inf ("too close"), and
    # the Range must say -inf as well, never name something farther as the nearest.
    manager = PipelineManager({**SGBM64, 'min_depth': 20.0})
    messages = StereoFrameProcessor(TYPES).process(
        make_pair(scene), manager.pipeline,
        {'depth/image_rect', 'obstacle/range', 'obstacle/mask'}).messages
    message = messages['obstacle/range']
    assert message.range == -math.inf and message.min_range == 20.0
    depth = image_to_array(messages['depth/image_rect'])[0]
    assert (depth[scene.obstacle_mask] == -np.inf).mean() > 0.5
    mask = image_to_array(messages['obstacle/mask'])[0]
    assert (mask[scene.obstacle_mask] == 255).mean() > 0.5  # the too-close obstacle is shown


def test_only_the_requested_topics_are_built(scene, manager):
    output = StereoFrameProcessor(TYPES).process(make_pair(scene), manager.pipeline,
                                                 {'depth/image_rect'})
    assert set(output.messages) == {'depth/image_rect'}
    assert 'obstacle_ms' not in output.timings  # nothing computed for obstacle


def test_the_colour_picture_is_published_as_bgr(scene):
    # The pipeline's picture is RGB; the message says bgr8, so its bytes are in that order.
    result = StereoPipeline(ConstantBackend(40.0, 64.0), check_views=False).process(
        scene.left, scene.right, scene.camera, outputs={'color'})
    assert (result.color[..., 0] != result.color[..., 2]).any()
    message = StereoFrameProcessor(TYPES).process(
        make_pair(scene), StereoPipeline(ConstantBackend(40.0, 64.0), check_views=False),
        {'disparity/color'}).messages['disparity/color']
    colour, encoding = image_to_array(message)
    assert encoding == 'bgr8'
    np.testing.assert_array_equal(colour, result.color[..., ::-1])


def test_depth_range_applies_to_a_disparity_only_subscriber(scene):
    manager = PipelineManager({**SGBM64, 'max_depth': 10.0})
    processor = StereoFrameProcessor(TYPES)
    pair = make_pair(scene)
    alone = processor.process(pair, manager.pipeline, {'disparity', 'disparity/color'})
    with_depth = processor.process(pair, manager.pipeline,
                                   {'disparity', 'disparity/color', 'depth/image_rect'})
    disparity = disparity_from_message(alone.messages['disparity'])[0]
    expected = disparity_from_message(with_depth.messages['disparity'])[0]
    unlimited = processor.process(pair, PipelineManager(SGBM64).pipeline,
                                  {'disparity'})
    far = (np.isfinite(disparity_from_message(unlimited.messages['disparity'])[0])
           & np.isnan(expected))
    assert far.any()  # max_depth blanks some pixels of this scene
    np.testing.assert_array_equal(disparity, expected)
    np.testing.assert_array_equal(image_to_array(alone.messages['disparity/color'])[0],
                                  image_to_array(with_depth.messages['disparity/color'])[0])


def test_no_obstacle_is_an_infinite_range(scene):
    # Nothing between the 1.26 m sgbm's 64 px reach on this camera and 2 m.
    manager = PipelineManager({**SGBM64, 'obstacle.max_range': 2.0})
    output = StereoFrameProcessor(TYPES).process(make_pair(scene), manager.pipeline,
                                                 {'obstacle/range', 'obstacle/mask'})
    message = output.messages['obstacle/range']
    assert message.range == math.inf and message.min_range < message.max_range == 2.0
    assert not image_to_array(output.messages['obstacle/mask'])[0].any()


def test_mono_and_bgr_inputs_are_accepted(scene, manager):
    processor = StereoFrameProcessor(TYPES)
    grey = make_pair(scene, scene.left[:, :, 1].copy(), scene.right[:, :, 1].copy(), 'mono8')
    assert set(processor.process(grey, manager.pipeline, {'disparity'}).messages) == {
        'disparity'}
    bgr = make_pair(scene, scene.left[:, :, ::-1].copy(), scene.right[:, :, ::-1].copy(),
                    'bgr8')
    left, _, _ = processor.inputs(bgr)
    np.testing.assert_array_equal(left, scene.left)  # back to RGB


def test_bad_encoding_is_named(scene, manager):
    pair = make_pair(scene)
    pair.left_image = array_to_image(scene.disparity, '32FC1', pair.left_image.header,
                                     TYPES.Image)
    with pytest.raises(ImageFormatError,
                       match="left image: encoding '32FC1' is not a camera intensity image"):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})
    pair = make_pair(scene)
    pair.right_image.encoding = 'yuv422'
    with pytest.raises(ImageFormatError, match="right image: encoding 'yuv422' is not supported"
                       r"; stereo input must be one of mono8, 8UC1, mono16, .*bgra8$") as info:
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})
    assert '32FC1' not in str(info.value)


def test_left_right_size_and_kind_mismatch(scene, manager):
    pair = make_pair(scene, right=scene.right[:, :200].copy())
    with pytest.raises(ImageFormatError, match='^left image is 256x128 but right image is '
                                               '200x128: left and right images must be one '
                                               'size$'):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})
    pair = make_pair(scene)
    pair.right_image = array_to_image(scene.right[:, :, 0].copy(), 'mono8',
                                      pair.right_image.header, TYPES.Image)
    with pytest.raises(ImageFormatError, match=r'^left image is rgb8 \(colour\) but right image '
                                               r'is mono8 \(grey\): both cameras must be grey '
                                               'or both colour$'):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})


def test_camera_info_not_matching_the_images(scene, manager):
    small = StereoCameraModel.from_focal_baseline(scene.camera.fx, 0.54, 128, 64)
    pair = make_pair(scene, camera=small)
    with pytest.raises(CalibrationError, match='images are 256x128 but the CameraInfo says '
                                               '128x64'):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})


def test_wrong_sign_baseline(scene, manager):
    pair = make_pair(scene)
    pair.right_info.p[3] = -pair.right_info.p[3]  # positive: left and right swapped
    with pytest.raises(CalibrationError, match='wrong sign'):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})


def test_a_baseline_given_in_centimetres_is_noted_with_each_pair(scene, manager):
    # A 7.5 cm camera whose right P[3] was written in centimetres: 7.5 m is accepted (rigs up
    # to 10 m exist), but every depth comes out 100x too far; the node and process-bag said
    # nothing, while infer and check-camera warned.
    wide = StereoCameraModel.from_focal_baseline(scene.camera.fx, 7.5, 256, 128,
                                                 cx=scene.camera.cx_left)
    output = StereoFrameProcessor(TYPES).process(make_pair(scene, camera=wide), manager.pipeline,
                                                 {'depth/image_rect'})
    assert [note_kind(note) for note in output.notes] == ['camera baseline']
    assert '7.5 cm would be 0.075' in output.notes[0]
    assert StereoFrameProcessor(TYPES).process(make_pair(scene), manager.pipeline,
                                               {'depth/image_rect'}).notes == ()


def test_camera_model_is_cached_until_the_infos_change(scene):
    processor = StereoFrameProcessor(TYPES)
    pair = make_pair(scene)
    first = processor.camera(pair.left_info, pair.right_info)
    assert processor.camera(pair.left_info, pair.right_info) is first
    pair.right_info.p[3] *= 2
    second = processor.camera(pair.left_info, pair.right_info)
    assert second.baseline == pytest.approx(2 * first.baseline)


def test_field_of_view_of_the_roi():
    camera = StereoCameraModel.from_focal_baseline(100.0, 0.5, 201, 100, cx=100.0)
    # The image spans pixel edges -0.5 .. 200.5, i.e. +-100.5 px around cx.
    assert obstacle_field_of_view(camera, None) == pytest.approx(2 * math.atan(1.005),
                                                                 rel=1e-9)
    assert obstacle_field_of_view(camera, (0.0, 0.0, 1.0, 1.0)) == pytest.approx(
        2 * math.atan(1.005), rel=1e-9)
    # The right half: the arc around the axis reaching its outer edge, on both sides.
    right_half = obstacle_field_of_view(camera, (0.5, 0.25, 0.5, 0.5))
    assert right_half == pytest.approx(2 * math.atan(1.005), rel=1e-9)
    # A window off to the right (0.75 .. 1 of the width): its far edge, not its own width.
    off_centre = obstacle_field_of_view(camera, (0.75, 0.0, 0.25, 1.0))
    assert off_centre == pytest.approx(2 * math.atan(1.005), rel=1e-9)
    assert off_centre > 4 * (math.atan(1.005) - math.atan(0.5))
    # A centred window keeps its own angle.
    middle = obstacle_field_of_view(camera, (0.25, 0.0, 0.5, 1.0))
    assert middle == pytest.approx(2 * math.atan(50.25 / 100.0), rel=1e-9)


def test_the_field_of_view_is_the_left_camera_s_horizontal_one():
    # The Range's arc is about the left camera's optical axis (cx_left) and its horizontal
    # focal length (fx): the right camera's cx and fy do not enter it.
    camera = StereoCameraModel(width=201, height=100, fx=100.0, fy=50.0, cx_left=100.0,
                               cx_right=60.0, cy=50.0, baseline=0.5)
    assert obstacle_field_of_view(camera, None) == pytest.approx(2 * math.atan(1.005),
                                                                 rel=1e-9)
    # A window off to the left (0 .. 1/4 of the width): its far edge is the image's left one.
    assert obstacle_field_of_view(camera, (0.0, 0.0, 0.25, 1.0)) == pytest.approx(
        2 * math.atan(1.005), rel=1e-9)
    # A window off to the right (3/4 .. 1): the image's right edge, 100.5 px from cx_left.
    assert obstacle_field_of_view(camera, (0.75, 0.0, 0.25, 1.0)) == pytest.approx(
        2 * math.atan(1.005), rel=1e-9)


def test_the_range_covers_the_searched_window_not_the_whole_image(scene):
    # A window from the middle to 3/4 of the width: the arc reaches its right edge, 64 px
    # from the axis, not the image's, 128 px from it.
    roi = (0.5, 0.0, 0.25, 1.0)
    manager = PipelineManager({**SGBM64, 'obstacle.roi': list(roi)})
    message = StereoFrameProcessor(TYPES).process(
        make_pair(scene), manager.pipeline, {'obstacle/range'}).messages['obstacle/range']
    assert message.field_of_view == pytest.approx(obstacle_field_of_view(scene.camera, roi))
    assert message.field_of_view < 0.6 * obstacle_field_of_view(scene.camera, None)

# ------------------------------------------------------------------ latest-pair slot


def test_slot_keeps_only_the_newest_item_and_counts_drops():
    slot = LatestSlot()
    assert slot.take(timeout=0.01) is None
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken
    assert slot.take(timeout=0) == 2
    assert slot.take(timeout=0.01) is None
    assert (slot.put_count, slot.dropped_count) == (2, 1)


def test_close_wakes_a_waiting_consumer():
    slot = LatestSlot()
    result = []
    thread = threading.Thread(target=lambda: result.append(slot.take(timeout=10)))
    thread.start()
    time.sleep(0.05)
    slot.close()
    thread.join(2)
    assert not thread.is_alive() and result == [None]
    assert slot.put(3) is True and slot.take(timeout=0) is None  # dropped, counted
    assert slot.dropped_count == 1


def test_fast_producer_slow_consumer_drops_old_items_never_queues():
    slot = LatestSlot()
    taken = []
    done = threading.Event()

    def consume():
        while True:
            item = slot.take(timeout=0.05)
            if item is not None:
                taken.append(item)
                time.sleep(0.002)  # slower than the producer
            elif done.is_set():
                return

    consumer = threading.Thread(target=consume)
    consumer.start()
    for number in range(2000):
        slot.put(number)
    done.set()
    consumer.join(10)
    assert taken == sorted(taken) and len(set(taken)) == len(taken)
    assert taken[-1] == 1999  # the newest item is always delivered
    assert len(taken) + slot.dropped_count == slot.put_count == 2000
    assert slot.dropped_count > 1000


# ------------------------------------------------------------------ statistics


def test_monitor_reports_rates_latency_and_resets():
    now = [100.0]
    monitor = ThroughputMonitor(clock=lambda: now[0])
    for _ in range(20):
        monitor.received()
    monitor.dropped(5)
    monitor.skipped('CalibrationError')
    monitor.idle()
    for latency in (0.1, 0.3):
        monitor.processed(latency, 50.0)
    now[0] = 105.0
    stats = monitor.report()
    assert stats['received'] == 20 and stats['input_hz'] == pytest.approx(4.0)
    assert stats['processed'] == 2 and stats['output_hz'] == pytest.approx(0.4)
    assert stats['mean_latency_ms'] == pytest.approx(200.0)
    assert stats['dropped'] == 5 and stats['skipped'] == {'CalibrationError': 1}
    line = format_stats(stats)
    assert '20 pairs in (4.0 Hz)' in line and 'latency 200.0 ms' in line
    assert '5 dropped' in line and '1 CalibrationError' in line
    now[0] = 110.0
    empty = monitor.report()
    assert empty['received'] == 0 and math.isnan(empty['mean_latency_ms'])
    assert (monitor.total_received, monitor.total_processed, monitor.total_skipped) == (20, 2, 1)


# ------------------------------------------------------------------ worker


class Recorder:
    def __init__(self):
        self.published, self.warnings, self.errors, self.infos = [], [], [], []


def make_worker(manager, topics, recorder, pipeline=None, throttle=None):
    return StereoWorker(StereoFrameProcessor(TYPES),
                        lambda: pipeline or manager.pipeline, lambda: topics,
                        recorder.published.append, recorder.warnings.append,
                        recorder.errors.append, throttle=throttle)


def test_worker_publishes_skips_bad_input_and_idles(scene, manager):
    recorder = Recorder()
    topics = {'depth/image_rect'}
    worker = make_worker(manager, topics, recorder)
    assert worker.process_one(make_pair(scene)) is True
    assert list(recorder.published[0]) == ['depth/image_rect']

    bad = make_pair(scene)
    bad.right_info.p[3] = 1.0
    assert worker.process_one(bad) is False
    assert 'wrong sign' in recorder.warnings[0] and not recorder.errors

    topics.clear()  # nobody subscribes: nothing is computed
    assert worker.process_one(make_pair(scene)) is False
    stats = worker.monitor.report()
    assert (stats['processed'], stats['idle'], stats['skipped']) == (
        1, 1, {'CalibrationError': 1})


def test_worker_counts_pairs_whose_views_do_not_match(scene, manager):
    recorder = Recorder()
    worker = make_worker(manager, {'depth/image_rect'}, recorder)
    assert worker.process_one(make_pair(scene)) is True
    black = make_pair(scene, right=np.zeros_like(scene.right))
    assert worker.process_one(black) is True  # published, as unknown
    assert len(recorder.warnings) == 1 and 'views do not match' in recorder.warnings[0]
    stats = worker.monitor.report()
    assert (stats['processed'], stats['unknown']) == (2, 1)
    assert '2 processed (' in format_stats(stats)
    assert (', 1 unknown: views that do not confirm the disparity or look swapped), '
            in format_stats(stats))
    assert 'unknown' not in format_stats(worker.monitor.report())


def test_worker_warns_when_the_obstacle_search_sees_no_depth(scene, manager):
    # sgbm's 64 px measure nothing nearer than f B / 64, above 0.5 m on this camera.
    forward = {'obstacle.range_frame_id': 'stereo_left_forward'}  # no warning about the frame
    blind = PipelineManager({**SGBM64, **forward, 'obstacle.max_range': 0.5}).pipeline
    assert blind.obstacle_range_limits(scene.camera)[0] > 0.5
    recorder = Recorder()
    worker = make_worker(manager, {'obstacle/range'}, recorder, pipeline=blind)
    for _ in range(2):
        assert worker.process_one(make_pair(scene)) is True
    assert len(recorder.warnings) == 1  # throttled
    assert recorder.warnings[0].startswith('the obstacle search sees no depth with this camera')
    message = recorder.published[0]['obstacle/range']
    assert message.min_range == message.max_range
    recorder = Recorder()
    seeing = PipelineManager({**SGBM64, **forward}).pipeline
    make_worker(manager, {'obstacle/range'}, recorder, pipeline=seeing).process_one(
        make_pair(scene))
    assert recorder.warnings == []


def test_worker_warns_once_about_a_range_in_the_image_s_optical_frame(scene, manager):
    recorder = Recorder()
    worker = make_worker(manager, {'obstacle/range', 'depth/image_rect'}, recorder)
    for _ in range(3):
        assert worker.process_one(make_pair(scene)) is True
    assert recorder.published[0]['obstacle/range'].header.frame_id == 'stereo_left'
    assert len(recorder.warnings) == 1
    assert recorder.warnings[0].startswith(
        "obstacle/range is stamped in the left image's frame 'stereo_left', an optical frame")
    assert 'set obstacle.range_frame_id to a forward-x frame' in recorder.warnings[0]
    # Nobody takes the Range: no warning about its frame.
    recorder = Recorder()
    make_worker(manager, {'depth/image_rect'}, recorder).process_one(make_pair(scene))
    assert recorder.warnings == []
    # The image's frame named on purpose (a forward-x image frame): the user's word.
    named = PipelineManager({**SGBM64, 'obstacle.range_frame_id': 'stereo_left'}).pipeline
    recorder = Recorder()
    make_worker(manager, {'obstacle/range'}, recorder, pipeline=named).process_one(
        make_pair(scene))
    assert recorder.published[0]['obstacle/range'].header.frame_id == 'stereo_left'
    assert recorder.warnings == []


def test_worker_warns_about_mono16_that_uses_few_bits(scene, manager):
    # A 12-bit camera published as mono16 without mono16_bit_depth: 4 bits of grey left.
    grey = [(image[:, :, 1].astype(np.uint16) * 16) for image in (scene.left, scene.right)]
    recorder = Recorder()
    worker = make_worker(manager, {'depth/image_rect'}, recorder)
    for _ in range(9):  # a few dark frames are no evidence: the scene may be dark
        assert worker.process_one(make_pair(scene, *grey, encoding='mono16')) is True
    assert recorder.warnings == []
    for _ in range(2):
        assert worker.process_one(make_pair(scene, *grey, encoding='mono16')) is True
    assert len(recorder.warnings) == 1  # one line, throttled
    assert recorder.warnings[0].startswith('16-bit images that use few of their bits: the '
                                           'brightest value of 10 frames is 4080 (12 bits)')
    # One bright frame shows the sensor uses its 16 bits: no more lines.
    sixteen = [image * 16 for image in grey]
    worker.process_one(make_pair(scene, *sixteen, encoding='mono16'))
    worker.throttle = LogThrottle(0.0)
    worker.process_one(make_pair(scene, *grey, encoding='mono16'))
    assert len(recorder.warnings) == 1


def test_a_note_from_both_the_input_and_the_pipeline_is_given_once(scene, manager):
    # The processor's notes on the images and the pipeline's on the pair are one list: a
    # line both make (here the 12-bit mono16 note) is logged once per frame, not twice.
    grey = [(image[:, :, 1].astype(np.uint16) * 16) for image in (scene.left, scene.right)]
    processor = StereoFrameProcessor(TYPES)
    for _ in range(10):
        processor.process(make_pair(scene, *grey, encoding='mono16'), manager.pipeline,
                          {'disparity'})

    class Echoing:
        def process(self, *args, **kwargs):
            result = manager.pipeline.process(*args, **kwargs)
            result.notes += [processor.narrow_16_bit_note(), 'a note of the pipeline only']
            return result

    output = processor.process(make_pair(scene, *grey, encoding='mono16'), Echoing(),
                               {'disparity'})
    note = processor.narrow_16_bit_note()
    assert note is not None and note.startswith('16-bit images that use few of their bits')
    assert output.notes == (note, 'a note of the pipeline only')


def test_log_throttle_keeps_one_timer_per_key():
    now = [100.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle.check(CalibrationError) == 0
    assert throttle.check(CalibrationError) is None
    assert throttle.check(ImageFormatError) == 0  # another kind is not hidden by the first
    now[0] += 4.9
    assert throttle.check(CalibrationError) is None
    now[0] += 0.1
    assert throttle.check(CalibrationError) == 2  # two dropped since the last line
    assert throttle.check(CalibrationError) is None
    assert throttle.check(ImageFormatError) == 0


def test_worker_throttles_bad_input_warnings_per_error_class(scene, manager):
    now = [0.0]
    recorder = Recorder()
    worker = make_worker(manager, {'depth/image_rect'}, recorder,
                         throttle=LogThrottle(5.0, clock=lambda: now[0]))
    wrong_sign = make_pair(scene)
    wrong_sign.right_info.p[3] = 1.0
    bad_encoding = make_pair(scene)
    bad_encoding.left_image.encoding = '32FC1'
    for _ in range(3):  # both problems repeat, interleaved, within the throttle period
        assert worker.process_one(wrong_sign) is False
        assert worker.process_one(bad_encoding) is False
    assert len(recorder.warnings) == 2
    assert 'wrong sign' in recorder.warnings[0] and '32FC1' in recorder.warnings[1]
    now[0] = 5.0
    assert worker.process_one(bad_encoding) is False
    assert len(recorder.warnings) == 3 and '32FC1' in recorder.warnings[2]
    assert '2 more ImageFormatError since the previous ImageFormatError line' in \
        recorder.warnings[2]
    assert worker.monitor.report()['skipped'] == {'CalibrationError': 3,
                                                  'ImageFormatError': 4}


def test_worker_count_of_lines_not_logged_names_their_class(scene, manager):
    """Lines not logged are counted per error class, so the count says the class.

    A size mismatch repeated, then an unsupported encoding (both ImageFormatError) a throttle
    period later: the encoding's line must not call the size mismatches "more like this".
    """
    now = [0.0]
    recorder = Recorder()
    worker = make_worker(manager, {'depth/image_rect'}, recorder,
                         throttle=LogThrottle(5.0, clock=lambda: now[0]))
    sizes = make_pair(scene, right=scene.right[:, :200].copy())
    for _ in range(3):
        assert worker.process_one(sizes) is False
    now[0] = 6.0
    bad_encoding = make_pair(scene)
    bad_encoding.left_image.encoding = 'yuv422'
    assert worker.process_one(bad_encoding) is False
    assert len(recorder.warnings) == 2 and 'must be one size' in recorder.warnings[0]
    assert 'yuv422' in recorder.warnings[1] and 'like this' not in recorder.warnings[1]
    assert '(2 more ImageFormatError since the previous ImageFormatError line, not logged)' \
        in recorder.warnings[1]


def test_worker_survives_a_crashing_backend(scene, manager):
    class Broken:
        backend = manager.pipeline.backend
        obstacle_params = manager.pipeline.obstacle_params

        def process(self, *args, **kwargs):
            raise RuntimeError('CUDA error: an illegal memory access')

    recorder = Recorder()
    worker = make_worker(manager, {'depth/image_rect'}, recorder, pipeline=Broken())
    assert worker.process_one(make_pair(scene)) is False
    assert recorder.errors == ['processing a stereo pair failed: RuntimeError: CUDA error: '
                               'an illegal memory access']


def test_worker_thread_processes_the_newest_pair(scene, manager):
    recorder = Recorder()
    worker = make_worker(manager, {'disparity'}, recorder)
    worker.start()
    try:
        for index in range(5):  # faster than SGBM: some are dropped, the last one is processed
            worker.submit(make_pair(scene, stamp_ns=STAMP_NS + index))
        deadline = time.monotonic() + 20
        while worker.slot.put_count > len(recorder.published) + worker.slot.dropped_count:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        worker.stop()
    stats = worker.monitor.report()
    assert stats['received'] == 5
    assert stats['processed'] + stats['dropped'] == 5 and stats['processed'] >= 1
    assert len(recorder.published) == stats['processed']
    stamp = recorder.published[-1]['disparity'].header.stamp
    assert stamp.sec * 10**9 + stamp.nanosec == STAMP_NS + 4  # the newest pair, not an old one


def test_the_frame_processor_refuses_pairs_above_its_size_limit(scene):
    processor = StereoFrameProcessor(TYPES, max_megapixels=0.001, limit_option='max_megapixels')
    pair = make_pair(scene)
    with pytest.raises(ImageFormatError, match='raise the limit with max_megapixels'):
        processor.inputs(pair)
    assert StereoFrameProcessor(TYPES).inputs(pair)[0].shape[:2] == scene.disparity.shape


def test_the_frame_processor_names_empty_and_cut_compressed_images(scene):
    # The node reads a compressed image's size before decoding it; an empty message and a
    # PNG cut after its signature were both called "neither a PNG nor a JPEG" there.
    processor = StereoFrameProcessor(TYPES, max_megapixels=4.0, limit_option='max_megapixels')
    empty = "left image: compressed image (format 'rgb8; png compressed bgr8') has no data"
    for data, words in ((b'', empty),
                        (b'\x89PNG\r\n\x1a\n' + b'x' * 100, 'a truncated or corrupt PNG'),
                        (b'\xff\xd8\xff\xe0' + bytes(30), 'a truncated or corrupt JPEG'),
                        (b'GIF89a' + bytes(30), 'is neither a PNG nor a JPEG')):
        pair = make_pair(scene)
        pair.left_image = array_to_compressed(scene.left, 'rgb8', pair.left_image.header,
                                              TYPES, 'png')
        pair.right_image = array_to_compressed(scene.right, 'rgb8', pair.right_image.header,
                                               TYPES, 'png')
        processor.inputs(pair)
        pair.left_image.data = np.frombuffer(data, np.uint8)
        with pytest.raises(ImageFormatError) as refused:
            processor.inputs(pair)
        assert words in str(refused.value)


def test_the_size_limit_covers_the_right_image_too(scene):
    processor = StereoFrameProcessor(TYPES, max_megapixels=0.04, limit_option='max_megapixels')
    processor.inputs(make_pair(scene))  # 256x128: 0.033 MP
    big = np.zeros((256, 512, 3), np.uint8)
    pair = make_pair(scene, right=big)
    with pytest.raises(ImageFormatError, match='images are 512x256 .* raise the limit'):
        processor.inputs(pair)


def compress_pair(pair, codec='png'):
    """The pair with both images as image_transport's compressed transport sends them."""
    for side in ('left_image', 'right_image'):
        raw = getattr(pair, side)
        pixels, encoding = image_to_array(raw)
        setattr(pair, side, array_to_compressed(pixels, encoding, raw.header, TYPES, codec))
    return pair


def test_compressed_pairs_give_the_outputs_of_raw_ones(scene, manager):
    processor = StereoFrameProcessor(TYPES)
    topics = {'disparity', 'depth/image_rect'}
    raw = processor.process(make_pair(scene), manager.pipeline, topics).messages
    png = processor.process(compress_pair(make_pair(scene)), manager.pipeline, topics).messages
    np.testing.assert_array_equal(image_to_array(png['depth/image_rect'])[0],
                                  image_to_array(raw['depth/image_rect'])[0])
    np.testing.assert_array_equal(disparity_from_message(png['disparity'])[0],
                                  disparity_from_message(raw['disparity'])[0])
    grey = compress_pair(make_pair(scene, scene.left[:, :, 1].copy(),
                                   scene.right[:, :, 1].copy(), 'mono8'), 'jpeg')
    disparity, _, _ = disparity_from_message(
        processor.process(grey, manager.pipeline, {'disparity'}).messages['disparity'])
    inside = np.isfinite(disparity) & (scene.disparity > 0)
    assert np.median(np.abs(disparity - scene.disparity)[inside]) < 1.0


def test_bad_compressed_input_is_named(scene, manager, monkeypatch):
    processor = StereoFrameProcessor(TYPES, max_megapixels=0.02, limit_option='max_megapixels')
    pair = compress_pair(make_pair(scene))
    # The limit is checked on the PNG header's size, before anything is decoded.
    with monkeypatch.context() as patch:
        patch.setattr(cv2, 'imdecode', lambda *args: pytest.fail('decoded before the check'))
        with pytest.raises(ImageFormatError, match='images are 256x128 .*max_megapixels 0.1'):
            processor.inputs(pair)
    pair = compress_pair(make_pair(scene))
    pair.right_image.data = pair.right_image.data[:40]
    with pytest.raises(ImageFormatError, match=r"^right image: cannot decode the compressed "
                                               r"image \(format 'rgb8; png compressed bgr8'"):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})
    pair = make_pair(scene)
    pair.right_image = array_to_compressed(scene.right[:, :, 0].copy(), 'mono8',
                                           pair.right_image.header, TYPES)
    with pytest.raises(ImageFormatError, match=r"left image is rgb8 \(colour\) but right image "
                                               r"is 'mono8; png compressed mono8' compressed "
                                               r"\(grey\)"):
        StereoFrameProcessor(TYPES).process(pair, manager.pipeline, {'depth/image_rect'})


def test_a_binned_camera_gets_metric_depth(scene, manager):
    # image_proc's crop_decimate halves the images and sets binning 2 in their CameraInfo.
    pair = make_pair(scene)
    pixels = [cv2.resize(image, (128, 64), interpolation=cv2.INTER_AREA)
              for image in (scene.left, scene.right)]
    pair.left_image, pair.right_image = (array_to_image(image, 'rgb8', pair.left_image.header,
                                                        TYPES.Image) for image in pixels)
    for info in (pair.left_info, pair.right_info):
        info.binning_x = info.binning_y = 2
    # One processor: the model it cached for the full-size camera must not be reused.
    processor = StereoFrameProcessor(TYPES)
    processor.process(make_pair(scene), manager.pipeline, {'depth/image_rect'})
    messages = processor.process(pair, manager.pipeline, {'depth/image_rect'}).messages
    depth = image_to_array(messages['depth/image_rect'])[0]
    truth = scene.camera.focal_baseline / scene.disparity[::2, ::2]
    valid = np.isfinite(depth) & np.isfinite(truth)
    assert depth.shape == (64, 128) and valid.mean() > 0.3
    # Half the resolution, twice the relative error of test_good_pair...; without the
    # binning applied the half-size images would not even match the CameraInfo.
    assert np.median(np.abs(depth[valid] - truth[valid]) / truth[valid]) < 0.1


def checked_worker(manager):
    """A worker whose pair checks are 10 s apart on a clock the test sets (``now[0]``)."""
    now = [0.0]
    processor = StereoFrameProcessor(TYPES, check_period=10.0, clock=lambda: now[0])
    recorder = Recorder()
    worker = StereoWorker(processor, lambda: manager.pipeline, lambda: {'depth/image_rect'},
                          recorder.published.append, recorder.warnings.append,
                          recorder.errors.append, throttle=LogThrottle(clock=lambda: now[0]),
                          info=recorder.infos.append)
    return now, processor, recorder, worker


def published_depth(recorder):
    """The depth image of the last set of messages the recorder got."""
    return image_to_array(recorder.published[-1]['depth/image_rect'])[0]


def test_a_swapped_stream_comes_out_unknown_until_a_check_finds_it_right(scene, manager):
    # A swapped pair's obstacles are phantoms (1-4 m on a real camera): from the check that
    # finds it on, the node publishes unknown, until a check finds the pair the right way round.
    # Checks run before the pair until one can tell, and while the pairs look swapped, then
    # every check_retry (1 s) instead of every check_period (10 s).
    now, processor, recorder, worker = checked_worker(manager)
    swapped = make_pair(scene, scene.right, scene.left)
    assert worker.process_one(swapped)
    assert np.isnan(published_depth(recorder)).all()
    assert len(recorder.warnings) == 1  # the check's; the pair's note is throttled with it
    assert recorder.warnings[0].startswith('left and right look swapped (the best match')
    assert recorder.warnings[0].endswith('; pairs come out unknown until a check (every 1 s '
                                         'while they look swapped) finds them the right way '
                                         'round')
    now[0] = 0.5  # no check due: unknown as the last check said
    output = processor.process(swapped, manager.pipeline, {'depth/image_rect'})
    assert output.check_inputs is None and output.early_check is None
    assert output.views_unconfirmed
    now[0] = 1.0  # a featureless frame cannot tell: the stream stays swapped
    flat = np.full_like(scene.left, 128)
    assert worker.process_one(make_pair(scene, flat, flat)) and processor.swapped
    now[0] = 2.0
    assert worker.process_one(swapped) and processor.swapped
    assert worker.monitor.total_unknown == 3 and len(recorder.warnings) == 1
    now[0] = 5.0
    assert worker.process_one(swapped) and len(recorder.warnings) == 2
    assert recorder.warnings[1].startswith('left and right look swapped (the best match')
    assert recorder.warnings[1].endswith('more like this since the previous line, not logged)')
    now[0] = 6.0  # fixed: the check before this pair says so, and the node says it once
    assert worker.process_one(make_pair(scene)) and not processor.swapped
    assert np.isfinite(published_depth(recorder)).mean() > 0.5
    assert recorder.infos == ['left and right no longer look swapped: pairs come out as '
                              'measured again']
    now[0] = 7.0  # the next check is due at 16 s
    assert processor.process(make_pair(scene), manager.pipeline,
                             {'depth/image_rect'}).check_inputs is None
    assert len(recorder.warnings) == 2 and not recorder.errors
    now[0] = 16.0
    assert worker.process_one(make_pair(scene)) and len(recorder.infos) == 1


def test_process_bag_s_checks_cost_a_mistaken_swap_a_pair_and_catch_a_late_one(scene,
                                                                               manager):
    # process-bag checks until a check can tell (check_retry 0) and never again after one
    # that says "not swapped" (check_period inf); a check that says swapped is repeated.
    topics = {'depth/image_rect'}
    swapped = make_pair(scene, scene.right, scene.left)
    processor = StereoFrameProcessor(TYPES, check_retry=0.0)
    assert processor.process(swapped, manager.pipeline, topics).views_unconfirmed
    fixed = processor.process(make_pair(scene), manager.pipeline, topics)
    assert not fixed.views_unconfirmed and fixed.early_check is not None
    assert processor.process(make_pair(scene), manager.pipeline, topics).early_check is None
    # A first pair that cannot tell: the swapped pair after it is checked before it too.
    processor = StereoFrameProcessor(TYPES, check_retry=0.0)
    flat = np.full_like(scene.left, 128)
    processor.process(make_pair(scene, flat, flat), manager.pipeline, topics)
    late = processor.process(swapped, manager.pipeline, topics)
    assert late.views_unconfirmed and late.early_check.swapped


def test_an_unknown_pair_s_range_is_nan_with_its_limits_equal(scene, manager):
    # NaN over a real interval would pass nav2's range checks (comparisons with NaN are
    # false) into its costmap update; with equal limits it is dropped as a fixed ranger's.
    for pair in (make_pair(scene, scene.right, scene.left),  # swapped
                 make_pair(scene, scene.left, np.zeros_like(scene.right))):  # black right
        message = StereoFrameProcessor(TYPES).process(
            pair, manager.pipeline, {'obstacle/range'}).messages['obstacle/range']
        assert math.isnan(message.range) and message.min_range == message.max_range > 0


def test_a_swapped_stream_is_only_warned_about_without_check_views(scene):
    now, _, recorder, worker = checked_worker(PipelineManager({**SGBM64, 'check_views': False}))
    swapped = make_pair(scene, scene.right, scene.left)
    for now[0] in (0.0, 1.0):
        assert worker.process_one(swapped)
        assert np.isfinite(published_depth(recorder)).any()
    assert len(recorder.warnings) == 1
    assert recorder.warnings[0].endswith('which to right/image_rect')


def test_the_swap_check_knows_the_cameras_principal_points():
    # A rig with cx_right 40 px right of cx_left: disparities are those of the scene minus
    # 40 px, negative for all of it, and rightly so; no warning.
    near = make_scene(3, 128, 256, kind='layered', max_disparity=24)
    camera = dataclasses.replace(near.camera, cx_right=near.camera.cx_left + 40)
    right = np.roll(near.right, 40, axis=1)  # right[:, u] = near.right[:, u - 40]
    right[:, :40] = near.right[:, :1]
    _, _, recorder, worker = checked_worker(PipelineManager({**SGBM64,
                                                            'sgbm.min_disparity': -48}))
    assert worker.process_one(make_pair(near, right=right, camera=camera))
    assert recorder.warnings == [] and recorder.errors == []
    # The same images under a camera without the offset do look swapped.
    _, _, recorder, worker = checked_worker(PipelineManager(SGBM64))
    assert worker.process_one(make_pair(near, right=right))
    assert recorder.warnings[0].startswith('left and right look swapped')


def test_the_node_warns_about_rows_that_are_off(scene, manager):
    now, _, recorder, worker = checked_worker(manager)
    assert worker.process_one(make_pair(scene)) and recorder.warnings == []
    now[0] = 10.0
    low = make_pair(scene, right=np.roll(scene.right, 2, axis=0))  # content 2 px lower
    assert worker.process_one(low)  # still processed and published
    assert len(recorder.warnings) == 1
    prefix = 'rows of the right image are '  # the log level says "warning"
    assert recorder.warnings[0].startswith(prefix)
    assert float(recorder.warnings[0][len(prefix):].split()[0]) == pytest.approx(2.0, abs=0.2)
    assert 'shows the scene lower' in recorder.warnings[0]
    now[0] = 15.0  # not checked again before the period is over
    assert worker.process_one(low) and len(recorder.warnings) == 1


def test_the_rows_warning_says_resampled_only_where_the_pair_is(scene, manager, monkeypatch):
    # A rotation or scale between the views can be 2 px off at the worst corner while its
    # typical corner is under ALIGN_FROM_PX: warned about, but not resampled, and not said to.
    height, width = scene.left.shape[:2]
    offset = plausibility.RowOffset(typical=0.15, largest=2.4, lower=True, matches=400,
                                    plane=(0.0, 0.0, 6.6), shape=(height, width))
    found = plausibility.PairCheck(swapped=False, row_offset=offset)
    monkeypatch.setattr(processing, 'check_pair', lambda *args, **kwargs: found)
    _, _, recorder, worker = checked_worker(manager)
    assert worker.process_one(make_pair(scene))
    assert len(recorder.warnings) == 1 and 'up to 2.4 px' in recorder.warnings[0]
    assert 'resampled' not in recorder.warnings[0]
    assert 'much worse - check the rectification' in recorder.warnings[0]


def test_the_node_says_once_when_it_starts_and_stops_aligning_rows(scene, manager, monkeypatch):
    # Rows 0.25-1 px off get no warning, but the user learns that the pairs are resampled.
    height, width = scene.left.shape[:2]
    checks = []
    monkeypatch.setattr(processing, 'check_pair', lambda *args, **kwargs: checks[-1])

    def found(typical):
        offset = plausibility.RowOffset(typical=typical, largest=typical, lower=True,
                                        matches=400, plane=(typical, 0.0, 0.0),
                                        shape=(height, width))
        checks.append(plausibility.PairCheck(swapped=False, row_offset=offset))

    now, _, recorder, worker = checked_worker(manager)
    found(0.1)  # nothing to say: matched as it comes
    assert worker.process_one(make_pair(scene)) and recorder.infos == []
    for at, typical in ((10.0, 0.4), (20.0, 0.5), (30.0, 0.1)):
        now[0] = at
        found(typical)
        assert worker.process_one(make_pair(scene))
    assert recorder.infos == [
        "rows of the right view are 0.40 px off the left's at a typical matched corner: it is "
        "resampled onto the left's rows before matching (align_rows)",
        "rows of the right view are on the left's again: it is matched as it comes"]
    assert recorder.warnings == []


def checks_find_rows_off(scene, monkeypatch, typical=0.4, **fields):
    """Make every pair check find the rows ``typical`` px off; return the checks' arguments."""
    height, width = scene.left.shape[:2]
    fields = {'largest': typical, 'plane': (typical, 0.0, 0.0), **fields}
    offset = plausibility.RowOffset(typical=typical, lower=True, matches=400,
                                    shape=(height, width), **fields)
    checks = []

    def check_pair(*args, **kwargs):
        checks.append(args)
        return plausibility.PairCheck(swapped=False, row_offset=offset)
    monkeypatch.setattr(processing, 'check_pair', check_pair)
    return checks


def test_rows_off_on_average_but_not_at_the_typical_corner_are_aligned_and_said(
        scene, manager, monkeypatch):
    # A scale between the views: the middle rows, with most corners, are on the left's, the
    # top and bottom ones off. The info line gives both figures.
    checks_find_rows_off(scene, monkeypatch, 0.12, largest=0.9, plane=(0.0, 0.0, 1.6),
                         surely_off=0.36)
    _, _, recorder, worker = checked_worker(manager)
    assert worker.process_one(make_pair(scene))
    assert recorder.infos == [
        "rows of the right view are 0.12 px off the left's at a typical matched corner and at "
        "least 0.36 px on average over the image: it is resampled onto the left's rows before "
        "matching (align_rows)"]
    assert recorder.warnings == []


def test_turning_align_rows_off_is_not_said_as_rows_back_on_the_left_s(scene, monkeypatch):
    # The rows are still 0.4 px off: only the setting changed, and the line says so.
    checks_find_rows_off(scene, monkeypatch)
    manager = PipelineManager(SGBM64)
    now, _, recorder, worker = checked_worker(manager)
    assert worker.process_one(make_pair(scene)) and len(recorder.infos) == 1
    manager.apply({'align_rows': False})
    now[0] = 10.0
    assert worker.process_one(make_pair(scene))
    assert recorder.infos[1:] == [
        "align_rows is off: the right view is matched as it comes (its rows are 0.40 px off "
        "the left's at a typical matched corner)"]


def test_align_rows_set_at_run_time_is_said_with_the_next_pair_not_the_next_check(
        scene, monkeypatch):
    # The outputs change with the next pair; so does the line, not up to 10 s later.
    checks = checks_find_rows_off(scene, monkeypatch)
    manager = PipelineManager(SGBM64)
    now, _, recorder, worker = checked_worker(manager)
    assert worker.process_one(make_pair(scene)) and len(recorder.infos) == 1
    for at, setting in ((1.0, False), (2.0, True)):
        manager.apply({'align_rows': setting})
        now[0] = at
        assert worker.process_one(make_pair(scene))
    assert len(checks) == 1  # no check was due: the first pair's offset holds
    assert recorder.infos[1:] == [
        "align_rows is off: the right view is matched as it comes (its rows are 0.40 px off "
        "the left's at a typical matched corner)",
        "rows of the right view are 0.40 px off the left's at a typical matched corner: it is "
        "resampled onto the left's rows before matching (align_rows)"]


def test_a_node_started_with_align_rows_off_says_the_rows_are_off_once(scene, monkeypatch):
    checks_find_rows_off(scene, monkeypatch)
    manager = PipelineManager({**SGBM64, 'align_rows': False})
    now, _, recorder, worker = checked_worker(manager)
    for at in (0.0, 10.0, 20.0):  # three checks, one line
        now[0] = at
        assert worker.process_one(make_pair(scene))
    assert recorder.infos == [
        "align_rows is off: the right view is matched as it comes (its rows are 0.40 px off "
        "the left's at a typical matched corner)"]


def test_the_range_can_be_stamped_in_a_forward_frame(scene):
    manager = PipelineManager({**SGBM64, 'obstacle.range_frame_id': 'stereo_left_forward'})
    pair = make_pair(scene)
    messages = StereoFrameProcessor(TYPES).process(
        pair, manager.pipeline, {'obstacle/range', 'obstacle/mask', 'depth/image_rect'}).messages
    message = messages['obstacle/range']
    assert message.header.frame_id == 'stereo_left_forward'
    assert message.header.stamp == pair.left_image.header.stamp
    assert message.range == pytest.approx(scene.obstacle_distance, rel=0.1)
    for other in ('obstacle/mask', 'depth/image_rect'):  # the images stay in their own frame
        assert messages[other].header == pair.left_image.header


def test_a_check_that_cannot_measure_the_rows_is_tried_again(scene, manager):
    # As process-bag runs it (one check only): a featureless first frame does not use it up.
    now = [0.0]
    processor = StereoFrameProcessor(TYPES, clock=lambda: now[0])
    topics = {'depth/image_rect'}
    flat = np.full_like(scene.left, 128)
    found = processor.check(processor.process(make_pair(scene, flat, flat), manager.pipeline,
                                              topics))
    assert found is not None and not found.swapped and found.row_offset is None
    now[0] = 0.5  # tried again after CHECK_RETRY_S, not at once
    assert processor.process(make_pair(scene), manager.pipeline, topics).check_inputs is None
    now[0] = 1.0
    low = make_pair(scene, right=np.roll(scene.right, 2, axis=0))
    assert processor.check(processor.process(low, manager.pipeline, topics)).misaligned
    now[0] = 100.0  # measured: no check again
    assert processor.process(low, manager.pipeline, topics).check_inputs is None


def test_the_latest_check_is_one_that_could_tell_else_the_latest(scene, manager):
    # process-bag's summary reports it: a bag of featureless pairs says its rows could not
    # be measured (the check that could not tell), a measured one keeps what was measured.
    now = [0.0]
    processor = StereoFrameProcessor(TYPES, clock=lambda: now[0], check_period=1.0)
    topics = {'depth/image_rect'}
    assert processor.latest_check is None
    flat = np.full_like(scene.left, 128)
    blank = processor.check(processor.process(make_pair(scene, flat, flat), manager.pipeline,
                                              topics))
    assert processor.latest_check is blank and blank.row_offset is None
    now[0] = 1.0
    measured = processor.check(processor.process(make_pair(scene), manager.pipeline, topics))
    assert measured.row_offset is not None and processor.latest_check is measured
    now[0] = 2.0  # the next check, on a blank pair, does not replace it
    assert processor.check(processor.process(make_pair(scene, flat, flat), manager.pipeline,
                                             topics)).row_offset is None
    assert processor.latest_check is measured


def test_the_node_checks_a_pair_after_publishing_it_but_the_first_before(scene, manager,
                                                                         monkeypatch):
    now, processor, recorder, worker = checked_worker(manager)
    published_before_check = []

    def check_pair(*args):
        published_before_check.append(len(recorder.published))
        return plausibility.check_pair(*args)

    monkeypatch.setattr(processing, 'check_pair', check_pair)
    assert worker.process_one(make_pair(scene))
    now[0] = 10.0
    assert worker.process_one(make_pair(scene))
    assert published_before_check == [0, 2]


def test_a_first_check_that_raises_is_run_again_after_publishing(scene, manager, monkeypatch):
    _, processor, recorder, worker = checked_worker(manager)

    def broken(*args):
        raise RuntimeError('cv2 said no')

    monkeypatch.setattr(processing, 'check_pair', broken)
    assert worker.process_one(make_pair(scene))
    assert len(recorder.published) == 1 and not processor.swapped
    assert recorder.errors == ['checking a stereo pair failed: RuntimeError: cv2 said no']


def test_another_camera_is_checked_before_its_first_pair(scene, manager):
    # A bag switched, or looped onto another whose left and right are exchanged: its first
    # pair is checked before it is processed, as a stream's first pair is, not a check
    # period later.
    now = [0.0]
    processor = StereoFrameProcessor(TYPES, check_period=10.0, clock=lambda: now[0])
    topics = {'depth/image_rect'}
    first = processor.process(make_pair(scene), manager.pipeline, topics)
    assert first.early_check is not None and not first.early_check.swapped
    now[0] = 0.5
    assert processor.process(make_pair(scene), manager.pipeline, topics).early_check is None
    other = StereoCameraModel.from_focal_baseline(scene.camera.fx, 0.3, scene.camera.width,
                                                  scene.camera.height)
    now[0] = 1.0
    swapped = processor.process(make_pair(scene, left=scene.right, right=scene.left,
                                          camera=other), manager.pipeline, topics)
    assert swapped.early_check is not None and swapped.early_check.swapped
    assert swapped.views_unconfirmed and processor.swapped


def test_a_changed_calibration_is_named_with_its_first_pair(scene, manager):
    # A driver republishing another fx halved every depth without a word in the log.
    processor = StereoFrameProcessor(TYPES)
    topics = {'depth/image_rect'}
    calibration_notes = [
        [note for note in processor.process(make_pair(scene, camera=camera), manager.pipeline,
                                            topics).notes if note.startswith('camera calib')]
        for camera in (scene.camera, scene.camera, dataclasses.replace(scene.camera, fx=250.0),
                       dataclasses.replace(scene.camera, fx=250.0))]
    assert calibration_notes[:2] == [[], []] and calibration_notes[3] == []
    assert calibration_notes[2] == [
        f'camera calibration changed: fx {scene.camera.fx:g} -> 250 px; depths follow the new '
        'calibration']
    # A change whose first pair fails is said with the next pair processed, against the
    # calibration before it.
    failing = StereoPipeline(ConstantBackend(3.0, 16.0))
    failing.process = lambda *args, **kwargs: 1 / 0
    with pytest.raises(ZeroDivisionError):
        processor.process(make_pair(scene, camera=dataclasses.replace(scene.camera, fx=300.0)),
                          failing, topics)
    later = processor.process(make_pair(scene, camera=dataclasses.replace(scene.camera,
                                                                          fx=320.0)),
                              manager.pipeline, topics).notes
    assert [note for note in later if note.startswith('camera calib')] == [
        'camera calibration changed: fx 250 -> 320 px; depths follow the new calibration']


def test_a_new_camera_s_16_bit_images_are_judged_on_their_own(scene, manager):
    # A full-range frame of one camera said nothing about the next camera's 12-bit images.
    twelve = [(image[:, :, 1].astype(np.uint16) * 16) for image in (scene.left, scene.right)]
    sixteen = [image * 16 for image in twelve]
    processor = StereoFrameProcessor(TYPES)
    processor.process(make_pair(scene, *sixteen, encoding='mono16'), manager.pipeline,
                      {'disparity'})
    other = StereoCameraModel.from_focal_baseline(scene.camera.fx, 0.3, scene.camera.width,
                                                  scene.camera.height)
    notes = []
    for _ in range(NARROW_16_BIT_FRAMES):
        notes = processor.process(make_pair(scene, *twelve, encoding='mono16', camera=other),
                                  manager.pipeline, {'disparity'}).notes
    assert any(note.startswith('16-bit images that use few of their bits') for note in notes)


def test_the_range_frame_warning_goes_by_the_published_message(scene):
    # The settings changed while the pair was processed: the Range went out in the frame
    # that was set then, which is no optical frame; no warning.
    forward = PipelineManager({**SGBM64, 'obstacle.range_frame_id': 'base_link'}).pipeline
    optical = PipelineManager(SGBM64).pipeline
    pipelines = iter([forward, optical, optical])
    recorder = Recorder()
    worker = StereoWorker(StereoFrameProcessor(TYPES), lambda: next(pipelines),
                          lambda: {'obstacle/range'}, recorder.published.append,
                          recorder.warnings.append, recorder.errors.append)
    assert worker.process_one(make_pair(scene))
    assert recorder.published[0]['obstacle/range'].header.frame_id == 'base_link'
    assert not [line for line in recorder.warnings if 'obstacle/range is stamped' in line]


def test_a_pair_the_pipeline_fails_on_leaves_the_due_check_for_the_next(scene, manager):
    now = [0.0]
    processor = StereoFrameProcessor(TYPES, check_period=10.0, clock=lambda: now[0])
    topics = {'depth/image_rect'}
    first = processor.process(make_pair(scene), manager.pipeline, topics)
    assert first.early_check is not None and first.early_check.row_offset is not None

    class Failing:
        def process(self, *args, **kwargs):
            raise RuntimeError('backend failed')

    now[0] = 10.0  # the next check is due on this pair, which fails
    with pytest.raises(RuntimeError):
        processor.process(make_pair(scene), Failing(), topics)
    now[0] = 10.5
    assert processor.process(make_pair(scene), manager.pipeline, topics).check_inputs is not None
    now[0] = 11.0  # and then not again until 10 s after it
    assert processor.process(make_pair(scene), manager.pipeline, topics).check_inputs is None


def test_a_check_that_raises_does_not_stop_the_worker(scene, manager):
    _, processor, recorder, worker = checked_worker(manager)

    def broken(output):
        raise RuntimeError('cv2 said no')

    processor.check = broken
    assert worker.process_one(make_pair(scene))
    assert len(recorder.published) == 1
    assert recorder.errors == ['checking a stereo pair failed: RuntimeError: cv2 said no']


def test_a_search_range_shut_by_the_backends_reach_gives_no_obstacle_not_an_error(scene):
    # sgbm.min_disparity 32 sees nothing farther than f B / 32; obstacle.min_range above it.
    far = scene.camera.focal_baseline / 32
    manager = PipelineManager({**SGBM64, 'sgbm.min_disparity': 32,
                               'obstacle.min_range': far * 1.5})
    message = StereoFrameProcessor(TYPES).process(
        make_pair(scene), manager.pipeline, {'obstacle/range'}).messages['obstacle/range']
    # No valid reading (not "nothing within range"), and a Range whose limits are in order.
    assert math.isnan(message.range) and message.min_range == message.max_range


def test_a_worker_stopped_in_a_long_pair_says_it_is_still_busy(scene, manager):
    """The node then leaves at once: Python would stop the thread in native code and abort."""
    import threading
    release = threading.Event()
    started = threading.Event()

    class Slow:
        backend = manager.pipeline.backend
        obstacle_params = manager.pipeline.obstacle_params

        def process(self, *args, **kwargs):
            started.set()
            release.wait(20)
            raise RuntimeError('released')

    worker = make_worker(manager, {'disparity'}, Recorder(), pipeline=Slow())
    worker.start()
    worker.submit(make_pair(scene))
    assert started.wait(20)
    worker.stop(0.05)
    assert worker.busy  # the pair outlasted the wait
    release.set()
    deadline = time.monotonic() + 20
    while worker.busy:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    quick = make_worker(manager, {'disparity'}, Recorder())
    quick.start()
    quick.stop()
    assert not quick.busy
