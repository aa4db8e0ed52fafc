"""Writing rosbag2 bags (sqlite3 or mcap) that ``ros2 bag play`` on Humble and Jazzy reads.

Metadata version 8 is written: it is the newest version whose ``offered_qos_profiles`` is a
YAML *string* with integer policies, which is what Humble's rosbag2 parses (version 9, from
Jazzy on, writes a YAML list with policy names, which Humble cannot read); Jazzy reads both.
See docs/bags.md for the sources.

mcap chunks are written with their CRC-32 (rosbags writes 0, "not computed", so flipped bytes
would go unnoticed); readers, rosbags' included, check it. A bag is written into a hidden
staging folder beside its path and moved there only once it is complete, so a failed run
leaves nothing behind; an interrupted one (Ctrl-C, SIGTERM) is closed properly first.
"""

import os
import shutil
import struct
from binascii import crc32
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Final, Optional, Sequence

from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys import Stores, get_typestore

from ..atomic_files import staging_path
from ..errors import DatasetError, ExplainedInterrupt
from ..interrupts import deferred_interrupts, signals_undeferred
from ..msgs.types import MessageTypes

#: rosbag2 metadata version written (see the module docstring).
METADATA_VERSION: Final = 8
#: ``--storage`` choices.
STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
#: ``--ros-distro`` choices: the message definitions written into the bag.
DISTROS = {'humble': Stores.ROS2_HUMBLE, 'jazzy': Stores.ROS2_JAZZY}

_NO_TIME = QosTime(0, 0)


def qos_profile(depth: int = 10, latched: bool = False) -> Qos:
    """Return a reliable keep-last QoS; ``latched`` makes it transient-local (tf_static)."""
    durability = QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, _NO_TIME,
               _NO_TIME, QosLiveliness.AUTOMATIC, _NO_TIME, False)


#: Offered QoS of sensor streams and of ``/tf_static``.
SENSOR_QOS = qos_profile(10)
LATCHED_QOS = qos_profile(1, latched=True)


def get_distro_typestore(distro: str) -> Any:
    """Return the rosbags typestore of ``'humble'`` or ``'jazzy'``."""
    try:
        return get_typestore(DISTROS[distro])
    except KeyError:
        raise ValueError(f'unknown ROS distro {distro!r}; choose from {sorted(DISTROS)}') \
            from None


class ChecksummedMcapWriter(McapWriter):
    """rosbags' mcap writer, but each chunk record carries the CRC-32 of its content."""

    #: Offset of ``uncompressed_crc`` in a chunk record: opcode, length, 3 x uint64.
    _CRC_OFFSET = 1 + 8 + 24

    def close_chunk(self) -> None:
        """Write the pending chunk, then fill in its CRC."""
        crc = crc32(self.chunk.bio.getvalue())
        start = self.bio.tell()
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + self._CRC_OFFSET)
        self.bio.write(struct.pack('<I', crc))
        self.bio.seek(end)


#: Said when a signal comes while the output bag is being closed.
CLOSING_NOTICE = ('closing the output bag, which holds everything written so far (interrupt '
                  'again to stop at once, keeping no bag)')


class BagWriter:
    """Write messages to a new rosbag2 bag; connections are added on first use.

    Use as a context manager. The bag is written in a hidden staging folder beside ``path``
    and moved to ``path`` when it is closed; on an exception the unfinished bag is deleted,
    except on KeyboardInterrupt (Ctrl-C, or SIGTERM through the CLI): then it is closed
    properly with what was written so far, moved to ``path``, and ``interrupted`` is set.
    ``write(topic, msg, log_time_ns)`` serialises a message of the writer's typestore
    (default: that of ``distro``); ``write_raw`` copies already serialised data from
    another bag.
    """

    def __init__(self, path: str | Path, storage: str = 'mcap', distro: str = 'jazzy',
                 typestore: Optional[Any] = None) -> None:
        path = Path(path)
        if storage not in STORAGE_PLUGINS:
            raise ValueError(f'unknown storage {storage!r}; choose from {sorted(STORAGE_PLUGINS)}')
        if path.exists():
            raise DatasetError(f'output bag {path} exists already; remove it or choose another '
                               'path')
        self.path = path
        self.storage = storage
        self.typestore = typestore if typestore is not None else get_distro_typestore(distro)
        self.types = MessageTypes.from_typestore(self.typestore)
        # The hidden folder the bag is written in before it is moved to ``path``.
        self._staging = staging_path(path)
        if self._staging.exists():
            shutil.rmtree(self._staging, ignore_errors=True)
        self._writer = Writer(self._staging / path.name, version=METADATA_VERSION,
                              storage_plugin=STORAGE_PLUGINS[storage])
        self._writer.STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS,
                                        StoragePlugin.MCAP: ChecksummedMcapWriter}
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}
        self.interrupted = False

    def __enter__(self) -> 'BagWriter':
        try:
            self._writer.open()
        except (WriterError, OSError) as error:
            shutil.rmtree(self._staging, ignore_errors=True)
            # The OS's reason, not its path: that is the hidden staging folder beside the bag.
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise DatasetError(f'cannot create bag {self.path}: {reason}') from None
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = exc_type is not None
            closing = None
            try:
                # What was written is whole: a first signal while closing (long for a large
                # bag) lets the close finish; a second one discards the bag, as elsewhere.
                # (Where the caller defers signals itself, its rules stand.)
                with deferred_interrupts(CLOSING_NOTICE) if signals_undeferred() else \
                        nullcontext() as closing:
                    self._writer.close()
            except BaseException:
                self._discard()
                raise
            self._publish()
            if closing and exc_type is None:  # the user's stop stands once the bag is safe
                self.interrupted = True
                raise ExplainedInterrupt(f'while {self.path} was closed; it was closed '
                                         'properly and holds everything written to it')
        else:
            self._discard()

    def _publish(self) -> None:
        """Move the closed bag from the staging folder to its path."""
        if self.path.exists():
            raise DatasetError(f'output bag {self.path} appeared while it was written; the '
                               f'new one is left in {self._staging}')
        os.replace(self._staging / self.path.name, self.path)
        shutil.rmtree(self._staging, ignore_errors=True)

    def _discard(self) -> None:
        """Abort the writer and delete the staging folder (errors on the way are moot)."""
        try:
            self._writer.abort()
        except Exception:  # the file may be the reason we are here (disk full)
            pass
        shutil.rmtree(self._staging, ignore_errors=True)

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = (SENSOR_QOS,),
                  msgdef: Optional[str] = None, digest: Optional[str] = None) -> Connection:
        """Register ``topic`` (idempotent); ``msgdef``/``digest`` copy another bag's type."""
        if topic in self._connections:
            connection = self._connections[topic]
            if connection.msgtype != msgtype:
                raise DatasetError(f'topic {topic} written with two types: '
                                   f'{connection.msgtype} and {msgtype}')
            return connection
        if msgdef and digest:
            connection = self._writer.add_connection(topic, msgtype, msgdef=msgdef,
                                                     rihs01=digest, offered_qos_profiles=qos)
        else:
            connection = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                     offered_qos_profiles=qos)
        self._connections[topic] = connection
        self.counts[topic] = 0
        return connection

    def write(self, topic: str, msg: Any, log_time_ns: int,
              qos: Sequence[Qos] = (SENSOR_QOS,)) -> None:
        """Serialise ``msg`` (a typestore message) to CDR and write it at ``log_time_ns``."""
        msgtype = msg.__msgtype__
        connection = self.add_topic(topic, msgtype, qos)
        self.write_raw(connection, self.typestore.serialize_cdr(msg, msgtype), log_time_ns)

    def write_raw(self, connection: Connection, data: bytes | memoryview,
                  log_time_ns: int) -> None:
        """Write serialised ``data`` on a connection returned by :meth:`add_topic`."""
        self._writer.write(connection, int(log_time_ns), data)
        self.counts[connection.topic] += 1
