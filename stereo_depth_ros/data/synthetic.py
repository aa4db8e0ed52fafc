"""Synthetic rectified stereo scenes with exact sub-pixel ground-truth disparity.

Two kinds of scene, both deterministic per seed:

- ``layered``: slanted textured planes cut into rectangles, ellipses, convex polygons and
  star shapes in front of a slanted textured background plane.
- ``road``: a camera at a known height looking along a flat, textured road with lane
  markings, a far backdrop (distant scenery and weakly textured sky) and 1-3 fronto-parallel
  obstacles (boxes, cars, pedestrians) standing on the road at known depths.

Every surface is a plane whose left-view disparity is affine, ``d(x, y) = a*x + b*y + c``, and
whose texture is a fixed function of the surface's own coordinates. The left view is rendered
by z-buffering the surfaces at each pixel by disparity (larger = nearer). The right view is
rendered by exact inverse mapping: at right pixel ``xr`` a plane has disparity
``(a*xr + b*y + c) / (1 - a)`` and shows its texture at left coordinate ``xl = xr + d``,
again z-buffered by disparity, so occlusions are correct. The ground truth is the disparity of
the visible surface in the left view: exact and finite at every pixel.

Textures are value noise at several scales (bilinearly interpolated random grids), stripes,
checkers and gradients, with some weakly textured surfaces. Noise octaves with cells under
two pixels fade out (gone at one pixel) as a function of the surface point alone (on the road:
its depth), so both views sample the same band-limited function. OpenCV's bilinear remap
quantises positions to 1/32 of a noise cell, which changes intensities by a small fraction of
a grey level; the disparity itself is exact.

Sky: the road scenes' backdrop (distant scenery and sky) is a fronto-parallel plane at
disparity :data:`SKY_DISPARITY` (1 px, i.e. ``fx*B`` metres away), standing in for "infinity"
so that the ground truth stays finite; it hides the road beyond that depth.

Seeds: training must use seeds below ``EVAL_SEED_OFFSET`` (1_000_000,
:func:`check_training_seed`); seeds from there on are held out. Of those, the first
``TEST_SEED_OFFSET - EVAL_SEED_OFFSET`` (1_000_000 .. 1_099_999) are *validation* seeds: the
trainer's periodic validation and the choice between runs use them, so they steer decisions.
The reported test figures (``eval:N``, :func:`eval_seeds`) use seeds from ``TEST_SEED_OFFSET``
(1_100_000) on, which no training, validation or model selection ever sees.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from ..camera import StereoCameraModel
from ..errors import DatasetError

#: Seeds >= this are held out (validation, then test); training uses smaller seeds.
EVAL_SEED_OFFSET = 1_000_000
#: First validation seed (trainer validation, model selection): steers decisions.
VALIDATION_SEED_OFFSET = EVAL_SEED_OFFSET
#: First test seed (``eval:N``): never used for training, validation or model selection.
TEST_SEED_OFFSET = 1_100_000
#: Smallest ground-truth disparity of any scene, in pixels.
MIN_DISPARITY = 1.0
#: Disparity (px) of the road scenes' sky / distant-scenery backdrop.
SKY_DISPARITY = 1.0
#: Stereo baseline of the road scenes, metres (KITTI's).
ROAD_BASELINE = 0.54
#: Scene kinds :func:`make_scene` knows.
KINDS = ('layered', 'road')


@dataclass
class SyntheticScene:
    """One synthetic rectified pair with exact left-view ground truth.

    ``left``/``right`` are HxWx3 uint8 RGB; ``disparity`` is float32 HxW, finite everywhere.
    ``obstacle_mask`` (road scenes) marks the visible pixels of the nearest obstacle and
    ``obstacle_distance`` is its depth z in metres; both are None without obstacles.
    ``disparity_right`` is the right view's ground-truth disparity (same convention: the
    matching left pixel is at ``x + d``).
    """

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    camera: StereoCameraModel
    obstacle_mask: Optional[np.ndarray] = None
    obstacle_distance: Optional[float] = None
    kind: str = 'layered'
    disparity_right: Optional[np.ndarray] = None
    seed: Optional[int] = None


def check_training_seed(seed: int) -> int:
    """Return ``seed`` if it may be used for training, else raise DatasetError."""
    if not 0 <= int(seed) < EVAL_SEED_OFFSET:
        raise DatasetError(
            f'training seed {seed} is reserved: training uses seeds in [0, {EVAL_SEED_OFFSET}), '
            f'held-out evaluation uses seeds >= {EVAL_SEED_OFFSET}')
    return int(seed)


# ---------------------------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------------------------

_REMAP_COLS = 1024


def _sample_grid(grid: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Bilinearly sample ``grid`` at fractional (col, row) positions (2-D float32 arrays)."""
    if cols.size == 0:
        return np.zeros(cols.shape, np.float32)
    return cv2.remap(grid, cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _as_rows(values: np.ndarray) -> np.ndarray:
    """Pad a 1-D array and fold it into rows of ``_REMAP_COLS`` (remap needs 2-D maps)."""
    width = max(min(_REMAP_COLS, values.size), 1)
    height = -(-values.size // width)
    return np.pad(values, (0, height * width - values.size), mode='edge').reshape(height, width)


def _fade(cell: float, footprint: np.ndarray | float) -> np.ndarray | float:
    """Weight of a noise octave: 1 for cells >= 2 footprints (pixels), 0 below 1 footprint."""
    return np.clip(cell / np.maximum(footprint, 1e-9) - 1.0, 0.0, 1.0)


class _NoiseField:
    """Sums of value-noise octaves over a rectangle of (u, v), unit variance per channel.

    ``weights`` is one weight per octave, or an (octaves x channels) array for several
    independent noise channels sampled together (the output then has a last channel axis).
    """

    def __init__(self, rng: np.random.Generator, lo: tuple[float, float],
                 hi: tuple[float, float], cells: Sequence[float] | np.ndarray,
                 weights: Sequence[float] | np.ndarray,
                 boxes: Optional[Sequence[tuple[float, float, float, float]]] = None) -> None:
        # ``boxes`` optionally gives each octave its own (u0, v0, u1, v1) domain, the region
        # where it is used at all (fine octaves fade out far away); outside, it is mirrored.
        table = np.asarray(weights, np.float64)
        self.channels = 0 if table.ndim == 1 else table.shape[1]
        table = table.reshape(len(cells), -1)
        table = table / np.maximum(np.sqrt(np.sum(table ** 2, axis=0)), 1e-12)
        self.octaves = []
        for number, cell in enumerate(cells):
            u0, v0, u1, v1 = (lo[0], lo[1], hi[0], hi[1]) if boxes is None else boxes[number]
            cols = max(int(np.ceil((u1 - u0) / cell)), 1) + 3
            rows = max(int(np.ceil((v1 - v0) / cell)), 1) + 3
            shape = (rows, cols) if self.channels == 0 else (rows, cols, self.channels)
            # Uniform noise in [-1.73, 1.73] has unit variance (bilinear mixing lowers it).
            grid = (rng.random(shape, dtype=np.float32) - 0.5) * np.float32(3.46)
            weight = table[number].astype(np.float32)
            if self.channels == 0:
                weight = weight[0]
            elif np.all(weight == 0):
                continue
            self.octaves.append((float(cell), weight, grid, float(u0), float(v0)))

    def __call__(self, u: np.ndarray, v: np.ndarray,
                 footprint: np.ndarray | float = 0.0) -> np.ndarray:
        shape = u.shape if self.channels == 0 else u.shape + (self.channels,)
        out = np.zeros(shape, np.float32)
        for cell, weight, grid, u0, v0 in self.octaves:
            fade = _fade(cell, footprint)
            if np.ndim(fade) == 0:
                if fade <= 0:
                    continue
                scale = weight * np.float32(fade)
            else:
                if not np.any(fade > 0):
                    continue
                fade = np.asarray(fade, np.float32)
                scale = fade * weight if self.channels == 0 else fade[..., None] * weight
            inverse = np.float32(1 / cell)
            values = _sample_grid(grid, (u - np.float32(u0)) * inverse + np.float32(1),
                                  (v - np.float32(v0)) * inverse + np.float32(1))
            values *= scale
            out += values
        return out


def _random_colour(rng: np.random.Generator, saturation: float = 0.5) -> np.ndarray:
    grey = rng.uniform(50, 200)
    tint = rng.normal(0, 1, 3)
    return np.clip(grey + saturation * 60 * tint, 15, 240).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Surfaces: affine disparity, a shape in left-image coordinates, a texture
# ---------------------------------------------------------------------------------------------

# A shape maps left-image coordinates (x, y) (float32 arrays) to a bool membership array.
ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# A texture maps left-image coordinates and disparity (1-D arrays) to Nx3 float32 RGB.
TextureFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class _Surface:
    """A plane ``d = a*x + b*y + c`` in left coordinates, cut by ``shape``, with a texture."""

    a: float
    b: float
    c: float
    texture: TextureFn
    shape: Optional[ShapeFn] = None
    bbox: Optional[tuple[float, float, float, float]] = None  # x0, y0, x1, y1 (left view)
    obstacle: int = -1  # index of the obstacle this surface belongs to, -1 for none

    def disparity_left(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.float32(self.a) * x + np.float32(self.b) * y
                + np.float32(self.c)).astype(np.float32, copy=False)

    def disparity_right(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.disparity_left(x, y) / np.float32(1.0 - self.a)


def _window(surface: _Surface, height: int, width: int, right: bool,
            max_disparity: float) -> Optional[tuple[int, int, int, int]]:
    """Pixel window (x0, y0, x1, y1), exclusive ends, where the surface may be visible."""
    if surface.bbox is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = surface.bbox
    if right:
        x0, x1 = x0 - max_disparity - 1, x1
    cols = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, width)
    rows = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, height)
    if cols[0] >= cols[1] or rows[0] >= rows[1]:
        return None
    return cols[0], rows[0], cols[1], rows[1]


def _render(surfaces: Sequence[_Surface], height: int, width: int, right: bool,
            max_disparity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer the surfaces in one view; return (RGB float32, disparity, surface index)."""
    disparity = np.full((height, width), -np.inf, np.float32)
    index = np.full((height, width), -1, np.int32)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    for number, surface in enumerate(surfaces):
        window = _window(surface, height, width, right, max_disparity)
        if window is None:
            continue
        x0, y0, x1, y1 = window
        x, y = xs[:, x0:x1], ys[y0:y1]
        if right:
            d = surface.disparity_right(x, y)
            xl = x + d
        else:
            d = surface.disparity_left(x, y)
            xl = x
        d = np.broadcast_to(d, (y1 - y0, x1 - x0))
        current = disparity[y0:y1, x0:x1]
        wins = d > current
        if surface.shape is not None:
            wins &= surface.shape(xl, y)
        np.copyto(current, d, where=wins)
        np.copyto(index[y0:y1, x0:x1], np.int32(number), where=wins)
    image = np.zeros((height, width, 3), np.float32)
    for number, surface in enumerate(surfaces):
        r, c = np.nonzero(index == number)
        if r.size == 0:
            continue
        d = disparity[r, c]
        xl = c.astype(np.float32) + (d if right else np.float32(0))
        rgb = surface.texture(_as_rows(xl), _as_rows(r.astype(np.float32)), _as_rows(d))
        image[r, c] = rgb.reshape(-1, 3)[:r.size]
    return image, disparity, index


def _photometric(rng: np.random.Generator, left: np.ndarray, right: np.ndarray,
                 enabled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Add sensor noise and a small left/right gain/offset difference; return uint8 images."""
    if enabled:
        sigma = rng.uniform(0.5, 2.0)
        gain = rng.uniform(0.95, 1.05)
        offset = rng.uniform(-5.0, 5.0)
        right = right * np.float32(gain) + np.float32(offset)
        # Uniform noise of standard deviation sigma from random bytes (cheap to draw).
        raw = np.frombuffer(rng.bytes(2 * left.size), np.uint8).reshape((2,) + left.shape)
        noise = raw.astype(np.float32)
        noise -= np.float32(127.5)
        noise *= np.float32(sigma * np.sqrt(12.0) / 256.0)
        left = left + noise[0]
        right += noise[1]
    return (np.clip(left + 0.5, 0, 255).astype(np.uint8),
            np.clip(right + 0.5, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Layered scenes
# ---------------------------------------------------------------------------------------------


class _PlanarTexture:
    """Procedural texture in a surface's own (rotated, scaled) coordinates."""

    def __init__(self, rng: np.random.Generator, bbox: tuple[float, float, float, float],
                 weak: bool) -> None:
        x0, y0, x1, y1 = bbox
        self.origin = ((x0 + x1) / 2, (y0 + y1) / 2)
        angle = rng.uniform(0, np.pi)
        self.scale = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))  # px per texel unit
        self.rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]],
                            np.float32) / np.float32(self.scale)
        half = 0.5 * np.hypot(x1 - x0, y1 - y0) / self.scale + 2
        lo, hi = (-half, -half), (half, half)
        cells = 1.5 * 2.0 ** np.arange(7)
        slope = rng.uniform(-0.5, 0.7)
        # Two channels: luminance (all octaves) and colour variation (coarse octaves only).
        self.noise = _NoiseField(rng, lo, hi, cells, np.stack(
            [cells ** slope, (cells >= 12).astype(np.float64)], axis=1))
        self.footprint = 1.0 / self.scale
        self.base = _random_colour(rng, saturation=rng.uniform(0.1, 0.8))
        self.tint = (1 + rng.normal(0, 0.15, 3)).astype(np.float32)
        self.chroma_dir = rng.normal(0, 1, 3).astype(np.float32)
        self.chroma_dir /= np.linalg.norm(self.chroma_dir) + 1e-6
        if weak:
            self.contrast = rng.uniform(1.5, 5.0)
            self.chroma_amp = rng.uniform(0.0, 3.0)
        else:
            self.contrast = float(np.exp(rng.uniform(np.log(12), np.log(70))))
            self.chroma_amp = rng.uniform(0.0, 20.0)
        self.stripes = None
        if rng.random() < 0.3:
            period = rng.uniform(4.0, 40.0)
            theta = rng.uniform(0, np.pi)
            self.stripes = (np.cos(theta) / period, np.sin(theta) / period,
                            rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 4.0),
                            rng.uniform(0.3, 1.2))
        self.checker = None
        if rng.random() < 0.1:
            self.checker = (rng.uniform(6.0, 30.0), rng.uniform(0.5, 1.0))
        self.gradient = None
        if rng.random() < 0.4:
            theta = rng.uniform(0, 2 * np.pi)
            self.gradient = (np.cos(theta), np.sin(theta), rng.uniform(10, 60) / half)

    def __call__(self, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        dx = x - np.float32(self.origin[0])
        dy = y - np.float32(self.origin[1])
        u = self.rot[0, 0] * dx + self.rot[0, 1] * dy
        v = self.rot[1, 0] * dx + self.rot[1, 1] * dy
        noise = self.noise(u, v, self.footprint)
        lum, chroma = noise[..., 0], noise[..., 1:]
        if self.stripes is not None:
            fu, fv, phase, sharp, amp = self.stripes
            wave = np.sin(np.float32(2 * np.pi) * (np.float32(fu) * u + np.float32(fv) * v)
                          + np.float32(phase))
            lum += np.float32(amp / np.tanh(sharp)) * np.tanh(np.float32(sharp) * wave)
        if self.checker is not None:
            period, amp = self.checker
            k = np.float32(np.pi / period)
            lum += np.float32(amp) * np.tanh(3 * np.sin(k * u) * np.sin(k * v))
        rgb = lum[..., None] * (np.float32(self.contrast) * self.tint)
        rgb += self.base
        rgb += chroma * (np.float32(self.chroma_amp) * self.chroma_dir)
        if self.gradient is not None:
            gx, gy, slope = self.gradient
            rgb += np.float32(slope) * (np.float32(gx) * u + np.float32(gy) * v)[..., None]
        return rgb


def _random_plane(rng: np.random.Generator, centre: tuple[float, float], low: float,
                  high: float, span: tuple[float, float], max_slope: float,
                  d_centre: float) -> tuple[float, float, float]:
    """Affine disparity through ``d_centre`` at ``centre`` staying in [low, high] over span."""
    a, b = rng.uniform(-max_slope, max_slope, 2)
    room = min(d_centre - low, high - d_centre)
    variation = abs(a) * span[0] / 2 + abs(b) * span[1] / 2
    if variation > room:
        a, b = a * room / variation, b * room / variation
    return float(a), float(b), float(d_centre - a * centre[0] - b * centre[1])


def _random_shape(rng: np.random.Generator, height: int,
                  width: int) -> tuple[ShapeFn, tuple[float, float, float, float]]:
    """Return a rectangle, ellipse, convex polygon or star (left-image coordinates), bbox."""
    size = np.sqrt(height * width) * 0.75
    cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.05) * height
    radius = size * float(np.exp(rng.uniform(np.log(0.06), np.log(0.45))))
    angle = rng.uniform(0, np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    kind = rng.choice(['rect', 'ellipse', 'polygon', 'star'], p=[0.3, 0.25, 0.3, 0.15])
    bbox = (cx - radius * 1.5, cy - radius * 1.5, cx + radius * 1.5, cy + radius * 1.5)

    def local(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - np.float32(cx), y - np.float32(cy)
        return cos * dx + sin * dy, -sin * dx + cos * dy

    if kind == 'rect':
        hw, hh = radius * rng.uniform(0.3, 1.5), radius * rng.uniform(0.3, 1.5)

        def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            u, v = local(x, y)
            return (np.abs(u) <= hw) & (np.abs(v) <= hh)
    elif kind == 'ellipse':
        ra, rb = radius * rng.uniform(0.4, 1.4), radius * rng.uniform(0.4, 1.4)

        def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            u, v = local(x, y)
            return (u / np.float32(ra)) ** 2 + (v / np.float32(rb)) ** 2 <= 1
    elif kind == 'polygon':
        count = int(rng.integers(3, 8))
        # Vertices on a circle in counter-clockwise order always form a convex polygon.
        angles = np.sort(rng.uniform(0, 2 * np.pi, count) * 0.5
                         + np.linspace(0, 2 * np.pi, count, endpoint=False))
        points = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
        edges = np.roll(points, -1, axis=0) - points
        normals = np.stack([edges[:, 1], -edges[:, 0]], 1)
        offsets = np.sum(normals * points, axis=1)

        def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            u, v = local(x, y)
            inside = np.ones(u.shape, bool)
            for (nx, ny), off in zip(normals, offsets):
                inside &= np.float32(nx) * u + np.float32(ny) * v <= np.float32(off)
            return inside
    else:
        lobes = int(rng.integers(3, 8))
        depth = rng.uniform(0.2, 0.5)

        def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            u, v = local(x, y)
            theta = np.arctan2(v, u)
            limit = np.float32(radius) * (1 - np.float32(depth) * (0.5 + 0.5 * np.cos(
                np.float32(lobes) * theta)))
            return u * u + v * v <= limit * limit
    return shape, bbox


def _layered_scene(rng: np.random.Generator, height: int, width: int,
                   max_disparity: float) -> tuple[list[_Surface], StereoCameraModel]:
    low, high = MIN_DISPARITY, float(max_disparity)
    span = (width + high, height)
    centre = (width / 2, height / 2)
    bg_centre = rng.uniform(low + 0.5, low + 0.35 * (high - low))
    whole = (-high - 2.0, -2.0, width + high + 2.0, height + 2.0)
    surfaces = [_Surface(*_random_plane(rng, centre, low, high, span, 0.15, bg_centre),
                         texture=_PlanarTexture(rng, whole, weak=rng.random() < 0.15))]
    count = int(rng.integers(3, 11))
    for _ in range(count):
        shape, bbox = _random_shape(rng, height, width)
        d_centre = rng.uniform(bg_centre + 0.5, high - 0.5)
        box_centre = ((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
        box_span = (bbox[2] - bbox[0], bbox[3] - bbox[1])
        plane = _random_plane(rng, box_centre, low, high, box_span, 0.12, d_centre)
        tex_box = (bbox[0] - 2, bbox[1] - 2, bbox[2] + 2, bbox[3] + 2)
        surfaces.append(_Surface(*plane, texture=_PlanarTexture(rng, tex_box,
                                                                weak=rng.random() < 0.2),
                                 shape=shape, bbox=bbox))
    fx = 0.6 * width
    camera = StereoCameraModel.from_focal_baseline(fx, ROAD_BASELINE, width, height)
    return surfaces, camera


# ---------------------------------------------------------------------------------------------
# Road scenes
# ---------------------------------------------------------------------------------------------


@dataclass
class _RoadWorld:
    """Camera, road and backdrop of a road scene (obstacles are added per frame)."""

    camera: StereoCameraModel
    cam_height: float
    max_disparity: float
    ground: _Surface
    backdrop: _Surface

    @property
    def min_obstacle_depth(self) -> float:
        """Nearest depth (m) at which an obstacle's disparity fits ``max_disparity``."""
        return 1.05 * self.camera.focal_baseline / (0.95 * self.max_disparity)


class _GroundTexture:
    """Asphalt (noise in metric ground coordinates) with lane markings."""

    def __init__(self, rng: np.random.Generator, camera: StereoCameraModel, cam_height: float,
                 max_disparity: float, lane_offset: float) -> None:
        self.camera, self.cam_height = camera, cam_height
        far = camera.focal_baseline / SKY_DISPARITY
        near = camera.fy * cam_height / max(camera.height - 1 - camera.cy, 1.0)
        reach = (camera.width / 2 + max_disparity + 2) / camera.fx
        cells = 0.02 * 2.0 ** np.arange(9)
        # An octave of cell c is faded out beyond the depth where the footprint exceeds c.
        used = [min(far, camera.fx * c, np.sqrt(camera.fy * cam_height * c)) + 1
                for c in cells]
        self.noise = _NoiseField(rng, (-reach * far, near - 1), (reach * far, far + 1), cells,
                                 cells ** rng.uniform(0.1, 0.5),
                                 boxes=[(-reach * z, near - 1, reach * z, z) for z in used])
        # Longitudinal streaks (wear, tyre marks): noise stretched ``aspect`` times along the
        # road, so that detail across the road survives far away as it does on real roads.
        self.aspect = 25.0
        used = [min(far, camera.fx * c, np.sqrt(camera.fy * cam_height * c * self.aspect)) + 1
                for c in cells]
        self.streaks = _NoiseField(
            rng, (-reach * far, 0), (reach * far, far / self.aspect + 1), cells,
            cells ** rng.uniform(0.0, 0.4),
            boxes=[(-reach * z, 0, reach * z, z / self.aspect + 1) for z in used])
        self.grey = rng.uniform(70, 125)
        self.contrast = rng.uniform(8, 25)
        self.streak_contrast = rng.uniform(5, 15)
        self.colour = (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
        lane = rng.uniform(3.2, 3.8)
        self.lines = [(lane_offset + k * lane, abs(k) == 2) for k in (-2, -1, 0, 1, 2)
                      if k != 0 or rng.random() < 0.5]
        self.line_width = rng.uniform(0.10, 0.16)
        self.dash = (rng.uniform(2.5, 4.0), rng.uniform(8.0, 13.0), rng.uniform(0, 10))
        self.paint = rng.uniform(180, 235)

    def __call__(self, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        cam = self.camera
        depth = np.float32(cam.focal_baseline) / np.maximum(d, np.float32(1e-3))
        lateral = (x - np.float32(cam.cx_left)) * depth / np.float32(cam.fx)
        foot_x = depth / np.float32(cam.fx)
        foot_z = depth * depth / np.float32(cam.fy * self.cam_height)
        footprint = np.maximum(foot_x, foot_z)
        grey = np.float32(self.grey) + np.float32(self.contrast) * self.noise(
            lateral, depth, footprint)
        grey += np.float32(self.streak_contrast) * self.streaks(
            lateral, depth * np.float32(1 / self.aspect),
            np.maximum(foot_x, foot_z * np.float32(1 / self.aspect)))
        paint = np.zeros_like(grey)
        length, period, phase = self.dash
        along = np.mod(depth + np.float32(phase), np.float32(period))
        dash = np.clip((np.float32(length / 2) - np.abs(along - np.float32(length / 2)))
                       / foot_z + 0.5, 0, 1)
        blend = np.clip(2 * foot_z / np.float32(period), 0, 1)
        dash = dash * (1 - blend) + np.float32(length / period) * blend
        for position, solid in self.lines:
            cover = np.clip((np.float32(self.line_width / 2) - np.abs(
                lateral - np.float32(position))) / foot_x + 0.5, 0, 1)
            paint = np.maximum(paint, cover if solid else cover * dash)
        grey = grey * (1 - paint) + np.float32(self.paint) * paint
        return grey[..., None] * self.colour


class _BackdropTexture:
    """Distant scenery (strong texture) under a skyline, weakly textured sky above it."""

    def __init__(self, rng: np.random.Generator, camera: StereoCameraModel,
                 max_disparity: float) -> None:
        width, height = camera.width, camera.height
        lo, hi = (-4.0, -4.0), (width + max_disparity + 4, height + 4.0)
        self.horizon = camera.cy
        self.sky_noise = _NoiseField(rng, lo, hi, [16.0, 32.0, 64.0], [1, 1, 1])
        self.scenery = _NoiseField(rng, lo, hi, 2.0 * 2.0 ** np.arange(6),
                                   (2.0 * 2.0 ** np.arange(6)) ** 0.3)
        self.skyline = _NoiseField(rng, (lo[0], 0), (hi[0], 1), [24.0, 96.0], [0.4, 1.0])
        self.skyline_height = rng.uniform(0.03, 0.12) * height
        self.sky_top = np.array([rng.uniform(60, 120), rng.uniform(110, 160),
                                 rng.uniform(180, 240)], np.float32)
        self.sky_bottom = np.array([rng.uniform(170, 220)] * 3, np.float32)
        self.sky_contrast = rng.uniform(1.0, 3.0)
        self.scenery_colour = np.array([rng.uniform(40, 110), rng.uniform(60, 130),
                                        rng.uniform(40, 100)], np.float32)
        self.scenery_contrast = rng.uniform(15, 35)

    def __call__(self, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        lift = self.skyline(x, np.zeros_like(x), 1.0)
        top = np.float32(self.horizon) - np.float32(self.skyline_height) * (1.5 + lift)
        is_sky = y < top
        t = np.clip(y / np.float32(max(self.horizon, 1.0)), 0, 1)[..., None]
        sky = self.sky_top * (1 - t) + self.sky_bottom * t
        sky += np.float32(self.sky_contrast) * self.sky_noise(x, y, 1.0)[..., None]
        land = self.scenery_colour + np.float32(self.scenery_contrast) * \
            self.scenery(x, y, 1.0)[..., None]
        return np.where(is_sky[..., None], sky, land)


def _road_world(rng: np.random.Generator, height: int, width: int,
                max_disparity: float) -> _RoadWorld:
    if max_disparity < 8:
        raise DatasetError(f'road scenes need max_disparity >= 8, got {max_disparity}')
    fx = rng.uniform(0.55, 0.65) * width
    cy = rng.uniform(0.40, 0.48) * height
    camera = StereoCameraModel.from_focal_baseline(fx, ROAD_BASELINE, width, height, cy=cy)
    # Bottom-row ground disparity B*(v-cy)/h must fit max_disparity.
    needed = ROAD_BASELINE * (height - 1 - cy) / (0.95 * max_disparity)
    cam_height = max(rng.uniform(1.4, 1.8), needed)
    lane_offset = rng.uniform(-1.0, 1.0)
    slope = camera.focal_baseline / (camera.fy * cam_height)
    ground = _Surface(0.0, slope, -slope * cy,
                      _GroundTexture(rng, camera, cam_height, max_disparity, lane_offset))
    backdrop = _Surface(0.0, 0.0, SKY_DISPARITY, _BackdropTexture(rng, camera, max_disparity))
    return _RoadWorld(camera, cam_height, float(max_disparity), ground, backdrop)


@dataclass
class _Obstacle:
    """A fronto-parallel obstacle standing on the road: kind, depth z, lateral centre, size."""

    kind: str
    depth: float
    lateral: float
    width: float
    height: float
    texture_seed: int


class _ObstacleTexture:
    """Texture in the obstacle's metric (X, Y) coordinates, detail faded with distance."""

    def __init__(self, seed: int, width: float, height: float, depth_fn: Callable[[], float],
                 fx: float, colour_scale: float) -> None:
        rng = np.random.default_rng(seed)
        cells = 0.01 * 2.0 ** np.arange(8)
        self.noise = _NoiseField(rng, (-width, -height - 1), (width, 1.0), cells,
                                 cells ** rng.uniform(0.0, 0.6))
        self.colour = _random_colour(rng, saturation=rng.uniform(0.3, 1.0)) * colour_scale
        self.contrast = rng.uniform(10, 45)
        self.depth_fn, self.fx = depth_fn, fx

    def sample(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        footprint = self.depth_fn() / self.fx
        value = self.noise(px, py, footprint)
        return self.colour + np.float32(self.contrast) * value[..., None]


def _obstacle_surfaces(obstacle: _Obstacle, world: _RoadWorld, number: int) -> list[_Surface]:
    """Surfaces (same disparity, several parts) of one obstacle; metric shapes and textures."""
    cam = world.camera
    z = obstacle.depth
    disparity = cam.focal_baseline / z
    ground_y = world.cam_height  # Y (down) of the road surface

    def metric(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px = (x - np.float32(cam.cx_left)) * np.float32(z / cam.fx) - np.float32(
            obstacle.lateral)
        py = (y - np.float32(cam.cy)) * np.float32(z / cam.fy) - np.float32(ground_y)
        return px, py  # py <= 0 above the road

    half, tall = obstacle.width / 2, obstacle.height
    parts: list[tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], float]] = []
    if obstacle.kind == 'car':
        wheel = min(0.33, 0.25 * tall)

        def body(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            return (np.abs(px) <= half) & (py <= -0.6 * wheel) & (py >= -0.6 * tall)

        def cabin(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            return (np.abs(px) <= half * 0.8 + (py + 0.6 * tall) * 0.4) & (py < -0.6 * tall) \
                & (py >= -tall)

        def wheels(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            centre = np.float32(half - 1.2 * wheel)
            return (np.minimum((px - centre) ** 2, (px + centre) ** 2)
                    + (py + np.float32(wheel)) ** 2) <= np.float32(wheel * wheel)
        parts = [(body, 1.0), (cabin, 0.45), (wheels, 0.25)]
    elif obstacle.kind == 'pedestrian':
        def legs(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            leg = np.abs(np.abs(px) - np.float32(0.1 * half / 0.3)) <= np.float32(0.07)
            return leg & (py <= 0) & (py >= -0.47 * tall)

        def torso(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            return (np.abs(px) <= half * 0.8) & (py < -0.47 * tall) & (py >= -0.84 * tall)

        def head(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            radius = np.float32(0.08 * tall)  # overlaps the torso (a neck)
            return px * px + (py + np.float32(tall) - radius) ** 2 <= radius * radius
        parts = [(legs, 0.5), (torso, 1.0), (head, 0.9)]
    else:
        def box(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            return (np.abs(px) <= half) & (py <= 0) & (py >= -tall)
        parts = [(box, 1.0)]

    u0 = cam.cx_left + (obstacle.lateral - half) * cam.fx / z
    u1 = cam.cx_left + (obstacle.lateral + half) * cam.fx / z
    v0 = cam.cy + (ground_y - tall) * cam.fy / z
    v1 = cam.cy + ground_y * cam.fy / z
    bbox = (u0 - 1, v0 - 1, u1 + 1, v1 + 1)
    surfaces = []
    for index, (part, shade) in enumerate(parts):
        texture = _ObstacleTexture(obstacle.texture_seed + 7919 * index, obstacle.width,
                                   tall, lambda: z, cam.fx, shade)

        def shape(x: np.ndarray, y: np.ndarray, part=part) -> np.ndarray:
            return part(*metric(x, y))

        def tex(x: np.ndarray, y: np.ndarray, d: np.ndarray, texture=texture) -> np.ndarray:
            return texture.sample(*metric(x, y))
        surfaces.append(_Surface(0.0, 0.0, disparity, tex, shape, bbox, obstacle=number))
    return surfaces


_OBSTACLE_SIZES = {'car': ((1.6, 1.9), (1.3, 1.6)), 'box': ((0.5, 2.5), (0.5, 2.0)),
                   'pedestrian': ((0.5, 0.7), (1.55, 1.9))}


def _random_obstacle(rng: np.random.Generator, world: _RoadWorld, depth: float,
                     image_x: Optional[float] = None, inside: bool = False) -> _Obstacle:
    """Return an obstacle at ``depth``; ``inside``: horizontally entirely in the image."""
    kind = str(rng.choice(['car', 'box', 'pedestrian'], p=[0.45, 0.3, 0.25]))
    (w0, w1), (h0, h1) = _OBSTACLE_SIZES[kind]
    width, tall = float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1))
    cam = world.camera
    if image_x is None:
        half = 0.5 * width * cam.fx / depth + 0.03 * cam.width if inside else 0.0
        low, high = max(0.15 * cam.width, half), min(0.85 * cam.width, cam.width - half)
        image_x = rng.uniform(low, high) if low < high else cam.width / 2
    lateral = (image_x - cam.cx_left) * depth / cam.fx
    return _Obstacle(kind, float(depth), float(lateral), width, tall,
                     int(rng.integers(0, 2 ** 31)))


#: Depth range (m) of the road scenes' obstacles (the nearest is raised where its disparity
#: would exceed max_disparity).
ROAD_OBSTACLE_RANGE = (4.0, 30.0)
_MAX_OBSTACLES = 5


def _random_obstacles(rng: np.random.Generator, world: _RoadWorld,
                      count: int) -> list[_Obstacle]:
    """``count`` obstacles at well-separated depths; the nearest is fully in the image."""
    if not 0 <= count <= _MAX_OBSTACLES:
        raise DatasetError(f'road scenes take 0 to {_MAX_OBSTACLES} obstacles, got {count}')
    near = max(world.min_obstacle_depth, ROAD_OBSTACLE_RANGE[0])
    far = max(ROAD_OBSTACLE_RANGE[1], near + 10.0)
    depths: list[float] = []
    spacing = 1.0
    while len(depths) < count:
        candidate = float(rng.uniform(near, far))
        if all(abs(candidate - other) > spacing * max(3.0, 0.2 * other) for other in depths):
            depths.append(candidate)
        else:
            spacing *= 0.98  # always terminates, even if the range is crowded
    depths.sort()
    return [_random_obstacle(rng, world, depth, inside=number == 0)
            for number, depth in enumerate(depths)]


def _render_road(world: _RoadWorld, obstacles: Sequence[_Obstacle],
                 rng: np.random.Generator, kind: str, photometric: bool,
                 seed: Optional[int]) -> SyntheticScene:
    cam = world.camera
    surfaces = [world.backdrop, world.ground]
    for number, obstacle in enumerate(obstacles):
        surfaces.extend(_obstacle_surfaces(obstacle, world, number))
    height, width = cam.height, cam.width
    left, disparity, index = _render(surfaces, height, width, False, world.max_disparity)
    right, disparity_right, _ = _render(surfaces, height, width, True, world.max_disparity)
    mask, distance = None, None
    if obstacles:
        nearest = int(np.argmin([o.depth for o in obstacles]))
        owners = np.array([s.obstacle for s in surfaces] + [-1], np.int32)
        mask = owners[index] == nearest
        distance = float(obstacles[nearest].depth)
    left_u8, right_u8 = _photometric(rng, left, right, photometric)
    return SyntheticScene(left_u8, right_u8, disparity, cam, mask, distance, kind,
                          disparity_right, seed)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def check_scene_size(height: int, width: int, max_disparity: float, seed: int = 0) -> None:
    """Raise DatasetError unless the generator can make a scene of this size, range and seed."""
    if int(seed) < 0:
        raise DatasetError(f'synthetic scene seeds must be >= 0, got {seed}')
    if height < 16 or width < 16:
        raise DatasetError(f'synthetic scenes need at least 16x16 pixels, got {width}x{height}')
    if not MIN_DISPARITY + 2 <= max_disparity < width:
        raise DatasetError(
            f'max_disparity must be in [{MIN_DISPARITY + 2}, width={width}), got {max_disparity}')


def make_scene(seed: int, height: int = 256, width: int = 512, kind: str = 'layered',
               max_disparity: float = 64.0, *, photometric: bool = True,
               obstacles: Optional[int] = None) -> SyntheticScene:
    """Generate one synthetic stereo scene, identical for identical arguments.

    Args:
        seed: random seed (evaluation uses seeds >= :data:`EVAL_SEED_OFFSET`).
        height: image height in pixels.
        width: image width in pixels.
        kind: ``'layered'`` (slanted textured shapes) or ``'road'`` (driving scene).
        max_disparity: largest ground-truth disparity; all disparities lie in
            [:data:`MIN_DISPARITY`, max_disparity].
        photometric: add sensor noise and a small left/right gain/offset difference.
        obstacles: road scenes only: number of obstacles (default 1-3 at random; 0 gives an
            empty road).

    Returns:
        The :class:`SyntheticScene`.

    """
    if kind not in KINDS:
        raise DatasetError(f'unknown synthetic scene kind {kind!r}; known: {", ".join(KINDS)}')
    check_scene_size(height, width, max_disparity, seed)
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    if kind == 'layered':
        surfaces, camera = _layered_scene(rng, height, width, max_disparity)
        left, disparity, _ = _render(surfaces, height, width, False, max_disparity)
        right, disparity_right, _ = _render(surfaces, height, width, True, max_disparity)
        left_u8, right_u8 = _photometric(rng, left, right, photometric)
        return SyntheticScene(left_u8, right_u8, disparity, camera, None, None, kind,
                              disparity_right, int(seed))
    world = _road_world(rng, height, width, max_disparity)
    count = int(rng.integers(1, 4)) if obstacles is None else int(obstacles)
    return _render_road(world, _random_obstacles(rng, world, count), rng, kind,
                        photometric, int(seed))


def make_road_sequence(seed: int, n_frames: int, height: int = 256, width: int = 512,
                       max_disparity: float = 64.0, start_distance: float = 30.0,
                       end_distance: float = 8.0, *,
                       photometric: bool = True) -> list[SyntheticScene]:
    """Frames of one road world in which an obstacle approaches the (fixed) camera.

    The approaching obstacle's depth goes linearly from ``start_distance`` to
    ``end_distance`` metres (raised where needed so its disparity fits ``max_disparity``);
    one static obstacle may stand farther away. It is the nearest obstacle in every frame.
    """
    check_scene_size(height, width, max_disparity, seed)
    if n_frames < 1:
        raise DatasetError(f'n_frames must be >= 1, got {n_frames}')
    if not (end_distance > 0 and start_distance > 0):
        raise DatasetError(f'start_distance and end_distance must be positive, got '
                           f'{start_distance}, {end_distance}')
    rng = np.random.default_rng([int(seed), 7])
    world = _road_world(rng, height, width, max_disparity)
    near = world.min_obstacle_depth
    start, end = max(start_distance, near), max(end_distance, near)
    mover = _random_obstacle(rng, world, start, image_x=rng.uniform(0.42, 0.58) * width)
    static = []
    if rng.random() < 0.6:
        static.append(_random_obstacle(rng, world, max(start, end) + rng.uniform(8, 20)))
    frames = []
    for frame, depth in enumerate(np.linspace(start, end, n_frames)):
        moved = _Obstacle(mover.kind, float(depth), mover.lateral, mover.width, mover.height,
                          mover.texture_seed)
        frame_rng = np.random.default_rng([int(seed), 7, frame])
        frames.append(_render_road(world, [moved] + static, frame_rng, 'road', photometric,
                                   int(seed)))
    return frames


def eval_seeds(count: int) -> range:
    """Return the first ``count`` test seeds (``eval:N``), disjoint from validation seeds."""
    return range(TEST_SEED_OFFSET, TEST_SEED_OFFSET + int(count))
