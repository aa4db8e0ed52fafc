"""Readers for stereo datasets with ground truth, all yielding :class:`StereoSample`.

Layouts:
- ``generic``: ``<root>/<scene>/left.png, right.png, disp.pfm`` (left-view disparity).
  Here and for the Middlebury layouts, ``root`` may be one scene folder.
- ``middlebury2003``: ``<root>/<scene>/im2.png, im6.png, disp2.pgm`` (disparity x 4, 0 unknown).
- ``middlebury2006``: ``<root>/<scene>/view1.png, view5.png, disp1.png`` (Middlebury 2005 and
  2006; disparity x 1, 2 or 3 at full, half or third size, told by the height; 0 unknown).
- ``middlebury2014``: ``<root>/<scene>/im0.png, im1.png`` with ``disp0GT.pfm`` or ``disp0.pfm``
  (Middlebury 2014 and 2021, and ETH3D two-view, as their training archives unpack; inf
  unknown); ``nonoccluded``: only where ``mask0nocc.png`` is 255.
- ``kitti2015``: ``<root>/image_2/*_10.png, image_3/*_10.png, disp_occ_0/*_10.png`` (uint16/256;
  ``nonoccluded``: ``disp_noc_0``); ``kitti2012`` likewise with ``colored_0``, ``colored_1``,
  ``disp_occ`` (``disp_noc``).
- ``sceneflow``: ``<root>/**/left/*.png`` with ``right/`` beside it and disparity PFMs under the
  mirrored ``disparity/.../left/*.pfm`` tree (``frames_cleanpass`` -> ``disparity``).
- ``synthetic``: scenes of the built-in generator; ``root`` names the seeds, e.g. ``eval:20``
  (20 held-out seeds), ``1000000:1000050`` or ``7,8,9``; ``scene_kind=layered|road``.

Ground truth everywhere: float32 HxW, NaN where unknown.
"""

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, overload

import cv2
import numpy as np

from .pfm import read_pfm
from ..errors import DatasetError
from ..images import PairMismatch, pair_mismatch, size_mismatch
from ..msgs.images import is_grey_alpha_png, narrow_16_bit_note, scale_16_bit


#: Ground-truth files of a Middlebury 2014 / ETH3D scene folder, in the order they are looked
#: for: ``disp0GT.pfm`` (MiddEval3, ETH3D two-view), ``disp0.pfm`` (the full Middlebury 2014
#: and 2021 scenes).
MIDDLEBURY2014_DISPARITIES = ('disp0GT.pfm', 'disp0.pfm')


@dataclass
class StereoSample:
    """One rectified pair with left-view ground-truth disparity (NaN = unknown)."""

    name: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray


def read_image_rgb(path: str | Path, notes: Optional[list[str]] = None,
                   bit_depth: Optional[int] = None) -> np.ndarray:
    """Read an image file as uint8 HxWx3 RGB (grey images are replicated).

    16-bit files are scaled over ``bit_depth`` bits where given, else over all 16, as the
    node scales mono16 (OpenCV alone keeps their top 8 bits: the same 4 bits of grey for a
    12-bit sensor's file); one whose brightest value needs 9-14 bits adds a line to
    ``notes`` naming ``--mono16-bit-depth``.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    return cv2.cvtColor(_eight_bit(path, image, notes, bit_depth), cv2.COLOR_BGR2RGB)


def read_image_as_stored(path: str | Path, notes: Optional[list[str]] = None,
                         bit_depth: Optional[int] = None) -> np.ndarray:
    """Read an image file as uint8 HxW grey (a single-channel file) or HxWx3 RGB.

    As :func:`read_image_rgb`, but a grey file stays grey, so a caller can tell it from a
    colour one (an alpha channel is dropped: a grey PNG with alpha is grey, though OpenCV
    reads it as BGRA).
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    # Alpha goes before the 16-bit line is worked out: an opaque alpha of 65535 would hide a
    # 12-bit image.
    if image is not None and image.ndim == 3:
        if image.shape[2] == 1 or image.shape[2] == 4 and _is_grey_alpha_file(path):
            image = image[:, :, 0]
        else:
            image = image[:, :, :3]
    image = _eight_bit(path, image, notes, bit_depth)
    if image.ndim == 2:
        return image
    return np.ascontiguousarray(image[:, :, ::-1])  # BGR -> RGB


def _is_grey_alpha_file(path: str | Path) -> bool:
    """Return whether the file at ``path`` is a grey PNG with an alpha channel."""
    try:
        with open(path, 'rb') as file:
            return is_grey_alpha_png(file.read(26))
    except OSError:  # it was just read: gone since, it is no grey image
        return False


def _eight_bit(path: str | Path, image: Optional[np.ndarray], notes: Optional[list[str]],
               bit_depth: Optional[int]) -> np.ndarray:
    """Return the pixels read from ``path`` as uint8 (see :func:`read_image_rgb`)."""
    if image is None:
        raise DatasetError(f'cannot read image {path} (missing or corrupt)')
    if image.dtype == np.uint16:
        note = None if bit_depth else narrow_16_bit_note(int(image.max()),
                                                         '--mono16-bit-depth')
        if note is not None and notes is not None:
            notes.append(f'{path}: {note}')
        image = scale_16_bit(image, bit_depth)
    elif image.dtype != np.uint8:
        raise DatasetError(f'cannot read image {path}: {image.dtype} pixels, not 8- or 16-bit')
    return image


def _read_unchanged(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f'cannot read ground truth {path} (missing or corrupt)')
    return image


def read_middlebury_disparity(path: str | Path, scale: float = 4.0) -> np.ndarray:
    """Read a Middlebury 2003 ``disp*.pgm``: value / scale, 0 = unknown (NaN)."""
    raw = _read_unchanged(Path(path)).astype(np.float32)
    return np.where(raw > 0, raw / scale, np.nan).astype(np.float32)


def read_kitti_disparity(path: str | Path) -> np.ndarray:
    """Read a KITTI uint16 disparity PNG: value / 256, 0 = unknown (NaN)."""
    raw = _read_unchanged(Path(path))
    if raw.dtype != np.uint16:
        raise DatasetError(f'{path}: KITTI disparity must be 16-bit PNG, got {raw.dtype}')
    raw = raw.astype(np.float32)
    return np.where(raw > 0, raw / 256.0, np.nan).astype(np.float32)


def read_pfm_disparity(path: str | Path) -> np.ndarray:
    """Read a PFM disparity; non-finite or <= 0 values are unknown (NaN)."""
    disparity = read_pfm(path)
    if disparity.ndim == 3:
        disparity = disparity[:, :, 0]
    return np.where(np.isfinite(disparity) & (disparity > 0), disparity, np.nan).astype(
        np.float32)


class LazySamples(Sequence[StereoSample]):
    """Samples made one at a time by :meth:`read_sample`; a slice gives a list of them."""

    @abstractmethod
    def read_sample(self, index: int) -> StereoSample:
        """Return sample ``index`` (negative counts from the end; IndexError beyond)."""

    @overload
    def __getitem__(self, index: int) -> StereoSample:
        ...

    @overload
    def __getitem__(self, index: slice) -> list[StereoSample]:
        ...

    def __getitem__(self, index: int | slice) -> StereoSample | list[StereoSample]:
        if isinstance(index, slice):
            return [self.read_sample(i) for i in range(*index.indices(len(self)))]
        return self.read_sample(index)


class FileStereoDataset(LazySamples):
    """A list of (name, left path, right path, disparity path) read lazily."""

    def __init__(self, items: list[tuple[str, Path, Path, Path]],
                 read_disparity: Callable[[Path], np.ndarray]) -> None:
        self.items = items
        self.read_disparity = read_disparity

    def __len__(self) -> int:
        return len(self.items)

    def read_sample(self, index: int) -> StereoSample:
        """Read the images and the disparity of item ``index``."""
        name, left, right, disparity = self.items[index]
        sample = StereoSample(name, read_image_rgb(left), read_image_rgb(right),
                              self.read_disparity(disparity))
        # Named before the backend runs: the right file in full against the left one, as the
        # ground truth is below.
        mismatch = size_mismatch(sample.right.shape, sample.left.shape)
        if mismatch is not None:
            raise DatasetError(mismatch.message((str(right), left.name)))
        if sample.disparity.shape != sample.left.shape[:2]:  # before the backend runs on it
            height, width = sample.left.shape[:2]
            truth_height, truth_width = sample.disparity.shape[:2]
            raise DatasetError(f'{disparity} is {truth_width}x{truth_height} but {left.name} '
                               f'is {width}x{height}: the ground truth must be the left '
                               "image's size")
        return sample


def check_same_size(folder: str | Path, left: tuple[int, ...], right: tuple[int, ...]) -> None:
    """Raise DatasetError naming pair ``folder`` unless its images' shapes share a size."""
    _check_pair_folder(folder, size_mismatch(left, right))


def check_same_shape(folder: str | Path, left: tuple[int, ...], right: tuple[int, ...]) -> None:
    """Raise DatasetError naming pair ``folder`` unless its images make a stereo pair.

    ``left`` and ``right`` are the shapes of the images as stored (HxW grey, HxWxC colour):
    one size, and both grey or both colour (:func:`~stereo_depth_ros.images.pair_mismatch`).
    """
    _check_pair_folder(folder, pair_mismatch(left, right))


def _check_pair_folder(folder: str | Path, mismatch: Optional[PairMismatch]) -> None:
    if mismatch is not None:
        raise DatasetError(f'{folder}: {mismatch.message(("left", "right"))}')


def _require_dir(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetError(f'dataset root {root} is not a folder')
    return root


def _scenes(root: Path, first: str) -> list[Path]:
    """Return the scene folders under ``root``, or ``root`` alone if it holds ``first``.

    ``--root`` may name the folder above the scene folders, as the archives unpack, or one
    scene folder itself.
    """
    if (_require_dir(root) / first).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir())


def _scene_folders(root: Path, names: tuple[str, str, str], kind: str) -> list[tuple]:
    items = []
    for scene in _scenes(root, names[0]):
        paths = [scene / name for name in names]
        if all(p.is_file() for p in paths):
            items.append((scene.name, *paths))
        elif any(p.exists() for p in paths):
            missing = [str(p) for p in paths if not p.is_file()]
            raise DatasetError(f'{kind} scene {scene} is incomplete: missing {missing}')
    if not items:
        raise DatasetError(
            f'no {kind} scenes under {root} (expected <scene>/{"," .join(names)})'
            f'{_other_layout_hint(root)}')
    return items


#: Files of a Middlebury 2005 / 2006 scene folder: the left view, the right view and the
#: left view's disparity (Scharstein & Pal, CVPR 2007; Hirschmueller & Scharstein, CVPR 2007).
MIDDLEBURY2006_FILES = ('view1.png', 'view5.png', 'disp1.png')
#: Rows of a Middlebury 2005 / 2006 image at full size; the half- and third-size images have
#: 555 and 370, and their ``disp1.png`` holds the disparity times 2 and 3.
MIDDLEBURY2006_FULL_HEIGHT = 1110


def _other_layout_hint(root: Path) -> str:
    """Return a note on a known layout under ``root`` that the reader asked cannot take."""
    for scene in _scenes(root, MIDDLEBURY2006_FILES[0]):
        if all((scene / name).is_file() for name in MIDDLEBURY2006_FILES):
            return ('; found Middlebury 2005/2006 files (view1.png, view5.png, disp1.png): '
                    'read them with --dataset middlebury2006')
    return ''


def middlebury2006_scale(height: int) -> int:
    """Return the factor (1, 2 or 3) of a Middlebury 2005 / 2006 ``disp1.png`` of ``height`` rows.

    Full, half and third size (1110, 555, 370 rows) store the disparity times 1, 2 and 3.
    """
    for scale in (1, 2, 3):
        if abs(height * scale - MIDDLEBURY2006_FULL_HEIGHT) <= scale:
            return scale
    raise DatasetError(
        f'a Middlebury 2005/2006 disparity of {height} rows is none of the sizes the '
        f'dataset ships ({MIDDLEBURY2006_FULL_HEIGHT}, {MIDDLEBURY2006_FULL_HEIGHT // 2} or '
        f'{MIDDLEBURY2006_FULL_HEIGHT // 3} rows: full, half or third size), so the scale of '
        'its values is unknown')


def read_middlebury2006_disparity(path: str | Path) -> np.ndarray:
    """Read a Middlebury 2005 / 2006 ``disp1.png``: value / its size's scale, 0 = unknown (NaN)."""
    raw = _read_unchanged(Path(path))
    if raw.dtype != np.uint8 or raw.ndim != 2:
        raise DatasetError(f'{path}: a Middlebury 2005/2006 disparity is an 8-bit grey PNG, '
                           f'got {raw.dtype} with shape {raw.shape}')
    try:
        scale = middlebury2006_scale(raw.shape[0])
    except DatasetError as error:
        raise DatasetError(f'{path}: {error}') from None
    return np.where(raw > 0, raw.astype(np.float32) / scale, np.nan).astype(np.float32)


def generic_dataset(root: str | Path) -> FileStereoDataset:
    """``<root>/<scene>/left.png, right.png, disp.pfm``."""
    items = _scene_folders(Path(root), ('left.png', 'right.png', 'disp.pfm'), 'generic')
    return FileStereoDataset(items, read_pfm_disparity)


def middlebury2003_dataset(root: str | Path) -> FileStereoDataset:
    """``<root>/<scene>/im2.png, im6.png, disp2.pgm`` (Scharstein & Szeliski, CVPR 2003)."""
    items = _scene_folders(Path(root), ('im2.png', 'im6.png', 'disp2.pgm'), 'middlebury2003')
    return FileStereoDataset(items, read_middlebury_disparity)


def middlebury2006_dataset(root: str | Path) -> FileStereoDataset:
    """``<root>/<scene>/view1.png, view5.png, disp1.png`` (Middlebury 2005 and 2006)."""
    items = _scene_folders(Path(root), MIDDLEBURY2006_FILES, 'middlebury2006')
    return FileStereoDataset(items, read_middlebury2006_disparity)


#: The mask of a Middlebury 2014 or ETH3D scene's pixels that the right camera sees.
NONOCCLUDED_MASK = 'mask0nocc.png'
#: Its value at those pixels (occluded ones are 128 in Middlebury's, unknown ones 0).
NONOCCLUDED_VALUE = 255


def read_nonoccluded_pfm_disparity(path: str | Path) -> np.ndarray:
    """Read a PFM disparity as :func:`read_pfm_disparity`, unknown outside ``mask0nocc.png``.

    The mask beside it marks the pixels the right camera sees with 255.
    """
    disparity = read_pfm_disparity(path)
    mask_path = Path(path).with_name(NONOCCLUDED_MASK)
    mask = _read_unchanged(mask_path)
    if mask.shape[:2] != disparity.shape:
        raise DatasetError(f'{mask_path} is {mask.shape[1]}x{mask.shape[0]} but {path} is '
                           f'{disparity.shape[1]}x{disparity.shape[0]}')
    seen = (mask if mask.ndim == 2 else mask[:, :, 0]) == NONOCCLUDED_VALUE
    return np.where(seen, disparity, np.nan).astype(np.float32)


def middlebury2014_dataset(root: str | Path, nonoccluded: bool = False) -> FileStereoDataset:
    """``<root>/<scene>/im0.png, im1.png, disp0GT.pfm | disp0.pfm`` (Middlebury 2014, ETH3D).

    ``nonoccluded``: score only the pixels ``mask0nocc.png`` marks as seen by both cameras,
    as the benchmarks' non-occluded figures do.
    """
    root = _require_dir(Path(root))
    items: list[tuple[str, Path, Path, Path]] = []
    for scene in _scenes(root, 'im0.png'):
        images = [scene / 'im0.png', scene / 'im1.png']
        truth = [scene / name for name in MIDDLEBURY2014_DISPARITIES if (scene / name).is_file()]
        if all(p.is_file() for p in images) and truth:
            if nonoccluded and not (scene / NONOCCLUDED_MASK).is_file():
                raise DatasetError(f'middlebury2014 scene {scene} has no {NONOCCLUDED_MASK}, '
                                   'which --nonoccluded needs')
            items.append((scene.name, images[0], images[1], truth[0]))
        elif truth or any(p.exists() for p in images):
            missing = [p.name for p in images if not p.is_file()] or [
                ' or '.join(MIDDLEBURY2014_DISPARITIES)]
            raise DatasetError(f'middlebury2014 scene {scene} is incomplete: missing '
                               f'{", ".join(missing)} (ETH3D ships the ground truth in a '
                               'second archive: unpack both into one folder)')
    if not items:
        raise DatasetError(f'no middlebury2014 scenes under {root} (expected '
                           f'<scene>/im0.png,im1.png and '
                           f'{" or ".join(MIDDLEBURY2014_DISPARITIES)})'
                           f'{_other_layout_hint(root)}')
    return FileStereoDataset(items, read_nonoccluded_pfm_disparity if nonoccluded
                             else read_pfm_disparity)


def kitti2015_dataset(root: str | Path, nonoccluded: bool = False) -> FileStereoDataset:
    """KITTI stereo 2015 training layout (``image_2``, ``image_3``, ``disp_occ_0``).

    ``nonoccluded``: the ground truth of ``disp_noc_0`` instead (the pixels both cameras
    see: KITTI's "Noc" figures).
    """
    return _kitti_dataset(Path(root), 'KITTI 2015', ('image_2', 'image_3'),
                          'disp_noc_0' if nonoccluded else 'disp_occ_0')


def kitti2012_dataset(root: str | Path, nonoccluded: bool = False) -> FileStereoDataset:
    """KITTI stereo 2012 training layout (``colored_0``, ``colored_1``, ``disp_occ``).

    ``nonoccluded``: the ground truth of ``disp_noc`` instead.
    """
    return _kitti_dataset(Path(root), 'KITTI 2012', ('colored_0', 'colored_1'),
                          'disp_noc' if nonoccluded else 'disp_occ')


def _kitti_dataset(root: Path, name: str, views: tuple[str, str],
                   truth: str) -> FileStereoDataset:
    """Return the ``*_10.png`` pairs of a KITTI training folder with their uint16 truth."""
    root = _require_dir(root)
    folders = (*views, truth)
    left_dir, right_dir, disp_dir = (root / folder for folder in folders)
    missing = [folder for folder in folders if not (root / folder).is_dir()]
    if missing:
        inside = (f'; pass --root {root / "training"}'
                  if (root / 'training' / views[0]).is_dir() else '')
        listed = f'{", ".join(folders[:-1])} and {folders[-1]}'
        lacks = (f'none of {listed}' if len(missing) == 3 else
                 f'no {" or ".join(missing)} (of {listed})')
        raise DatasetError(f'{root} is not a {name} training folder: it has {lacks}{inside}')
    items = []
    for disp in sorted(disp_dir.glob('*_10.png')):
        left, right = left_dir / disp.name, right_dir / disp.name
        for path in (left, right):
            if not path.is_file():
                raise DatasetError(f'{name}: {path} is missing for {disp}')
        items.append((disp.stem, left, right, disp))
    if not items:
        raise DatasetError(f'no {name} disparity maps in {disp_dir}')
    return FileStereoDataset(items, read_kitti_disparity)


def sceneflow_dataset(root: str | Path) -> FileStereoDataset:
    """Read SceneFlow (Driving / FlyingThings3D / Monkaa): frames_*pass + disparity PFMs."""
    root = _require_dir(Path(root))
    items = []
    for left in sorted(root.rglob('left/*.png')):
        right = left.parent.parent / 'right' / left.name
        parts = list(left.with_suffix('.pfm').parts)
        for i, part in enumerate(parts):
            if part.startswith('frames_') and part.endswith('pass'):
                parts[i] = 'disparity'
        disp = Path(*parts)
        if right.is_file() and disp.is_file():
            items.append((str(left.relative_to(root)), left, right, disp))
    if not items:
        raise DatasetError(f'no SceneFlow pairs with disparity under {root}')
    return FileStereoDataset(items, read_pfm_disparity)


def parse_seed_spec(spec: str) -> list[int]:
    """Parse ``eval:N`` (the first N test seeds), ``A:B`` (range) or ``a,b,c`` into seeds."""
    from .synthetic import eval_seeds
    spec = str(spec).strip()
    try:
        if spec.startswith('eval:'):
            count = int(spec.split(':', 1)[1])
            return list(eval_seeds(count))
        if ':' in spec:
            start, stop = (int(v) for v in spec.split(':', 1))
            return list(range(start, stop))
        return [int(v) for v in spec.split(',') if v.strip()]
    except ValueError:
        raise DatasetError(
            f'synthetic root must be seeds like "eval:20", "1100000:1100020" or "1,2,3", '
            f'got {spec!r}') from None


class SyntheticSamples(LazySamples):
    """Scenes of the built-in generator as :class:`StereoSample` (exact ground truth)."""

    def __init__(self, seeds: list[int], scene_kind: str = 'layered', height: int = 256,
                 width: int = 512, max_disparity: float = 64.0) -> None:
        if not seeds:
            raise DatasetError('synthetic dataset needs at least one seed')
        self.seeds, self.kind, self.height, self.width = seeds, scene_kind, height, width
        self.max_disparity = float(max_disparity)

    def __len__(self) -> int:
        return len(self.seeds)

    def read_sample(self, index: int) -> StereoSample:
        """Generate the scene of seed number ``index``."""
        from .synthetic import make_scene
        seed = self.seeds[index]
        scene = make_scene(seed, height=self.height, width=self.width, kind=self.kind,
                           max_disparity=self.max_disparity)
        return StereoSample(f'{self.kind}_{seed}', scene.left, scene.right, scene.disparity)


DATASET_KINDS = ('generic', 'middlebury2003', 'middlebury2006', 'middlebury2014', 'kitti2012',
                 'kitti2015', 'sceneflow', 'synthetic', 'real')


#: The dataset kinds whose ground truth can be narrowed to the pixels both cameras see.
NONOCCLUDED_KINDS = ('middlebury2014', 'kitti2012', 'kitti2015')


def load_dataset(kind: str, root: str | Path, nonoccluded: bool = False,
                 **options) -> Sequence[StereoSample]:
    """Return the samples of dataset ``kind`` at ``root`` (see the module docstring).

    ``nonoccluded`` (:data:`NONOCCLUDED_KINDS` only): the ground truth of the pixels both
    cameras see.
    """
    if nonoccluded and kind not in NONOCCLUDED_KINDS:
        raise DatasetError(f'--nonoccluded applies to {", ".join(NONOCCLUDED_KINDS)} '
                           f'(their masks of the pixels both cameras see), not {kind}')
    if kind == 'synthetic':
        return SyntheticSamples(parse_seed_spec(str(root)), **options)
    readers: dict[str, Callable[..., FileStereoDataset]] = {
        'generic': generic_dataset, 'middlebury2003': middlebury2003_dataset,
        'middlebury2006': middlebury2006_dataset, 'middlebury2014': middlebury2014_dataset,
        'kitti2012': kitti2012_dataset, 'kitti2015': kitti2015_dataset,
        'sceneflow': sceneflow_dataset, 'real': real_suite_dataset}
    if kind not in readers:
        raise DatasetError(f'unknown dataset kind {kind!r}; known: {", ".join(DATASET_KINDS)}')
    return readers[kind](root, nonoccluded=True) if nonoccluded else readers[kind](root)


#: The real scenes with ground truth the package ships (folder under ``sample_data``, left,
#: right and disparity file names): the project's real benchmark, never used for training.
REAL_SUITE = (
    ('cones', 'middlebury2003/cones', 'im2.png', 'im6.png', 'disp2.pgm'),
    ('teddy', 'middlebury2003/teddy', 'im2.png', 'im6.png', 'disp2.pgm'),
    ('motorcycle', 'real_extra/motorcycle', 'left.png', 'right.png', 'disp.png'),
    ('aloe', 'real_extra/aloe', 'left.png', 'right.png', 'disp.png'),
)


def read_disparity_file(path: str | Path) -> np.ndarray:
    """Read ground truth by its suffix: ``.pgm`` Middlebury x4, ``.png`` KITTI x256, ``.pfm``."""
    suffix = Path(path).suffix.lower()
    if suffix == '.pgm':
        return read_middlebury_disparity(path)
    if suffix == '.png':
        return read_kitti_disparity(path)
    if suffix == '.pfm':
        return read_pfm_disparity(path)
    raise DatasetError(f'{path}: unknown disparity file type {suffix!r} (pgm, png or pfm)')


def real_suite_dataset(root: str | Path | None = None) -> FileStereoDataset:
    """Return the shipped real scenes (:data:`REAL_SUITE`) under ``root`` (the sample data)."""
    from ..resources import sample_data_dir
    base = _require_dir(Path(root)) if root is not None else sample_data_dir()
    items = []
    for name, folder, left, right, disparity in REAL_SUITE:
        paths = (base / folder / left, base / folder / right, base / folder / disparity)
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            mine = (' (real-bench scores only the shipped real suite; for scenes of your own: '
                    'stereo-depth eval --dataset generic, middlebury2014 or kitti2015)'
                    if root is not None else '')
            raise DatasetError(f'real scene {name} is incomplete: missing {missing}{mine}')
        items.append((name, *paths))
    return FileStereoDataset(items, read_disparity_file)
