"""Message conversions against the real ROS 2 definitions of the rosbags typestores."""

import array

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.errors import CalibrationError, ImageFormatError
from stereo_depth_ros.geometry import disparity_to_depth
from stereo_depth_ros.msgs.images import (array_to_compressed, array_to_image,
                                          compressed_size, ENCODINGS, image_to_array,
                                          is_compressed, stereo_input_from_compressed,
                                          stereo_input_from_image, stereo_input_from_message)
from stereo_depth_ros.msgs.obstacle import make_mask_image, make_obstacle_range
from stereo_depth_ros.msgs.points import make_point_cloud2, point_cloud2_to_arrays
from stereo_depth_ros.msgs.stereo import (disparity_from_message, make_camera_infos,
                                          make_depth_image, make_disparity_image)
from stereo_depth_ros.msgs.transforms import make_transform
from stereo_depth_ros.msgs.types import (has_field, make_header, MessageTypes, ns_to_stamp,
                                         stamp_to_ns)

STORES = {'humble': Stores.ROS2_HUMBLE, 'jazzy': Stores.ROS2_JAZZY}


@pytest.fixture(scope='module', params=sorted(STORES))
def store(request):
    """(typestore, MessageTypes) of Humble and of Jazzy."""
    typestore = get_typestore(STORES[request.param])
    return typestore, MessageTypes.from_typestore(typestore)


def cdr_round_trip(typestore, msg):
    """Serialise to CDR and back, as a bag or DDS would."""
    raw = typestore.serialize_cdr(msg, msg.__msgtype__)
    return typestore.deserialize_cdr(raw, msg.__msgtype__)


def sample_pixels(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    """Distinct, non-palindromic pixel values of the encoding's layout."""
    dtype, channels = ENCODINGS[encoding]
    count = height * width * channels
    if dtype == np.float32:
        values = np.linspace(-3.5, 1000.25, count).astype(np.float32)
        values[3] = np.nan
    elif dtype == np.uint16:
        values = (np.arange(count, dtype=np.uint32) * 977 + 258).astype(np.uint16)
    else:
        values = (np.arange(count) * 37 % 256).astype(np.uint8)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return values.reshape(shape)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
@pytest.mark.parametrize('padding', [0, 5])
def test_image_round_trip_every_encoding(store, encoding, padding):
    typestore, types = store
    pixels = sample_pixels(encoding)
    dtype, channels = ENCODINGS[encoding]
    row = pixels.shape[1] * channels * dtype.itemsize
    header = make_header(12_000_000_345, 'cam', types)
    msg = cdr_round_trip(typestore, array_to_image(pixels, encoding, header, types.Image,
                                                   step=row + padding))
    assert msg.step == row + padding and len(msg.data) == msg.step * msg.height
    back, name = image_to_array(msg)
    assert name == encoding and back.dtype == dtype
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', '32FC1'])
def test_big_endian_images_are_read_in_their_byte_order(store, encoding):
    typestore, types = store
    pixels = sample_pixels(encoding, 3, 4)
    msg = cdr_round_trip(typestore, array_to_image(pixels, encoding, make_header(0, 'c', types),
                                                   types, is_bigendian=True))
    assert msg.is_bigendian == 1
    first = np.asarray(msg.data[:pixels.itemsize], np.uint8).tobytes()
    assert first == pixels.reshape(-1)[:1].astype(pixels.dtype.newbyteorder('>')).tobytes()
    np.testing.assert_array_equal(image_to_array(msg)[0], pixels)


def test_hand_built_padded_big_endian_mono16(store):
    """A message built byte by byte, as a camera driver would: 2 rows, 3 px, 2 pad bytes."""
    typestore, types = store
    data = bytes([0x01, 0x02, 0x00, 0xFF, 0xFF, 0x00, 0xAA, 0xBB,
                  0x00, 0x01, 0x10, 0x00, 0x00, 0x00, 0xCC, 0xDD])
    msg = types.Image(header=make_header(0, 'c', types), height=2, width=3, encoding='mono16',
                      is_bigendian=1, step=8, data=np.frombuffer(data, np.uint8).copy())
    pixels, _ = image_to_array(cdr_round_trip(typestore, msg))
    np.testing.assert_array_equal(pixels, [[0x0102, 0x00FF, 0xFF00], [0x0001, 0x1000, 0]])


def test_rclpy_style_data_buffers_are_read():
    """rclpy holds uint8[] as array.array (or bytes/list): all read the same."""
    values = sample_pixels('bgr8', 2, 3)

    class Msg:
        height, width, encoding, is_bigendian, step = 2, 3, 'bgr8', 0, 9

    for data in (array.array('B', values.tobytes()), values.tobytes(),
                 list(values.reshape(-1))):
        msg = Msg()
        msg.data = data
        np.testing.assert_array_equal(image_to_array(msg)[0], values)


def test_rclpy_style_class_gets_array_array_data():
    """A non-dataclass Image class (as rclpy's) is given array.array('B') data."""

    class RclpyImage:
        def __init__(self, **fields):
            self.__dict__.update(fields)

    pixels = sample_pixels('mono16', 2, 3)
    msg = array_to_image(pixels, 'mono16', None, RclpyImage)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    np.testing.assert_array_equal(image_to_array(msg)[0], pixels)


def test_stereo_input_conversions(store):
    _, types = store
    header = make_header(0, 'c', types)
    rgb = sample_pixels('rgb8')
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    np.testing.assert_array_equal(
        stereo_input_from_image(array_to_image(bgr, 'bgr8', header, types)), rgb)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(
        stereo_input_from_image(array_to_image(rgba, 'rgba8', header, types)), rgb)
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(
        stereo_input_from_image(array_to_image(bgra, 'bgra8', header, types)), rgb)
    wide = np.array([[0, 257, 65535], [128, 32896, 65279]], np.uint16)
    msg = array_to_image(wide, 'mono16', header, types, is_bigendian=True)
    np.testing.assert_array_equal(stereo_input_from_image(msg), [[0, 1, 255], [0, 128, 254]])
    twelve_bit = np.array([[0, 16, 4095]], np.uint16)
    msg = array_to_image(twelve_bit, 'mono16', header, types)
    np.testing.assert_array_equal(stereo_input_from_image(msg, bit_depth=12), [[0, 1, 255]])
    with pytest.raises(ImageFormatError, match='32FC1'):
        stereo_input_from_image(array_to_image(np.zeros((2, 2), np.float32), '32FC1', header,
                                               types))


def test_bad_images_raise_clear_errors(store):
    _, types = store
    header = make_header(0, 'c', types)
    msg = array_to_image(np.zeros((4, 6), np.uint8), 'mono8', header, types)
    msg.encoding = 'yuv422'
    with pytest.raises(ImageFormatError, match="'yuv422'.*supported: mono8"):
        image_to_array(msg)
    msg.encoding, msg.step = 'mono8', 5
    with pytest.raises(ImageFormatError, match='step >= 6'):
        image_to_array(msg)
    msg.step = 7
    with pytest.raises(ImageFormatError, match='needs 28 bytes of data, got 24'):
        image_to_array(msg)
    with pytest.raises(ImageFormatError, match='rgb8 needs an HxWx3'):
        array_to_image(np.zeros((4, 6), np.uint8), 'rgb8', header, types)
    with pytest.raises(ImageFormatError, match='mono16 needs uint16'):
        array_to_image(np.zeros((4, 6), np.uint8), 'mono16', header, types)


def test_stamps_and_headers(store):
    typestore, types = store
    stamp = ns_to_stamp(1_317_042_145_964_389_445, types)
    assert (stamp.sec, stamp.nanosec) == (1_317_042_145, 964_389_445)
    header = cdr_round_trip(typestore, make_header(1_317_042_145_964_389_445, 'f', types))
    assert stamp_to_ns(header.stamp) == 1_317_042_145_964_389_445 and header.frame_id == 'f'
    with pytest.raises(ValueError):
        ns_to_stamp(-1, types)


def _camera_infos_round_trip(store, left_header, right_header):
    """Return a camera and its left and right CameraInfo, through CDR and back."""
    typestore, types = store
    camera = StereoCameraModel(640, 480, 700.0, 701.0, 320.5, 318.0, 240.25, 0.12)
    left, right = make_camera_infos(camera, make_header(*left_header, types),
                                    make_header(*right_header, types), types)
    return camera, cdr_round_trip(typestore, left), cdr_round_trip(typestore, right)


def test_camera_info_baseline_sign_round_trip(store):
    camera, left, right = _camera_infos_round_trip(store, (5, 'l'), (5, 'r'))
    assert left.p[3] == 0.0
    assert right.p[3] == pytest.approx(-700.0 * 0.12)
    assert right.p[2] == 318.0 and right.k[2] == 318.0 and left.k[2] == 320.5
    np.testing.assert_array_equal(left.k, [700, 0, 320.5, 0, 701, 240.25, 0, 0, 1])
    np.testing.assert_array_equal(left.r, np.eye(3).reshape(-1))
    assert left.distortion_model == 'plumb_bob' and list(left.d) == [0.0] * 5
    assert StereoCameraModel.from_camera_info(left, right) == camera
    with pytest.raises(CalibrationError, match='wrong sign'):
        StereoCameraModel.from_camera_info(right, left)


def test_disparity_image_fields_and_invalid_encoding(store):
    typestore, types = store
    camera = StereoCameraModel(6, 4, 500.0, 500.0, 3.0, 1.0, 2.0, 0.25)  # offset 2 px
    raw = np.full((4, 6), 12.0, np.float32)
    raw[0, :] = np.nan
    raw[1, 0] = 1.5  # adjusted -0.5: behind the camera, invalid
    raw[1, 1] = 2.03  # adjusted 0.03: below delta_d, not told from 0 (1,000 times farther)
    raw[1, 2] = 2.0625  # adjusted 1/16: the smallest step, valid
    raw[3, 5] = 42.0
    msg = cdr_round_trip(typestore, make_disparity_image(
        raw, camera, make_header(7, 'l', types), 0.0, 64.0, types))
    assert msg.f == 500.0 and msg.t == 0.25
    assert (msg.min_disparity, msg.max_disparity) == (-2.0, 62.0)
    assert msg.delta_d == pytest.approx(1 / 16)
    values = image_to_array(msg.image)[0]
    assert values[0, 0] == values[1, 0] == values[1, 1] == msg.min_disparity - 1
    assert values[1, 2] == pytest.approx(1 / 16)
    assert values[2, 2] == 10.0 and values[3, 5] == 40.0
    window = msg.valid_window
    assert (window.x_offset, window.y_offset, window.width, window.height) == (0, 1, 6, 3)
    disparity, f, t = disparity_from_message(msg)
    assert np.isnan(disparity[0]).all() and np.isnan(disparity[1, :2]).all()
    depth = f * t / disparity
    expected = disparity_to_depth(np.where(np.isnan(disparity), np.nan, raw),
                                  camera.focal_baseline, camera.disparity_offset)
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert depth[2, 2] == pytest.approx(125.0 / 10.0)


def test_depth_and_mask_images(store):
    typestore, types = store
    depth = np.array([[1.5, np.nan], [np.inf, 20.0]], np.float32)
    msg = cdr_round_trip(typestore, make_depth_image(depth, make_header(0, 'l', types), types))
    assert msg.encoding == '32FC1'
    np.testing.assert_array_equal(image_to_array(msg)[0], depth)
    mask = cdr_round_trip(typestore, make_mask_image(np.eye(2, dtype=bool),
                                                     make_header(0, 'l', types), types))
    assert mask.encoding == 'mono8'
    np.testing.assert_array_equal(image_to_array(mask)[0], [[255, 0], [0, 255]])


def test_point_cloud2_layout_and_nan_dropping(store):
    typestore, types = store
    points = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    points[0, 1, 2] = np.nan
    colours = np.zeros((2, 3, 3), np.uint8)
    colours[1, 2] = (255, 128, 1)
    msg = cdr_round_trip(typestore, make_point_cloud2(points, colours,
                                                      make_header(0, 'l', types), types))
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('rgb', 12, 7, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 16, 80)
    assert msg.is_dense and not msg.is_bigendian
    last = np.asarray(msg.data[-4:], np.uint8).tobytes()
    assert int.from_bytes(last, 'little') == 0xFF8001
    xyz, rgb = point_cloud2_to_arrays(msg)
    keep = np.ones(6, bool)
    keep[1] = False
    np.testing.assert_array_equal(xyz, points.reshape(-1, 3)[keep])
    np.testing.assert_array_equal(rgb, colours.reshape(-1, 3)[keep])


def test_an_organised_cloud_keeps_the_pixel_grid_with_nan_points(store):
    # As stereo_image_proc and depth_image_proc publish theirs: a point per pixel.
    typestore, types = store
    points = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    points[0, 1, 2] = np.nan  # one coordinate unknown: the whole point is
    points[1, 0] = np.inf  # depth outside min_depth/max_depth
    colours = np.full((2, 3, 3), 7, np.uint8)
    msg = cdr_round_trip(typestore, make_point_cloud2(points, colours, make_header(0, 'l', types),
                                                      types, organized=True))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (2, 3, 16, 48)
    assert not msg.is_dense
    xyz, rgb = point_cloud2_to_arrays(msg)
    unknown = np.zeros(6, bool)
    unknown[[1, 3]] = True
    assert np.isnan(xyz[unknown]).all()
    np.testing.assert_array_equal(xyz[~unknown], points.reshape(-1, 3)[~unknown])
    assert (rgb == 7).all()
    whole = make_point_cloud2(np.ones((2, 2, 3), np.float32), None, make_header(0, 'l', types),
                              types, organized=True)
    assert whole.is_dense and (whole.height, whole.width) == (2, 2)
    with pytest.raises(ImageFormatError, match='HxWx3'):
        make_point_cloud2(points.reshape(-1, 3), None, make_header(0, 'l', types), types,
                          organized=True)


def test_obstacle_messages(store):
    typestore, types = store
    header = make_header(0, 'l', types)
    found = cdr_round_trip(typestore, make_obstacle_range(7.25, header, types, 0.5, 40.0, 0.8))
    assert (found.range, found.min_range, found.max_range) == (7.25, 0.5, 40.0)
    assert found.radiation_type == types.Range.INFRARED
    assert found.field_of_view == pytest.approx(0.8)
    none = cdr_round_trip(typestore, make_obstacle_range(float('nan'), header, types, 0.5, 40))
    assert none.range == float('inf')
    close = cdr_round_trip(typestore, make_obstacle_range(0.49, header, types, 0.5, 40))
    assert close.range == float('-inf')  # too close to range (REP 117)
    assert make_obstacle_range(0.5, header, types, 0.5, 40).range == 0.5  # in range
    assert has_field(types.Range, 'variance') == (typestore.fielddefs['sensor_msgs/msg/Range']
                                                  [1][-1][0] == 'variance')


def test_a_range_in_another_frame_keeps_the_image_s_stamp(store):
    # obstacle.range_frame_id re-stamps the frame only: the reading is still of that pair.
    typestore, types = store
    header = make_header(1_317_042_145_964_389_445, 'left_optical', types)
    msg = cdr_round_trip(typestore, make_obstacle_range(2.0, header, types, 0.3, 40.0,
                                                        frame_id='camera_forward'))
    assert msg.header.frame_id == 'camera_forward'
    assert stamp_to_ns(msg.header.stamp) == 1_317_042_145_964_389_445


def test_a_point_cloud_with_too_little_data_is_refused(store):
    _, types = store
    msg = make_point_cloud2(np.ones((4, 3), np.float32), None, make_header(0, 'l', types),
                            types)
    msg.data = msg.data[:3 * 16 + 8]  # the fourth point cut short
    with pytest.raises(ImageFormatError, match='PointCloud2 data has 56 bytes for 4 points'):
        point_cloud2_to_arrays(msg)


def test_transform(store):
    typestore, types = store
    msg = make_transform(make_header(3, 'base_link', types), 'cam', (1, 2, 3), (0, 0, 0, 1),
                         types)
    tf = cdr_round_trip(typestore, types.TFMessage(transforms=[msg]))
    only = tf.transforms[0]
    assert only.header.frame_id == 'base_link' and only.child_frame_id == 'cam'
    assert only.transform.translation.z == 3.0 and only.transform.rotation.w == 1.0


def test_range_variance_only_from_jazzy():
    assert not has_field(MessageTypes.from_typestore(get_typestore(Stores.ROS2_HUMBLE)).Range,
                         'variance')
    assert has_field(MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY)).Range,
                     'variance')


# ------------------------------------------------------------------ CompressedImage


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8'])
def test_png_compressed_images_decode_as_their_raw_image(store, encoding):
    typestore, types = store
    pixels = sample_pixels(encoding, 9, 11)
    header = make_header(42, 'cam', types)
    msg = cdr_round_trip(typestore, array_to_compressed(pixels, encoding, header, types))
    assert msg.format == f'{encoding}; png compressed {"mono8" if encoding == "mono8" else "bgr8"}'
    assert is_compressed(msg) and not is_compressed(array_to_image(pixels, encoding, header,
                                                                   types))
    raw = stereo_input_from_image(array_to_image(pixels, encoding, header, types))
    np.testing.assert_array_equal(stereo_input_from_message(msg), raw)
    np.testing.assert_array_equal(stereo_input_from_compressed(msg), raw)
    assert compressed_size(msg.data) == (11, 9)


def test_jpeg_compressed_colour_keeps_its_channel_order(store):
    _, types = store
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 200  # rgb8: red
    msg = array_to_compressed(red, 'rgb8', make_header(0, 'cam', types), types, 'jpeg')
    decoded = stereo_input_from_message(msg)
    assert msg.format == 'rgb8; jpeg compressed bgr8'
    assert decoded.shape == (16, 16, 3) and compressed_size(msg.data) == (16, 16)
    assert abs(int(decoded[..., 0].mean()) - 200) <= 3 and decoded[..., 2].max() <= 5


def test_a_grey_png_with_alpha_decodes_as_grey(store):
    # OpenCV decodes it as BGRA of three equal channels; beside a mono8 camera it was taken
    # for colour and the pair refused. A colour PNG with alpha stays colour.
    import io
    from PIL import Image
    _, types = store
    grey = sample_pixels('mono8', 9, 11)
    for mode, pixels, shape in (('LA', np.dstack([grey, np.full_like(grey, 255)]), (9, 11)),
                                ('RGBA', np.dstack([grey] * 3 + [np.full_like(grey, 255)]),
                                 (9, 11, 3))):
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode).save(buffer, 'PNG')
        msg = types.CompressedImage(header=make_header(0, 'cam', types), format='png',
                                    data=np.frombuffer(buffer.getvalue(), np.uint8))
        decoded = stereo_input_from_message(msg)
        assert decoded.shape == shape
        np.testing.assert_array_equal(decoded if decoded.ndim == 2 else decoded[..., 0], grey)


def test_sixteen_bit_png_is_scaled_as_mono16(store):
    import cv2
    _, types = store
    pixels = sample_pixels('mono16', 6, 8)
    ok, data = cv2.imencode('.png', pixels)
    assert ok
    msg = types.CompressedImage(header=make_header(0, 'cam', types),
                                format='mono16; png compressed mono16', data=data.reshape(-1))
    raw = array_to_image(pixels, 'mono16', make_header(0, 'cam', types), types)
    for bit_depth in (None, 12):
        np.testing.assert_array_equal(stereo_input_from_message(msg, bit_depth),
                                      stereo_input_from_image(raw, bit_depth))


def test_bad_compressed_images_are_named(store):
    import cv2
    _, types = store
    header = make_header(0, 'cam', types)
    truncated = np.frombuffer(b'\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03', np.uint8)
    webp = cv2.imencode('.webp', np.zeros((8, 8, 3), np.uint8))[1].reshape(-1)
    cases = [('jpeg', np.frombuffer(b'not a jpeg at all', np.uint8),
              r"compressed image \(format 'jpeg'\) is neither a PNG nor a JPEG"),
             ('jpeg', truncated, r"cannot decode the compressed image \(format 'jpeg', 12 "),
             # OpenCV would decode it, of a size nothing checked before decoding.
             ('rgb8; jpeg compressed bgr8', webp, 'is neither a PNG nor a JPEG'),
             ('bayer_rggb8; png compressed bayer_rggb8', np.zeros(20, np.uint8),
              "encoding 'bayer_rggb8' is not a camera intensity image"),
             ('png', np.zeros(0, np.uint8), "compressed image \\(format 'png'\\) has no data"),
             ('16UC1; compressedDepth png', np.zeros(20, np.uint8), 'compressed depth map')]
    for form, data, message in cases:
        msg = types.CompressedImage(header=header, format=form, data=data)
        with pytest.raises(ImageFormatError, match=message):
            stereo_input_from_message(msg)
    with pytest.raises(ImageFormatError, match="unknown compression 'webp'"):
        array_to_compressed(sample_pixels('mono8'), 'mono8', header, types, 'webp')


def test_compressed_size_reads_headers_only():
    import cv2
    image = np.zeros((37, 53, 3), np.uint8)
    for extension, params in (('.png', []), ('.jpg', []),
                              ('.jpg', [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])):
        ok, data = cv2.imencode(extension, image, params)
        assert ok and compressed_size(data.reshape(-1)) == (53, 37)
    ok, data = cv2.imencode('.jpg', image)
    raw = data.tobytes()
    frame = raw.index(b'\xff\xc0')  # a fill byte before the frame header is allowed
    padded = np.frombuffer(raw[:frame] + b'\xff' + raw[frame:], np.uint8)
    assert compressed_size(padded) == (53, 37)
    for junk in (b'', b'garbage', b'\xff\xd8\xff', b'\xff\xd8\x00\x00\x00\x00\x00\x00\x00\x00'):
        assert compressed_size(np.frombuffer(junk, np.uint8)) is None


def test_disparity_image_f_is_fx_and_delta_d_is_honoured(store):
    typestore, types = store
    camera = StereoCameraModel(6, 4, 500.0, 510.0, 3.0, 3.0, 2.0, 0.25)
    raw = np.full((4, 6), 12.0, np.float32)
    raw[0, 0] = 0.125  # below a delta_d of 1/4
    msg = cdr_round_trip(typestore, make_disparity_image(
        raw, camera, make_header(0, 'l', types), 0.0, 64.0, types, delta_d=0.25))
    assert msg.f == 500.0 and msg.delta_d == 0.25  # depth = f * t / d uses fx
    assert image_to_value(msg, 0, 0) == msg.min_disparity - 1


def image_to_value(msg, row, column):
    """One pixel of a DisparityImage's image."""
    from stereo_depth_ros.msgs.images import image_to_array
    return image_to_array(msg.image)[0][row, column]


def test_disparities_below_min_disparity_are_raised_to_it_and_read_back_valid(store):
    typestore, types = store
    camera = StereoCameraModel(6, 4, 500.0, 500.0, 3.0, 3.0, 2.0, 0.25)  # no offset
    raw = np.full((4, 6), 12.0, np.float32)
    raw[1, 1] = 2.0  # valid, below the searched range 4..64
    msg = cdr_round_trip(typestore, make_disparity_image(
        raw, camera, make_header(0, 'l', types), 4.0, 64.0, types))
    assert image_to_value(msg, 1, 1) == 4.0
    disparity, _, _ = disparity_from_message(msg)
    assert disparity[1, 1] == 4.0 and disparity[0, 0] == 12.0


def test_non_positive_values_of_a_disparity_image_are_invalid(store):
    _, types = store
    camera = StereoCameraModel(3, 1, 500.0, 500.0, 1.0, 1.0, 0.0, 0.25)
    header = make_header(0, 'l', types)
    msg = make_disparity_image(np.full((1, 3), 5.0, np.float32), camera, header, -2.0, 64.0,
                               types)
    msg.image = array_to_image(np.array([[-1.0, 0.0, 3.0]], np.float32), '32FC1', header,
                               types)  # as another publisher may fill it
    disparity, _, _ = disparity_from_message(msg)
    assert np.isnan(disparity[0, :2]).all() and disparity[0, 2] == 3.0
    with pytest.raises(CalibrationError, match='images are 2x1'):
        make_disparity_image(np.ones((1, 2), np.float32), camera, header, 0.0, 64.0, types)


def test_point_clouds_drop_points_with_any_unknown_coordinate(store):
    _, types = store
    points = np.array([[np.nan, 1.0, 2.0], [1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], np.float32)
    msg = make_point_cloud2(points, None, make_header(0, 'l', types), types)
    assert msg.width == 1
    np.testing.assert_array_equal(point_cloud2_to_arrays(msg)[0], [[1.0, 2.0, 3.0]])
    with pytest.raises(ImageFormatError, match='2 colours for 3 points'):
        make_point_cloud2(points, np.zeros((2, 3), np.uint8), make_header(0, 'l', types), types)


def test_organised_big_endian_clouds_are_read(store):
    _, types = store
    xyz = np.arange(12, dtype='>f4').reshape(4, 3)
    fields = [types.PointField(name=name, offset=4 * index, datatype=7, count=1)
              for index, name in enumerate('xyz')]
    msg = types.PointCloud2(header=make_header(0, 'l', types), height=2, width=2,
                            fields=fields, is_bigendian=True, point_step=12, row_step=24,
                            data=np.frombuffer(xyz.tobytes(), np.uint8).copy(),
                            is_dense=True)
    read, rgb = point_cloud2_to_arrays(msg)
    assert rgb is None
    np.testing.assert_array_equal(read, xyz.astype(np.float32))


def test_sixteen_bit_images_round_and_clip_to_eight_bits(store):
    _, types = store
    header = make_header(0, 'c', types)
    wide = np.array([[65280, 65406, 65407]], np.uint16)  # rounded to the nearest of 255 steps
    np.testing.assert_array_equal(
        stereo_input_from_image(array_to_image(wide, 'mono16', header, types)), [[254, 254, 255]])
    beyond = np.array([[4095, 4096, 8192, 65535]], np.uint16)  # a 12-bit sensor's overflow
    np.testing.assert_array_equal(
        stereo_input_from_image(array_to_image(beyond, 'mono16', header, types), bit_depth=12),
        [[255, 255, 255, 255]])


def test_8uc3_is_blue_first_as_in_cv_bridge(store):
    _, types = store
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200  # blue
    rgb = stereo_input_from_image(array_to_image(bgr, '8UC3', make_header(0, 'c', types), types))
    assert (rgb[..., 2] == 200).all() and (rgb[..., 0] == 0).all()


def test_sixteen_bit_images_report_their_brightest_value() -> None:
    from stereo_depth_ros.msgs.images import narrow_16_bit_note, NARROW_16_BIT_START
    types = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))
    header = types.Header(stamp=types.Time(sec=1, nanosec=0), frame_id='cam')
    twelve = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    brightest: list[int] = []
    dark = stereo_input_from_message(array_to_image(twelve, 'mono16', header, types), None,
                                     brightest)
    assert dark.max() == 16 and brightest == [4095]  # 4 bits of grey over the full range
    bright = stereo_input_from_message(array_to_image(twelve, 'mono16', header, types), 12,
                                       brightest)
    assert bright.max() == 255 and brightest == [4095]  # a bit depth given: nothing to say
    note = narrow_16_bit_note(4095, 'mono16_bit_depth')
    assert note is not None and note.startswith(NARROW_16_BIT_START)
    assert 'is 4095 (12 bits)' in note and '16x too dark' in note
    assert note.endswith('give mono16_bit_depth 12')
    # A black frame (lens cap) and a 16-bit sensor say nothing.
    assert narrow_16_bit_note(200, 'x') is None and narrow_16_bit_note(65000, 'x') is None


def test_sixteen_bit_image_files_are_scaled_by_their_bit_depth(tmp_path) -> None:
    from stereo_depth_ros.data.datasets import read_image_rgb
    twelve = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    cv2.imwrite(str(tmp_path / 'twelve.png'), twelve)
    notes: list[str] = []
    rgb = read_image_rgb(tmp_path / 'twelve.png', notes)
    assert rgb.shape == (64, 64, 3) and rgb.max() == 16  # the full 16-bit range: 4 bits
    assert len(notes) == 1 and '(12 bits)' in notes[0] and '--mono16-bit-depth 12' in notes[0]
    scaled = read_image_rgb(tmp_path / 'twelve.png', notes, bit_depth=12)
    assert scaled.max() == 255 and len(np.unique(scaled)) == 256 and len(notes) == 1


def test_a_sixteen_bit_png_reports_its_brightest_value(store) -> None:
    # image_transport's compressed transport carries a 12-bit sensor's mono16 as a 16-bit
    # PNG: its brightest value must reach the narrow-16-bit warning as a raw image's does.
    _, types = store
    twelve = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    ok, data = cv2.imencode('.png', twelve)
    assert ok
    msg = types.CompressedImage(header=make_header(0, 'cam', types),
                                format='mono16; png compressed mono16', data=data.reshape(-1))
    brightest: list[int] = []
    assert stereo_input_from_message(msg, None, brightest).max() == 16
    assert brightest == [4095]


def test_the_narrow_16_bit_note_covers_9_to_14_bits() -> None:
    from stereo_depth_ros.msgs.images import narrow_16_bit_note
    fourteen = narrow_16_bit_note(2 ** 14 - 1, 'x')  # a 14-bit sensor's full scale
    assert fourteen is not None and '(14 bits)' in fourteen
    assert narrow_16_bit_note(2 ** 14, 'x') is None  # needs 15 bits: no narrow sensor
    nine = narrow_16_bit_note(2 ** 8, 'x')
    assert nine is not None and '(9 bits)' in nine
    assert narrow_16_bit_note(2 ** 8 - 1, 'x') is None  # a black frame says nothing


def test_bit_depths_outside_8_to_16_are_refused() -> None:
    from stereo_depth_ros.msgs.images import scale_16_bit
    full = np.array([[0, 65535]], np.uint16)
    np.testing.assert_array_equal(scale_16_bit(full, 16), [[0, 255]])
    np.testing.assert_array_equal(scale_16_bit(full, 8), [[0, 255]])
    for bit_depth in (0, 7, 17):
        with pytest.raises(ImageFormatError, match=f'bit_depth must be 8..16, got {bit_depth}'):
            scale_16_bit(full, bit_depth)


def test_disparity_valid_window_bounds_only_pixels_with_a_depth(store):
    # Finite values with no depth (below delta_d, negative) lie outside the valid window.
    typestore, types = store
    camera = StereoCameraModel(6, 4, 500.0, 500.0, 3.0, 3.0, 2.0, 0.25)  # no offset
    raw = np.full((4, 6), np.nan, np.float32)
    raw[1:3, 2:4] = 8.0
    raw[0, 0] = 0.01  # below delta_d: no depth
    raw[3, 5] = -1.0  # behind the camera
    msg = cdr_round_trip(typestore, make_disparity_image(
        raw, camera, make_header(0, 'l', types), 0.0, 64.0, types))
    window = msg.valid_window
    assert (window.x_offset, window.y_offset, window.width, window.height) == (2, 1, 2, 2)
    assert not window.do_rectify  # a window of the rectified image itself


def test_a_disparity_range_of_zero_width_is_refused(store):
    _, types = store
    camera = StereoCameraModel(6, 4, 500.0, 500.0, 3.0, 3.0, 2.0, 0.25)
    with pytest.raises(ValueError, match=r'max_disparity \(16\.0\) must exceed'):
        make_disparity_image(np.full((4, 6), 8.0, np.float32), camera,
                             make_header(0, 'l', types), 16.0, 16.0, types)


def test_a_disparity_image_that_is_not_32fc1_is_refused(store):
    _, types = store
    camera = StereoCameraModel(3, 1, 500.0, 500.0, 1.0, 1.0, 0.0, 0.25)
    header = make_header(0, 'l', types)
    msg = make_disparity_image(np.full((1, 3), 5.0, np.float32), camera, header, 0.0, 64.0,
                               types)
    msg.image = array_to_image(np.array([[5, 6, 7]], np.uint16), '16UC1', header, types)
    with pytest.raises(ImageFormatError, match='must hold a 32FC1 image, got 16UC1'):
        disparity_from_message(msg)


def test_each_camera_info_keeps_its_own_camera_s_header(store):
    _, left, right = _camera_infos_round_trip(store, (5, 'cam_l'), (6, 'cam_r'))
    assert (left.header.frame_id, stamp_to_ns(left.header.stamp)) == ('cam_l', 5)
    assert (right.header.frame_id, stamp_to_ns(right.header.stamp)) == ('cam_r', 6)


def test_jpeg_compression_writes_jpeg_bytes_of_the_quality_asked(store):
    _, types = store
    pixels = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    header = make_header(0, 'cam', types)
    jpeg = array_to_compressed(pixels, 'rgb8', header, types, 'jpeg')
    png = array_to_compressed(pixels, 'rgb8', header, types, 'png')
    assert bytes(jpeg.data[:2]) == b'\xff\xd8'  # what "jpeg compressed" in format says
    assert bytes(png.data[:8]) == b'\x89PNG\r\n\x1a\n'
    rough = array_to_compressed(pixels, 'rgb8', header, types, 'jpeg', jpeg_quality=20)
    assert len(rough.data) < len(jpeg.data)
