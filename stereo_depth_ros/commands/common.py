"""Argument helpers shared by several sub-commands."""

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

from ..backends import DEFAULT_BACKEND, DisparityBackend, backend_names, create_backend
from ..camera import StereoCameraModel
from ..errors import BackendError, DatasetError
from ..names import NODE_NAME, check_namespace
from ..node_config import SPECS, ignored_settings
from ..pipeline_config import LOGGER, apply_overrides, configure_pipeline, \
    ConfiguredPipeline, read_params_file
from ..plausibility import DEFAULT_MAX_MEGAPIXELS
from ..row_alignment import ALIGN_RULE
from ..settings import (PRECISION_CHOICES, check_device, float_value, int_value,
                        parse_key_values)
from ..sync import DEFAULT_SLOP


def _device(text: str) -> str:
    """Argparse type of ``--device``: the one device rule of :func:`check_device`."""
    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_argument(parser: argparse.ArgumentParser,
                        what: str = 'where learned backends run',
                        default: Optional[str] = 'auto') -> None:
    """Add ``--device`` (auto, cpu, cuda or cuda:N)."""
    parser.add_argument('--device', default=default, type=_device, metavar='DEVICE',
                        help=f'{what}: auto (CUDA when available), cpu, cuda or cuda:N '
                             f'(default: auto)')


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--precision`` (the learned backends' precision choices)."""
    parser.add_argument('--precision', default=None, choices=PRECISION_CHOICES,
                        help='learned backends: numeric precision (default auto: fp32 on '
                             'CPU, fp16 on CUDA; bf16 is never chosen by itself)')


def add_backend_arguments(parser: argparse.ArgumentParser, default: str = DEFAULT_BACKEND,
                          params_file: bool = False) -> None:
    """Add ``--backend``, ``--weights``, ``--device``, ``--precision``, ``--backend-option``.

    With ``params_file`` also ``--params-file``; the backend flags then default to the file's
    values (and the node's defaults), and override them when given: read them with
    :func:`pipeline_from_args`.
    """
    if params_file:
        parser.add_argument('--params-file', default=None, metavar='FILE',
                            help="the node's YAML parameter file (e.g. config/depth.yaml): "
                                 'backend, depth range, obstacle and output settings as the '
                                 'node would use them; the backend flags below override it')
        parser.add_argument('--params-node', default=None, metavar='NAME',
                            help="with --params-file: the node's full name (as `ros2 node "
                                 "list` shows it, e.g. /front/stereo_depth_node) whose "
                                 'sections apply, matched as ROS 2 does; needed where the file '
                                 'has sections for the node in two namespaces (default: every '
                                 'section for stereo_depth_node or a wildcard)')
    parser.add_argument('--backend', default=None if params_file else default,
                        help=f'disparity backend: {", ".join(backend_names())} '
                             f'(default: {default})')
    parser.add_argument('--weights', default=None,
                        help='weights file (default: the shipped models/<backend>.safetensors)')
    add_device_argument(parser, default=None if params_file else 'auto')
    add_precision_argument(parser)
    parser.add_argument('--backend-option', action='append', default=[], metavar='KEY=VALUE',
                        help='backend option, repeatable (e.g. disparity_range=64 for sgbm; '
                             '`stereo-depth backends` lists each backend\'s options)')


def add_align_rows_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-align-rows``: score the pairs as they come, rows off or not."""
    parser.add_argument('--no-align-rows', dest='align_rows', action='store_false',
                        help='match each pair as it comes; by default, as the node\'s '
                             'align_rows, a right view whose rows the pair check measures '
                             f'{ALIGN_RULE}, is resampled onto the left\'s rows first')


def aligned_rows_line(names: Sequence[str], total: int) -> str:
    """Return the line naming the pairs whose right view was put on the left's rows."""
    shown = ', '.join(names[:10]) + (f' and {len(names) - 10} more' if len(names) > 10 else '')
    return (f'rows aligned: {len(names)} of {total} pairs had their right view resampled onto '
            f'the left\'s rows first ({shown}; --no-align-rows scores them as they come)')


def refuse_given_flags(flags: Sequence[tuple[str, Any]], applies: str) -> None:
    """Raise BackendError naming the ``(flag, value)`` given (truthy) that would be ignored.

    ``applies`` ends the line: to what they apply, and why that is not there.
    """
    given = [flag for flag, value in flags if value]
    if given:
        verb = 'applies' if len(given) == 1 else 'apply'
        raise BackendError(f'{", ".join(given)} {verb} {applies}')


#: Keys that are no backend option but a setting of its own, and the flag that gives it.
#: (:func:`~stereo_depth_ros.backends.create_backend` takes them as arguments of their own.)
_NOT_BACKEND_OPTIONS = {'name': '--backend', 'backend': '--backend', 'weights': '--weights',
                        'device': '--device'}


def parse_backend_options(pairs: list[str], flag: str = '--backend-option') -> dict[str, Any]:
    """Turn ``--backend-option KEY=VALUE`` strings (of ``flag``) into a dict of YAML scalars.

    Raises BackendError for a key that has a flag of its own (``weights=``: ``--weights``).
    """
    options = parse_key_values(pairs, flag)
    for key, own in _NOT_BACKEND_OPTIONS.items():
        if key in options:
            raise BackendError(f'{flag} {key}=... is not a backend option: give it with '
                               f'{own}')
    return options


def backend_from_args(args: argparse.Namespace) -> DisparityBackend:
    """Build the backend the parsed arguments name."""
    options = parse_backend_options(getattr(args, 'backend_option', []))
    if getattr(args, 'precision', None):
        options['precision'] = args.precision
    return create_backend(args.backend, weights=args.weights, device=args.device, **options)


def pipeline_from_args(args: argparse.Namespace) -> ConfiguredPipeline:
    """Build the pipeline of ``--params-file`` (if given) with the backend flags over it.

    The node's own function builds it
    (:func:`~stereo_depth_ros.pipeline_config.configure_pipeline`), so the settings are those
    the node would use with that file. ``--backend-option KEY=VALUE`` sets node parameter
    ``sgbm.KEY`` or ``learned.KEY``; a key without such a parameter goes to the backend as it
    is (e.g. dispnet_qr's ``decode``).
    """
    node = None
    if args.params_node is not None:
        refuse_given_flags([] if args.params_file else [('--params-node', True)],
                           'to --params-file, which is not given')
        node = check_namespace(args.params_node, '--params-node')
        if not node:
            raise DatasetError(f'--params-node {args.params_node!r} names no node; give its '
                               f'full name, e.g. /stereo/{NODE_NAME}')
    values = read_params_file(args.params_file, node) if args.params_file else {}
    values, raw = apply_overrides(values, backend=args.backend, weights=args.weights,
                                  device=args.device, precision=args.precision,
                                  options=parse_backend_options(args.backend_option))
    configured = configure_pipeline(values, raw_options=raw)
    ignored = ignored_settings(configured.values)
    if ignored:
        LOGGER.warning(ignored)
    return configured


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``--size HxW`` (e.g. ``384x1248``, height first as in numpy) into (height, width)."""
    try:
        height, width = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise ValueError(f'--size must be HEIGHTxWIDTH like 384x1248, got {text!r}') from None
    if height < 16 or width < 16:
        raise ValueError(f'--size must be at least 16x16, got {text!r}')
    return height, width


def _number(text: str) -> float:
    """Return ``text`` as a float, NaN where it is none (which every range check refuses)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _megapixels(text: str) -> float:
    """Return ``text`` as a size limit within the node parameter's (an argparse type).

    A negative or NaN limit would compare as no limit at all.
    """
    limits = SPECS['max_megapixels'].limits
    assert limits is not None
    low, high = limits
    value = _number(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a number of megapixels from {low:g} (no limit) to {high:g}')
    return value


def add_size_limit_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-megapixels``, the input size refused before anything runs."""
    parser.add_argument('--max-megapixels', type=_megapixels, default=None, metavar='MP',
                        help='refuse images larger than this many megapixels, before '
                             'running the backend (memory grows with the size; default: '
                             "--params-file's max_megapixels, else "
                             f'{DEFAULT_MAX_MEGAPIXELS:g}; 0 = no limit)')


def input_settings(args: argparse.Namespace,
                   configured: ConfiguredPipeline) -> tuple[float, Optional[int]]:
    """Return (max megapixels, mono16 bit depth or None) of the flags, else the file's.

    The node reads ``max_megapixels`` and ``mono16_bit_depth`` from its parameter file; a
    command given ``--params-file`` does the same where the flag is not given.
    """
    size = args.max_megapixels
    if size is None:
        size = float_value(configured.values, 'max_megapixels')
    bits = args.mono16_bit_depth
    if bits is None:
        bits = int_value(configured.values, 'mono16_bit_depth') or None
    return size, bits


def _bit_depth(text: str) -> int:
    """Return ``text`` as a sensor bit depth, 8..16 (an argparse type)."""
    value = _bounded_int(text, 8, 'a bit depth of 8 to 16')
    if value > 16:
        raise argparse.ArgumentTypeError(f'{text!r} is not a bit depth of 8 to 16')
    return value


def add_bit_depth_argument(parser: argparse.ArgumentParser, what: str,
                           params_file: bool = False) -> None:
    """Add ``--mono16-bit-depth``: the significant bits of 16-bit ``what``.

    ``params_file``: the command reads ``--params-file``, whose ``mono16_bit_depth`` is the
    default (:func:`input_settings`).
    """
    default = ("--params-file's mono16_bit_depth, else " if params_file else '')
    parser.add_argument('--mono16-bit-depth', type=_bit_depth, default=None, metavar='BITS',
                        help=f'significant bits of 16-bit {what}, 8-16 (a 12-bit sensor: 12; '
                             f'default: {default}the full 16-bit range)')


class CalibrationFlags(NamedTuple):
    """``--fx``, ``--baseline`` and ``--doffs`` of a command that takes a pair's calibration."""

    fx: float
    baseline: float
    #: ``cx_right - cx_left`` (px), Middlebury's ``doffs``: depth = fx B / (d + doffs).
    doffs: float

    def camera(self, width: int, height: int) -> StereoCameraModel:
        """Return the camera model of a ``width`` x ``height`` pair, principal point centred."""
        return StereoCameraModel.from_focal_baseline(self.fx, self.baseline, width, height,
                                                     doffs=self.doffs)


def add_calibration_arguments(parser: argparse.ArgumentParser, fx_help: str) -> None:
    """Add ``--fx``, ``--baseline`` and ``--doffs`` (read by :func:`calibration_flags`)."""
    parser.add_argument('--fx', type=float, default=None, help=fx_help)
    parser.add_argument('--baseline', type=float, default=None, help='baseline in metres')
    parser.add_argument('--doffs', type=float, default=None, metavar='PX',
                        help="with --fx and --baseline: the right principal point's x minus the "
                             "left's, px (Middlebury calib.txt's doffs; depth = fx * baseline "
                             '/ (disparity + doffs); default 0)')


def calibration_flags(args: argparse.Namespace) -> Optional[CalibrationFlags]:
    """Return ``--fx``/``--baseline``/``--doffs``, or None where none is given.

    Checked before any image is read: fx and baseline both or neither, each positive and
    finite; doffs finite, and only with them.
    """
    if (args.fx is None) != (args.baseline is None):
        raise ValueError('give both --fx and --baseline, or neither')
    if args.fx is None:
        if args.doffs is not None:
            raise ValueError('--doffs applies with --fx and --baseline (pairs without '
                             'camera_info): give those too, or leave --doffs out')
        return None
    for flag, value, unit in (('--fx', args.fx, 'px'), ('--baseline', args.baseline, 'm')):
        if not 0 < value < math.inf:
            raise ValueError(f'{flag} must be a positive number of {unit}, got {value:g}')
    doffs = 0.0 if args.doffs is None else float(args.doffs)
    if not math.isfinite(doffs):
        raise ValueError(f'--doffs must be a finite number of px, got {doffs:g}')
    return CalibrationFlags(float(args.fx), float(args.baseline), doffs)


def positive_int(text: str) -> int:
    """Return ``text`` as an integer of at least 1 (an argparse type: errors name the flag)."""
    return _bounded_int(text, 1, 'a whole number of at least 1')


def non_negative_int(text: str) -> int:
    """Return ``text`` as an integer of at least 0 (an argparse type)."""
    return _bounded_int(text, 0, 'a whole number of at least 0')


def refuse_lone_slop(slop: float | None, approximate: bool) -> None:
    """Raise ValueError where ``--slop`` is given but pairing is exact (it would be ignored)."""
    if slop is not None and not approximate:
        raise ValueError(f'--slop {slop:g} applies to approximate sync, which is off here: add '
                         '--approximate-sync (exact stamps pair without a slop)')


def approximate_slop(args: argparse.Namespace) -> float | None:
    """Return the slop of ``--approximate-sync`` (``--slop`` or the default), None for exact."""
    refuse_lone_slop(args.slop, args.approximate_sync)
    if not args.approximate_sync:
        return None
    return DEFAULT_SLOP if args.slop is None else float(args.slop)


def positive_float(text: str) -> float:
    """Return ``text`` as a finite number above 0 (an argparse type: errors name the flag)."""
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f'{text!r} is not a finite number above 0')
    return value


def _bounded_int(text: str, lowest: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not {what}') from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f'{text!r} is not {what}')
    return value


def check_output_folder(path: str | Path, option: str = '--out-dir') -> Path:
    """Return ``path`` as a Path if a folder can be created or used there; else raise.

    Checked before any computation, so a bad ``--out-dir`` does not waste it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DatasetError(f'{option} {path} is an existing file, not a folder')
    if path.is_symlink() and not path.exists():
        raise DatasetError(f'{option} {path} is a link to nothing ({os.readlink(path)})')
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DatasetError(f'{option} {path}: {parent} is a file, not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DatasetError(f'{option} {path}: {parent} is not writable')
    return path


def strict_json(value: Any, indent: Optional[int] = None) -> str:
    """Return ``value`` as strict JSON: NaN and infinities become null."""
    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: clean(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(inner) for inner in item]
        return item
    return json.dumps(clean(value), indent=indent, allow_nan=False)


def json_line(value: Any) -> str:
    """Return ``value`` as one line of strict JSON: NaN and infinities become null."""
    return strict_json(value)
