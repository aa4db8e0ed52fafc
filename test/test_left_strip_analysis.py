"""tools/left_strip_analysis.py: how its counts treat a backend's unknown pixels."""

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / 'tools' / 'left_strip_analysis.py'
_SPEC = importlib.util.spec_from_file_location('left_strip_analysis', _PATH)
assert _SPEC is not None and _SPEC.loader is not None
strip_analysis = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(strip_analysis)

KEYS = ['large', 'hidden', 'out_of_view', 'strip', 'strip_hidden', 'line_truth_wrong',
        'backend_wrong', 'line_estimate_wrong']


def _counts(estimate: np.ndarray, confident: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    counts = dict.fromkeys(KEYS, 0)
    strip_analysis.count_scene(truth, estimate, confident, counts)
    return counts


def test_a_line_that_cannot_be_drawn_through_the_estimate_is_wrong_not_right() -> None:
    # One surface at 100 px: columns 0-99 are the rows' left strip. The backend says 50 px
    # beyond the boundary, so a line through its estimate is wrong on every strip pixel; an
    # unknown estimate at the boundary pixel leaves no line at all, which is no better.
    truth = np.full((4, 300), 100.0, np.float32)
    estimate = np.full_like(truth, 50.0)
    confident = np.ones(truth.shape, bool)
    assert _counts(estimate, confident, truth)['line_estimate_wrong'] == 400
    estimate[:, 100], confident[:, 100] = np.nan, False
    counts = _counts(estimate, confident, truth)
    assert counts['strip'] == 400 and counts['line_estimate_wrong'] == 400
