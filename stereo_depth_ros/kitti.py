"""KITTI stereo on disk: reading raw drives and stereo-2015 folders, writing raw-style drives.

Layouts read by :func:`open_kitti`:

* raw synced drive ``<date>/<date>_drive_XXXX_sync/image_02|image_03/data/*.png`` with
  ``image_0X/timestamps.txt`` and ``<date>/calib_cam_to_cam.txt`` (the drive's parent);
* stereo 2015 ``<root>/image_2/*_10.png``, ``image_3/*_10.png`` and
  ``calib_cam_to_cam/<frame>.txt`` per frame (no time stamps: 10 Hz ones are made up).

The colour cameras 2 (left) and 3 (right) are used. Their rectified projections both carry an
x-offset relative to rectified camera 0, so the stereo baseline is
``B = (P_rect_02[0, 3] - P_rect_03[0, 3]) / fx``; ``P_rect_03`` alone would give the distance
from camera 0 instead.
"""

import calendar
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, overload

import cv2
import numpy as np

from .camera import StereoCameraModel
from .errors import CalibrationError, DatasetError

#: Period of the made-up stamps of datasets without time stamps (KITTI records at 10 Hz).
SYNTHETIC_PERIOD_NS = 100_000_000
#: First made-up stamp (1 s: some tools treat a zero stamp as "unset").
SYNTHETIC_START_NS = 1_000_000_000


@dataclass(frozen=True)
class KittiFrame:
    """One stereo frame on disk: image paths, camera stamps (ns) and rectified calibration."""

    index: int
    name: str
    left_path: Path
    right_path: Path
    left_stamp_ns: int
    right_stamp_ns: int
    camera: StereoCameraModel


# --------------------------------------------------------------------------- calibration


def parse_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Return the numeric entries of a KITTI ``calib_cam_to_cam.txt`` (``key: v1 v2 ...``).

    Non-numeric entries (``calib_time``) are skipped. Raises DatasetError when the file is
    missing or unreadable.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DatasetError(f'calibration file {path} does not exist') from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f'cannot read calibration file {path}: {error}') from None
    entries: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if not sep:
            continue
        try:
            entries[key.strip()] = np.array([float(v) for v in value.split()], np.float64)
        except ValueError:
            continue
    return entries


def _matrix(calib: dict[str, np.ndarray], key: str, shape: tuple[int, ...],
            path: Path) -> np.ndarray:
    if key not in calib:
        raise DatasetError(f'calibration file {path} has no {key} entry')
    values = calib[key]
    if values.size != int(np.prod(shape)):
        raise DatasetError(f'calibration file {path}: {key} has {values.size} values, '
                           f'expected {int(np.prod(shape))}')
    return values.reshape(shape)


def camera_from_calib(calib: dict[str, np.ndarray], path: str | Path,
                      left: str = '02', right: str = '03') -> StereoCameraModel:
    """Return the rectified stereo model of cameras ``left``/``right`` of a KITTI calibration.

    Size from ``S_rect_<left>``, intrinsics from ``P_rect_<left>``, baseline from the
    x-offsets of both rectified projections (see the module docstring).
    """
    path = Path(path)
    size = _matrix(calib, f'S_rect_{left}', (2,), path)
    p_left = _matrix(calib, f'P_rect_{left}', (3, 4), path)
    p_right = _matrix(calib, f'P_rect_{right}', (3, 4), path)
    # Move the origin to the left camera: both rows keep their offset relative to camera 0.
    p_left_ros = p_left.copy()
    p_right_ros = p_right.copy()
    p_left_ros[:, 3] = 0.0
    p_right_ros[:, 3] = 0.0
    p_right_ros[0, 3] = p_right[0, 3] - p_left[0, 3]
    width, height = int(round(size[0])), int(round(size[1]))
    try:
        return StereoCameraModel.from_projection_matrices(width, height, p_left_ros,
                                                          p_right_ros)
    except CalibrationError as error:
        raise CalibrationError(f'{path}: {error}') from None


def format_calib_file(camera: StereoCameraModel, left_offset: float = 0.06,
                      calib_time: str = '01-Jan-2011 00:00:00') -> str:
    """Return a KITTI-style ``calib_cam_to_cam.txt`` for a rectified stereo model.

    Cameras 0/1 (grey) and 2/3 (colour) share the rectified intrinsics. As in KITTI,
    camera 2 sits ``left_offset`` metres from camera 0, so ``P_rect_02[0, 3] = fx *
    left_offset`` is not zero and ``P_rect_03[0, 3] = fx * (left_offset - B)``; ``T_xx``
    holds the same offset with the same sign (KITTI's T_02 is +0.06 m, T_03 -0.47 m).
    """
    p_left, _ = camera.projection_matrices()
    fx, baseline = camera.fx, camera.baseline
    offsets = {'00': (0.0, camera.cx_left), '01': (-baseline, camera.cx_right),
               '02': (left_offset, camera.cx_left),
               '03': (left_offset - baseline, camera.cx_right)}

    def row(values: np.ndarray) -> str:
        return ' '.join(f'{v:.12e}' for v in np.asarray(values, np.float64).reshape(-1))

    lines = [f'calib_time: {calib_time}', 'corner_dist: 9.950000e-02']
    size = np.array([camera.width, camera.height], np.float64)
    for cam, (offset, cx) in offsets.items():
        projection = p_left.copy()
        projection[0, 2] = cx
        projection[0, 3] = fx * offset
        intrinsics = projection[:, :3]
        lines += [f'S_{cam}: {row(size)}', f'K_{cam}: {row(intrinsics)}',
                  f'D_{cam}: {row(np.zeros(5))}', f'R_{cam}: {row(np.eye(3))}',
                  f'T_{cam}: {row(np.array([offset, 0.0, 0.0]))}',
                  f'S_rect_{cam}: {row(size)}', f'R_rect_{cam}: {row(np.eye(3))}',
                  f'P_rect_{cam}: {row(projection)}']
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- time stamps


def parse_kitti_time(text: str) -> int:
    """Return nanoseconds since the epoch of a KITTI stamp ``2011-09-26 13:02:25.964389445``.

    KITTI stamps carry no time zone; they are read as UTC.
    """
    text = text.strip()
    date_part, _, fraction = text.partition('.')
    try:
        moment = datetime.datetime.strptime(date_part, '%Y-%m-%d %H:%M:%S')
        nanos = int((fraction + '000000000')[:9]) if fraction else 0
    except ValueError:
        raise ValueError(f'not a KITTI time stamp: {text!r}') from None
    return calendar.timegm(moment.timetuple()) * 1_000_000_000 + nanos


def format_kitti_time(nanoseconds: int) -> str:
    """Return ``YYYY-MM-DD HH:MM:SS.nnnnnnnnn`` (UTC) for nanoseconds since the epoch."""
    seconds, nanos = divmod(int(nanoseconds), 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f'{moment:%Y-%m-%d %H:%M:%S}.{nanos:09d}'


def read_timestamps(path: str | Path) -> list[int]:
    """Return the stamps (ns) of a KITTI ``timestamps.txt``, one per non-empty line."""
    path = Path(path)
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise DatasetError(f'time stamp file {path} does not exist') from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f'cannot read time stamp file {path}: {error}') from None
    stamps = []
    for number, line in enumerate(lines, 1):
        try:
            stamps.append(parse_kitti_time(line))
        except ValueError as error:
            raise DatasetError(f'{path}, line {number}: {error}') from None
    return stamps


# --------------------------------------------------------------------------- reading drives


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit PNG as HxWx3 RGB (OpenCV reads BGR; grey is replicated).

    A missing file is named before OpenCV is asked, which would print a warning of its own.
    """
    if not Path(path).is_file():
        raise DatasetError(f'cannot read image {path} (missing)')
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'cannot read image {path} (corrupt or not an image)')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _frame_slice(frames: Optional[str | slice]) -> slice:
    if frames is None or isinstance(frames, slice):
        return frames or slice(None)
    start, sep, stop = frames.partition(':')
    try:
        if not sep:  # one frame; -1 is the last (slice(-1, 0) would be none)
            index = int(start)
            return slice(index, index + 1 or None)
        return slice(int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError:
        raise ValueError(f'--frames must look like A:B (python slice), got {frames!r}') from None


def _pngs(folder: Path, pattern: str) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f'image folder {folder} does not exist')
    return sorted(folder.glob(pattern))


class KittiSequence(Sequence[KittiFrame]):
    """The frames of one KITTI folder (see :func:`open_kitti`)."""

    def __init__(self, root: Path, layout: str, frames: list[KittiFrame]) -> None:
        self.root = root
        self.layout = layout
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    @overload
    def __getitem__(self, index: int) -> KittiFrame:
        ...

    @overload
    def __getitem__(self, index: slice) -> list[KittiFrame]:
        ...

    def __getitem__(self, index: int | slice) -> KittiFrame | list[KittiFrame]:
        return self.frames[index]

    def __iter__(self) -> Iterator[KittiFrame]:
        return iter(self.frames)

    def read_pair(self, frame: KittiFrame) -> tuple[np.ndarray, np.ndarray]:
        """Read the RGB images of ``frame`` and check them against its calibration."""
        left, right = read_rgb(frame.left_path), read_rgb(frame.right_path)
        for path, image in ((frame.left_path, left), (frame.right_path, right)):
            height, width = image.shape[:2]
            if (width, height) != (frame.camera.width, frame.camera.height):
                raise DatasetError(
                    f'{path} is {width}x{height} but the calibration (S_rect_02) says '
                    f'{frame.camera.width}x{frame.camera.height}')
        return left, right


def _check_increasing(stamps: Sequence[int], path: Path) -> None:
    """Raise DatasetError at the first stamp that repeats or goes back in time."""
    for line, (before, after) in enumerate(zip(stamps, stamps[1:]), 2):
        if after <= before:
            what = 'repeats' if after == before else 'goes back in time from'
            raise DatasetError(
                f'{path}, line {line}: time stamp {format_kitti_time(after)} {what} line '
                f'{line - 1} ({format_kitti_time(before)}); two frames cannot share or swap '
                'stamps')


def _open_raw(root: Path, selection: slice) -> KittiSequence:
    lefts = {path.name: path for path in _pngs(root / 'image_02' / 'data', '*.png')}
    rights = {path.name: path for path in _pngs(root / 'image_03' / 'data', '*.png')}
    # A frame one camera lacks (a partial download) stays in, named and skipped when read as
    # an unreadable one is: the time stamp files still have its line.
    names = sorted(lefts.keys() | rights.keys())
    if not names:
        raise DatasetError(f'{root / "image_02" / "data"} has no PNG images')
    lines = _stamp_lines(names)
    if lines is not None:  # by number, should the names not be zero-padded to one width
        lines, names = (list(column) for column in zip(*sorted(zip(lines, names))))
    calib_path = _drive_calibration(root)
    calib = parse_calib_file(calib_path)
    # Before the time stamps: an _extract drive's cameras need not have as many frames.
    if names[0] in lefts:
        _check_rectified(lefts[names[0]], calib, calib_path)
    stamps = {}
    for cam in ('02', '03'):
        path = root / f'image_{cam}' / 'timestamps.txt'
        stamps[cam] = read_timestamps(path)
        if lines is None and len(stamps[cam]) != len(names):
            raise DatasetError(f'{path} has {len(stamps[cam])} time stamps for {len(names)} '
                               f'frames (image_02/data holds {len(lefts)} PNGs, image_03/data '
                               f'{len(rights)})')
        if lines is not None and lines[-1] >= len(stamps[cam]):
            raise DatasetError(f'{path} has {len(stamps[cam])} time stamps, but frame '
                               f'{Path(names[-1]).stem} is number {lines[-1]}')
        _check_increasing(stamps[cam], path)
    camera = camera_from_calib(calib, calib_path)
    frames = []
    for i in range(len(names))[selection]:
        line = i if lines is None else lines[i]
        frames.append(KittiFrame(i, Path(names[i]).stem,
                                 lefts.get(names[i], root / 'image_02' / 'data' / names[i]),
                                 rights.get(names[i], root / 'image_03' / 'data' / names[i]),
                                 stamps['02'][line], stamps['03'][line], camera))
    return KittiSequence(root, 'raw', frames)


def _check_rectified(path: Path, calib: dict[str, np.ndarray], calib_path: Path) -> None:
    """Refuse a drive whose images have the unrectified size ``S_02``: an ``_extract`` one.

    KITTI's unsynced download holds the cameras' raw, distorted images (1392x512), which no
    rectified CameraInfo describes; each frame would be skipped as of the wrong size.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    raw_size = calib.get('S_02')
    if image is None or raw_size is None or raw_size.size != 2:
        return  # an unreadable first frame is named when it is read
    size = (image.shape[1], image.shape[0])
    rect_size = calib.get('S_rect_02')
    if size == tuple(int(round(v)) for v in raw_size) and (
            rect_size is None or size != tuple(int(round(v)) for v in rect_size)):
        raise DatasetError(f'{path} is {size[0]}x{size[1]}, the unrectified size of camera 2 '
                           f'(S_02 in {calib_path}): this is an unsynced, unrectified KITTI '
                           'drive (_extract); kitti2bag needs the rectified images of its '
                           '_sync download')


def _stamp_lines(names: list[str]) -> Optional[list[int]]:
    """Return each frame's line in ``timestamps.txt``: its KITTI number (``0000000007.png``).

    None where a name is no number: the frames then take the lines in order.
    """
    stems = [Path(name).stem for name in names]
    if not all(stem.isascii() and stem.isdecimal() for stem in stems):
        return None
    numbers = [int(stem) for stem in stems]
    if len(set(numbers)) < len(numbers):
        twins = sorted(name for name, number in zip(names, numbers)
                       if numbers.count(number) > 1)
        raise DatasetError(f'frames {", ".join(twins[:2])} have the same number: one of them is '
                           'a copy (KITTI numbers its frames 0000000000.png, ...)')
    return numbers


def _drive_calibration(root: Path) -> Path:
    """Return the ``calib_cam_to_cam.txt`` of a raw drive: in its date folder, its parent.

    The drive's own, through links (``.`` and a link to a drive find it); else the one beside
    the path as given.
    """
    name = 'calib_cam_to_cam.txt'
    resolved = root.resolve().parent / name
    return resolved if resolved.exists() else root.absolute().parent / name


def _open_stereo2015(root: Path, selection: slice) -> KittiSequence:
    lefts = _pngs(root / 'image_2', '*_10.png')
    if not lefts:
        raise DatasetError(f'{root / "image_2"} has no *_10.png images')
    rights = [root / 'image_3' / left.name for left in lefts]
    missing = [str(path) for path in rights if not path.exists()]
    if missing:
        raise DatasetError(f'{len(missing)} right images missing, e.g. {missing[0]}')
    frames = []
    for position, index in enumerate(range(len(lefts))[selection]):
        scene = lefts[index].stem[:-3]
        calib_path = root / 'calib_cam_to_cam' / f'{scene}.txt'
        camera = camera_from_calib(parse_calib_file(calib_path), calib_path)
        stamp = SYNTHETIC_START_NS + position * SYNTHETIC_PERIOD_NS
        frames.append(KittiFrame(index, lefts[index].stem, lefts[index], rights[index],
                                 stamp, stamp, camera))
    return KittiSequence(root, 'stereo2015', frames)


def open_kitti(root: str | Path, frames: Optional[str | slice] = None) -> KittiSequence:
    """Open a KITTI raw synced drive or a KITTI stereo 2015 folder; ``frames`` is ``'A:B'``.

    Raises DatasetError naming the missing/inconsistent file or folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'KITTI folder {root} does not exist')
    selection = _frame_slice(frames)
    if (root / 'image_02').is_dir():
        return _open_raw(root, selection)
    if (root / 'image_2').is_dir():
        return _open_stereo2015(root, selection)
    if (root / 'image_00').is_dir():
        raise DatasetError(f'{root} has the grey cameras of a KITTI raw drive (image_00/, '
                           'image_01/) but not the colour ones that kitti2bag converts '
                           "(image_02/, image_03/): download the drive's colour images too")
    raise DatasetError(f'{root} is neither a KITTI raw drive (image_02/, image_03/) nor a '
                       f'KITTI stereo 2015 folder (image_2/, image_3/){_nearby_kitti(root)}')


def _is_kitti_folder(folder: Path) -> bool:
    return (folder / 'image_02').is_dir() or (folder / 'image_2').is_dir()


def _nearby_kitti(root: Path) -> str:
    """Return a hint naming the KITTI folders just inside or above ``root``, or ``''``.

    A date folder (``2011_09_26``) holds drives, ``data_scene_flow`` its ``training`` folder;
    a camera folder (``image_02``, ``image_02/data``) lies inside its drive.
    """
    try:
        inside = sorted(child for child in root.iterdir()
                        if child.is_dir() and _is_kitti_folder(child))
    except OSError:
        inside = []
    if inside:
        names = ', '.join(child.name for child in inside[:3])
        names += ', ...' if len(inside) > 3 else ''
        return (f'; it holds {len(inside)} KITTI folder{"s" if len(inside) > 1 else ""} '
                f'({names}): give one, e.g. {inside[0]}')
    for parent in (root / '..', root / '..' / '..'):
        if _is_kitti_folder(parent):
            return f'; it lies inside the KITTI folder {parent.resolve()}: give that'
    return ''


# --------------------------------------------------------------------------- writing drives


def write_raw_drive(root: str | Path, lefts: Sequence[np.ndarray], rights: Sequence[np.ndarray],
                    camera: StereoCameraModel, stamps_ns: Sequence[int],
                    date: str = '2011_01_01', drive: int = 1,
                    right_stamps_ns: Optional[Sequence[int]] = None,
                    left_offset: float = 0.06) -> Path:
    """Write RGB pairs as a KITTI raw synced drive under ``root``; return the drive folder.

    Creates ``<root>/<date>/calib_cam_to_cam.txt`` and
    ``<root>/<date>/<date>_drive_<drive:04d>_sync/image_02|image_03/{data/*.png,
    timestamps.txt}``.
    """
    if not len(lefts) == len(rights) == len(stamps_ns):
        raise ValueError(f'{len(lefts)} left images, {len(rights)} right images and '
                         f'{len(stamps_ns)} stamps: counts must match')
    date_dir = Path(root) / date
    drive_dir = date_dir / f'{date}_drive_{drive:04d}_sync'
    (date_dir).mkdir(parents=True, exist_ok=True)
    (date_dir / 'calib_cam_to_cam.txt').write_text(format_calib_file(camera, left_offset))
    right_stamps = stamps_ns if right_stamps_ns is None else right_stamps_ns
    for cam, images, stamps in (('02', lefts, stamps_ns), ('03', rights, right_stamps)):
        data = drive_dir / f'image_{cam}' / 'data'
        data.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            path = data / f'{index:010d}.png'
            if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f'cannot write {path}')
        (drive_dir / f'image_{cam}' / 'timestamps.txt').write_text(
            ''.join(format_kitti_time(s) + '\n' for s in stamps))
    return drive_dir


def write_kitti_disparity(path: str | Path, disparity: np.ndarray) -> None:
    """Write disparity as a KITTI uint16 PNG (value * 256; NaN and <= 0 -> 0 = unknown)."""
    disparity = np.asarray(disparity, np.float32)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(disparity) & (disparity > 0)
    raw = np.zeros(disparity.shape, np.uint16)
    raw[valid] = np.clip(np.round(disparity[valid] * 256.0), 1, 65535).astype(np.uint16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), raw):
        raise OSError(f'cannot write {path}')
