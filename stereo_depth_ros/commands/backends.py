"""List the disparity backends, their weights and their options (``--backend-option``)."""

import argparse
import textwrap

from ..backends import DEFAULT_BACKEND
from ..backends.registry import backend_names, backend_record
from ..errors import BackendError
from ..settings import ParameterSpec, option_specs
from ..weights import read_metadata


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--options``: also explain each backend option."""
    parser.add_argument('--options', action='store_true',
                        help="also print what each backend option does and the values it "
                        "accepts (`--backend-option NAME=VALUE`; the node's parameters)")


def describe_weights(name: str) -> str:
    """Return where the shipped weights of ``name`` are, or how to make them."""
    info = backend_record(name)
    if not info.needs_weights:
        return 'no weights needed'
    path = info.default_weights()
    if path is None:
        return (f'missing - train with `stereo-depth train --config config/train_{name}.yaml` '
                f'or pass --weights')
    size = path.stat().st_size / 2 ** 20
    try:
        metadata = read_metadata(path)
    except BackendError as error:
        return f'{path} ({size:.1f} MiB, UNUSABLE: {error})'
    if metadata.backend != name:
        return f'{path} ({size:.1f} MiB, UNUSABLE: made for backend {metadata.backend!r})'
    arch = ', '.join(f'{key}={value}' for key, value in sorted(metadata.architecture.items()))
    return f'{path} ({size:.1f} MiB, {arch})'


def run(args: argparse.Namespace) -> int:
    """Print one block per registered backend."""
    for name in backend_names():
        info = backend_record(name)
        default = ' (the default backend)' if name == DEFAULT_BACKEND else ''
        print(f'{name:<12} {info.summary}{default}')
        print(f'{"":<12} needs weights: {"yes" if info.needs_weights else "no"}; '
              f'weights: {describe_weights(name)}')
        options = ', '.join(describe_option(spec) for spec in option_specs(info.options))
        print(f'{"":<12} options: {options}')
    if args.options:
        print()
        _print_option_help()
    return 0


def _print_option_help() -> None:
    """Print every options class once: each option, its limits and what it does.

    A class that extends one printed before lists only the options it adds.
    """
    seen: dict[type, list[str]] = {}
    for name in backend_names():
        options = backend_record(name).options
        if options in seen:
            continue
        users = [other for other in backend_names() if backend_record(other).options is options]
        bases = [base for base in seen if issubclass(options, base)]
        inherited = {spec.name for base in bases for spec in option_specs(base)}
        seen[options] = users
        also = ''.join(f', and those of {", ".join(seen[base])}' for base in bases)
        print(f'options of {", ".join(users)}{also}:')
        for spec in option_specs(options):
            if spec.name in inherited:
                continue
            limits = f' ({spec.constraints})' if spec.constraints else ''
            print(f'  {spec.name}={spec.default!r}{limits}')
            for line in textwrap.wrap(spec.description, width=88):
                print(f'      {line}')


def describe_option(spec: ParameterSpec) -> str:
    """Return ``name=default`` and the option's other accepted names."""
    also = f' (or {"/".join(spec.aliases)})' if spec.aliases else ''
    return f'{spec.name}={spec.default!r}{also}'
