"""Narrow a trained CostNet to a smaller width: the start of a faster network.

``python -m stereo_depth_ros.training.slim WEIGHTS OUT --width W [--backend NAME]``

A CostNet of width 0.5 runs in about 60 % of the time of width 1 on a CPU, but trained from
random weights it would need the whole training again. This keeps, in every layer, the
channels of the trained network that carry the most signal, and drops the rest: the narrow
network starts close to the wide one, and fine-tuning (``stereo-depth train`` with
``model.init_weights`` pointing at the output) recovers what the dropped channels carried.

A channel's importance is its mean absolute activation on a few training scenes (seeds below
the validation range) times the norm of the weights that read it in every layer it feeds.
The matching features are scaled so that the correlation, a mean over channels, keeps the
wide network's scale. The refinement keeps its channels (``refine_channels`` is not
narrowed); the cost volume's displacements and the output layers keep theirs.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..backends.registry import backend_record
from ..data.datasets import StereoSample, SyntheticSamples
from ..errors import EXIT_BAD_INPUT, StereoDepthError
from ..networks.costnet import CostNet
from ..networks.inference import images_to_tensor
from ..weights import (check_export_path, keep_previous_export, load_model, read_metadata,
                       save_weights, set_aside_stale_card)

#: Input segments that keep all their channels: the images, the cost volume, the disparity.
IMAGE = '<image>'
VOLUME = '<volume>'
DISPARITY = '<disparity>'


@dataclass(frozen=True)
class Layer:
    """A convolution of CostNet: its module path, its inputs and the group it outputs.

    ``inputs`` lists the concatenated input segments in order: channel groups, or
    :data:`IMAGE` / :data:`VOLUME` / :data:`DISPARITY` for segments kept whole.
    ``output`` names the channel group the layer produces (None: kept whole).
    ``batch_norm`` is whether a BatchNorm2d follows the convolution (module ``.1``).
    """

    path: str
    inputs: tuple[str, ...]
    output: Optional[str]
    batch_norm: bool = True


#: CostNet's convolutions in forward order (see CostNet.forward); refine.body and the output
#: convolutions of the refinement read only channels that are kept whole.
LAYERS = (
    Layer('tower.0', (IMAGE,), 'half'),
    Layer('tower.1', ('half',), 'tower'),
    Layer('tower.2', ('tower',), 'features'),
    Layer('match', ('features',), 'matching', batch_norm=False),
    Layer('down8.0', (VOLUME, 'features'), 'down8'),
    Layer('down8.1', ('down8',), 'x8'),
    Layer('down16.0', ('x8',), 'down16'),
    Layer('down16.1', ('down16',), 'x16'),
    Layer('up8', ('x16',), 'up8'),
    Layer('fuse8', ('up8', 'x8'), 'fused8'),
    Layer('up4', ('fused8',), 'context'),
    Layer('logits', (VOLUME, 'features', 'context'), None, batch_norm=False),
    Layer('mask.0', ('features', 'context'), 'mask'),
    Layer('mask.1', ('mask',), None, batch_norm=False),
    Layer('refine.inputs', ('half', 'half', DISPARITY), None),
)
#: The group the correlation reads (its scale is kept, see :func:`slim_costnet`).
MATCHING = 'matching'


def layers_of(model: CostNet) -> list[Layer]:
    """Return the :data:`LAYERS` that ``model`` has (the refinement is optional)."""
    return [layer for layer in LAYERS
            if model.refine is not None or not layer.path.startswith('refine.')]


def _convolution_path(model: nn.Module, layer: Layer) -> str:
    """Return the module path of ``layer``'s convolution (the first of a Sequential)."""
    sequential = isinstance(model.get_submodule(layer.path), nn.Sequential)
    return layer.path + '.0' if sequential else layer.path


def _convolution(model: nn.Module, layer: Layer) -> nn.Conv2d | nn.ConvTranspose2d:
    """Return the convolution of ``layer`` in ``model``."""
    conv = model.get_submodule(_convolution_path(model, layer))
    if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
        raise TypeError(f'{layer.path} is not a convolution')
    return conv


def _input_dim(conv: nn.Module) -> int:
    """Return the weight dimension of input channels (ConvTranspose2d stores them first)."""
    return 0 if isinstance(conv, nn.ConvTranspose2d) else 1


def _segment_sizes(model: CostNet, layer: Layer, groups: dict[str, int]) -> list[int]:
    """Return the channel count of each input segment of ``layer`` in ``model``."""
    conv = _convolution(model, layer)
    fixed = {IMAGE: 3, VOLUME: model.levels, DISPARITY: 1}
    sizes = [fixed.get(name, groups.get(name, 0)) for name in layer.inputs]
    total = conv.weight.shape[_input_dim(conv)]
    if sum(sizes) != total:
        raise ValueError(f'{layer.path}: inputs {layer.inputs} make {sum(sizes)} channels, '
                         f'the convolution reads {total}')
    return sizes


def group_sizes(model: CostNet) -> dict[str, int]:
    """Return the channel count of every group of ``model``."""
    sizes: dict[str, int] = {}
    for layer in layers_of(model):
        if layer.output is not None:
            conv = _convolution(model, layer)
            sizes[layer.output] = conv.weight.shape[1 - _input_dim(conv)]
    return sizes


@torch.no_grad()
def mean_activations(model: CostNet, samples: Sequence[StereoSample]) -> dict[str, torch.Tensor]:
    """Return each group's mean absolute activation per channel over ``samples``.

    Measured in eval mode (batch norm with its running statistics); ``model``'s mode is
    restored afterwards.
    """
    if not samples:
        raise ValueError('mean_activations needs at least one scene')
    training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            value = output.detach().float().abs().mean(dim=(0, 2, 3))
            totals[name] = totals.get(name, torch.zeros_like(value)) + value
        return record

    handles = [model.get_submodule(layer.path).register_forward_hook(hook(layer.output))
               for layer in layers_of(model) if layer.output is not None]
    try:
        for sample in tqdm(samples, desc='activations', unit='scene', leave=False):
            height, width = (size - size % model.divisor for size in sample.left.shape[:2])
            left = images_to_tensor([sample.left[:height, :width]], torch.device('cpu'))
            right = images_to_tensor([sample.right[:height, :width]], torch.device('cpu'))
            model(left, right)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return {name: total / len(samples) for name, total in totals.items()}


def channel_importance(model: CostNet,
                       activations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return each group's per-channel importance: activation times the norm of its readers.

    ``activations`` are those of :func:`mean_activations`. The matching features are read by
    the correlation (products of the two views), so their importance is the squared
    activation.
    """
    groups = group_sizes(model)
    reads = {name: torch.zeros(size) for name, size in groups.items()}
    for layer in layers_of(model):
        conv = _convolution(model, layer)
        dim = _input_dim(conv)
        weight = conv.weight.detach().float().transpose(0, dim).flatten(1)  # in x rest
        start = 0
        for name, size in zip(layer.inputs, _segment_sizes(model, layer, groups)):
            if name in reads:
                reads[name] += weight[start:start + size].norm(dim=1)
            start += size
    importance = {name: activations[name] * reads[name] for name in groups}
    importance[MATCHING] = activations[MATCHING] ** 2
    return importance


def kept_channels(importance: dict[str, torch.Tensor],
                  sizes: dict[str, int]) -> dict[str, torch.Tensor]:
    """Return, per group, the indices (ascending) of its ``sizes[group]`` most important."""
    kept = {}
    for name, scores in importance.items():
        if sizes[name] > scores.numel():
            raise ValueError(f'group {name}: cannot keep {sizes[name]} of {scores.numel()} '
                             'channels')
        kept[name] = scores.topk(sizes[name]).indices.sort().values
    return kept


def _input_index(model: CostNet, layer: Layer, kept: dict[str, torch.Tensor],
                 groups: dict[str, int]) -> torch.Tensor:
    """Return the input channels of ``layer`` that the narrow network keeps, in order."""
    pieces, start = [], 0
    for name, size in zip(layer.inputs, _segment_sizes(model, layer, groups)):
        chosen = kept.get(name, torch.arange(size))
        pieces.append(chosen + start)
        start += size
    return torch.cat(pieces)


def slim_costnet(wide: CostNet, width: float, kept: Optional[dict[str, torch.Tensor]] = None,
                 samples: Sequence[StereoSample] = ()) -> CostNet:
    """Return a CostNet of ``width`` made of the most important channels of ``wide``.

    ``kept`` (group -> channel indices) overrides the choice measured on ``samples``.
    """
    architecture = dict(wide.architecture, width=float(width))
    narrow = CostNet(**architecture)
    sizes = group_sizes(narrow)
    if kept is None:
        kept = kept_channels(channel_importance(wide, mean_activations(wide, samples)), sizes)
    wide_sizes = group_sizes(wide)
    state = {key: value.clone() for key, value in wide.state_dict().items()}
    for layer in layers_of(wide):
        conv = _convolution(wide, layer)
        prefix = _convolution_path(wide, layer)
        inputs = _input_index(wide, layer, kept, wide_sizes)
        outputs = kept[layer.output] if layer.output is not None else None
        weight = state[prefix + '.weight'].index_select(_input_dim(conv), inputs)
        if outputs is not None:
            weight = weight.index_select(1 - _input_dim(conv), outputs)
            if prefix + '.bias' in state:
                state[prefix + '.bias'] = state[prefix + '.bias'][outputs]
            if layer.batch_norm:
                norm = layer.path + '.1'
                for name in ('weight', 'bias', 'running_mean', 'running_var'):
                    state[f'{norm}.{name}'] = state[f'{norm}.{name}'][outputs]
        state[prefix + '.weight'] = weight
    # The correlation is the mean over the matching channels: scaling both views' features
    # by sqrt(kept / all) keeps each kept channel's share of it.
    factor = (sizes[MATCHING] / wide_sizes[MATCHING]) ** 0.5
    state['match.weight'] = state['match.weight'] * factor
    state['match.bias'] = state['match.bias'] * factor
    narrow.load_state_dict(state)
    narrow.eval()
    return narrow


def training_scenes(count: int, height: int = 384, width: int = 768,
                    max_disparity: float = 192.0) -> list[StereoSample]:
    """Return ``count`` procedural training scenes (seeds 0..count-1, below validation)."""
    return list(SyntheticSamples(list(range(count)), 'layered', height, width, max_disparity))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the narrowed network of a CostNet weights file."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.slim',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', help='trained CostNet weights file')
    parser.add_argument('out', help='where to write the narrow network')
    parser.add_argument('--width', type=float, default=0.5,
                        help='width of the narrow network (default 0.5)')
    parser.add_argument('--backend', default=None,
                        help='backend the output belongs to (default: that of WEIGHTS)')
    parser.add_argument('--scenes', type=int, default=8,
                        help='training scenes that measure the activations (default 8)')
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        if args.scenes < 1:
            raise StereoDepthError(f'--scenes must be at least 1, got {args.scenes}')
        if out.is_dir():
            raise StereoDepthError(f'{out} is a folder; OUT is the weights file to write')
        if out.exists() and out.resolve() == Path(args.weights).resolve():
            raise StereoDepthError(f'{out} is the input file; write the narrow network '
                                   'elsewhere')
        backend = read_metadata(args.weights).backend
        wide, _ = load_model(args.weights, backend)
        if not isinstance(wide, CostNet):
            raise StereoDepthError(f'{args.weights} is a {backend} network, not a CostNet')
        target = args.backend or backend
        if backend_record(target).network is not CostNet:
            raise StereoDepthError(f'--backend {target} does not run a CostNet')
        if not 0 < args.width < wide.architecture['width']:
            raise StereoDepthError(f'--width must be between 0 and the network\'s '
                                   f'{wide.architecture["width"]:g}, got {args.width:g}')
        # Not over a file of another backend or another kind; slim writes no model card.
        check_export_path(out, target, card=False)
        narrow = slim_costnet(wide, args.width, samples=training_scenes(args.scenes))
        kept = keep_previous_export(out)
        # save_weights writes beside OUT, then renames: never a half-written OUT.
        path = save_weights(narrow, out, target,
                            extra_metadata={'slimmed_from': str(args.weights)})
        if kept:  # the old card went with the old weights; it does not describe these
            set_aside_stale_card(out)
    except (StereoDepthError, OSError) as error:
        print(f'slim: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f'wrote {path}: width {args.width:g}, '
          f'{sum(p.numel() for p in narrow.parameters())} parameters'
          + (f'; the file it replaced is kept as {kept}' if kept else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
