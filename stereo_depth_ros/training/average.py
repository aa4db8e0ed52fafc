"""Average the weights of one network's runs or checkpoints (weight averaging, model soups).

``python -m stereo_depth_ros.training.average WEIGHTS INPUT [INPUT ...] --out OUT``

Late in a run at a small learning rate the weights wander around a minimum, and the trainer's
validation moves by tenths of a pixel from one checkpoint to the next; the mean of several of
those weights usually lies nearer the middle of that minimum than any one of them (Izmailov
et al., "Averaging Weights Leads to Wider Optima and Better Generalization", 2018). Likewise
the mean of several fine-tunings of one starting point often beats each of them (Wortsman et
al., "Model soups", 2022). WEIGHTS is a weights file (it gives the backend, the architecture,
the precision and the metadata); each INPUT is another weights file of the same backend and
architecture, or a ``checkpoint.safetensors`` of such a run copied aside as it went (the
trainer keeps only its latest; the config in its record must name the same backend and
architecture). Every floating tensor is the plain mean over all of them, batch norm's running
statistics included (inputs from one starting point are close, so their mean statistics are
close to the averaged network's); counters come from WEIGHTS. The output's training metadata
is WEIGHTS', without its final validation (the average was not validated) and with the list
of inputs. Whether the average is better is for ``training.selection`` to say, as for any run.
"""

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from safetensors import SafetensorError, safe_open

from .checkpoint import read_model_state
from ..backends.registry import backend_record
from ..errors import EXIT_BAD_INPUT, StereoDepthError
from ..weights import (WeightsMetadata, check_export_path, check_finite, keep_previous_export,
                       load_model, plain_key, read_metadata, save_weights,
                       set_aside_stale_card)


def average_states(states: Sequence[Mapping[str, torch.Tensor]],
                   labels: Sequence[str]) -> dict[str, torch.Tensor]:
    """Return the mean of the floating tensors of ``states``; other tensors of the first.

    All states must have the same keys and shapes (StereoDepthError naming the first
    difference and the input, by its label, otherwise).
    """
    first = states[0]
    for state, label in zip(states[1:], labels[1:]):
        if state.keys() != first.keys():
            extra = sorted(set(state) ^ set(first))[:3]
            raise StereoDepthError(f'{label} has other tensors than {labels[0]} '
                                   f'(e.g. {", ".join(extra)}): not the same network')
        for key, value in state.items():
            if value.shape != first[key].shape:
                raise StereoDepthError(f'{label} has {key} of shape {tuple(value.shape)}, '
                                       f'{labels[0]} {tuple(first[key].shape)}: not the same '
                                       f'network')
    averaged = {}
    for key, value in first.items():
        if value.is_floating_point():
            total = torch.stack([state[key].double() for state in states]).mean(0)
            averaged[key] = total.to(value.dtype)
        else:
            averaged[key] = value.clone()
    return averaged


def _is_weights_file(path: str) -> bool:
    """Whether ``path`` is a weights file (its metadata names a backend), not a checkpoint."""
    try:
        with safe_open(path, framework='pt') as handle:
            return 'backend' in (handle.metadata() or {})
    except (OSError, ValueError, SafetensorError) as error:
        raise StereoDepthError(f'cannot read {path}: {error}') from None


def _check_checkpoint_network(path: str, record: Mapping[str, Any],
                              first: WeightsMetadata) -> None:
    """Refuse a checkpoint whose run config names another backend or architecture."""
    config = record.get('extra', {}).get('config', {})
    backend = config.get('backend')
    architecture = config.get('model', {}).get('architecture')
    if backend is None or architecture is None:
        raise StereoDepthError(f'{path} does not record the backend and architecture of its '
                               f'run, so it cannot be checked against {first.backend}')
    if backend != first.backend:
        raise StereoDepthError(f'{path} is a {backend} checkpoint, not {first.backend}')
    built = backend_record(backend).build_network(architecture).architecture
    if built != first.architecture:
        raise StereoDepthError(f'{path} has the architecture {built}, the first file '
                               f'{first.architecture}')


def read_state(path: str, first: WeightsMetadata) -> tuple[str, dict[str, torch.Tensor]]:
    """Return a label and the plain state_dict of a weights file or checkpoint at ``path``.

    It must be of ``first``'s backend and architecture. A checkpoint's tensors must be
    finite (a weights file's are checked when it is loaded).
    """
    if _is_weights_file(path):
        model, _ = load_model(path, first.backend, first.architecture)
        return path, model.state_dict()
    checkpoint = read_model_state(path)
    _check_checkpoint_network(path, checkpoint.record, first)
    for key, value in checkpoint.state.items():
        check_finite(value, path, key)
    label = f'{path} (step {checkpoint.step})'
    return label, {plain_key(key): value for key, value in checkpoint.state.items()}


def _check_paths(out: Path, paths: Sequence[Path]) -> None:
    """Refuse an input given twice and an output that is a folder or one of the inputs."""
    resolved = [path.resolve() for path in paths]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise StereoDepthError(f'{paths[index]} is given twice; each input counts once')
    if out.is_dir():
        raise StereoDepthError(f'{out} is a folder; OUT is the weights file to write')
    if out.exists() and out.resolve() in resolved:
        raise StereoDepthError(f'{out} is one of the inputs; write the average elsewhere')


def _training_metadata(metadata: WeightsMetadata, paths: Sequence[Path],
                       labels: Sequence[str], invocation: str) -> dict[str, Any]:
    """Return WEIGHTS' training metadata for the average: no validation, the inputs added.

    The command that made the file (a model card's) is ``invocation``, this one; WEIGHTS'
    own goes with the inputs.
    """
    training = metadata.training()
    training.pop('final_validation', None)
    training['averaged_from'] = {'files': [str(path) for path in paths], 'inputs': list(labels),
                                 'previous': training.get('averaged_from'),
                                 'weights_invocation': training.pop('invocation', None)}
    training['invocation'] = invocation
    return training


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the average of WEIGHTS and the INPUTs to OUT."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.average',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', help='a weights file: backend, architecture, metadata')
    parser.add_argument('inputs', nargs='+',
                        help='weights files of the same architecture or checkpoint.safetensors '
                             'files of its runs (copies)')
    parser.add_argument('--out', required=True, help='the weights file to write')
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        paths = [Path(args.weights), *map(Path, args.inputs)]
        _check_paths(out, paths)
        metadata = read_metadata(args.weights)
        # Not over another backend's or other files; average writes no model card.
        check_export_path(out, metadata.backend, card=False)
        model, _ = load_model(args.weights, metadata.backend)
        labels = [args.weights]
        states = [model.state_dict()]
        for path in args.inputs:
            label, state = read_state(path, metadata)
            labels.append(label)
            states.append(state)
        model.load_state_dict(average_states(states, labels))
        extra = {key: value for key, value in metadata.extra.items()
                 if key not in ('dtype', 'training')}
        invocation = shlex.join(['python', '-m', 'stereo_depth_ros.training.average',
                                 *(sys.argv[1:] if argv is None else argv)])
        extra['training'] = _training_metadata(metadata, paths, labels, invocation)
        kept = keep_previous_export(out)
        path = save_weights(model, out, metadata.backend, extra_metadata=extra,
                            dtype=metadata.extra.get('dtype', 'fp32'))
        if kept:  # the old card went with the old weights; it does not describe these
            set_aside_stale_card(out)
    except (StereoDepthError, OSError, ValueError) as error:
        print(f'average: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f'wrote {path}: the mean of {len(states)} {metadata.backend} weights '
          f'({", ".join(labels)})' + (f'; the file it replaced is kept as {kept}' if kept else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
