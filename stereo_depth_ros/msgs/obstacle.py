"""Messages of the nearest obstacle: its mono8 mask and its ``sensor_msgs/Range``."""

from typing import Any

import numpy as np

from .images import array_to_image
from .types import MessageTypes, has_field


def make_mask_image(mask: np.ndarray, header: Any, types: MessageTypes) -> Any:
    """Return a mono8 ``sensor_msgs/Image``: 255 where ``mask`` is set, 0 elsewhere."""
    values = np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8)
    return array_to_image(values, 'mono8', header, types.Image)


def make_obstacle_range(distance: float, header: Any, types: MessageTypes,
                        min_range: float, max_range: float,
                        field_of_view: float = 0.0, frame_id: str = '') -> Any:
    """Return the nearest-obstacle distance as ``sensor_msgs/Range``.

    ``range`` is the obstacle's z-depth in metres; no obstacle (NaN) becomes ``+inf``
    ("nothing within max_range", REP 117), one nearer than ``min_range`` ``-inf`` ("too
    close to range"). Where ``min_range`` is not below ``max_range`` the search saw no
    depth: no obstacle is NaN (no valid reading), and ``max_range`` becomes ``min_range``.
    ``radiation_type`` is INFRARED (the message has no stereo type); ``field_of_view`` is
    the arc around the axis that holds the region searched, in radians. ``header`` is the
    left image's, an optical frame, unless ``frame_id`` names another (a forward-x frame at
    the camera): in the optical frame the obstacle lies along +z, not along +x as ``Range``
    assumes (docs/ros.md).
    """
    value = float(distance)
    blind = not max_range > min_range  # an empty interval: nothing could be seen in it
    if not np.isfinite(value):
        value = float('nan') if blind else float('inf')
    elif value < min_range:
        value = float('-inf')
    if blind:  # Range needs min_range <= max_range; the interval collapses onto its start
        max_range = min_range
    if frame_id:
        header = types.Header(stamp=header.stamp, frame_id=frame_id)
    fields_ = dict(header=header, radiation_type=int(types.Range.INFRARED),
                   field_of_view=float(field_of_view), min_range=float(min_range),
                   max_range=float(max_range), range=value)
    if has_field(types.Range, 'variance'):
        fields_['variance'] = 0.0
    return types.Range(**fields_)


def optical_range_note(frame_id: str) -> str:
    """Return the warning for an ``obstacle/range`` stamped in the image's frame ``frame_id``.

    An image's frame is an optical one (z forward) by convention, where ``Range`` consumers
    take +x as the sensor's axis.
    """
    return (f"obstacle/range is stamped in the left image's frame {frame_id!r}, an optical "
            'frame (z forward) by convention, but Range consumers (rviz, nav2\'s range layer) '
            'take its +x as the axis and point the reading sideways: set '
            'obstacle.range_frame_id to a forward-x frame at the camera (docs/ros.md, '
            '"obstacle/range and its frame")')
