"""Parameters of the ROS 2 node: their definitions and validation.

Plain Python (no rclpy), so everything here is unit-tested without ROS. ``node.py`` declares
one ROS parameter per :data:`PARAMETERS` entry (description, range and read-only flag come
from the :class:`ParameterSpec`); :mod:`stereo_depth_ros.pipeline_config` turns the values
into a pipeline, for the node and the command line alike.
"""
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .backends import DisparityBackend, backend_info, backend_names, create_backend
from .errors import BackendError
from .obstacle import ObstacleParameters

Value = bool | int | float | str


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter: name, default (whose type is the parameter's type) and limits.

    ``limits`` is an inclusive ``(low, high)`` range (with ``step`` for integers, as
    ``rcl_interfaces/IntegerRange`` has), ``choices`` a closed set of strings. ``read_only``
    parameters are read at start-up only. ``reload`` marks the settings of the backend:
    changing one rebuilds the model.
    """

    name: str
    default: Value
    description: str
    limits: Optional[tuple[float, float]] = None
    step: int = 0
    choices: Optional[tuple[str, ...]] = None
    read_only: bool = False
    reload: bool = False

    @property
    def kind(self) -> type:
        """Python type of the parameter (bool, int, float or str)."""
        return type(self.default)

    @property
    def constraints(self) -> str:
        """Return the human-readable limits (``ParameterDescriptor.additional_constraints``)."""
        parts = []
        if self.choices:
            parts.append('one of: ' + ', '.join(self.choices))
        if self.limits is not None:
            parts.append(f'{self.limits[0]:g} .. {self.limits[1]:g}')
        if self.step > 1:
            parts.append(f'in steps of {self.step}')
        if self.read_only:
            parts.append('read at start-up only')
        return '; '.join(parts)


SGBM_PREFIX = 'sgbm.'
LEARNED_PREFIX = 'learned.'
OBSTACLE_PREFIX = 'obstacle.'
DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
SGBM_MODES = ('sgbm', 'hh', 'sgbm_3way', 'hh4')

_MODEL = (
    ParameterSpec('backend', 'sgbm', 'Disparity backend: sgbm (classical) or a learned one '
                  '(dispnet, dispnetc, squeezeseg, dispnet_qr, costnet). Changing it reloads the '
                  'model.',
                  reload=True),
    ParameterSpec('weights', '', "Weights file of a learned backend; '' = the shipped "
                  'models/<backend>.safetensors. Must be empty for sgbm.', reload=True),
    ParameterSpec('device', 'auto', 'Where learned backends run: auto (CUDA when available), '
                  'cpu, cuda or cuda:N.', reload=True),
    ParameterSpec('precision', 'auto', 'Numeric precision of learned backends: auto (fp32 on '
                  'CPU, fp16 on CUDA), fp32, bf16 or fp16 (CUDA only).', choices=PRECISIONS,
                  reload=True),
    ParameterSpec('learned.max_disparity', 0.0, 'Learned backends: largest valid disparity in '
                  "pixels (larger predictions are unknown); 0 = the network's own limit.",
                  limits=(0.0, 2048.0), reload=True),
    ParameterSpec('learned.num_threads', 0, 'Learned backends on the CPU: torch intra-op '
                  'threads; 0 = torch default.', limits=(0, 256), reload=True),
    ParameterSpec('learned.scale', 1.0, 'Learned backends: the network sees the images resized '
                  'by this factor (0.05-1); its disparity range grows by 1/scale and its cost '
                  'falls by scale^2.', limits=(0.05, 1.0), reload=True),
)

_SGBM = (
    ParameterSpec('sgbm.min_disparity', 0, 'SGBM: smallest disparity searched (px).',
                  limits=(-1024, 1024), reload=True),
    ParameterSpec('sgbm.disparity_range', 128, 'SGBM: number of disparities searched '
                  '(multiple of 16).', limits=(16, 1024), step=16, reload=True),
    ParameterSpec('sgbm.block_size', 5, 'SGBM: matched block size (odd).', limits=(1, 51),
                  step=2, reload=True),
    ParameterSpec('sgbm.p1', 0, 'SGBM: penalty of +-1 disparity changes; 0 = 8*channels*'
                  'block_size^2.', limits=(0, 100000), reload=True),
    ParameterSpec('sgbm.p2', 0, 'SGBM: penalty of larger disparity changes (> p1); 0 = '
                  '32*channels*block_size^2.', limits=(0, 400000), reload=True),
    ParameterSpec('sgbm.disp12_max_diff', 1, 'SGBM: left-right consistency tolerance (px); '
                  '-1 disables the check.', limits=(-1, 1024), reload=True),
    ParameterSpec('sgbm.pre_filter_cap', 31, 'SGBM: clip of the pre-filtered image '
                  'derivatives.', limits=(1, 63), reload=True),
    ParameterSpec('sgbm.uniqueness_ratio', 10, 'SGBM: margin (%) by which the best cost must '
                  'win.', limits=(0, 100), reload=True),
    ParameterSpec('sgbm.speckle_window_size', 100, 'SGBM: largest speckle (px) removed; 0 '
                  'disables speckle filtering.', limits=(0, 10000), reload=True),
    ParameterSpec('sgbm.speckle_range', 2, 'SGBM: disparity variation within one speckle '
                  'region.', limits=(0, 64), reload=True),
    ParameterSpec('sgbm.mode', 'sgbm_3way', 'SGBM: OpenCV matching mode (paths, memory).',
                  choices=SGBM_MODES, reload=True),
)

_DEPTH = (
    ParameterSpec('min_depth', 0.0, 'Depth (and disparity) nearer than this many metres is '
                  'published as unknown; 0 = no limit.', limits=(0.0, 1000.0)),
    ParameterSpec('max_depth', 0.0, 'Depth (and disparity) farther than this many metres is '
                  'published as unknown; 0 = no limit.', limits=(0.0, 100000.0)),
)


def _obstacle_default(name: str) -> Value:
    """Return the :class:`ObstacleParameters` default of ``name`` (None as 0, tuples as lists).

    Taken from the dataclass so the node and ``stereo-depth process-bag`` agree.
    """
    value = getattr(ObstacleParameters(), name)
    if value is None:
        return 0.0
    if isinstance(value, tuple):
        return [float(v) for v in value]
    return value


_OBSTACLE = tuple(
    ParameterSpec(f'{OBSTACLE_PREFIX}{name}', _obstacle_default(name), description,
                  limits=limits)
    for name, description, limits in (
        ('roi', 'Window searched for obstacles, as fractions of the image: '
         '[x, y, width, height].', None),
        ('min_range', 'Nearer depths (m) are ignored; also Range.min_range.', (0.0, 1000.0)),
        ('max_range', 'Farther depths (m) are ignored; also Range.max_range (range is +inf '
         'when nothing is nearer).', (0.01, 100000.0)),
        ('distance_band', 'Pixels up to this many metres behind the nearest depth belong to '
         'the obstacle.', (0.001, 1000.0)),
        ('min_area', 'Smallest obstacle in pixels; smaller blobs are noise.', (1, 100000000)),
        ('min_size', 'Smallest obstacle front area in square metres (rejects small, near '
         'mismatch blobs).', (0.0, 1000.0)),
        ('ground_tolerance', 'Points within this height (m) of the fitted ground plane are '
         'ground, not obstacle.', (0.0, 100.0)),
        ('max_clearance', "An obstacle's lowest point must be at most this high (m) above "
         'the ground; 0 accepts overhanging obstacles too.', (0.0, 100.0)),
        ('disparity_noise', 'Assumed disparity error (px) that widens the ground tolerance '
         'and distance band with distance.', (0.0, 100.0)),
        ('percentile', "Low percentile of an obstacle's depths taken as its distance.",
         (0.0, 100.0)),
        ('camera_height', 'Height (m) of a level camera over the ground, used when no ground '
         'plane can be fitted; 0 = unknown (no ground removal then).', (0.0, 100.0)),
    ))
#: ``obstacle.*`` parameters whose value 0 stands for None in :class:`ObstacleParameters`.
ZERO_IS_NONE = frozenset({'obstacle.max_clearance', 'obstacle.camera_height'})

_OUTPUTS = (
    ParameterSpec('publish_disparity', True, 'Publish disparity (stereo_msgs/DisparityImage).'),
    ParameterSpec('publish_depth', True, 'Publish depth (32FC1 metres, NaN unknown).'),
    ParameterSpec('publish_obstacle', True, 'Publish obstacle/mask and obstacle/range.'),
    ParameterSpec('publish_color', True, 'Publish disparity/color (bgr8 picture).'),
    ParameterSpec('publish_points', False, 'Publish points2 (PointCloud2 xyz + rgb); costly, '
                  'off by default.'),
)

_INPUT = (
    ParameterSpec('queue_size', 5, 'Synchronizer queue size per input topic.', limits=(1, 1000),
                  read_only=True),
    ParameterSpec('approximate_sync', False, 'Pair images and camera infos by nearest stamp '
                  'instead of exact stamp.', read_only=True),
    ParameterSpec('approximate_sync_tolerance_seconds', 0.02, 'Largest stamp difference (s) '
                  'within one set when approximate_sync is true.', limits=(0.0, 10.0),
                  read_only=True),
    ParameterSpec('use_system_default_qos', False, 'Subscribe with the system default QoS '
                  '(reliable) instead of sensor-data QoS (best effort, REP 2003).',
                  read_only=True),
    ParameterSpec('mono16_bit_depth', 0, 'Bits used by mono16 cameras (8..16) for scaling to '
                  '8 bits; 0 = the full 16-bit range.', limits=(0, 16), read_only=True),
    ParameterSpec('max_megapixels', 4.0, 'Pairs larger than this (megapixels) are refused '
                  'with a warning before they are decoded, to keep memory bounded; 0 = no '
                  'limit.', limits=(0.0, 1000.0), read_only=True),
    ParameterSpec('stats_period', 5.0, 'Seconds between rate/latency log lines; 0 = off.',
                  limits=(0.0, 3600.0), read_only=True),
)

#: Every parameter the node declares, in declaration order.
PARAMETERS: tuple[ParameterSpec, ...] = _MODEL + _SGBM + _DEPTH + _OBSTACLE + _OUTPUTS + _INPUT
SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}


def default_values() -> dict[str, Value]:
    """Return ``{name: default}`` of every parameter (lists copied)."""
    return {spec.name: _copy(spec.default) for spec in PARAMETERS}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def check_value(name: str, value: Any) -> Any:
    """Return ``value`` normalised for parameter ``name`` or raise ValueError naming it.

    Checks the type (ints are accepted for float parameters, bools never for numbers),
    the range, the step and the choices of the parameter.
    """
    spec = SPECS.get(name)
    if spec is None:
        raise ValueError(f'unknown parameter {name!r}')
    kind = spec.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f'{name} must be true or false, got {value!r}')
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'{name} must be an integer, got {value!r}')
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{name} must be a number, got {value!r}')
        value = float(value)
        if value != value:
            raise ValueError(f'{name} must not be NaN')
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(f'{name} must be a string, got {value!r}')
    elif kind is list:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f'{name} must be a list of numbers, got {value!r}')
        value = [float(v) for v in value]
    if spec.limits is not None:
        low, high = spec.limits
        if not low <= value <= high:
            raise ValueError(f'{name} must be within {low:g} .. {high:g}, got {value!r}')
        if spec.step > 1 and (value - low) % spec.step:
            raise ValueError(f'{name} must be {low:g} plus a multiple of {spec.step}, '
                             f'got {value!r}')
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f'{name} must be one of {", ".join(spec.choices)}; got {value!r}')
    return value


def validate(values: Mapping[str, Any]) -> dict[str, Value]:
    """Return a complete, normalised copy of ``values`` or raise ValueError/BackendError.

    Missing names take their defaults; unknown names are rejected. Beyond the per-parameter
    checks of :func:`check_value` this checks the combinations: known backend, device syntax,
    depth range order, SGBM penalties, the sync tolerance (the obstacle settings as a whole
    are checked by :func:`stereo_depth_ros.pipeline_config.check_parameters`).
    """
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ValueError(f'unknown parameter(s) {unknown}')
    checked = default_values()
    for name, value in values.items():
        checked[name] = check_value(name, value)
    backend = checked['backend']
    if backend not in backend_names():
        raise BackendError(f'unknown backend {backend!r}; known backends: '
                           f'{", ".join(backend_names())}')
    if not DEVICE_PATTERN.match(checked['device']):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {checked['device']!r}")
    if checked['weights'] and not backend_info(backend).needs_weights:
        raise BackendError(f"backend {backend!r} takes no weights file, but weights is "
                           f"{checked['weights']!r}; set weights to '' first")
    low, high = checked['min_depth'], checked['max_depth']
    if low > 0 and high > 0 and not low < high:
        raise ValueError(f'min_depth ({low:g}) must be smaller than max_depth ({high:g})')
    p1, p2 = checked['sgbm.p1'], checked['sgbm.p2']
    if p2 and p2 <= p1:
        raise ValueError(f'sgbm.p2 ({p2}) must exceed sgbm.p1 ({p1})')
    if checked['mono16_bit_depth'] and checked['mono16_bit_depth'] < 8:
        raise ValueError('mono16_bit_depth must be 0 or 8..16, got '
                         f"{checked['mono16_bit_depth']}")
    if checked['approximate_sync'] and checked['approximate_sync_tolerance_seconds'] <= 0:
        raise ValueError('approximate_sync_tolerance_seconds must be > 0 when '
                         'approximate_sync is true')
    return checked


def backend_key(values: Mapping[str, Any]) -> tuple:
    """Return the settings that define the model: a change of the key rebuilds the backend."""
    return tuple((name, _freeze(values[name])) for name in SPECS if SPECS[name].reload)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def backend_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the keyword options :func:`create_backend` gets for the configured backend."""
    name = values['backend']
    if name == 'sgbm':
        return {key[len(SGBM_PREFIX):]: values[key] for key in SPECS
                if key.startswith(SGBM_PREFIX)}
    if not backend_info(name).needs_weights:
        return {}
    options: dict[str, Any] = {}
    if values['precision'] != 'auto':
        options['precision'] = values['precision']
    if values['learned.max_disparity'] > 0:
        options['max_disparity'] = float(values['learned.max_disparity'])
    if values['learned.num_threads'] > 0:
        options['num_threads'] = int(values['learned.num_threads'])
    if values['learned.scale'] != 1.0:
        options['scale'] = float(values['learned.scale'])
    return options


def build_backend(values: Mapping[str, Any]) -> DisparityBackend:
    """Build the backend the (validated) parameter values describe.

    Raises BackendError for a missing weights file, weights of another backend, an unusable
    device and so on (see :func:`~stereo_depth_ros.backends.create_backend`).
    """
    return create_backend(values['backend'], weights=values['weights'] or None,
                          device=values['device'], **backend_options(values))


def backend_option_parameters(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the node parameters that ``--backend-option`` settings of ``backend`` stand for.

    ``key=value`` is parameter ``sgbm.<key>`` for the sgbm backend and ``learned.<key>`` for
    the learned ones. A returned name need not exist: the caller keeps such keys as raw
    backend options (see :func:`stereo_depth_ros.pipeline_config.split_backend_options`).
    """
    prefix = SGBM_PREFIX if backend == 'sgbm' else LEARNED_PREFIX
    return {f'{prefix}{key}': value for key, value in options.items()}
