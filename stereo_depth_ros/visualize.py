"""Pictures people look at: colourised disparity, obstacle overlays, side-by-side panels."""

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .atomic_files import written_atomically
from .images import to_rgb


def robust_max(disparity: np.ndarray) -> float:
    """Return the 99th percentile of the finite values (1.0 when there are none)."""
    valid = np.isfinite(disparity)
    return float(np.percentile(disparity[valid], 99)) if valid.any() else 1.0


#: The colour scale of a stream never tops out below this many px (a far, flat scene would
#: otherwise paint its noise in every colour).
SMALLEST_COLOUR_TOP = 16.0


#: A stream's colour scale comes down only once the frame's :func:`colour_sample_max` is
#: below this fraction of its top (it goes up at once): a value that wavers around a power of
#: two does not make the picture flicker by a factor of two.
COLOUR_TOP_KEPT_ABOVE = 0.4
#: The colour scale's percentile is taken over every this-many-th row and column: a quarter
#: of the pixels, about 1 ms instead of 7 at 384x1248.
COLOUR_SAMPLE_STRIDE = 2


def colour_sample_max(disparity: np.ndarray) -> float:
    """Return the :func:`robust_max` of a regular sample of ``disparity`` (the colour scale's)."""
    return robust_max(np.asarray(disparity)[::COLOUR_SAMPLE_STRIDE, ::COLOUR_SAMPLE_STRIDE])


class ColourScale:
    """The top of a stream's colour scale, the disparity (px) its picture paints red.

    The smallest power of two, at least :data:`SMALLEST_COLOUR_TOP`, at or above the frame's
    :func:`colour_sample_max`, and never more than ``limit`` (the backend's range): a backend
    with a wide range (0-384 px) does not paint a scene of 0-40 px in its first tenth of the
    colours, nearly black. It rises as soon as a frame needs it and falls only when the
    frame's :func:`colour_sample_max` drops below :data:`COLOUR_TOP_KEPT_ABOVE` of it, so
    colours mean the same disparity from frame to frame while the nearest thing in view
    moves a little.
    """

    def __init__(self) -> None:
        self._top: Optional[float] = None

    def top(self, disparity: np.ndarray, limit: float) -> float:
        """Return the red end (px) of the scale for this frame, and remember it."""
        robust = colour_sample_max(disparity)
        needed = max(robust, SMALLEST_COLOUR_TOP)
        wanted = float(min(2.0 ** np.ceil(np.log2(needed)), limit))
        kept = self._top
        if kept is not None and wanted < kept <= limit and robust >= COLOUR_TOP_KEPT_ABOVE * kept:
            return kept
        self._top = wanted
        return wanted


def colorize_disparity(disparity: np.ndarray, max_disparity: Optional[float] = None,
                       min_disparity: float = 0.0) -> np.ndarray:
    """Return an HxWx3 uint8 RGB image of disparity (turbo colour map; unknown = black).

    Near (large disparity) is red, far is blue. ``max_disparity`` defaults to the 99th
    percentile of the valid values, so one outlier does not wash the picture out.
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(disparity)
    if max_disparity is None:
        max_disparity = robust_max(disparity)
    span = max(float(max_disparity) - min_disparity, 1e-6)
    scaled = np.zeros(disparity.shape, dtype=np.uint8)
    scaled[valid] = np.clip((disparity[valid] - min_disparity) / span * 255.0, 0, 255).astype(
        np.uint8)
    colour = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)[:, :, ::-1].copy()
    colour[~valid] = 0
    return colour


def colorize_depth(depth: np.ndarray, max_depth: float = 40.0) -> np.ndarray:
    """Return an RGB picture of metric depth (near = red, unknown = black)."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        inverse = np.where(np.isfinite(depth) & (depth > 0), 1.0 / depth, np.nan)
    return colorize_disparity(inverse, max_disparity=float(np.nanmax(inverse))
                              if np.isfinite(inverse).any() else 1.0,
                              min_disparity=1.0 / max_depth)


def overlay_obstacle(left: np.ndarray, obstacle) -> np.ndarray:
    """Return the left image (RGB) with the nearest-obstacle mask tinted, its box and distance.

    ``obstacle`` is an :class:`~stereo_depth_ros.obstacle.ObstacleResult`.
    """
    image = to_rgb(left).copy()
    # Text and lines grow with images wider than 640 px (at 1080p the label was unreadable).
    scale = max(1.0, image.shape[1] / 640)
    font, thick = 0.6 * scale, max(2, round(2 * scale))
    if obstacle is None or not obstacle.found:
        draw_label(image, 'no obstacle', (8, round(22 * scale)), font, thick)
        return image
    mask = obstacle.mask.astype(bool)
    tint = np.array([255, 40, 40], dtype=np.float32)
    image[mask] = (0.45 * image[mask] + 0.55 * tint).astype(np.uint8)
    edges = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    image[edges > 0] = (255, 255, 0)
    if obstacle.bbox is not None:
        x, y, w, h = (int(v) for v in obstacle.bbox)
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (255, 255, 0), thick)
        label = f'{obstacle.distance:.1f} m'
        draw_label(image, label, (x, max(y - round(6 * scale), round(14 * scale))), font, thick)
    return image


def draw_label(image: np.ndarray, text: str, origin: tuple[int, int], font: float,
               thick: int) -> None:
    """Write white ``text`` at ``origin`` (its baseline's left end) with a dark outline.

    The outline keeps it readable on any background: plain white text vanished on the light
    walls of indoor scenes and on the box's yellow edge when the box touches the top.
    """
    for colour, weight in (((0, 0, 0), thick + 2), ((255, 255, 255), thick)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font, colour, weight,
                    cv2.LINE_AA)


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Concatenate RGB images of one height horizontally with a black gap."""
    rgb = [to_rgb(image) for image in images]
    height = rgb[0].shape[0]
    spacer = np.zeros((height, gap, 3), dtype=np.uint8)
    parts: list[np.ndarray] = []
    for image in rgb:
        parts.extend([image, spacer])
    return np.concatenate(parts[:-1], axis=1)


def titled(image: np.ndarray, title: str, bar: int = 26) -> np.ndarray:
    """Return the RGB image under a dark title bar (as an rviz image panel shows a topic)."""
    rgb = to_rgb(image)
    header = np.full((bar, rgb.shape[1], 3), 40, dtype=np.uint8)
    cv2.putText(header, title, (6, bar - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1,
                cv2.LINE_AA)
    return np.concatenate([header, rgb], axis=0)


def grid(images: list[np.ndarray], columns: int = 2, gap: int = 4) -> np.ndarray:
    """Arrange RGB images of one size in a grid, row by row, with black gaps."""
    rows = [side_by_side(*images[i:i + columns], gap=gap) for i in range(0, len(images), columns)]
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0))) for row in rows]
    return np.concatenate(padded, axis=0)[:-gap]


def encode_rgb(image: np.ndarray, suffix: str = '.png') -> bytes:
    """Return an RGB uint8 image encoded in the format of file ``suffix`` (OpenCV's)."""
    ok, data = cv2.imencode(suffix, to_rgb(image)[:, :, ::-1])
    if not ok:
        raise ValueError(f'OpenCV cannot encode a {image.shape} image as {suffix}')
    return data.tobytes()


def save_rgb(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image to ``path`` (PNG or any format OpenCV knows), whole or not at all.

    Encoded in memory, then written with :func:`~stereo_depth_ros.atomic_files.
    written_atomically`: a full disk is an OSError naming the file and its errno (ENOSPC),
    not a truncated picture or a libpng message.
    """
    path = Path(path)
    data = encode_rgb(image, path.suffix or '.png')
    with written_atomically(path) as staging:
        staging.write_bytes(data)
