"""PFM (portable float map) reading and writing, as used by SceneFlow and Middlebury."""

from pathlib import Path

import numpy as np

from ..errors import DatasetError


def read_pfm(path: str | Path) -> np.ndarray:
    """Return the float32 image of a PFM file (HxW or HxWx3), top row first.

    The scale line must be a finite, non-zero number (its sign gives the byte order). A
    file whose values only make sense in the other byte order is refused rather than read
    as garbage.
    """
    path = Path(path)
    try:
        with open(path, 'rb') as stream:
            header = stream.readline().strip()
            if header not in (b'PF', b'Pf'):
                raise DatasetError(f'{path}: not a PFM file (header {header[:8]!r})')
            dims = stream.readline().split()
            width, height = int(dims[0]), int(dims[1])
            scale = float(stream.readline().strip())
            channels = 3 if header == b'PF' else 1
            raw = stream.read()
    except (OSError, ValueError, IndexError) as error:
        raise DatasetError(f'{path}: cannot read PFM ({error})') from None
    if width <= 0 or height <= 0:
        raise DatasetError(f'{path}: PFM size must be positive, got {width}x{height}')
    if not np.isfinite(scale) or scale == 0:
        raise DatasetError(f'{path}: PFM scale must be a finite non-zero number (its sign '
                           f'gives the byte order), got {scale}')
    dtype = '<f4' if scale < 0 else '>f4'
    expected = width * height * channels
    data = np.frombuffer(raw[:4 * expected], dtype=dtype)
    if data.size < expected:
        raise DatasetError(f'{path}: truncated PFM ({data.size} of {expected} values)')
    _check_byte_order(data, path, 'little' if scale < 0 else 'big')
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def _plausible(values: np.ndarray) -> float:
    """Return the fraction of values that are finite and zero or of a sane magnitude."""
    with np.errstate(invalid='ignore', over='ignore'):
        magnitude = np.abs(values.astype(np.float64))
        return float(np.mean((magnitude == 0) | ((magnitude > 1e-6) & (magnitude < 1e7))))


def _check_byte_order(data: np.ndarray, path: Path, claimed: str) -> None:
    """Raise DatasetError when the values are garbage as read but sane byte-swapped."""
    sample = data[::max(1, data.size // 4096)]
    as_read = _plausible(sample)
    swapped = _plausible(sample.view(sample.dtype.newbyteorder()))
    if as_read < 0.9 and swapped > 0.99:
        raise DatasetError(
            f'{path}: the scale line says {claimed}-endian, but the values only make sense '
            f'in the other byte order ({100 * as_read:.0f}% plausible as read, '
            f'{100 * swapped:.0f}% swapped); fix the sign of the scale')


def write_pfm(path: str | Path, image: np.ndarray) -> None:
    """Write a float HxW or HxWx3 image as little-endian PFM."""
    image = np.asarray(image, dtype='<f4')
    colour = image.ndim == 3
    with open(path, 'wb') as stream:
        stream.write(b'PF\n' if colour else b'Pf\n')
        stream.write(f'{image.shape[1]} {image.shape[0]}\n'.encode())
        stream.write(b'-1\n')
        stream.write(np.flipud(image).tobytes())
