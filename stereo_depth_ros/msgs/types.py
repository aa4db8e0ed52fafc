"""The message classes (rclpy's or a rosbags typestore's), time stamps and headers."""

import array
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Sequence

import numpy as np

#: Message name -> attribute of :class:`MessageTypes`.
_TYPE_NAMES = {
    'Time': 'builtin_interfaces/msg/Time',
    'Header': 'std_msgs/msg/Header',
    'Image': 'sensor_msgs/msg/Image',
    'CompressedImage': 'sensor_msgs/msg/CompressedImage',
    'CameraInfo': 'sensor_msgs/msg/CameraInfo',
    'RegionOfInterest': 'sensor_msgs/msg/RegionOfInterest',
    'PointCloud2': 'sensor_msgs/msg/PointCloud2',
    'PointField': 'sensor_msgs/msg/PointField',
    'Range': 'sensor_msgs/msg/Range',
    'DisparityImage': 'stereo_msgs/msg/DisparityImage',
    'Vector3': 'geometry_msgs/msg/Vector3',
    'Quaternion': 'geometry_msgs/msg/Quaternion',
    'Transform': 'geometry_msgs/msg/Transform',
    'TransformStamped': 'geometry_msgs/msg/TransformStamped',
    'TFMessage': 'tf2_msgs/msg/TFMessage',
}

#: Packages :meth:`MessageTypes.from_rclpy` may miss (their classes are then None).
_OPTIONAL_PACKAGES = frozenset({'geometry_msgs', 'tf2_msgs'})


@dataclass(frozen=True)
class MessageTypes:
    """The message classes used to build messages, from rclpy or from a rosbags typestore.

    ``numpy_sequences`` is True for rosbags (variable-length arrays are numpy arrays) and False
    for rclpy (they are ``array.array``).
    """

    Time: Any
    Header: Any
    Image: Any
    CompressedImage: Any
    CameraInfo: Any
    RegionOfInterest: Any
    PointCloud2: Any
    PointField: Any
    Range: Any
    DisparityImage: Any
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
        transform builder needs them.
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
