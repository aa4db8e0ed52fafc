"""Layered stereo scenes textured with real photographs, with exact ground truth.

In the manner of FlyingThings3D: a slanted background plane and 4-14 slanted planar objects
in front of it, each showing a real photograph (:class:`~stereo_depth_ros.data.photos.
PhotoLibrary`); objects are cut out by real silhouettes (photographs with an alpha mask) or by
rectangles, ellipses, polygons, stars and thin bars (poles, wires, branches). Nothing is
textureless unless the photograph is. The geometry and rendering are those of
:mod:`~stereo_depth_ros.data.synthetic`: every surface has an affine disparity and a texture
that is a fixed function of its own coordinates, the right view is rendered by exact inverse
mapping and both views are z-buffered, so the left-view disparity is exact and occlusions are
right.
"""

from typing import Callable, Optional

import cv2
import numpy as np

from .photos import Photo, PhotoLibrary
from .synthetic import (MIN_DISPARITY, ROAD_BASELINE, ShapeFn, SyntheticScene, _photometric,
                        _random_plane, _random_shape, _render, _Surface, check_scene_size)
from ..camera import StereoCameraModel

#: Fraction of objects cut out by a photograph's own alpha silhouette (when there are any).
CUTOUT_SHARE = 0.4
#: Fraction of objects that are thin bars.
THIN_SHARE = 0.12


class _PhotoMap:
    """A similarity transform from left-image coordinates into a photograph's pixels."""

    def __init__(self, rng: np.random.Generator, photo_shape: tuple[int, ...],
                 centre: tuple[float, float], scale: float) -> None:
        angle = rng.uniform(-0.6, 0.6) if rng.random() < 0.7 else rng.uniform(0, 2 * np.pi)
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        self.matrix = np.array([[cos, sin], [-sin, cos]], np.float32)
        rows, cols = photo_shape[:2]
        self.centre = np.float32(centre[0]), np.float32(centre[1])
        self.target = (np.float32(rng.uniform(0.3, 0.7) * cols),
                       np.float32(rng.uniform(0.3, 0.7) * rows))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - self.centre[0], y - self.centre[1]
        u = self.matrix[0, 0] * dx + self.matrix[0, 1] * dy + self.target[0]
        v = self.matrix[1, 0] * dx + self.matrix[1, 1] * dy + self.target[1]
        return u.astype(np.float32, copy=False), v.astype(np.float32, copy=False)


class _PhotoTexture:
    """A photograph (with a random gain, offset and tint) seen through a :class:`_PhotoMap`."""

    def __init__(self, rng: np.random.Generator, rgb: np.ndarray, mapping: _PhotoMap) -> None:
        gain = rng.uniform(0.6, 1.3) * (1 + rng.normal(0, 0.08, 3))
        self.rgb = np.clip(rgb * gain.astype(np.float32) + np.float32(rng.uniform(-25, 25)),
                           0, 255).astype(np.float32)
        self.mapping = mapping

    def __call__(self, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        u, v = self.mapping(x, y)
        return cv2.remap(self.rgb, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _alpha_shape(alpha: np.ndarray, mapping: _PhotoMap) -> ShapeFn:
    def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = mapping(x, y)
        inside = cv2.remap(alpha, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
        return inside > 0.5
    return shape


def _thin_bar(rng: np.random.Generator, height: int,
              width: int) -> tuple[ShapeFn, tuple[float, float, float, float]]:
    """Return a long, thin rotated rectangle (pole, wire, branch) and its bounding box."""
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    half_length = rng.uniform(0.15, 0.8) * max(height, width) / 2
    half_width = rng.uniform(1.0, 5.0)
    angle = rng.uniform(0, np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))

    def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - np.float32(cx), y - np.float32(cy)
        along, across = cos * dx + sin * dy, -sin * dx + cos * dy
        return (np.abs(along) <= half_length) & (np.abs(across) <= half_width)

    reach = half_length + half_width
    return shape, (cx - reach, cy - reach, cx + reach, cy + reach)


def _object(rng: np.random.Generator, library: PhotoLibrary, height: int, width: int
            ) -> tuple[Callable, Optional[ShapeFn], tuple[float, float, float, float]]:
    """Return (texture factory taking the plane's centre, shape, bbox) of one object."""
    draw = rng.random()
    cutout: Optional[Photo] = library.cutout(rng) if draw < CUTOUT_SHARE else None
    if cutout is not None:
        assert cutout.alpha is not None  # PhotoLibrary.cutout returns photos with alpha only
        rows, cols = cutout.alpha.shape
        extent = rng.uniform(0.15, 0.7) * min(height, width)
        scale = extent / max(rows, cols)
        cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.05) * height
        mapping = _PhotoMap(rng, cutout.rgb.shape, (cx, cy), scale)
        mapping.target = (np.float32(cols / 2), np.float32(rows / 2))
        reach = 0.75 * extent * 1.5
        shape = _alpha_shape(cutout.alpha, mapping)
        return (lambda: _PhotoTexture(rng, cutout.rgb, mapping), shape,
                (cx - reach, cy - reach, cx + reach, cy + reach))
    if draw > 1 - THIN_SHARE:
        shape, bbox = _thin_bar(rng, height, width)
    else:
        shape, bbox = _random_shape(rng, height, width)
    rgb = library.texture(rng)
    centre = ((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    mapping = _PhotoMap(rng, rgb.shape, centre, rng.uniform(0.6, 1.6))
    return (lambda: _PhotoTexture(rng, rgb, mapping), shape, bbox)


def photo_surfaces(rng: np.random.Generator, library: PhotoLibrary, height: int, width: int,
                   max_disparity: float) -> list[_Surface]:
    """Return the background plane and photographed objects, disparities up to the maximum."""
    low, high = MIN_DISPARITY, float(max_disparity)
    span = (width + high, height)
    centre = (width / 2, height / 2)
    bg_centre = rng.uniform(low + 0.5, low + 0.3 * (high - low))
    bg_rgb = library.texture(rng)
    bg_map = _PhotoMap(rng, bg_rgb.shape, centre, rng.uniform(0.8, 2.0))
    surfaces = [_Surface(*_random_plane(rng, centre, low, high, span, 0.15, bg_centre),
                         texture=_PhotoTexture(rng, bg_rgb, bg_map))]
    for _ in range(int(rng.integers(4, 15))):
        texture, shape, bbox = _object(rng, library, height, width)
        d_centre = rng.uniform(bg_centre + 0.5, high - 0.5)
        box_centre = ((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
        box_span = (bbox[2] - bbox[0], bbox[3] - bbox[1])
        plane = _random_plane(rng, box_centre, low, high, box_span, 0.12, d_centre)
        surfaces.append(_Surface(*plane, texture=texture(), shape=shape, bbox=bbox))
    return surfaces


def make_photo_scene(seed: int, library: PhotoLibrary, height: int = 256, width: int = 512,
                     max_disparity: float = 192.0, *, photometric: bool = True) -> SyntheticScene:
    """Generate one photo-textured layered scene, identical for identical arguments."""
    check_scene_size(height, width, max_disparity, seed)
    rng = np.random.default_rng([int(seed), 101])
    surfaces = photo_surfaces(rng, library, height, width, max_disparity)
    left, disparity, _ = _render(surfaces, height, width, False, max_disparity)
    right, disparity_right, _ = _render(surfaces, height, width, True, max_disparity)
    left_u8, right_u8 = _photometric(rng, left, right, photometric)
    camera = StereoCameraModel.from_focal_baseline(0.6 * width, ROAD_BASELINE, width, height)
    return SyntheticScene(left_u8, right_u8, disparity, camera, None, None, 'photo',
                          disparity_right, int(seed))
