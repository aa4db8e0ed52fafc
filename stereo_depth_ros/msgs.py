"""Conversions between ROS 2 messages and numpy arrays, for rclpy and rosbags alike.

rclpy message classes and the classes of a ``rosbags`` typestore have the same field names;
they differ in how arrays are held (rclpy: ``array.array``/numpy for fixed arrays; rosbags:
numpy everywhere) and in their constructors (rosbags needs every field). :class:`MessageTypes`
hides both differences, so the node and the bag tools build messages with the same functions.

Conventions (documented in docs/bags.md):

* Images follow ``sensor_msgs/Image``: ``step`` bytes per row (rows may be padded), 16- and
  32-bit data in the byte order ``is_bigendian`` says.
* ``stereo_msgs/DisparityImage`` holds ``d = x_l - x_r - (cx_l - cx_r)`` in a 32FC1 image,
  ``f`` = fx (px), ``t`` = baseline (m, positive), so depth is ``f * t / d``. Unknown pixels are
  written as ``min_disparity - 1`` (the definition: values below ``min_disparity`` are invalid).
* The nearest obstacle is published as ``sensor_msgs/Range`` (``range`` = distance in metres,
  ``+inf`` when nothing is within ``max_range``, as REP 117 says) and optionally as
  ``geometry_msgs/PointStamped`` (the obstacle's median 3-D point in the optical frame).
"""

import array
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .camera import StereoCameraModel
from .errors import ImageFormatError
from .images import mask_bounding_box

#: encoding -> (numpy dtype of one channel, channels). Aliases share the layout.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'mono8': (np.dtype(np.uint8), 1),
    '8UC1': (np.dtype(np.uint8), 1),
    'mono16': (np.dtype(np.uint16), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    '8UC3': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    '32FC1': (np.dtype(np.float32), 1),
}

#: Encodings whose channels are blue first (8UC3 follows OpenCV, as cv_bridge does).
_BGR_ORDER = frozenset({'bgr8', 'bgra8', '8UC3'})

#: Message name -> attribute of :class:`MessageTypes`.
_TYPE_NAMES = {
    'Time': 'builtin_interfaces/msg/Time',
    'Header': 'std_msgs/msg/Header',
    'Image': 'sensor_msgs/msg/Image',
    'CameraInfo': 'sensor_msgs/msg/CameraInfo',
    'RegionOfInterest': 'sensor_msgs/msg/RegionOfInterest',
    'PointCloud2': 'sensor_msgs/msg/PointCloud2',
    'PointField': 'sensor_msgs/msg/PointField',
    'Range': 'sensor_msgs/msg/Range',
    'DisparityImage': 'stereo_msgs/msg/DisparityImage',
    'Point': 'geometry_msgs/msg/Point',
    'PointStamped': 'geometry_msgs/msg/PointStamped',
    'Vector3': 'geometry_msgs/msg/Vector3',
    'Quaternion': 'geometry_msgs/msg/Quaternion',
    'Transform': 'geometry_msgs/msg/Transform',
    'TransformStamped': 'geometry_msgs/msg/TransformStamped',
    'TFMessage': 'tf2_msgs/msg/TFMessage',
}

#: Packages :meth:`MessageTypes.from_rclpy` may miss (their classes are then None).
_OPTIONAL_PACKAGES = frozenset({'geometry_msgs', 'tf2_msgs'})

# --------------------------------------------------------------------------- message classes


@dataclass(frozen=True)
class MessageTypes:
    """The message classes used to build messages, from rclpy or from a rosbags typestore.

    ``numpy_sequences`` is True for rosbags (variable-length arrays are numpy arrays) and False
    for rclpy (they are ``array.array``).
    """

    Time: Any
    Header: Any
    Image: Any
    CameraInfo: Any
    RegionOfInterest: Any
    PointCloud2: Any
    PointField: Any
    Range: Any
    DisparityImage: Any
    Point: Any
    PointStamped: Any
    Vector3: Any
    Quaternion: Any
    Transform: Any
    TransformStamped: Any
    TFMessage: Any
    numpy_sequences: bool

    @classmethod
    def from_typestore(cls, typestore: Any) -> 'MessageTypes':
        """Take the classes from a ``rosbags`` typestore (e.g. ``Stores.ROS2_JAZZY``)."""
        classes = {attr: typestore.types[name] for attr, name in _TYPE_NAMES.items()}
        return cls(**classes, numpy_sequences=True)

    @classmethod
    def from_rclpy(cls) -> 'MessageTypes':
        """Import the classes of the sourced ROS 2 installation (its message packages).

        geometry_msgs and tf2_msgs are optional (None when not installed): only the
        obstacle point and transform builders need them.
        """
        import importlib

        classes = {}
        for attr, name in _TYPE_NAMES.items():
            package, _, message = name.split('/')
            try:
                classes[attr] = getattr(importlib.import_module(f'{package}.msg'), message)
            except ImportError:
                if package not in _OPTIONAL_PACKAGES:
                    raise
                classes[attr] = None
        return cls(**classes, numpy_sequences=False)

    def byte_sequence(self, data: np.ndarray) -> Any:
        """Return ``data``'s bytes as the value a ``uint8[]`` field of these classes takes."""
        flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if self.numpy_sequences:
            return flat
        values = array.array('B')
        values.frombytes(flat.tobytes())
        return values

    def float64_sequence(self, values: Sequence[float]) -> Any:
        """Return ``values`` as the value a ``float64[]`` field of these classes takes."""
        if self.numpy_sequences:
            return np.asarray(values, dtype=np.float64).reshape(-1)
        return array.array('d', [float(v) for v in values])


def has_field(msg_class: Any, name: str) -> bool:
    """Return whether a message class (rclpy or rosbags) has the field ``name``.

    Definitions differ between distributions (``Range.variance`` exists from Jazzy on).
    """
    if is_dataclass(msg_class):
        return name in {f.name for f in fields(msg_class)}
    getter = getattr(msg_class, 'get_fields_and_field_types', None)
    if getter is not None:
        return name in getter()
    return hasattr(msg_class, name)


# --------------------------------------------------------------------------- time and headers


def stamp_to_ns(stamp: Any) -> int:
    """Return ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(nanoseconds: int, types: MessageTypes) -> Any:
    """Return a ``builtin_interfaces/Time`` for integer nanoseconds (>= 0)."""
    nanoseconds = int(nanoseconds)
    if nanoseconds < 0:
        raise ValueError(f'time stamps must be >= 0 ns, got {nanoseconds}')
    sec, nanosec = divmod(nanoseconds, 1_000_000_000)
    return types.Time(sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str, types: MessageTypes) -> Any:
    """Return a ``std_msgs/Header`` stamped ``stamp_ns`` nanoseconds in frame ``frame_id``."""
    return types.Header(stamp=ns_to_stamp(stamp_ns, types), frame_id=str(frame_id))


def copy_header(header: Any, types: MessageTypes, frame_id: Optional[str] = None) -> Any:
    """Return a new header with the stamp of ``header`` (and its frame unless one is given)."""
    return make_header(stamp_to_ns(header.stamp),
                       header.frame_id if frame_id is None else frame_id, types)


# --------------------------------------------------------------------------- images


def _encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageFormatError(
            f'unsupported image encoding {encoding!r}; supported: '
            f'{", ".join(ENCODINGS)}') from None


def _buffer(data: Any) -> np.ndarray:
    """Return a uint8 view of an Image ``data`` field (numpy, array.array, bytes or list)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else \
            np.frombuffer(data.tobytes(), dtype=np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_array(msg: Any) -> tuple[np.ndarray, str]:
    """Return a ``sensor_msgs/Image`` as an array in native byte order, and its encoding.

    The array is HxW for one channel and HxWxC otherwise, channels in the encoding's order.
    Row padding (``step`` > width * pixel size) is dropped. Raises ImageFormatError for an
    unsupported encoding or a ``step``/``data`` size that does not fit the image.
    """
    encoding = str(msg.encoding)
    dtype, channels = _encoding_layout(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'{encoding} image has no pixels ({width}x{height})')
    if step < row_bytes:
        raise ImageFormatError(
            f'{encoding} image of width {width} needs step >= {row_bytes} bytes, got {step}')
    data = _buffer(msg.data)
    if data.size != step * height:
        raise ImageFormatError(
            f'{encoding} image {width}x{height} with step {step} needs {step * height} bytes '
            f'of data, got {data.size}')
    rows = data.reshape(height, step)[:, :row_bytes]
    order = '>' if msg.is_bigendian else '<'
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(order))
    pixels = pixels.astype(dtype, copy=False)  # native byte order
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape), encoding


def stereo_input_from_image(msg: Any, bit_depth: Optional[int] = None) -> np.ndarray:
    """Return a camera image as uint8 HxW (grey) or HxWx3 RGB, ready for a disparity backend.

    BGR is reordered to RGB and alpha dropped. 16-bit images are scaled to 8 bits: by
    ``2 ** (bit_depth - 8)`` when the sensor's ``bit_depth`` is given, else over the full
    16-bit range. Raises ImageFormatError for encodings that are not intensities (32FC1).
    """
    pixels, encoding = image_to_array(msg)
    if pixels.dtype == np.float32:
        raise ImageFormatError(
            f'{encoding} is not a camera intensity image; stereo input must be mono8, mono16, '
            'rgb8, bgr8, rgba8 or bgra8')
    if pixels.dtype == np.uint16:
        if bit_depth is None:
            scaled = (pixels.astype(np.uint32) + 128) // 257
        else:
            if not 8 <= bit_depth <= 16:
                raise ImageFormatError(f'bit_depth must be 8..16, got {bit_depth}')
            scaled = np.minimum(pixels >> (bit_depth - 8), 255)
        return scaled.astype(np.uint8)
    if pixels.ndim == 2:
        return pixels
    rgb = pixels[:, :, :3]
    if encoding in _BGR_ORDER:
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb)


def array_to_image(image: np.ndarray, encoding: str, header: Any, msg_type: Any,
                   step: Optional[int] = None, is_bigendian: bool = False) -> Any:
    """Build a ``sensor_msgs/Image`` from an array in the channel order ``encoding`` names.

    ``msg_type`` is the Image class (rclpy's or a typestore's) or a :class:`MessageTypes`.
    ``step`` pads rows to that many bytes (default: no padding); ``is_bigendian`` writes
    multi-byte pixels big-endian. float64 arrays are accepted for 32FC1.
    """
    image_class = msg_type.Image if isinstance(msg_type, MessageTypes) else msg_type
    dtype, channels = _encoding_layout(encoding)
    image = np.asarray(image)
    expected = (2,) if channels == 1 else (3,)
    if image.ndim not in expected or (channels > 1 and image.shape[2] != channels):
        want = 'HxW' if channels == 1 else f'HxWx{channels}'
        raise ImageFormatError(f'{encoding} needs an {want} array, got shape {image.shape}')
    if image.dtype != dtype and not (dtype == np.float32 and image.dtype.kind == 'f'):
        raise ImageFormatError(f'{encoding} needs {dtype} pixels, got {image.dtype}')
    height, width = image.shape[:2]
    row_bytes = width * channels * dtype.itemsize
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageFormatError(f'step {step} is smaller than one row ({row_bytes} bytes)')
    order = '>' if is_bigendian else '<'
    rows = np.ascontiguousarray(image, dtype=dtype.newbyteorder(order)).reshape(height, -1)
    rows = rows.view(np.uint8)
    if step > row_bytes:
        rows = np.concatenate([rows, np.zeros((height, step - row_bytes), np.uint8)], axis=1)
    numpy_data = is_dataclass(image_class)
    if numpy_data:
        data = np.ascontiguousarray(rows).reshape(-1)
    else:
        data = array.array('B')
        data.frombytes(rows.tobytes())
    return image_class(header=header, height=int(height), width=int(width), encoding=encoding,
                       is_bigendian=int(bool(is_bigendian)), step=step, data=data)


def make_mask_image(mask: np.ndarray, header: Any, types: MessageTypes) -> Any:
    """Return a mono8 ``sensor_msgs/Image``: 255 where ``mask`` is set, 0 elsewhere."""
    values = np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8)
    return array_to_image(values, 'mono8', header, types.Image)


def make_depth_image(depth: np.ndarray, header: Any, types: MessageTypes) -> Any:
    """Return REP 118 depth: 32FC1 metres, NaN where unknown."""
    return array_to_image(np.asarray(depth, dtype=np.float32), '32FC1', header, types.Image)


# --------------------------------------------------------------------------- disparity


def make_disparity_image(disparity: np.ndarray, camera: StereoCameraModel, header: Any,
                         min_disparity: float, max_disparity: float, types: MessageTypes,
                         delta_d: float = 1.0 / 16.0) -> Any:
    """Return a ``stereo_msgs/DisparityImage`` for raw disparity ``x_l - x_r`` (NaN unknown).

    As the message definition asks, the values are pre-adjusted for the principal point
    offset (``d - (cx_l - cx_r)``), so depth is ``f * t / d``; ``min_disparity`` and
    ``max_disparity`` (the searched range, raw) are adjusted the same way. Unknown pixels and
    pixels whose adjusted value is not positive hold ``min_disparity - 1``; valid values below
    ``min_disparity`` are raised to it. ``valid_window`` is the bounding box of known pixels.
    ``delta_d`` is the smallest disparity step the backend resolves (1/16 px by default).
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    if disparity.ndim != 2:
        raise ImageFormatError(f'disparity must be HxW, got shape {disparity.shape}')
    camera.check_image_size(disparity.shape[1], disparity.shape[0])
    offset = np.float32(camera.disparity_offset)
    low = float(min_disparity) - float(offset)
    high = float(max_disparity) - float(offset)
    if not high > low:
        raise ValueError(f'max_disparity ({max_disparity}) must exceed min_disparity '
                         f'({min_disparity})')
    adjusted = disparity - offset
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(adjusted) & (adjusted > 0)
    values = np.full(disparity.shape, np.float32(low - 1.0), dtype=np.float32)
    values[valid] = np.maximum(adjusted[valid], np.float32(low))
    x, y, width, height = mask_bounding_box(valid) or (0, 0, 0, 0)
    roi = types.RegionOfInterest(x_offset=x, y_offset=y, height=height, width=width,
                                 do_rectify=False)
    image = array_to_image(values, '32FC1', header, types.Image)
    return types.DisparityImage(header=header, image=image, f=float(camera.fx),
                                t=float(camera.baseline), valid_window=roi,
                                min_disparity=float(low), max_disparity=float(high),
                                delta_d=float(delta_d))


def disparity_from_message(msg: Any) -> tuple[np.ndarray, float, float]:
    """Return ``(disparity, f, t)`` of a ``stereo_msgs/DisparityImage``; invalid pixels NaN.

    Values below ``min_disparity`` (and non-finite or non-positive ones) are invalid.
    """
    values, encoding = image_to_array(msg.image)
    if encoding != '32FC1':
        raise ImageFormatError(f'DisparityImage must hold a 32FC1 image, got {encoding}')
    disparity = values.astype(np.float32, copy=True)
    with np.errstate(invalid='ignore'):
        invalid = ~np.isfinite(disparity) | (disparity < np.float32(msg.min_disparity)) | \
            (disparity <= 0)
    disparity[invalid] = np.nan
    return disparity, float(msg.f), float(msg.t)


# --------------------------------------------------------------------------- camera info


def make_camera_info(camera: StereoCameraModel, side: str, header: Any, types: MessageTypes,
                     distortion_model: str = 'plumb_bob') -> Any:
    """Return the rectified ``sensor_msgs/CameraInfo`` of the ``'left'`` or ``'right'`` camera.

    K holds fx, fy and that camera's cx, cy; R is identity and D zeros (the images are
    rectified); P is the rectified projection, with ``P[3] = -fx * B`` on the right camera.
    """
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    p_left, p_right = camera.projection_matrices()
    projection = p_left if side == 'left' else p_right
    k = projection[:, :3].reshape(-1).astype(np.float64)
    r = np.eye(3, dtype=np.float64).reshape(-1)
    d = types.float64_sequence([0.0] * (5 if distortion_model == 'plumb_bob' else 0))
    roi = types.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types.CameraInfo(header=header, height=int(camera.height), width=int(camera.width),
                            distortion_model=distortion_model, d=d, k=k, r=r,
                            p=projection.reshape(-1).astype(np.float64), binning_x=0,
                            binning_y=0, roi=roi)


def make_camera_infos(camera: StereoCameraModel, left_header: Any, right_header: Any,
                      types: MessageTypes) -> tuple[Any, Any]:
    """Return the left and right CameraInfo of a rectified stereo pair."""
    return (make_camera_info(camera, 'left', left_header, types),
            make_camera_info(camera, 'right', right_header, types))


def camera_from_infos(left_info: Any, right_info: Any) -> StereoCameraModel:
    """Return the stereo model of two CameraInfo messages (CalibrationError if inconsistent)."""
    return StereoCameraModel.from_camera_info(left_info, right_info)


# --------------------------------------------------------------------------- point clouds

#: Bytes per point of :func:`make_point_cloud2`: x, y, z, rgb as float32.
POINT_STEP = 16


def make_point_cloud2(points: np.ndarray, colors: Optional[np.ndarray], header: Any,
                      types: MessageTypes) -> Any:
    """Return an unorganised, dense ``sensor_msgs/PointCloud2`` of the finite points.

    ``points`` is HxWx3 or Nx3 (x right, y down, z forward, metres; NaN = unknown).
    ``colors`` (same leading shape, RGB uint8) becomes the PCL-style ``rgb`` field: a float32
    whose bits are ``0x00RRGGBB``. Fields: x@0, y@4, z@8, rgb@12, point_step 16, little-endian.
    """
    xyz = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    keep = np.all(np.isfinite(xyz), axis=1)
    count = int(keep.sum())
    cloud = np.zeros((count, 4), dtype='<f4')
    cloud[:, :3] = xyz[keep]
    if colors is not None:
        rgb = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if rgb.shape[0] != xyz.shape[0]:
            raise ImageFormatError(f'{rgb.shape[0]} colours for {xyz.shape[0]} points')
        rgb = rgb[keep].astype(np.uint32)
        packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        cloud[:, 3] = packed.astype('<u4').view('<f4')
    float32 = types.PointField.FLOAT32
    names = ('x', 'y', 'z', 'rgb')
    point_fields = [types.PointField(name=name, offset=4 * index, datatype=float32, count=1)
                    for index, name in enumerate(names)]
    return types.PointCloud2(header=header, height=1, width=count, fields=point_fields,
                             is_bigendian=False, point_step=POINT_STEP,
                             row_step=POINT_STEP * count, data=types.byte_sequence(cloud),
                             is_dense=True)


def point_cloud2_to_arrays(msg: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Return ``(xyz Nx3 float32, rgb Nx3 uint8 or None)`` of a float32 x/y/z(/rgb) cloud."""
    offsets = {f.name: int(f.offset) for f in msg.fields}
    for name in ('x', 'y', 'z'):
        if name not in offsets:
            raise ImageFormatError(f'PointCloud2 has no {name!r} field')
    count = int(msg.width) * int(msg.height)
    raw = _buffer(msg.data)
    if raw.size < count * int(msg.point_step):
        raise ImageFormatError(f'PointCloud2 data has {raw.size} bytes for {count} points')
    order = '>' if msg.is_bigendian else '<'
    rows = raw[:count * int(msg.point_step)].reshape(count, int(msg.point_step))

    def column(name: str, kind: str) -> np.ndarray:
        start = offsets[name]
        return np.ascontiguousarray(rows[:, start:start + 4]).view(order + kind).reshape(-1)

    xyz = np.stack([column(n, 'f4') for n in ('x', 'y', 'z')], axis=1).astype(np.float32)
    if 'rgb' not in offsets:
        return xyz, None
    packed = column('rgb', 'u4')
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
    return xyz, rgb.astype(np.uint8)


# --------------------------------------------------------------------------- obstacle


def make_obstacle_range(distance: float, header: Any, types: MessageTypes,
                        min_range: float, max_range: float,
                        field_of_view: float = 0.0) -> Any:
    """Return the nearest-obstacle distance as ``sensor_msgs/Range``.

    ``range`` is the obstacle's z-depth in metres; no obstacle (NaN) becomes ``+inf``
    ("nothing within max_range", REP 117). ``radiation_type`` is INFRARED (the message has no
    stereo type); ``field_of_view`` is the horizontal angle of the region searched, in
    radians. ``header`` is the left image's, an optical frame: the obstacle lies along its +z,
    not along +x as ``Range`` assumes (docs/ros.md says how to get a forward-x frame).
    """
    value = float(distance)
    if not np.isfinite(value):
        value = float('inf')
    fields_ = dict(header=header, radiation_type=int(types.Range.INFRARED),
                   field_of_view=float(field_of_view), min_range=float(min_range),
                   max_range=float(max_range), range=value)
    if has_field(types.Range, 'variance'):
        fields_['variance'] = 0.0
    return types.Range(**fields_)


def obstacle_centre(points: np.ndarray, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Return the median 3-D point (x, y, z) of ``points`` (HxWx3) under ``mask``, or None."""
    if mask is None:
        return None
    selected = np.asarray(points, dtype=np.float32)[np.asarray(mask, dtype=bool)]
    selected = selected[np.all(np.isfinite(selected), axis=1)]
    if selected.size == 0:
        return None
    return np.median(selected, axis=0)


def make_obstacle_point(centre: Optional[Sequence[float]], header: Any,
                        types: MessageTypes) -> Any:
    """Return ``geometry_msgs/PointStamped`` of the obstacle centre (all NaN when none)."""
    x, y, z = (float('nan'),) * 3 if centre is None else (float(v) for v in centre)
    return types.PointStamped(header=header, point=types.Point(x=x, y=y, z=z))


# --------------------------------------------------------------------------- transforms


def make_transform(header: Any, child_frame_id: str, translation: Sequence[float],
                   rotation_xyzw: Sequence[float], types: MessageTypes) -> Any:
    """Return a ``geometry_msgs/TransformStamped`` (parent = ``header.frame_id``)."""
    tx, ty, tz = (float(v) for v in translation)
    qx, qy, qz, qw = (float(v) for v in rotation_xyzw)
    transform = types.Transform(translation=types.Vector3(x=tx, y=ty, z=tz),
                                rotation=types.Quaternion(x=qx, y=qy, z=qz, w=qw))
    return types.TransformStamped(header=header, child_frame_id=child_frame_id,
                                  transform=transform)
