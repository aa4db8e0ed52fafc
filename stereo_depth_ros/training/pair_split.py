"""Which unlabeled real pairs a run may train on and which judge it: one rule for all.

``stereo-depth adapt`` holds out every 8th pair of its folder (its ``holdout_every``
default); :mod:`~stereo_depth_ros.training.selection` scores runs on those plus every 4th
other pair;
a ``pseudo`` training source with ``hold_out_selection`` trains on the rest only, so that the
unlabeled scores a run is chosen by come from pairs it never saw.
"""

from typing import Sequence, TypeVar

#: A pair (or its index): the rules only look at positions.
T = TypeVar('T')

#: ``stereo-depth adapt`` holds out every 8th pair; every 4th other pair joins them in selection.
HELD_OUT_EVERY = 8
TRAINING_EVERY = 4


def split_pairs(samples: Sequence[T], every: int) -> tuple[list[T], list[T]]:
    """Return (training pairs, held-out pairs): every ``every``-th pair is held out."""
    if every < 2:
        return list(samples), []
    held = [sample for i, sample in enumerate(samples) if i % every == every - 1]
    kept = [sample for i, sample in enumerate(samples) if i % every != every - 1]
    return kept, held


def selection_indices(count: int) -> list[int]:
    """Return the positions among ``count`` pairs of adapt's held-out ones and every 4th other."""
    kept, held = split_pairs(range(count), HELD_OUT_EVERY)
    return held + kept[::TRAINING_EVERY]


def selection_pairs(samples: Sequence[T]) -> list[T]:
    """Return the held-out pairs of ``adapt`` plus every 4th of the others."""
    return [samples[index] for index in selection_indices(len(samples))]


def training_pairs(samples: Sequence[T]) -> list[T]:
    """Return the pairs that :func:`selection_pairs` leaves out, in their order."""
    judged = set(selection_indices(len(samples)))
    return [samples[index] for index in range(len(samples)) if index not in judged]
