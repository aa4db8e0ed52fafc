"""Typed settings: one description per setting, one checker for every entry point.

A :class:`ParameterSpec` names a setting, its default (whose type is the setting's type), a
description and its limits. The ROS node declares its parameters from them, the CLI reads
``--backend-option KEY=VALUE`` against them and the backends' option dataclasses are built
from them (:func:`option`, :func:`option_specs`, :func:`parse_options`), so each rule is
written once, in :func:`check_parameter`. Plain Python: no torch, no rclpy.
"""

import math
import re
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, Mapping, Optional, Sequence, TypeVar

import yaml

from .errors import BackendError

#: A value a setting can hold (lists of numbers for the obstacle window).
Value = bool | int | float | str | list[float]


@dataclass(frozen=True)
class ParameterSpec:
    """One setting: name, default (whose type is the setting's type) and limits.

    ``limits`` is an inclusive ``(low, high)`` range (with ``step`` for integers, as
    ``rcl_interfaces/IntegerRange`` has), ``choices`` a closed set of strings. ``read_only``
    settings are read at start-up only. ``reload`` marks the settings of the backend:
    changing one rebuilds the model. ``aliases`` are other accepted names.
    """

    name: str
    default: Value
    description: str
    limits: Optional[tuple[float, float]] = None
    step: int = 0
    choices: Optional[tuple[str, ...]] = None
    read_only: bool = False
    reload: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def kind(self) -> type:
        """Python type of the setting (bool, int, float, str or list)."""
        return type(self.default)

    @property
    def constraints(self) -> str:
        """Return the human-readable limits (``ParameterDescriptor.additional_constraints``)."""
        parts = []
        if self.choices:
            parts.append('one of: ' + ', '.join(choice or "''" for choice in self.choices))
        if self.limits is not None:
            parts.append(f'{self.limits[0]:g} .. {self.limits[1]:g}')
        if self.step > 1:
            parts.append(f'in steps of {self.step}')
        if self.read_only:
            parts.append('read at start-up only')
        if self.aliases:
            parts.append('also accepted as: ' + ', '.join(self.aliases))
        return '; '.join(parts)


def _step_rule(low: float, step: int) -> str:
    """Return in words which values ``low + k * step`` allows ('odd', 'a multiple of 16')."""
    if low % step == 0:
        return f'a multiple of {step}'
    if step == 2:
        return 'odd'
    return f'{low:g} plus a multiple of {step}'


def check_parameter(spec: ParameterSpec, value: Any, name: Optional[str] = None) -> Any:
    """Return ``value`` normalised for ``spec`` or raise ValueError naming the setting.

    Checks the type (ints are accepted for float settings, bools never for numbers), the
    range, the step and the choices.
    """
    name = name or spec.name
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
        if not math.isfinite(value):
            raise ValueError(f'{name} must be a finite number, got {value!r}')
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
            raise ValueError(f'{name} must be {_step_rule(low, spec.step)} (within {low:g} .. '
                             f'{high:g}), got {value!r}')
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f'{name} must be one of {", ".join(spec.choices)}; got {value!r}')
    return value


def float_value(values: Mapping[str, Value], name: str) -> float:
    """Return setting ``name`` of checked ``values`` as a number; TypeError if it is none."""
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'setting {name} is not a number: {value!r}')
    return value


def int_value(values: Mapping[str, Value], name: str) -> int:
    """Return setting ``name`` of checked ``values`` as an integer; TypeError if it is none."""
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'setting {name} is not an integer: {value!r}')
    return value


# ------------------------------------------------------------------ option dataclasses

_SPEC_KEY = 'stereo_depth_ros.setting'


def option(default: Value, description: str, *, limits: Optional[tuple[float, float]] = None,
           step: int = 0, choices: Optional[tuple[str, ...]] = None,
           aliases: tuple[str, ...] = (), parameter: str = '') -> Any:
    """Return a dataclass field for a backend option with its description and limits.

    ``parameter`` names the node parameter of the option when it is not the usual
    ``<prefix>.<field name>`` (e.g. the top-level ``precision``).
    """
    spec = ParameterSpec('', default, description, limits=limits, step=step,
                         choices=choices, aliases=aliases)
    return field(default=default, metadata={_SPEC_KEY: spec, 'parameter': parameter})


def _spec_of(item: Field) -> ParameterSpec:
    spec = item.metadata.get(_SPEC_KEY)
    if spec is None or item.default is MISSING:
        raise TypeError(f'option field {item.name!r} was not made with settings.option()')
    return ParameterSpec(item.name, spec.default, spec.description, spec.limits, spec.step,
                         spec.choices, aliases=spec.aliases)


def option_specs(options: type) -> tuple[ParameterSpec, ...]:
    """Return the :class:`ParameterSpec` of every field of an options dataclass."""
    if not is_dataclass(options):
        raise TypeError(f'{options!r} is not an options dataclass')
    return tuple(_spec_of(item) for item in fields(options))


def option_parameter(options: type, name: str, prefix: str) -> str:
    """Return the node parameter name of option ``name`` of ``options`` (``prefix + name``)."""
    for item in fields(options):
        if item.name == name:
            return item.metadata.get('parameter') or f'{prefix}{name}'
    raise KeyError(name)


def canonical_option_name(options: type, key: str) -> Optional[str]:
    """Return the field name that ``key`` (a field name or an alias) means, or None."""
    for spec in option_specs(options):
        if key == spec.name or key in spec.aliases:
            return spec.name
    return None


OptionsT = TypeVar('OptionsT')


def parse_options(options: type[OptionsT], values: Mapping[str, Any], owner: str) -> OptionsT:
    """Return ``options(**values)`` with every value checked; BackendError naming the problem.

    Keys may be field names or their aliases; an unknown key or two names for one option
    are errors. The dataclass's own ``validate()`` (combination rules) runs last.
    """
    specs = {spec.name: spec for spec in option_specs(options)}
    checked: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in values.items():
        name = canonical_option_name(options, key)
        if name is None:
            known = ', '.join(sorted(specs))
            raise BackendError(f'unknown {owner} option {key!r}; known: {known}')
        if name in given:
            raise BackendError(f'{owner} option {name!r} is given twice (as {given[name]!r} '
                               f'and {key!r})')
        given[name] = key
        try:
            checked[name] = check_parameter(specs[name], value, f'{owner} {key}')
        except ValueError as error:
            raise BackendError(str(error)) from None
    result = options(**checked)
    validate = getattr(result, 'validate', None)
    if validate is not None:
        try:
            validate()
        except BackendError as error:
            # Its rules name the bare option ("near_scale must be ..."); say whose, as the
            # checks above do ("learned near_scale", "costnet near_scale").
            text = str(error)
            if any(text.startswith(f'{name} ') for name in specs):
                raise BackendError(f'{owner} {text}') from None
            raise
    return result


# ------------------------------------------------------------------ device and precision

#: Where torch runs: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
#: Numeric precisions of the learned backends; ``auto`` is fp32 on the CPU, fp16 on CUDA.
PRECISION_CHOICES = ('auto', 'fp32', 'bf16', 'fp16')


def check_device(device: str) -> str:
    """Return ``device`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else ValueError."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ValueError(f'device must be auto, cpu, cuda or cuda:N; got {device!r}')
    return device


def parse_key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings of option ``flag`` into a dict of YAML scalars (int, float...).

    Raises ValueError naming ``flag`` for a pair without ``=`` or a value that is not YAML.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'{flag} needs KEY=VALUE, got {pair!r}')
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, 'problem', None) or 'not valid YAML'
            raise ValueError(f'{flag} {pair!r}: the value is not valid YAML '
                             f'({problem})') from None
    return options
