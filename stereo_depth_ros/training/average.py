"""Average a run's final weights with its last checkpoints (weight averaging, as in SWA).

``python -m stereo_depth_ros.training.average WEIGHTS CHECKPOINT [CHECKPOINT ...] --out OUT``

Late in a run at a small learning rate the weights wander around a minimum, and the trainer's
validation moves by tenths of a pixel from one checkpoint to the next. The mean of several of
those weights usually lies nearer the middle of that minimum than any one of them (Izmailov
et al., "Averaging Weights Leads to Wider Optima and Better Generalization", 2018). WEIGHTS
is the run's final weights file (it gives the backend, the architecture and the metadata);
each CHECKPOINT is a ``checkpoint.safetensors`` of the same run copied aside as it went (the
trainer keeps only its latest). Every floating tensor is the plain mean over all inputs,
batch norm's running statistics included (the checkpoints of one late stretch are close, so
their mean statistics are close to the averaged network's); counters come from WEIGHTS.
Whether the average is better is for ``training.selection`` to say, like for any run.
"""

import argparse
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from .checkpoint import read_model_state
from ..errors import StereoDepthError
from ..weights import load_model, plain_key, read_metadata, save_weights


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the average of WEIGHTS and the CHECKPOINTs to OUT."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.average',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', help="the run's final weights file")
    parser.add_argument('checkpoints', nargs='+',
                        help='checkpoint.safetensors files of the same run (copies)')
    parser.add_argument('--out', required=True, help='the weights file to write')
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        inputs = [Path(args.weights), *map(Path, args.checkpoints)]
        if out.exists() and any(out.resolve() == path.resolve() for path in inputs):
            raise StereoDepthError(f'{out} is one of the inputs; write the average elsewhere')
        backend = read_metadata(args.weights).backend
        model, metadata = load_model(args.weights, backend)
        final = {plain_key(key): value for key, value in model.state_dict().items()}
        steps = []
        states = [final]
        for path in args.checkpoints:
            step, state = read_model_state(path)
            steps.append(step)
            states.append({plain_key(key): value for key, value in state.items()})
        model.load_state_dict(average_states(states))
        extra = {key: value for key, value in metadata.extra.items() if key != 'dtype'}
        extra['averaged_from'] = {'weights': str(args.weights),
                                  'checkpoints': [str(path) for path in args.checkpoints],
                                  'checkpoint_steps': steps}
        path = save_weights(model, out, backend, extra_metadata=extra)
    except (StereoDepthError, OSError) as error:
        print(f'average: {error}', file=sys.stderr)
        return 2
    print(f'wrote {path}: the mean of {len(states)} {backend} weights '
          f'(checkpoint steps {", ".join(map(str, steps))} and the final weights)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
