"""KITTI calibration, time stamps and folder layouts; errors name the bad file."""

import numpy as np
import pytest

from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.errors import DatasetError
from stereo_depth_ros.kitti import (SYNTHETIC_PERIOD_NS, SYNTHETIC_START_NS, camera_from_calib,
                                    format_kitti_time, open_kitti, parse_calib_file,
                                    parse_kitti_time, read_timestamps, write_kitti_disparity,
                                    write_raw_drive)

#: Cameras 2 and 3 of KITTI raw 2011_09_26 (calib_cam_to_cam.txt), rectified.
KITTI_2011_09_26 = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_02: 1 0 0 0 1 0 0 0 1
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 \
1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
S_rect_03: 1.242000e+03 3.750000e+02
P_rect_03: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 \
1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03
""".replace('\\\n', '')

CAMERA = StereoCameraModel(48, 32, 60.0, 60.0, 23.5, 23.5, 15.5, 0.54)


def assert_same_camera(camera, expected=CAMERA):
    """Compare models up to the 12 digits a calibration file keeps."""
    for name in ('width', 'height', 'fx', 'fy', 'cx_left', 'cx_right', 'cy', 'baseline'):
        assert getattr(camera, name) == pytest.approx(getattr(expected, name), rel=1e-9), name


def images(count, seed=0):
    """Random RGB pairs of the fixture camera's size."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture
def drive(tmp_path):
    """A 3-frame KITTI raw drive whose camera 2 sits 6 cm from camera 0, as in KITTI."""
    stamps = [parse_kitti_time('2011-09-26 13:02:25.964389445') + i * 103_000_000
              for i in range(3)]
    return write_raw_drive(tmp_path, images(3, 1), images(3, 2), CAMERA, stamps,
                           date='2011_09_26', drive=5,
                           right_stamps_ns=[s + 1_000 for s in stamps])


def test_real_kitti_calibration_gives_the_camera_2_to_3_baseline(tmp_path):
    path = tmp_path / 'calib_cam_to_cam.txt'
    path.write_text(KITTI_2011_09_26)
    camera = camera_from_calib(parse_calib_file(path), path)
    assert camera.fx == pytest.approx(721.5377)
    assert (camera.width, camera.height) == (1242, 375)
    assert camera.baseline == pytest.approx((44.85728 + 339.5242) / 721.5377)
    assert camera.baseline == pytest.approx(0.5327, abs=1e-4)  # not 339.5242 / fx = 0.4706


def test_written_calibration_has_camera_0_offsets_and_reads_back(drive):
    calib = parse_calib_file(drive.parent / 'calib_cam_to_cam.txt')
    p02 = calib['P_rect_02'].reshape(3, 4)
    p03 = calib['P_rect_03'].reshape(3, 4)
    assert p02[0, 3] == pytest.approx(60.0 * 0.06)
    assert -p03[0, 3] / 60.0 == pytest.approx(0.48)  # the P_rect_03-only bug would give this
    assert_same_camera(camera_from_calib(calib, 'x'))
    # The translations have the projections' signs, as in KITTI's files (T_02 +0.06 m with
    # P_rect_02[0, 3] +44.86 px, T_03 -0.47 m with -339.5 px).
    for cam in ('00', '01', '02', '03'):
        projection = calib[f'P_rect_{cam}'].reshape(3, 4)
        assert calib[f'T_{cam}'][0] == pytest.approx(projection[0, 3] / 60.0), cam
    assert calib['T_02'][0] == pytest.approx(0.06) and calib['T_03'][0] == pytest.approx(-0.48)


def test_kitti_time_stamps():
    assert parse_kitti_time('2011-09-26 13:02:25.964389445') == 1_317_042_145_964_389_445
    assert parse_kitti_time('2011-09-26 13:02:25.5') == 1_317_042_145_500_000_000
    assert format_kitti_time(1_317_042_145_000_000_007) == '2011-09-26 13:02:25.000000007'
    with pytest.raises(ValueError, match='not a KITTI time stamp'):
        parse_kitti_time('yesterday')


def test_raw_drive_frames(drive):
    sequence = open_kitti(drive)
    assert sequence.layout == 'raw' and len(sequence) == 3
    frame = sequence[1]
    assert frame.name == '0000000001'
    assert frame.left_stamp_ns == 1_317_042_146_067_389_445
    assert frame.right_stamp_ns == frame.left_stamp_ns + 1_000
    left, right = sequence.read_pair(frame)
    np.testing.assert_array_equal(left, images(3, 1)[1])
    np.testing.assert_array_equal(right, images(3, 2)[1])
    assert [f.index for f in sequence[1:]] == [1, 2] and sequence[-1].index == 2
    assert [f.index for f in open_kitti(drive, '1:')] == [1, 2]
    assert [f.index for f in open_kitti(drive, ':-1')] == [0, 1]
    with pytest.raises(ValueError, match='A:B'):
        open_kitti(drive, 'x:y')


def test_stereo_2015_layout_gets_10_hz_stamps(tmp_path):
    for name in ('image_2', 'image_3', 'calib_cam_to_cam'):
        (tmp_path / name).mkdir()
    raw = tmp_path / 'raw'
    write_raw_drive(raw, images(2), images(2, 3), CAMERA, [0, 1])
    for index in range(2):
        for cam in ('2', '3'):
            source = next(raw.glob(f'*/*/image_0{cam}/data/{index:010d}.png'))
            (tmp_path / f'image_{cam}' / f'{index:06d}_10.png').write_bytes(source.read_bytes())
        (tmp_path / 'calib_cam_to_cam' / f'{index:06d}.txt').write_text(
            next(raw.glob('*/calib_cam_to_cam.txt')).read_text())
    sequence = open_kitti(tmp_path)
    assert sequence.layout == 'stereo2015' and len(sequence) == 2
    assert sequence[1].left_stamp_ns - sequence[0].left_stamp_ns == SYNTHETIC_PERIOD_NS
    assert_same_camera(sequence[0].camera)
    # A selection's first frame gets the first made-up stamp, as a whole folder's does.
    later = open_kitti(tmp_path, '1:')
    assert later[0].index == 1 and later[0].left_stamp_ns == SYNTHETIC_START_NS
    (tmp_path / 'calib_cam_to_cam' / '000001.txt').unlink()
    with pytest.raises(DatasetError, match='000001.txt does not exist'):
        open_kitti(tmp_path)


def test_corrupt_png_is_named(drive):
    bad = drive / 'image_03' / 'data' / '0000000002.png'
    bad.write_bytes(b'\x89PNG not really')
    sequence = open_kitti(drive)
    with pytest.raises(DatasetError, match=f'{bad}.*corrupt'):
        sequence.read_pair(sequence[2])


def test_missing_calibration_is_named(drive):
    (drive.parent / 'calib_cam_to_cam.txt').unlink()
    with pytest.raises(DatasetError, match='calib_cam_to_cam.txt does not exist'):
        open_kitti(drive)


def test_calibration_without_camera_3_is_named(drive):
    path = drive.parent / 'calib_cam_to_cam.txt'
    path.write_text(''.join(line + '\n' for line in path.read_text().splitlines()
                            if not line.startswith('P_rect_03')))
    with pytest.raises(DatasetError, match='no P_rect_03 entry'):
        open_kitti(drive)


def test_a_frame_one_camera_lacks_stays_in_and_is_named_when_read(drive, capfd):
    # A partial download: the time stamp files still have the frame's line. The error is
    # the only word on it: OpenCV, asked to read the missing file, printed a warning first.
    missing = drive / 'image_03' / 'data' / '0000000001.png'
    missing.unlink()
    sequence = open_kitti(drive)
    assert [frame.name for frame in sequence] == ['0000000000', '0000000001', '0000000002']
    assert sequence[2].left_stamp_ns == read_timestamps(drive / 'image_02' / 'timestamps.txt')[2]
    with pytest.raises(DatasetError, match=f'{missing}.*missing'):
        sequence.read_pair(sequence[1])
    assert capfd.readouterr().err == ''
    assert open_kitti(drive, '2:')[0].name == '0000000002'


def test_frames_take_the_time_stamp_line_of_their_number(drive):
    # Frame 1 missing from both cameras: frame 2 keeps line 3 of timestamps.txt.
    for cam in ('02', '03'):
        (drive / f'image_{cam}' / 'data' / '0000000001.png').unlink()
    stamps = read_timestamps(drive / 'image_02' / 'timestamps.txt')
    sequence = open_kitti(drive)
    assert [frame.name for frame in sequence] == ['0000000000', '0000000002']
    assert sequence[1].left_stamp_ns == stamps[2]


def test_frame_numbers_without_padding_sort_and_take_their_lines_by_number(drive):
    # 2, 9 and 10 sort as text 10, 2, 9; the frames take lines 2, 9 and 10 of 11.
    path = drive / 'image_02' / 'timestamps.txt'
    stamps = [1_000_000_000 + i * 100_000_000 for i in range(11)]
    for cam in ('02', '03'):
        (drive / f'image_{cam}' / 'timestamps.txt').write_text(
            ''.join(format_kitti_time(stamp) + '\n' for stamp in stamps))
        data = drive / f'image_{cam}' / 'data'
        for old, new in ((0, 2), (1, 10), (2, 9)):
            (data / f'{old:010d}.png').rename(data / f'{new}.png')
    sequence = open_kitti(drive)
    assert [frame.name for frame in sequence] == ['2', '9', '10']
    assert [frame.left_stamp_ns for frame in sequence] == [stamps[2], stamps[9], stamps[10]]
    assert read_timestamps(path) == stamps


def test_two_frames_of_one_number_are_refused(drive):
    data = drive / 'image_02' / 'data'
    (data / '1.png').write_bytes((data / '0000000001.png').read_bytes())
    with pytest.raises(DatasetError, match='frames 0000000001.png, 1.png have the same number'):
        open_kitti(drive)


def test_a_stray_file_among_the_frames_names_both_folders_counts(drive):
    stray = drive / 'image_03' / 'data' / '0000000001 (copy).png'
    stray.write_bytes((drive / 'image_03' / 'data' / '0000000001.png').read_bytes())
    with pytest.raises(DatasetError, match=r'has 3 time stamps for 4 frames \(image_02/data '
                                           r'holds 3 PNGs, image_03/data 4\)'):
        open_kitti(drive)


def test_a_drive_given_as_dot_or_through_a_link_finds_its_calibration(drive, monkeypatch):
    monkeypatch.chdir(drive)
    assert len(open_kitti('.')) == 3
    monkeypatch.chdir(drive / 'image_02')
    assert len(open_kitti('..')) == 3
    link = drive.parent.parent / 'drive_link'
    link.symlink_to(drive)
    assert len(open_kitti(link)) == 3
    # The drive's own calibration wins over another beside the link.
    own = open_kitti(drive)[0].camera
    (link.parent / 'calib_cam_to_cam.txt').write_text('P_rect_02: 1 0 0 0 0 1 0 0 0 0 1 0\n')
    assert open_kitti(link)[0].camera == own


def test_the_last_frame_is_minus_one(drive):
    assert [frame.name for frame in open_kitti(drive, '-1')] == ['0000000002']
    assert [frame.name for frame in open_kitti(drive, '-2:')] == ['0000000001', '0000000002']


def test_a_drive_with_only_the_grey_cameras_is_named_as_such(drive):
    for cam in ('02', '03'):
        (drive / f'image_{cam}').rename(drive / f'image_{int(cam) - 2:02d}')
    with pytest.raises(DatasetError, match='grey cameras .* not the colour ones'):
        open_kitti(drive)


def test_timestamp_count_mismatch_is_named(drive):
    path = drive / 'image_02' / 'timestamps.txt'
    path.write_text(''.join(path.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(DatasetError, match='timestamps.txt has 2 time stamps, but frame '
                                           '0000000002 is number 2'):
        open_kitti(drive)
    assert len(read_timestamps(path)) == 2


def test_image_size_must_match_calibration(drive):
    path = drive.parent / 'calib_cam_to_cam.txt'
    path.write_text(path.read_text().replace('S_02: 4.8', 'S_02: 5.0')
                    .replace('S_rect_02: 4.8', 'S_rect_02: 5.0'))
    sequence = open_kitti(drive)
    with pytest.raises(DatasetError, match='is 48x32 but the calibration'):
        sequence.read_pair(sequence[0])


def test_an_unrectified_extract_drive_is_named_before_any_frame_is_read(drive):
    # KITTI's _extract images have the cameras' own size S_02 (1392x512), not S_rect_02:
    # every frame was skipped as of the wrong size, the whole drive decoded first.
    path = drive.parent / 'calib_cam_to_cam.txt'
    path.write_text(path.read_text().replace('S_rect_02: 4.8', 'S_rect_02: 5.0'))
    # Unsynced: camera 3 recorded a frame fewer (its time stamps were named first).
    (drive / 'image_03' / 'data' / '0000000002.png').unlink()
    stamps = drive / 'image_03' / 'timestamps.txt'
    stamps.write_text(''.join(stamps.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(DatasetError, match=r'0000000000.png is 48x32, the unrectified size of '
                                           r'camera 2 \(S_02 .*\(_extract\).*_sync download'):
        open_kitti(drive)


def test_not_a_kitti_folder(tmp_path):
    with pytest.raises(DatasetError, match='neither a KITTI raw drive'):
        open_kitti(tmp_path)


def test_a_date_or_camera_folder_names_the_drive_to_give(drive):
    # The date folder (where the calibration is) is the usual slip; it holds the drives.
    with pytest.raises(DatasetError, match=r'holds 1 KITTI folder \(2011_09_26_drive_0005_sync\)'
                                           r': give one, e.g. .*2011_09_26_drive_0005_sync$'):
        open_kitti(drive.parent)
    with pytest.raises(DatasetError, match=f'inside the KITTI folder {drive.resolve()}: give'):
        open_kitti(drive / 'image_02' / 'data')


def test_kitti_disparity_png(tmp_path):
    from stereo_depth_ros.data.datasets import read_kitti_disparity

    disparity = np.array([[np.nan, 0.0, 1.5], [10.25, 100.0, -3.0]], np.float32)
    write_kitti_disparity(tmp_path / 'd.png', disparity)
    back = read_kitti_disparity(tmp_path / 'd.png')
    np.testing.assert_allclose(back, [[np.nan, np.nan, 1.5], [10.25, 100.0, np.nan]])


def test_kitti_disparity_png_keeps_a_tiny_positive_disparity_known(tmp_path):
    # Below 1/512 px the value rounds to 0, KITTI's "unknown": it is written as 1/256 px.
    import cv2

    write_kitti_disparity(tmp_path / 'd.png', np.array([[0.001, 0.0]], np.float32))
    assert cv2.imread(str(tmp_path / 'd.png'), cv2.IMREAD_UNCHANGED).tolist() == [[1, 0]]


def test_a_repeated_time_stamp_is_refused(drive):
    path = drive / 'image_03' / 'timestamps.txt'
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1] + lines[1])
    with pytest.raises(DatasetError, match=r'image_03/timestamps.txt, line 3: time stamp '
                                           r'\S+ \S+ repeats line 2'):
        open_kitti(drive)


def test_blank_lines_of_a_timestamps_file_are_skipped(drive):
    path = drive / 'image_02' / 'timestamps.txt'
    stamps = read_timestamps(path)
    path.write_text(path.read_text() + '\n  \n')
    assert read_timestamps(path) == stamps
    assert open_kitti(drive)[2].left_stamp_ns == stamps[2]


def test_kitti_stamps_are_utc_whatever_the_local_time_zone(tmp_path, monkeypatch):
    import time

    stamp = parse_kitti_time('2011-09-26 13:02:25.964389445')
    monkeypatch.setenv('TZ', 'JST-9')  # POSIX zone, UTC+9: no tz database needed
    time.tzset()
    try:
        assert format_kitti_time(stamp) == '2011-09-26 13:02:25.964389445'
        drive = write_raw_drive(tmp_path, images(1), images(1), CAMERA, [stamp])
        assert open_kitti(drive)[0].left_stamp_ns == stamp
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_raw_drive_without_camera_3_names_its_folder(drive):
    import shutil

    shutil.rmtree(drive / 'image_03')
    with pytest.raises(DatasetError, match='image_03/data does not exist'):
        open_kitti(drive)


def test_stereo_2015_made_up_stamps_start_after_zero(tmp_path):
    # Some tools treat a zero stamp as unset: the first frame is not stamped 0.
    for name in ('image_2', 'image_3', 'calib_cam_to_cam'):
        (tmp_path / name).mkdir()
    raw = write_raw_drive(tmp_path / 'raw', images(1), images(1, 3), CAMERA, [0])
    for cam in ('2', '3'):
        (tmp_path / f'image_{cam}' / '000000_10.png').write_bytes(
            (raw / f'image_0{cam}' / 'data' / '0000000000.png').read_bytes())
    (tmp_path / 'calib_cam_to_cam' / '000000.txt').write_text(
        (raw.parent / 'calib_cam_to_cam.txt').read_text())
    frame = open_kitti(tmp_path)[0]
    assert frame.left_stamp_ns == frame.right_stamp_ns > 0


def rotate(quaternion, vector):
    """Rotate ``vector`` by the unit quaternion (x, y, z, w)."""
    x, y, z, w = quaternion
    matrix = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                       [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                       [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return matrix @ np.asarray(vector, float)


def test_kitti2bag_places_the_optical_frame_above_base_link_and_counts_read_frames(tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores

    from stereo_depth_ros.bags.from_kitti import kitti_to_bag

    camera = StereoCameraModel(48, 32, 60.0, 62.0, 23.5, 23.5, 15.5, 0.54)  # fx != fy
    stamps = [parse_kitti_time('2011-09-26 13:02:25.964389445') + i * 100_000_000
              for i in range(3)]
    drive = write_raw_drive(tmp_path, images(3), images(3, 1), camera, stamps)
    (drive / 'image_02' / 'data' / '0000000001.png').write_bytes(b'\x89PNG not really')
    summary = kitti_to_bag(drive, tmp_path / 'bag', progress=False)
    assert summary.frames == 2 and [name for name, _ in summary.skipped] == ['0000000001']
    assert summary.fx == pytest.approx(60.0) and summary.baseline == pytest.approx(0.54)
    typestore = get_typestore(Stores.ROS2_JAZZY)
    with Reader(tmp_path / 'bag') as reader:
        connections = [c for c in reader.connections if c.topic == '/tf_static']
        [(connection, _, data)] = list(reader.messages(connections=connections))
        tf = typestore.deserialize_cdr(data, connection.msgtype)
    to_left = next(t for t in tf.transforms if t.child_frame_id == 'stereo_left')
    assert to_left.header.frame_id == 'base_link'
    assert (to_left.header.stamp.sec * 1_000_000_000 + to_left.header.stamp.nanosec
            == stamps[0])
    shift = to_left.transform.translation
    assert (shift.x, shift.y, shift.z) == pytest.approx((0.0, 0.0, 1.65))  # above the road
    q = to_left.transform.rotation
    quaternion = (q.x, q.y, q.z, q.w)
    # Optical axes in base_link (x forward, y left, z up): z forward, x right, y down.
    np.testing.assert_allclose(rotate(quaternion, (0, 0, 1)), (1, 0, 0), atol=1e-12)
    np.testing.assert_allclose(rotate(quaternion, (1, 0, 0)), (0, -1, 0), atol=1e-12)
    np.testing.assert_allclose(rotate(quaternion, (0, 1, 0)), (0, 0, -1), atol=1e-12)
