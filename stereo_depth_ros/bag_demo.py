"""The bag demo: synthetic road drive -> KITTI raw layout -> kitti2bag -> process-bag -> preview.

Everything the preview and the metrics show is read back from the processed bag, so the demo
exercises the same path a user's recording takes.
"""

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image as PILImage
from tqdm import tqdm

from .bags.from_kitti import kitti_to_bag, topic_names
from .bags.process import process_bag
from .bags.reader import BagInput
from .camera import StereoCameraModel
from .data.synthetic import make_road_sequence
from .evaluation.metrics import evaluate_pair
from .evaluation.obstacles import mask_iou
from .images import mask_bounding_box
from .kitti import parse_kitti_time, write_kitti_disparity, write_raw_drive
from .msgs.images import image_to_array, stereo_input_from_image
from .msgs.stereo import disparity_from_message
from .msgs.types import stamp_to_ns
from .obstacle import ObstacleResult
from .pipeline import StereoPipeline
from .pipeline_config import configure_pipeline
from .visualize import colorize_depth, grid, overlay_obstacle, save_rgb, side_by_side, titled

#: First stamp of the demo drive (the first frame of KITTI drive 2011_09_26_0001).
DEMO_START = '2011-09-26 13:02:25.964389445'
#: Seed of the demo's road world (not a training seed).
DEMO_SEED = 1_000_777
#: Frames shown in the contact sheet.
SHEET_ROWS = 6


def _obstacle_from_messages(mask_msg: Any, range_msg: Any) -> ObstacleResult:
    """Rebuild the nearest obstacle from its mono8 mask and Range messages."""
    mask = image_to_array(mask_msg)[0] > 0
    distance = float(range_msg.range)
    if not mask.any() or not np.isfinite(distance):
        return ObstacleResult(mask=mask)
    return ObstacleResult(mask=mask, distance=distance, bbox=mask_bounding_box(mask),
                          area=int(mask.sum()))


def _read_outputs(bag_path: Path, names: dict[str, str], namespace: str) -> dict[int, dict]:
    """Return stamp -> {name: message} of the processed bag's images and outputs."""
    wanted = {names['left_image']: 'left', names['left_info']: 'left_info',
              names['right_info']: 'right_info', f'{namespace}/disparity': 'disparity',
              f'{namespace}/disparity/color': 'color', f'{namespace}/obstacle/mask': 'mask',
              f'{namespace}/depth/image_rect': 'depth',
              f'{namespace}/obstacle/range': 'range'}
    frames: dict[int, dict] = {}
    with BagInput(bag_path) as bag:
        for connection, _, data in bag.messages():
            key = wanted.get(connection.topic)
            if key is not None:
                msg = bag.deserialize(data, connection)
                frames.setdefault(stamp_to_ns(msg.header.stamp), {})[key] = msg
    return frames


def _round(value: float, digits: int = 4) -> Optional[float]:
    return round(float(value), digits) if np.isfinite(value) else None


def run_bag_demo(out_dir: str | Path, pipeline: Optional[StereoPipeline] = None,
                 n_frames: int = 12, seed: int = DEMO_SEED, storage: str = 'mcap',
                 progress: bool = True) -> dict[str, Any]:
    """Run the bag demo into ``out_dir`` and return its summary (also in ``summary.json``).

    ``pipeline`` processes the bag as it is (backend, options, depth range, obstacle
    settings; the bag gets the node's default output topics, which the demo reads back);
    default: the node's default configuration. Outputs of an earlier run in
    ``out_dir`` are replaced.

    Writes ``kitti/`` (the drive, with ground-truth disparity in ``disp_02/`` and obstacle
    distances in ``ground_truth.json``), ``bag_kitti/``, ``bag_processed/``, ``preview.png``
    (contact sheet: left | colourised disparity | obstacle overlay), ``preview.gif`` and
    per-frame ``metrics.csv`` / ``metrics.json`` (EPE, D1, obstacle distance error, mask IoU).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in ('kitti', 'bag_kitti', 'bag_processed'):  # outputs of an earlier run
        shutil.rmtree(out / old, ignore_errors=True)
    start = time.perf_counter()
    scenes = make_road_sequence(seed, n_frames)
    camera = scenes[0].camera
    first = parse_kitti_time(DEMO_START)
    stamps = [first + index * 100_000_000 for index in range(n_frames)]
    drive = write_raw_drive(out / 'kitti', [s.left for s in scenes], [s.right for s in scenes],
                            camera, stamps, date='2011_09_26', drive=1)
    for index, scene in enumerate(scenes):
        write_kitti_disparity(drive / 'disp_02' / 'data' / f'{index:010d}.png', scene.disparity)
    truth = [{'frame': i, 'stamp_ns': stamps[i], 'obstacle_distance_m': s.obstacle_distance}
             for i, s in enumerate(scenes)]
    (drive / 'ground_truth.json').write_text(json.dumps(truth, indent=2))

    kitti_summary = kitti_to_bag(drive, out / 'bag_kitti', storage=storage, progress=progress)
    if pipeline is None:
        pipeline = configure_pipeline({}).pipeline
    processed = process_bag(out / 'bag_kitti', out / 'bag_processed', pipeline, storage=storage,
                            progress=progress)
    names = topic_names()
    frames = _read_outputs(out / 'bag_processed', names, processed.namespace)

    rows: list[dict[str, Optional[float]]] = []  # frame and stamp_ns are ints
    panels: list[np.ndarray] = []
    for index, scene in enumerate(tqdm(scenes, desc='preview', unit='frame',
                                       disable=not progress)):
        found = frames.get(stamps[index], {})
        if 'disparity' not in found:
            continue
        model = StereoCameraModel.from_camera_info(found['left_info'], found['right_info'])
        adjusted, f, t = disparity_from_message(found['disparity'])
        raw = adjusted + np.float32(model.disparity_offset)
        metrics = evaluate_pair(raw, scene.disparity)
        obstacle = _obstacle_from_messages(found['mask'], found['range'])
        error = abs(obstacle.distance - scene.obstacle_distance) \
            if scene.obstacle_distance is not None else float('nan')
        iou = mask_iou(obstacle.mask, scene.obstacle_mask) \
            if scene.obstacle_mask is not None else float('nan')
        rows.append({'frame': index, 'stamp_ns': stamps[index],
                     'epe_px': _round(metrics['epe']), 'd1': _round(metrics['d1']),
                     'density': _round(metrics['density']),
                     'obstacle_distance_m': _round(obstacle.distance, 3),
                     'true_distance_m': _round(scene.obstacle_distance or float('nan'), 3),
                     'distance_error_m': _round(error, 3),
                     'obstacle_iou': _round(iou),
                     'f_px': _round(f, 3), 't_m': _round(t, 4)})
        left = stereo_input_from_image(found['left'])
        colour = stereo_input_from_image(found['color'])
        panels.append(side_by_side(left, colour, overlay_obstacle(left, obstacle)))
    if not rows:
        raise RuntimeError(f'the processed bag {out / "bag_processed"} holds no disparity')

    _write_previews(out, panels)
    _write_topic_view(out / 'topics.png', frames[max(frames)], namespace=processed.namespace)
    with open(out / 'metrics.csv', 'w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / 'metrics.json').write_text(json.dumps(rows, indent=2))

    def mean(key: str) -> Optional[float]:
        values = [value for row in rows if (value := row[key]) is not None]
        return _round(float(np.mean(values))) if values else None

    summary = {
        'backend': pipeline.backend.describe(), 'frames': n_frames, 'pairs': processed.pairs,
        'storage': storage, 'fx_px': round(kitti_summary.fx, 3),
        'baseline_m': round(kitti_summary.baseline, 4),
        'process_bag_fps': _round(processed.frames_per_second, 2),
        'mean_pipeline_ms': _round(processed.mean_pipeline_ms, 1),
        'mean_epe_px': mean('epe_px'), 'mean_d1': mean('d1'),
        'mean_distance_error_m': mean('distance_error_m'),
        'mean_obstacle_iou': mean('obstacle_iou'),
        'elapsed_s': round(time.perf_counter() - start, 2),
        'files': {name: str(out / name) for name in
                  ('kitti', 'bag_kitti', 'bag_processed', 'preview.png', 'preview.gif',
                   'topics.png',
                   'metrics.csv', 'metrics.json')},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    return summary


def _write_topic_view(path: Path, frame: dict, namespace: str) -> None:
    """Write the last frame's output topics side by side, as rviz image displays show them."""
    left = stereo_input_from_image(frame['left'])
    depth = image_to_array(frame['depth'])[0]
    mask = image_to_array(frame['mask'])[0]
    range_m = float(frame['range'].range)
    panels = [titled(left, f'{namespace}/left/image_rect'),
              titled(stereo_input_from_image(frame['color']), f'{namespace}/disparity/color'),
              titled(colorize_depth(depth), f'{namespace}/depth/image_rect (32FC1 m, near = red)'),
              titled(mask, f'{namespace}/obstacle/mask   obstacle/range = {range_m:.2f} m')]
    save_rgb(path, grid(panels, columns=2))


def _write_previews(out: Path, panels: list[np.ndarray]) -> None:
    """Write the contact sheet (evenly spaced frames) and the animated GIF (all, half size)."""
    picks = np.unique(np.linspace(0, len(panels) - 1, min(SHEET_ROWS, len(panels))).round())
    gap = np.zeros((4, panels[0].shape[1], 3), np.uint8)
    sheet = []
    for index in picks.astype(int):
        sheet += [panels[index], gap]
    PILImage.fromarray(np.concatenate(sheet[:-1], axis=0)).save(out / 'preview.png')
    frames = [PILImage.fromarray(panel).resize((panel.shape[1] // 2, panel.shape[0] // 2),
                                               PILImage.Resampling.BILINEAR) for panel in panels]
    frames[0].save(out / 'preview.gif', save_all=True, append_images=frames[1:], duration=200,
                   loop=0)
