"""``sensor_msgs/PointCloud2`` of x, y, z and PCL-style packed rgb."""

from typing import Any, Optional

import numpy as np

from .images import byte_view
from .types import MessageTypes
from ..errors import ImageFormatError

#: Bytes per point of :func:`make_point_cloud2`: x, y, z, rgb as float32.
POINT_STEP = 16


def make_point_cloud2(points: np.ndarray, colors: Optional[np.ndarray], header: Any,
                      types: MessageTypes, organized: bool = False) -> Any:
    """Return a ``sensor_msgs/PointCloud2`` of ``points``: by default the finite ones only.

    ``points`` is HxWx3 or Nx3 (x right, y down, z forward, metres; NaN = unknown).
    ``colors`` (same leading shape, RGB uint8) becomes the PCL-style ``rgb`` field: a float32
    whose bits are ``0x00RRGGBB``. Fields: x@0, y@4, z@8, rgb@12, point_step 16, little-endian.
    By default the cloud is unorganised (height 1) and dense: only the finite points.
    ``organized`` keeps the HxW layout of the image, as ``stereo_image_proc`` and
    ``depth_image_proc`` publish it: a point per pixel, x, y and z NaN where the point is not
    finite, ``is_dense`` false.
    """
    xyz = np.asarray(points, dtype=np.float32)
    if organized and xyz.ndim != 3:
        raise ImageFormatError(f'an organised cloud needs HxWx3 points, got {xyz.shape}')
    grid = xyz.shape[:2]
    xyz = xyz.reshape(-1, 3)
    finite = np.all(np.isfinite(xyz), axis=1)
    keep = np.ones(len(xyz), bool) if organized else finite
    count = int(keep.sum())
    height, width = grid if organized else (1, count)
    cloud = np.zeros((count, 4), dtype='<f4')
    if organized:  # a point per pixel: all of its coordinates NaN where one is not finite
        cloud[:, :3] = np.where(finite[:, None], xyz, np.float32(np.nan))
    else:
        cloud[:, :3] = xyz[finite]
    if colors is not None:
        rgb = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if rgb.shape[0] != xyz.shape[0]:
            raise ImageFormatError(f'{rgb.shape[0]} colours for {xyz.shape[0]} points')
        rgb = rgb[keep].astype(np.uint32)
        packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        cloud[:, 3] = packed.astype('<u4').view('<f4')
    float32 = types.PointField.FLOAT32
    names = ('x', 'y', 'z', 'rgb')
    point_fields = [types.PointField(name=name, offset=4 * index, datatype=float32, count=1)
                    for index, name in enumerate(names)]
    return types.PointCloud2(header=header, height=height, width=width, fields=point_fields,
                             is_bigendian=False, point_step=POINT_STEP,
                             row_step=POINT_STEP * width, data=types.byte_sequence(cloud),
                             is_dense=bool(finite[keep].all()))


def point_cloud2_to_arrays(msg: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Return ``(xyz Nx3 float32, rgb Nx3 uint8 or None)`` of a float32 x/y/z(/rgb) cloud."""
    offsets = {f.name: int(f.offset) for f in msg.fields}
    for name in ('x', 'y', 'z'):
        if name not in offsets:
            raise ImageFormatError(f'PointCloud2 has no {name!r} field')
    count = int(msg.width) * int(msg.height)
    raw = byte_view(msg.data)
    if raw.size < count * int(msg.point_step):
        raise ImageFormatError(f'PointCloud2 data has {raw.size} bytes for {count} points')
    order = '>' if msg.is_bigendian else '<'
    rows = raw[:count * int(msg.point_step)].reshape(count, int(msg.point_step))

    def column(name: str, kind: str) -> np.ndarray:
        start = offsets[name]
        return np.ascontiguousarray(rows[:, start:start + 4]).view(order + kind).reshape(-1)

    xyz = np.stack([column(n, 'f4') for n in ('x', 'y', 'z')], axis=1).astype(np.float32)
    if 'rgb' not in offsets:
        return xyz, None
    packed = column('rgb', 'u4')
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
    return xyz, rgb.astype(np.uint8)
