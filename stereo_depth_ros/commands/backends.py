"""List the disparity backends, their weights and their options (``--backend-option``)."""

import argparse

from ..backends.registry import backend_names, backend_record
from ..errors import BackendError
from ..settings import ParameterSpec, option_specs
from ..weights import read_metadata


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the command only lists."""


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
        print(f'{name:<12} {info.summary}')
        print(f'{"":<12} needs weights: {"yes" if info.needs_weights else "no"}; '
              f'weights: {describe_weights(name)}')
        options = ', '.join(describe_option(spec) for spec in option_specs(info.options))
        print(f'{"":<12} options: {options}')
    return 0


def describe_option(spec: ParameterSpec) -> str:
    """Return ``name=default`` and the option's other accepted names."""
    also = f' (or {"/".join(spec.aliases)})' if spec.aliases else ''
    return f'{spec.name}={spec.default!r}{also}'
