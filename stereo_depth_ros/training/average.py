"""Average the weights of one network's runs or checkpoints (weight averaging, model soups).

``python -m stereo_depth_ros.training.average WEIGHTS INPUT [INPUT ...] --out OUT``

Late in a run at a small learning rate the weights wander around a minimum, and the trainer's
validation moves by tenths of a pixel from one checkpoint to the next; the mean of several of
those weights usually lies nearer the middle of that minimum than any one of them (Izmailov
et al., "Averaging Weights Leads to Wider Optima and Better Generalization", 2018). Likewise
the mean of several fine-tunings of one starting point often beats each of them (Wortsman et
al., "Model soups", 2022). WEIGHTS is a weights file (it gives the backend, the architecture
and the metadata); each INPUT is another weights file of the same architecture or a
``checkpoint.safetensors`` of a run copied aside as it went (the trainer keeps only its
latest). Every floating tensor is the plain mean over all of them, batch norm's running
statistics included (inputs from one starting point are close, so their mean statistics are
close to the averaged network's); counters come from WEIGHTS. Whether the average is better
is for ``training.selection`` to say, like for any run.
"""

import argparse
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from safetensors import SafetensorError, safe_open

from .checkpoint import MODEL_PREFIX, read_model_state
from ..errors import StereoDepthError
from ..weights import WeightsMetadata, load_model, plain_key, read_metadata, save_weights


def average_states(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Return the mean of the floating tensors of ``states``; other tensors of the first.

    All states must have the same keys and shapes (StereoDepthError naming the first
    difference otherwise).
    """
    first = states[0]
    for index, state in enumerate(states[1:], start=1):
        if state.keys() != first.keys():
            extra = sorted(set(state) ^ set(first))[:3]
            raise StereoDepthError(f'input {index + 1} has other tensors than the first '
                                   f'(e.g. {", ".join(extra)}): not the same network')
        for key, value in state.items():
            if value.shape != first[key].shape:
                raise StereoDepthError(f'input {index + 1} has {key} of shape '
                                       f'{tuple(value.shape)}, the first '
                                       f'{tuple(first[key].shape)}: not the same network')
    averaged = {}
    for key, value in first.items():
        if value.is_floating_point():
            total = torch.stack([state[key].double() for state in states]).mean(0)
            averaged[key] = total.to(value.dtype)
        else:
            averaged[key] = value.clone()
    return averaged


def _is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a training checkpoint's tensor file rather than a weights file."""
    try:
        with safe_open(path, framework='pt') as handle:
            return any(key.startswith(MODEL_PREFIX) for key in handle.keys())
    except (OSError, ValueError, SafetensorError) as error:
        raise StereoDepthError(f'cannot read {path}: {error}') from None


def read_state(path: str, first: WeightsMetadata) -> tuple[str, dict[str, torch.Tensor]]:
    """Return a label (``step N`` or the path) and the plain state_dict of ``path``.

    A weights file must be of ``first``'s backend and architecture.
    """
    if _is_checkpoint(path):
        step, state = read_model_state(path)
        label = f'step {step}'
    else:
        model, _ = load_model(path, first.backend, first.architecture)
        state = model.state_dict()
        label = path
    return label, {plain_key(key): value for key, value in state.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the average of WEIGHTS and the CHECKPOINTs to OUT."""
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
        if out.exists() and any(out.resolve() == path.resolve() for path in paths):
            raise StereoDepthError(f'{out} is one of the inputs; write the average elsewhere')
        metadata = read_metadata(args.weights)
        model, _ = load_model(args.weights, metadata.backend)
        labels = [args.weights]
        states = [{plain_key(key): value for key, value in model.state_dict().items()}]
        for path in args.inputs:
            label, state = read_state(path, metadata)
            labels.append(label)
            states.append(state)
        model.load_state_dict(average_states(states))
        extra = {key: value for key, value in metadata.extra.items() if key != 'dtype'}
        extra['averaged_from'] = {'files': [str(path) for path in paths], 'labels': labels}
        path = save_weights(model, out, metadata.backend, extra_metadata=extra)
    except (StereoDepthError, OSError) as error:
        print(f'average: {error}', file=sys.stderr)
        return 2
    print(f'wrote {path}: the mean of {len(states)} {metadata.backend} weights '
          f'({", ".join(labels)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
