"""Adapt a learned backend to your camera from unlabeled rectified pairs or a bag."""

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Optional

from .common import (add_bit_depth_argument, add_device_argument, approximate_slop,
                     check_output_folder, non_negative_int, positive_float, positive_int,
                     refuse_lone_slop)
from ..backends.registry import backend_names
from ..resources import default_weights_path, find_shared_file
from ..sync import DEFAULT_SLOP
from ..errors import DatasetError, StereoDepthError
from ..text import counted

#: File in the run folder naming what it adapts on (--bag or --pairs), for --resume.
SOURCE_RECORD = 'adapting_on.txt'
#: File in the run folder naming where its weights are exported (--export), for --resume.
EXPORT_RECORD = 'exporting_to.txt'
#: ``--bag-every``'s default: every fifth synchronised pair of a bag.
DEFAULT_BAG_EVERY = 5
#: The recorded source: ``--bag PATH --bag-every N`` or ``--pairs PATH``, each with an
#: optional ``--mono16-bit-depth B`` (paths as written, spaces and all).
_SOURCE = re.compile(r'(?:--bag (?P<bag>.+) --bag-every (?P<every>\d+)|--pairs (?P<pairs>.+?))'
                     r'(?: --mono16-bit-depth (?P<bits>\d+))?')
#: File inside ``<run folder>/pairs`` marking the pairs as extracted from a bag by adapt,
#: which a later run may replace; a ``pairs`` folder without it is the user's and is kept.
EXTRACTED_MARK = 'extracted_by_adapt.txt'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the adaptation options."""
    parser.add_argument('--config', required=True,
                        help='adaptation YAML (config/adapt_<backend>.yaml): synthetic data '
                             'mixed in, loss weights, steps')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--pairs', default=None,
                        help='folder searched recursively for left.png/right.png pairs')
    source.add_argument('--bag', default=None,
                        help='rosbag2 with rectified stereo image topics (found by name)')
    parser.add_argument('--bag-every', type=positive_int, default=None,
                        help=f'with --bag: use every N-th synchronised pair (default '
                             f'{DEFAULT_BAG_EVERY})')
    parser.add_argument('--approximate-sync', action='store_true',
                        help='with --bag: pair images whose stamps differ by less than --slop '
                             '(default: exact stamps)')
    parser.add_argument('--slop', type=positive_float, default=None,
                        help=f'with --approximate-sync (refused without it): largest stamp '
                             f'difference in seconds (default {DEFAULT_SLOP})')
    parser.add_argument('--left-image', default=None,
                        help='with --bag: the left image topic (default: found by name)')
    parser.add_argument('--right-image', default=None,
                        help='with --bag: the right image topic (default: found by name)')
    add_bit_depth_argument(parser, 'images (mono16 messages of --bag, files of --pairs)')
    parser.add_argument('--weights', default=None,
                        help='weights to start from (default: model.init_weights of the '
                             'config, else the shipped models/<backend>.safetensors)')
    parser.add_argument('--labeller', default=None,
                        help='backend whose left-right checked disparities are the '
                             'pseudo-labels: sgbm, or a learned one such as costnet '
                             '(default: adaptation.labeller of the config, else sgbm)')
    parser.add_argument('--labeller-weights', default=None,
                        help='weights of a learned labeller (default: its shipped file)')
    add_device_argument(parser, 'where to train')
    parser.add_argument('--steps', type=int, default=None, help='steps (default: config)')
    parser.add_argument('--seed', type=non_negative_int, default=None,
                        help='seed of the synthetic batches and real crops (default: config); '
                             'a second round from adapted weights takes a new one')
    parser.add_argument('--out-dir', default=None, help='run folder (default: config)')
    parser.add_argument('--resume', action='store_true',
                        help="continue the run folder's checkpoint (of an interrupted run)")
    parser.add_argument('--export', default=None,
                        help='also write the adapted weights here (default: config\'s '
                             'output.export; the run folder always has them)')
    parser.add_argument('--figures-on', default=None,
                        help='folder of pairs to draw before/after pictures on (default: the '
                             'adaptation pairs; up to 6 are drawn)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def _resume_as_started(args: argparse.Namespace, out_dir: Path) -> None:
    """Give a ``--resume`` the source settings and ``--export`` it leaves out as the run started.

    The run folder records them: the pairs it adapts on (a resumed run must continue on
    them) and where its weights go (an interrupted run has not exported them yet). Without
    ``--bag`` or ``--pairs`` the recorded source is taken; with the recorded one, its
    ``--bag-every`` and ``--mono16-bit-depth`` where not given (``--bag-every``'s default
    would make it other pairs, refused).
    """
    record = out_dir / SOURCE_RECORD
    match = _SOURCE.fullmatch(record.read_text().strip()) if record.is_file() else None
    if match is not None and _names_recorded_source(args, match):
        given = _source_settings(args)
        args.bag, args.pairs = args.bag or match['bag'], args.pairs or match['pairs']
        if match['every'] and args.bag_every is None:
            args.bag_every = int(match['every'])
        if match['bits'] and not args.mono16_bit_depth:
            args.mono16_bit_depth = int(match['bits'])
        if _source_settings(args) != given:
            print(f'--resume: adapting on {match[0]}, as the run started', file=sys.stderr)
    exported = out_dir / EXPORT_RECORD
    if args.export is None and exported.is_file():
        args.export = exported.read_text().strip()
        print(f'--resume: exporting to {args.export}, as the run started', file=sys.stderr)


def _names_recorded_source(args: argparse.Namespace, match: re.Match[str]) -> bool:
    """Return whether ``args`` give no source, or the bag or pairs folder of ``match``."""
    if args.bag:
        return match['bag'] is not None and _source_path(args.bag) == match['bag']
    if args.pairs:
        return match['pairs'] is not None and _source_path(args.pairs) == match['pairs']
    return True


def _source_settings(args: argparse.Namespace) -> tuple:
    """Return the settings of ``args`` that say which pairs a run adapts on."""
    return args.bag, args.pairs, args.bag_every, args.mono16_bit_depth


def _source_path(path: str) -> str:
    """Return a bag or pairs folder as the run folder records it (absolute, links resolved)."""
    return str(Path(path).resolve())


def _continues_source(out_dir: Path, source: str, resume: bool) -> bool:
    """Return whether a resumed run continues on the pairs its folder records.

    ``--resume`` with other pairs than the run started on is refused: their held-out losses
    would not compare, and the checkpoint was adapted to the others.
    """
    record = out_dir / SOURCE_RECORD
    if not (resume and record.is_file()):
        return False
    started_on = record.read_text().strip()
    if started_on != source:
        raise StereoDepthError(f'{out_dir} adapts on {started_on}; --resume continues on '
                               f'those, not {source}')
    return True


def _check_pairs_folder(out_dir: Path, resumed: bool) -> None:
    """Refuse a bag run whose ``<out_dir>/pairs`` holds anything but adapt's extraction.

    A run extracts the bag's pairs there, in place of the earlier ones, so a folder of the
    user's own would be lost.
    """
    pairs = out_dir / 'pairs'
    if resumed or not pairs.exists() or (pairs / EXTRACTED_MARK).is_file():
        return
    raise StereoDepthError(f'{pairs} exists and holds files adapt did not extract (no '
                           f'{EXTRACTED_MARK}); a run from a bag extracts its pairs there: '
                           'choose another --out-dir')


def _start_weights(config_path: str, configured: str, given: bool) -> Path:
    """Return the weights an adaptation starts from, or StereoDepthError naming the setting.

    A relative ``model.init_weights`` of the config is looked for from the current folder,
    then among the package's shared files (a checkout, a pip or colcon install), so the
    configs' ``models/<backend>.safetensors`` is found from any folder.
    """
    start = Path(configured).expanduser()
    if start.is_file():
        return start
    if given:
        raise StereoDepthError(f'--weights {configured}: no such file')
    shared = None if start.is_absolute() else find_shared_file(configured)
    if shared is not None and shared.is_file():
        return shared
    raise StereoDepthError(f'weights to adapt {configured} (model.init_weights of '
                           f'{config_path}) do not exist; pass --weights')


def _check_export(export: str, start: Path) -> None:
    """Refuse to export over shipped weights; say when an earlier export will be replaced.

    The shipped ``models/<backend>.safetensors`` is what the node, ``process-bag`` and the next
    adaptation use by default; recovering it would take git.
    """
    target = Path(export).expanduser()
    shipped = {path.resolve() for path in
               (default_weights_path(backend) for backend in backend_names())
               if path is not None}
    if target.resolve() in shipped or (target.exists() and target.resolve() == start.resolve()):
        raise StereoDepthError(f'--export {export} would replace the weights the adaptation '
                               'starts from or the shipped ones (the default of the node, '
                               'process-bag and the next adaptation); export to a new file '
                               'outside the checkout, e.g. ~/stereo_weights/'
                               f'{target.stem}_mine{target.suffix}')
    if target.is_file():
        print(f'warning: --export {export} exists and is replaced when the run ends (a copy '
              f'of it is kept as {target.stem}.previous{target.suffix}, or -2, -3, ...)',
              file=sys.stderr)


def _first_missing(path: Path) -> Optional[Path]:
    """Return the outermost folder of ``path`` that does not exist yet (None: it exists)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _kept_on_failure(out_dir: Path, resumed: bool, bag: bool) -> frozenset[Path]:
    """Return what a run into ``out_dir`` that fails before its first checkpoint leaves there.

    What the folder held before the run (nothing where it does not exist yet), less what the
    run replaces: unless it resumes, the records of what it adapts on and where it exports (a
    later ``--resume`` would take pairs it never trained on, or an export the user has since
    dropped, from them), and from a bag the ``pairs`` an earlier run extracted (adapt's, as
    :func:`_check_pairs_folder` made sure).
    """
    before = frozenset(out_dir.iterdir()) if out_dir.is_dir() else frozenset()
    if resumed:
        return before
    return before - {out_dir / SOURCE_RECORD, out_dir / EXPORT_RECORD,
                     *((out_dir / 'pairs',) if bag else ())}


def _clean_up_failed_run(out_dir: Path, created: Optional[Path],
                         kept: frozenset[Path]) -> None:
    """Remove what a run that stopped before its first checkpoint wrote.

    The folders the run created go (``created``: the outermost); in an existing one, all but
    ``kept`` (:func:`_kept_on_failure`): the extracted pairs, the records, the log and the
    held-out losses go, the user's files stay.
    """
    from ..training.checkpoint import has_checkpoint
    from ..training.trainer import run_checkpoint_prefix
    if has_checkpoint(run_checkpoint_prefix(out_dir)):
        return
    if created is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
        for parent in out_dir.parents:  # the folders made above it, while empty
            if not parent.is_relative_to(created):
                break
            try:
                parent.rmdir()
            except OSError:  # another run's folder is in it
                break
        return
    written = set(out_dir.iterdir()) - kept if out_dir.is_dir() else set()
    for path in written:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _bag_pairs(args: argparse.Namespace, out_dir: Path, resumed: bool) -> Path:
    """Return ``<out_dir>/pairs`` holding the bag's pairs, and only those.

    The pairs are extracted into a folder of their own and then take the place of any
    earlier ``pairs`` (left by a run that failed before its first checkpoint). A resumed run
    keeps the pairs it started on.
    """
    from ..bags.extract import extract_pairs
    pairs = out_dir / 'pairs'
    if resumed and pairs.is_dir():
        print(f'resuming on the pairs extracted before into {pairs}')
        return pairs
    staging = out_dir / 'pairs.partial'
    shutil.rmtree(staging, ignore_errors=True)
    bad: list[str] = []
    notes: list[str] = []
    images: list[str] = []
    damage: list[str] = []
    try:
        count = extract_pairs(args.bag, staging, every=args.bag_every,
                              slop=approximate_slop(args),
                              left_topic=args.left_image, right_topic=args.right_image,
                              progress=not args.no_progress, skipped=bad,
                              bit_depth=args.mono16_bit_depth, notes=notes, chosen=images,
                              damage=damage)
        (staging / EXTRACTED_MARK).write_text(f'{args.bag}\n')
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(pairs, ignore_errors=True)
    staging.rename(pairs)
    which = (f', every {args.bag_every}th synchronised one (--bag-every {args.bag_every}; 1 '
             'takes all)' if args.bag_every > 1 else '')
    print(f'extracted {counted(count, "pair")}{which} of {" and ".join(images)} from '
          f'{args.bag} into {pairs}')
    if bad:
        print(f'skipped {counted(len(bad), "pair")} that could not be decoded (first: '
              f'{bad[0]})', file=sys.stderr)
    for line in damage:
        print(f'warning: bag {args.bag}: {line}', file=sys.stderr)
    for note in notes:  # adapting on images with 4 bits of grey: worth stopping for
        print(f'warning: {note}', file=sys.stderr)
    return pairs


def run(args: argparse.Namespace) -> int:
    """Adapt, then draw before/after pictures; print where the weights went."""
    if (args.left_image or args.right_image or args.approximate_sync
            or args.bag_every is not None) and not args.bag:
        raise ValueError('--left-image, --right-image, --approximate-sync and --bag-every '
                         'apply to --bag; give --bag')
    refuse_lone_slop(args.slop, args.approximate_sync)
    from ..training.adapt import adapt, check_adapt_run
    from ..training.config import load_config
    from ..training.figures import before_after, figure_pairs
    from ..torch_runtime import resolve_device
    from ..training.pseudo_labels import check_labeller, find_pairs, incomplete_pairs_warning
    from ..training.trainer import resumed_seed
    from ..weights import check_export_path
    from ..weights import read_metadata
    config = load_config(args.config)
    if args.weights:
        config.model.init_weights = args.weights
    if not config.model.init_weights:
        shipped = default_weights_path(config.backend)
        config.model.init_weights = str(shipped) if shipped else None
    start = _start_weights(args.config, config.model.init_weights or '', bool(args.weights))
    config.model.init_weights = str(start)
    metadata = read_metadata(start)
    if metadata.backend != config.backend:
        raise StereoDepthError(f'{start} holds {metadata.backend} weights, but {args.config} '
                               f'adapts {config.backend}')
    config.model.architecture = dict(metadata.architecture)
    if args.seed is not None:
        config.seed = args.seed
    if args.labeller:
        config.adaptation.labeller = args.labeller
    if args.labeller_weights:
        config.adaptation.labeller_weights = args.labeller_weights
    check_labeller(config.adaptation.labeller, config.adaptation.labeller_weights)
    out_dir = check_output_folder(args.out_dir or config.output.out_dir,
                                  '--out-dir' if args.out_dir else 'output.out_dir')
    if args.resume:
        _resume_as_started(args, out_dir)
        config.seed = resumed_seed(out_dir, config.seed, given=args.seed is not None)
    if args.bag_every is None:  # neither given nor recorded by the run being resumed
        args.bag_every = DEFAULT_BAG_EVERY
    if args.export is not None:  # --export=~/x reaches here unexpanded
        config.output.export = str(Path(args.export).expanduser()) if args.export else ''
    # Refused now, not after minutes of extracting pairs, labelling them and training.
    check_adapt_run(config, out_dir, args.steps, args.resume)
    resolve_device(args.device)
    if args.figures_on:
        figure_pairs(args.figures_on)
    if args.bag:
        source = f'--bag {_source_path(args.bag)} --bag-every {args.bag_every}'
    else:
        root = args.pairs or config.adaptation.pairs
        if not root:
            raise DatasetError('adapt needs pairs: --pairs DIR, --bag BAG or the config\'s '
                               'adaptation.pairs')
        try:  # a missing folder is refused before the run folder is made
            find_pairs(root)
        except DatasetError as error:
            if args.pairs:
                raise
            raise DatasetError(f'{error}: {args.config} adapts on adaptation.pairs = {root!r}; '
                               'give your pairs with --pairs DIR or --bag BAG') from None
        source = f'--pairs {_source_path(root)}'
        if args.mono16_bit_depth:
            config.adaptation.mono16_bit_depth = args.mono16_bit_depth
        warning = incomplete_pairs_warning(root)
        if warning:
            print(warning, file=sys.stderr)
    if args.mono16_bit_depth:  # pairs read over other bits are other pairs
        source += f' --mono16-bit-depth {args.mono16_bit_depth}'
    resumed = _continues_source(out_dir, source, args.resume)
    if args.bag:
        _check_pairs_folder(out_dir, resumed)
    if config.output.export:  # after the source: a refused --resume warns of no export
        _check_export(config.output.export, start)
        check_export_path(config.output.export, config.backend, out_dir)
    created = _first_missing(out_dir)
    kept = _kept_on_failure(out_dir, resumed, bool(args.bag))
    try:
        if not resumed:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / SOURCE_RECORD).write_text(source + '\n')
        if config.output.export:
            (out_dir / EXPORT_RECORD).write_text(f'{Path(config.output.export).resolve()}\n')
        pairs = _bag_pairs(args, out_dir, resumed) if args.bag else args.pairs
        result = adapt(config, pairs, device=args.device, steps=args.steps, out_dir=out_dir,
                       progress=not args.no_progress, resume=args.resume,
                       invocation=getattr(args, 'invocation', None))
    except BaseException:
        _clean_up_failed_run(out_dir, created, kept)
        raise
    figures = before_after(config.backend, start, result.weights,
                           args.figures_on or pairs or config.adaptation.pairs,
                           out_dir / 'before_after', device=args.device)
    print(f'{config.backend}: adapted {result.step} steps in {result.wall_time_s / 60:.1f} min; '
          f'weights {result.exported or result.weights}; curves {out_dir / "curves.png"}; '
          f'before/after pictures: {", ".join(str(path) for path in figures)}')
    return 0
