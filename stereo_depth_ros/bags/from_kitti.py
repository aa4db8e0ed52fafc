"""KITTI drive -> rosbag2: rectified colour images, CameraInfo and the static camera frames."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from .writer import LATCHED_QOS, BagWriter
from ..kitti import KittiFrame, open_kitti
from ..errors import DatasetError, ExplainedInterrupt
from ..interrupts import Abort, deferred_interrupts
from ..msgs.images import array_to_compressed, array_to_image, COMPRESSION_CODECS
from ..msgs.stereo import make_camera_info
from ..msgs.transforms import make_transform
from ..msgs.types import make_header, MessageTypes
from ..names import check_namespace
from ..topics import COMPRESSED_SUFFIX

#: Printed when a first Ctrl-C or SIGTERM arrives during a conversion.
INTERRUPT_NOTICE = ('stopping after the current frame (interrupt again to stop at once, keeping '
                    'no bag)')


class _NothingWritten(Exception):
    """Interrupted before the first frame: the bag of only ``/tf_static`` is not kept."""


#: Frame ids written by kitti2bag: optical frames (x right, y down, z forward).
LEFT_FRAME = 'stereo_left'
RIGHT_FRAME = 'stereo_right'
BASE_FRAME = 'base_link'
#: Height of KITTI's cameras above the road, used for base_link -> stereo_left (m).
KITTI_CAMERA_HEIGHT = 1.65
#: Rotation base_link (x forward, y left, z up) -> optical frame, as quaternion x, y, z, w.
OPTICAL_ROTATION = (-0.5, 0.5, -0.5, 0.5)


@dataclass
class KittiBagSummary:
    """What :func:`kitti_to_bag` wrote."""

    bag: Path
    layout: str
    frames: int
    topics: dict[str, int]
    baseline: float
    fx: float
    #: (frame name, reason) of the frames left out because an image could not be read.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def topic_names(prefix: str = '/stereo', compression: Optional[str] = None) -> dict[str, str]:
    """Return the output topics of kitti2bag under ``prefix`` (DatasetError if not a name).

    With a ``compression`` the images go where image_transport's ``compressed`` transport
    puts them: ``<prefix>/left/image_rect/compressed``.
    """
    prefix = check_namespace(prefix, '--topic-prefix')
    suffix = COMPRESSED_SUFFIX if compression else ''
    return {'left_image': f'{prefix}/left/image_rect{suffix}',
            'right_image': f'{prefix}/right/image_rect{suffix}',
            'left_info': f'{prefix}/left/camera_info',
            'right_info': f'{prefix}/right/camera_info', 'tf_static': '/tf_static'}


def kitti_to_bag(drive: str | Path, out_bag: str | Path, storage: str = 'mcap',
                 frames: Optional[str] = None, keep_camera_stamps: bool = False,
                 topic_prefix: str = '/stereo', distro: str = 'jazzy',
                 progress: bool = True, strict: bool = False,
                 compression: Optional[str] = None) -> KittiBagSummary:
    """Convert a KITTI raw drive or stereo 2015 folder into a rosbag2 bag.

    Left and right of a pair share the left camera's stamp unless ``keep_camera_stamps``.
    Images are written as rgb8 ``sensor_msgs/Image``, or with ``compression`` (``png``:
    lossless, ``jpeg``) as ``sensor_msgs/CompressedImage`` on ``.../image_rect/compressed``,
    as a camera driver's image_transport publishes them. CameraInfo carries the rectified
    calibration (right ``P[3] = -fx * B``). ``/tf_static`` holds base_link -> stereo_left
    (optical, 1.65 m up) and stereo_left -> stereo_right (B along x).

    A frame whose image cannot be read (corrupt PNG, wrong size) is left out and listed in
    ``skipped``; with ``strict`` it raises DatasetError instead. If no frame is readable,
    DatasetError is raised and no bag is left behind. A first Ctrl-C or SIGTERM stops after
    the current frame: the bag is closed properly with the frames written so far and
    ExplainedInterrupt says how many (before the first, no bag is kept); a second stops at
    once and keeps no bag.
    """
    if compression is not None and compression not in COMPRESSION_CODECS:
        raise ValueError(f'unknown compression {compression!r}; known: '
                         f'{", ".join(COMPRESSION_CODECS)}')
    names = topic_names(topic_prefix, compression)
    sequence = open_kitti(drive, frames)
    if len(sequence) == 0:
        raise ValueError(f'--frames {frames} selects no frames of {drive} '
                         f'({sequence.layout} layout)')
    skipped: list[tuple[str, str]] = []
    written: list[str] = []  # the frames whose four messages are in the bag
    try:
        with deferred_interrupts(INTERRUPT_NOTICE) as stop, \
                BagWriter(out_bag, storage=storage, distro=distro) as bag:
            first = sequence[0]
            # Before the first message of the bag: camera 3's stamp may come first
            # (--keep-camera-stamps), and a player publishes in log time order.
            opening = (min(first.left_stamp_ns, first.right_stamp_ns) if keep_camera_stamps
                       else first.left_stamp_ns)
            bag.write(names['tf_static'], _camera_frames(first, bag.types), opening,
                      qos=(LATCHED_QOS,))
            for frame in tqdm(sequence, desc='kitti2bag', unit='frame', disable=not progress):
                if stop:
                    break
                try:
                    left, right = sequence.read_pair(frame)
                except DatasetError as error:
                    if strict:
                        raise DatasetError(f'{error} (--strict: nothing written)') from None
                    skipped.append((frame.name, str(error)))
                    continue
                right_stamp = frame.right_stamp_ns if keep_camera_stamps else frame.left_stamp_ns
                for stamp, topic, msg in _frame_messages(frame, left, right, right_stamp, names,
                                                         bag.types, compression):
                    bag.write(topic, msg, stamp)
                written.append(frame.name)
            if stop and not written:
                raise _NothingWritten  # any exception but KeyboardInterrupt discards the bag
            if len(skipped) == len(sequence):
                raise DatasetError(f'no frame of {drive} could be read ({len(skipped)} '
                                   f'skipped), e.g. {skipped[0][1]}')
            counts = dict(bag.counts)
    except _NothingWritten:
        raise ExplainedInterrupt('before the first frame was written; no bag was kept') from None
    except Abort:  # BagWriter discarded the bag it was writing
        raise ExplainedInterrupt('twice: stopped at once; no bag was kept') from None
    if stop and len(written) + len(skipped) < len(sequence):
        # The command prints 'interrupted' and then this line.
        raise ExplainedInterrupt(f'after {len(written)} of the {len(sequence)} frames: {out_bag} '
                                 f'holds them, up to {written[-1]} (closed properly); remove it '
                                 'to convert them all')
    return KittiBagSummary(Path(out_bag), sequence.layout, len(sequence) - len(skipped),
                           counts, float(first.camera.baseline), float(first.camera.fx),
                           skipped)


def _camera_frames(first: KittiFrame, types: MessageTypes) -> Any:
    """Return the ``/tf_static`` message: base_link -> stereo_left -> stereo_right."""
    header = make_header(first.left_stamp_ns, BASE_FRAME, types)
    to_left = make_transform(header, LEFT_FRAME, (0.0, 0.0, KITTI_CAMERA_HEIGHT),
                             OPTICAL_ROTATION, types)
    to_right = make_transform(make_header(first.left_stamp_ns, LEFT_FRAME, types),
                              RIGHT_FRAME, (first.camera.baseline, 0.0, 0.0),
                              (0.0, 0.0, 0.0, 1.0), types)
    return types.TFMessage(transforms=[to_left, to_right])


def _frame_messages(frame: KittiFrame, left: np.ndarray, right: np.ndarray, right_stamp: int,
                    names: dict[str, str], types: MessageTypes,
                    compression: Optional[str]) -> list[tuple[int, str, Any]]:
    """Return (stamp, topic, message) of one frame's images and CameraInfos, in time order."""
    pending = []
    for side, image, stamp, frame_id in (('left', left, frame.left_stamp_ns, LEFT_FRAME),
                                         ('right', right, right_stamp, RIGHT_FRAME)):
        head = make_header(stamp, frame_id, types)
        msg = (array_to_compressed(image, 'rgb8', head, types, compression) if compression
               else array_to_image(image, 'rgb8', head, types))
        pending.append((stamp, names[f'{side}_image'], msg))
        pending.append((stamp, names[f'{side}_info'],
                        make_camera_info(frame.camera, side, head, types)))
    return sorted(pending, key=lambda item: item[0])
