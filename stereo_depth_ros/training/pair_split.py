"""Which unlabeled real pairs a run may train on and which judge it: one rule for all.

``stereo-depth adapt`` holds out every 8th pair of its folder;
:mod:`~stereo_depth_ros.training.selection` scores runs on those plus every 4th other pair;
a ``pseudo`` training source with ``hold_out_selection`` trains on the rest only, so that the
unlabeled scores a run is chosen by come from pairs it never saw.
"""

from typing import Sequence

from ..data.datasets import StereoSample

#: ``stereo-depth adapt`` holds out every 8th pair; every 4th other pair joins them in selection.
HELD_OUT_EVERY = 8
TRAINING_EVERY = 4


def split_pairs(samples: Sequence[StereoSample], every: int
                ) -> tuple[list[StereoSample], list[StereoSample]]:
    """Return (training pairs, held-out pairs): every ``every``-th pair is held out."""
    if every < 2:
        return list(samples), []
    held = [sample for i, sample in enumerate(samples) if i % every == every - 1]
    kept = [sample for i, sample in enumerate(samples) if i % every != every - 1]
    return kept, held


def selection_pairs(samples: Sequence[StereoSample]) -> list[StereoSample]:
    """Return the held-out pairs of ``adapt`` plus every 4th of the others."""
    kept, held = split_pairs(samples, HELD_OUT_EVERY)
    return held + kept[::TRAINING_EVERY]


def training_pairs(samples: Sequence[StereoSample]) -> list[StereoSample]:
    """Return the pairs that :func:`selection_pairs` leaves out, in their order."""
    judged = {id(sample) for sample in selection_pairs(samples)}
    return [sample for sample in samples if id(sample) not in judged]
