"""PFM (portable float map) reading and writing, as used by SceneFlow and Middlebury."""

from pathlib import Path

import numpy as np

from ..errors import DatasetError


def read_pfm(path: str | Path) -> np.ndarray:
    """Return the float32 image of a PFM file (HxW or HxWx3), top row first."""
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
            dtype = '<f4' if scale < 0 else '>f4'
            data = np.frombuffer(stream.read(), dtype=dtype)
    except (OSError, ValueError, IndexError) as error:
        raise DatasetError(f'{path}: cannot read PFM ({error})') from None
    expected = width * height * channels
    if data.size < expected:
        raise DatasetError(f'{path}: truncated PFM ({data.size} of {expected} values)')
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data[:expected].reshape(shape)).astype(np.float32)


def write_pfm(path: str | Path, image: np.ndarray) -> None:
    """Write a float HxW or HxWx3 image as little-endian PFM."""
    image = np.asarray(image, dtype='<f4')
    colour = image.ndim == 3
    with open(path, 'wb') as stream:
        stream.write(b'PF\n' if colour else b'Pf\n')
        stream.write(f'{image.shape[1]} {image.shape[0]}\n'.encode())
        stream.write(b'-1\n')
        stream.write(np.flipud(image).tobytes())
