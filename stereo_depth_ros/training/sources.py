"""Training data: sources of stereo pairs, mixed and augmented deterministically per index.

Sources (``data.sources[*].kind`` in a training config):

* ``synthetic`` (default): the built-in generator
  (:func:`stereo_depth_ros.data.synthetic.make_scene`), infinite. Scene ``n`` has seed
  ``(seed * 7919 + n) mod 1_000_000``, always below the held-out seeds (>= EVAL_SEED_OFFSET).
  Scene kind ``photo`` (:mod:`~stereo_depth_ros.data.photo_scenes`) textures the scene with
  the photographs under ``photos``; ``mono`` (:mod:`~stereo_depth_ros.data.mono_stereo`)
  turns one of them into a pair by forward warping; ``range_fraction`` draws each scene's
  largest disparity.
  With ``scene_reuse: R`` and batch size ``B``, the ``B`` samples of a step come from ``B``
  different scenes and the same ``B`` scenes serve ``R`` consecutive steps (scene
  ``(i // (R*B)) * B + i % B`` for sample ``i``), each time with a new crop and photometric
  change; the last ``B`` scenes are cached.
* ``pseudo``: real rectified pairs without ground truth (any folder holding
  ``left.png``/``right.png`` pairs, searched recursively), labelled by
  :mod:`~stereo_depth_ros.training.pseudo_labels`: disparities of the ``labeller`` backend
  (SGBM by default) that pass a left-right consistency check, unknown elsewhere.
* ``sceneflow``: SceneFlow Driving / FlyingThings3D / Monkaa (``frames_cleanpass`` or
  ``frames_finalpass`` PNGs + ``disparity`` PFMs), read by
  :func:`stereo_depth_ros.data.datasets.load_dataset`.
* ``kitti2015``: KITTI stereo 2015 training split (sparse uint16/256 disparity PNGs).
* ``vkitti2``: Virtual KITTI 2 (see :func:`vkitti2_dataset`); depth PNGs in centimetres are
  converted to disparity with ``d = fx * B / Z``, ``fx`` from each scene's ``intrinsic.txt``
  (725.0087 px when absent) and the baseline ``B = 0.532725 m`` of the dataset.

Sample ``i`` of the mixture is fully determined by ``(config seed, i)``: the source is picked
with the source weights and the augmentation runs with ``numpy.random.default_rng((seed,
i))``, so a batch of step ``s`` (samples ``s*B .. s*B+B-1``) is identical whether it is built in
the training process or in any DataLoader worker, and resuming at step ``s`` continues the
same stream.
"""

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, TypedDict

import cv2
import numpy as np
import torch

from .augment import Compose, TrainSample, build_augmentation
from .config import ConfigError, DataConfig, SOURCE_KINDS, SourceConfig
from ..data.datasets import FileStereoDataset, StereoSample, load_dataset, read_image_rgb
from ..errors import DatasetError, StereoDepthError

if TYPE_CHECKING:
    from ..data.photos import PhotoLibrary

#: Training scene seeds stay below this (held-out evaluation seeds start at EVAL_SEED_OFFSET).
TRAIN_SEED_LIMIT = 1_000_000
#: Virtual KITTI 2 stereo baseline in metres and default focal length in pixels.
VKITTI2_BASELINE = 0.532725
VKITTI2_FOCAL = 725.0087


class _SceneOptions(TypedDict, total=False):
    """Keyword options the scene generators share (absent: each generator's default)."""

    max_disparity: float


class SyntheticSource:
    """Infinite synthetic scenes with training seeds below 1_000_000 (see module docstring)."""

    def __init__(self, config: SourceConfig, seed: int, group: int = 1) -> None:
        from ..data.synthetic import EVAL_SEED_OFFSET
        if not config.scene_kinds:
            raise ConfigError('synthetic source needs at least one scene kind')
        if config.scene_reuse < 1 or group < 1:
            raise ConfigError(f'scene_reuse must be >= 1, got {config.scene_reuse}')
        self.config = config
        self.limit = min(TRAIN_SEED_LIMIT, int(EVAL_SEED_OFFSET))
        self.offset = (int(seed) * 7919) % self.limit
        self.group = int(group)
        self._cache: dict[int, TrainSample] = {}
        low, high = (list(config.range_fraction) + [None, None])[:2]
        if low is None or high is None or not 0 < low <= high <= 1:
            raise ConfigError(f'range_fraction must be two numbers 0 < low <= high <= 1, got '
                              f'{config.range_fraction}')
        self.photos: Optional[PhotoLibrary] = None
        if {'photo', 'mono'} & set(config.scene_kinds):
            from ..data.photos import PhotoLibrary
            if not config.photos:
                raise ConfigError('synthetic scene kinds photo and mono need `photos:` (a folder '
                                  'of photographs, e.g. from `stereo-depth fetch-photos`)')
            self.photos = PhotoLibrary(config.photos)

    @property
    def scene_reuse(self) -> int:
        """Consecutive steps that share this source's scenes."""
        return int(self.config.scene_reuse)

    def scene_number(self, index: int) -> int:
        """Return the scene that serves sample ``index``."""
        block = int(index) // (self.config.scene_reuse * self.group)
        return block * self.group + int(index) % self.group

    def scene_seed(self, index: int) -> int:
        """Return the generator seed of sample ``index`` (always < TRAIN_SEED_LIMIT)."""
        return (self.offset + self.scene_number(index)) % self.limit

    def scene(self, index: int) -> TrainSample:
        """Generate (or take from the cache) the scene that serves sample ``index``."""
        from ..data.mono_stereo import make_mono_pair
        from ..data.photo_scenes import make_photo_scene
        from ..data.synthetic import make_scene
        number = self.scene_number(index)
        if number in self._cache:
            return self._cache[number]
        kinds = self.config.scene_kinds
        seed = self.scene_seed(index)
        draw = np.random.default_rng((seed, 17))
        kind = kinds[int(draw.integers(len(kinds)))]
        options: _SceneOptions = {}
        if self.config.max_disparity is not None:
            low, high = self.config.range_fraction
            options['max_disparity'] = float(self.config.max_disparity) * draw.uniform(low, high)
        if kind == 'photo':
            assert self.photos is not None  # __init__ loads them for photo and mono scenes
            scene = make_photo_scene(seed, self.photos, height=self.config.height,
                                     width=self.config.width, **options)
        elif kind == 'mono':
            assert self.photos is not None
            photo = self.photos.texture(np.random.default_rng((seed, 19)))
            scene = make_mono_pair(photo, seed, height=self.config.height,
                                   width=self.config.width, **options)
        else:
            scene = make_scene(seed, height=self.config.height, width=self.config.width,
                               kind=kind, **options)
        sample = TrainSample(scene.left.astype(np.float32), scene.right.astype(np.float32),
                             scene.disparity.astype(np.float32))
        if len(self._cache) >= self.group:
            self._cache.pop(next(iter(self._cache)))
        self._cache[number] = sample
        return sample

    def sample(self, index: int, rng: np.random.Generator) -> TrainSample:
        """Return the scene of sample ``index`` (shared with other samples when reused)."""
        return self.scene(index)


def forget_beyond(sample: TrainSample, max_disparity: Optional[float]) -> TrainSample:
    """Return ``sample`` with ground truth above ``max_disparity`` unknown (None: as is)."""
    if max_disparity is None:
        return sample
    disparity = sample.disparity.copy()
    with np.errstate(invalid='ignore'):
        disparity[disparity > max_disparity] = np.nan
    return TrainSample(sample.left, sample.right, disparity)


class FileSource:
    """A finite dataset of files, reshuffled every epoch (deterministically per seed)."""

    def __init__(self, dataset: Sequence[StereoSample], seed: int,
                 max_disparity: Optional[float] = None) -> None:
        if len(dataset) == 0:
            raise DatasetError('training source has no samples')
        self.dataset = dataset
        self.seed = int(seed)
        self.max_disparity = max_disparity

    #: Every sample of a file source is its own draw (no scenes shared between steps).
    scene_reuse = 1

    def item_index(self, index: int) -> int:
        """Return the dataset item of sample ``index`` (one permutation per epoch)."""
        epoch, position = divmod(int(index), len(self.dataset))
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.dataset))
        return int(order[position])

    def sample(self, index: int, rng: np.random.Generator) -> TrainSample:
        """Read the pair of sample ``index``; ground truth beyond max_disparity is unknown."""
        position = self.item_index(index)
        item = self.dataset[position]
        left = np.asarray(item.left, np.float32)
        right = np.asarray(item.right, np.float32)
        # A copy, so that no later step can change an array the dataset keeps in memory.
        disparity = np.asarray(item.disparity, dtype=np.float32).copy()
        name = getattr(item, 'name', None)
        label = f'{name!r} (item {position})' if name else f'item {position}'
        check_sample_shapes(label, left, right, disparity)
        return forget_beyond(TrainSample(left, right, disparity), self.max_disparity)


def check_sample_shapes(name: str, left: np.ndarray, right: np.ndarray,
                        disparity: np.ndarray) -> None:
    """Raise DatasetError naming ``name`` unless left/right are HxWx3 and disparity is HxW."""
    if left.ndim != 3 or left.shape[2] != 3:
        raise DatasetError(f'training pair {name}: left image must be HxWx3, got shape '
                           f'{left.shape}')
    if right.shape != left.shape:
        raise DatasetError(f'training pair {name}: right image {right.shape} differs from the '
                           f'left image {left.shape}')
    if disparity.shape != left.shape[:2]:
        raise DatasetError(f'training pair {name}: disparity {disparity.shape} does not match '
                           f'the images {left.shape[:2]}')


def read_vkitti2_depth(path: str | Path) -> np.ndarray:
    """Read a Virtual KITTI 2 depth PNG (uint16 centimetres) as float32 metres (0 -> NaN)."""
    raw = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH)
    if raw is None:
        raise DatasetError(f'cannot read Virtual KITTI 2 depth {path}')
    if raw.dtype != np.uint16:
        raise DatasetError(f'{path}: Virtual KITTI 2 depth must be a 16-bit PNG, got {raw.dtype}')
    depth = raw.astype(np.float32) / 100.0
    depth[raw == 0] = np.nan
    return depth


def read_vkitti2_focals(path: Path) -> dict[int, float]:
    """Return frame -> fx of camera 0 from a Virtual KITTI 2 ``intrinsic.txt``."""
    focals: dict[int, float] = {}
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1] == '0':
            try:
                focals[int(parts[0])] = float(parts[2])
            except ValueError:
                raise DatasetError(f'{path}: malformed line {line!r}') from None
    return focals


class _VKitti2Dataset(FileStereoDataset):
    """Virtual KITTI 2 pairs with disparity computed from depth."""

    def __init__(self, items: list[tuple[str, Path, Path, Path]], focals: list[float]) -> None:
        super().__init__(items, read_vkitti2_depth)
        self.focals = focals

    def read_sample(self, index: int) -> StereoSample:
        """Read item ``index``; its disparity comes from the depth and the camera's focal."""
        name, left, right, depth_path = self.items[index]
        depth = read_vkitti2_depth(depth_path)
        with np.errstate(divide='ignore', invalid='ignore'):
            disparity = (self.focals[index] * VKITTI2_BASELINE / depth).astype(np.float32)
        return StereoSample(name, read_image_rgb(left), read_image_rgb(right), disparity)


def vkitti2_dataset(root: str | Path, scenes: Optional[Sequence[str]] = None,
                    variations: Optional[Sequence[str]] = None) -> FileStereoDataset:
    """Virtual KITTI 2: ``<root>/<Scene>/<variation>/frames/{rgb,depth}/Camera_{0,1}/``.

    Left = ``Camera_0``, right = ``Camera_1``; ``rgb_NNNNN.jpg`` and ``depth_NNNNN.png``
    (uint16, centimetres). ``<root>/<Scene>/<variation>/intrinsic.txt`` gives fx per frame
    (columns ``frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]``). Disparity = fx * 0.532725 / Z.
    The rgb, depth and textgt archives extract into the same ``<Scene>/<variation>`` folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'Virtual KITTI 2 root {root} is not a folder')
    items: list[tuple[str, Path, Path, Path]] = []
    focals: list[float] = []
    for left in sorted(root.glob('*/*/frames/rgb/Camera_0/rgb_*.jpg')):
        variation_dir = left.parents[3]
        scene, variation = variation_dir.parent.name, variation_dir.name
        if (scenes and scene not in scenes) or (variations and variation not in variations):
            continue
        frame = left.stem.split('_')[-1]
        right = left.parent.parent / 'Camera_1' / left.name
        depth = variation_dir / 'frames' / 'depth' / 'Camera_0' / f'depth_{frame}.png'
        if not (right.is_file() and depth.is_file()):
            continue
        intrinsics = variation_dir / 'intrinsic.txt'
        frame_focals = read_vkitti2_focals(intrinsics) if intrinsics.is_file() else {}
        focals.append(frame_focals.get(int(frame), VKITTI2_FOCAL))
        items.append((f'{scene}/{variation}/{frame}', left, right, depth))
    if not items:
        raise DatasetError(f'no Virtual KITTI 2 pairs with depth under {root} (expected '
                           f'<Scene>/<variation>/frames/rgb/Camera_0/rgb_00000.jpg)')
    return _VKitti2Dataset(items, focals)


def build_source(config: SourceConfig, seed: int, group: int = 1,
                 progress: bool = True) -> SyntheticSource | FileSource:
    """Build one training source from its config (``group``: samples per step).

    ``progress`` shows the labelling of a ``pseudo`` source's pairs.
    """
    if config.kind == 'synthetic':
        return SyntheticSource(config, seed, group)
    if config.kind not in SOURCE_KINDS:
        raise ConfigError(f'unknown data source kind {config.kind!r}; known: '
                          f'{", ".join(SOURCE_KINDS)}')
    if config.root is None:
        raise ConfigError(f'data source {config.kind!r} needs a root folder')
    dataset: Sequence[StereoSample]
    if config.kind == 'pseudo':
        from .pair_split import training_pairs
        from .pseudo_labels import PSEUDO_LABEL_MAX_DISPARITY, pseudo_labelled_dataset
        dataset = pseudo_labelled_dataset(config.root,
                                          config.max_disparity or PSEUDO_LABEL_MAX_DISPARITY,
                                          config.labeller, config.labeller_weights,
                                          progress=progress)
        if config.hold_out_selection:
            dataset = training_pairs(dataset)
    elif config.kind in ('sceneflow', 'kitti2015'):
        dataset = load_dataset(config.kind, config.root)
    else:  # vkitti2, the last of SOURCE_KINDS
        dataset = vkitti2_dataset(config.root, config.scenes, config.variations)
    return FileSource(dataset, seed, config.max_disparity)


def sample_to_tensors(sample: TrainSample) -> dict[str, torch.Tensor]:
    """Return CHW float tensors: left/right 3xHxW (0..255), disparity 1xHxW (NaN unknown)."""
    return {'left': torch.from_numpy(sample.left.transpose(2, 0, 1).copy()),
            'right': torch.from_numpy(sample.right.transpose(2, 0, 1).copy()),
            'disparity': torch.from_numpy(sample.disparity[None].copy())}


class TrainingData(torch.utils.data.Dataset):
    """Map-style dataset: global sample index -> augmented tensors (infinite stream)."""

    def __init__(self, config: DataConfig, seed: int, batch_size: int = 1,
                 augmentation: Optional[Compose] = None, progress: bool = True) -> None:
        self.seed = int(seed)
        self.sources = []
        for index, source in enumerate(config.sources):
            try:
                self.sources.append(build_source(source, seed, batch_size, progress))
            except DatasetError as error:  # a missing folder: which setting to change
                if source.kind == 'synthetic' or Path(source.root or '').expanduser().is_dir():
                    raise  # its photos' error names the fix; or a bad pair, named
                raise DatasetError(f'{error} (data.sources[{index}].root of the config; point '
                                   'it at your own folder, and list every source: a config '
                                   "that extends another replaces its list)") from None
        weights = np.array([source.weight for source in config.sources], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError(f'data source weights must be >= 0 with a positive sum, got '
                              f'{weights.tolist()}')
        self.probabilities = weights / weights.sum()
        self.augmentation = augmentation or build_augmentation(config.augmentation)
        #: Each source's own transforms (before the shared ones); None where it has none.
        self.source_augmentations = [build_augmentation(source.augmentation)
                                     if source.augmentation else None
                                     for source in config.sources]
        self.source_ranges = [source.max_disparity for source in config.sources]

    def __len__(self) -> int:
        return 2 ** 62

    @property
    def reuse_period(self) -> int:
        """Steps after which every source has started new scenes (lcm of ``scene_reuse``)."""
        return math.lcm(*(source.scene_reuse for source in self.sources))

    def sample(self, index: int) -> TrainSample:
        """Return augmented sample ``index`` as arrays."""
        rng = np.random.default_rng((self.seed, int(index)))
        which = int(rng.choice(len(self.sources), p=self.probabilities))
        sample = self.sources[which].sample(index, rng)
        own = self.source_augmentations[which]
        if own is not None:
            # A source's own scaling may carry ground truth beyond its range: unknown there.
            sample = forget_beyond(own(sample, rng), self.source_ranges[which])
        # So may the shared random_scale (up to 1.25x in the configs): the losses would pull
        # those pixels towards disparities the network cannot give (until 2026-12-07 they did).
        return forget_beyond(self.augmentation(sample, rng), self.source_ranges[which])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return sample_to_tensors(self.sample(index))

    def batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Return the collated batch of ``step`` (samples ``step*B .. step*B+B-1``)."""
        items = [self[step * batch_size + i] for i in range(batch_size)]
        sizes = sorted({tuple(item['disparity'].shape[-2:]) for item in items})
        if len(sizes) > 1:
            shown = ', '.join(f'{width}x{height}' for height, width in sizes)
            raise ConfigError(f'the samples of step {step} have different sizes ({shown}) and '
                              'cannot form a batch: end data.augmentation with a random_crop '
                              '(after any random_scale) that fits every source')
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class _StepChunks(torch.utils.data.Dataset):
    """The batches of steps ``start .. stop-1`` in chunks of ``chunk`` consecutive steps.

    A DataLoader hands its items to its workers in turn, so with one step per item the steps
    that share scenes (``scene_reuse``) would each go to another worker, which would generate
    the same scenes again. A chunk starts at a multiple of ``chunk`` steps (a multiple of every
    source's reuse), so one worker builds all the steps of a scene and its cache serves them.
    """

    def __init__(self, data: TrainingData, start: int, stop: int, batch_size: int,
                 chunk: int) -> None:
        self.data, self.start, self.stop = data, int(start), int(stop)
        self.batch_size, self.chunk = int(batch_size), max(1, int(chunk))
        self.first = self.start // self.chunk

    def __len__(self) -> int:
        return max(0, -(-self.stop // self.chunk) - self.first)

    def __getitem__(self, index: int) -> list[dict[str, torch.Tensor]] | StereoDepthError:
        begin = max(self.start, (self.first + index) * self.chunk)
        end = min(self.stop, (self.first + index + 1) * self.chunk)
        try:
            return [self.data.batch(step, self.batch_size) for step in range(begin, end)]
        except StereoDepthError as error:
            # Handed back as it is: a DataLoader re-raises a worker's error with the worker's
            # traceback in its message, which the one error line would then print.
            return error


def _one_thread_per_worker(worker_id: int) -> None:
    """Keep each data worker on one core (OpenCV would start a thread per core in each)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def batch_iterator(data: TrainingData, start_step: int, steps: int, batch_size: int,
                   num_workers: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the batches of steps ``start_step .. steps-1`` (same content for any workers)."""
    if num_workers <= 0:
        for step in range(start_step, steps):
            yield data.batch(step, batch_size)
        return
    chunks = _StepChunks(data, start_step, steps, batch_size, data.reuse_period)
    # Spawned, not forked: the training process has CUDA, OpenMP and OpenCV thread pools by
    # now, and a forked worker that inherits them can hang (every worker of a GPU run did).
    loader = torch.utils.data.DataLoader(chunks, batch_size=None, num_workers=num_workers,
                                         persistent_workers=False, prefetch_factor=2,
                                         worker_init_fn=_one_thread_per_worker,
                                         multiprocessing_context='spawn')
    for chunk in loader:
        if isinstance(chunk, StereoDepthError):
            raise chunk
        yield from chunk
