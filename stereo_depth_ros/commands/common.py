"""Argument helpers shared by several sub-commands."""

import argparse

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


def backend_from_args(args: argparse.Namespace) -> DisparityBackend:
    """Build the backend the parsed arguments name."""
    options = {}
    if getattr(args, 'precision', None):
        options['precision'] = args.precision
    return create_backend(args.backend, weights=args.weights, device=args.device, **options)
