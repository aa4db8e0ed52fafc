"""Checks and conversions of stereo image arrays shared by every backend."""

from typing import Optional

import numpy as np

from .errors import ImageFormatError

#: The smallest width and height of a stereo image, in pixels.
MIN_IMAGE_SIDE = 8


def check_stereo_pair(left: np.ndarray, right: np.ndarray) -> None:
    """Raise ImageFormatError unless left and right are uint8 HxW or HxWx3 images of one size."""
    for name, image in (('left', left), ('right', right)):
        if not isinstance(image, np.ndarray):
            raise ImageFormatError(f'{name} image must be a numpy array, got {type(image)!r}')
        if image.dtype != np.uint8:
            raise ImageFormatError(f'{name} image must be uint8, got {image.dtype}')
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ImageFormatError(
                f'{name} image must be HxW or HxWx3, got shape {image.shape}')
        if image.shape[0] < MIN_IMAGE_SIDE or image.shape[1] < MIN_IMAGE_SIDE:
            raise ImageFormatError(
                f'{name} image is too small: {image.shape[1]}x{image.shape[0]} (width x '
                f'height); both sides must be at least {MIN_IMAGE_SIDE} px')
    if left.shape[:2] != right.shape[:2]:
        raise ImageFormatError(
            f'left and right images differ in size: {left.shape[1]}x{left.shape[0]} '
            f'vs {right.shape[1]}x{right.shape[0]} (width x height)')


#: Rec. 601 luma weights of R, G, B (applied to BGR too: the grey differs little).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a uint8 HxW grey image from HxW or HxWx3 (RGB or BGR: luma weights differ little)."""
    if image.ndim == 2:
        return image
    return np.clip(image.astype(np.float32) @ LUMA_WEIGHTS + 0.5, 0, 255).astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Return an HxWx3 uint8 image, replicating a grey image into three channels."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image


def mask_bounding_box(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """Return ``(x, y, width, height)`` of the True pixels of a 2-D mask, or None if none."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1))
