"""Training experiment configuration: one YAML file, five sections, strict dataclasses.

A file ``config/train_<backend>.yaml`` holds ``name``, ``backend``, ``seed`` and the sections
``data`` (training sources and augmentation), ``model`` (network architecture and loss),
``optimization`` (steps, batch, AdamW, LR schedule, precision, threads), ``evaluation``
(periodic validation on held-out synthetic scenes) and ``output`` (run folder, checkpoints,
export). Every key is checked: an unknown or misspelt key raises :class:`ConfigError` naming
it and listing the allowed ones, so a typo never silently falls back to a default.
"""

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .pair_split import HELD_OUT_EVERY
from ..errors import DatasetError, StereoDepthError


class ConfigError(StereoDepthError, ValueError):
    """A training configuration file that is missing, malformed or has unknown keys."""


#: The backend that labels a ``pseudo`` source's real pairs unless the config names another.
DEFAULT_LABELLER = 'sgbm'


@dataclass
class SourceConfig:
    """One training data source; ``kind`` is synthetic, sceneflow, kitti2015 or vkitti2."""

    kind: str = 'synthetic'
    #: Relative sampling weight among the sources.
    weight: float = 1.0
    #: Folder of a file dataset (unused for synthetic).
    root: Optional[str] = None
    #: Synthetic: scene kinds to draw from (uniformly) and the scene size.
    scene_kinds: list[str] = field(default_factory=lambda: ['layered'])
    height: int = 256
    width: int = 512
    #: Synthetic: largest disparity of generated scenes; file datasets: ground truth above
    #: this is ignored in the loss (None keeps all).
    max_disparity: Optional[float] = 64.0
    #: Synthetic: each generated scene serves this many consecutive steps (different random
    #: crops and photometric changes each time) - generation costs more than a small step.
    scene_reuse: int = 1
    #: Virtual KITTI 2: scenes and variations to use (None = all found).
    scenes: Optional[list[str]] = None
    variations: Optional[list[str]] = None
    #: Synthetic: each scene's largest disparity is drawn uniformly between these fractions
    #: of ``max_disparity`` (so training covers the whole range, not only its top).
    range_fraction: list[float] = field(default_factory=lambda: [1.0, 1.0])
    #: Synthetic scene kind ``photo``: folder of photographs (``~`` expanded), e.g. the
    #: cache of ``stereo-depth fetch-photos``.
    photos: Optional[str] = None
    #: ``pseudo``: leave out the pairs that ``training.selection`` scores runs on
    #: (:func:`~stereo_depth_ros.training.pair_split.training_pairs`), so that those scores
    #: judge pairs the run did not train on.
    hold_out_selection: bool = False
    #: ``pseudo``: the backend whose left-right consistent disparities are the labels:
    #: ``sgbm``, or a learned backend (e.g. ``costnet``: a stronger network teaches this one)
    #: with its shipped weights or ``labeller_weights``.
    labeller: str = DEFAULT_LABELLER
    labeller_weights: Optional[str] = None
    #: Transforms of this source's samples only, applied before the shared
    #: ``data.augmentation`` (same names and parameters), e.g. ``{name: random_scale, low: 1.0,
    #: high: 2.0}`` to enlarge a real set's disparities; ground truth they carry above
    #: ``max_disparity`` becomes unknown.
    augmentation: list[dict] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where training pairs come from and how they are augmented."""

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    #: Ordered named transforms, e.g. ``{name: random_crop, height: 128, width: 256}``.
    augmentation: list[dict] = field(default_factory=list)
    #: DataLoader worker processes (0 = generate in the training process).
    num_workers: int = 0


@dataclass
class ScheduleEntry:
    """From step ``at`` on, the per-scale loss weights are ``weights`` (coarse -> fine)."""

    at: float = 0
    weights: list[float] = field(default_factory=list)


@dataclass
class LossConfig:
    """Loss of the model family; ``kind`` ``auto`` picks it from the backend name."""

    kind: str = 'auto'
    #: Multi-scale EPE weight schedule, ordered by ``at``.
    schedule: list[ScheduleEntry] = field(default_factory=list)
    #: ``steps``: ``at`` is a step; ``fraction``: ``at`` is a fraction of the total steps.
    schedule_units: str = 'fraction'
    #: Linearly interpolate the weights between schedule entries (else piecewise constant).
    interpolate: bool = False
    #: Multi-scale EPE (DispNet, DispNetC, SqueezeSeg, CostNet; not DispNet-QR): weight (>= 1)
    #: of the pixels that the right camera cannot see by the ground truth (outside its view
    #: or occluded), which only context can get right; the others keep weight 1, so 1 weighs
    #: every known pixel alike. Ground truth that is sparse (pseudo-labels) hides few pixels:
    #: its occluders are missing.
    unseen_weight: float = 1.0
    #: Quantized regression: cross-entropy and residual smooth-L1 weights.
    ce_weight: float = 1000.0
    residual_weight: float = 1.0
    #: Quantized regression: weight of the multi-scale EPE on the DispNet trunk predictions.
    trunk_weight: float = 0.0
    #: Quantized regression: also supervise the residuals of the bins up to this many bins
    #: either side of the true one (each relative to its own centre), so that picking a
    #: neighbouring bin still decodes close to the truth (0: only the true bin, as DenseReg).
    residual_neighbours: int = 0


@dataclass
class ModelConfig:
    """Network constructor arguments, its loss and optional initial weights (fine-tuning)."""

    architecture: dict = field(default_factory=dict)
    loss: LossConfig = field(default_factory=LossConfig)
    #: safetensors file to start from (None: random). By default it must hold the whole
    #: network of this backend and architecture; see the next two settings for a part.
    init_weights: Optional[str] = None
    #: Backend the ``init_weights`` file belongs to (None: this config's backend), e.g.
    #: ``dispnet`` to start dispnet_qr's trunk from the shipped DispNet weights.
    init_weights_backend: Optional[str] = None
    #: Submodule (dotted name, e.g. ``trunk``) that ``init_weights`` is loaded into (None: all).
    init_weights_into: Optional[str] = None
    #: Submodules (dotted names) that ``init_weights`` may lack: they keep their
    #: initialisation, and the architecture settings the file does not record are not
    #: compared. E.g. ``[refine]`` adds costnet's refinement to weights saved without it.
    init_weights_new: list[str] = field(default_factory=list)
    #: Load ``init_weights`` into a network of a larger range: the architecture settings are
    #: not compared, and a layer with more input channels than the file's gets zeros for the
    #: new ones (``weights.widened``), e.g. the correlation displacements of dispnetc with a
    #: larger ``max_disparity``; the network then starts from the file's output.
    init_weights_widen: bool = False
    #: Submodules (dotted names) that are not trained: no gradients, BatchNorm statistics
    #: frozen. E.g. ``[trunk]`` trains only dispnet_qr's quantized-regression head.
    freeze: list[str] = field(default_factory=list)


@dataclass
class OptimizationConfig:
    """AdamW, learning-rate schedule, batch, precision and threads."""

    steps: int = 10000
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    #: ``cosine`` (to ``min_lr_ratio * lr``), ``step`` (x ``gamma`` at ``milestones``) or
    #: ``constant``; always after ``warmup_steps`` of linear warm-up.
    lr_schedule: str = 'cosine'
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.5
    #: Clip the global gradient norm (0 = off).
    grad_clip: float = 0.0
    #: ``fp32`` or ``bf16`` (autocast; CUDA also accepts ``fp16``).
    precision: str = 'fp32'
    #: CPU intra-op threads (0 = leave torch's default).
    num_threads: int = 1
    #: Compile the network's forward (and so its backward) with ``torch.compile`` (inductor;
    #: on the CPU it needs a C++ compiler). The first step and the first validation take
    #: tens of seconds to compile; the steps after are faster (README, Training).
    torch_compile: bool = False


@dataclass
class EvaluationConfig:
    """Periodic validation on held-out synthetic scenes (validation seeds, not ``eval:N``'s)."""

    every: int = 1000
    num_scenes: int = 16
    kind: str = 'layered'
    height: int = 256
    width: int = 512
    #: Largest disparity of the validation scenes.
    max_disparity: float = 64.0


#: Values of ``adaptation.pseudo_label_loss``.
PSEUDO_LABEL_LOSSES = ('epe', 'network')


@dataclass
class AdaptationConfig:
    """Self-supervised adaptation to real pairs without ground truth (``stereo-depth adapt``).

    Each step adds to the supervised loss of a ``data`` batch (so the network does not drift)
    the loss of ``batch_size`` random crops of real pairs: ``photometric`` x (SSIM + L1 of the
    left view rebuilt from the right, over pixels the right camera sees) + ``smoothness`` x
    edge-aware smoothness + ``pseudo_label`` x the error (``pseudo_label_loss``) against the
    ``labeller``'s disparities that pass a left-right check. Every ``holdout_every``-th pair
    (sorted by name) is held out: its losses are the validation used to choose between runs.
    """

    #: Folder searched recursively for ``left.png``/``right.png`` pairs.
    pairs: Optional[str] = None
    photometric: float = 1.0
    smoothness: float = 0.02
    pseudo_label: float = 0.3
    #: The backend whose left-right consistent disparities are the pseudo-labels: ``sgbm``
    #: or a learned backend (e.g. ``costnet`` teaching a weaker network), with its shipped
    #: weights or ``labeller_weights``.
    labeller: str = DEFAULT_LABELLER
    labeller_weights: Optional[str] = None
    #: How the pseudo-labels are scored: ``epe``, the mean error of the decoded disparity;
    #: ``network``, the network's own training loss against them (DispNet-QR: the bins'
    #: cross-entropy and residuals; its argmax decode passes no gradient to the classifier).
    pseudo_label_loss: str = 'epe'
    #: BatchNorm layers keep the trained weights' statistics (eval mode; their scale and shift
    #: still learn) instead of normalising each small batch by its own statistics and
    #: replacing the stored ones with those of a few real crops: the usual practice when
    #: fine-tuning with small batches.
    keep_batch_norm_statistics: bool = True
    batch_size: int = 2
    crop: list[int] = field(default_factory=lambda: [256, 512])
    holdout_every: int = HELD_OUT_EVERY
    #: Significant bits of 16-bit pair files (a 12-bit sensor: 12); None: the full 16 bits.
    mono16_bit_depth: Optional[int] = None


@dataclass
class OutputConfig:
    """Run folder, logging, checkpoints and the exported weights."""

    out_dir: str = 'runs/default'
    log_every: int = 50
    checkpoint_every: int = 500
    #: Where the final weights go (``models/<backend>.safetensors``); empty = run folder only.
    export: str = ''
    #: ``fp32`` or ``fp16`` storage of the exported weights.
    weights_dtype: str = 'fp32'


@dataclass
class TrainConfig:
    """A whole training experiment."""

    name: str = 'default'
    backend: str = 'dispnet'
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)

    def to_dict(self) -> dict:
        """Return the configuration as plain dicts/lists (for JSON and metadata)."""
        return dataclasses.asdict(self)


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert ``value`` to ``annotation`` (dataclass, list, Optional, scalar)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where} must be a list, got {value!r}')
        return [_convert(item, args[0], f'{where}[{i}]') for i, item in enumerate(value)]
    if annotation is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{where} must be a mapping, got {value!r}')
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where} must be true or false, got {value!r}')
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where} must be an integer, got {value!r}')
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where} must be a number, got {value!r}')
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where} must be a string, got {value!r}')
        return value
    return value


def from_dict(cls: type, data: Any, where: str = 'config') -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{where} must be a mapping, got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f'unknown key(s) {unknown} in {where}; allowed: {", ".join(names)}')
    values = {key: _convert(value, hints[key], f'{where}.{key}') for key, value in data.items()}
    return cls(**values)


#: The kinds of training data source (``data.sources[].kind``).
SOURCE_KINDS = ('synthetic', 'sceneflow', 'kitti2015', 'vkitti2', 'pseudo')
#: Synthetic scene kinds painted with photographs (beside the generator's own kinds).
PHOTO_SCENE_KINDS = ('photo', 'mono')


def validate(config: TrainConfig) -> TrainConfig:
    """Check values that the types alone do not; return ``config``."""
    opt = config.optimization
    checks = [
        (opt.steps > 0, f'optimization.steps must be > 0, got {opt.steps}'),
        (opt.batch_size > 0, f'optimization.batch_size must be > 0, got {opt.batch_size}'),
        (opt.lr > 0, f'optimization.lr must be > 0, got {opt.lr}'),
        (opt.lr_schedule in ('cosine', 'step', 'constant'),
         f'optimization.lr_schedule must be cosine, step or constant, got {opt.lr_schedule!r}'),
        (opt.precision in ('fp32', 'bf16', 'fp16'),
         f'optimization.precision must be fp32, bf16 or fp16, got {opt.precision!r}'),
        (len(opt.betas) == 2 and all(0 <= beta < 1 for beta in opt.betas),
         f'optimization.betas must be two numbers in [0, 1), got {opt.betas}'),
        # Each of these, out of range, made the run climb its loss instead of descending it
        # (a negative learning rate, a negative clip norm) or failed late in torch's words.
        (opt.weight_decay >= 0, f'optimization.weight_decay must be >= 0, got '
                                f'{opt.weight_decay:g}'),
        (opt.warmup_steps >= 0, f'optimization.warmup_steps must be >= 0, got '
                                f'{opt.warmup_steps}'),
        (0 <= opt.min_lr_ratio <= 1, f'optimization.min_lr_ratio must be in [0, 1], got '
                                     f'{opt.min_lr_ratio:g}'),
        (0 < opt.gamma <= 1, f'optimization.gamma must be in (0, 1], got {opt.gamma:g}'),
        (all(0 <= milestone <= 1 for milestone in opt.milestones),
         f'optimization.milestones must be fractions of the steps in [0, 1], got '
         f'{opt.milestones}'),
        (opt.grad_clip >= 0, f'optimization.grad_clip must be >= 0 (0: off), got '
                             f'{opt.grad_clip:g}'),
        (opt.num_threads >= 0, f'optimization.num_threads must be >= 0 (0: torch\'s default), '
                               f'got {opt.num_threads}'),
        (config.seed >= 0, f'seed must be >= 0, got {config.seed}'),
        (config.data.num_workers >= 0, f'data.num_workers must be >= 0, got '
                                       f'{config.data.num_workers}'),
        (config.model.loss.unseen_weight >= 1.0,  # also refuses NaN
         f'model.loss.unseen_weight must be >= 1, got {config.model.loss.unseen_weight:g}'),
        (config.model.loss.schedule_units in ('steps', 'fraction'),
         f'model.loss.schedule_units must be steps or fraction, got '
         f'{config.model.loss.schedule_units!r}'),
        (config.evaluation.every >= 0 and config.evaluation.num_scenes >= 0,
         'evaluation.every and evaluation.num_scenes must be >= 0'),
        (config.output.weights_dtype in ('fp32', 'fp16'),
         f'output.weights_dtype must be fp32 or fp16, got {config.output.weights_dtype!r}'),
        (bool(config.data.sources), 'data.sources must name at least one source'),
        (config.adaptation.batch_size > 0,
         f'adaptation.batch_size must be > 0, got {config.adaptation.batch_size}'),
        (config.adaptation.pseudo_label_loss in PSEUDO_LABEL_LOSSES,
         f'adaptation.pseudo_label_loss must be epe or network, got '
         f'{config.adaptation.pseudo_label_loss!r}'),
        (config.output.log_every > 0 and config.output.checkpoint_every > 0,
         'output.log_every and output.checkpoint_every must be > 0'),
    ]
    from ..data.synthetic import KINDS
    scene_kinds = (*KINDS, *PHOTO_SCENE_KINDS)
    for source in config.data.sources:
        checks.append((source.kind in SOURCE_KINDS,
                       f'data source kind {source.kind!r} is unknown; known: '
                       f'{", ".join(SOURCE_KINDS)}'))
        if source.kind == 'synthetic':
            unknown = [kind for kind in source.scene_kinds if kind not in scene_kinds]
            checks.append((not unknown, f'synthetic scene_kinds {unknown} unknown; known: '
                                        f'{", ".join(scene_kinds)}'))
    checks.append((config.evaluation.kind in KINDS,
                   f'evaluation.kind {config.evaluation.kind!r} is unknown; known: '
                   f'{", ".join(KINDS)}'))
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    check_scene_sizes(config)
    _check_crop_divisor(config)
    # A shell expands ~ on the command line, not in a YAML file: as it would.
    if config.output.export:
        config.output.export = str(Path(config.output.export).expanduser())
    return config


def check_scene_sizes(config: TrainConfig) -> None:
    """Raise ConfigError unless the generator can make every synthetic scene of ``config``.

    A source draws each scene's largest disparity from ``range_fraction`` x ``max_disparity``
    and the validation scenes are made at the first validation, so a size or range the
    generator refuses would otherwise stop the run at a random step, or after its last one.
    """
    from ..data.synthetic import check_scene_size
    for index, source in enumerate(config.data.sources):
        fractions = source.range_fraction
        if source.kind != 'synthetic' or source.max_disparity is None or len(fractions) != 2 \
                or not 0 < fractions[0] <= fractions[1] <= 1:  # SyntheticSource says why
            continue
        for fraction in fractions:
            try:
                check_scene_size(source.height, source.width,
                                 round(source.max_disparity * fraction, 6))
            except DatasetError as error:
                raise ConfigError(f'data.sources[{index}] (max_disparity '
                                  f'{source.max_disparity:g} x range_fraction {fraction:g}): '
                                  f'{error}') from None
        _check_crops_fit(index, source.height, source.width,
                         [*source.augmentation, *config.data.augmentation])
    evaluation = config.evaluation
    if evaluation.num_scenes:
        try:
            check_scene_size(evaluation.height, evaluation.width, evaluation.max_disparity)
        except DatasetError as error:
            raise ConfigError(f'evaluation: {error}') from None


def batch_crop(augmentation: list[dict]) -> Optional[tuple[int, int]]:
    """Return (height, width) of the last ``random_crop`` of ``augmentation`` (None: none).

    The shared transforms' last crop is the size of every training batch.
    """
    crops = [(int(t['height']), int(t['width'])) for t in augmentation
             if t.get('name') == 'random_crop' and 'height' in t and 'width' in t]
    return crops[-1] if crops else None


def _check_crop_divisor(config: TrainConfig) -> None:
    """Raise ConfigError where the batches' crop does not fit the network's divisor.

    The network refuses images whose sides are not multiples of it (64 px for DispNet):
    every step would fail, found only once the run had started and made its folder.
    """
    crop = batch_crop(config.data.augmentation)
    if crop is None:
        return
    from ..backends.registry import backend_record
    from ..errors import BackendError
    try:
        network = backend_record(config.backend).network
    except BackendError:
        return  # an unknown backend is named where the model is built
    if network is None:
        return
    height, width = crop
    if height % network.divisor or width % network.divisor:
        raise ConfigError(f'data.augmentation: random_crop {height}x{width} is not a multiple '
                          f'of {network.divisor} px, which {config.backend} needs of its '
                          'images: every step would fail')


def _check_crops_fit(index: int, height: int, width: int, transforms: list[dict]) -> None:
    """Raise ConfigError where a synthetic source's scene can be smaller than a crop of it.

    ``transforms`` are the source's own and then the shared ones. Each ``random_scale`` may
    shrink the scene by its ``low`` factor before a ``random_crop``; a crop larger than the
    smallest scene stopped the run at the first step that drew one (the checkpoints since the
    last one lost).
    """
    from .augment import RandomScale
    defaults = inspect.signature(RandomScale).parameters
    smallest = (float(height), float(width))
    for transform in transforms:
        name = transform.get('name')
        if name == 'random_scale':
            low = float(transform.get('low', defaults['low'].default))
            if float(transform.get('probability', defaults['probability'].default)) < 1:
                low = min(low, 1.0)  # a sample it leaves alone keeps its size
            smallest = (smallest[0] * low, smallest[1] * low)
        elif name == 'random_crop' and 'height' in transform and 'width' in transform:
            rows, cols = (max(int(round(side)), 1) for side in smallest)
            if int(transform['height']) > rows or int(transform['width']) > cols:
                raise ConfigError(
                    f"data.sources[{index}]: random_crop {transform['height']}x"
                    f"{transform['width']} is larger than its {height}x{width} scenes can be "
                    f'after random_scale ({rows}x{cols}): make the scenes larger or the crop '
                    'smaller')
            smallest = (float(transform['height']), float(transform['width']))


#: The key of a config file that names the file it starts from.
EXTENDS_KEY = 'extends'


def merged(base: Any, override: Any) -> Any:
    """Return ``override`` laid over ``base``: mappings merge key by key, anything else replaces.

    Lists replace as a whole (a data source list or a loss schedule is one setting).
    """
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = merged(base.get(key), value)  # a key new to base: value as is
        return result
    return override


def read_config_data(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Return the mapping of a config file with its ``extends:`` chain resolved.

    ``extends: other.yaml`` (relative to the file's folder) starts from that file's resolved
    mapping; the keys of this file replace or, for mappings, merge into it.
    """
    if not path.is_file():
        raise ConfigError(f'training config {path} does not exist')
    if path.resolve() in seen:
        chain = ' -> '.join(str(step) for step in seen + (path.resolve(),))
        raise ConfigError(f'{path}: extends itself ({chain})')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f'{path} is not valid YAML: {error}') from None
    if not isinstance(data, dict) or EXTENDS_KEY not in data:
        return data
    data = dict(data)
    parent = data.pop(EXTENDS_KEY)
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f'{path}: {EXTENDS_KEY} must name a config file, got {parent!r}')
    base = read_config_data(path.parent / parent, seen + (path.resolve(),))
    return merged(base, data)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training YAML file (with its ``extends:`` chain, if any)."""
    path = Path(path)
    return validate(from_dict(TrainConfig, read_config_data(path), where=path.name))
