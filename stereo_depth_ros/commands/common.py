"""Argument helpers shared by several sub-commands."""

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from ..backends import DisparityBackend, backend_names, create_backend
from ..errors import DatasetError
from ..plausibility import DEFAULT_MAX_MEGAPIXELS
from ..settings import PRECISION_CHOICES, check_device


def _device(text: str) -> str:
    """Argparse type of ``--device``: the one device rule of :func:`check_device`."""
    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_argument(parser: argparse.ArgumentParser,
                        what: str = 'where learned backends run') -> None:
    """Add ``--device`` (auto, cpu, cuda or cuda:N)."""
    parser.add_argument('--device', default='auto', type=_device, metavar='DEVICE',
                        help=f'{what}: auto (CUDA when available), cpu, cuda or cuda:N '
                             f'(default: auto)')


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--precision`` (the learned backends' precision choices)."""
    parser.add_argument('--precision', default=None, choices=PRECISION_CHOICES,
                        help='learned backends: numeric precision (default auto: fp32 on '
                             'CPU, fp16 on CUDA; bf16 is never chosen by itself)')


def add_backend_arguments(parser: argparse.ArgumentParser, default: str = 'sgbm') -> None:
    """Add ``--backend``, ``--weights``, ``--device``, ``--precision``, ``--backend-option``."""
    parser.add_argument('--backend', default=default,
                        help=f'disparity backend: {", ".join(backend_names())} '
                             f'(default: {default})')
    parser.add_argument('--weights', default=None,
                        help='weights file (default: the shipped models/<backend>.safetensors)')
    add_device_argument(parser)
    add_precision_argument(parser)
    parser.add_argument('--backend-option', action='append', default=[], metavar='KEY=VALUE',
                        help='backend option, repeatable (e.g. disparity_range=64 for sgbm; '
                             '`stereo-depth backends` lists each backend\'s options)')


def parse_backend_options(pairs: list[str]) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into a dict; values are read as YAML scalars (int, float...)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'--backend-option needs KEY=VALUE, got {pair!r}')
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, 'problem', None) or 'not valid YAML'
            raise ValueError(f'--backend-option {pair!r}: the value is not valid YAML '
                             f'({problem})') from None
    return options


def backend_from_args(args: argparse.Namespace) -> DisparityBackend:
    """Build the backend the parsed arguments name."""
    options = parse_backend_options(getattr(args, 'backend_option', []))
    if getattr(args, 'precision', None):
        options['precision'] = args.precision
    return create_backend(args.backend, weights=args.weights, device=args.device, **options)


def add_size_limit_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-megapixels``, the input size refused before anything runs."""
    parser.add_argument('--max-megapixels', type=float, default=DEFAULT_MAX_MEGAPIXELS,
                        metavar='MP',
                        help='refuse images larger than this many megapixels, before '
                             'running the backend (memory grows with the size; default '
                             f'{DEFAULT_MAX_MEGAPIXELS:g}; 0 = no limit)')


def check_output_folder(path: str | Path, option: str = '--out-dir') -> Path:
    """Return ``path`` as a Path if a folder can be created or used there; else raise.

    Checked before any computation, so a bad ``--out-dir`` does not waste it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DatasetError(f'{option} {path} is an existing file, not a folder')
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DatasetError(f'{option} {path}: {parent} is a file, not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DatasetError(f'{option} {path}: {parent} is not writable')
    return path


def json_line(value: Any) -> str:
    """Return ``value`` as one line of strict JSON: NaN and infinities become null."""
    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: clean(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(inner) for inner in item]
        return item
    return json.dumps(clean(value), allow_nan=False)
