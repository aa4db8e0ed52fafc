"""One pipeline configuration for every entry point: the node's parameters -> a pipeline.

The node's parameter values (the flat dotted names of
:data:`~stereo_depth_ros.node_config.PARAMETERS`) describe a whole pipeline: the backend and
its options, the depth range, the obstacle settings and the enabled output topics.
:func:`configure_pipeline` turns them into a :class:`ConfiguredPipeline`; the node (through
:class:`PipelineManager`) and ``stereo-depth process-bag``, ``infer`` and ``demo`` all build
their pipeline with it. :func:`read_params_file` reads the node's YAML parameter file
(``config/depth.yaml``) and :func:`apply_overrides` lays the command line's backend flags over
it, so a bag processed offline with ``--params-file`` gets the settings the live node gets.
"""

import logging
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from .backends import DisparityBackend
from .errors import DatasetError
from .node_config import (OBSTACLE_PREFIX, SPECS, ZERO_IS_NONE, Value, backend_key,
                          backend_option_parameter, build_backend, canonical_name,
                          check_one_value_each, check_value, default_values, ignored_names,
                          ignored_note, ignored_settings, validate, without_unset_aliases)
from .obstacle import ObstacleParameters
from .names import (NODE_NAME, ROS_PARAMETERS, may_name_the_node, names_the_node,
                    node_key_pattern, node_sections)
from .pipeline import check_depth_range, StereoPipeline
from .settings import float_value, int_value
from .topics import enabled_topics
from .visualize import ColourScale

LOGGER = logging.getLogger('stereo_depth_ros.params')

#: Parameters ROS itself gives every node; a params file may set them, the pipeline ignores
#: them (as the node does).
ROS_OWN_PARAMETERS = ('use_sim_time', 'qos_overrides.', 'start_type_description_service')

BackendFactory = Callable[[Mapping[str, Any]], DisparityBackend]


def obstacle_parameters(values: Mapping[str, Any]) -> ObstacleParameters:
    """Return the checked :class:`ObstacleParameters` of the ``obstacle.*`` values.

    Fields without a parameter keep their defaults; 0 means None for :data:`ZERO_IS_NONE`.
    """
    known = {f.name for f in fields(ObstacleParameters)}
    kwargs = {}
    for key in SPECS:
        if key.startswith(OBSTACLE_PREFIX):
            field_name = key[len(OBSTACLE_PREFIX):]
            if field_name not in known:
                raise ValueError(f'ObstacleParameters has no field {field_name!r}')
            value = values[key]
            if isinstance(value, list):
                value = tuple(value)
            if key in ZERO_IS_NONE and not value:
                value = None
            kwargs[field_name] = value
    params = ObstacleParameters(**kwargs)
    try:
        params.validate()
    except ValueError as error:
        raise ValueError(f'invalid obstacle.* parameters: {error}') from None
    return params


def obstacle_parameters_from_options(options: Mapping[str, Any]) -> ObstacleParameters:
    """Return the node's default obstacle settings with ``{KEY: value}`` ones over them.

    Checked as the node checks its ``obstacle.KEY`` parameters (names, limits, the settings
    as a whole).
    """
    values = {**default_values(), **{f'{OBSTACLE_PREFIX}{key}': value
                                     for key, value in options.items()}}
    return obstacle_parameters(check_parameters(values))


def check_parameters(values: Mapping[str, Any]) -> dict[str, Value]:
    """Return the complete, checked parameter values, or raise ValueError/BackendError.

    :func:`~stereo_depth_ros.node_config.validate` plus the obstacle settings as a whole
    (ROI inside the image, ``min_range < max_range``) and with the depth range (an obstacle
    search that could see no depth at all is refused).
    """
    checked = validate(values)
    check_depth_range(float_value(checked, 'min_depth') or None,
                      float_value(checked, 'max_depth') or None, obstacle_parameters(checked))
    return checked


def make_pipeline(values: Mapping[str, Any], backend: DisparityBackend,
                  colour_scale: Optional[ColourScale] = None) -> StereoPipeline:
    """Return a pipeline of ``backend`` with the depth range and obstacle settings of values.

    ``colour_scale``: the stream's, where this pipeline replaces one of the same stream.
    """
    return StereoPipeline(backend, obstacle_params=obstacle_parameters(values),
                          min_depth=values['min_depth'] or None,
                          max_depth=values['max_depth'] or None, colour_scale=colour_scale,
                          check_views=values['check_views'], align_rows=values['align_rows'])


@dataclass(frozen=True)
class ConfiguredPipeline:
    """A pipeline and what configured it: the checked values and the enabled output topics."""

    values: dict[str, Value]
    pipeline: StereoPipeline
    topics: frozenset[str]


def configure_pipeline(values: Mapping[str, Any],
                       raw_options: Optional[Mapping[str, Any]] = None,
                       backend: Optional[DisparityBackend] = None,
                       backend_factory: BackendFactory = build_backend,
                       colour_scale: Optional[ColourScale] = None) -> ConfiguredPipeline:
    """Return the pipeline the node's parameter ``values`` describe (missing ones: defaults).

    ``backend`` reuses an already built backend (it must be the one the values describe);
    otherwise ``backend_factory`` builds it, or, with ``raw_options`` (backend options that
    have no node parameter, e.g. dispnet_qr's ``decode``),
    :func:`~stereo_depth_ros.node_config.build_backend`. ``colour_scale`` carries a stream's
    colour scale over from the pipeline this one replaces. Raises ValueError/BackendError
    naming a bad value.
    """
    checked = check_parameters(values)
    if backend is None:
        backend = (build_backend(checked, raw_options) if raw_options
                   else backend_factory(checked))
    return ConfiguredPipeline(checked, make_pipeline(checked, backend, colour_scale),
                              enabled_topics(checked))


def default_topics() -> frozenset[str]:
    """Return the output topics the node publishes with its default parameters."""
    return enabled_topics(default_values())


# --------------------------------------------------------------------------- parameter files


def _is_ros_own(name: str) -> bool:
    return any(name == own or (own.endswith('.') and name.startswith(own))
               for own in ROS_OWN_PARAMETERS)


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Return nested dicts as ``{'a.b': value}``; lists and scalars are values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{name}.'))
        else:
            flat[name] = value
    return flat


def _node_sections(document: Any, where: str, node: Optional[str] = None
                   ) -> tuple[list[tuple[str, Mapping[str, Any]]], list[str]]:
    """Return the ``(key, ros__parameters)`` sections for the node in a parsed file, and warnings.

    ``node`` is the node's fully qualified name: the sections whose keys match it as rcl
    matches them. Without it, every section keyed for ``stereo_depth_node`` in any namespace
    or by a wildcard, but not those of two different namespaces: which camera's would it be?
    The warnings say when the node, launched in a namespace, would not see the sections.
    """
    if not isinstance(document, dict):
        raise DatasetError(f'{where} must hold a mapping of node names to ros__parameters')
    warnings = []
    if ROS_PARAMETERS in document:
        sections = [(NODE_NAME, document[ROS_PARAMETERS])]
        warnings.append(f'{where} holds "{ROS_PARAMETERS}" without a node key: read here, but '
                        f'ROS 2 needs one; key it "/**/{NODE_NAME}" for the node')
    else:
        found = node_sections(document)
        keys = ', '.join(key for key, _ in found) or 'none'
        if node:
            sections = [(key, body) for key, body in found
                        if node_key_pattern(key).fullmatch(node)]
            if not sections:
                raise DatasetError(f'{where} has no section for {node} (its node keys: {keys})')
        else:
            sections = [(key, body) for key, body in found if may_name_the_node(key)]
            named = sorted({'/' + key.strip('/') for key, _ in sections if '*' not in key})
            if len(named) > 1:
                raise DatasetError(
                    f'{where} has sections for {" and ".join(named)}: say which node\'s '
                    f'settings to use with --params-node (e.g. --params-node {named[0]})')
            if any(key.strip('/') == NODE_NAME for key, _ in sections):
                warnings.append(
                    f'{where}: the key "{NODE_NAME}" matches the node only in the root '
                    f'namespace (the launch file puts it in /stereo); key it '
                    f'"/**/{NODE_NAME}" to match it in any namespace')
        if not sections:
            raise DatasetError(
                f'{where} has no "{NODE_NAME}: {ROS_PARAMETERS}:" section (nor '
                f'"/**/{NODE_NAME}"); node keys: {keys}')
    for _, section in sections:
        if not isinstance(section, dict):
            raise DatasetError(f'{where}: {ROS_PARAMETERS} must be a mapping of parameters')
    return sections, warnings


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_ros_type(where: str, name: str, kind: type, value: Any) -> None:
    """Refuse an integer where the node declares a double (array), as ROS 2 itself does.

    The node's parameters are typed: ROS 2 refuses ``max_depth: 40`` for a double when the
    node starts, so the file is refused here too, before it reaches a robot. ``value`` has
    passed :func:`check_parameters` (a list parameter is a list of numbers).
    """
    if kind is float and _is_integer(value):
        raise DatasetError(f'{where}: {name} is a floating-point parameter; write {value}.0 '
                           f'(ROS 2 refuses the integer {value} for it)')
    if kind is list and any(_is_integer(v) for v in value):
        raise DatasetError(f'{where}: {name} is a list of floating-point numbers; write each '
                           f'with a decimal point, e.g. {[float(v) for v in value]} (ROS 2 '
                           'refuses integers in it)')


def read_params_file(path: str | Path, node: Optional[str] = None) -> dict[str, Value]:
    """Return the node parameters a ROS 2 YAML parameter file sets, with dotted names.

    Reads ``config/depth.yaml``'s format: ``/**/stereo_depth_node: ros__parameters: {...}``
    (a plain ``stereo_depth_node`` key, a namespaced one or a wildcard such as ``/**`` also
    match; sections that match are merged in file order), or a file holding just
    ``ros__parameters``; the plain key and the bare section are read with a warning, as the
    node would not see them in the launch file's namespace. ``node`` (a fully qualified name,
    e.g. ``/front/stereo_depth_node``) takes the sections whose keys match it as rcl does; it
    is needed where the file has sections for the node in two namespaces. Nested dicts become
    dotted names (``sgbm: {disparity_range: 64}`` is ``sgbm.disparity_range``). ROS's own
    parameters (``use_sim_time``, ``qos_overrides.*``) are ignored, and so, with a warning,
    are other nodes' parameters in a wildcard's section. A missing file, bad YAML, unknown
    names, bad values, or an integer for a floating-point parameter (which ROS 2 refuses)
    raise DatasetError naming the file.
    """
    path = Path(path)
    where = f'params file {path}'
    if not path.is_file():
        raise DatasetError(f'{where} does not exist')
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, 'problem_mark', None)
        line = f' at line {mark.line + 1}' if mark is not None else ''
        problem = getattr(error, 'problem', None) or 'not valid YAML'
        raise DatasetError(f'{where} is not valid YAML{line}: {problem}') from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f'cannot read {where}: {error}') from None
    values: dict[str, Any] = {}
    sections, warnings = _node_sections(document, where, node)
    foreign: dict[str, list[str]] = {}  # key -> the other nodes' parameters there
    for key, section in sections:
        given = without_unset_aliases({name: value for name, value in _flatten(section).items()
                                       if not _is_ros_own(name)})
        if not names_the_node(key):  # a wildcard's section holds other nodes' settings too
            foreign[key] = sorted(name for name in given if canonical_name(name) not in SPECS)
            given = {name: value for name, value in given.items() if name not in foreign[key]}
        values.update(given)
    unknown = sorted(name for name in values if canonical_name(name) not in SPECS)
    if unknown:
        raise DatasetError(f'{where}: unknown parameter(s) {", ".join(unknown)} '
                           '(docs/ros.md lists the parameters)')
    try:
        check_parameters(values)
    except ValueError as error:
        raise DatasetError(f'{where}: {error}') from None
    for name, value in values.items():
        _check_ros_type(where, name, SPECS[canonical_name(name)].kind, value)
    warnings += [f'{where}: ignoring {", ".join(names)} under "{key}": not parameters of '
                 f'{NODE_NAME} (the node ignores them too)'
                 for key, names in foreign.items() if names]
    for warning in warnings:  # only for a file that is otherwise good: bad input stays one line
        LOGGER.warning(warning)
    return {canonical_name(name): value for name, value in values.items()}


def split_backend_options(backend: str, options: Mapping[str, Any]
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--backend-option`` settings into node parameters and raw backend options.

    Each key maps to a parameter by
    :func:`~stereo_depth_ros.node_config.backend_option_parameter`; keys whose parameter does
    not exist (e.g. dispnet_qr's ``decode``) stay raw options for the backend factory.
    """
    parameters: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for key, value in options.items():
        name = backend_option_parameter(backend, key)
        if name in SPECS:
            parameters[name] = value
        else:
            raw[key] = value
    return parameters, raw


def apply_overrides(values: Mapping[str, Any], backend: Optional[str] = None,
                    weights: Optional[str] = None, device: Optional[str] = None,
                    precision: Optional[str] = None,
                    options: Optional[Mapping[str, Any]] = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lay command-line backend settings (None: not given) over parameter ``values``.

    Return the parameter values and the raw backend options (see
    :func:`split_backend_options`). A ``backend`` other than the file's drops the file's
    ``weights`` (they belong to the file's backend) unless ``weights`` is given too.
    """
    merged = dict(values)
    old_backend = merged.get('backend', SPECS['backend'].default)
    if backend is not None:
        merged['backend'] = backend
        if backend != old_backend and weights is None:
            merged.pop('weights', None)
    for name, value in (('weights', weights), ('device', device), ('precision', precision)):
        if value is not None:
            merged[name] = value
    parameters, raw = split_backend_options(str(merged.get('backend', old_backend)),
                                            options or {})
    merged.update(parameters)
    return merged, raw


# --------------------------------------------------------------------------- the node's runtime


def _same_value(name: str, new: Any, current: Any) -> bool:
    """Whether ``new``, normalised as parameter ``name``, equals the current value.

    Both are then what the parameter reads (floats for doubles and for the numbers of a
    list). A value the parameter refuses is not the same (it is then refused with its
    reason).
    """
    try:
        return bool(check_value(name, new) == current)
    except ValueError:
        return False


class PipelineManager:
    """Own the node's validated parameter values and the pipeline built from them.

    :meth:`apply` is what the node's on-set-parameters callback calls: it validates the
    change, builds a new backend when a model setting changed (before accepting anything)
    and swaps the pipeline in one assignment, so the inference thread always sees either
    the old or the new pipeline, whole. On any error nothing changes.
    """

    def __init__(self, values: Mapping[str, Any],
                 backend_factory: BackendFactory = build_backend) -> None:
        self._factory = backend_factory
        self._lock = threading.Lock()
        self._config = configure_pipeline(values, backend_factory=backend_factory)

    @property
    def pipeline(self) -> StereoPipeline:
        """Return the pipeline in use; :meth:`apply` replaces it, never mutates it."""
        return self._config.pipeline

    @property
    def values(self) -> dict[str, Value]:
        """A copy of the current parameter values."""
        with self._lock:
            return {name: list(value) if isinstance(value, list) else value
                    for name, value in self._config.values.items()}

    def value(self, name: str) -> Value:
        """Return the current value of parameter ``name``."""
        return self._config.values[name]

    def number(self, name: str) -> float:
        """Return the current value of the numeric parameter ``name``."""
        return float_value(self._config.values, name)

    def integer(self, name: str) -> int:
        """Return the current value of the integer parameter ``name``."""
        return int_value(self._config.values, name)

    def apply(self, changes: Mapping[str, Any]) -> list[str]:
        """Validate and apply parameter ``changes``; return log lines describing the result.

        Names that are not node parameters (e.g. ``qos_overrides.*``, ``use_sim_time``) are
        ignored. Read-only parameters cannot change. Raises ValueError/BackendError (or
        whatever building the new backend raised) with the reason; then nothing changed.
        """
        known = {name: value for name, value in changes.items() if canonical_name(name) in SPECS}
        check_one_value_each(known)  # before the names merge: which one was meant?
        relevant = {canonical_name(name): value for name, value in known.items()}
        with self._lock:
            current = self._config.values
            # A value set again (e.g. the node mirroring an alias onto its own name) is no
            # change: nothing to log or rebuild.
            relevant = {name: value for name, value in relevant.items()
                        if not _same_value(name, value, current[name])}
            if not relevant:
                return []
            for name in relevant:  # each one a change now
                if SPECS[name].read_only:
                    raise ValueError(f'{name} is read at start-up only; restart the node '
                                     'to change it')
            candidate = check_parameters({**current, **relevant})
            backend: Optional[DisparityBackend] = self._config.pipeline.backend
            notes = []
            if backend_key(candidate) != backend_key(current):
                backend = self._factory(candidate)
                notes.append(f'loaded backend {backend.describe()}')
            # At run time a setting the backend ignores is named once: when it is set, or
            # when a switch of backend leaves it unused; not again on later switches.
            newly = sorted(set(ignored_names(candidate)) - set(ignored_names(current)))
            if newly:
                notes.append(ignored_note(str(candidate['backend']), newly,
                                          'they apply when backend is set to theirs'))
            # The same stream goes on: its colours keep their scale.
            self._config = configure_pipeline(
                candidate, backend=backend,
                colour_scale=self._config.pipeline.colour_scale)
        changed = ', '.join(f'{name}={value!r}' for name, value in relevant.items())
        return [f'parameters set: {changed}'] + notes

    def enabled_topics(self) -> frozenset[str]:
        """Return the output topics whose ``publish_*`` switch is on."""
        return self._config.topics

    def ignored_settings(self) -> Optional[str]:
        """Return the warning about settings the backend in use ignores, or None."""
        return ignored_settings(self._config.values)
