"""PFM (portable float map) reading, as used by SceneFlow and Middlebury.

OpenCV decodes the pixels (``cv2.imread(path, cv2.IMREAD_UNCHANGED)``; write one with
``cv2.imwrite('x.pfm', float32_image)``); this module checks the header first so a bad file
is refused with a message that says what is wrong, which OpenCV does not (it returns None).
"""

from pathlib import Path

import cv2
import numpy as np

from ..errors import DatasetError


def _read_header(path: Path) -> tuple[int, int, int, float, int]:
    """Return ``(channels, width, height, scale, payload_bytes)`` of a PFM file."""
    try:
        with open(path, 'rb') as stream:
            header = stream.readline().strip()
            if header not in (b'PF', b'Pf'):
                raise DatasetError(f'{path}: not a PFM file (header {header[:8]!r})')
            dims = stream.readline().split()
            width, height = int(dims[0]), int(dims[1])
            scale = float(stream.readline().strip())
            payload = path.stat().st_size - stream.tell()
    except (OSError, ValueError, IndexError) as error:
        raise DatasetError(f'{path}: cannot read PFM ({error})') from None
    return (3 if header == b'PF' else 1), width, height, scale, payload


def read_pfm(path: str | Path) -> np.ndarray:
    """Return the float32 image of a PFM file (HxW or HxWx3 in the file's channel order).

    Top row first. The values are those stored: the scale line's sign gives the byte order,
    its magnitude is not applied. The scale must be a finite, non-zero number. A file whose
    values only make sense in the other byte order is refused rather than read as garbage.
    """
    path = Path(path)
    channels, width, height, scale, payload = _read_header(path)
    if width <= 0 or height <= 0:
        raise DatasetError(f'{path}: PFM size must be positive, got {width}x{height}')
    if not np.isfinite(scale) or scale == 0:
        raise DatasetError(f'{path}: PFM scale must be a finite non-zero number (its sign '
                           f'gives the byte order), got {scale}')
    expected = width * height * channels
    if payload < 4 * expected:
        raise DatasetError(f'{path}: truncated PFM ({max(payload, 0) // 4} of {expected} '
                           'values)')
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.shape[:2] != (height, width):
        raise DatasetError(f'{path}: OpenCV cannot decode this PFM')
    if abs(scale) != 1:
        image = image * np.float32(abs(scale))  # OpenCV divides by |scale|: undo it
    if channels == 3:
        image = image[..., ::-1]  # OpenCV returns colour as BGR
    _check_byte_order(image, path, 'little' if scale < 0 else 'big')
    return np.ascontiguousarray(image, dtype=np.float32)


def _plausible(values: np.ndarray) -> float:
    """Return the fraction of values that are finite and zero or of a sane magnitude."""
    with np.errstate(invalid='ignore', over='ignore'):
        magnitude = np.abs(values.astype(np.float64))
        return float(np.mean((magnitude == 0) | ((magnitude > 1e-6) & (magnitude < 1e7))))


def _check_byte_order(image: np.ndarray, path: Path, claimed: str) -> None:
    """Raise DatasetError when the values are garbage as read but sane byte-swapped."""
    data = np.ascontiguousarray(image, dtype=np.float32).ravel()
    sample = data[::max(1, data.size // 4096)]
    as_read = _plausible(sample)
    swapped = _plausible(sample.byteswap())
    if as_read < 0.9 and swapped > 0.99:
        raise DatasetError(
            f'{path}: the scale line says {claimed}-endian, but the values only make sense '
            f'in the other byte order ({100 * as_read:.0f}% plausible as read, '
            f'{100 * swapped:.0f}% swapped); fix the sign of the scale')
