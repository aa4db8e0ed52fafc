"""Parameters of the ROS 2 node: their definitions and validation.

Plain Python (no rclpy), so everything here is unit-tested without ROS. ``node.py`` declares
one ROS parameter per :data:`PARAMETERS` entry (description, range and read-only flag come
from the :class:`ParameterSpec`); :mod:`stereo_depth_ros.pipeline_config` turns the values
into a pipeline, for the node and the command line alike.
"""

from dataclasses import fields
from typing import Any, Mapping, Optional

from .backends import (DEFAULT_BACKEND, DisparityBackend, backend_names, backend_record,
                       create_backend)
from .backends.options import LearnedOptions
from .backends.sgbm import SGBMOptions
from .errors import BackendError
from .obstacle import LIMITS as OBSTACLE_LIMITS, ObstacleParameters
from .plausibility import DEFAULT_MAX_MEGAPIXELS
from .row_alignment import ALIGN_RULE
from .sync import DEFAULT_SLOP
from .topics import IMAGE_TRANSPORTS
from .settings import (ParameterSpec, Value, canonical_option_name, check_device,
                       check_parameter, float_value, int_value, option_parameter,
                       option_specs, parse_options)

SGBM_PREFIX = 'sgbm.'
LEARNED_PREFIX = 'learned.'
OBSTACLE_PREFIX = 'obstacle.'
#: Node parameter prefix -> the options dataclass whose fields it holds. A backend's
#: options come from the section its options dataclass is (a subclass of).
BACKEND_SECTIONS: tuple[tuple[str, type], ...] = ((SGBM_PREFIX, SGBMOptions),
                                                  (LEARNED_PREFIX, LearnedOptions))


def _section_specs(prefix: str, options: type) -> tuple[ParameterSpec, ...]:
    """Return the node parameters of an options dataclass (all reload the model)."""
    specs = []
    for spec in option_specs(options):
        name = option_parameter(options, spec.name, prefix)
        aliases = tuple(f'{prefix}{alias}' for alias in spec.aliases)
        specs.append(ParameterSpec(name, spec.default, spec.description, spec.limits,
                                   spec.step, spec.choices, reload=True, aliases=aliases))
    return tuple(specs)


_MODEL = (
    ParameterSpec('backend', DEFAULT_BACKEND, 'Disparity backend: ' + ', '.join(backend_names())
                  + ' (of the built-in ones, sgbm is classical, the others learned). Changing '
                  'it reloads the model.', reload=True),
    ParameterSpec('weights', '', "Weights file of a learned backend; '' = the shipped "
                  'models/<backend>.safetensors. Must be empty for sgbm.', reload=True),
    ParameterSpec('device', 'auto', 'Where learned backends run: auto (CUDA when available), '
                  'cpu, cuda or cuda:N.', reload=True),
) + _section_specs(LEARNED_PREFIX, LearnedOptions)

_SGBM = _section_specs(SGBM_PREFIX, SGBMOptions)

_DEPTH = (
    ParameterSpec('min_depth', 0.0, 'Depth nearer than this many metres is published as -inf '
                  '("too close", REP 117) and its disparity as unknown; 0 = no limit.',
                  limits=(0.0, 1000.0)),
    ParameterSpec('max_depth', 0.0, 'Depth farther than this many metres is published as +inf '
                  '("nothing within range", REP 117) and its disparity as unknown; 0 = no '
                  'limit.', limits=(0.0, 100000.0)),
    ParameterSpec('check_views', True, 'Report a pair as unknown (disparity and depth NaN, no '
                  'points, no obstacle, Range NaN) when its right view does not confirm the '
                  'estimate where the left image has texture, or too little of it has texture '
                  'to tell: a black, fully covered or failing camera, topics of two different '
                  'cameras, noise in the dark; also from a check that finds left and right '
                  'swapped until one finds them the right way round (docs/ros.md).'),
    ParameterSpec('align_rows', True, 'Where the pair check (on the first pair, then every '
                  f'10 s) measures the right view\'s rows {ALIGN_RULE}, resample the right '
                  'view onto the left\'s rows before matching, until the next check (a '
                  'calibration a little off; docs/ros.md).'),
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
                  limits=OBSTACLE_LIMITS.get(name))
    for name, description in (
        ('roi', 'Window searched for obstacles, as fractions of the image: '
         '[x, y, width, height].'),
        ('min_range', 'An obstacle nearer than this (m) is too close to range: Range.range '
         'is -inf (REP 117), never a farther one; Range.min_range is this or more (also '
         'min_depth and the nearest depth the backend measures).'),
        ('max_range', 'Farther depths (m) are ignored; Range.max_range is this or less (range '
         'is +inf when nothing lies in between).'),
        ('distance_band', 'Pixels up to this many metres behind the nearest depth belong to '
         'the obstacle; also the depth jump that separates two objects.'),
        ('distance_band_fraction', 'If > 0, the distance band is at most this fraction of the '
         'depth, plus twice the depth error of disparity_noise (tighter for near objects, e.g. '
         'indoors); 0 = distance_band at every depth.'),
        ('min_area', 'Smallest obstacle in pixels; smaller blobs are noise.'),
        ('min_size', 'Smallest obstacle front area in square metres (rejects small, near '
         'mismatch blobs).'),
        ('ground_tolerance', 'Points within this height (m) of the fitted ground plane are '
         'ground, not obstacle.'),
        ('max_clearance', "An obstacle's lowest point must be at most this high (m) above "
         'the ground; 0 accepts overhanging obstacles too.'),
        ('disparity_noise', 'Assumed disparity error (px) that widens the ground tolerance '
         'and distance band with distance.'),
        ('percentile', "Low percentile of an obstacle's depths taken as its distance."),
        ('ground_region', 'Lower fraction of the image whose points fit the ground plane.'),
        ('max_ground_tilt', 'Largest angle (degrees) between the ground plane and level in '
         'the camera frame: a camera pitched down by more needs more (at the risk of taking '
         'a slanted obstacle face for ground).'),
        ('camera_height', 'Known height (m) of the camera over the ground: fitted ground '
         'planes more than a quarter off it are rejected (crate tops, furniture), and a '
         'level plane at it is used when none fits; 0 = unknown (any height; no ground '
         'removal without a fit).'),
        ('range_frame_id', "frame_id of obstacle/range; '' = the left image's, an optical "
         'frame (z forward) in which Range consumers such as rviz, taking +x as the axis, '
         'point it sideways: name a forward-x frame at the camera (docs/ros.md).'),
        ('near_guard', "Look beyond the backend's disparity range, on a 2-8x smaller pair, for "
         'surfaces nearer than it measures (holes or a farther depth in its output): the '
         'obstacle search finds them, Range -inf (too close), instead of nothing or a '
         'farther obstacle, and the pixels of those the search accepts are published too '
         'near: depth -inf, disparity unknown, no point. About 1-8 ms.'),
    ))
#: ``obstacle.*`` parameters whose value 0 stands for None in :class:`ObstacleParameters`.
ZERO_IS_NONE = frozenset({'obstacle.max_clearance', 'obstacle.camera_height'})

_OUTPUTS = (
    ParameterSpec('publish_disparity', True, 'Publish disparity (stereo_msgs/DisparityImage).'),
    ParameterSpec('publish_depth', True, 'Publish depth (32FC1 metres; NaN unknown, +inf/-inf '
                  'beyond max_depth/min_depth, REP 117).'),
    ParameterSpec('publish_obstacle', True, 'Publish obstacle/mask and obstacle/range.'),
    ParameterSpec('publish_color', True, 'Publish disparity/color (bgr8 picture).'),
    ParameterSpec('publish_points', False, 'Publish points2 (PointCloud2 xyz + rgb); costly, '
                  'off by default.'),
    ParameterSpec('points_organized', False, 'points2 organised as the image (height x width '
                  'points, NaN where the depth is unknown or outside min_depth/max_depth, '
                  'is_dense false), as stereo_image_proc and depth_image_proc publish it; false: '
                  'only the points with a depth, in one row (smaller).', read_only=True),
)

_INPUT = (
    ParameterSpec('queue_size', 5, 'Synchronizer queue size per input topic.', limits=(1, 1000),
                  read_only=True),
    ParameterSpec('approximate_sync', False, 'Pair images and camera infos by nearest stamp '
                  'instead of exact stamp.', read_only=True),
    ParameterSpec('approximate_sync_tolerance_seconds', DEFAULT_SLOP, 'Largest stamp '
                  'difference (s) within one set when approximate_sync is true: above the '
                  "cameras' stamp offset, at most half the frame period (docs/ros.md).",
                  limits=(0.0, 10.0),
                  read_only=True),
    ParameterSpec('image_transport', 'raw', 'How the images arrive: raw (sensor_msgs/Image on '
                  'left/image_rect, right/image_rect) or compressed (sensor_msgs/'
                  'CompressedImage, JPEG or PNG, on left/image_rect/compressed and '
                  'right/image_rect/compressed, as image_transport publishes them; remap the '
                  'base topics left/image_rect and right/image_rect).',
                  choices=tuple(IMAGE_TRANSPORTS), read_only=True),
    ParameterSpec('use_system_default_qos', False, 'Subscribe with the system default QoS '
                  '(reliable) instead of sensor-data QoS (best effort, REP 2003).',
                  read_only=True),
    ParameterSpec('mono16_bit_depth', 0, 'Bits used by mono16 cameras (8..16) for scaling to '
                  '8 bits; 0 = the full 16-bit range.', limits=(0, 16), read_only=True),
    ParameterSpec('max_megapixels', DEFAULT_MAX_MEGAPIXELS, 'Pairs larger than this '
                  '(megapixels) are refused with a warning before they are decoded, to keep '
                  'memory bounded; 0 = no limit.', limits=(0.0, 1000.0), read_only=True),
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


#: Alias parameter name -> the parameter it names (e.g. ``sgbm.block_size``).
ALIASES: dict[str, str] = {alias: spec.name for spec in PARAMETERS for alias in spec.aliases}
#: The parameters that have old names.
ALIASED = frozenset(ALIASES.values())


def canonical_name(name: str) -> str:
    """Return the parameter that ``name`` (a parameter or an alias) means."""
    return ALIASES.get(name, name)


#: Values under which an old name (alias) counts as not given: ``ros2 param dump`` writes the
#: unset aliases as ``null``, which rcl reads back as the string 'null' (and ``ros2 param
#: load`` as 'None').
UNSET_ALIAS_VALUES = frozenset({'null', 'None', '~', ''})


def alias_value(alias: str, value: Any) -> Any:
    """Return the value given under an old name, or None where it stands for "not given".

    The strings of :data:`UNSET_ALIAS_VALUES` count as not given only for a parameter that
    is not a string itself.
    """
    if value is None:
        return None
    unset = isinstance(value, str) and value in UNSET_ALIAS_VALUES
    return None if unset and not isinstance(SPECS[ALIASES[alias]].default, str) else value


def without_unset_aliases(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``values`` without the old names left unset (a ``ros2 param dump`` file's null)."""
    return {name: value for name, value in values.items()
            if name not in ALIASES or alias_value(name, value) is not None}


def apply_old_names(values: Mapping[str, Any], old: Mapping[str, Any],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``values`` with the values given under old names (aliases) moved to the new.

    ``old`` maps aliases to the values given under them (None: not given); ``given`` maps the
    parameters given explicitly (a parameter file, ``-p``) to their values. An alias and its
    parameter both given with different values is a ValueError: which one was meant?
    """
    merged = dict(values)
    for alias, given_value in old.items():
        value = alias_value(alias, given_value)
        if value is None:
            continue
        name = ALIASES[alias]
        if name in given and given[name] != value:
            raise ValueError(f'{alias} (the old name, {value!r}) and {name} '
                             f'({given[name]!r}) are both given: name one (a `ros2 param '
                             f'dump` file holds both: edit {name} and delete {alias})')
        merged[name] = value
    return merged


def check_value(name: str, value: Any) -> Any:
    """Return ``value`` normalised for parameter ``name`` (or an alias) or raise ValueError.

    Checks the type (ints are accepted for float parameters, bools never for numbers),
    the range, the step and the choices of the parameter.
    """
    spec = SPECS.get(canonical_name(name))
    if spec is None:
        raise ValueError(f'unknown parameter {name!r}')
    return check_parameter(spec, value, name)


def _check_names(values: Mapping[str, Any]) -> None:
    """Raise ValueError for unknown names or for two names of one parameter."""
    unknown = sorted(name for name in values if canonical_name(name) not in SPECS)
    if unknown:
        raise ValueError(f'unknown parameter(s) {unknown}')
    check_one_value_each(values)


def check_one_value_each(values: Mapping[str, Any]) -> None:
    """Raise ValueError where a parameter and its old name are given different values."""
    given: dict[str, str] = {}
    for name in values:
        canonical = canonical_name(name)
        if canonical in given and values[given[canonical]] != values[name]:
            first = given[canonical]
            raise ValueError(f'{first} ({values[first]!r}) and {name} ({values[name]!r}) name '
                             f'one parameter; give one (a `ros2 param dump` file holds both: '
                             f'edit {canonical} and delete the other)')
        given[canonical] = name


def validate(values: Mapping[str, Any]) -> dict[str, Value]:
    """Return a complete, normalised copy of ``values`` or raise ValueError/BackendError.

    Missing names take their defaults; unknown names are rejected. Beyond the per-parameter
    checks of :func:`check_value` this checks the combinations: known backend, device syntax,
    depth range order, SGBM penalties, the sync tolerance (the obstacle settings as a whole
    are checked by :func:`stereo_depth_ros.pipeline_config.check_parameters`).
    """
    checked = default_values()
    values = without_unset_aliases(values)
    _check_names(values)
    for name, value in values.items():  # messages name what the caller wrote (or its alias)
        checked[canonical_name(name)] = check_value(name, value)
    backend = checked['backend']
    if backend not in backend_names():
        raise BackendError(f'unknown backend {backend!r}; known backends: '
                           f'{", ".join(backend_names())}')
    _section_of(backend)
    check_device(str(checked['device']))
    if checked['weights'] and not backend_record(backend).needs_weights:
        raise BackendError(f"backend {backend!r} takes no weights file, but weights is "
                           f"{checked['weights']!r}; set weights to '' first")
    for prefix, options in BACKEND_SECTIONS:  # the options' combination rules
        parse_options(options, _section_values(checked, prefix, options), prefix.rstrip('.'))
    bit_depth = int_value(checked, 'mono16_bit_depth')
    if bit_depth and bit_depth < 8:
        raise ValueError(f'mono16_bit_depth must be 0 or 8..16, got {bit_depth}')
    if checked['approximate_sync'] and \
            float_value(checked, 'approximate_sync_tolerance_seconds') <= 0:
        raise ValueError('approximate_sync_tolerance_seconds must be > 0 when '
                         'approximate_sync is true')
    return checked


def backend_key(values: Mapping[str, Any]) -> tuple:
    """Return the settings that define the model: a change of the key rebuilds the backend.

    The options of the other backends' sections (``sgbm.*`` while a learned backend runs,
    ``learned.*``, ``precision`` and ``device`` while ``sgbm`` does) are not in it: changing
    them does not rebuild the backend in use.
    """
    unused = unused_parameters(str(values['backend']))
    return tuple((name, _freeze(values[name])) for name in SPECS
                 if SPECS[name].reload and name not in unused)


#: Node parameters only the learned backends read (sgbm runs in OpenCV, on the CPU).
LEARNED_ONLY = frozenset({'device'})


def unused_parameters(backend: str) -> frozenset[str]:
    """Return the node parameters of the backend sections that ``backend`` does not read.

    ``device`` too (:data:`LEARNED_ONLY`) for a backend without learned options.
    """
    every = {name for section in BACKEND_SECTIONS for name in _section_names(*section)}
    prefix, options = _section_of(backend)
    learned_only = frozenset() if issubclass(options, LearnedOptions) else LEARNED_ONLY
    return frozenset(every - set(_section_names(prefix, options))) | learned_only


def _section_names(prefix: str, options: type) -> list[str]:
    """Return the node parameters of one options dataclass."""
    return [option_parameter(options, item.name, prefix) for item in fields(options)]


def ignored_names(values: Mapping[str, Any]) -> list[str]:
    """Return the settings, not at their defaults, that the configured backend ignores."""
    return sorted(name for name in unused_parameters(str(values['backend']))
                  if _freeze(values[name]) != _freeze(SPECS[name].default))


def ignored_settings(values: Mapping[str, Any]) -> Optional[str]:
    """Return a warning naming the settings the configured backend ignores, or None.

    A parameter file tuned for ``sgbm`` (``sgbm.*``) that does not name its backend runs the
    default learned one, which reads none of them; so does ``learned.*`` under ``sgbm``.
    Values equal to their defaults are not named.
    """
    ignored = ignored_names(values)
    if not ignored:
        return None
    return ignored_note(str(values['backend']), ignored,
                        'set backend to the one they are for, or leave them out')


def ignored_note(backend: str, names: list[str], advice: str) -> str:
    """Return the line naming settings of other backends that ``backend`` ignores."""
    return f'backend {backend} ignores {", ".join(names)} (settings of other backends); {advice}'


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _section_values(values: Mapping[str, Any], prefix: str, options: type) -> dict[str, Any]:
    """Return ``{field: value}`` of one options dataclass from the parameter values."""
    return {item.name: values[option_parameter(options, item.name, prefix)]
            for item in fields(options)}


def _section_of(backend: str) -> tuple[str, type]:
    """Return the (prefix, options dataclass) of the node parameters of ``backend``."""
    record = backend_record(backend)
    for prefix, options in BACKEND_SECTIONS:
        if issubclass(record.options, options):
            return prefix, options
    sections = ' or '.join(f'{options.__name__} ({prefix}*)'
                           for prefix, options in BACKEND_SECTIONS)
    raise BackendError(
        f'backend {backend!r} has options ({record.options.__name__}) the node does not '
        f'declare: its options dataclass must subclass {sections} to run in the node, '
        'infer, process-bag and demo (README, "Adding a backend"); eval, real-bench and '
        'bench run it with --backend-option')


def backend_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the keyword options :func:`create_backend` gets for the configured backend."""
    prefix, options = _section_of(values['backend'])
    return _section_values(values, prefix, options)


def build_backend(values: Mapping[str, Any],
                  raw_options: Optional[Mapping[str, Any]] = None) -> DisparityBackend:
    """Build the backend the (validated) parameter values describe.

    ``raw_options`` are backend options without a node parameter (``--backend-option`` keys
    such as dispnet_qr's ``decode``); they are checked by the backend's options dataclass.
    Raises BackendError for a missing weights file, weights of another backend, an unusable
    device and so on (see :func:`~stereo_depth_ros.backends.create_backend`).
    """
    options = {**backend_options(values), **(raw_options or {})}
    return create_backend(values['backend'], weights=values['weights'] or None,
                          device=values['device'], **options)


def backend_option_parameter(backend: str, key: str) -> str:
    """Return the node parameter that ``--backend-option key=...`` of ``backend`` stands for.

    ``key`` (or its old name) is parameter ``sgbm.<key>`` for the sgbm backend and
    ``learned.<key>`` for the learned ones. The returned name need not exist: the caller keeps
    such keys as raw backend options (see
    :func:`stereo_depth_ros.pipeline_config.split_backend_options`).
    """
    prefix, section = _section_of(backend)
    name = canonical_option_name(section, key)
    return option_parameter(section, name, prefix) if name else f'{prefix}{key}'
