"""Checks and conversions of stereo image arrays shared by every backend."""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import ImageFormatError

#: The smallest width and height of a stereo image, in pixels.
MIN_IMAGE_SIDE = 8

#: The rule that a stereo pair of two sizes breaks, in every message about one.
ONE_SIZE_RULE = 'left and right images must be one size'
#: The rule that a pair of a grey image and a colour one breaks.
ONE_LAYOUT_RULE = 'both cameras must be grey or both colour'


def size_text(shape: tuple[int, ...]) -> str:
    """Return the size of an image of ``shape`` (H, W[, C]) as ``WxH``."""
    return f'{shape[1]}x{shape[0]}'


def layout_text(shape: tuple[int, ...]) -> str:
    """Return whether an image of ``shape`` is grey (HxW) or colour (HxWxC), in words."""
    return 'grey' if len(shape) == 2 else 'colour'


@dataclass(frozen=True)
class PairMismatch:
    """How the two images of a stereo pair differ: in size, or one grey and one colour."""

    #: What the left image is: its size (``640x480``), or ``grey`` / ``colour``.
    left: str
    #: What the right image is, in the same terms.
    right: str
    #: The rule the pair breaks (:data:`ONE_SIZE_RULE` or :data:`ONE_LAYOUT_RULE`).
    rule: str
    #: Whether one image is grey and the other colour (else the sizes differ).
    layout: bool = False

    def message(self, names: tuple[str, str] = ('left image', 'right image'),
                context: str = '', labels: Optional[tuple[str, str]] = None) -> str:
        """Return ``<left name> is <left> but <right name> is <right><context>: <rule>``.

        ``names`` are what the caller calls the two images (topics, files), ``context`` what
        it knows of the pair (its stamp), ``labels`` what each image is stored as (its
        encoding): with a grey and a colour image they come first, the words after in
        brackets (``rgb8 (colour)``); sizes are said without them.
        """
        sides = (self.left, self.right)
        if self.layout and labels is not None:
            sides = (f'{labels[0]} ({self.left})', f'{labels[1]} ({self.right})')
        return f'{names[0]} is {sides[0]} but {names[1]} is {sides[1]}{context}: {self.rule}'


def size_mismatch(left: tuple[int, ...], right: tuple[int, ...]) -> Optional[PairMismatch]:
    """Return how images of shapes ``left`` and ``right`` differ in size, or None if not."""
    if left[:2] == right[:2]:
        return None
    return PairMismatch(size_text(left), size_text(right), ONE_SIZE_RULE)


def pair_mismatch(left: tuple[int, ...], right: tuple[int, ...]) -> Optional[PairMismatch]:
    """Return why images of shapes ``left`` and ``right`` cannot be a stereo pair, or None.

    They must be one size (:func:`size_mismatch`, told first), and both grey (HxW) or both
    colour (HxWxC): matched, a grey view and a colour one differ in every pixel, an error
    that no disparity explains (and that the photometric loss of adaptation would train on).
    """
    mismatch = size_mismatch(left, right)
    if mismatch is None and len(left) != len(right):
        mismatch = PairMismatch(layout_text(left), layout_text(right), ONE_LAYOUT_RULE,
                                layout=True)
    return mismatch


def check_stereo_pair(left: np.ndarray, right: np.ndarray) -> None:
    """Raise ImageFormatError unless left and right are uint8 HxW or HxWx3 images of one size.

    Both grey or both colour, as the node and ``process-bag`` require of a camera's topics
    (:func:`pair_mismatch`).
    """
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
    mismatch = pair_mismatch(left.shape, right.shape)
    if mismatch is not None:
        raise ImageFormatError(mismatch.message())


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
