"""Stereo from mono: a real photograph, a plausible disparity map, and a forward-warped right view.

The left view is the photograph itself, so every left pixel is real. Its disparity map is
piecewise planar over a segmentation of the photograph (k-means on colour and position), so
depth edges fall on colour edges as they do in the world, with a slanted plane per segment and
a near-bottom / far-top trend. The right view is rendered by forward warping each row:

* left pixel ``x`` lands at ``p(x) = x - d(x)`` in the right view;
* it is visible there when no pixel further right lands at or before it
  (``p(x) < min(p(x') for x' > x)``): nearer surfaces (larger disparity) win;
* a right pixel ``xr`` between the landing points of two neighbouring visible left pixels of
  one surface takes the linear interpolation of their colours; right pixels that no visible
  left pixel covers (seen only by the right camera) are filled from the farther of the two
  surfaces beside them, as what the right camera sees behind a nearer edge is background:
  its texture mirrored into the gap (:func:`fill_from_background`); a row with no pixel
  beside a hole is inpainted.

So the ground truth is exact: sampling the right view at ``x - d(x)`` returns the left pixel
wherever it is visible (exactly, for integer disparities).
"""

from typing import Optional

import cv2
import numpy as np

from .synthetic import MIN_DISPARITY, ROAD_BASELINE, SyntheticScene, _photometric
from ..camera import StereoCameraModel

#: Largest disparity step (px) between neighbouring pixels that still counts as one surface.
SURFACE_STEP = 1.0


def _fit(photo: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return a random crop of the photograph resized to ``height`` x ``width`` (float32)."""
    rows, cols = photo.shape[:2]
    scale = max(height / rows, width / cols) * rng.uniform(1.0, 1.6)
    resized = cv2.resize(photo, (max(int(np.ceil(cols * scale)), width),
                                 max(int(np.ceil(rows * scale)), height)),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, resized.shape[0] - height + 1))
    x = int(rng.integers(0, resized.shape[1] - width + 1))
    return np.ascontiguousarray(resized[y:y + height, x:x + width], dtype=np.float32)


def segment(image: np.ndarray, rng: np.random.Generator, segments: int) -> np.ndarray:
    """Label each pixel with its nearest of ``segments`` k-means centres (colour + position)."""
    height, width = image.shape[:2]
    lab = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    position = 60.0 / max(height, width)
    features = np.concatenate([lab.astype(np.float32), (xs * position)[..., None],
                               (ys * position)[..., None]], axis=2).reshape(-1, 5)
    sample = features[rng.choice(len(features), size=min(4000, len(features)), replace=False)]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(int(rng.integers(2 ** 31)))
    # OpenCV takes None for bestLabels (no initial labels); its stubs demand an array.
    _, _, centres = cv2.kmeans(sample, segments, None,  # type: ignore[call-overload]
                               criteria, 1, cv2.KMEANS_PP_CENTERS)
    distance = ((features[:, None, :] - centres[None]) ** 2).sum(axis=2)
    labels = distance.argmin(axis=1).reshape(height, width).astype(np.uint8)
    return cv2.medianBlur(labels, 5)


def plausible_disparity(image: np.ndarray, rng: np.random.Generator,
                        max_disparity: float) -> np.ndarray:
    """Return a piecewise-planar disparity map in [MIN_DISPARITY, max_disparity]."""
    height, width = image.shape[:2]
    labels = segment(image, rng, int(rng.integers(4, 13)))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    span = max_disparity - MIN_DISPARITY
    trend = rng.uniform(0.0, 0.5) * (ys / height)
    disparity = np.zeros((height, width), np.float32)
    for label in np.unique(labels):
        inside = labels == label
        level = rng.uniform(0.0, 0.6)
        slope_x, slope_y = rng.uniform(-0.15, 0.15, 2)
        cx, cy = xs[inside].mean(), ys[inside].mean()
        plane = level + slope_x * (xs - cx) / width + slope_y * (ys - cy) / height
        disparity[inside] = plane[inside]
    disparity = np.clip(disparity + trend, 0.0, 1.0)
    return (MIN_DISPARITY + span * disparity).astype(np.float32)


def forward_warp(left: np.ndarray, disparity: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (right view, right-view disparity, hole mask) of a left view and its disparity.

    Holes (right pixels no visible left pixel covers) are left black and marked in the mask;
    the right-view disparity is NaN there.
    """
    height, width = disparity.shape
    right = np.zeros_like(left, dtype=np.float32)
    right_disparity = np.full((height, width), np.nan, np.float32)
    cols = np.arange(width, dtype=np.float64)
    targets = np.arange(width, dtype=np.float64)
    for row in range(height):
        d = disparity[row].astype(np.float64)
        landing = cols - d
        later = np.minimum.accumulate(np.append(landing[1:], np.inf)[::-1])[::-1]
        visible = landing < later
        # Segments between horizontally adjacent visible pixels of one surface.
        start = visible[:-1] & visible[1:] & (np.abs(np.diff(d)) <= SURFACE_STEP)
        first = np.flatnonzero(start)
        if first.size == 0:
            continue
        lo, hi = landing[first], landing[first + 1]
        # For each right column, the segment whose landing interval holds it.
        index = np.searchsorted(hi, targets, side='left')
        inside = index < first.size
        index = np.minimum(index, first.size - 1)
        covered = inside & (lo[index] <= targets) & (targets <= hi[index])
        where = np.flatnonzero(covered)
        seg = first[index[where]]
        t = ((targets[where] - landing[seg]) / (landing[seg + 1] - landing[seg]))
        t32 = t.astype(np.float32)[:, None]
        right[row, where] = (1 - t32) * left[row, seg] + t32 * left[row, seg + 1]
        right_disparity[row, where] = ((1 - t) * d[seg] + t * d[seg + 1]).astype(np.float32)
    holes = ~np.isfinite(right_disparity)
    return right, right_disparity, holes


def fill_from_background(right: np.ndarray, right_disparity: np.ndarray,
                         holes: np.ndarray) -> np.ndarray:
    """Return ``right`` with each run of ``holes`` along a row filled from its far side.

    A hole opens where a nearer surface moves aside between the views, so it shows what lies
    behind: of the two pixels beside the run, the one of smaller disparity (at an image edge,
    the only one). Its side's colours are mirrored into the run (the pixel ``j`` from the
    edge takes the one ``j`` beyond it), as far as that side stays within a disparity step
    of its edge pixel and is no hole; beyond, the edge pixel's colour. Inpainting from both
    sides painted the nearer surface's colour half-way across (a 30 px gap beside a red
    object on blue stayed red for 14 px).
    """
    filled = right.copy()
    height, width = holes.shape
    for row in np.flatnonzero(holes.any(axis=1)):
        hole = holes[row]
        edges = np.flatnonzero(np.diff(np.concatenate(([0], hole.view(np.int8), [0]))))
        for start, stop in zip(edges[::2], edges[1::2]):
            sides = [side for side in (start - 1, stop) if 0 <= side < width]
            if not sides:
                continue
            side = min(sides, key=lambda column: right_disparity[row, column])
            step = 1 if side == stop else -1
            beyond = side + step * np.arange(stop - start)
            usable = (beyond >= 0) & (beyond < width)
            clipped = np.clip(beyond, 0, width - 1)
            usable &= ~hole[clipped] & (np.abs(right_disparity[row, clipped]
                                               - right_disparity[row, side]) <= SURFACE_STEP)
            source = np.where(np.minimum.accumulate(usable), clipped, side)
            gap = np.arange(stop - 1, start - 1, -1) if step == 1 else np.arange(start, stop)
            filled[row, gap] = right[row, source]
    return filled


def make_mono_pair(photo: np.ndarray, seed: int, height: int = 256, width: int = 512,
                   max_disparity: float = 192.0, *, photometric: bool = True,
                   disparity: Optional[np.ndarray] = None) -> SyntheticScene:
    """Turn one photograph into a stereo pair with exact left-view ground truth.

    ``disparity`` overrides the generated map (same size as the output), e.g. for tests.
    """
    rng = np.random.default_rng([int(seed), 211])
    left = _fit(photo, rng, height, width)
    if disparity is None:
        disparity = plausible_disparity(left, rng, max_disparity)
    right, right_disparity, holes = forward_warp(left, disparity)
    if holes.any():
        right = fill_from_background(right, right_disparity, holes)
        rest = holes & holes.all(axis=1, keepdims=True)  # rows with nothing beside a hole
        if rest.any():
            pixels = np.clip(right + 0.5, 0, 255).astype(np.uint8)
            right = cv2.inpaint(pixels, rest.astype(np.uint8), 3,
                                cv2.INPAINT_TELEA).astype(np.float32)
    left_u8, right_u8 = _photometric(rng, left, right, photometric)
    camera = StereoCameraModel.from_focal_baseline(0.6 * width, ROAD_BASELINE, width, height)
    return SyntheticScene(left_u8, right_u8, disparity.astype(np.float32), camera, None, None,
                          'mono', right_disparity, int(seed))
