"""Reading rosbag2 bags (sqlite3 or mcap, from ``ros2 bag record`` or kitti2bag).

:class:`BagInput` wraps ``rosbags``' Reader so a damaged bag raises DatasetError naming it, and
:func:`find_stereo_topics` picks the stereo image and CameraInfo topics by type and name.
mcap messages are read with :class:`~stereo_depth_ros.bags.mcap_scan.McapScan`, which checks
chunk CRCs, skips damaged chunks and recovers what precedes a cut, even when the Reader
cannot open the bag at all (no summary section, no ``metadata.yaml``). Each file of a split
bag (several mcap files) is scanned so, and their messages merged by log time.
"""

import functools
import re
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import (Stores, TypesysError, get_types_from_idl, get_types_from_msg,
                             get_typestore)
import yaml

from .mcap_scan import McapScan, merged_messages, ScanReport
from .writer import get_distro_typestore
from ..errors import DatasetError
from ..topics import COMPRESSED_SUFFIX

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
#: Message types of camera image topics: raw, or image_transport's ``compressed``.
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'

#: Name parts of image topics that are results, not camera streams.
_RESULT_WORDS = ('disparity', 'depth', 'mask', 'obstacle', 'points')

_BAG_ERRORS = (ReaderError, sqlite3.Error, struct.error, OSError, ValueError, KeyError,
               IndexError, AssertionError, ArithmeticError, EOFError)


def _one_line(error: BaseException) -> str:
    """Return ``error``'s message on one line (YAML errors span several)."""
    return ' '.join(str(error).split())


def _bag_information(bag: Path) -> dict[str, Any]:
    """Return ``rosbag2_bagfile_information`` of ``bag``'s metadata.yaml; {} without one."""
    try:
        info = yaml.safe_load((bag / 'metadata.yaml').read_text())[
            'rosbag2_bagfile_information']
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError):
        return {}
    return info if isinstance(info, dict) else {}


def _count(value: Any) -> Optional[int]:
    """Return ``value`` if it is a message count: an integer (not YAML's true), not negative."""
    return value if type(value) is int and value >= 0 else None


def _listed_message_count(information: dict[str, Any]) -> Optional[int]:
    """Return the message count a bag's metadata (:func:`_bag_information`) lists, or None."""
    return _count(information.get('message_count'))


def _listed_file_counts(information: dict[str, Any]) -> dict[str, Optional[int]]:
    """Return the message count a bag's metadata (:func:`_bag_information`) lists per file.

    By file name; a bag may be split into thousands of files.
    """
    entries = information.get('files')
    counts: dict[str, Optional[int]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            counts.setdefault(Path(str(entry.get('path'))).name,
                              _count(entry.get('message_count')))
    return counts


def _recording_order(path: Path) -> list[Any]:
    """Sort key of a split bag's files: ``bag_2.mcap`` before ``bag_10.mcap``."""
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', path.name)]


def _unopenable(files: Sequence[Path]) -> list[str]:
    """Return the names of those of ``files`` that rosbags cannot open on their own."""
    names = []
    for file in files:
        try:
            with Reader(file):
                pass
        except _BAG_ERRORS:
            names.append(file.name)
    return names


def _combined(scans: Sequence[McapScan]) -> list[Connection]:
    """Return the connections of several files' scans, one per topic and type, numbered anew.

    Each file of a split bag numbers its own channels.
    """
    if len(scans) == 1:
        return scans[0].connections
    found: dict[tuple[str, str], Connection] = {}
    for scan in scans:
        for connection in scan.connections:
            found.setdefault((connection.topic, connection.msgtype), connection)
    return [connection._replace(id=index + 1) for index, connection in enumerate(found.values())]


@dataclass(frozen=True)
class StereoTopics:
    """The four input topics of a stereo pair."""

    left_image: str
    right_image: str
    left_info: str
    right_info: str

    def as_list(self) -> list[str]:
        """Return the topics in synchronizer input order."""
        return [self.left_image, self.right_image, self.left_info, self.right_info]

    @property
    def namespace(self) -> str:
        """Common namespace of the two image topics (``/stereo`` for /stereo/left/...)."""
        left = self.left_image.strip('/').split('/')
        right = self.right_image.strip('/').split('/')
        common = []
        for a, b in zip(left, right):
            if a != b:
                break
            common.append(a)
        return '/' + '/'.join(common) if common else ''


def _same_fields(have: Any, new: Any) -> bool:
    """Whether two typestore field lists define the same message (as rosbags compares them)."""
    return [(f[0].lower(), f[1]) for f in have] == [(f[0].lower(), f[1]) for f in new]


def _definition_types(connection: Connection) -> dict[str, Any]:
    """Return the types a connection's stored definition (``.msg`` or IDL) defines, or {}.

    An unparsable definition gives {}: it only matters if the topic is decoded, and then the
    store's definition (or an "unknown message type" error) stands in for it.
    """
    msgdef = connection.msgdef
    if msgdef is None or not msgdef.data or msgdef.format == MessageDefinitionFormat.NONE:
        return {}
    try:
        if msgdef.format == MessageDefinitionFormat.MSG:
            return dict(get_types_from_msg(msgdef.data, connection.msgtype))
        types: dict[str, Any] = {}
        separator = '=' * 80 + '\n'
        if msgdef.data.startswith(separator + 'IDL: '):  # rosbag2: one IDL file per type
            for part in msgdef.data.split(separator)[1:]:
                types.update(get_types_from_idl(part.split('\n', 1)[1]))
        else:
            types.update(get_types_from_idl(msgdef.data))
        return types
    except Exception:  # the parsers raise many kinds on bad text
        return {}


class BagInput:
    """An open rosbag2 bag; use as a context manager.

    Messages are deserialised with ``typestore`` (default: that of ``distro``) completed with
    **the message definitions stored in the bag** (``.msg`` or IDL), read with rosbags' public
    typestore API: types the store lacks are registered in it; when the bag defines a type
    differently (``sensor_msgs/msg/Range`` of a Humble bag, which has no ``variance``, read
    with the Jazzy store), :attr:`typestore` becomes a new store of the bag's definitions
    completed by the given store's, because the bag's bytes were written with them (the store
    passed in keeps its own). ``bag_types`` lists the types whose definition came from the bag
    (added or matching), ``redefined`` those that differ from the given store's.
    """

    def __init__(self, path: str | Path, distro: str = 'jazzy',
                 typestore: Optional[Any] = None, strict: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f'bag {self.path} does not exist')
        without_metadata = self.path.is_dir() and not (self.path / 'metadata.yaml').exists()
        if without_metadata and not (any(self.path.glob('*.mcap'))
                                     or any(self.path.glob('*.db3'))):
            raise DatasetError(f'{self.path} is not a rosbag2 bag: no metadata.yaml and no '
                               '.mcap or .db3 file in it')
        self.typestore = typestore if typestore is not None else get_distro_typestore(distro)
        self.strict = strict
        #: The bag's metadata.yaml, read once ({} without a readable one).
        self._information = _bag_information(self.path)
        #: Why the Reader could not open the bag, when it was recovered by scanning instead.
        self.recovered_from: Optional[str] = None
        #: One scan per mcap file (empty for sqlite3), and the connections of recovered ones.
        self._scans: list[McapScan] = []
        self._recovered: list[Connection] = []
        self._reader: Optional[Reader] = None
        try:
            self._reader = Reader(self.path)
        except _BAG_ERRORS as error:
            self._recover(f'bag {self.path} has no metadata.yaml' if without_metadata
                          else f'cannot read bag {self.path}: {_one_line(error)}')
        self._open = False
        self.bag_types: set[str] = set()
        self.redefined: list[str] = []

    def _mcap_files(self) -> list[Path]:
        """Return the bag's mcap files, in recording order (several: a split bag).

        Those metadata.yaml lists where the Reader opened it; else every one in the folder.
        """
        if self.path.is_file():
            return [self.path] if self.path.suffix == '.mcap' else []
        listed = self._information.get('relative_file_paths') \
            if self._reader is not None else None
        files = ([self.path / Path(str(name)).name for name in listed]
                 if isinstance(listed, list) and listed
                 else sorted(self.path.glob('*.mcap'), key=_recording_order))
        return [file for file in files if file.suffix == '.mcap']

    def _scans_of(self, files: Sequence[Path]) -> list[McapScan]:
        """Return a scan of each mcap file that knows how many messages metadata.yaml lists.

        The open Reader has already read the count of a one-file bag; a bag being recovered
        has no Reader; a split bag's metadata.yaml lists each file's count (and one file left
        of a split bag is held to its own count, not the bag's).
        """
        counts = _listed_file_counts(self._information)
        if len(files) > 1 or len(counts) > 1:
            return [McapScan(file, counts.get(file.name)) for file in files]
        listed = (self._reader.message_count if self._reader is not None
                  else _listed_message_count(self._information))
        return [McapScan(file, listed) for file in files]

    def _recover(self, problem: str) -> None:
        """Read the bag by scanning its mcap files; DatasetError if that is not possible."""
        files = self._mcap_files()
        if len(files) > 1 and (unopenable := _unopenable(files)):
            problem += f' ({", ".join(unopenable)}, of its {len(files)} mcap files)'
        listed = _listed_file_counts(self._information)
        if listed and (unlisted := [file.name for file in files if file.name not in listed]):
            # A recording killed after a split may not list its last file; another
            # recording's file in the folder would be read as part of this one.
            problem += f' (read too: {", ".join(unlisted)}, which metadata.yaml does not list)'
        if not files or self.strict:
            raise DatasetError(problem + (' (--strict: no recovery)' if files else '')) from None
        scans = self._scans_of(files)
        if not any([scan.read_connections() for scan in scans]):  # every file read
            raise DatasetError(f'{problem}; nothing recoverable ({_damage(scans, True)})')
        self._reader, self._scans, self.recovered_from = None, scans, problem
        self._recovered = _combined(scans)

    def __enter__(self) -> 'BagInput':
        if self._reader is not None:
            try:
                self._reader.open()
            except _BAG_ERRORS as error:
                self._reader = None
                self._recover(f'cannot open bag {self.path} (corrupt?): {_one_line(error)}')
            else:
                self._open = True
                self._scans = self._scans_of(self._mcap_files())
        self._register_bag_types()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._open and self._reader is not None:
            self._reader.close()
            self._open = False

    @property
    def scan_report(self) -> Optional[ScanReport]:
        """What the scan of the bag's mcap file kept and lost; complete after messages().

        None for sqlite3, and for a split bag (see :attr:`scan_reports`).
        """
        return self._scans[0].report if len(self._scans) == 1 else None

    @property
    def scan_reports(self) -> list[tuple[Path, ScanReport]]:
        """Each mcap file with what its scan kept and lost; complete after messages()."""
        return [(scan.path, scan.report) for scan in self._scans]

    @property
    def damage(self) -> Optional[str]:
        """One line on what the mcap scans lost (naming each file of a split bag), or None."""
        return _damage(self._scans) or None

    def _register_bag_types(self) -> None:
        """Take the message definitions stored in the bag, over those of ``typestore``."""
        base = self.typestore
        bag = get_typestore(Stores.EMPTY)
        for connection in self.connections:
            if connection.msgtype in self.bag_types:
                continue
            types = _definition_types(connection)
            if not types:
                continue  # no definition: the store's is used
            try:
                bag.register(types)
            except TypesysError:  # a second, different definition in one bag: the first counts
                continue
            self.bag_types.add(connection.msgtype)
            self.redefined.extend(name for name, (_, fields) in types.items()
                                  if name in base.fielddefs and name not in self.redefined
                                  and not _same_fields(base.fielddefs[name][1], fields))
        added = {name: bag.fielddefs[name] for name in bag.fielddefs
                 if name not in base.fielddefs}
        if added:
            base.register(added)  # new types only: ``typestore`` keeps every other definition
        if self.redefined:  # a store of the bag's definitions, completed by the base store's
            bag.register({name: fielddef for name, fielddef in base.fielddefs.items()
                          if name not in bag.fielddefs})
            self.typestore = bag

    @property
    def connections(self) -> list[Connection]:
        """Return the bag's connections: topic, msgtype, msgdef and QoS of each."""
        if self._reader is None:
            assert self._scans  # recovered
            return self._recovered
        return list(self._reader.connections)

    @property
    def topics(self) -> dict[str, str]:
        """Return topic name -> message type."""
        return {c.topic: c.msgtype for c in self.connections}

    def message_count(self, topic: str) -> Optional[int]:
        """Return the number of messages on ``topic`` (None when the bag was recovered)."""
        if self._reader is None:
            return None
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def messages(self) -> Iterator[tuple[Connection, int, bytes]]:
        """Yield ``(connection, log_time_ns, cdr_bytes)``, in log-time order.

        mcap: damaged chunks are skipped and the messages before a cut are kept (see
        :attr:`scan_report`); with ``strict`` the first damage raises DatasetError.
        """
        if not self._scans:
            assert self._reader is not None  # opened by __enter__, or recovered by a scan
            try:
                yield from self._reader.messages()
            except Exception as error:  # damaged pages fail in many ways
                raise DatasetError(f'cannot read messages of bag {self.path} (corrupt?): '
                                   f'{_one_line(error)}') from None
            return
        own = {(c.topic, c.msgtype): c for c in self.connections}
        try:
            for connection, log_time, data in merged_messages(self._scans):
                if self.strict and any(scan.report.bad_chunks for scan in self._scans):
                    break
                yield (own.get((connection.topic, connection.msgtype), connection), log_time,
                       _decompressed(data))
        except OSError as error:
            raise DatasetError(f'cannot read bag {self.path}: {_one_line(error)}') from None
        if self.strict and self.damage:
            raise DatasetError(f'bag {self.path} is damaged: {self.damage} (--strict)')

    def deserialize(self, data: bytes, connection: Connection) -> Any:
        """Deserialise one message of ``connection``; DatasetError when the bytes are bad."""
        try:
            return self.typestore.deserialize_cdr(data, connection.msgtype)
        except KeyError:
            raise DatasetError(f'bag {self.path}: unknown message type {connection.msgtype} '
                               f'on {connection.topic}') from None
        except Exception as error:
            raise DatasetError(f'bag {self.path}: cannot decode a {connection.msgtype} on '
                               f'{connection.topic}: {_one_line(error)}') from None


def _damage(scans: Sequence[McapScan], every: bool = False) -> str:
    """Return what the damaged scans (``every``: all) lost, each file named where several."""
    lines = [(scan.path.name, scan.report.line()) for scan in scans
             if every or scan.report.damaged]
    if len(scans) == 1:
        return lines[0][1] if lines else ''
    return '; '.join(f'{name}: {line}' for name, line in lines)


#: zstd_image_transport's topic suffix (Jazzy); its messages are ``CompressedImage`` too.
ZSTD_SUFFIX = '/zstd'


#: The first bytes of a zstd frame; a CDR message starts with its encapsulation (0x00 ...).
_ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'


def _decompressed(data: bytes) -> bytes:
    """Return a message's CDR bytes: decompressed where the bag compressed each message.

    ``ros2 bag record --compression-mode message`` stores every payload as a zstd frame; the
    rosbags Reader decompresses them, the mcap scan reads the payloads as stored.
    """
    if not data.startswith(_ZSTD_MAGIC):
        return data
    decompress = _zstd_decompress()
    if decompress is None:  # no zstd module: its decoding names the message
        return data
    try:
        return decompress(data)
    except Exception:  # a damaged frame: left as it is, its decoding names the message
        return data


@functools.lru_cache(maxsize=1)  # once per process, not per message
def _zstd_decompress() -> Any:
    """Return a zstd ``decompress(bytes)``: the one rosbags uses, else zstandard's, or None."""
    try:  # as rosbags does: the standard library's from Python 3.14, else its backport
        from compression import zstd  # type: ignore[import-not-found, unused-ignore]
        return zstd.decompress
    except ImportError:
        pass
    try:
        from backports import zstd as backport  # type: ignore[import-not-found, unused-ignore]
        return backport.decompress
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
        return zstandard.ZstdDecompressor().decompress
    except ImportError:
        return None


def _has_word(topic: str, word: str) -> bool:
    return any(word in part.lower() for part in topic.strip('/').split('/'))


def _parent(topic: str) -> str:
    return topic.rsplit('/', 1)[0]


def base_topic(topic: str, kind: str) -> str:
    """Return an image topic's base name: a compressed stream's without its transport.

    image_transport publishes a ``CompressedImage`` stream on ``<base>/<transport>``:
    ``/compressed``, and on Jazzy also ``/zstd`` (zstd_image_transport), which ``ros2 bag
    record -a`` records beside the raw one.
    """
    if kind == COMPRESSED_IMAGE:
        for suffix in (COMPRESSED_SUFFIX, ZSTD_SUFFIX):
            if topic.endswith(suffix):
                return topic[:-len(suffix)]
    return topic


def _pick_image(topics: dict[str, str], side: str, other: Optional[str]) -> str:
    images = sorted(t for t, kind in topics.items() if kind in IMAGE_TYPES
                    and _has_word(t, side) and not any(_has_word(t, w) for w in _RESULT_WORDS))
    if other is not None:
        mirrored = other.replace('left', side) if side == 'right' else other
        if mirrored in images:
            return mirrored
    # A stream recorded both raw and compressed is read raw (exact, and nothing to decode).
    raw = {t for t in images if topics[t] == IMAGE}
    images = [t for t in images if topics[t] == IMAGE or base_topic(t, topics[t]) not in raw]
    # zstd_image_transport's stream is no PNG or JPEG: it cannot be read here.
    zstd = [t for t in images if topics[t] == COMPRESSED_IMAGE and t.endswith(ZSTD_SUFFIX)]
    images = [t for t in images if t not in zstd]
    if zstd and not images:
        raise DatasetError(f'the {side} image is recorded only as {", ".join(zstd)}, '
                           "zstd_image_transport's stream, which this package cannot decode "
                           '(it reads raw images and the /compressed PNG or JPEG stream); '
                           'record that too')
    if len(images) > 1:
        rectified = [t for t in images if 'rect' in t.lower()]
        images = rectified or images
    if len(images) != 1:
        found = ', '.join(images) if images else 'none'
        results = sorted(t for t, kind in topics.items() if kind in IMAGE_TYPES
                         and _has_word(t, side) and t not in images)
        passed = (f'; left out as results or depth maps: {", ".join(results)}' if results
                  and not images else '')
        raise DatasetError(f'cannot choose the {side} image topic (sensor_msgs/msg/Image or '
                           f'CompressedImage with "{side}" in its name; found: {found}{passed}); '
                           f'name it with --{side}-image')
    return images[0]


def _pick_info(topics: dict[str, str], side: str, image_topic: str) -> str:
    infos = sorted(t for t, kind in topics.items() if kind == CAMERA_INFO)
    beside = _parent(base_topic(image_topic, topics[image_topic])) + '/camera_info'
    if beside in infos:
        return beside
    sided = [t for t in infos if _has_word(t, side)]
    if not infos:
        raise DatasetError(f'the bag has no sensor_msgs/msg/CameraInfo topic (expected '
                           f'{beside}): depth needs the calibration; record the camera_info '
                           f'topics with the images')
    if len(sided) != 1:
        found = ', '.join(sided) if sided else 'none'
        raise DatasetError(f'cannot choose the {side} camera_info topic (expected {beside}; '
                           f'sensor_msgs/msg/CameraInfo topics with "{side}": {found}); name '
                           f'it with --{side}-info')
    return sided[0]


def _check_named(topics: dict[str, str],
                 named: Sequence[tuple[str, Optional[str], tuple[str, ...]]]) -> None:
    """Raise DatasetError unless each (option, topic, types) given is a topic of those types."""
    for option, name, kinds in named:
        if name is None:
            continue
        if name not in topics:
            raise DatasetError(f'{option} {name}: no such topic in the bag (its topics: '
                               f'{", ".join(sorted(topics)) or "none"})')
        if topics[name] not in kinds:
            raise DatasetError(f'{option} {name}: expected a {" or ".join(kinds)} topic, got '
                               f'{topics[name]}')


def find_stereo_images(topics: dict[str, str], left_image: Optional[str] = None,
                       right_image: Optional[str] = None) -> tuple[str, str]:
    """Return the (left, right) image topics of a bag: the given ones checked, or found.

    ``sensor_msgs/msg/Image`` or ``CompressedImage`` topics with ``left``/``right`` in a name
    part (result topics such as disparity or depth excluded; ``rect`` preferred; a stream
    recorded both raw and compressed is taken raw).
    """
    _check_named(topics, (('--left-image', left_image, IMAGE_TYPES),
                          ('--right-image', right_image, IMAGE_TYPES)))
    left_image = left_image or _pick_image(topics, 'left', None)
    right_image = right_image or _pick_image(topics, 'right', left_image)
    if left_image == right_image:
        raise DatasetError(f'left and right image topics are the same: {left_image}')
    return left_image, right_image


def find_stereo_topics(topics: dict[str, str], left_image: Optional[str] = None,
                       right_image: Optional[str] = None, left_info: Optional[str] = None,
                       right_info: Optional[str] = None) -> StereoTopics:
    """Return the stereo topics of a bag (topic -> type); given names are checked, not guessed.

    Images: as :func:`find_stereo_images`. CameraInfo: the ``camera_info`` beside each image
    (beside its base topic, for a compressed stream), else the only CameraInfo topic of that
    side.
    """
    _check_named(topics, (('--left-info', left_info, (CAMERA_INFO,)),
                          ('--right-info', right_info, (CAMERA_INFO,))))
    left_image, right_image = find_stereo_images(topics, left_image, right_image)
    left_info = left_info or _pick_info(topics, 'left', left_image)
    right_info = right_info or _pick_info(topics, 'right', right_image)
    return StereoTopics(left_image, right_image, left_info, right_info)
