"""Run the main job on built-in data: synthetic road drive bag, road scenes and Middlebury."""

import argparse
from pathlib import Path

from tqdm import tqdm

from .common import (add_backend_arguments, non_negative_int, pipeline_from_args, positive_int,
                     strict_json)
from ..data.datasets import middlebury2003_dataset
from ..data.synthetic import eval_seeds, make_scene
from ..evaluation.metrics import evaluate_pair
from ..evaluation.obstacles import mask_iou
from ..pipeline import StereoPipeline
from ..resources import sample_data_dir
from ..visualize import colorize_disparity, overlay_obstacle, save_rgb, side_by_side


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo options."""
    add_backend_arguments(parser, params_file=True)
    parser.add_argument('--out-dir', default='out/demo', help='output folder (default out/demo)')
    parser.add_argument('--road-scenes', type=non_negative_int, default=3,
                        help='held-out synthetic road scenes to show (default 3)')
    parser.add_argument('--frames', type=positive_int, default=12,
                        help='frames of the synthetic drive turned into a bag (default 12)')
    parser.add_argument('--skip-bag', action='store_true',
                        help='skip the KITTI -> bag -> process-bag part')
    parser.add_argument('--no-compare', action='store_true',
                        help='skip the comparison of every backend whose weights are present')


def _road_scenes(pipeline: StereoPipeline, count: int, out: Path) -> list[dict]:
    rows = []
    for seed in tqdm(eval_seeds(count), desc='road scenes', unit='scene'):
        scene = make_scene(seed, kind='road')
        result = pipeline.process(scene.left, scene.right, scene.camera)
        metrics = evaluate_pair(result.disparity, scene.disparity)
        obstacle = result.obstacle
        # Default outputs with a camera; a road scene has 1-3 obstacles.
        assert obstacle is not None and result.color is not None
        assert scene.obstacle_mask is not None and scene.obstacle_distance is not None
        row = {'scene': f'road_{seed}', **{k: round(v, 4) for k, v in metrics.items()},
               'obstacle_found': bool(obstacle.found),
               'obstacle_distance_m': round(float(obstacle.distance), 3),
               'true_distance_m': round(float(scene.obstacle_distance), 3),
               'obstacle_iou': round(mask_iou(obstacle.mask, scene.obstacle_mask), 4)}
        rows.append(row)
        panel = side_by_side(scene.left, result.color, overlay_obstacle(scene.left, obstacle))
        save_rgb(out / f'road_{seed}.png', panel)
    return rows


def _middlebury(pipeline: StereoPipeline, out: Path) -> list[dict]:
    rows = []
    for sample in middlebury2003_dataset(sample_data_dir() / 'middlebury2003'):
        result = pipeline.process(sample.left, sample.right)
        metrics = evaluate_pair(result.disparity, sample.disparity)
        rows.append({'scene': sample.name, **{k: round(v, 4) for k, v in metrics.items()}})
        truth = colorize_disparity(sample.disparity, max_disparity=64)
        panel = side_by_side(sample.left, colorize_disparity(result.disparity, 64), truth)
        save_rgb(out / f'middlebury_{sample.name}.png', panel)
    return rows


def _compare_backends(out: Path) -> list[dict]:
    """Score every backend that can run (weights present) on held-out scenes and real ones."""
    from ..backends import backend_record, backend_names, create_backend
    from ..data.datasets import SyntheticSamples, real_suite_dataset
    from ..evaluation.evaluate import evaluate_backend
    synthetic = SyntheticSamples(list(eval_seeds(4)))
    real = real_suite_dataset()
    rows = []
    for name in backend_names():
        info = backend_record(name)
        if info.needs_weights and info.default_weights() is None:
            continue
        backend = create_backend(name)
        row = {'backend': name}
        for label, samples in (('synthetic', synthetic), ('real', real)):
            result = evaluate_backend(backend, samples, progress=False)
            row[f'{label}_epe'] = round(result['epe'], 3)
            row[f'{label}_bad2'] = round(result['bad2'], 4)
            row[f'{label}_ms'] = round(result['ms_per_pair'], 1)
        rows.append(row)
        first = synthetic[0]
        save_rgb(out / f'compare_{name}.png', side_by_side(
            first.left, colorize_disparity(backend.compute(first.left, first.right), 64),
            colorize_disparity(first.disparity, 64)))
    return rows


def run(args: argparse.Namespace) -> int:
    """Write pictures and a metrics summary to the output folder."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One pipeline, configured by --params-file and the backend flags, serves every part.
    pipeline = pipeline_from_args(args).pipeline
    summary: dict = {'backend': pipeline.backend.describe()}
    if not args.skip_bag:
        from ..bag_demo import run_bag_demo
        summary['bag_demo'] = run_bag_demo(out / 'drive', pipeline, n_frames=args.frames)
    summary['road_scenes'] = _road_scenes(pipeline, args.road_scenes, out)
    summary['middlebury2003'] = _middlebury(pipeline, out)
    if not args.no_compare:
        summary['comparison'] = _compare_backends(out)
    (out / 'summary.json').write_text(strict_json(summary, indent=2))
    print(f'\nbackend: {summary["backend"]}')
    drive = summary.get('bag_demo')
    if drive:
        print(f'  drive ({drive["pairs"]} frames, KITTI layout -> {drive["storage"]} bag -> '
              f'process-bag at {drive["process_bag_fps"]:.1f} frames/s): EPE '
              f'{drive["mean_epe_px"]:.2f} px, D1 {100 * drive["mean_d1"]:.1f} %, obstacle '
              f'distance error {drive["mean_distance_error_m"]:.2f} m, IoU '
              f'{drive["mean_obstacle_iou"]:.2f}; preview {drive["files"]["preview.gif"]}')
    for row in summary['road_scenes']:
        print(f'  {row["scene"]}: EPE {row["epe"]:.2f} px, obstacle at '
              f'{row["obstacle_distance_m"]:.2f} m (true {row["true_distance_m"]:.2f} m), '
              f'IoU {row["obstacle_iou"]:.2f}')
    for row in summary['middlebury2003']:
        print(f'  middlebury {row["scene"]}: EPE {row["epe"]:.2f} px, '
              f'bad-2 {100 * row["bad2"]:.1f} %, density {100 * row["density"]:.1f} %')
    if summary.get('comparison'):
        print('\nall backends (4 held-out synthetic scenes 256x512, 0-64 px | real suite: '
              'cones, teddy, motorcycle, aloe; `stereo-depth real-bench` has the detail; '
              'means over the scenes; ms: the median of one call per scene, start-up at a new '
              'size included, `stereo-depth bench` times warm calls):')
        print(f'  {"backend":<12} {"EPE px":>7} {"bad-2":>7} {"ms":>7} | {"EPE px":>7} '
              f'{"bad-2":>7} {"ms":>7}')
        for row in summary['comparison']:
            print(f'  {row["backend"]:<12} {row["synthetic_epe"]:>7.2f} '
                  f'{100 * row["synthetic_bad2"]:>6.1f}% {row["synthetic_ms"]:>7.1f} | '
                  f'{row["real_epe"]:>7.2f} {100 * row["real_bad2"]:>6.1f}% '
                  f'{row["real_ms"]:>7.1f}')
    print(f'\nwrote pictures and summary.json to {out.resolve()}')
    return 0
