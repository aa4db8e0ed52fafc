"""kitti2bag, process-bag and the synchronizer, through both rosbag2 storage plugins."""

from pathlib import Path
import shutil

import cv2
import numpy as np
import pytest
import yaml
from rosbags.interfaces import ConnectionExtRosbag2
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.bags import (BagInput, BagWriter, find_stereo_images, find_stereo_topics,
                                   kitti_to_bag, process_bag, STORAGE_PLUGINS)
from stereo_depth_ros.bags import mcap_scan
from stereo_depth_ros.bags.extract import extract_pairs
from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.cli import main
from stereo_depth_ros.errors import DatasetError, ImageFormatError, StereoDepthError
from stereo_depth_ros.kitti import write_raw_drive
from stereo_depth_ros.msgs.images import array_to_compressed, array_to_image, image_to_array
from stereo_depth_ros.msgs.points import point_cloud2_to_arrays
from stereo_depth_ros.msgs.stereo import disparity_from_message, make_camera_infos
from stereo_depth_ros.msgs.types import make_header, MessageTypes, stamp_to_ns
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.processing import note_kind
from stereo_depth_ros.sync import ApproximateTimeSynchronizer, never_matched, TimeSynchronizer
from stereo_depth_ros.training.row_offset_sweep import moved_down

WIDTH, HEIGHT, SHIFT = 96, 64, 6
CAMERA = StereoCameraModel(WIDTH, HEIGHT, 80.0, 80.0, 47.5, 47.5, 31.5, 0.3)
START_NS = 1_317_042_145_964_389_445
FRAMES = 3
JITTER_NS = 2_000_000


def textured_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fronto-parallel textured plane: disparity SHIFT everywhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (HEIGHT // 2, (WIDTH + SHIFT) // 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    return texture[:, :WIDTH].copy(), texture[:, SHIFT:SHIFT + WIDTH].copy()


PAIRS = [textured_pair(seed) for seed in range(FRAMES)]


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    """A KITTI raw drive (camera 2 offset from camera 0) whose right stamps lag by 2 ms."""
    stamps = [START_NS + i * 100_000_000 for i in range(FRAMES)]
    return write_raw_drive(tmp_path_factory.mktemp('kitti'), [p[0] for p in PAIRS],
                           [p[1] for p in PAIRS], CAMERA, stamps,
                           right_stamps_ns=[s + JITTER_NS for s in stamps])


@pytest.fixture(scope='module', params=['mcap', 'sqlite3'])
def kitti_bag(request, drive, tmp_path_factory):
    """kitti2bag output of the drive in each storage format."""
    path = tmp_path_factory.mktemp('bags') / f'kitti_{request.param}'
    kitti_to_bag(drive, path, storage=request.param, progress=False)
    return path


def read_bag(path, store=Stores.ROS2_JAZZY):
    """topic -> list of (log time, message), read with plain rosbags."""
    typestore = get_typestore(store)
    messages = {}
    with Reader(path) as reader:
        for connection, log_time, data in reader.messages():
            msg = typestore.deserialize_cdr(data, connection.msgtype)
            messages.setdefault(connection.topic, []).append((log_time, msg))
    return messages


def sgbm_pipeline():
    """A small-range SGBM pipeline for the tiny test images."""
    return StereoPipeline(create_backend('sgbm', disparity_range=16))


class SecondPairBad(StereoPipeline):
    """An SGBM pipeline that refuses the second pair as bad input."""

    calls = 0

    def process(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise ImageFormatError('a bad pair, made up by the test')
        return super().process(*args, **kwargs)


# --------------------------------------------------------------------------- kitti2bag


def test_kitti2bag_metadata_is_readable_by_humble_and_jazzy(kitti_bag):
    info = yaml.safe_load((kitti_bag / 'metadata.yaml').read_text())
    info = info['rosbag2_bagfile_information']
    assert info['version'] == 8
    assert info['storage_identifier'] in ('mcap', 'sqlite3')
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    assert sorted(topics) == ['/stereo/left/camera_info', '/stereo/left/image_rect',
                              '/stereo/right/camera_info', '/stereo/right/image_rect',
                              '/tf_static']
    assert topics['/stereo/left/image_rect']['message_count'] == FRAMES
    for entry in topics.values():
        qos = entry['topic_metadata']['offered_qos_profiles']
        assert isinstance(qos, str)  # Humble reads the profiles as a YAML string
        profile = yaml.safe_load(qos)[0]
        assert profile['reliability'] == 1 and profile['history'] == 1
    tf_qos = yaml.safe_load(topics['/tf_static']['topic_metadata']['offered_qos_profiles'])[0]
    image_qos = yaml.safe_load(
        topics['/stereo/left/image_rect']['topic_metadata']['offered_qos_profiles'])[0]
    assert tf_qos['durability'] == 1 and image_qos['durability'] == 2  # latched vs volatile


def test_kitti2bag_images_calibration_and_stamps(kitti_bag):
    messages = read_bag(kitti_bag)
    for side, index in (('left', 0), ('right', 1)):
        images = messages[f'/stereo/{side}/image_rect']
        infos = messages[f'/stereo/{side}/camera_info']
        assert len(images) == len(infos) == FRAMES
        for frame, ((log_time, image), (_, info)) in enumerate(zip(images, infos)):
            assert image.encoding == 'rgb8' and image.header.frame_id == f'stereo_{side}'
            np.testing.assert_array_equal(image_to_array(image)[0], PAIRS[frame][index])
            stamp = START_NS + frame * 100_000_000  # the left stamp on both by default
            assert stamp_to_ns(image.header.stamp) == stamp_to_ns(info.header.stamp) == stamp
            assert log_time == stamp
            assert (info.width, info.height) == (WIDTH, HEIGHT)
            assert info.k[0] == 80.0 and info.k[2] == 47.5
            expected_tx = 0.0 if side == 'left' else -80.0 * 0.3  # not -80 * (0.3 - 0.06)
            assert info.p[3] == pytest.approx(expected_tx)
    (_, tf), = messages['/tf_static']
    right = [t for t in tf.transforms if t.child_frame_id == 'stereo_right'][0]
    assert right.header.frame_id == 'stereo_left'
    assert right.transform.translation.x == pytest.approx(0.3)


def test_kitti2bag_keep_camera_stamps(drive, tmp_path):
    kitti_to_bag(drive, tmp_path / 'bag', storage='sqlite3', keep_camera_stamps=True,
                 frames='1:', topic_prefix='/cam', progress=False)
    messages = read_bag(tmp_path / 'bag')
    lefts = [stamp_to_ns(m.header.stamp) for _, m in messages['/cam/left/image_rect']]
    rights = [stamp_to_ns(m.header.stamp) for _, m in messages['/cam/right/camera_info']]
    assert lefts == [START_NS + i * 100_000_000 for i in (1, 2)]
    assert rights == [s + JITTER_NS for s in lefts]


def test_kitti2bag_writes_the_static_transforms_before_any_camera_s_first_message(tmp_path):
    # Camera 3's stamps ahead of camera 2's, kept: /tf_static must still open the bag, as a
    # player publishes in log-time order.
    stamps = [START_NS + i * 100_000_000 for i in range(2)]
    early = write_raw_drive(tmp_path / 'kitti', [p[0] for p in PAIRS[:2]],
                            [p[1] for p in PAIRS[:2]], CAMERA, stamps,
                            right_stamps_ns=[s - JITTER_NS for s in stamps])
    kitti_to_bag(early, tmp_path / 'bag', keep_camera_stamps=True, progress=False)
    with Reader(tmp_path / 'bag') as reader:
        first_topic = next(connection.topic for connection, _, _ in reader.messages())
    assert first_topic == '/tf_static'


def test_kitti2bag_refuses_to_overwrite(drive, kitti_bag):
    with pytest.raises(DatasetError, match='exists already'):
        kitti_to_bag(drive, kitti_bag, progress=False)


# --------------------------------------------------------------------------- process-bag


def test_a_pair_skipped_as_bad_input_is_not_counted_unpaired(kitti_bag, tmp_path):
    # Its four messages made a pair: the summary counts it skipped, not as unpaired messages.

    pipeline = SecondPairBad(create_backend('sgbm', disparity_range=16))
    summary = process_bag(kitti_bag, tmp_path / 'out', pipeline, progress=False)
    assert (summary.pairs, summary.skipped) == (FRAMES - 1, 1)
    assert summary.unpaired and not any(summary.unpaired.values()), summary.unpaired


@pytest.mark.parametrize('out_storage', ['sqlite3', 'mcap'])
def test_process_bag_outputs_are_consistent(kitti_bag, tmp_path, out_storage):
    out = tmp_path / 'processed'
    summary = process_bag(kitti_bag, out, sgbm_pipeline(), storage=out_storage, points=True,
                          progress=False)
    assert summary.pairs == FRAMES and summary.namespace == '/stereo'
    assert not any(summary.unpaired.values())
    messages = read_bag(out)
    for topic in ('/stereo/left/image_rect', '/stereo/right/camera_info', '/tf_static'):
        assert len(messages[topic]) == len(read_bag(kitti_bag)[topic])
    for name in ('disparity', 'depth/image_rect', 'depth/camera_info', 'obstacle/mask',
                 'obstacle/range',
                 'disparity/color', 'points2'):
        assert len(messages[f'/stereo/{name}']) == FRAMES, name
    for frame in range(FRAMES):
        stamp = START_NS + frame * 100_000_000
        _, disparity_msg = messages['/stereo/disparity'][frame]
        _, depth_msg = messages['/stereo/depth/image_rect'][frame]
        # depth_image_proc pairs depth with depth/camera_info by header: the left camera's.
        _, depth_info = messages['/stereo/depth/camera_info'][frame]
        _, left_info = messages['/stereo/left/camera_info'][frame]
        assert depth_info.header == depth_msg.header
        assert (depth_info.width, depth_info.height) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(depth_info.p, left_info.p)
        np.testing.assert_allclose(depth_info.k, left_info.k)
        assert stamp_to_ns(disparity_msg.header.stamp) == stamp_to_ns(depth_msg.header.stamp) \
            == stamp
        assert disparity_msg.header.frame_id == 'stereo_left'
        assert disparity_msg.f == pytest.approx(80.0) and disparity_msg.t == pytest.approx(0.3)
        disparity, f, t = disparity_from_message(disparity_msg)
        centre = disparity[8:-8, 24:-8]
        assert np.isfinite(centre).mean() > 0.9
        assert np.nanmedian(centre) == pytest.approx(SHIFT, abs=0.1)
        depth = image_to_array(depth_msg)[0]
        assert depth_msg.encoding == '32FC1'
        valid = np.isfinite(disparity)
        np.testing.assert_allclose(depth[valid], f * t / disparity[valid], rtol=1e-5)
        assert np.isnan(depth[~valid]).all()
        assert np.nanmedian(depth[8:-8, 24:-8]) == pytest.approx(80 * 0.3 / SHIFT, rel=0.02)
        _, colour = messages['/stereo/disparity/color'][frame]
        _, mask = messages['/stereo/obstacle/mask'][frame]
        assert colour.encoding == 'bgr8' and mask.encoding == 'mono8'
        _, cloud = messages['/stereo/points2'][frame]
        xyz, rgb = point_cloud2_to_arrays(cloud)
        assert len(xyz) == valid.sum() and np.isfinite(xyz).all()
        assert np.median(xyz[:, 2]) == pytest.approx(4.0, rel=0.05)


def test_process_bag_writes_an_organised_cloud_on_request(kitti_bag, tmp_path, capsys):
    out = tmp_path / 'organised'
    assert main(['process-bag', str(kitti_bag), str(out), '--backend', 'sgbm',
                 '--backend-option', 'disparity_range=32', '--points-organized']) == 0
    capsys.readouterr()
    clouds = read_bag(out)['/stereo/points2']
    assert len(clouds) == FRAMES
    for _, cloud in clouds:
        assert (cloud.height, cloud.width) == (HEIGHT, WIDTH) and not cloud.is_dense
        xyz, _ = point_cloud2_to_arrays(cloud)
        assert 0.5 < np.isfinite(xyz[:, 2]).mean() < 1.0


def test_exact_sync_drops_jittered_pairs_and_approximate_pairs_them(drive, tmp_path):
    jittered = tmp_path / 'jittered'
    kitti_to_bag(drive, jittered, storage='mcap', keep_camera_stamps=True, progress=False)
    with pytest.raises(StereoDepthError, match=r'never matched: the closest set spans '
                       r'0\.002000 s .*--approximate-sync \(slop 0\.02 s\) would pair about '
                       r'3 of 3'):
        process_bag(jittered, tmp_path / 'exact', sgbm_pipeline(), progress=False)
    assert not (tmp_path / 'exact').exists()
    approximate = process_bag(jittered, tmp_path / 'approx', sgbm_pipeline(), slop=0.01,
                              progress=False)
    assert approximate.pairs == FRAMES and not any(approximate.unpaired.values())
    with pytest.raises(StereoDepthError, match=r'above --slop 0\.001 s'):
        process_bag(jittered, tmp_path / 'tight', sgbm_pipeline(), slop=0.001, progress=False)
    assert not (tmp_path / 'tight').exists()
    stamps = [stamp_to_ns(m.header.stamp) for _, m in
              read_bag(tmp_path / 'approx')['/stereo/disparity']]
    assert stamps == [START_NS + i * 100_000_000 for i in range(FRAMES)]  # left stamps


def write_recorded_bag(path, version=9, storage=StoragePlugin.SQLITE3):
    """A bag as ``ros2 bag record`` on Jazzy writes it, with other topic names and extras."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    typestore.register(get_types_from_msg('string text', 'my_msgs/msg/Note'))
    types = MessageTypes.from_typestore(typestore)
    topics = {'/cam/left/image_rect_color': 'sensor_msgs/msg/Image',
              '/cam/left/image_raw': 'sensor_msgs/msg/Image',
              '/cam/right/image_rect_color': 'sensor_msgs/msg/Image',
              '/cam/left/camera_info': 'sensor_msgs/msg/CameraInfo',
              '/cam/right/camera_info': 'sensor_msgs/msg/CameraInfo',
              '/notes': 'my_msgs/msg/Note'}
    with Writer(path, version=version, storage_plugin=storage) as writer:
        connections = {topic: writer.add_connection(topic, kind, typestore=typestore)
                       for topic, kind in topics.items()}
        for frame, (left, right) in enumerate(PAIRS[:2]):
            stamp = START_NS + frame * 50_000_000
            lh, rh = make_header(stamp, 'l', types), make_header(stamp, 'r', types)
            left_info, right_info = make_camera_infos(CAMERA, lh, rh, types)
            grey = np.ascontiguousarray(left[:, :, 0])
            items = [('/cam/left/image_raw', array_to_image(grey, 'mono8', lh, types)),
                     ('/cam/right/image_rect_color',
                      array_to_image(np.ascontiguousarray(right[:, :, ::-1]), 'bgr8', rh,
                                     types)),
                     ('/cam/left/camera_info', left_info),
                     ('/cam/left/image_rect_color',
                      array_to_image(np.ascontiguousarray(left[:, :, ::-1]), 'bgr8', lh,
                                     types)),
                     ('/cam/right/camera_info', right_info),
                     ('/notes', typestore.types['my_msgs/msg/Note'](text=f'frame {frame}'))]
            for offset, (topic, msg) in enumerate(items):
                writer.write(connections[topic], stamp + 1000 * offset,
                             typestore.serialize_cdr(msg, topics[topic]))


def test_process_bag_reads_a_recorded_bag_with_other_names(tmp_path):
    write_recorded_bag(tmp_path / 'recorded')
    summary = process_bag(tmp_path / 'recorded', tmp_path / 'out', sgbm_pipeline(),
                          progress=False)
    assert summary.topics.left_image == '/cam/left/image_rect_color'
    assert summary.topics.right_info == '/cam/right/camera_info'
    assert summary.pairs == 2 and summary.namespace == '/cam'
    messages = read_bag_with_notes(tmp_path / 'out')
    assert [m.text for _, m in messages['/notes']] == ['frame 0', 'frame 1']
    assert len(messages['/cam/left/image_raw']) == 2
    disparity, _, _ = disparity_from_message(messages['/cam/disparity'][1][1])
    assert np.nanmedian(disparity[8:-8, 24:-8]) == pytest.approx(SHIFT, abs=0.1)


def read_bag_with_notes(path):
    """read_bag for a bag carrying the custom Note type (its definition comes from the bag)."""
    with BagInput(path) as bag:
        return {topic: [(t, bag.deserialize(d, c)) for c, t, d in bag.messages()
                        if c.topic == topic] for topic in bag.topics}


def test_topics_given_as_options_are_checked(tmp_path):
    write_recorded_bag(tmp_path / 'recorded', storage=StoragePlugin.MCAP)
    with pytest.raises(DatasetError, match='--left-info /cam/left/image_raw: expected a '
                                           'sensor_msgs/msg/CameraInfo'):
        process_bag(tmp_path / 'recorded', tmp_path / 'out', sgbm_pipeline(),
                    topics={'left_info': '/cam/left/image_raw'}, progress=False)
    assert not (tmp_path / 'out').exists()


def test_find_stereo_topics():
    image, info = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'
    topics = {'/s/left/image_raw': image, '/s/left/image_rect': image,
              '/s/right/image_raw': image, '/s/right/image_rect': image,
              '/s/left/camera_info': info, '/s/right/camera_info': info,
              '/s/left/disparity': image}
    found = find_stereo_topics(topics)
    assert found.as_list() == ['/s/left/image_rect', '/s/right/image_rect',
                               '/s/left/camera_info', '/s/right/camera_info']
    assert found.namespace == '/s'
    chosen = find_stereo_topics(topics, left_image='/s/left/image_raw')
    assert chosen.right_image == '/s/right/image_raw'
    with pytest.raises(DatasetError, match='cannot choose the left image topic.*found: none'):
        find_stereo_topics({'/camera/image': image})
    with pytest.raises(DatasetError, match='right camera_info'):
        find_stereo_topics({'/a/left/image': image, '/b/right/image': image,
                            '/a/left/camera_info': info})
    with pytest.raises(DatasetError, match='the bag has no sensor_msgs/msg/CameraInfo topic '
                                           r'\(expected /a/left/camera_info\): depth needs'):
        find_stereo_topics({'/a/left/image': image, '/a/right/image': image})
    # The images alone (what adapt extracts) need no camera_info.
    assert find_stereo_images({'/a/left/image': image, '/a/right/image': image}) == (
        '/a/left/image', '/a/right/image')
    with pytest.raises(DatasetError, match='--left-image /nope: no such topic in the bag '
                                           r'\(its topics: /s/left/camera_info, '):
        find_stereo_topics(topics, left_image='/nope')


# --------------------------------------------------------------------------- corrupt bags


def test_corrupt_metadata_is_a_clear_error(kitti_bag, tmp_path):
    broken = tmp_path / 'broken'
    broken.mkdir()
    for item in kitti_bag.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unclosed')
    if kitti_bag.name.endswith('mcap'):  # the mcap file alone is enough: it is recovered
        summary = process_bag(broken, tmp_path / 'out', sgbm_pipeline(), progress=False)
        assert summary.pairs == FRAMES and 'metadata' in summary.recovered_from.lower()
        with pytest.raises(DatasetError, match='--strict: no recovery'):
            process_bag(broken, tmp_path / 'out2', sgbm_pipeline(), progress=False,
                        strict=True)
        assert not (tmp_path / 'out2').exists()
        return
    with pytest.raises(DatasetError, match=f'bag {broken}'):
        process_bag(broken, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert not (tmp_path / 'out').exists()


def test_corrupt_storage_file_is_a_clear_error(kitti_bag, tmp_path, capsys):
    broken = tmp_path / 'broken'
    broken.mkdir()
    for item in kitti_bag.iterdir():
        data = item.read_bytes()
        if item.name != 'metadata.yaml':
            data = data[:len(data) // 3] + b'\0garbage' * 64
        (broken / item.name).write_bytes(data)
    with pytest.raises(DatasetError, match='corrupt'):
        process_bag(broken, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert not (tmp_path / 'out').exists()
    assert main(['process-bag', str(broken), str(tmp_path / 'out2'), '--backend', 'sgbm']) == 2
    assert 'corrupt' in capsys.readouterr().err


def test_missing_bag(tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        process_bag(tmp_path / 'nothing', tmp_path / 'out', sgbm_pipeline(), progress=False)


# --------------------------------------------------------------------------- command line


def test_cli_kitti2bag_and_process_bag(drive, tmp_path, capsys):
    assert main(['kitti2bag', str(drive), str(tmp_path / 'in'), '--storage', 'sqlite3',
                 '--frames', ':2']) == 0
    assert 'baseline 0.3000 m' in capsys.readouterr().out
    assert main(['process-bag', str(tmp_path / 'in'), str(tmp_path / 'out'),
                 '--approximate-sync', '--slop', '0.02', '--queue-size', '5']) == 0
    out = capsys.readouterr().out
    assert 'pairs processed: 2' in out and 'frames/s' in out
    assert main(['kitti2bag', str(drive.parent / 'missing'), str(tmp_path / 'x')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_process_bag_takes_the_nodes_params_file(kitti_bag, tmp_path, capsys):
    """obstacle.* and max_depth of a params file change what process-bag writes."""
    params = tmp_path / 'depth.yaml'
    params.write_text(yaml.safe_dump({'/**/stereo_depth_node': {'ros__parameters': {
        'backend': 'sgbm', 'sgbm': {'disparity_range': 32}, 'max_depth': 3.0,
        'publish_color': False,
        'obstacle': {'max_range': 2.5, 'min_range': 0.5}}}}))
    assert main(['process-bag', str(kitti_bag), str(tmp_path / 'default'), '--backend', 'sgbm',
                 '--backend-option', 'disparity_range=16']) == 0
    assert main(['process-bag', str(kitti_bag), str(tmp_path / 'tuned'),
                 '--params-file', str(params), '--backend-option', 'disparity_range=16']) == 0
    assert 'disparity 0..15 px' in capsys.readouterr().out  # the flag beats the file's 32
    default, tuned = read_bag(tmp_path / 'default'), read_bag(tmp_path / 'tuned')
    assert '/stereo/disparity/color' in default and '/stereo/disparity/color' not in tuned
    for frame in range(FRAMES):
        before = default['/stereo/obstacle/range'][frame][1]
        after = tuned['/stereo/obstacle/range'][frame][1]
        # sgbm's 0-15 px reach no nearer than f B / 15 = 1.6 m, above either min_range.
        assert (before.min_range, before.max_range) == pytest.approx((1.6, 40.0))
        assert (after.min_range, after.max_range) == pytest.approx((1.6, 2.5))
        assert before.range == pytest.approx(4.0, rel=0.05)  # the plane is 4 m away
        assert after.range == float('inf')  # beyond obstacle.max_range
        default_depth = image_to_array(default['/stereo/depth/image_rect'][frame][1])[0]
        assert np.isfinite(default_depth).mean() > 0.5
        # The plane is beyond max_depth (3 m): +inf, REP 117's "nothing within range".
        tuned_depth = image_to_array(tuned['/stereo/depth/image_rect'][frame][1])[0]
        assert not np.isfinite(tuned_depth).any() and np.isposinf(tuned_depth).mean() > 0.5


# --------------------------------------------------------------------------- synchronizer


def test_exact_synchronizer_matches_equal_stamps_only():
    sync = TimeSynchronizer(2, queue_size=3)
    assert sync.add(0, 100, 'a100') == []
    assert sync.add(0, 200, 'a200') == []
    assert sync.add(1, 101, 'b101') == []
    assert sync.add(1, 200, 'b200') == [['a200', 'b200']]
    assert sync.pending() == [1, 1]
    for stamp in (300, 400, 500):
        sync.add(0, stamp, f'a{stamp}')
    assert sync.dropped == [1, 0]  # a100 overflowed
    assert sync.add(1, 400, 'b400') == [['a400', 'b400']]


def test_approximate_synchronizer_picks_the_closest_within_slop():
    sync = ApproximateTimeSynchronizer(3, queue_size=5, slop=0.010)
    assert sync.add(0, 1_000_000_000, 'L') == []
    sync.add(1, 1_006_000_000, 'R far')
    sync.add(1, 1_002_000_000, 'R near')
    assert sync.add(2, 1_001_000_000, 'I') == [['L', 'R near', 'I']]
    assert sync.pending() == [0, 1, 0]
    edge = ApproximateTimeSynchronizer(2, slop=0.010)
    edge.add(0, 0, 'x')
    assert edge.add(1, 10_000_000, 'y') == []  # spread must be strictly below slop
    with pytest.raises(ValueError, match='slop'):
        ApproximateTimeSynchronizer(2, slop=0.0)


def test_a_second_message_with_the_same_stamp_replaces_the_first_and_counts_as_dropped():
    sync = TimeSynchronizer(2)
    sync.add(0, 100, 'first')
    sync.add(0, 100, 'second')
    assert sync.pending() == [1, 0] and sync.dropped == [1, 0]
    assert sync.add(1, 100, 'right') == [['second', 'right']]


def test_never_matched_measures_the_nearest_stamp_before_or_after():
    # The right image 1 ms before the left one is its closest partner, not the one 5 ms after.
    line = never_matched(['left', 'right'], [[1_000_000_000], [999_000_000, 1_005_000_000]],
                         0.0005, 'slop')
    assert line == ('the stamps of left, right never matched: the closest set spans 0.001000 s '
                    '(median over left images 0.001000 s); above slop 0.0005 s: raise it or '
                    'fix the stamps')


def test_approximate_sync_tries_the_closest_stamp_first_not_the_oldest():
    sync = ApproximateTimeSynchronizer(2, slop=0.010)
    sync.add(1, 995_000_000, 'R early')  # 5 ms before, within slop, but not the closest
    sync.add(1, 1_001_000_000, 'R near')
    assert sync.add(0, 1_000_000_000, 'L') == [['L', 'R near']]
    assert sync.pending() == [0, 1]


def test_never_matched_counts_only_sets_strictly_within_the_default_slop():
    # 20 ms apart is what the approximate sync (spread < slop) would not pair; 10 ms it would.
    line = never_matched(['left', 'right'], [[0, 1_000_000_000], [20_000_000, 1_010_000_000]],
                         None)
    assert line.endswith('--approximate-sync (slop 0.02 s) would pair about 1 of 2 left images')


def test_connection_extension_of_written_bags(kitti_bag):
    with Reader(kitti_bag) as reader:
        for connection in reader.connections:
            assert isinstance(connection.ext, ConnectionExtRosbag2)
            assert connection.ext.serialization_format == 'cdr'


# --------------------------------------------------------------------------- demo


def test_bag_demo_end_to_end(tmp_path):
    from PIL import Image

    from stereo_depth_ros.bag_demo import run_bag_demo
    from stereo_depth_ros.data.synthetic import ROAD_BASELINE

    summary = run_bag_demo(tmp_path, n_frames=2, storage='sqlite3', progress=False)
    assert summary['pairs'] == 2 and summary['baseline_m'] == pytest.approx(ROAD_BASELINE)
    # costnet_fast (the default) measured 0.57 px, D1 1.3 %; the obstacle at 30-32 m is
    # placed within 2.1-2.8 m (0.3-0.4 px of disparity at 5.5 px) with IoU 0.34-0.37.
    assert summary['mean_epe_px'] < 1.0 and summary['mean_d1'] < 0.05
    assert summary['mean_distance_error_m'] < 4.0 and summary['mean_obstacle_iou'] > 0.2
    rows = yaml.safe_load((tmp_path / 'metrics.json').read_text())
    assert [row['frame'] for row in rows] == [0, 1]
    assert rows[0]['true_distance_m'] > rows[1]['true_distance_m']  # the obstacle approaches
    assert all(row['t_m'] == pytest.approx(ROAD_BASELINE) for row in rows)
    with Image.open(tmp_path / 'preview.gif') as gif:
        assert gif.n_frames == 2
    with Image.open(tmp_path / 'preview.png') as sheet:
        assert sheet.width == 3 * 512 + 2 * 4
    assert len(list((tmp_path / 'kitti').glob('*/*/disp_02/data/*.png'))) == 2
    again = run_bag_demo(tmp_path, n_frames=2, storage='mcap', progress=False)
    assert again['pairs'] == 2  # a second run replaces the first one's bags


def humble_style_bag(source, target):
    """Rewrite a sqlite3 bag the way Humble's ``ros2 bag record`` lays it out (v5, schema 3)."""
    import shutil
    import sqlite3

    shutil.copytree(source, target)
    info = yaml.safe_load((target / 'metadata.yaml').read_text())
    meta = info['rosbag2_bagfile_information']
    meta['version'] = 5
    for key in ('custom_data', 'ros_distro'):
        meta.pop(key, None)
    for topic in meta['topics_with_message_count']:
        topic['topic_metadata'].pop('type_description_hash', None)
    (target / 'metadata.yaml').write_text(yaml.safe_dump(info))
    database = next(target.glob('*.db3'))
    with sqlite3.connect(database) as connection:
        connection.executescript(
            'DROP TABLE message_definitions; DROP TABLE metadata;'
            'ALTER TABLE topics DROP COLUMN type_description_hash;'
            'UPDATE schema SET schema_version = 3, ros_distro = "humble";')


def test_process_bag_reads_a_humble_recording(drive, tmp_path):
    kitti_to_bag(drive, tmp_path / 'jazzy', storage='sqlite3', frames=':2', progress=False)
    humble_style_bag(tmp_path / 'jazzy', tmp_path / 'humble')
    summary = process_bag(tmp_path / 'humble', tmp_path / 'out', sgbm_pipeline(),
                          storage='sqlite3', distro='humble', progress=False)
    assert summary.pairs == 2 and not summary.not_copied
    messages = read_bag(tmp_path / 'out', Stores.ROS2_HUMBLE)
    assert len(messages['/tf_static']) == 1 and len(messages['/stereo/obstacle/range']) == 2
    assert not hasattr(messages['/stereo/obstacle/range'][0][1], 'variance')


def write_humble_bag_with_range(path, storage):
    """A bag written with Humble's definitions: a stereo pair plus a sensor_msgs/Range topic."""
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    types = MessageTypes.from_typestore(typestore)
    range_type = 'sensor_msgs/msg/Range'
    with Writer(path, version=8, storage_plugin=storage) as writer:
        connections = {}
        for frame, (left, right) in enumerate(PAIRS[:2]):
            stamp = START_NS + frame * 100_000_000
            lh, rh = make_header(stamp, 'l', types), make_header(stamp, 'r', types)
            left_info, right_info = make_camera_infos(CAMERA, lh, rh, types)
            sonar = types.Range(header=lh, radiation_type=0, field_of_view=0.5, min_range=0.1,
                                max_range=4.0, range=1.0 + frame)
            items = [('/stereo/left/image_rect', array_to_image(left, 'rgb8', lh, types.Image)),
                     ('/stereo/right/image_rect', array_to_image(right, 'rgb8', rh, types.Image)),
                     ('/stereo/left/camera_info', left_info),
                     ('/stereo/right/camera_info', right_info), ('/sonar', sonar)]
            for topic, msg in items:
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, msg.__msgtype__,
                                                               typestore=typestore)
                writer.write(connections[topic], stamp,
                             typestore.serialize_cdr(msg, msg.__msgtype__))
    assert not hasattr(types.Range, 'variance') and range_type in typestore.fielddefs


def read_bag_with_its_definitions(path):
    """topic -> messages, each decoded with the definition the bag stores for its topic."""
    messages = {}
    with Reader(path) as reader:
        stores = {}
        for connection in reader.connections:
            store = get_typestore(Stores.EMPTY)
            store.register(get_types_from_msg(connection.msgdef.data, connection.msgtype))
            stores[connection.id] = store
        for connection, _, data in reader.messages():
            msg = stores[connection.id].deserialize_cdr(data, connection.msgtype)
            messages.setdefault(connection.topic, []).append(msg)
        digests = {c.topic: c.digest for c in reader.connections}
    return messages, digests


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_copied_topics_keep_the_bags_own_definitions(tmp_path, storage):
    write_humble_bag_with_range(tmp_path / 'humble', STORAGE_PLUGINS[storage])
    summary = process_bag(tmp_path / 'humble', tmp_path / 'out', sgbm_pipeline(),
                          storage=storage, progress=False)  # default --ros-distro: jazzy
    assert summary.pairs == 2 and not summary.not_copied
    assert summary.bag_definitions == ['sensor_msgs/msg/Range']
    messages, digests = read_bag_with_its_definitions(tmp_path / 'out')
    assert [m.range for m in messages['/sonar']] == [1.0, 2.0]
    assert len(messages['/stereo/left/image_rect']) == 2
    humble = get_typestore(Stores.ROS2_HUMBLE)
    assert digests['/sonar'] == humble.hash_rihs01('sensor_msgs/msg/Range')
    # One definition per type in a bag: the outputs follow the bag's (Humble) Range too.
    assert len(messages['/stereo/obstacle/range']) == 2
    assert not hasattr(messages['/stereo/obstacle/range'][0], 'variance')
    assert digests['/stereo/obstacle/range'] == digests['/sonar']
    for topic, msgs in read_bag(tmp_path / 'out', Stores.ROS2_HUMBLE).items():
        assert len(msgs) == len(messages[topic])  # all decode with Humble's definitions


def test_outputs_already_in_the_input_bag_are_refused(drive, tmp_path, capsys):
    kitti_to_bag(drive, tmp_path / 'in', frames=':1', progress=False)
    process_bag(tmp_path / 'in', tmp_path / 'once', sgbm_pipeline(), progress=False)
    with pytest.raises(DatasetError, match='already has /stereo/disparity, .*--namespace'):
        process_bag(tmp_path / 'once', tmp_path / 'twice', sgbm_pipeline(), progress=False)
    assert not (tmp_path / 'twice').exists()
    assert main(['process-bag', str(tmp_path / 'once'), str(tmp_path / 'twice')]) == 2
    assert '/stereo/obstacle/range' in capsys.readouterr().err
    again = process_bag(tmp_path / 'once', tmp_path / 'twice', sgbm_pipeline(),
                        namespace='/stereo/again', progress=False)
    assert again.pairs == 1 and read_bag(tmp_path / 'twice')['/stereo/again/disparity']


READING_IDL = '''module my_msgs {
  module msg {
    struct Reading {
      string label;
      double value;
    };
  };
};
'''


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_input_decodes_a_type_the_bag_defines_in_idl(tmp_path, storage):
    writing = get_typestore(Stores.EMPTY)
    writing.register(get_types_from_idl(READING_IDL))
    msgdef = '=' * 80 + '\nIDL: my_msgs/msg/Reading\n' + READING_IDL
    with Writer(tmp_path / 'bag', version=8, storage_plugin=STORAGE_PLUGINS[storage]) as writer:
        connection = writer.add_connection('/reading', 'my_msgs/msg/Reading', msgdef=msgdef,
                                           rihs01=writing.hash_rihs01('my_msgs/msg/Reading'))
        for value in (1.5, 2.5):
            reading = writing.types['my_msgs/msg/Reading'](label='probe', value=value)
            writer.write(connection, START_NS, writing.serialize_cdr(reading,
                                                                     'my_msgs/msg/Reading'))
    jazzy = get_typestore(Stores.ROS2_JAZZY)
    with BagInput(tmp_path / 'bag', typestore=jazzy) as bag:
        decoded = [bag.deserialize(data, c) for c, _, data in bag.messages()]
        assert bag.bag_types == {'my_msgs/msg/Reading'} and bag.redefined == []
    assert [(m.label, m.value) for m in decoded] == [('probe', 1.5), ('probe', 2.5)]
    assert 'my_msgs/msg/Reading' in jazzy.fielddefs  # a new type joins the given store


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_input_decodes_with_the_bags_definition_of_a_known_type(tmp_path, storage):
    write_humble_bag_with_range(tmp_path / 'humble', STORAGE_PLUGINS[storage])
    jazzy = get_typestore(Stores.ROS2_JAZZY)
    with BagInput(tmp_path / 'humble', typestore=jazzy) as bag:
        ranges = [bag.deserialize(data, c) for c, _, data in bag.messages()
                  if c.topic == '/sonar']
        assert bag.redefined == ['sensor_msgs/msg/Range'] and bag.typestore is not jazzy
        assert 'sensor_msgs/msg/Range' in bag.bag_types
    assert [r.range for r in ranges] == [1.0, 2.0]
    assert not hasattr(ranges[0], 'variance')
    assert any(name == 'variance' for name, _ in jazzy.fielddefs['sensor_msgs/msg/Range'][1])


# --------------------------------------------------------------------------- compressed images


def test_find_stereo_topics_takes_compressed_streams():
    image, compressed = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'
    info = 'sensor_msgs/msg/CameraInfo'
    topics = {'/cam/left/image_rect/compressed': compressed,
              '/cam/right/image_rect/compressed': compressed,
              '/cam/left/camera_info': info, '/cam/right/camera_info': info,
              # decoys: beside the compressed topic itself, not beside its base topic
              '/cam/left/image_rect/camera_info': info,
              '/cam/right/image_rect/camera_info': info}
    found = find_stereo_topics(topics)
    # camera_info beside the base topic, as image_transport names the stream.
    assert found.as_list() == ['/cam/left/image_rect/compressed',
                               '/cam/right/image_rect/compressed',
                               '/cam/left/camera_info', '/cam/right/camera_info']
    assert found.namespace == '/cam'
    # A stream recorded both ways is read raw; the compressed one can still be named.
    both = {**topics, '/cam/left/image_rect': image, '/cam/right/image_rect': image}
    assert find_stereo_topics(both).left_image == '/cam/left/image_rect'
    named = find_stereo_topics(both, left_image='/cam/left/image_rect/compressed')
    assert named.right_image == '/cam/right/image_rect/compressed'
    with pytest.raises(DatasetError, match='--left-image /cam/left/camera_info: expected a '
                                           'sensor_msgs/msg/Image or sensor_msgs/msg/'
                                           'CompressedImage topic'):
        find_stereo_topics(topics, left_image='/cam/left/camera_info')
    depth_only = {'/cam/left/image_rect/compressedDepth': compressed, '/cam/left/disparity': image}
    with pytest.raises(DatasetError, match='found: none; left out as results or depth maps: '
                                           '/cam/left/disparity, /cam/left/image_rect/'
                                           'compressedDepth'):
        find_stereo_images(depth_only)


@pytest.mark.parametrize('codec', ['png', 'jpeg'])
def test_kitti2bag_compressed_then_process_bag(drive, kitti_bag, tmp_path, codec):
    bag = tmp_path / codec
    kitti_to_bag(drive, bag, compression=codec, progress=False)
    messages = read_bag(bag)
    assert '/stereo/left/image_rect' not in messages
    _, left = messages['/stereo/left/image_rect/compressed'][0]
    assert left.format == f'rgb8; {codec} compressed bgr8'
    summary = process_bag(bag, tmp_path / f'{codec}_out', sgbm_pipeline(), progress=False)
    assert summary.pairs == FRAMES and summary.namespace == '/stereo'
    raw = process_bag(kitti_bag, tmp_path / 'raw_out', sgbm_pipeline(), progress=False)
    assert raw.pairs == FRAMES
    ours, theirs = read_bag(tmp_path / f'{codec}_out'), read_bag(tmp_path / 'raw_out')
    topic = '/stereo/depth/image_rect'
    for (_, a), (_, b) in zip(ours[topic], theirs[topic]):
        depth, reference = image_to_array(a)[0], image_to_array(b)[0]
        if codec == 'png':  # lossless: the same depth to the bit
            np.testing.assert_array_equal(depth, reference)
        else:
            centre = np.s_[8:-8, 24:-8]
            assert np.nanmedian(depth[centre]) == pytest.approx(80 * 0.3 / SHIFT, rel=0.05)
    # Pairs for adaptation come out of a compressed bag as from a raw one.
    assert extract_pairs(bag, tmp_path / f'{codec}_pairs', progress=False) == FRAMES
    if codec == 'png':
        np.testing.assert_array_equal(
            cv2.imread(str(tmp_path / 'png_pairs' / '00000' / 'left.png'))[:, :, ::-1],
            PAIRS[0][0])


def test_cli_kitti2bag_compressed(drive, tmp_path, capsys):
    assert main(['kitti2bag', str(drive), str(tmp_path / 'bag'), '--compressed', 'png']) == 0
    assert '/stereo/left/image_rect/compressed: 3 messages' in capsys.readouterr().out


def test_an_interrupt_before_the_first_pair_writes_no_bag(kitti_bag, tmp_path, monkeypatch,
                                                          capsys):
    import os
    import signal
    from stereo_depth_ros.bags import process as process_module
    decode = process_module._Run._decode

    def decode_after_ctrl_c(self, data, connection):
        os.kill(os.getpid(), signal.SIGINT)  # deferred: the loop stops at the next message
        return decode(self, data, connection)

    monkeypatch.setattr(process_module._Run, '_decode', decode_after_ctrl_c)
    try:
        code = main(['process-bag', str(kitti_bag), str(tmp_path / 'out'), '--backend', 'sgbm',
                     '--backend-option', 'disparity_range=16'])
    except KeyboardInterrupt:
        pytest.fail('the interrupt escaped main()')
    assert code == 130
    error = capsys.readouterr().err
    assert 'interrupted before the first pair was processed; no output bag was written' in error
    assert 'approximate-sync' not in error  # the stamps were fine: no sync advice
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('signals_at', ['tf_static', 'frame 1', 'frame 1 twice'])
def test_an_interrupted_kitti2bag_says_what_its_bag_holds(drive, tmp_path, monkeypatch, capsys,
                                                          signals_at):
    import os
    import signal
    from stereo_depth_ros.bags import from_kitti
    from stereo_depth_ros.kitti import KittiSequence
    read_pair, camera_frames = KittiSequence.read_pair, from_kitti._camera_frames

    def ctrl_c(times: int = 1) -> None:
        for _ in range(times):  # the first is deferred to the end of the frame
            os.kill(os.getpid(), signal.SIGINT)

    def read_with_ctrl_c(self, frame):
        if frame.index == 1 and signals_at.startswith('frame 1'):
            ctrl_c(2 if signals_at.endswith('twice') else 1)
        return read_pair(self, frame)

    def frames_with_ctrl_c(*args):
        if signals_at == 'tf_static':
            ctrl_c()
        return camera_frames(*args)

    monkeypatch.setattr(KittiSequence, 'read_pair', read_with_ctrl_c)
    monkeypatch.setattr(from_kitti, '_camera_frames', frames_with_ctrl_c)
    try:
        code = main(['kitti2bag', str(drive), str(tmp_path / 'bag')])
    except BaseException as error:  # noqa: B902 - an escaping Abort or interrupt is the bug
        pytest.fail(f'{error!r} escaped main()')
    assert code == 130
    error = capsys.readouterr().err
    if signals_at == 'frame 1':  # frame 1 is finished, frame 2 not begun
        assert (f'interrupted after 2 of the {FRAMES} frames: {tmp_path / "bag"} holds them, '
                'up to 0000000001') in error
        counts = {topic: len(messages) for topic, messages in read_bag(tmp_path / 'bag').items()}
        assert counts['/stereo/left/image_rect'] == counts['/stereo/right/camera_info'] == 2
        return
    why = ('before the first frame was written' if signals_at == 'tf_static'
           else 'twice: stopped at once')
    assert f'{why}; no bag was kept' in error
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_setting_up_writes_no_bag(kitti_bag, tmp_path, monkeypatch,
                                                     capsys):
    # Before the signals are deferred (copying the input topics' definitions), an interrupt
    # published an empty output bag, which a rerun to the same path then refused.
    from stereo_depth_ros.bags import process as process_module

    def interrupted(*args):
        raise KeyboardInterrupt('SIGINT')

    monkeypatch.setattr(process_module, '_copy_topics', interrupted)
    code = main(['process-bag', str(kitti_bag), str(tmp_path / 'out'), '--backend', 'sgbm',
                 '--backend-option', 'disparity_range=16'])
    assert code == 130
    assert 'interrupted before the first pair was processed; no output bag was written' in \
        capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_process_bag_says_when_the_images_look_swapped(kitti_bag, tmp_path):
    swapped = {'left_image': '/stereo/right/image_rect', 'right_image': '/stereo/left/image_rect',
               'left_info': '/stereo/left/camera_info', 'right_info': '/stereo/right/camera_info'}
    summary = process_bag(kitti_bag, tmp_path / 'out', sgbm_pipeline(), topics=swapped,
                          progress=False)
    assert summary.check is not None and summary.check.swapped
    warnings = summary.warnings()
    assert any(line.startswith('warning: left and right look swapped (') for line in warnings)
    # Checked before each pair while they look swapped: every pair is written as unknown
    # without running the backend or the view check (which would have failed sgbm's matches
    # here too), and the swap line is the one that says so.
    assert summary.pairs >= 2 and summary.unconfirmed == summary.pairs
    assert [note_kind(note) for note in summary.notes] == ['left and right look swapped']
    assert not any(line.startswith('left and right look swapped:') for line in warnings)
    assert warnings[-1].startswith(f'written as unknown: {summary.pairs} of {summary.pairs} ')
    plain = process_bag(kitti_bag, tmp_path / 'plain', sgbm_pipeline(), progress=False)
    assert plain.check is not None and not plain.check.swapped
    assert not any('warning' in line for line in plain.warnings())


def test_process_bag_with_align_rows_off_says_rows_a_little_off(tmp_path):
    # Half a pixel: under the warning's pixel, over the alignment's quarter.
    stamps = [START_NS + i * 100_000_000 for i in range(FRAMES)]
    low = [moved_down(right, 0.5) for _, right in PAIRS]
    drive = write_raw_drive(tmp_path / 'kitti', [p[0] for p in PAIRS], low, CAMERA, stamps)
    kitti_to_bag(drive, tmp_path / 'bag', progress=False)
    summary = process_bag(tmp_path / 'bag', tmp_path / 'out', StereoPipeline(
        create_backend('sgbm', disparity_range=16), align_rows=False), progress=False)
    assert summary.aligned == 0 and summary.check is not None
    assert not summary.check.misaligned
    told = [line for line in summary.warnings() if line.startswith('rows not aligned')]
    assert len(told) == 1 and told[0].endswith(
        'align_rows is off, so the pairs were matched as they came')
    assert "px off the left's at a typical matched corner" in told[0]
    aligned = process_bag(tmp_path / 'bag', tmp_path / 'aligned', sgbm_pipeline(),
                          progress=False)
    assert aligned.aligned == FRAMES
    assert not any(line.startswith('rows not aligned') for line in aligned.warnings())


def test_process_bag_says_when_the_rows_are_off(tmp_path):
    stamps = [START_NS + i * 100_000_000 for i in range(FRAMES)]
    low = [np.roll(right, 2, axis=0) for _, right in PAIRS]  # right content 2 px lower
    drive = write_raw_drive(tmp_path / 'kitti', [p[0] for p in PAIRS], low, CAMERA, stamps)
    kitti_to_bag(drive, tmp_path / 'bag', progress=False)
    summary = process_bag(tmp_path / 'bag', tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.pairs == FRAMES and summary.check is not None and summary.check.misaligned
    warned = [line for line in summary.warnings() if 'rows of the right image' in line]
    assert len(warned) == 1
    assert warned[0].startswith('warning: first pair measured: rows of the right')
    # From the first pair's check on, every right view is put back on the left's rows.
    assert summary.aligned == FRAMES and "resampled onto the left's rows" in warned[0]
    assert any(line.startswith(f'rows aligned: {FRAMES} of {FRAMES} pairs')
               for line in summary.warnings())
    as_they_come = process_bag(tmp_path / 'bag', tmp_path / 'as_they_come', StereoPipeline(
        create_backend('sgbm', disparity_range=16), align_rows=False), progress=False)
    lines = as_they_come.warnings()
    assert as_they_come.aligned == 0 and not any('rows aligned' in line for line in lines)
    assert not any("resampled onto the left's rows" in line for line in lines)
    # A dark first frame does not use the check up: the next pair is measured.
    dark = [np.zeros_like(PAIRS[0][0]), *low[:1] * (FRAMES - 1)]
    lefts = [np.zeros_like(PAIRS[0][0]), *[PAIRS[0][0]] * (FRAMES - 1)]
    drive = write_raw_drive(tmp_path / 'dark', lefts, dark, CAMERA, stamps)
    kitti_to_bag(drive, tmp_path / 'dark_bag', progress=False)
    summary = process_bag(tmp_path / 'dark_bag', tmp_path / 'dark_out', sgbm_pipeline(),
                          progress=False)
    assert summary.check is not None and summary.check.misaligned


def test_summary_lines_of_an_interrupted_run():
    from stereo_depth_ros.bags.process import ProcessSummary
    from stereo_depth_ros.bags.reader import StereoTopics
    topics = StereoTopics('/l/image', '/r/image', '/l/camera_info', '/r/camera_info')
    summary = ProcessSummary(Path('in'), Path('out'), topics, '/s')
    summary.unpaired = {'/l/image': 2}
    summary.interrupted = True
    assert not any('approximate-sync' in line for line in summary.lines())
    summary.pairs, summary.left_images = 1, 300
    assert ('interrupted: out was closed properly and holds the 1 pair processed so far, of '
            'the 300 left images of in; the input topics it copies end at the same point') in \
        summary.lines()
    summary.left_images = 0  # a recovered bag that does not count its messages
    assert ('interrupted: out was closed properly and holds the 1 pair processed so far; the '
            'input topics it copies end at the same point') in summary.lines()
    summary.pairs, summary.interrupted = 0, False
    assert any('approximate-sync' in line for line in summary.lines())


def test_a_second_interrupt_during_a_long_pair_stops_at_once_and_keeps_nothing(
        kitti_bag, tmp_path, monkeypatch, capsys):
    import os
    import signal
    from stereo_depth_ros.backends.sgbm import SGBMBackend
    compute = SGBMBackend._compute
    calls = []

    def slow_first_pair(self, left, right):
        calls.append(1)
        os.kill(os.getpid(), signal.SIGINT)  # deferred: "stopping after the current pair"
        os.kill(os.getpid(), signal.SIGINT)  # again: stop now
        return compute(self, left, right)

    monkeypatch.setattr(SGBMBackend, '_compute', slow_first_pair)
    try:
        code = main(['process-bag', str(kitti_bag), str(tmp_path / 'out'), '--backend', 'sgbm',
                     '--backend-option', 'disparity_range=16'])
    except BaseException as error:  # noqa: B902 - an escaping Abort or interrupt is the bug
        pytest.fail(f'{type(error).__name__} escaped main()')
    assert code == 130 and calls == [1]
    error = capsys.readouterr().err
    assert 'stopping after the current pair (interrupt again to stop at once' in error
    assert 'interrupted twice: stopped at once; no output bag was written' in error
    assert list(tmp_path.iterdir()) == []


def test_extraction_names_the_pairs_it_could_not_decode(tmp_path):
    from stereo_depth_ros.bags.writer import BagWriter
    header_stamps = [START_NS + i * 100_000_000 for i in range(3)]
    with BagWriter(tmp_path / 'bag') as writer:
        types = writer.types
        for index, stamp in enumerate(header_stamps):
            header = make_header(stamp, 'cam', types)
            for side, image in zip(('left', 'right'), PAIRS[index]):
                msg = array_to_compressed(image, 'rgb8', header, types)
                if index == 1 and side == 'left':
                    msg.data = msg.data[:60]  # a truncated PNG
                writer.write(f'/cam/{side}/image_rect/compressed', msg, stamp)
    skipped = []
    assert extract_pairs(tmp_path / 'bag', tmp_path / 'pairs', progress=False,
                         skipped=skipped) == 2
    assert len(skipped) == 1 and 'cannot decode the compressed image' in skipped[0]
    assert f'(stamp {header_stamps[1] / 1e9:.6f})' in skipped[0]


def test_a_failing_pair_check_does_not_end_process_bag(kitti_bag, tmp_path, monkeypatch):
    from stereo_depth_ros.processing import StereoFrameProcessor

    def broken(self, output):
        raise RuntimeError('cv2 said no')

    monkeypatch.setattr(StereoFrameProcessor, 'check', broken)
    summary = process_bag(kitti_bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.pairs == FRAMES
    assert 'the check of swapped or misaligned inputs failed: RuntimeError: cv2 said no' \
        in summary.warnings()


def test_process_bag_reads_an_mcap_bag_with_each_message_compressed(tmp_path):
    """`ros2 bag record -s mcap --compression-mode message`: each payload a zstd frame."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, Writer as RosbagsWriter
    plain, packed = tmp_path / 'plain', tmp_path / 'packed'
    write_recorded_bag(plain, storage=StoragePlugin.MCAP)
    writer = RosbagsWriter(packed, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with Reader(plain) as reader, writer:
        added = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                             rihs01=c.digest) for c in reader.connections}
        for connection, stamp, data in reader.messages():
            writer.write(added[connection.id], stamp, data)
    summary = process_bag(packed, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.pairs == 2 and not summary.undecodable
    disparity, _, _ = disparity_from_message(
        read_bag_with_notes(tmp_path / 'out')['/cam/disparity'][1][1])
    assert np.nanmedian(disparity[8:-8, 24:-8]) == pytest.approx(SHIFT, abs=0.1)


def test_a_topic_no_message_of_which_decodes_is_named_so(tmp_path, monkeypatch):
    write_recorded_bag(tmp_path / 'recorded')
    original = BagInput.deserialize

    def garbled(self, data, connection):
        if connection.topic == '/cam/right/camera_info':
            raise DatasetError('bag x: cannot decode a sensor_msgs/msg/CameraInfo on '
                               '/cam/right/camera_info: bad CDR')
        return original(self, data, connection)

    monkeypatch.setattr(BagInput, 'deserialize', garbled)
    with pytest.raises(StereoDepthError, match=r'no message on /cam/right/camera_info could be '
                       r'decoded \(/cam/right/camera_info: 2\); first: .*bad CDR'):
        process_bag(tmp_path / 'recorded', tmp_path / 'out', sgbm_pipeline(), progress=False)


def test_approximate_sync_drops_a_message_older_than_its_full_queue():
    """As message_filters: it can complete no set (it was a KeyError)."""
    sync = ApproximateTimeSynchronizer(2, queue_size=2, slop=0.05)
    assert sync.add(1, 0, 'R0') == []
    sync.add(0, 100_000_000, 'L1')
    sync.add(0, 200_000_000, 'L2')
    assert sync.add(0, 0, 'L0 late') == []  # older than L1 and L2: dropped at once
    assert sync.pending() == [2, 1]
    assert sync.add(1, 100_000_000, 'R1') == [['L1', 'R1']]


def test_a_zstd_transport_stream_beside_the_raw_one_is_not_a_second_camera():
    """Jazzy's `ros2 bag record -a` records zstd_image_transport's /zstd beside the raw."""
    image, compressed = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'
    info = 'sensor_msgs/msg/CameraInfo'
    topics = {f'/cam/{side}/{name}': kind for side in ('left', 'right')
              for name, kind in (('image_rect', image), ('image_rect/zstd', compressed),
                                 ('image_rect/compressed', compressed), ('camera_info', info))}
    assert find_stereo_topics(topics).as_list()[:2] == ['/cam/left/image_rect',
                                                        '/cam/right/image_rect']
    # Beside /compressed alone, /compressed (PNG or JPEG) is read; alone, zstd is refused.
    no_raw = {t: k for t, k in topics.items() if k != image}
    assert find_stereo_topics(no_raw).left_image == '/cam/left/image_rect/compressed'
    zstd_only = {t: k for t, k in no_raw.items() if 'compressed' not in t}
    with pytest.raises(DatasetError, match=r"left image is recorded only as "
                       r"/cam/left/image_rect/zstd, zstd_image_transport's stream, which this "
                       r'package cannot decode'):
        find_stereo_topics(zstd_only)


def test_an_interrupt_while_the_output_bag_closes_keeps_it(kitti_bag, tmp_path, monkeypatch,
                                                           capsys):
    import os
    import signal
    from stereo_depth_ros.bags import writer as writer_module
    close = writer_module.ChecksummedMcapWriter.close

    def close_after_ctrl_c(self, *args):
        os.kill(os.getpid(), signal.SIGINT)  # deferred: the close goes on
        return close(self, *args)

    monkeypatch.setattr(writer_module.ChecksummedMcapWriter, 'close', close_after_ctrl_c)
    code = main(['process-bag', str(kitti_bag), str(tmp_path / 'out'), '--backend', 'sgbm',
                 '--backend-option', 'disparity_range=16'])
    assert code == 130  # the user's stop stands, once the bag is safe
    err = capsys.readouterr().err
    assert 'closing the output bag, which holds everything written so far' in err
    assert f'interrupted while {tmp_path / "out"} was closed; it was closed properly and ' \
        'holds everything written to it' in err
    assert len(read_bag(tmp_path / 'out')['/stereo/disparity']) == FRAMES


def test_process_bag_pairs_as_the_params_file_says_unless_told_otherwise(
        drive, tmp_path, capsys):
    """approximate_sync and its tolerance of the node's file (the queue stays looser)."""
    jittered = tmp_path / 'jittered'  # the cameras' own stamps: 2 ms apart
    kitti_to_bag(drive, jittered, storage='mcap', keep_camera_stamps=True, progress=False)
    params = tmp_path / 'depth.yaml'
    params.write_text(yaml.safe_dump({'/**/stereo_depth_node': {'ros__parameters': {
        'approximate_sync': True, 'approximate_sync_tolerance_seconds': 0.001}}}))
    flags = ['--backend', 'sgbm', '--backend-option', 'disparity_range=16']
    assert main(['process-bag', str(jittered), str(tmp_path / 'a'), '--params-file', str(params),
                 *flags]) == 2
    assert f'above approximate_sync_tolerance_seconds of {params} 0.001 s' in \
        capsys.readouterr().err  # the file's tolerance, named as such
    assert main(['process-bag', str(jittered), str(tmp_path / 'b'), '--params-file', str(params),
                 '--slop', '0.01', *flags]) == 0
    assert len(read_bag(tmp_path / 'b')['/stereo/disparity']) == FRAMES
    assert main(['process-bag', str(jittered), str(tmp_path / 'c'), '--params-file', str(params),
                 '--no-approximate-sync', *flags]) == 2
    assert 'never matched' in capsys.readouterr().err


def test_process_bag_sync_flags_beat_the_params_file_and_the_default_is_exact(
        drive, tmp_path, capsys):
    jittered = tmp_path / 'jittered'  # left and right stamps 2 ms apart
    kitti_to_bag(drive, jittered, storage='mcap', keep_camera_stamps=True, progress=False)
    flags = ['--backend', 'sgbm', '--backend-option', 'disparity_range=16']
    assert main(['process-bag', str(jittered), str(tmp_path / 'a'), *flags]) == 2
    assert 'never matched' in capsys.readouterr().err          # default: exact stamps
    assert main(['process-bag', str(jittered), str(tmp_path / 'b'), '--approximate-sync',
                 *flags]) == 0                                   # the flag alone
    params = tmp_path / 'depth.yaml'
    params.write_text(yaml.safe_dump({'/**/stereo_depth_node': {'ros__parameters': {
        'approximate_sync': True, 'approximate_sync_tolerance_seconds': 0.01}}}))
    assert main(['process-bag', str(jittered), str(tmp_path / 'c'), '--params-file',
                 str(params), '--no-approximate-sync', *flags]) == 2   # the flag beats the file


def test_a_damaged_zstd_frame_is_left_as_it_is():
    from stereo_depth_ros.bags.reader import _decompressed
    junk = b'\x28\xb5\x2f\xfd' + b'not a zstd frame'
    assert _decompressed(junk) == junk


def test_only_topics_with_no_decoded_message_are_named_garbled(tmp_path, monkeypatch):
    write_recorded_bag(tmp_path / 'recorded')
    original = BagInput.deserialize
    seen = []

    def garbled(self, data, connection):
        if connection.topic == '/cam/right/camera_info' or (
                connection.topic == '/cam/left/image_rect_color' and not seen):
            seen.append(connection.topic)
            raise DatasetError('bad CDR')
        return original(self, data, connection)

    monkeypatch.setattr(BagInput, 'deserialize', garbled)
    with pytest.raises(StereoDepthError, match=r'no message on /cam/right/camera_info could be '
                       r'decoded \(/cam/right/camera_info: 2\)'):
        process_bag(tmp_path / 'recorded', tmp_path / 'out', sgbm_pipeline(), progress=False)


def write_bag_one_side_after_the_other(path, frames, size=640):
    """An mcap bag written with all left messages first, then all right ones.

    Its 1 MiB chunks each hold one side, so they overlap in time: file order is not time
    order. The right images carry the left stamps.
    """
    typestore = get_typestore(Stores.ROS2_JAZZY)
    types = MessageTypes.from_typestore(typestore)
    image_type, info_type = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'
    camera = StereoCameraModel(size, size, 80.0, 80.0, size / 2, size / 2, size / 2, 0.3)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (size, size + SHIFT), dtype=np.uint8)
    left, right = texture[:, :size].copy(), texture[:, SHIFT:].copy()
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        for side, view in (('left', left), ('right', right)):
            image = writer.add_connection(f'/stereo/{side}/image_rect', image_type,
                                          typestore=typestore)
            info = writer.add_connection(f'/stereo/{side}/camera_info', info_type,
                                         typestore=typestore)
            for frame in range(frames):
                stamp = START_NS + frame * 100_000_000
                header = make_header(stamp, 'cam', types)
                infos = make_camera_infos(camera, header, header, types)
                writer.write(image, stamp, typestore.serialize_cdr(
                    array_to_image(view, 'mono8', header, types), image_type))
                writer.write(info, stamp, typestore.serialize_cdr(
                    infos[side == 'right'], info_type))


def test_an_mcap_bag_is_read_in_time_order_when_its_chunks_overlap(tmp_path):
    # process-bag read a healthy mcap bag chunk after chunk: here every left image came
    # before every right one, the synchronizer's queue of 2 dropped the early left images
    # before their partners came, and 2 of the 6 pairs were processed.
    write_bag_one_side_after_the_other(tmp_path / 'sided', frames=6)
    with BagInput(tmp_path / 'sided') as bag:
        assert bag.scan_report is not None  # read by the scan, not rosbags' reader
        times = [log_time for _, log_time, _ in bag.messages()]
        assert bag.scan_report.chunks >= 3 and bag.scan_report.messages == 24
    assert times == sorted(times) and len(times) == 24
    summary = process_bag(tmp_path / 'sided', tmp_path / 'out', sgbm_pipeline(),
                          queue_size=2, progress=False, outputs=['disparity'])
    assert summary.pairs == 6


def write_raw_mcap(path, messages, size=600_000):
    """An mcap bag of ``(topic, log time)`` messages of ``size`` bytes each, in that order.

    rosbags closes a chunk once it holds over 1 MiB: here every second message.
    """
    typestore = get_typestore(Stores.ROS2_JAZZY)
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for topic, log_time in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, 'std_msgs/msg/String',
                                                           typestore=typestore)
            writer.write(connections[topic], log_time, bytes(size))


def test_a_chunk_of_messages_all_at_time_zero_is_ordered_too(tmp_path):
    # Its header's start and end times are 0, read as an empty chunk: it came out in file
    # order, after later messages (rosbag2 stamps messages before the first /clock at 0).
    write_raw_mcap(tmp_path / 'zero', [('/a', 5), ('/a', 6), ('/b', 0), ('/b', 0), ('/a', 7)])
    with BagInput(tmp_path / 'zero') as bag:
        assert [time for _, time, _ in bag.messages()] == [0, 0, 5, 6, 7]
        assert bag.scan_report.chunks == 3


def test_messages_held_back_for_time_order_are_bounded(tmp_path, monkeypatch):
    # One slow topic's chunk written last, starting at the first stamp: ordering all the
    # rest behind it would hold the whole bag in memory. Past the bound the oldest go out,
    # counted as out of order; none is lost.
    messages = [('/a', 10 + i) for i in range(8)] + [('/b', 0), ('/b', 100)]
    write_raw_mcap(tmp_path / 'late', messages)
    monkeypatch.setattr(mcap_scan, 'MAX_HELD_BYTES', 2_000_000)
    with BagInput(tmp_path / 'late') as bag:
        times = [time for _, time, _ in bag.messages()]
        assert sorted(times) == sorted(time for _, time in messages)
        assert times[0] == 10 and bag.scan_report.out_of_order > 0
    monkeypatch.setattr(mcap_scan, 'MAX_HELD_BYTES', 10 ** 9)
    with BagInput(tmp_path / 'late') as bag:
        assert [time for _, time, _ in bag.messages()] == sorted(t for _, t in messages)
        assert bag.scan_report.out_of_order == 0


def test_a_listed_message_count_of_zero_is_a_count(tmp_path):
    # A metadata.yaml that lists no message is a count (what was kept is more than it
    # says), not a missing one.
    from stereo_depth_ros.bags.reader import _bag_information, _listed_message_count
    (tmp_path / 'metadata.yaml').write_text(yaml.safe_dump(
        {'rosbag2_bagfile_information': {'message_count': 0}}))
    assert _listed_message_count(_bag_information(tmp_path)) == 0


def split_bag(bag, parts):
    """Join one-file mcap bags (folders) into ``bag``, one split into ``bag_<n>.mcap`` files.

    As ``ros2 bag record --max-bag-size`` writes it: metadata.yaml lists the files in the
    order given, with each file's message count, and the topics' counts over all of them.
    The part folders are used up.
    """
    bag.mkdir()
    infos = [yaml.safe_load((part / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
             for part in parts]
    info, files, counts = infos[0], [], {}
    for index, (part, part_info) in enumerate(zip(parts, infos)):
        entry = part_info['files'][0]
        entry['path'] = f'{bag.name}_{index}.mcap'
        next(part.glob('*.mcap')).rename(bag / entry['path'])
        shutil.rmtree(part)
        files.append(entry)
        for topic in part_info['topics_with_message_count']:
            name = topic['topic_metadata']['name']
            counts[name] = counts.get(name, 0) + topic['message_count']
    for topic in info['topics_with_message_count']:
        topic['message_count'] = counts[topic['topic_metadata']['name']]
    start = min(entry['starting_time']['nanoseconds_since_epoch'] for entry in files)
    end = max(entry['starting_time']['nanoseconds_since_epoch'] + entry['duration']['nanoseconds']
              for entry in files)
    info.update(files=files, relative_file_paths=[entry['path'] for entry in files],
                message_count=sum(counts.values()), duration={'nanoseconds': end - start},
                starting_time={'nanoseconds_since_epoch': start})
    (bag / 'metadata.yaml').write_text(yaml.safe_dump({'rosbag2_bagfile_information': info}))
    return bag


def test_a_split_mcap_bag_is_read_from_all_its_files(tmp_path):
    # ros2 bag record --max-bag-size writes several mcap files: all are read, not the first
    # one alone, and each is scanned.
    write_raw_mcap(tmp_path / 'a', [('/a', 1), ('/a', 2)], size=10)
    write_raw_mcap(tmp_path / 'b', [('/a', 3), ('/a', 4), ('/a', 5)], size=10)
    bag = split_bag(tmp_path / 'split', [tmp_path / 'a', tmp_path / 'b'])
    with BagInput(bag) as split:
        assert [log_time for _, log_time, _ in split.messages()] == [1, 2, 3, 4, 5]
        assert [(path.name, report.messages, report.listed_messages, report.complete)
                for path, report in split.scan_reports] == [
            ('split_0.mcap', 2, 2, True), ('split_1.mcap', 3, 3, True)]
        assert split.damage is None


def test_the_files_of_a_split_bag_are_read_in_log_time_order(tmp_path):
    # Files that overlap in time (the messages around a split), and a metadata.yaml that
    # lists the later file first: rosbags' reader gives one file after the other.
    write_raw_mcap(tmp_path / 'a', [('/b', 3), ('/a', 4), ('/a', 6)], size=10)
    write_raw_mcap(tmp_path / 'b', [('/c', 1), ('/b', 2), ('/b', 5), ('/a', 7)], size=10)
    bag = split_bag(tmp_path / 'split', [tmp_path / 'a', tmp_path / 'b'])
    in_time_order = [('/c', 1), ('/b', 2), ('/b', 3), ('/a', 4), ('/b', 5), ('/a', 6), ('/a', 7)]
    with BagInput(bag) as split:
        read = [(connection.topic, log_time) for connection, log_time, _ in split.messages()]
        assert read == in_time_order
    # Recovered: the channels of both files, numbered anew (each file numbers its own: /b
    # and /c are channel 1 of theirs).
    (bag / 'metadata.yaml').unlink()
    with BagInput(bag) as split:
        assert split.recovered_from is not None
        connections = {connection.topic: connection.id for connection in split.connections}
        assert sorted(connections) == ['/a', '/b', '/c']
        assert len(set(connections.values())) == 3
        read = [(connection.topic, connection.id, log_time)
                for connection, log_time, _ in split.messages()]
        assert [(topic, log_time) for topic, _, log_time in read] == in_time_order
        assert all(connections[topic] == ident for topic, ident, _ in read)


def chunk_at(mcap, index):
    """Return the offset and length of the ``index``-th chunk record of an mcap file."""
    data = Path(mcap).read_bytes()
    at, chunks = len(mcap_scan.MAGIC), -1
    while True:
        opcode, size = data[at], int.from_bytes(data[at + 1:at + 9], 'little')
        chunks += opcode == 0x06
        if chunks == index:
            return at, size
        at += 9 + size


def damage_chunk(mcap, how):
    """Damage the first chunk of an mcap file whose summary stays whole.

    ``crc``: bytes inside it changed; ``length``: its record length broken.
    """
    data = bytearray(Path(mcap).read_bytes())
    at, size = chunk_at(mcap, 0)
    if how == 'crc':
        middle = at + 9 + size // 2
        data[middle:middle + 8] = bytes(255 - value for value in data[middle:middle + 8])
    else:
        data[at + 1:at + 9] = (1 << 40).to_bytes(8, 'little')
    Path(mcap).write_bytes(bytes(data))


def split_kitti_bag(drive, bag):
    """The drive as a bag split into two mcap files: the first frame, then the others."""
    for part, frames in (('a', ':1'), ('b', '1:')):
        kitti_to_bag(drive, bag.parent / part, storage='mcap', frames=frames, progress=False)
    return split_bag(bag, [bag.parent / 'a', bag.parent / 'b'])


@pytest.mark.parametrize('how', ['crc', 'length'])
def test_damage_in_one_file_of_a_split_bag_is_skipped_and_named_or_fails_strict(
        drive, tmp_path, capsys, how):
    # A split bag was read by rosbags alone: a bad chunk CRC failed the whole run, strict
    # or not, and a broken record (its summary whole) passed --strict unseen.
    bag = split_kitti_bag(drive, tmp_path / 'split')
    damage_chunk(bag / 'split_1.mcap', how)
    summary = process_bag(bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.pairs == 1 and summary.recovered_from is None
    assert summary.damage.startswith('split_1.mcap: kept 0 of the ')
    assert 'split_0.mcap' not in summary.damage
    assert len(read_bag(tmp_path / 'out')['/stereo/disparity']) == 1
    with pytest.raises(DatasetError, match=f'bag {bag} is damaged: split_1.mcap: kept 0 .*'
                                           r'\(--strict\)$'):
        process_bag(bag, tmp_path / 'strict', sgbm_pipeline(), progress=False, strict=True)
    assert not (tmp_path / 'strict').exists()
    capsys.readouterr()
    assert main(['process-bag', str(bag), str(tmp_path / 'cli'), '--backend', 'sgbm',
                 '--strict']) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if 'error' in line]
    assert len(errors) == 1 and 'is damaged: split_1.mcap: ' in errors[0]
    assert not (tmp_path / 'cli').exists()


@pytest.mark.parametrize('cut', [0, 1])
def test_a_split_bag_with_a_file_cut_off_is_recovered_or_fails_strict(drive, tmp_path, cut):
    # The Reader cannot open a split bag one of whose files is cut off: it was an error,
    # though the other files are whole (one mcap file alone is recovered by the scan).
    bag = split_kitti_bag(drive, tmp_path / 'split')
    mcap = bag / f'split_{cut}.mcap'
    at, size = chunk_at(mcap, 0)
    mcap.write_bytes(mcap.read_bytes()[:at + 9 + size])  # its messages kept, no summary
    summary = process_bag(bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.pairs == FRAMES
    assert f'(split_{cut}.mcap, of its 2 mcap files)' in summary.recovered_from
    assert summary.damage.startswith(f'split_{cut}.mcap: kept ')
    assert 'no footer: the file is cut off' in summary.damage
    with pytest.raises(DatasetError, match=rf'split_{cut}.mcap, of its 2 mcap files\) '
                                           r'\(--strict: no recovery\)'):
        process_bag(bag, tmp_path / 'strict', sgbm_pipeline(), progress=False, strict=True)
    assert not (tmp_path / 'strict').exists()


def test_a_split_bag_without_metadata_is_recovered_from_all_its_files(drive, tmp_path):
    bag = split_kitti_bag(drive, tmp_path / 'split')
    (bag / 'metadata.yaml').unlink()
    summary = process_bag(bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.pairs == FRAMES and 'no metadata.yaml' in summary.recovered_from
    assert summary.damage is None
    with pytest.raises(DatasetError, match=r'no metadata.yaml \(--strict: no recovery\)'):
        process_bag(bag, tmp_path / 'strict', sgbm_pipeline(), progress=False, strict=True)
    assert not (tmp_path / 'strict').exists()


def test_strict_fails_on_an_mcap_whose_data_stops_though_its_summary_is_whole(tmp_path):
    # A chunk with a broken length in the middle of a bag rosbags can open: the scan stops
    # there, and --strict must not pass the messages before it off as the whole bag.
    write_raw_mcap(tmp_path / 'broken', [('/a', 10 + i) for i in range(6)])
    mcap = next((tmp_path / 'broken').glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    at, chunks = len(mcap_scan.MAGIC), 0
    while chunks < 2:
        opcode, size = data[at], int.from_bytes(data[at + 1:at + 9], 'little')
        chunks += opcode == 0x06
        if chunks < 2:
            at += 9 + size
    data[at + 1:at + 9] = (1 << 40).to_bytes(8, 'little')
    mcap.write_bytes(bytes(data))
    with BagInput(tmp_path / 'broken') as bag:
        assert bag.recovered_from is None  # opened by rosbags' reader
        assert len(list(bag.messages())) == 2 and bag.scan_report.stopped_at is not None
    with pytest.raises(DatasetError, match=r'is damaged: kept 2 of the 6 .*--strict'):
        with BagInput(tmp_path / 'broken', strict=True) as bag:
            list(bag.messages())


def test_outputs_under_the_root_namespace_are_not_doubly_slashed(kitti_bag, tmp_path):
    summary = process_bag(kitti_bag, tmp_path / 'out', sgbm_pipeline(), namespace='/',
                          outputs=['disparity'], progress=False)
    assert summary.namespace == '' and summary.pairs == FRAMES
    assert len(read_bag(tmp_path / 'out')['/disparity']) == FRAMES


def test_every_message_read_is_counted_and_outputs_are_logged_when_their_pair_came(
        kitti_bag, tmp_path):
    summary = process_bag(kitti_bag, tmp_path / 'out', sgbm_pipeline(), outputs=['disparity'],
                          progress=False)
    inputs = read_bag(kitti_bag)
    assert summary.messages_in == sum(len(messages) for messages in inputs.values())
    logged = {log_time for topic in ('/stereo/left/image_rect', '/stereo/right/image_rect',
                                     '/stereo/left/camera_info', '/stereo/right/camera_info')
              for log_time, _ in inputs[topic]}
    for log_time, disparity in read_bag(tmp_path / 'out')['/stereo/disparity']:
        # The log time of the message that completed the pair, in ns, near the left stamp.
        assert log_time in logged
        assert abs(log_time - stamp_to_ns(disparity.header.stamp)) < 50_000_000


def test_the_first_undecodable_message_and_bad_pair_are_named_with_its_stamp_in_s(
        kitti_bag, tmp_path, monkeypatch):
    original, garbled = BagInput.deserialize, []

    def garble_right_infos_after_the_first(self, data, connection):
        if connection.topic == '/stereo/right/camera_info':
            garbled.append(connection.topic)
            if len(garbled) > 1:
                raise DatasetError(f'bad CDR #{len(garbled) - 1}')
        return original(self, data, connection)

    monkeypatch.setattr(BagInput, 'deserialize', garble_right_infos_after_the_first)
    summary = process_bag(kitti_bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.undecodable == {'/stereo/right/camera_info': FRAMES - 1}
    assert summary.first_undecodable == 'bad CDR #1'
    monkeypatch.setattr(BagInput, 'deserialize', original)
    pipeline = SecondPairBad(create_backend('sgbm', disparity_range=16))
    summary = process_bag(kitti_bag, tmp_path / 'bad', pipeline, progress=False)
    assert summary.first_error == ('a bad pair, made up by the test (stamp '
                                   f'{(START_NS + 100_000_000) / 1e9:.6f})')


def test_an_output_bag_deep_inside_the_input_bag_is_refused(kitti_bag, tmp_path):
    bag = tmp_path / 'in'
    shutil.copytree(kitti_bag, bag)
    with pytest.raises(DatasetError, match='is inside the input bag'):
        process_bag(bag, bag / 'results' / 'out', sgbm_pipeline(), progress=False)
    assert sorted(path.name for path in bag.iterdir()) == sorted(
        path.name for path in kitti_bag.iterdir())


def test_a_recovered_bag_keeps_each_topic_s_offered_qos(tmp_path):
    from stereo_depth_ros.bags.writer import LATCHED_QOS, SENSOR_QOS
    typestore = get_typestore(Stores.ROS2_JAZZY)
    header = make_header(START_NS, 'map', MessageTypes.from_typestore(typestore))
    with BagWriter(tmp_path / 'bag') as writer:
        writer.write('/tf_static', typestore.types['tf2_msgs/msg/TFMessage'](transforms=[]),
                     START_NS, qos=(LATCHED_QOS,))
        writer.write('/stereo/left/camera_info', make_camera_infos(
            CAMERA, header, header, MessageTypes.from_typestore(typestore))[0], START_NS)
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    with BagInput(tmp_path / 'bag') as bag:
        assert bag.recovered_from is not None
        assert {c.topic: c.ext.offered_qos_profiles for c in bag.connections} == {
            '/tf_static': [LATCHED_QOS], '/stereo/left/camera_info': [SENSOR_QOS]}


def test_the_scan_report_counts_and_measures_what_was_lost():
    from stereo_depth_ros.bags.mcap_scan import ScanReport
    assert ScanReport(messages=6, listed_messages=6).line() == \
        'kept 6 of the 6 messages metadata.yaml lists (0 lost)'
    cut = ScanReport(file_size=1000, messages=2, stopped_at=400, stop_reason='cut')
    assert '(cut; 600 bytes, 60% of what is left of the file, unread' in cut.line()


def test_messages_at_the_time_the_next_chunk_starts_are_not_out_of_order(tmp_path):
    write_raw_mcap(tmp_path / 'touching', [('/a', 5), ('/a', 6), ('/b', 6), ('/b', 7)])
    with BagInput(tmp_path / 'touching') as bag:
        assert [time for _, time, _ in bag.messages()] == [5, 6, 6, 7]
        assert bag.scan_report.chunks == 2 and bag.scan_report.out_of_order == 0


def test_a_stale_staging_folder_of_a_killed_run_is_replaced(tmp_path):
    from stereo_depth_ros.atomic_files import staging_path
    stale = staging_path(tmp_path / 'out') / 'out'
    stale.mkdir(parents=True)
    (stale / 'metadata.yaml').write_text('left by a killed run')
    with BagWriter(tmp_path / 'out') as writer:
        writer.write('/stereo/left/camera_info', make_camera_infos(
            CAMERA, make_header(START_NS, 'cam', writer.types),
            make_header(START_NS, 'cam', writer.types), writer.types)[0], START_NS)
    assert len(read_bag(tmp_path / 'out')['/stereo/left/camera_info']) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ['out']


def test_a_topic_is_written_with_one_type_only(tmp_path):
    with pytest.raises(DatasetError, match='topic /a written with two types'):
        with BagWriter(tmp_path / 'out') as writer:
            writer.add_topic('/a', 'std_msgs/msg/String')
            writer.add_topic('/a', 'sensor_msgs/msg/Image')
    assert list(tmp_path.iterdir()) == []


def test_extraction_names_what_a_damaged_split_bag_lost(drive, tmp_path, capsys):
    # adapt and check-camera extract pairs from a bag: its damage was recovered silently.
    bag = split_kitti_bag(drive, tmp_path / 'split')
    damage_chunk(bag / 'split_1.mcap', 'crc')
    damage: list[str] = []
    assert extract_pairs(bag, tmp_path / 'pairs', progress=False, damage=damage) == 1
    assert len(damage) == 1 and damage[0].startswith('damaged, messages lost: split_1.mcap: '
                                                     'kept 0 of the ')
    whole = split_kitti_bag(drive, tmp_path / 'whole')
    assert extract_pairs(whole, tmp_path / 'whole_pairs', progress=False, damage=damage) == \
        FRAMES and len(damage) == 1
    at, size = chunk_at(whole / 'whole_0.mcap', 0)
    cut = (whole / 'whole_0.mcap').read_bytes()[:at + 9 + size]
    (whole / 'whole_0.mcap').write_bytes(cut)  # the Reader cannot open the bag
    assert extract_pairs(whole, tmp_path / 'cut_pairs', progress=False, damage=damage) == FRAMES
    assert damage[1].startswith('recovered: cannot open bag ') and 'whole_0.mcap, of its 2 ' \
        'mcap files' in damage[1] and damage[2].startswith('damaged, messages lost: whole_0')
    assert main(['check-camera', '--bag', str(bag), '--no-progress']) in (0, 1)
    out = capsys.readouterr().out
    assert 'bag: damaged, messages lost: split_1.mcap: kept 0 of the ' in out


def test_metadata_yaml_is_read_as_often_whatever_the_number_of_files(tmp_path, monkeypatch):
    # Each file's message count was looked up by parsing metadata.yaml again: a bag of many
    # files (ros2 bag record --max-bag-duration over hours) took quadratic time to open
    # (200 files: 14 s, metadata.yaml parsed 200 times).
    reads = []
    read_text = Path.read_text

    def counted(path, *args, **kwargs):
        if path.name == 'metadata.yaml':
            reads.append(path.parent.name)
        return read_text(path, *args, **kwargs)

    for count in (2, 6):
        parts = []
        for index in range(count):
            write_raw_mcap(tmp_path / f'{count}_{index}', [('/a', 10 * index + 1)], size=10)
            parts.append(tmp_path / f'{count}_{index}')
        split_bag(tmp_path / f'split{count}', parts)
    monkeypatch.setattr(Path, 'read_text', counted)
    for count in (2, 6):
        with BagInput(tmp_path / f'split{count}') as split:
            assert [report.listed_messages for _, report in split.scan_reports] == [1] * count
            assert len(list(split.messages())) == count
    assert reads.count('split2') == reads.count('split6') > 0


def test_the_one_file_left_of_a_split_bag_is_held_to_its_own_count(drive, tmp_path):
    # Its messages were counted against the whole bag's: the missing file's reported as lost
    # from it, where it is cut off too.
    bag = split_kitti_bag(drive, tmp_path / 'split')
    files = yaml.safe_load((bag / 'metadata.yaml').read_text())[
        'rosbag2_bagfile_information']['files']
    own = next(entry['message_count'] for entry in files if entry['path'] == 'split_1.mcap')
    (bag / 'split_0.mcap').unlink()
    mcap = bag / 'split_1.mcap'
    at, size = chunk_at(mcap, 0)
    mcap.write_bytes(mcap.read_bytes()[:at + 9 + size])  # its first chunk kept, no summary
    summary = process_bag(bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert 'split_0.mcap' in summary.recovered_from
    assert f' of the {own} messages metadata.yaml lists' in summary.damage


def test_recovery_names_the_mcap_files_metadata_yaml_does_not_list(drive, tmp_path):
    # Every mcap file in the folder is read when the bag must be recovered: one metadata.yaml
    # does not list (a last file after a kill, or another recording's) is named.
    bag = split_kitti_bag(drive, tmp_path / 'split')
    (bag / 'extra.mcap').write_bytes((bag / 'split_1.mcap').read_bytes())
    mcap = bag / 'split_0.mcap'
    at, size = chunk_at(mcap, 0)
    mcap.write_bytes(mcap.read_bytes()[:at + 9 + size])  # the Reader cannot open the bag
    summary = process_bag(bag, tmp_path / 'out', sgbm_pipeline(), progress=False)
    assert summary.recovered_from.endswith(
        '(read too: extra.mcap, which metadata.yaml does not list)')
    (bag / 'extra.mcap').unlink()
    summary = process_bag(bag, tmp_path / 'out2', sgbm_pipeline(), progress=False)
    assert 'read too' not in summary.recovered_from
