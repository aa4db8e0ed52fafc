"""Inputs for the bad-input tests, generated on the spot: bags, drives, images, weights."""

import re
from pathlib import Path
from typing import Optional

import numpy as np

from stereo_depth_ros.bags import BagWriter
from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.cli import main
from stereo_depth_ros.msgs.images import array_to_image
from stereo_depth_ros.msgs.stereo import make_camera_infos
from stereo_depth_ros.msgs.types import make_header

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
_BAR = re.compile(r'^[\w -]+: +(\d+%\||\d+\w* \[)')


def textured_pair(seed: int, width: int, height: int,
                  shift: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A fronto-parallel textured plane at disparity ``shift`` (positive, as it should be)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 2 + 1, (width + shift) // 2 + 1, 3), np.uint8)
    texture = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:height]
    return texture[:, :width].copy(), texture[:, shift:shift + width].copy()


def write_stereo_bag(path: Path, frames: int = 4, width: int = 96, height: int = 64,
                     storage: str = 'mcap', encoding: str = 'rgb8', baseline: float = 0.3,
                     right_messages: bool = True, right_offset_ns: int = 0,
                     garbage_left: Optional[int] = None,
                     info_size: Optional[tuple[int, int]] = None,
                     camera_infos: bool = True, black_right: tuple[int, ...] = (),
                     right_encoding: Optional[str] = None,
                     right_width: Optional[int] = None) -> Path:
    """Write a stereo bag under /stereo; the options make it bad in one way each.

    ``baseline`` < 0 gives a right CameraInfo with the wrong sign of P[3];
    ``right_messages=False`` declares the right topics but writes nothing on them;
    ``right_offset_ns`` shifts the right stamps; ``garbage_left`` replaces that left image
    by undecodable bytes; ``info_size`` puts another size into both CameraInfos;
    ``camera_infos=False`` writes the images alone; the right images of the frames in
    ``black_right`` are black (a failing camera); ``right_encoding`` and ``right_width`` give
    the right images another encoding (e.g. ``mono8`` beside ``rgb8``) or width than the left.
    """
    camera = StereoCameraModel.from_focal_baseline(80.0, abs(baseline),
                                                   *(info_size or (width, height)))
    with BagWriter(path, storage=storage) as bag:
        types = bag.types
        bag.add_topic('/stereo/right/image_rect', 'sensor_msgs/msg/Image')
        if camera_infos:
            bag.add_topic('/stereo/right/camera_info', 'sensor_msgs/msg/CameraInfo')
        for frame in range(frames):
            stamp = START_NS + frame * PERIOD_NS
            left, right = textured_pair(frame, width, height)
            if frame in black_right:
                right = np.zeros_like(right)
            right = right[:, :right_width]
            head = make_header(stamp, 'stereo_left', types)
            right_head = make_header(stamp + right_offset_ns, 'stereo_right', types)
            left_info, right_info = make_camera_infos(camera, head, right_head, types)
            if baseline < 0:
                right_info.p[3] = -right_info.p[3]
            if garbage_left == frame:
                connection = bag.add_topic('/stereo/left/image_rect', 'sensor_msgs/msg/Image')
                bag.write_raw(connection, b'\x00\x01\x00\x00garbage', stamp)
            else:
                bag.write('/stereo/left/image_rect', _image(left, encoding, head, types), stamp)
            if camera_infos:
                bag.write('/stereo/left/camera_info', left_info, stamp)
            if right_messages:
                bag.write('/stereo/right/image_rect',
                          _image(right, right_encoding or encoding, right_head, types), stamp)
                if camera_infos:
                    bag.write('/stereo/right/camera_info', right_info, stamp)
    return path


def _image(rgb: np.ndarray, encoding: str, header, types):
    """Return an Image message; ``yuv422`` (2 bytes a pixel) is built by hand.

    ``mono12`` is a 12-bit sensor's mono16 image (grey levels 0-4080, 4 bits unused);
    ``mono8`` is the grey of ``rgb``.
    """
    if encoding == 'mono8':
        return array_to_image(rgb.mean(axis=2).astype(np.uint8), 'mono8', header, types.Image)
    if encoding == 'mono12':
        grey = rgb.mean(axis=2).astype(np.uint16) * 16
        return array_to_image(grey, 'mono16', header, types.Image)
    if encoding != 'yuv422':
        return array_to_image(rgb, encoding, header, types.Image)
    height, width = rgb.shape[:2]
    msg = array_to_image(np.zeros((height, 2 * width), np.uint8), 'mono8', header, types.Image)
    msg.encoding, msg.width = 'yuv422', width
    return msg


def run_cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """Run the CLI in-process; return its code, stdout and stderr lines minus progress bars."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    pieces = re.split(r'[\r\n]+', captured.err)
    lines = [piece for piece in pieces if piece.strip() and not _BAR.match(piece)]
    return code, captured.out, lines


def assert_one_line_error(code: int, lines: list[str], *words: str) -> None:
    """Assert exit 2 and exactly one stderr line, an error naming all of ``words``."""
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert 'Traceback' not in lines[0] and ': error: ' in lines[0], lines
    for word in words:
        assert word in lines[0], (word, lines[0])


def leftovers(folder: Path, name: str) -> list[str]:
    """Return entries of ``folder`` that are ``name`` or its staging folders."""
    return sorted(p.name for p in folder.iterdir() if p.name == name
                  or p.name.startswith(f'.{name}.partial'))
