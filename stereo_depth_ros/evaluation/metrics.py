"""Standard stereo metrics as small pure functions (EPE, KITTI D1, bad-N, density).

Ground truth: float HxW disparity, non-finite or <= 0 = unknown. Predictions: float HxW,
NaN, infinite or negative = no estimate (:func:`has_estimate`). Scoring functions expect a
dense prediction: fill invalid pixels first with :func:`fill_invalid_kitti`, as the KITTI
devkit does, and report :func:`density` separately.
"""

import math

import numpy as np

from ..errors import ImageFormatError


def gt_valid_mask(gt: np.ndarray) -> np.ndarray:
    """Return the pixels with ground truth (finite and > 0)."""
    gt = np.asarray(gt)
    return np.isfinite(gt) & (gt > 0)


def has_estimate(pred: np.ndarray) -> np.ndarray:
    """Return the pixels with an estimate: finite and not negative, as the KITTI devkit has it.

    One rule for the filling and for what is counted as reported (:func:`density`,
    :func:`estimated_bad_n`): a negative value is filled, so it is no estimate either.
    """
    pred = np.asarray(pred)
    with np.errstate(invalid='ignore'):
        return np.isfinite(pred) & (pred >= 0)


def density(pred: np.ndarray, gt: np.ndarray | None = None) -> float:
    """Share of pixels with an estimate (of those with ground truth, when gt is given)."""
    estimated = has_estimate(pred)
    if gt is None:
        return float(estimated.mean())
    valid = gt_valid_mask(gt)
    return float(estimated[valid].mean()) if valid.any() else float('nan')


#: The value the KITTI devkit gives a pixel its filling leaves invalid, scored as it is.
DEVKIT_INVALID = -1.0


def fill_invalid_kitti(pred: np.ndarray) -> np.ndarray:
    """Fill NaN pixels as the KITTI devkit's ``interpolateBackground`` (io_disp.h) does.

    Row pass: a gap between two estimates of a row takes the smaller of the two; a gap at the
    start or end of a row takes the row's first or last estimate. Column pass, for rows still
    empty: per column, rows above the column's first estimate take that value and rows below
    its last estimate take that one. As in the devkit, a negative estimate is none, and what
    stays empty (rows without estimates between rows with estimates, or an image without
    any estimate) keeps its invalid value, -1, which is scored as an estimate.
    """
    pred = np.asarray(pred, dtype=np.float32)
    pred = np.where(has_estimate(pred), pred, np.float32(np.nan))
    filled = pred.copy()
    rows, cols = pred.shape
    index = np.arange(cols)
    for r in range(rows):
        row = pred[r]
        valid = np.isfinite(row)
        if valid.all() or not valid.any():
            continue
        # nearest valid pixel to the left and to the right of each pixel
        left_pos = np.maximum.accumulate(np.where(valid, index, -1))
        right_pos = np.minimum.accumulate(np.where(valid, index, cols)[::-1])[::-1]
        left_val = np.where(left_pos >= 0, row[np.clip(left_pos, 0, cols - 1)], np.inf)
        right_val = np.where(right_pos < cols, row[np.clip(right_pos, 0, cols - 1)], np.inf)
        candidate = np.minimum(left_val, right_val)
        filled[r, ~valid] = candidate[~valid]
    # After the row pass every row is either full or empty: extend the first and the last
    # filled row up and down (per column, as the devkit's column pass).
    full_rows = np.flatnonzero(np.isfinite(filled).all(axis=1))
    if full_rows.size:
        filled[:full_rows[0]] = filled[full_rows[0]]
        filled[full_rows[-1] + 1:] = filled[full_rows[-1]]
    filled[~np.isfinite(filled)] = DEVKIT_INVALID
    return filled


def _as_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return prediction and ground truth as float64 arrays of one shape (or raise)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ImageFormatError(
            f'prediction {pred.shape} and ground truth {gt.shape} differ in shape')
    return pred, gt


def _errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _as_pair(pred, gt)
    valid = gt_valid_mask(gt)
    if not np.isfinite(pred[valid]).all():
        raise ValueError('prediction has NaN at ground-truth pixels: fill it first '
                         '(fill_invalid_kitti)')
    return np.abs(pred[valid] - gt[valid]), gt[valid]


def epe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute disparity error (end-point error) in pixels over ground-truth pixels."""
    error, _ = _errors(pred, gt)
    return float(error.mean()) if error.size else float('nan')


def bad_n(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """Share of ground-truth pixels whose error exceeds ``threshold`` pixels."""
    error, _ = _errors(pred, gt)
    return float((error > threshold).mean()) if error.size else float('nan')


def d1(pred: np.ndarray, gt: np.ndarray) -> float:
    """KITTI D1: share of ground-truth pixels with error > 3 px AND > 5 % of the true value."""
    error, truth = _errors(pred, gt)
    if not error.size:
        return float('nan')
    return float(((error > 3.0) & (error > 0.05 * truth)).mean())


#: True-disparity bands (px, low inclusive, high exclusive) that :func:`band_metrics` scores
#: separately. The last is open: a half-size Middlebury 2014 scene reaches past 256 px.
DISPARITY_BANDS: tuple[tuple[int, float], ...] = (
    (0, 32), (32, 64), (64, 128), (128, 256), (256, math.inf))


def band_key(metric: str, band: tuple[int, float]) -> str:
    """Return the result key of ``metric`` in ``band``, e.g. ``bad2_64_128``, ``bad2_256_inf``."""
    return f'{metric}_{band[0]}_{band[1]:g}'


def band_label(band: tuple[int, float]) -> str:
    """Return how a band reads in a table: ``64-128 px``, or ``256+ px`` for the open one."""
    return f'{band[0]}+ px' if math.isinf(band[1]) else f'{band[0]}-{band[1]:g} px'


def band_metrics(filled: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Return EPE, bad-2 and bad-3 of a dense prediction per true-disparity band.

    NaN for a band without ground-truth pixels; range failures (a network that never
    predicts beyond its training range) show up as bands near 100 % bad.
    """
    error, truth = _errors(filled, gt)
    result: dict[str, float] = {}
    for band in DISPARITY_BANDS:
        inside = (truth >= band[0]) & (truth < band[1])
        values = error[inside]
        result[band_key('epe', band)] = float(values.mean()) if values.size else float('nan')
        result[band_key('bad2', band)] = float((values > 2).mean()) if values.size \
            else float('nan')
        result[band_key('bad3', band)] = float((values > 3).mean()) if values.size \
            else float('nan')
    return result


#: True disparity (px) from which a pixel counts as near (a KITTI camera: nearer than ~6 m).
LARGE_DISPARITY = 64.0


def visibility_counts(filled: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Return ``[wrong seen, seen, wrong unseen, unseen]`` pixel counts at >= 64 px.

    The pixels whose true disparity is at least :data:`LARGE_DISPARITY`, split by whether the
    right camera sees them (:func:`~stereo_depth_ros.evaluation.visibility.
    unseen_by_right_camera` of the truth, so for dense ground truth only: synthetic scenes);
    wrong means bad-3 (error > 3 px) of the filled prediction. Counts add up over scenes
    (:func:`pooled_visibility`).
    """
    import torch
    from .visibility import unseen_by_right_camera
    truth = np.asarray(gt, np.float32)
    unseen = unseen_by_right_camera(torch.from_numpy(truth)[None, None])[0, 0].numpy() > 0
    with np.errstate(invalid='ignore'):
        large = gt_valid_mask(truth) & (truth >= LARGE_DISPARITY)
        wrong = np.abs(filled - truth) > 3
    seen_part, unseen_part = large & ~unseen, large & unseen
    return np.array([(wrong & seen_part).sum(), seen_part.sum(), (wrong & unseen_part).sum(),
                     unseen_part.sum()], dtype=np.float64)


def share(part: float, whole: float) -> float:
    """Return ``part / whole`` of pixel counts, NaN where ``whole`` is 0 (no such pixels)."""
    return float(part / whole) if whole else float('nan')


def pooled_visibility(counts: np.ndarray) -> dict[str, float]:
    """Return the bad-3 at >= 64 px of summed :func:`visibility_counts`, all and by part.

    ``bad3_large`` over all those pixels, ``bad3_large_seen`` where the right camera sees
    them, ``bad3_large_unseen`` where it cannot, ``unseen_large_share`` the share it cannot
    see; NaN where a part has no pixels.
    """
    wrong_seen, seen, wrong_unseen, unseen = (float(value) for value in counts)
    return {'bad3_large': share(wrong_seen + wrong_unseen, seen + unseen),
            'bad3_large_seen': share(wrong_seen, seen),
            'bad3_large_unseen': share(wrong_unseen, unseen),
            'unseen_large_share': share(unseen, seen + unseen)}


def estimated_bad_n(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """Share of the ground-truth pixels with an estimate whose error exceeds ``threshold``.

    KITTI's "est" figures: how right the pixels a backend reports are, before any filling
    (NaN where it reports none). With :func:`density` it says what a sparse output is worth.
    """
    pred, gt = _as_pair(pred, gt)
    reported = gt_valid_mask(gt) & has_estimate(pred)
    if not reported.any():
        return float('nan')
    return float((np.abs(pred[reported] - gt[reported]) > threshold).mean())


def evaluate_pair(pred: np.ndarray, gt: np.ndarray, bands: bool = False) -> dict[str, float]:
    """Return epe, d1, bad1, bad2, bad3 (of the KITTI-filled prediction) and density.

    Also ``estimated_bad2``: bad-2 of the pixels with an estimate alone
    (:func:`estimated_bad_n`). With ``bands``, also :func:`band_metrics` of the filled
    prediction.
    """
    filled = fill_invalid_kitti(pred)
    result = {
        'epe': epe(filled, gt),
        'd1': d1(filled, gt),
        'bad1': bad_n(filled, gt, 1.0),
        'bad2': bad_n(filled, gt, 2.0),
        'bad3': bad_n(filled, gt, 3.0),
        'density': density(pred, gt),
        'estimated_bad2': estimated_bad_n(pred, gt, 2.0),
    }
    if bands:
        result.update(band_metrics(filled, gt))
    return result


def mean_metrics(per_pair: list[dict[str, float]]) -> dict[str, float]:
    """Average a list of per-pair metric dicts key by key, over the finite values only.

    A pair without ground truth has NaN metrics; it is left out of every average instead of
    turning it into NaN. ``n_skipped`` counts the pairs with a non-finite value of a main metric
    (a disparity band a scene does not reach is not a skip, nor is ``estimated_bad2`` of a
    pair without estimates). A key with no finite value at all averages to NaN.
    """
    if not per_pair:
        return {}
    summary: dict[str, float] = {}
    for key in per_pair[0]:
        values = np.array([m[key] for m in per_pair], dtype=np.float64)
        finite = np.isfinite(values)
        summary[key] = float(values[finite].mean()) if finite.any() else float('nan')
    optional = {band_key(metric, band) for band in DISPARITY_BANDS
                for metric in ('epe', 'bad2', 'bad3')} | {'estimated_bad2'}
    skipped = sum(not all(np.isfinite(float(v)) for k, v in m.items() if k not in optional)
                  for m in per_pair)
    summary['n_skipped'] = skipped
    return summary
