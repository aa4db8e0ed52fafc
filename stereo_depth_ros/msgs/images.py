"""``sensor_msgs/Image`` <-> numpy arrays: encodings, row padding, byte order."""

import array
from dataclasses import is_dataclass
from typing import Any, Literal, Optional

import numpy as np

from .types import MessageTypes
from ..errors import ImageFormatError

#: A numpy byte-order character: big- or little-endian.
ByteOrder = Literal['>', '<']

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


def _encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageFormatError(
            f'unsupported image encoding {encoding!r}; supported: '
            f'{", ".join(ENCODINGS)}') from None


def byte_view(data: Any) -> np.ndarray:
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
    data = byte_view(msg.data)
    if data.size != step * height:
        raise ImageFormatError(
            f'{encoding} image {width}x{height} with step {step} needs {step * height} bytes '
            f'of data, got {data.size}')
    rows = data.reshape(height, step)[:, :row_bytes]
    order: ByteOrder = '>' if msg.is_bigendian else '<'
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
    order: ByteOrder = '>' if is_bigendian else '<'
    rows = np.ascontiguousarray(image, dtype=dtype.newbyteorder(order)).reshape(height, -1)
    rows = rows.view(np.uint8)
    if step > row_bytes:
        rows = np.concatenate([rows, np.zeros((height, step - row_bytes), np.uint8)], axis=1)
    data: np.ndarray | array.array[int]
    if is_dataclass(image_class):
        data = np.ascontiguousarray(rows).reshape(-1)
    else:
        data = array.array('B', rows.tobytes())
    return image_class(header=header, height=int(height), width=int(width), encoding=encoding,
                       is_bigendian=int(bool(is_bigendian)), step=step, data=data)
