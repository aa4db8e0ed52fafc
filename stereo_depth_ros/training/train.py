"""Train a learned backend from a YAML experiment (config/train_<backend>.yaml).

The one entry point of training: ``stereo-depth train`` (``commands/train.py`` re-exports
:func:`add_arguments` and :func:`run`) and ``python -m stereo_depth_ros.training.train`` use
the same arguments::

    stereo-depth train --config config/train_dispnetc.yaml [--device auto|cpu|cuda]
        [--steps N] [--minutes M] [--resume] [--out-dir runs/dispnetc] [--no-export]
        [--no-progress]
"""

import argparse
import shlex
import sys
from typing import Optional, Sequence

from ..commands.common import add_device_argument, non_negative_int
from ..errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, StereoDepthError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the training options."""
    parser.add_argument('--config', required=True, help='training YAML (config/train_*.yaml)')
    add_device_argument(parser, 'where to train')
    parser.add_argument('--steps', type=int, default=None,
                        help='total steps (default: optimization.steps of the config)')
    parser.add_argument('--seed', type=non_negative_int, default=None,
                        help='random seed (default: seed of the config); a repeated '
                             'fine-tuning pass with another seed sees other synthetic scenes')
    parser.add_argument('--weights', default=None,
                        help='weights to start from (default: model.init_weights of the '
                             'config); one config then serves several rounds, each from the '
                             'weights of the one before')
    parser.add_argument('--minutes', type=float, default=None,
                        help='wall-clock budget of the training steps: the run is shortened '
                             'to the steps its measured rate fits in, its LR schedule with it '
                             '(for a machine lent for a fixed time)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the run folder\'s checkpoint')
    parser.add_argument('--out-dir', default=None,
                        help='run folder (default: output.out_dir of the config)')
    parser.add_argument('--no-export', action='store_true',
                        help='keep the weights in the run folder only (no models/ export)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run(args: argparse.Namespace) -> int:
    """Train as the parsed arguments say; print where the weights went."""
    from .config import AdaptationConfig, load_config
    from .trainer import resumed_seed, train
    from ..commands.common import check_output_folder
    from ..weights import check_export_path, read_metadata
    config = load_config(args.config)
    if config.adaptation != AdaptationConfig():
        # Its pairs and self-supervised losses are adapt's: train would leave them out.
        raise ValueError(f'{args.config} is an adaptation config (its adaptation section is '
                         'read by stereo-depth adapt only): run stereo-depth adapt --config '
                         f'{args.config}, or train with a training config (config/train_*.yaml)')
    if args.seed is not None:
        config.seed = args.seed
    if args.resume:
        config.seed = resumed_seed(args.out_dir or config.output.out_dir, config.seed,
                                   given=args.seed is not None)
    if args.weights:
        found = read_metadata(args.weights).backend
        # The config names the backend (train has no --backend), and the one it starts from
        # where that differs (dispnet_qr's head on dispnetc's trunk: model.init_weights_backend).
        starts_from = config.model.init_weights_backend or config.backend
        if found != starts_from:
            raise ValueError(f'--weights {args.weights} holds weights of backend {found!r}, but '
                             f'{args.config} starts from {starts_from!r} weights: give those, '
                             f'or a config that starts from {found!r} (e.g. '
                             f'config/train_{found}.yaml)')
        config.model.init_weights = args.weights
    check_output_folder(args.out_dir or config.output.out_dir,
                        '--out-dir' if args.out_dir else 'output.out_dir')
    if args.no_export:
        config.output.export = ''
    if config.output.export:  # refused before training, not after it
        check_export_path(config.output.export, config.backend,
                          args.out_dir or config.output.out_dir)
    result = train(config, device=args.device, steps=args.steps, resume=args.resume,
                   out_dir=args.out_dir, progress=not args.no_progress, minutes=args.minutes,
                   invocation=getattr(args, 'invocation', None))
    epe = result.final_validation.get('epe')
    print(f'{config.backend}: {result.step} steps, {result.wall_time_s / 60:.1f} min'
          + (f', held-out EPE {epe:.3f} px' if epe is not None else '')
          + f'; weights {result.exported or result.weights}')
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m stereo_depth_ros.training.train``: same options as ``stereo-depth train``."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.train',
                                     description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    # Recorded in the weights as the command that made them, as stereo-depth train's is.
    args.invocation = shlex.join(['python', '-m', 'stereo_depth_ros.training.train',
                                  *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except (StereoDepthError, FileNotFoundError, ValueError) as error:
        print(f'train: error: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # the run saved its checkpoint and said how to resume
        print('train: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == '__main__':
    sys.exit(main())
