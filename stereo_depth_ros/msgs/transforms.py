"""``geometry_msgs/TransformStamped`` for the static transforms of a bag."""

from typing import Any, Sequence

from .types import MessageTypes


def make_transform(header: Any, child_frame_id: str, translation: Sequence[float],
                   rotation_xyzw: Sequence[float], types: MessageTypes) -> Any:
    """Return a ``geometry_msgs/TransformStamped`` (parent = ``header.frame_id``)."""
    tx, ty, tz = (float(v) for v in translation)
    qx, qy, qz, qw = (float(v) for v in rotation_xyzw)
    transform = types.Transform(translation=types.Vector3(x=tx, y=ty, z=tz),
                                rotation=types.Quaternion(x=qx, y=qy, z=qz, w=qw))
    return types.TransformStamped(header=header, child_frame_id=child_frame_id,
                                  transform=transform)
