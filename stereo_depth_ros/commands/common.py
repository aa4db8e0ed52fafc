"""Argument helpers shared by several sub-commands."""

import argparse
from typing import Any

import yaml

from ..backends import DisparityBackend, backend_names, create_backend


def add_backend_arguments(parser: argparse.ArgumentParser, default: str = 'sgbm') -> None:
    """Add ``--backend``, ``--weights``, ``--device`` and ``--precision``."""
    parser.add_argument('--backend', default=default,
                        help=f'disparity backend: {", ".join(backend_names())} '
                             f'(default: {default})')
    parser.add_argument('--weights', default=None,
                        help='weights file (default: the shipped models/<backend>.safetensors)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'),
                        help='where learned backends run (default: auto)')
    parser.add_argument('--precision', default=None, choices=('fp32', 'bf16', 'fp16'),
                        help='learned backends: numeric precision (default: fp32 on CPU, '
                             'fp16 on CUDA)')
    parser.add_argument('--backend-option', action='append', default=[], metavar='KEY=VALUE',
                        help='backend setting, repeatable (e.g. disparity_range=64 for sgbm)')


def parse_backend_options(pairs: list[str]) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into a dict; values are read as YAML scalars (int, float...)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'--backend-option needs KEY=VALUE, got {pair!r}')
        options[key.strip()] = yaml.safe_load(value)
    return options


def backend_from_args(args: argparse.Namespace) -> DisparityBackend:
    """Build the backend the parsed arguments name."""
    options = parse_backend_options(getattr(args, 'backend_option', []))
    if getattr(args, 'precision', None):
        options['precision'] = args.precision
    return create_backend(args.backend, weights=args.weights, device=args.device, **options)
