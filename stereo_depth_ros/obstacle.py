"""Nearest-obstacle segmentation from a metric depth image and the stereo camera model.

Steps (all on one core, deterministic):

1. Ground plane: RANSAC on 3-D points back-projected from the lower part of the image
   (``ground_region``), subsampled to ``ransac_points``. Only near-horizontal planes (normal
   within ``max_ground_tilt`` degrees of the camera's "up", -y) lying below the camera are
   accepted, so a large obstacle face cannot be taken for the ground; the winner is refined
   by least squares on its inliers, and kept only where it explains how their inverse depth
   changes across the image (``MIN_GROUND_R2``), so a level slab through a wall that fills
   the view is not taken for the ground. With ``camera_height`` given, only planes within
   ``CAMERA_HEIGHT_TOLERANCE`` of it below the camera are accepted. Without a plane (too few
   points or no fit) a level one at ``camera_height`` is used if given, otherwise nothing is
   removed.
2. Candidates: pixels with a depth up to ``max_range`` inside ``roi`` that stand more than
   the ground tolerance above the plane (points below it are dropped as well). Nearer than
   ``min_range`` is searched too: an obstacle there is too close to range (``Range`` says
   ``-inf``, REP 117), not absent.
   The tolerance grows with depth by the height error a disparity error of
   ``disparity_noise`` pixels causes: ``ground_tolerance + h * noise * z / (fx * B)``.
3. Depth discontinuities: of two neighbouring candidates (diagonal ones included) whose
   depths differ by more than the distance band, the farther one is dropped, so touching
   objects at different depths separate without eroding the nearer one.
4. Connected components (8-connected, ``cv2.connectedComponentsWithStats``; unknown pixels
   with candidates within 2 px on either side link them, so a surface with holes in its
   depth stays one, but only pixels with a depth count and are weighed) smaller than
   ``min_area`` pixels or ``min_size`` square metres are ignored (unless, nearer than they
   are sized, they have a depth on a quarter of the searched window: too near to be seen
   whole), and so are components whose lowest point is more than ``max_clearance`` above
   the ground (floating blobs: mismatches in weak texture such as sky), unless the image's
   lower edge cuts them at their own distance (their lowest point is out of view: a surface
   so near that it fills the view below). A component's distance is a low percentile
   (``percentile``) of its depths; the nearest one wins.
5. Mask: candidates with depth within the band of that distance, grouped with the winning
   component (gaps of up to 2 px bridged); the band is ``distance_band``, at most
   ``distance_band_fraction`` times the depth, plus twice the depth error of
   ``disparity_noise``.

Depth follows REP 118: float metres, NaN (or inf, or <= 0) where unknown. Distances are the
optical-axis depth z of the obstacle, in metres.
"""

from dataclasses import dataclass, replace
from typing import Optional

import cv2
import numpy as np

from .camera import StereoCameraModel
from .errors import CalibrationError, ImageFormatError, SettingsError
from .images import mask_bounding_box


#: The inclusive limits of the numeric settings, which the node's ``obstacle.*`` parameters
#: take as their ranges (a max_clearance or camera_height of None is not checked).
LIMITS: dict[str, tuple[float, float]] = {
    # max_range from 0: the pipeline narrows it to what the camera measures, which can be
    # under a centimetre; min_range < max_range refuses 0 itself.
    'min_range': (0.0, 1000.0), 'max_range': (0.0, 100000.0),
    'distance_band': (0.001, 1000.0), 'distance_band_fraction': (0.0, 10.0),
    'min_area': (1, 100000000), 'min_size': (0.0, 1000.0), 'ground_tolerance': (0.0, 100.0),
    'max_clearance': (0.0, 100.0), 'disparity_noise': (0.0, 100.0),
    'percentile': (0.0, 100.0), 'ground_region': (0.05, 1.0), 'max_ground_tilt': (1.0, 89.0),
    'camera_height': (0.0, 100.0)}


@dataclass
class ObstacleParameters:
    """Settings of :func:`segment_nearest_obstacle` (metres, pixels, fractions).

    Attributes:
        roi: (x, y, width, height) of the searched window as fractions of the image.
        min_range: an obstacle nearer than this (m) is still found: it is too close to
            range, and the node's ``Range`` says ``-inf`` (REP 117) instead of naming a
            farther one. The ground fit ignores nearer points.
        max_range: farther depths (m) are ignored.
        distance_band: pixels within this many metres of the obstacle's distance (either
            side), connected to it, belong to it (widened by the depth uncertainty of
            ``disparity_noise``); also the depth jump between neighbours that separates two
            objects.
        distance_band_fraction: > 0: the band (and the jump) is at most this fraction of
            the depth, so it shrinks with distance below ``distance_band / fraction``
            metres: objects a few decimetres apart indoors stay apart, as cars metres apart
            do on a road. 0: ``distance_band`` at every depth.
        min_area: smallest obstacle, in pixels with a depth (pieces linked across
            unknown depth count together); smaller blobs (noise specks) never win.
        min_size: smallest obstacle front area, in square metres (sum over its pixels of
            ``z**2 / (fx * fy)``, z no less than ``min_range`` or the nearest depth the
            backend measures; 0.1 is about 30 x 30 cm):
            rejects the small, near blobs of stereo mismatches.
        ground_tolerance: points within this height (m) of the ground plane are ground.
        max_clearance: an obstacle's lowest point must be at most this high (m) above the
            ground plane: it stands on the ground (floating blobs are mismatches of weak
            texture, e.g. sky). None accepts overhanging obstacles too.
        disparity_noise: assumed disparity error (px) that widens ground tolerance and band
            with distance; 0 for exact depth.
        percentile: low percentile of a component's depths taken as its distance.
        ground_region: lower fraction of the image whose points fit the ground plane.
        max_ground_tilt: largest angle (degrees) between the ground normal and camera "up".
        camera_height: known height (m) of the camera over the ground: fitted planes
            farther from it than ``CAMERA_HEIGHT_TOLERANCE`` of it are rejected (a plane
            through crates or furniture), and a level plane at it is used when none fits;
            None: any height, and no ground removal without a fit.
        ransac_iterations: number of RANSAC plane hypotheses.
        ransac_points: points subsampled for RANSAC.
        seed: seed of the RANSAC random generator (results are deterministic).
        range_frame_id: ``frame_id`` of the node's ``obstacle/range``; '' = the left
            image's, an optical frame (z forward), where ``Range`` consumers, which take
            +x as the sensor's axis, point it sideways. Not used by the search.
        near_guard: the pipeline looks beyond the backend's disparity range for surfaces
            nearer than it measures and puts them in the searched depth in place of the
            backend's values there (:mod:`~stereo_depth_ros.near_guard`), so one is found,
            too close, instead of nothing or a farther obstacle. Not used by the search
            itself.

    """

    roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    min_range: float = 0.3
    max_range: float = 40.0
    distance_band: float = 1.5
    distance_band_fraction: float = 0.1
    min_area: int = 50
    min_size: float = 0.1
    ground_tolerance: float = 0.15
    max_clearance: Optional[float] = 1.0
    disparity_noise: float = 0.5
    percentile: float = 5.0
    ground_region: float = 0.5
    max_ground_tilt: float = 30.0
    camera_height: Optional[float] = None
    ransac_iterations: int = 64
    ransac_points: int = 1500
    seed: int = 0
    range_frame_id: str = ''
    near_guard: bool = True

    def validate(self) -> None:
        """Raise SettingsError (a ValueError) naming the first impossible setting.

        Each number within its :data:`LIMITS` (the node parameters' ranges), then the rules
        that tie settings together.
        """
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise SettingsError(f'obstacle parameters: {name} must be within {low:g} .. '
                                    f'{high:g}, got {value!r}')
        if len(self.roi) != 4:
            raise SettingsError(f'obstacle roi must be 4 fractions [x, y, width, height], got '
                                f'{len(self.roi)} values: {list(self.roi)}')
        x, y, w, h = (float(v) for v in self.roi)
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1
                and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9):
            raise SettingsError(f'obstacle roi must be (x, y, w, h) fractions inside the image, '
                                f'got {self.roi}')
        if not 0 <= self.min_range < self.max_range:
            raise SettingsError(f'obstacle ranges need 0 <= min_range < max_range, got '
                                f'{self.min_range}, {self.max_range}')
        checks = [(self.max_clearance is None or self.max_clearance > 0,
                   'max_clearance must be > 0 (or None)'),
                  (self.camera_height is None or self.camera_height > 0,
                   'camera_height must be > 0'),
                  (self.ransac_iterations >= 1, 'ransac_iterations must be >= 1'),
                  (self.ransac_points >= 3, 'ransac_points must be >= 3')]
        for ok, message in checks:
            if not ok:
                raise SettingsError(f'obstacle parameters: {message}')


@dataclass
class ObstacleResult:
    """The nearest obstacle: mask (bool HxW), distance (m, NaN if none), bbox (x, y, w, h).

    ``ground_plane`` is (nx, ny, nz, c) with the unit normal pointing up (towards the camera),
    so ``n . p + c`` is a point's height above the ground; None when none was used.
    ``surfaces`` (bool HxW, only when asked for) holds every surface the search accepted as
    an obstacle, by size and clearance, the nearest among them; None when not asked for.
    ``notes`` are warnings about the settings (:func:`camera_height_note`).
    """

    mask: np.ndarray
    distance: float = float('nan')
    bbox: Optional[tuple[int, int, int, int]] = None
    ground_plane: Optional[tuple[float, float, float, float]] = None
    area: int = 0
    surfaces: Optional[np.ndarray] = None
    notes: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """True when an obstacle was found."""
        return self.bbox is not None


_CLOSING_KERNEL = np.ones((5, 5), np.uint8)
#: The search weighs the surfaces nearest by their mean depth until this many are accepted
#: as obstacles; the ones it rejects (floating above the ground) do not count, so a crowd of
#: them cannot hide an obstacle behind it.
WEIGHED_SURFACES = 32
#: A surface nearer than it is sized (``min_range``, or the nearest depth the backend
#: measures where that is farther) on most of its pixels, with a depth on at least this share of
#: the searched window is large enough whatever ``min_size`` says: one so near that it fills
#: the view shows only the part both cameras see, and a matcher's pixels of that (``sgbm``
#: measured a wall 0.23 m from an OAK-D Lite, found beyond its range by the near guard, on
#: 70 % of the view: 0.095 m^2 sized at min_range 0.3 m, under min_size 0.1, and the Range
#: said nothing was there).
FILLING_SHARE = 0.25
#: With ``camera_height`` given, a fitted ground plane must lie within this fraction of it
#: below the camera: a plane through the tops of crates or furniture is no ground.
CAMERA_HEIGHT_TOLERANCE = 0.25
#: A plane fitted without ``camera_height`` that holds more than this many times the share
#: of points of the one fitted with it says that ``camera_height`` is wrong
#: (:func:`camera_height_note`): a plane that a wrong height leaves, tilted through the true
#: ground, held 51-56 % of the points against 95 % on sgbm's road scenes.
CLEARLY_MORE_POINTS = 1.25
#: Smallest share of its inliers' inverse-depth variance a ground plane must explain
#: (:func:`_explained_inverse_depth`).
MIN_GROUND_R2 = 0.5


def _check_depth(depth: np.ndarray, camera: StereoCameraModel) -> np.ndarray:
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        raise ImageFormatError(
            f'depth must be a 2-D array (HxW metres), got '
            f'{getattr(depth, "shape", type(depth))}')
    if not np.issubdtype(depth.dtype, np.floating):
        raise ImageFormatError(f'depth must be float metres (32FC1), got {depth.dtype}')
    if camera is None:
        raise CalibrationError('obstacle segmentation needs the stereo camera model')
    camera.check_image_size(depth.shape[1], depth.shape[0])
    return depth.astype(np.float32, copy=False)


def roi_window(roi: tuple[float, float, float, float], width: int,
               height: int) -> tuple[int, int, int, int]:
    """Return the pixels ``(x0, y0, x1, y1)`` of ``roi`` (fractions) in an image: one at least.

    A sliver at the image's edge (``y`` 0.999 of 256 rows) rounds to its last row or column,
    not to an empty window (OpenCV's connected components crashed the process on one).
    """
    x, y, w, h = roi
    x0 = min(int(round(x * width)), width - 1)
    y0 = min(int(round(y * height)), height - 1)
    x1 = min(width, max(x0 + 1, int(round((x + w) * width))))
    y1 = min(height, max(y0 + 1, int(round((y + h) * height))))
    return x0, y0, x1, y1


def _ray_terms(camera: StereoCameraModel, x0: int, y0: int, x1: int,
               y1: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column x/z and per-row y/z of the viewing rays of a pixel window."""
    cols = (np.arange(x0, x1, dtype=np.float32) - np.float32(camera.cx_left)) / np.float32(
        camera.fx)
    rows = (np.arange(y0, y1, dtype=np.float32) - np.float32(camera.cy)) / np.float32(camera.fy)
    return cols[None, :], rows[:, None]


def fit_ground_plane(depth: np.ndarray, camera: StereoCameraModel,
                     params: Optional[ObstacleParameters] = None
                     ) -> Optional[tuple[float, float, float, float]]:
    """RANSAC ground plane (nx, ny, nz, c) from the lower image part, or None.

    The normal points up (``ny < 0`` in the y-down optical frame) and ``c`` is the camera's
    height above the plane. Only planes within ``max_ground_tilt`` of level and below the
    camera are accepted.
    """
    fit = _fit_ground(depth, camera, params or ObstacleParameters())
    return None if fit is None else fit[0]


def _fit_ground(depth: np.ndarray, camera: StereoCameraModel, params: ObstacleParameters
                ) -> Optional[tuple[tuple[float, float, float, float], float]]:
    """Return :func:`fit_ground_plane`'s plane and the share of the sampled points on it."""
    height, width = depth.shape
    top = int(max(0, min(height - 1, round(height * (1 - params.ground_region)))))
    step = max(1, int(np.sqrt((height - top) * width / (8.0 * params.ransac_points))))
    sub = depth[top::step, ::step]
    valid = np.isfinite(sub) & (sub > params.min_range)
    valid &= sub < max(params.max_range, 1.0) * 1.5
    rows, cols = np.nonzero(valid)
    if rows.size < 30:
        return None
    rng = np.random.default_rng(params.seed)
    if rows.size > params.ransac_points:
        keep = rng.choice(rows.size, params.ransac_points, replace=False)
        rows, cols = rows[keep], cols[keep]
    z = sub[rows, cols].astype(np.float64)
    u = cols * step
    v = rows * step + top
    points = np.stack([(u - camera.cx_left) / camera.fx * z, (v - camera.cy) / camera.fy * z,
                       z], axis=1)
    # Inlier threshold: half the ground tolerance, grown with depth like the tolerance.
    threshold = 0.5 * _tolerance(params, camera, z, 1.5)
    triples = rng.integers(0, len(points), (params.ransac_iterations, 3))
    a, b, c = points[triples[:, 0]], points[triples[:, 1]], points[triples[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    normals = normals / np.maximum(norms, 1e-12)[:, None]
    normals *= np.where(normals[:, 1] > 0, -1.0, 1.0)[:, None]  # point up (-y)
    offsets = -np.sum(normals * a, axis=1)
    good = (norms > 1e-9) & _ground_like(normals[:, 1], offsets, params)
    if not np.any(good):
        return None
    normals, offsets = normals[good], offsets[good]
    distances = np.abs(points @ normals.T + offsets[None, :])
    scores = np.sum(distances < threshold[:, None], axis=0)
    best = int(np.argmax(scores))
    inliers = distances[:, best] < threshold
    if inliers.sum() < max(10, 0.15 * len(points)):
        return None
    plane = _least_squares_plane(points[inliers])
    if plane is None or not _ground_like(plane[1], plane[3], params):
        plane = (*normals[best], offsets[best])
    if _explained_inverse_depth(points[inliers], plane) < MIN_GROUND_R2:
        return None
    nx, ny, nz, offset = (float(v) for v in plane)
    return (nx, ny, nz, offset), float(inliers.mean())


def _ground_like(normal_y: np.ndarray | float, offsets: np.ndarray | float,
                 params: ObstacleParameters) -> np.ndarray:
    """Whether planes (unit normal pointing up, -y) could be the ground.

    Within ``max_ground_tilt`` of level, more than 5 cm below the camera, and with
    ``camera_height`` given within :data:`CAMERA_HEIGHT_TOLERANCE` of it.
    """
    offsets = np.asarray(offsets)
    ok = (-np.asarray(normal_y) >= np.cos(np.radians(params.max_ground_tilt))) & (offsets > 0.05)
    if params.camera_height is not None:
        height = params.camera_height
        ok &= np.abs(offsets - height) <= CAMERA_HEIGHT_TOLERANCE * height
    return ok


def _explained_inverse_depth(points: np.ndarray,
                             plane: tuple[float, float, float, float]) -> float:
    """Return the share (R^2) of the points' inverse-depth variance that ``plane`` explains.

    Along a viewing ray ``r = p / z`` a plane ``n . p + c = 0`` lies at ``1 / z = -n . r / c``:
    inverse depth, like disparity, is linear across a plane's image. A ground seen over a
    few rows changes it row by row as the plane says; a wall filling the view does not, yet
    a level plane through its lower half holds a band of it within the RANSAC inlier
    distance (half the ground tolerance; the lower half of a wall 0.3 m away is 8 cm tall),
    which would remove the wall as ground.
    """
    inverse = 1.0 / points[:, 2]
    predicted = -(points / points[:, 2:3]) @ np.asarray(plane[:3]) / plane[3]
    spread = float(np.sum((inverse - inverse.mean()) ** 2))
    if spread <= 0:
        return 0.0
    return 1.0 - float(np.sum((inverse - predicted) ** 2)) / spread


def _least_squares_plane(points: np.ndarray) -> Optional[tuple[float, float, float, float]]:
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    normal = vt[-1]
    if normal[1] > 0:
        normal = -normal
    if not np.all(np.isfinite(normal)):
        return None
    return float(normal[0]), float(normal[1]), float(normal[2]), float(-normal @ centre)


def _tolerance(params: ObstacleParameters, camera: StereoCameraModel, z: np.ndarray,
               cam_height: float) -> np.ndarray:
    """Ground tolerance at depth z: base plus the height error of ``disparity_noise``."""
    slope = cam_height * params.disparity_noise / camera.focal_baseline
    return params.ground_tolerance + slope * z


def _base_band(params: ObstacleParameters, z: np.ndarray | float) -> np.ndarray | float:
    """Return the band before noise: ``distance_band``, at most ``distance_band_fraction`` z."""
    if not params.distance_band_fraction:
        return np.float32(params.distance_band)
    return np.minimum(np.float32(params.distance_band),
                      np.float32(params.distance_band_fraction) * z)


def _band(params: ObstacleParameters, camera: StereoCameraModel, z: float) -> float:
    """Distance band at depth z: the base band plus twice the depth error of the noise."""
    return float(_base_band(params, z)
                 + 2 * params.disparity_noise * z * z / camera.focal_baseline)


def camera_height_note(depth: np.ndarray, camera: StereoCameraModel,
                       params: ObstacleParameters,
                       fit: Optional[tuple[tuple[float, float, float, float], float]]
                       ) -> Optional[str]:
    """Return a warning where the ground fits far better away from ``camera_height``.

    ``fit`` is the search's own fit, with ``camera_height`` (plane and share of points on it;
    None: no plane). A ``camera_height`` wrong by more than :data:`CAMERA_HEIGHT_TOLERANCE`
    refuses the true ground; the search then takes a level plane at that height, or a plane
    through whatever few points lie near it, and makes obstacles of the floor (a camera 1 m
    up pitched 10 degrees down, set to 0.7 m: a band of floor 2.9 m ahead). Said where the
    plane fitted without ``camera_height`` lies farther from it than that and holds more than
    :data:`CLEARLY_MORE_POINTS` times the share of points of the search's own plane (or the
    search found none: with the right height both are one plane). That plane may also be a
    table top or crates, which ``camera_height`` rightly refuses: the line says both. None
    without ``camera_height``.
    """
    if params.camera_height is None:
        return None
    free = _fit_ground(depth, camera, replace(params, camera_height=None))
    given = params.camera_height
    if free is None or abs(free[0][3] - given) <= CAMERA_HEIGHT_TOLERANCE * given:
        return None
    if fit is not None and free[1] <= CLEARLY_MORE_POINTS * fit[1]:
        return None
    return (f'the ground does not fit obstacle.camera_height: a plane {free[0][3]:.2f} m '
            f'below the camera fits the depth, more than {CAMERA_HEIGHT_TOLERANCE:.0%} from '
            f'camera_height {given:g} m, which the search keeps to; if the camera is that '
            'high, correct camera_height (a wrong one makes obstacles of the floor), if the '
            'plane is a table or crates, ignore this')


def _prior_plane(params: ObstacleParameters) -> Optional[tuple[float, float, float, float]]:
    if params.camera_height is None:
        return None
    return 0.0, -1.0, 0.0, float(params.camera_height)


def _drop_far_side_of_jumps(z: np.ndarray, mask: np.ndarray,
                            params: ObstacleParameters, camera: StereoCameraModel) -> None:
    """Clear (in place) the farther pixel of each neighbour pair with a depth jump.

    Diagonal pairs too: the components are 8-connected, and a background pixel touching a
    nearer object only at its corner would otherwise join the object.
    """
    zz = np.where(mask, z, np.float32(np.nan))
    limit = zz * zz
    limit *= np.float32(2 * params.disparity_noise / camera.focal_baseline)
    limit += _base_band(params, zz)
    every, all_but_last, all_but_first = slice(None), slice(None, -1), slice(1, None)
    first_second = (((all_but_last, every), (all_but_first, every)),  # neighbour below,
                    ((every, all_but_last), (every, all_but_first)),  # right,
                    ((all_but_last, all_but_last), (all_but_first, all_but_first)),  # below right,
                    ((all_but_last, all_but_first), (all_but_first, all_but_last)))  # below left
    with np.errstate(invalid='ignore'):
        for first, second in first_second:
            diff = zz[second] - zz[first]
            mask[second] &= ~(diff > limit[first])  # second pixel much farther
            mask[first] &= ~(-diff > limit[second])  # first pixel much farther


def _bridge_unknown_gaps(z: np.ndarray, candidates: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Return the candidates plus the unknown pixels between them, and a depth for both.

    A surface whose depth has scattered holes (a weakly textured wall, pixels a matcher or
    ``max_match_cost`` left unknown) would otherwise fall apart into pieces each too small for
    ``min_area`` and ``min_size``, and the search would report nothing there. An unknown pixel
    that a 5x5 closing of the candidates covers (candidates within 2 px on either side) links
    them, with the farthest depth of the candidates within 2 px of it: the depth-jump step
    then still separates a nearer surface from a farther one across the hole, as the bridge
    is never nearer than a candidate it touches.
    """
    with np.errstate(invalid='ignore'):
        unknown = ~(np.isfinite(z) & (z > 0))
    if not unknown.any():  # a dense depth (most learned backends'): nothing to link
        return candidates, z
    closed = cv2.morphologyEx(candidates.view(np.uint8), cv2.MORPH_CLOSE, _CLOSING_KERNEL)
    bridges = closed.view(bool) & unknown
    if not bridges.any():
        return candidates, z
    farthest = cv2.dilate(np.where(candidates, z, np.float32(0.0)).astype(np.float32),
                          _CLOSING_KERNEL)
    return candidates | bridges, np.where(bridges, farthest, z).astype(np.float32)


def segment_nearest_obstacle(depth: np.ndarray, camera: StereoCameraModel,
                             params: Optional[ObstacleParameters] = None,
                             ground_depth: Optional[np.ndarray] = None,
                             surfaces: bool = False,
                             near_limit: float = 0.0) -> ObstacleResult:
    """Find the nearest obstacle (not the ground) in a depth image (REP 118, NaN unknown).

    Args:
        depth: float HxW depth in metres (NaN/inf/<=0 unknown), size of ``camera``.
        camera: the stereo camera model the depth was computed with.
        params: settings; defaults to :class:`ObstacleParameters()`.
        ground_depth: the depth the ground plane is fitted on, where it is not ``depth``
            (the backend's, without the near guard's finds).
        surfaces: also return the mask of every surface accepted as an obstacle
            (``ObstacleResult.surfaces``; the :data:`WEIGHED_SURFACES` nearest accepted
            candidates are weighed).
        near_limit: the nearest depth (m) the backend measures, where it is farther than
            ``min_range``: a surface nearer (found beyond the backend's range) is sized for
            ``min_size`` as if it stood there.

    Returns:
        :class:`ObstacleResult` with a full-size mask (all False when nothing was found).

    """
    params = params or ObstacleParameters()
    params.validate()
    depth = _check_depth(depth, camera)
    height, width = depth.shape
    empty = np.zeros((height, width), bool)
    accepted = empty.copy() if surfaces else None  # filled with what the search accepts
    ground = depth if ground_depth is None else _check_depth(ground_depth, camera)
    fit = _fit_ground(ground, camera, params)
    note = camera_height_note(ground, camera, params, fit)
    notes = (note,) if note else ()
    plane = fit[0] if fit is not None else _prior_plane(params)

    window = roi_window(params.roi, width, height)
    x0, y0, x1, y1 = window
    z = depth[y0:y1, x0:x1]
    candidates, above = _candidates_above_ground(z, camera, params, plane, window)
    count, labels, stats, areas, candidates = _components(z, candidates, params, camera)
    members, depths = _member_depths(z, labels)
    passing = _large_enough(members, depths, areas, count, z.size, params, camera, near_limit)
    if passing.size == 0:
        return ObstacleResult(empty, ground_plane=plane, surfaces=accepted, notes=notes)
    # The image's row under the window, where the window ends above the image's edge: a
    # surface the window cuts may go on there.
    below = depth[y1, x0:x1] if y1 < height else None
    ranked = _ranked_by_distance(z, labels, stats, areas, passing, members, depths, above,
                                 plane, params, camera, below)
    if accepted is not None and ranked:  # a lookup table: np.isin took 3-17 ms at 1080p
        keep = np.zeros(count, bool)
        keep[[label for _, label in ranked]] = True
        accepted[y0:y1, x0:x1] = keep[labels]
    for distance, label in sorted(ranked):
        # Work in a window around the component, grown to catch pieces split off it.
        bx, by, bw, bh = stats[label, :4]
        grow = max(8, int(0.5 * max(bw, bh)))
        wx0, wy0 = int(max(bx - grow, 0)), int(max(by - grow, 0))
        wx1, wy1 = int(min(bx + bw + grow, z.shape[1])), int(min(by + bh + grow, z.shape[0]))
        around = np.s_[wy0:wy1, wx0:wx1]
        piece = _obstacle_mask(z[around], candidates[around], labels[around] == label,
                               distance, params, camera)
        if piece is None:
            continue
        mask = empty.copy()
        mask[y0 + wy0:y0 + wy1, x0 + wx0:x0 + wx1] = piece
        box = mask_bounding_box(piece)
        assert box is not None  # _obstacle_mask returns None, never an empty mask
        px, py, box_width, box_height = box
        bbox = (x0 + wx0 + px, y0 + wy0 + py, box_width, box_height)
        if accepted is not None:
            accepted |= mask
        return ObstacleResult(mask, distance, bbox, plane, int(piece.sum()), accepted, notes)
    return ObstacleResult(empty, ground_plane=plane, surfaces=accepted, notes=notes)


def _candidates_above_ground(z: np.ndarray, camera: StereoCameraModel,
                             params: ObstacleParameters,
                             plane: Optional[tuple[float, float, float, float]],
                             window: tuple[int, int, int, int]
                             ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Return the pixels of the searched window ``z`` that may be obstacle, and their height.

    A candidate has a depth up to ``max_range`` and, where there is a ground ``plane``,
    stands above it by more than the ground tolerance at its depth. The height above the
    plane (m) comes with them (None without a plane).
    """
    above = None
    with np.errstate(invalid='ignore'):
        candidates = np.isfinite(z) & (z > 0) & (z <= params.max_range)
        if plane is not None:
            cols, rows = _ray_terms(camera, *window)
            nx, ny, nz, c = (np.float32(v) for v in plane)
            above = z * (nx * cols + ny * rows + nz) + c
            candidates &= above > _tolerance(params, camera, z, float(plane[3]))
    return candidates, above


def _components(z: np.ndarray, candidates: np.ndarray, params: ObstacleParameters,
                camera: StereoCameraModel
                ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the candidates' surfaces: count, labels, stats, areas and the candidates.

    Pieces of a surface are linked across gaps of unknown depth, and neighbours with a depth
    jump are cut apart (8-connected). Only pixels with a depth count in the areas; the
    candidates returned are those of a linked surface.
    """
    linked, linked_z = _bridge_unknown_gaps(z, candidates)
    _drop_far_side_of_jumps(linked_z, linked, params, camera)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        linked.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    areas = stats[:, cv2.CC_STAT_AREA]
    if linked is not candidates:
        # The bridges link pieces of a surface; only pixels with a depth count and weigh.
        candidates = candidates & linked
        labels[~candidates] = 0
        areas = np.bincount(labels.ravel(), minlength=count)
    return count, labels, stats, areas, candidates


def _member_depths(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the label and the depth (float64) of every pixel of a surface, flat."""
    flat = labels.ravel()
    inside = flat > 0
    return flat[inside], z.ravel()[inside].astype(np.float64)


def _large_enough(members: np.ndarray, depths: np.ndarray, areas: np.ndarray, count: int,
                  window_size: int, params: ObstacleParameters, camera: StereoCameraModel,
                  near_limit: float) -> np.ndarray:
    """Return the labels of the surfaces of at least ``min_area`` px and ``min_size`` m^2.

    Or, nearer than they are sized (``min_range``, or the nearest the backend measures) on
    most of their pixels, with a depth on :data:`FILLING_SHARE` of the window's
    ``window_size`` pixels, whatever their size. ``members`` and ``depths``: each surface
    pixel's label and depth (:func:`_member_depths`).
    """
    passing = np.flatnonzero(areas[1:] >= params.min_area) + 1
    if passing.size == 0:
        return passing
    # Sized as if no nearer than min_range, or than the backend measures: a surface too
    # close to range fills the view, yet its front area at its own depth (0.09 m^2 at 0.25 m
    # for an OAK-D) would fail min_size and the Range would say "nothing" (or name a farther
    # obstacle: a wall at 0.3 m over 60 % of a 752x480 view, sized from 0.3 m, did).
    sizing_depth = max(params.min_range, near_limit)
    sized = np.maximum(depths, sizing_depth)
    sizes = np.bincount(members, weights=sized * sized, minlength=count)
    nearer = np.bincount(members, weights=depths < sizing_depth, minlength=count)
    # Only a surface too near to be seen whole: a 30x30 px blob at 2 m filled a quarter of
    # an obstacle.roi of a tenth of the image and passed (from the diff review).
    filling = ((areas[passing] >= FILLING_SHARE * window_size)
               & (2 * nearer[passing] > areas[passing]))
    return passing[filling | (sizes[passing] / (camera.fx * camera.fy) >= params.min_size)]


def _ranked_by_distance(z: np.ndarray, labels: np.ndarray, stats: np.ndarray,
                        areas: np.ndarray, passing: np.ndarray, members: np.ndarray,
                        depths: np.ndarray, above: Optional[np.ndarray],
                        plane: Optional[tuple[float, float, float, float]],
                        params: ObstacleParameters, camera: StereoCameraModel,
                        below: Optional[np.ndarray]) -> list[tuple[float, int]]:
    """Return (distance, label) of up to :data:`WEIGHED_SURFACES` accepted surfaces.

    Taken nearest first by their mean depth; a surface's distance is the ``percentile`` of
    its depths. One whose lowest point clears the ground by more than ``max_clearance`` is
    not accepted (it hangs above the path), unless the window's last row cuts it at its own
    distance and, where the window ends above the image's edge, the image's row ``below``
    it shows the surface going on: its lowest point is out of view (an ``obstacle.roi`` that
    leaves the robot's own body out cut a near box standing on the floor above its
    clearance, and the Range said nothing was there).
    """
    sums = np.bincount(members, weights=depths, minlength=len(areas))
    means = sums[passing] / areas[passing]
    order = np.argsort(means)
    ranked: list[tuple[float, int]] = []
    for index, label in zip(order, passing[order]):
        if len(ranked) == WEIGHED_SURFACES:
            break
        bx, by, bw, bh = stats[label, :4]
        window = labels[by:by + bh, bx:bx + bw] == label
        values = z[by:by + bh, bx:bx + bw][window]
        distance = float(np.percentile(values, params.percentile))
        if above is not None and plane is not None and params.max_clearance is not None \
                and not _cut_below(z, labels, label, distance, params, camera, below):
            clearance = float(above[by:by + bh, bx:bx + bw][window].min())
            if clearance > params.max_clearance + _tolerance(params, camera, means[index],
                                                             float(plane[3])):
                continue
        ranked.append((distance, int(label)))
    return ranked


def _cut_below(z: np.ndarray, labels: np.ndarray, label: int, distance: float,
               params: ObstacleParameters, camera: StereoCameraModel,
               below: Optional[np.ndarray] = None) -> bool:
    """Return whether the window's last row cuts the component at its own distance.

    Such a surface is so near that it fills the view below: its lowest point is out of
    view, so its clearance cannot be told. Its pixels in the last row must lie within the
    distance band of its distance (the surface itself goes on below), not be a farther part
    joined to a near, overhead one (a canopy over a trunk down to the ground clutter). Where
    the window ends above the image's edge, the image's row ``below`` it must show the
    surface going on too (at the same columns, within the band or nearer); else its lower
    edge is in view, and it may float.
    """
    cut = labels[-1] == label
    bottom = z[-1][cut]
    if bottom.size < params.min_area ** 0.5:
        return False
    limit = distance + _band(params, camera, distance)
    if not float(np.median(bottom)) <= limit:
        return False
    if below is None:
        return True
    under = below[cut]
    under = under[np.isfinite(under) & (under > 0)]
    return 2 * under.size >= bottom.size and float(np.median(under)) <= limit


def _obstacle_mask(z: np.ndarray, candidates: np.ndarray, seed: np.ndarray, distance: float,
                   params: ObstacleParameters, camera: StereoCameraModel
                   ) -> Optional[np.ndarray]:
    """Candidates within the band of ``distance`` grouped with ``seed`` (gaps <= 2 px)."""
    band = _band(params, camera, distance)
    with np.errstate(invalid='ignore'):
        slab = candidates & (z <= distance + band) & (z >= distance - band)
    closed = cv2.morphologyEx(slab.view(np.uint8), cv2.MORPH_CLOSE, _CLOSING_KERNEL)
    count, labels = cv2.connectedComponents(closed, connectivity=8, ltype=cv2.CV_32S)
    touched = np.bincount(labels[seed & slab], minlength=count) > 0  # a lookup table
    touched[0] = False
    if not touched.any():
        return None
    mask = touched[labels] & slab
    if int(mask.sum()) < params.min_area:
        return None
    return mask
