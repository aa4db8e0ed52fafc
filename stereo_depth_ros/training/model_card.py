"""Model cards ``models/<backend>.yaml``: how the shipped weights were made and how they score.

The training part comes from the weights file's own metadata (written by the trainer), so a
card can always be regenerated from the ``.safetensors`` file. The evaluation part is measured
in this process, with the functions behind ``stereo-depth eval`` and ``stereo-depth
real-bench``, for the learned backend and for ``sgbm`` on the same data: the real suite
(Middlebury 2003 cones/teddy and the motorcycle and aloe pairs of ``sample_data/real_extra``),
full-range synthetic test scenes of a KITTI-sized camera and held-out synthetic scenes
(``--dataset synthetic --root eval:N``). Reproduce a card::

    python -m stereo_depth_ros.training.model_card --backend dispnetc
    python -m stereo_depth_ros.training.model_card --all   # every models/*.safetensors

``--no-eval`` rewrites only the training part (what the trainer does after export); the
measurements of a card of the same weights file stay.
"""

import argparse
import hashlib
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from safetensors import safe_open

from ..atomic_files import written_atomically
from ..commands.common import non_negative_int
from ..backends.base import DisparityBackend
from ..backends.registry import backend_record, learned_backend_names
from ..errors import EXIT_BAD_INPUT, StereoDepthError
from ..resources import find_shared_file
from ..weights import CARD_FIRST_LINE, read_metadata

#: Test scenes of the cards: 200, because sgbm's per-scene EPE is heavy-tailed (one failed
#: scene moves a 50-scene mean by ~1 px; disjoint 50-scene sets gave sgbm 3.1 to 4.9 px).
DEFAULT_SYNTHETIC = 'eval:200'
#: Test scenes of the full-range (0-192 px, 1248x384) synthetic evaluation.
FULL_RANGE_SCENES = 20
#: Largest weights file the project ships.
MAX_FILE_BYTES = 16 * 2 ** 20
METRICS = ('epe', 'd1', 'bad1', 'bad2', 'bad3', 'density', 'ms_per_pair', 'n')


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def eval_command(backend: str, dataset: str, root: str,
                 weights: Optional[Path] = None) -> list[str]:
    """Return the ``stereo-depth eval`` arguments (after the program name) for one run."""
    args = ['eval', '--backend', backend, '--dataset', dataset, '--root', str(root), '--json',
            '--device', 'cpu']
    if weights is not None:
        args += ['--weights', str(weights)]
    return args


def unshipped(backend: str, weights: Path) -> Optional[Path]:
    """Return ``weights`` unless they are the shipped ``models/<backend>.safetensors``.

    A card's commands name the weights they measured where those are not the default, so
    that running them measures the same file.
    """
    from ..resources import default_weights_path
    shipped = default_weights_path(backend)
    if shipped is not None and Path(weights).resolve() == shipped.resolve():
        return None
    return Path(weights)


def run_eval(backend: str, dataset: str, root: str, weights: Optional[Path] = None) -> dict:
    """Score ``backend`` on a dataset in this process; the metrics ``eval --json`` prints.

    The same calls as ``stereo-depth eval`` (:func:`eval_command` gives its arguments):
    the backend on the CPU, :func:`~stereo_depth_ros.evaluation.evaluate.evaluate_backend`;
    NaN or infinite means become None, as in its JSON.
    """
    from ..backends import create_backend
    from ..data.datasets import load_dataset
    from ..evaluation.evaluate import evaluate_backend
    model = create_backend(backend, weights=weights, device='cpu')
    summary = evaluate_backend(model, load_dataset(dataset, root), progress=False)
    return {key: (None if isinstance(summary[key], float) and not math.isfinite(summary[key])
                  else summary[key]) for key in METRICS if key in summary}


def _rounded(metrics: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}


def _main_metrics(summary: dict) -> dict:
    return _rounded({key: summary[key] for key in METRICS if key in summary})


def _real_suite_scores(summary: dict) -> dict[str, Any]:
    """Return the main metrics, the bands, the per-scene bad-2 and the pooled figures.

    The main metrics are means over the scenes; ``pooled`` the same over all the scenes'
    ground-truth pixels together (``real-bench``'s ``pooled`` row).
    """
    bands = {key: round(value, 4) for key, value in summary.items()
             if key.startswith(('epe_', 'bad2_', 'bad3_')) and math.isfinite(value)}
    pooled = {key: value for key, value in summary['pooled'].items() if key != 'pixels'}
    return {**_main_metrics(summary), 'bands': bands,
            'bad2_per_scene': {row['name']: round(row['bad2'], 4) for row in summary['pairs']},
            'pooled': _rounded(pooled)}


def evaluate_real(backend: str, weights: Path) -> dict[str, Any]:
    """Measure ``backend`` and sgbm (its defaults) on the real suite in one run."""
    from ..backends import create_backend
    from ..evaluation.real_bench import run_real_bench
    results = run_real_bench([create_backend(backend, weights=weights, device='cpu'),
                              create_backend('sgbm')], progress=False)
    own = unshipped(backend, weights)
    chosen = f' --backend {backend} --weights {shown_path(own)}' if own is not None else ''
    # On the CPU, as measured here: the default device (auto) would take a GPU, in fp16.
    entry: dict[str, Any] = {'command': f'stereo-depth real-bench --backends sgbm,{backend}'
                                        f'{chosen} --device cpu',
                             'scenes': [row['name'] for row in results['sgbm']['pairs']]}
    for name, summary in results.items():
        entry[name] = _real_suite_scores(summary)
    if refines_by_default(backend):
        alone = run_real_bench([network_alone(backend, weights)], progress=False)[backend]
        entry['without_refinement'] = {
            'command': network_alone_command(backend, own), **_real_suite_scores(alone)}
    ours, sgbm = entry[backend], entry['sgbm']
    entry['epe_lower_than_sgbm'] = bool(ours['epe'] < sgbm['epe'])
    entry['bad2_lower_than_sgbm'] = bool(ours['bad2'] < sgbm['bad2'])
    entry['scenes_with_lower_bad2'] = sum(
        ours['bad2_per_scene'][scene] < sgbm['bad2_per_scene'][scene]
        for scene in entry['scenes'])
    return entry


def refines_by_default(backend: str) -> bool:
    """Return whether ``backend``'s defaults refine its network's output by matching."""
    return default_inference_options(backend)['refine_radius'] > 0


def network_alone(backend: str, weights: Path) -> DisparityBackend:
    """Return ``backend`` on the CPU without its refinement by matching (``refine_radius`` 0)."""
    from ..backends import create_backend
    return create_backend(backend, weights=weights, device='cpu', refine_radius=0.0)


def evaluate_full_range(backend: str, weights: Path, count: int = FULL_RANGE_SCENES
                        ) -> dict[str, Any]:
    """Measure ``backend`` and sgbm on test scenes of a KITTI-sized camera, 0-192 px.

    Besides the main metrics and bad-3 per band, each gets the bad-3 at >= 64 px of all
    scenes' pixels pooled, split by what the right camera sees
    (:func:`~stereo_depth_ros.evaluation.metrics.pooled_visibility`).
    """
    from ..backends import create_backend
    import numpy as np
    from ..data.datasets import StereoSample
    from ..evaluation.evaluate import evaluate_backend
    from ..evaluation.metrics import fill_invalid_kitti, pooled_visibility, visibility_counts
    from .selection import full_range_test_scenes
    samples = full_range_test_scenes(count)
    entry: dict[str, Any] = {
        'scenes': f'{count} test layered scenes, the seeds of eval:{count} made at 1248x384 '
                  'with disparities 1-192 px (this command only; eval makes them at 512x256, '
                  '0-64 px)'}
    runs = [(backend, create_backend(backend, weights=weights, device='cpu')),
            ('sgbm', create_backend('sgbm'))]
    if refines_by_default(backend):
        runs.append(('without_refinement', network_alone(backend, weights)))
    for name, model in runs:
        counts = np.zeros(4)  # the pixels at >= 64 px by visibility, summed over the scenes

        def tally(sample: StereoSample, prediction: np.ndarray) -> None:
            counts[:] += visibility_counts(fill_invalid_kitti(prediction), sample.disparity)

        summary = evaluate_backend(model, samples, progress=False, bands=True,
                                   on_prediction=tally)
        entry[name] = {**_main_metrics(summary),
                       **{key: round(summary[key], 4) for key in (
                           'bad3_0_32', 'bad3_32_64', 'bad3_64_128', 'bad3_128_256')},
                       **{key: round(value, 4)
                          for key, value in pooled_visibility(counts).items()}}
    return entry


def evaluate(backend: str, weights: Path, synthetic: str = DEFAULT_SYNTHETIC,
             real: bool = True, full_range: int = FULL_RANGE_SCENES) -> dict[str, Any]:
    """Measure ``backend`` (these ``weights``) and sgbm on the card's datasets."""
    evaluations: dict[str, Any] = {}
    if real:
        evaluations['real_suite'] = evaluate_real(backend, weights)
    if full_range:
        evaluations['full_range_synthetic'] = evaluate_full_range(backend, weights, full_range)
    for key, dataset, root in [('held_out_synthetic', 'synthetic', synthetic)]:
        learned = run_eval(backend, dataset, root, weights)
        sgbm = run_eval('sgbm', dataset, root)
        evaluations[key] = {
            'command': 'stereo-depth ' + shlex.join(eval_command(
                backend, dataset, root, unshipped(backend, weights))),
            'root': root,
            backend: _rounded(learned),
            'sgbm': _rounded(sgbm),
            'epe_lower_than_sgbm': bool(learned['epe'] < sgbm['epe']),
        }
    return evaluations


def default_inference_options(backend: str) -> dict[str, Any]:
    """Return the default options of a learned backend that change its output.

    ``near_from`` is the value its default 0 stands for (the network's ``default_near_from``),
    ``match_passes`` the value its default ``auto`` stands for (``always`` or ``never``),
    ``refine_radius`` the radius its default -1 stands for (the network's
    ``default_refine_radius``).
    """
    from dataclasses import asdict
    from ..backends.options import LearnedOptions
    from ..networks.inference import (resolve_match_passes, resolve_near_from,
                                      resolve_refine_radius)
    options = asdict(LearnedOptions())
    keys = ('scale', 'near_scale', 'near_from', 'near_passes', 'match_passes', 'refine_radius',
            'max_disparity')
    chosen = {key: options[key] for key in keys}
    network = backend_record(backend).network
    if network is not None:
        chosen['near_from'] = resolve_near_from(network, chosen['near_from'])
        chosen['refine_radius'] = resolve_refine_radius(network, chosen['refine_radius'])
        matched = resolve_match_passes(network, chosen['match_passes'])
        chosen['match_passes'] = 'always' if matched else 'never'
    return chosen


def count_parameters(weights: Path) -> int:
    """Count the learned parameters in a weights file (BatchNorm statistics excluded)."""
    with safe_open(str(weights), framework='pt') as handle:
        return sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys()
                   if not key.endswith(('running_mean', 'running_var', 'num_batches_tracked')))


def gap_to_sgbm(backend: str, evaluations: dict, training: dict, architecture: dict,
                file_size_bytes: int) -> Optional[str]:
    """Say where sgbm still wins and what would close the gap; None where it never does.

    The widest network that fits the 16 MiB limit is estimated from the file's size, which
    grows with the square of ``width``.
    """
    behind = [f'{key} (EPE {value[backend]["epe"]:.2f} vs {value["sgbm"]["epe"]:.2f} px)'
              for key, value in evaluations.items()
              if backend in value and 'sgbm' in value
              and not value[backend]['epe'] < value['sgbm']['epe']]
    if not behind:
        return None
    sources = [part for part in str(training.get('data', '')).split('; ')
               if part and not part.startswith('augmentation')]
    synthetic_only = bool(sources) and all(part.startswith('synthetic') for part in sources)
    seen = 'only synthetic scenes' if synthetic_only else 'the data listed under training'
    steps = training.get('steps')
    width = architecture.get('width')
    wider = 'a wider network'
    if width and file_size_bytes > 0:
        widest = float(width) * math.sqrt(MAX_FILE_BYTES / file_size_bytes)
        wider = (f'a wider network than width {width:g} (the 16 MiB file limit allows about '
                 f'{math.floor(widest * 100) / 100:g} in this dtype)')
    return (f'sgbm is still better on {", ".join(behind)}. What would close the gap: real '
            f'stereo pairs in training (these weights saw {seen}; the configs also accept '
            f'sceneflow, kitti2015 and vkitti2 sources), many more steps than the '
            f'{steps if steps is not None else "few"} of the last stage (a GPU), and '
            f'{wider}.')


#: How the evaluation part was measured (kept up to date in cards whose measurements are kept).
EVALUATION_NOTE = ('measured with `stereo-depth eval` and `stereo-depth real-bench` (KITTI-style '
                   'filling of invalid pixels; density reported separately); sgbm with its '
                   'defaults on the same data in the same run. The real scenes are never used '
                   'for training or choosing between runs; one tuning decision was taken after '
                   'seeing them (the near_from default kept at 0.5, README.md).')
#: Said of ``training.command`` where the weights do not record the command that made them
#: (by the command that made them: stereo-depth train, which exports by default, or adapt).
UNRECORDED_COMMAND = {
    'train': ('the config of the run that made these weights, not its whole command: such a '
              'run is one stage of several, with the starting weights and flags (--weights, '
              '--minutes, --no-export) that models/README.md gives; run as written it would '
              'start from the shipped weights and export over them'),
    'adapt': ('the config of the run that made these weights, not its whole command: it '
              'started from earlier weights (--weights) that models/README.md gives; run as '
              'written it would adapt the shipped weights once more'),
}


def training_command(weights: Path, experiment: Optional[str], backend: str,
                     verb: str = 'train') -> str:
    """Return the ``stereo-depth train`` (or ``verb``) line of the config named ``experiment``.

    The config is looked up (by its ``name:``) in the ``config`` folder beside the weights'
    folder (``models/``); the weights' own run may have been one stage of several (see the
    card's notes), so it is not assumed to be ``train_<backend>.yaml``. ``verb`` is the
    command that ran it (``adapt`` for weights of ``stereo-depth adapt``).
    """
    # Beside the weights' folder (models/ of a checkout), then this checkout's own: weights
    # exported elsewhere (adapt --export /somewhere/x.safetensors) came from its configs.
    shipped = find_shared_file('config')
    folders = [weights.resolve().parent.parent / 'config', *([shipped] if shipped else [])]
    for folder in dict.fromkeys(folders):
        for path in sorted(folder.glob('*.yaml')):
            try:
                name = (yaml.safe_load(path.read_text()) or {}).get('name')
            except (OSError, yaml.YAMLError, AttributeError):
                continue
            if experiment and name == experiment:
                return f'stereo-depth {verb} --config config/{path.name}'
    return f'stereo-depth {verb} (experiment {experiment or backend}; config not found)'


def shown_path(weights: Path) -> str:
    """Return ``models/<file>`` for weights in a checkout's models folder, else the path."""
    folder = weights.resolve().parent
    if folder.name == 'models' and (folder.parent / 'config').is_dir():
        return f'models/{weights.name}'
    return str(weights.resolve())


def network_alone_command(backend: str, weights: Optional[Path] = None) -> str:
    """Return the real-bench command of ``backend`` without its refinement (beside sgbm).

    ``weights``: where they are not the shipped ones (:func:`unshipped`).
    """
    chosen = f' --weights {shown_path(weights)}' if weights is not None else ''
    return (f'stereo-depth real-bench --backend {backend}{chosen} --backend-option '
            'refine_radius=0 --device cpu')


def build_card(weights: Path, evaluations: Optional[dict] = None,
               eval_flags: str = '') -> dict[str, Any]:
    """Return the card of a weights file (training from its metadata, given evaluations)."""
    metadata = read_metadata(weights)
    training = metadata.training()
    config = training.pop('config', {}) or {}
    backend = metadata.backend
    parameters = count_parameters(weights)
    size = weights.stat().st_size
    card: dict[str, Any] = {
        'backend': backend,
        'weights': weights.name,
        'file_size_bytes': size,
        'file_size_mib': round(size / 2 ** 20, 2),
        'sha256': sha256(weights),
        'dtype': metadata.extra.get('dtype', 'fp32'),
        'parameters': parameters,
        'architecture': metadata.architecture,
    }
    if training:
        wall = training.get('wall_time_s')
        # stereo-depth adapt records the pairs it adapted on; stereo-depth train none.
        adapted = bool(config.get('adaptation', {}).get('pairs'))
        recorded = training.get('invocation')  # the exact command (trainers since 2026-12-06)
        verb = 'adapt' if adapted else 'train'
        card['training'] = {
            'command': recorded or training_command(weights, training.get('experiment'),
                                                    backend, verb),
            **({} if recorded else {'command_note': UNRECORDED_COMMAND[verb]}),
            **training,
            **({'wall_time_min': round(float(wall) / 60, 1)} if wall is not None else {}),
            'optimization': config.get('optimization', {}),
            'loss': config.get('model', {}).get('loss', {}),
        }
    if evaluations:
        synthetic = evaluations.get('held_out_synthetic', {})
        card['evaluation'] = {
            'command': f'python -m stereo_depth_ros.training.model_card --backend {backend}'
                       + ('' if unshipped(backend, weights) is None
                          else f' --models-dir {shown_path(Path(weights).parent)}')
                       + (f' {eval_flags}' if eval_flags else ''),
            'note': EVALUATION_NOTE,
            'backend_options': default_inference_options(backend),
            **evaluations,
        }
        real = evaluations.get('real_suite', {})
        if real:
            card['evaluation']['verdict'] = (
                f'{backend} {"beats" if real["bad2_lower_than_sgbm"] else "does NOT beat"} '
                f'sgbm on the real scenes (bad-2 {100 * real[backend]["bad2"]:.1f} % vs '
                f'{100 * real["sgbm"]["bad2"]:.1f} %; lower on '
                f'{real["scenes_with_lower_bad2"]} of {len(real["scenes"])} scenes)')
        elif synthetic:
            better = synthetic['epe_lower_than_sgbm']
            card['evaluation']['verdict'] = (
                f'{backend} {"beats" if better else "does NOT beat"} sgbm on held-out synthetic '
                f'scenes (EPE {synthetic[backend]["epe"]:.3f} vs {synthetic["sgbm"]["epe"]:.3f} '
                f'px)')
        gap = gap_to_sgbm(backend, evaluations, training, metadata.architecture, size)
        if gap:
            card['evaluation']['closing_the_gap'] = gap
    return card


def write_card(weights: str | Path, card_path: str | Path,
               evaluations: Optional[dict] = None, notes: Optional[str] = None,
               eval_flags: str = '') -> Path:
    """Write the YAML card of ``weights`` to ``card_path``.

    ``notes`` (free text, e.g. how a run was resumed) is kept from an existing card of the
    same weights file when not given, and so is its evaluation part when ``evaluations`` is
    None (``--no-eval``). ``eval_flags``: the evaluation's options that differ from the
    defaults, for its recorded command.
    """
    card = build_card(Path(weights), evaluations, eval_flags)
    card_path = Path(card_path)
    previous: dict[str, Any] = {}
    if card_path.is_file():
        try:
            previous = yaml.safe_load(card_path.read_text()) or {}
        except yaml.YAMLError:
            previous = {}
        if previous.get('sha256') != card['sha256']:
            previous = {}  # another file's card: nothing of it describes these weights
    if notes is None:
        notes = previous.get('notes')
    if evaluations is None and isinstance(previous.get('evaluation'), dict):
        # The same weights measure the same: their evaluation stays (its wording refreshed).
        card['evaluation'] = {**previous['evaluation'], 'note': EVALUATION_NOTE}
    if notes:
        card['notes'] = notes
    header = (f'{CARD_FIRST_LINE}{shown_path(Path(weights))} (generated by '
              f'stereo_depth_ros/training/model_card.py; do not edit by hand)\n')
    with written_atomically(card_path) as staging:
        staging.write_text(header + yaml.safe_dump(card, sort_keys=False, width=99))
    return card_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate shipped weights and (re)write their model cards."""
    parser = argparse.ArgumentParser(prog='python -m stereo_depth_ros.training.model_card',
                                     description=__doc__.strip().splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--backend', choices=learned_backend_names(), help='one learned backend')
    which.add_argument('--all', action='store_true', help='every models/<backend>.safetensors')
    parser.add_argument('--models-dir', default='models', help='folder of weights and cards')
    parser.add_argument('--synthetic', default=DEFAULT_SYNTHETIC,
                        help=f'held-out synthetic seeds (default {DEFAULT_SYNTHETIC})')
    parser.add_argument('--no-real', action='store_true', help='skip the real suite')
    parser.add_argument('--full-range', type=non_negative_int, default=FULL_RANGE_SCENES,
                        help=f'full-range test scenes (default {FULL_RANGE_SCENES}; 0 skips)')
    parser.add_argument('--no-eval', action='store_true', help='training part only')
    parser.add_argument('--note', default=None,
                        help='free-text notes for the card (default: keep the existing ones)')
    args = parser.parse_args(argv)
    models = Path(args.models_dir)
    backends = [args.backend] if not args.all else [
        name for name in learned_backend_names() if (models / f'{name}.safetensors').is_file()]
    # What the recorded command needs besides --backend and --models-dir to measure the same.
    flags = [*(['--synthetic', args.synthetic] if args.synthetic != DEFAULT_SYNTHETIC else []),
             *(['--no-real'] if args.no_real else []),
             *(['--full-range', str(args.full_range)]
               if args.full_range != FULL_RANGE_SCENES else [])]
    try:
        if not backends:
            raise StereoDepthError(f'--all: no weights of a learned backend in {models} '
                                   f'(<backend>.safetensors)')
        for backend in backends:
            weights = models / f'{backend}.safetensors'
            evaluations = None if args.no_eval else evaluate(
                backend, weights, args.synthetic, not args.no_real, args.full_range)
            path = write_card(weights, models / f'{backend}.yaml', evaluations, args.note,
                              shlex.join(flags))
            print(f'wrote {path}')
            if evaluations:
                for key, value in evaluations.items():
                    print(f'  {key}: {backend} EPE {value[backend]["epe"]:.3f} px bad-2 '
                          f'{100 * value[backend]["bad2"]:.1f} %, sgbm EPE '
                          f'{value["sgbm"]["epe"]:.3f} px bad-2 '
                          f'{100 * value["sgbm"]["bad2"]:.1f} %')
    except StereoDepthError as error:
        print(f'model_card: error: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == '__main__':
    sys.exit(main())
