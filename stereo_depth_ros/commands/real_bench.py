"""Real benchmark: backends side by side on the shipped real scenes with ground truth."""

import argparse

from .common import (add_align_rows_argument, add_backend_arguments, aligned_rows_line,
                     check_output_folder, json_line, parse_backend_options,
                     refuse_given_flags)
from ..backends import backend_record, create_backend
from ..errors import BackendError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the real-bench options."""
    add_backend_arguments(parser)
    parser.add_argument('--backends', default=None,
                        help='comma-separated backends to compare in one run (default: sgbm '
                             'and --backend); --weights and --backend-option apply to '
                             '--backend only')
    parser.add_argument('--root', default=None,
                        help='folder holding middlebury2003/ and real_extra/ (default: the '
                             'shipped sample data)')
    parser.add_argument('--figures', default='out/real_bench',
                        help='folder for one picture per scene (default: out/real_bench; '
                             'empty: none)')
    add_align_rows_argument(parser)
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object as the last line')


def run(args: argparse.Namespace) -> int:
    """Evaluate the backends on the real suite and print the tables."""
    from ..data.datasets import real_suite_dataset
    from ..evaluation.real_bench import format_tables, run_real_bench
    listed = f'sgbm,{args.backend}' if args.backends is None else args.backends
    names = list(dict.fromkeys(name.strip() for name in listed.split(',') if name.strip()))
    if not names:
        raise BackendError(f'--backends {args.backends!r} names no backend')
    if args.figures:  # checked now, not after the whole evaluation
        check_output_folder(args.figures, '--figures')
    given = [flag for flag, value in (('--weights', args.weights),
                                      ('--backend-option', args.backend_option),
                                      ('--precision', args.precision)) if value]
    if given and args.backend not in names:
        raise BackendError(f'{", ".join(given)} apply to --backend ({args.backend}), which is '
                           f'not in --backends ({",".join(names)}): name the backend they are '
                           'for with --backend')
    if not backend_record(args.backend).needs_weights:
        refuse_given_flags((('--precision', args.precision), ('--device', args.device != 'auto')),
                           f'to a learned --backend, not {args.backend}')
    options = parse_backend_options(args.backend_option)
    if args.precision:
        options['precision'] = args.precision
    backends = []
    for name in names:
        own = name == args.backend
        backends.append(create_backend(name, weights=args.weights if own else None,
                                       device=args.device, **(options if own else {})))
    real_suite_dataset(args.root)  # its files are checked before anything is printed
    for backend in backends:  # what was scored: weights, passes, options
        print(backend.describe())
    results = run_real_bench(backends, args.root, args.figures or None,
                             align_rows=args.align_rows)
    print(format_tables(results))
    aligned = next(iter(results.values()))['rows_aligned']
    if aligned:
        print(aligned_rows_line(aligned, len(next(iter(results.values()))['pairs'])))
    if args.figures:
        print(f'pictures: {args.figures}/<scene>.png')
    if args.json:
        print(json_line(results))
    return 0
