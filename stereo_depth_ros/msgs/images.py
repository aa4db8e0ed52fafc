"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy arrays.

Image: encodings, row padding, byte order. CompressedImage: image_transport's ``compressed``
transport (JPEG or PNG), decoded and encoded with OpenCV.
"""

import array
from dataclasses import is_dataclass
from typing import Any, Literal, Optional

import cv2
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
#: Image encodings usable as stereo input: camera intensities (not 32FC1 depth/disparity).
STEREO_ENCODINGS: tuple[str, ...] = tuple(
    name for name, (dtype, _) in ENCODINGS.items() if dtype.kind == 'u')


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


def stereo_input_from_image(msg: Any, bit_depth: Optional[int] = None,
                            brightest: Optional[list[int]] = None) -> np.ndarray:
    """Return a camera image as uint8 HxW (grey) or HxWx3 RGB, ready for a disparity backend.

    BGR is reordered to RGB and alpha dropped. 16-bit images are scaled to 8 bits: by
    ``2 ** (bit_depth - 8)`` when the sensor's ``bit_depth`` is given, else over the full
    16-bit range; then their brightest value is appended to ``brightest`` (where given), so
    a caller can tell a 12-bit sensor over many frames (:func:`narrow_16_bit_note`). Raises
    ImageFormatError for encodings that are not intensities (32FC1).
    """
    pixels, encoding = image_to_array(msg)
    if pixels.dtype == np.float32:
        raise ImageFormatError(
            f'{encoding} is not a camera intensity image; stereo input must be mono8, mono16, '
            'rgb8, bgr8, rgba8 or bgra8')
    return _stereo_pixels(pixels, encoding in _BGR_ORDER, bit_depth, brightest)


def is_compressed(msg: Any) -> bool:
    """Return whether ``msg`` is a ``sensor_msgs/CompressedImage`` (it has ``format``)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def image_label(msg: Any) -> str:
    """Return how an Image or CompressedImage message names its pixels, for messages."""
    return f'{msg.format!r} compressed' if is_compressed(msg) else str(msg.encoding)


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: A JPEG's start-of-image marker.
_JPEG_START = b'\xff\xd8'
#: JPEG start-of-frame markers (baseline, progressive, lossless, ...): they carry the size.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def compressed_size(data: Any) -> Optional[tuple[int, int]]:
    """Return (width, height) read from a PNG or JPEG header, or None where not found.

    Nothing is decoded: the size is known before the pixels are allocated.
    """
    raw = byte_view(data)
    head = raw[:24].tobytes()
    if head.startswith(_PNG_SIGNATURE) and len(head) >= 24 and head[12:16] == b'IHDR':
        return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    if not head.startswith(_JPEG_START):
        return None
    position = 2
    while position + 9 <= raw.size:
        if raw[position] != 0xFF:
            return None
        marker = int(raw[position + 1])
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_FRAME_MARKERS:
            height = int(raw[position + 5]) << 8 | int(raw[position + 6])
            width = int(raw[position + 7]) << 8 | int(raw[position + 8])
            return width, height
        position += 2 + (int(raw[position + 2]) << 8 | int(raw[position + 3]))
    return None


#: The colour type a PNG header gives grey pixels with an alpha channel.
_PNG_GREY_ALPHA = 4


def is_grey_alpha_png(head: bytes) -> bool:
    """Return whether ``head``, a file's first 26 bytes or more, starts a grey+alpha PNG.

    OpenCV decodes such a file as BGRA of three equal channels: only the header tells it
    from a colour image with alpha.
    """
    return (head.startswith(_PNG_SIGNATURE) and len(head) >= 26 and head[12:16] == b'IHDR'
            and head[25] == _PNG_GREY_ALPHA)


def compressed_image_size(msg: Any) -> tuple[int, int]:
    """Return a CompressedImage's (width, height) from its header, without decoding it.

    Raises ImageFormatError when there are no bytes, when they are neither PNG nor JPEG
    (OpenCV would decode other formats too, WebP, BMP, TIFF, of a size nothing checked
    before), or when a PNG or JPEG header is cut short or damaged before its size.
    """
    size = compressed_size(msg.data)
    if size is not None:
        return size
    head = byte_view(msg.data)[:8].tobytes()
    if not head:
        raise ImageFormatError(f'compressed image (format {str(msg.format)!r}) has no data')
    if head.startswith((_PNG_SIGNATURE, _JPEG_START)):
        kind = 'PNG' if head.startswith(_PNG_SIGNATURE) else 'JPEG'
        raise ImageFormatError(f'compressed image (format {str(msg.format)!r}) is a truncated '
                               f'or corrupt {kind}: its header gives no image size')
    raise ImageFormatError(f'compressed image (format {str(msg.format)!r}) is neither a '
                           'PNG nor a JPEG')


def stereo_input_from_compressed(msg: Any, bit_depth: Optional[int] = None,
                                 brightest: Optional[list[int]] = None) -> np.ndarray:
    """Return a ``sensor_msgs/CompressedImage`` decoded as :func:`stereo_input_from_image`.

    ``format`` is image_transport's: ``"<encoding>; jpeg compressed <encoding>"`` (or
    ``png``), or a bare ``jpeg`` / ``png`` from older publishers. OpenCV decodes the bytes,
    whatever the format string says, into grey or BGR(A), 8 or 16 bits; ``compressedDepth``
    (a depth map, not a camera image) is refused. Raises ImageFormatError naming the problem.
    """
    form = str(msg.format)
    if 'compresseddepth' in form.replace(' ', '').lower():
        raise ImageFormatError(f'format {form!r} is a compressed depth map, not a camera '
                               'image; stereo input must be JPEG or PNG camera images')
    # image_transport writes the raw image's encoding first ("bayer_rggb8; png ..."); a bare
    # "jpeg"/"png" of older publishers names none.
    encoding = form.split(';')[0].strip()
    if ';' in form and encoding not in STEREO_ENCODINGS:
        raise ImageFormatError(f'format {form!r}: encoding {encoding!r} is not a camera '
                               f'intensity image; stereo input must be one of '
                               f'{", ".join(STEREO_ENCODINGS)}')
    data = byte_view(msg.data)
    if data.size == 0:
        raise ImageFormatError(f'compressed image (format {form!r}) has no data')
    compressed_image_size(msg)  # PNG or JPEG only: the size is known before decoding
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim not in (2, 3):
        raise ImageFormatError(f'cannot decode the compressed image (format {form!r}, '
                               f'{data.size} bytes) as an 8- or 16-bit JPEG or PNG')
    if pixels.ndim == 3 and (pixels.shape[2] == 1 or pixels.shape[2] == 4
                             and is_grey_alpha_png(data[:26].tobytes())):
        pixels = pixels[:, :, 0]  # grey with alpha comes out as BGRA of three equal channels
    return _stereo_pixels(pixels, True, bit_depth, brightest)


def stereo_input_from_message(msg: Any, bit_depth: Optional[int] = None,
                              brightest: Optional[list[int]] = None) -> np.ndarray:
    """Return an Image or CompressedImage message as a backend input (uint8 grey or RGB)."""
    if is_compressed(msg):
        return stereo_input_from_compressed(msg, bit_depth, brightest)
    return stereo_input_from_image(msg, bit_depth, brightest)


#: Where a node or process-bag user gives the sensor's bit depth.
BIT_DEPTH_SETTING = 'the bit depth (node: mono16_bit_depth; process-bag: --mono16-bit-depth)'
#: 16-bit images whose brightest value needs 9 to this many bits are said to be narrow
#: (8 or fewer: a black frame, a covered lens, which says nothing about the sensor).
NARROW_16_BIT_LIMIT = 14
#: The start of :func:`narrow_16_bit_note`'s line, the same for every image (a throttle key).
NARROW_16_BIT_START = '16-bit images that use few of their bits'


def narrow_16_bit_note(brightest: int, setting: str, seen: str = 'the brightest value') -> \
        Optional[str]:
    """Return a line when a 16-bit ``brightest`` value needs 9 to 14 bits, else None.

    Scaled over the full 16 bits, a 12-bit sensor's image keeps 4 bits of grey: the matching
    degrades (a 1280x720 pair: 23 % of `sgbm`'s pixels moved by more than 3 px). ``setting``
    names the option that gives the bit depth; ``seen`` says over what ``brightest`` was
    taken (one image, the frames so far).
    """
    bits = int(brightest).bit_length()
    if not 8 < bits <= NARROW_16_BIT_LIMIT:
        return None
    return (f'{NARROW_16_BIT_START}: {seen} is {brightest} ({bits} bits), so over the full '
            f'16-bit range they come out {2 ** (16 - bits)}x too dark for the backend; if the '
            f'sensor has {bits} bits, give {setting} {bits}')


def scale_16_bit(pixels: np.ndarray, bit_depth: Optional[int]) -> np.ndarray:
    """Return uint16 ``pixels`` as uint8: over ``bit_depth`` bits (clipped), else all 16."""
    if bit_depth is None:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if not 8 <= bit_depth <= 16:
        raise ImageFormatError(f'bit_depth must be 8..16, got {bit_depth}')
    return np.minimum(pixels >> (bit_depth - 8), 255).astype(np.uint8)


def _stereo_pixels(pixels: np.ndarray, bgr: bool, bit_depth: Optional[int],
                   brightest: Optional[list[int]] = None) -> np.ndarray:
    """Return uint8/uint16 grey or 3-4 channel ``pixels`` as uint8 grey or RGB (see above)."""
    if pixels.dtype == np.uint16:
        if bit_depth is None and brightest is not None and pixels.size:
            brightest.append(int(pixels.max()))
        pixels = scale_16_bit(pixels, bit_depth)
    if pixels.ndim == 2:
        return pixels
    rgb = pixels[:, :, :3]
    if bgr:
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


#: Codecs of image_transport's ``compressed`` transport -> OpenCV's file extension.
COMPRESSION_CODECS: dict[str, str] = {'png': '.png', 'jpeg': '.jpg'}


def array_to_compressed(image: np.ndarray, encoding: str, header: Any, msg_type: Any,
                        codec: str = 'png', jpeg_quality: int = 95) -> Any:
    """Build a ``sensor_msgs/CompressedImage`` of an 8-bit grey or colour array.

    ``image`` is in the channel order ``encoding`` names (mono8, rgb8 or bgr8); ``format`` is
    written as image_transport's ``compressed`` publisher writes it, e.g. ``"rgb8; png
    compressed bgr8"`` (colour is stored BGR). ``msg_type`` is the CompressedImage class or a
    :class:`MessageTypes`. PNG is lossless; JPEG is not, and stereo matching suffers from it.
    """
    image_class = msg_type.CompressedImage if isinstance(msg_type, MessageTypes) else msg_type
    if codec not in COMPRESSION_CODECS:
        raise ImageFormatError(f'unknown compression {codec!r}; known: '
                               f'{", ".join(COMPRESSION_CODECS)}')
    dtype, channels = _encoding_layout(encoding)
    image = np.asarray(image)
    if dtype != np.uint8 or channels not in (1, 3) or image.dtype != np.uint8 \
            or image.ndim != (2 if channels == 1 else 3):
        raise ImageFormatError(f'only 8-bit mono or 3-channel images are compressed here, got '
                               f'{encoding} {image.dtype} of shape {image.shape}')
    target = encoding
    if channels == 3:
        target = 'bgr8'
        image = image if encoding in _BGR_ORDER else image[:, :, ::-1]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == 'jpeg' else []
    ok, encoded = cv2.imencode(COMPRESSION_CODECS[codec], np.ascontiguousarray(image), params)
    if not ok:
        raise ImageFormatError(f'OpenCV could not encode a {image.shape} image as {codec}')
    data: np.ndarray | array.array[int] = encoded.reshape(-1)
    if not is_dataclass(image_class):
        data = array.array('B', encoded.tobytes())
    return image_class(header=header, format=f'{encoding}; {codec} compressed {target}',
                       data=data)
