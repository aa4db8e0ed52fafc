"""Read an mcap file record by record, as ``mcap recover`` does: keep what is intact.

``rosbags``' reader needs the summary section at the end of the file (and the bag's
``metadata.yaml``), so a truncated file, or one whose writer was killed, cannot be read at
all, and one damaged chunk ends the whole iteration. :class:`McapScan` walks the data section
from the start instead: schemas and channels are collected as they come, each chunk is
decompressed and its CRC checked (when written), a damaged chunk is skipped and counted, and
the scan stops cleanly where the file is cut off. :class:`ScanReport` says how much was lost.
Messages come in log-time order, as rosbags' reader gives them: chunks may overlap in time
(a writer that chunks each topic apart), and a stereo pair read in file order would then be
split by the synchronizer's queues. Unlike that reader, which decompresses chunks in the
order of their start times, the scan reads them in file order and holds messages back, up to
:data:`MAX_HELD_BYTES`. :func:`merged_messages` puts the files of a split bag (``ros2 bag
record --max-bag-size``) into one log-time order.
"""

import heapq
import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Sequence

from rosbags.interfaces import (Connection, ConnectionExtRosbag2, MessageDefinition,
                                MessageDefinitionFormat)
from rosbags.rosbag2.storage_mcap import decompress, get_qos

MAGIC = b'\x89MCAP0\r\n'
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END, _FOOTER = 0x03, 0x04, 0x05, 0x06, 0x0F, 0x02
_FORMATS = {'ros2msg': MessageDefinitionFormat.MSG, 'ros2idl': MessageDefinitionFormat.IDL,
            'omgidl': MessageDefinitionFormat.IDL}


class McapDamage(Exception):
    """A record that cannot be parsed (bad length, bad string, bad CRC, bad compression)."""


@dataclass
class ScanReport:
    """What a scan found: messages kept, chunks skipped, and where the data stopped."""

    file_size: int = 0
    messages: int = 0
    chunks: int = 0
    bad_chunks: list[str] = field(default_factory=list)
    #: Offset at which the data could no longer be parsed (None: read to the end).
    stopped_at: Optional[int] = None
    stop_reason: str = ''
    complete: bool = False
    #: Messages given before an earlier one of a chunk read later (held data over its bound).
    out_of_order: int = 0
    #: How many messages the bag's metadata.yaml lists (None: no readable metadata.yaml).
    listed_messages: Optional[int] = None

    @property
    def damaged(self) -> bool:
        """Whether anything was skipped or cut off."""
        return bool(self.bad_chunks) or self.stopped_at is not None

    def line(self) -> str:
        """Return one line on what was recovered and what was lost.

        The bytes after the stop are only what is left of a cut file; how many messages
        were lost is known from the count in metadata.yaml, where there is one.
        """
        listed = self.listed_messages
        if listed is None:
            parts = [f'kept {self.messages} messages']
        elif listed >= self.messages:
            parts = [f'kept {self.messages} of the {listed} messages metadata.yaml lists '
                     f'({listed - self.messages} lost)']
        else:  # a metadata.yaml of another recording, or an older one
            parts = [f'kept {self.messages} messages (metadata.yaml lists only {listed}: '
                     'it does not describe this file)']
        if self.bad_chunks:
            parts.append(f'skipped {len(self.bad_chunks)} of {self.chunks} chunks '
                         f'({"; ".join(self.bad_chunks[:3])}'
                         f'{"; ..." if len(self.bad_chunks) > 3 else ""})')
        if self.stopped_at is not None:
            unread = self.file_size - self.stopped_at
            uncounted = ('; without a message count in metadata.yaml the messages cut off '
                         'are not counted' if listed is None else '')
            parts.append(f'the data stops at byte {self.stopped_at} of {self.file_size} '
                         f'({self.stop_reason}; {unread} bytes, '
                         f'{100 * unread / max(self.file_size, 1):.0f}% of what is left of '
                         f'the file, unread{uncounted})')
        return ', '.join(parts)


def _u16(data: bytes, at: int) -> tuple[int, int]:
    return struct.unpack_from('<H', data, at)[0], at + 2


def _u32(data: bytes, at: int) -> tuple[int, int]:
    return struct.unpack_from('<I', data, at)[0], at + 4


def _u64(data: bytes, at: int) -> tuple[int, int]:
    return struct.unpack_from('<Q', data, at)[0], at + 8


def _string(data: bytes, at: int) -> tuple[str, int]:
    size, at = _u32(data, at)
    if at + size > len(data):
        raise McapDamage(f'string of {size} bytes overruns its record')
    return data[at:at + size].decode(), at + size


#: The most message data (bytes) :meth:`McapScan.messages` holds back to put in time order.
MAX_HELD_BYTES = 256 * 2 ** 20
#: Later than any log time (uint64 nanoseconds).
_END_OF_TIME = 1 << 64


def _first_log_times(stream: BinaryIO) -> list[tuple[int, int]]:
    """Return ``(record offset, earliest log time)`` of each chunk and loose message.

    Read from the record headers alone, in file order, up to the end of the data or to
    where the file is cut; the stream is left at its start. An empty chunk (no records)
    holds nothing back and is left out.
    """
    found: list[tuple[int, int]] = []
    stream.seek(0, 2)
    file_size = stream.tell()
    stream.seek(len(MAGIC))
    while True:
        offset = stream.tell()
        head = stream.read(9)
        if len(head) < 9:
            break
        opcode, size = head[0], struct.unpack('<Q', head[1:])[0]
        if opcode in (_DATA_END, _FOOTER) or size > file_size - offset - 9:
            break
        if opcode == _CHUNK and size >= 24:
            start, _, records = struct.unpack('<QQQ', stream.read(24))
            if records:  # its uncompressed size; a chunk of messages all at time 0 counts
                found.append((offset, start))
        elif opcode == _MESSAGE and size >= 14:
            found.append((offset, struct.unpack('<Q', stream.read(14)[6:])[0]))
        stream.seek(offset + 9 + size)
    stream.seek(0)
    return found


def _records(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes, int]]:
    """Yield ``(opcode, body, offset)`` of the records in ``data``; McapDamage when cut."""
    at = start
    while at < len(data):
        if at + 9 > len(data):
            raise McapDamage(f'record header cut off at byte {at}')
        opcode = data[at]
        size = struct.unpack_from('<Q', data, at + 1)[0]
        if at + 9 + size > len(data):
            raise McapDamage(f'record at byte {at} claims {size} bytes, {len(data) - at - 9} '
                             'remain')
        yield opcode, data[at + 9:at + 9 + size], at
        at += 9 + size


class McapScan:
    """Scan one mcap file; iterate :meth:`messages` once, then read :attr:`report`.

    ``connections`` (rosbags Connection objects, like the Reader's) grows as channels are
    found; before :meth:`messages` it holds those found by :meth:`read_connections`.
    """

    def __init__(self, path: str | Path, listed_messages: Optional[int] = None) -> None:
        self.path = Path(path)
        #: The message count of the bag's metadata.yaml, where it has one (for the report).
        self.listed_messages = listed_messages
        self.report = ScanReport(listed_messages=listed_messages)
        self._schemas: dict[int, tuple[str, str, str]] = {}
        self._channels: dict[int, Connection] = {}

    @property
    def connections(self) -> list[Connection]:
        """Return the channels found so far as rosbags connections."""
        return list(self._channels.values())

    def first_log_time(self) -> int:
        """Return the earliest log time the chunk headers give (later than any: none)."""
        with open(self.path, 'rb') as stream:
            return min((time for _, time in _first_log_times(stream)), default=_END_OF_TIME)

    def read_connections(self) -> list[Connection]:
        """Scan the whole file once for its schemas and channels (messages are not kept)."""
        for _ in self._scan(keep_messages=False):
            pass
        return self.connections

    def messages(self) -> Iterator[tuple[Connection, int, bytes]]:
        """Yield ``(connection, log_time_ns, data)`` of every intact message, by log time.

        A message is held back only while a chunk not yet read may start before it (the
        chunks' start times are read first, from their record headers), so chunks written
        in time order pass straight through. Held messages beyond :data:`MAX_HELD_BYTES`
        (chunks far apart in the file that overlap in time: a writer that chunks each topic
        apart, one slow topic's chunk written last) go out oldest first all the same, so
        memory stays bounded; they are counted in ``report.out_of_order``. ``report`` is
        complete afterwards.
        """
        self.report = ScanReport(listed_messages=self.listed_messages)
        with open(self.path, 'rb') as stream:
            starts = _first_log_times(stream)
            offsets = [offset for offset, _ in starts]
            # earliest[i]: the earliest log time of the chunks (or loose messages) i onwards.
            earliest = [time for _, time in starts] + [_END_OF_TIME]
            for index in range(len(starts) - 1, -1, -1):
                earliest[index] = min(earliest[index], earliest[index + 1])
            held: list[tuple[int, int, Connection, bytes]] = []
            held_bytes = 0
            for order, (offset, connection, log_time, data) in enumerate(
                    self._scan_stream(stream, keep_messages=True)):
                unread_from = earliest[bisect_left(offsets, offset)]
                while held and (held[0][0] <= unread_from or held_bytes > MAX_HELD_BYTES):
                    time, _, held_connection, held_data = heapq.heappop(held)
                    held_bytes -= len(held_data)
                    self.report.out_of_order += time > unread_from
                    yield held_connection, time, held_data
                heapq.heappush(held, (log_time, order, connection, data))
                held_bytes += len(data)
            while held:
                time, _, held_connection, held_data = heapq.heappop(held)
                yield held_connection, time, held_data

    def _scan(self, keep_messages: bool) -> Iterator[tuple[int, Connection, int, bytes]]:
        with open(self.path, 'rb') as stream:
            yield from self._scan_stream(stream, keep_messages)

    def _scan_stream(self, stream: BinaryIO,
                     keep_messages: bool) -> Iterator[tuple[int, Connection, int, bytes]]:
        """Yield ``(record offset, connection, log_time_ns, data)``, in file order."""
        report = self.report
        stream.seek(0, 2)
        report.file_size = stream.tell()
        stream.seek(0)
        if stream.read(8) != MAGIC:
            report.stopped_at, report.stop_reason = 0, 'not an mcap file (bad magic)'
            return
        while True:
            offset = stream.tell()
            head = stream.read(9)
            if not head:
                report.stopped_at, report.stop_reason = offset, 'no footer: the file is cut off'
                return
            if len(head) < 9:
                report.stopped_at, report.stop_reason = offset, 'a record header is cut off'
                return
            opcode, size = head[0], struct.unpack('<Q', head[1:])[0]
            if size > report.file_size - offset - 9:
                report.stopped_at = offset
                report.stop_reason = f'a record of {size} bytes is cut off'
                return
            if opcode in (_DATA_END, _FOOTER):
                report.complete = True
                return
            if opcode not in (_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK):
                stream.seek(size, 1)
                continue
            body = stream.read(size)
            try:
                if opcode == _CHUNK:
                    report.chunks += 1
                    for message in self._chunk(body, keep_messages):
                        yield (offset, *message)
                else:
                    for message in self._record(opcode, body, keep_messages):
                        report.messages += 1
                        yield (offset, *message)
            except McapDamage as error:
                report.bad_chunks.append(f'byte {offset}: {error}')

    def _chunk(self, body: bytes,
               keep_messages: bool) -> Iterator[tuple[Connection, int, bytes]]:
        try:
            size, at = _u64(body, 16)
            crc, at = _u32(body, at)
            compression, at = _string(body, at)
            length, at = _u64(body, at)
            raw = decompress(body[at:at + length], compression, size, crc)
        except McapDamage:
            raise
        except Exception as error:  # a bad size, codec or CRC, however it shows
            raise McapDamage(' '.join(str(error).split()) or type(error).__name__) from None
        found: list[tuple[int, Connection, bytes]] = []
        try:
            for opcode, record, _ in _records(raw):
                for connection, log_time, data in self._record(opcode, record, keep_messages):
                    found.append((log_time, connection, data))
        except (McapDamage, struct.error, UnicodeDecodeError) as error:
            raise McapDamage(f'chunk records: {error}') from None
        found.sort(key=lambda item: item[0])
        for log_time, connection, data in found:
            self.report.messages += 1
            yield connection, log_time, data

    def _record(self, opcode: int, body: bytes,
                keep_messages: bool) -> Iterator[tuple[Connection, int, bytes]]:
        try:
            if opcode == _SCHEMA:
                ident, at = _u16(body, 0)
                name, at = _string(body, at)
                encoding, at = _string(body, at)
                size, at = _u32(body, at)
                self._schemas[ident] = (name, encoding, body[at:at + size].decode())
            elif opcode == _CHANNEL:
                self._add_channel(body)
            elif opcode == _MESSAGE and keep_messages:
                channel, _ = _u16(body, 0)
                log_time, _ = _u64(body, 6)
                if channel not in self._channels:
                    raise McapDamage(f'message on unknown channel {channel}')
                yield self._channels[channel], log_time, body[22:]
        except (struct.error, UnicodeDecodeError) as error:
            raise McapDamage(str(error)) from None

    def _add_channel(self, body: bytes) -> None:
        ident, at = _u16(body, 0)
        schema_id, at = _u16(body, at)
        topic, at = _string(body, at)
        encoding, at = _string(body, at)
        if ident in self._channels:
            return
        name, schema_encoding, text = self._schemas.get(schema_id, ('', '', ''))
        try:
            qos = get_qos(body[at + 4:])
        except Exception:  # QoS is only copied; a bad profile is not worth losing data
            qos = []
        msgdef = MessageDefinition(_FORMATS.get(schema_encoding, MessageDefinitionFormat.NONE),
                                   text)
        self._channels[ident] = Connection(
            ident, topic, name, msgdef, '', 0,
            ConnectionExtRosbag2(encoding or 'cdr', qos), self)


def merged_messages(scans: Sequence[McapScan]) -> Iterator[tuple[Connection, int, bytes]]:
    """Yield the messages of several scans (a split bag's files) as one, by log time.

    Each file's :meth:`McapScan.messages` is in log-time order; a file is opened only once
    the messages before its first log time are out, so files recorded one after another
    are read one at a time (one scan: its messages as they are). At equal log times the
    earlier file comes first.
    """
    if len(scans) == 1:
        yield from scans[0].messages()
        return
    pending = sorted(((scan.first_log_time(), index) for index, scan in enumerate(scans)),
                     reverse=True)
    started: dict[int, Iterator[tuple[Connection, int, bytes]]] = {}
    # (log time, scan index, order read, connection, data): one message of each open file.
    heap: list[tuple[int, int, int, Connection, bytes]] = []
    order = 0
    try:
        while pending or heap:
            if pending and (not heap or pending[-1][0] <= heap[0][0]):
                index = pending.pop()[1]
                started[index] = scans[index].messages()
            else:
                log_time, index, _, connection, data = heapq.heappop(heap)
                yield connection, log_time, data
            item = next(started[index], None)
            if item is not None:
                heapq.heappush(heap, (item[1], index, order, item[0], item[2]))
                order += 1
    finally:
        for messages in started.values():
            messages.close()  # type: ignore[attr-defined]
