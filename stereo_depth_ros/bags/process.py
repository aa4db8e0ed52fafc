"""Offline processing of a stereo bag: pair messages, run the pipeline, write the results.

The input bag is copied whole into the output bag, and for every synchronised pair the node's
output topics are added under the stereo namespace (``/stereo/disparity`` for
``/stereo/left/image_rect``), built by the node's own :class:`StereoFrameProcessor` and stamped
like the left image. Pairing follows ``message_filters`` (see :mod:`stereo_depth_ros.sync`).

Nothing half-done is left behind: a run that fails, or that processes no pair, writes no
output bag (and says why); an interrupted run (Ctrl-C, SIGTERM) closes the output bag with
what was done. Undecodable messages and damaged mcap chunks are skipped and counted (with
``strict`` the first one fails the run).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from rosbags.interfaces import ConnectionExtRosbag2
from tqdm import tqdm

from .mcap_scan import MAX_HELD_BYTES
from .reader import BagInput, StereoTopics, find_stereo_topics
from .writer import BagWriter, get_distro_typestore
from ..errors import DatasetError, ExplainedInterrupt, StereoDepthError
from ..interrupts import Abort, deferred_interrupts
from ..msgs.images import NARROW_16_BIT_START
from ..msgs.types import stamp_to_ns
from ..names import check_namespace
from ..pipeline import StereoPipeline
from ..pipeline_config import default_topics
from ..processing import note_kind, StereoFrameProcessor, StereoPair
from ..row_alignment import worth_aligning
from ..plausibility import PairCheck, row_offset_warning, swap_warning, SWAPPED_KIND
from ..sync import DEFAULT_QUEUE_SIZE, TimeSynchronizer, make_synchronizer, never_matched
from ..topics import check_topics, OUTPUT_TOPICS
from ..text import counted


@dataclass
class ProcessSummary:
    """What :func:`process_bag` did."""

    in_bag: Path
    out_bag: Path
    topics: StereoTopics
    namespace: str
    pairs: int = 0
    skipped: int = 0
    #: Pairs written as unknown because their views did not confirm the disparity.
    unconfirmed: int = 0
    #: Pairs whose right view was resampled onto the left's rows (``align_rows``).
    aligned: int = 0
    unpaired: dict[str, int] = field(default_factory=dict)
    messages_in: int = 0
    not_copied: list[str] = field(default_factory=list)
    bag_definitions: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    mean_latency_ms: float = float('nan')
    mean_pipeline_ms: float = float('nan')
    first_error: Optional[str] = None
    #: Topic -> messages that could not be decoded (skipped).
    undecodable: dict[str, int] = field(default_factory=dict)
    first_undecodable: Optional[str] = None
    #: What the mcap scan lost (damaged chunks, a cut), or why the bag had to be recovered.
    damage: Optional[str] = None
    recovered_from: Optional[str] = None
    interrupted: bool = False
    #: Left images in the input bag (the most pairs it could give); 0 where it does not say.
    left_images: int = 0
    #: What :func:`~stereo_depth_ros.plausibility.check_pair` found on the last pair it checked
    #: that it could tell (the processor checks again while it cannot tell, and while the
    #: pairs look swapped: :attr:`StereoFrameProcessor.latest_check`).
    check: Optional[PairCheck] = None
    #: Why a pair check failed (a bug of the check, not of the input), if one did.
    check_failed: Optional[str] = None
    #: The pipeline's warnings (the first of each kind), e.g. a blind obstacle search.
    notes: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        """Processed pairs per second of wall time."""
        return self.pairs / self.elapsed_s if self.elapsed_s > 0 else float('nan')

    def lines(self) -> list[str]:
        """Return a human-readable summary."""
        unpaired = ', '.join(f'{topic}: {count}' for topic, count in self.unpaired.items()
                             if count) or 'none'
        lines = [f'read {self.messages_in} messages from {self.in_bag}',
                 f'stereo topics: {", ".join(self.topics.as_list())}',
                 f'pairs processed: {self.pairs} ({self.frames_per_second:.2f} frames/s), '
                 f'skipped as bad input: {self.skipped}',
                 f'unpaired/dropped messages: {unpaired}',
                 f'mean latency per pair: {self.mean_latency_ms:.1f} ms (pipeline '
                 f'{self.mean_pipeline_ms:.1f} ms)',
                 f'wrote {self.out_bag} with outputs under {self.namespace or "/"}']
        if self.pairs == 0 and any(self.unpaired.values()) and not self.interrupted:
            lines.append('no pair matched: if left/right stamps differ, try --approximate-sync '
                         '--slop S')
        if self.first_error:
            lines.append(f'first bad pair: {self.first_error}')
        if self.not_copied:
            lines.append(f'not copied (type unknown, no definition in the bag): '
                         f'{", ".join(self.not_copied)}')
        if self.bag_definitions:
            lines.append(f'definitions taken from the input bag, not --ros-distro: '
                         f'{", ".join(self.bag_definitions)}')
        lines += self.warnings()
        return lines

    def warnings(self) -> list[str]:
        """Return the lines about input that was lost, skipped or looks wrong."""
        lines = []
        if self.recovered_from:
            lines.append(f'recovered: {self.recovered_from}')
        if self.damage:
            lines.append(f'damaged input: {self.damage}')
        if self.undecodable:
            counts = ', '.join(f'{topic}: {n}' for topic, n in self.undecodable.items())
            lines.append(f'undecodable messages skipped: {counts} (first: '
                         f'{self.first_undecodable}); --strict fails instead')
        swapped = self.check is not None and self.check.swapped
        if swapped:
            lines.append(swap_warning('', 'check the image topics'))
        if self.check is not None and self.check.misaligned:
            assert self.check.row_offset is not None
            lines.append(row_offset_warning('first pair measured', self.check.row_offset,
                                            self.aligned > 0))
        if self.check is not None and not self.check.swapped and self.check.row_offset is None:
            lines.append('rows: too few matching corners in every pair to measure whether the '
                         'two images are rectified alike')
        if self.check_failed:
            lines.append(f'the check of swapped or misaligned inputs failed: {self.check_failed}')
        # The swap line above says what the pairs' own swap notes say.
        lines += [note for note in self.notes if not (swapped and note_kind(note) == SWAPPED_KIND)]
        offset = self.check.row_offset if self.check is not None else None
        if self.aligned and offset is not None:
            lines.append(f'rows aligned: {self.aligned} of {self.pairs} pairs had their right '
                         'view resampled onto the left\'s rows (first pair measured: '
                         f'{offset.summary()}; align_rows)')
        elif (offset is not None and not offset.too_large  # the warning above says those
              and worth_aligning(offset, offset.shape)):
            lines.append(f'rows not aligned: first pair measured: {offset.summary()}; '
                         'align_rows is off, so the pairs were matched as they came')
        if self.unconfirmed:
            lines.append(f'written as unknown: {self.unconfirmed} of {self.pairs} pairs, whose '
                         'views do not confirm the disparity or look swapped (check_views; the '
                         'lines above say how)')
        if self.interrupted:
            of_input = (f', of the {self.left_images} left images of {self.in_bag}'
                        if self.left_images else '')  # 0: the bag did not say
            lines.append(f'interrupted: {self.out_bag} was closed properly and holds the '
                         f'{counted(self.pairs, "pair")} processed so far{of_input}; the '
                         'input topics it copies end at the same point')
        return lines


def _output_topic(namespace: str, name: str) -> str:
    return f'{namespace}/{name}'


def _output_namespace(stereo: StereoTopics, namespace: Optional[str]) -> str:
    """Return the output namespace: ``namespace`` or that of the images; '' for the root."""
    ns = stereo.namespace if namespace is None else '/' + namespace.strip('/')
    return '' if ns == '/' else ns


def _check_outputs_are_new(topics: dict[str, str], ns: str, wanted: tuple[str, ...]) -> None:
    """Raise DatasetError when the input bag already has one of the output topics."""
    taken = [_output_topic(ns, name) for name in wanted if _output_topic(ns, name) in topics]
    if taken:
        raise DatasetError(
            f'the input bag already has {", ".join(taken)}: the outputs would be mixed into '
            f'{"it" if len(taken) == 1 else "them"}; write them under another namespace with '
            f'--namespace (e.g. --namespace {ns or ""}/processed)')


def process_bag(in_bag: str | Path, out_bag: str | Path, pipeline: StereoPipeline,
                topics: Optional[dict[str, Optional[str]]] = None,
                slop: Optional[float] = None, queue_size: int = DEFAULT_QUEUE_SIZE,
                points: bool = False,
                points_organized: bool = False,
                storage: str = 'mcap', distro: str = 'jazzy', namespace: Optional[str] = None,
                mono16_bit_depth: Optional[int] = None,
                progress: bool = True, strict: bool = False,
                max_megapixels: Optional[float] = None,
                outputs: Optional[Iterable[str]] = None,
                slop_name: str = '--slop') -> ProcessSummary:
    """Process every stereo pair of ``in_bag`` and write ``out_bag`` (inputs + outputs).

    ``outputs`` are the output topics written (from :mod:`stereo_depth_ros.topics`; default:
    those the node publishes with its default parameters - pass a configured pipeline's
    ``topics`` for those of a parameter file); ``points`` adds ``points2``, organised as the
    image with ``points_organized``.

    ``topics`` may name ``left_image``, ``right_image``, ``left_info``, ``right_info``; the
    others are found by type and name. ``slop`` (s) selects approximate synchronisation.
    Pairs that are bad input (wrong encoding, calibration) are skipped and counted; if no pair
    could be processed the first such error is raised. Output topics the input bag already
    has are refused (DatasetError): choose another ``namespace``.

    Messages are decoded and written with the ``distro`` definitions, except for types the
    bag stores its own definition of: those keep the bag's (see :class:`BagInput`), so the
    copied bytes and the output bag's definitions agree.

    Images above ``max_megapixels`` are refused as bad input before the backend runs. If no
    pair is processed, StereoDepthError says why (empty topics, stamps that never pair,
    the first bad pair) and no output bag is written. Ctrl-C or SIGTERM end the run after
    the current pair, with the output bag closed and ``interrupted`` set; before the first
    pair they write no bag and raise ExplainedInterrupt (a KeyboardInterrupt) saying so. A second
    signal stops at once, discards the staged bag and raises ExplainedInterrupt too.
    """
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    # A storage file given alone belongs to the bag folder it lies in, where it has one.
    folder = in_bag if in_bag.is_dir() else (
        in_bag.parent if (in_bag.parent / 'metadata.yaml').is_file() else None)
    if folder is not None and out_bag.resolve() != folder.resolve() \
            and out_bag.resolve().is_relative_to(folder.resolve()):
        raise DatasetError(f'the output bag {out_bag} is inside the input bag {folder}: its '
                           'folder would hold another bag; write the output elsewhere')
    if namespace is not None:
        namespace = check_namespace(namespace, '--namespace') or '/'
    sync = make_synchronizer(4, queue_size, slop)
    typestore = get_distro_typestore(distro)
    chosen = check_topics(default_topics() if outputs is None else outputs)
    if points:
        chosen |= {'points2'}
    wanted = tuple(topic for topic in OUTPUT_TOPICS if topic in chosen)
    try:
        with BagInput(in_bag, typestore=typestore, strict=strict) as bag:
            stereo = find_stereo_topics(bag.topics, **(topics or {}))
            ns = _output_namespace(stereo, namespace)
            _check_outputs_are_new(bag.topics, ns, wanted)
            with BagWriter(out_bag, storage=storage, typestore=bag.typestore) as writer:
                run = _Run(bag, writer, stereo, pipeline, sync, wanted, ns,
                           mono16_bit_depth, strict, max_megapixels, points_organized)
                try:
                    summary = run.process(progress)
                except OSError as error:
                    raise DatasetError(f'cannot write {out_bag}: {error.strerror or error}; '
                                       'nothing was kept') from None
                except KeyboardInterrupt:  # before the deferral: setting up, copying topics
                    if run.summary.pairs:
                        raise
                    raise _NothingDone from None
                if summary.pairs == 0 and summary.interrupted:
                    raise _NothingDone  # any exception but KeyboardInterrupt discards the bag
                if summary.pairs == 0:
                    why = run.why_nothing(slop, slop_name)
                    raise StereoDepthError(f'no stereo pair of {in_bag} could be processed: '
                                           f'{why}; no output written')
    except _NothingDone:
        raise ExplainedInterrupt('before the first pair was processed; no output bag was '
                                 'written') from None
    except Abort:  # BagWriter discarded the staged bag: nothing half-written
        raise ExplainedInterrupt('twice: stopped at once; no output bag was written') from None
    return summary


class _NothingDone(Exception):
    """Interrupted before the first pair: the staged output bag is discarded, not published."""


def _copy_topics(bag: BagInput, writer: BagWriter, summary: ProcessSummary) -> dict[int, Any]:
    """Add every copyable input connection to ``writer``; return input id -> output connection.

    A connection keeps the bag's own message definition and hash: its bytes were written with
    them. Without a hash (older recorders) it is computed from the typestore, which holds the
    bag's definition of that type; without a definition the typestore's is written.
    """
    copies: dict[int, Any] = {}
    store = writer.typestore
    for connection in bag.connections:
        ext = connection.ext
        assert isinstance(ext, ConnectionExtRosbag2)  # BagInput reads rosbag2 bags only
        qos = ext.offered_qos_profiles
        msgtype = connection.msgtype
        msgdef = connection.msgdef.data if connection.msgdef else ''
        digest = connection.digest
        if msgdef and not digest and msgtype in bag.bag_types:
            digest = store.hash_rihs01(msgtype)
        if msgdef and digest:
            copies[connection.id] = writer.add_topic(connection.topic, msgtype, qos, msgdef,
                                                     digest)
        elif msgtype in store.fielddefs:
            copies[connection.id] = writer.add_topic(connection.topic, msgtype, qos)
        else:
            summary.not_copied.append(connection.topic)
    return copies


class _Run:
    """One pass over the input bag: copy, pair, process, count."""

    def __init__(self, bag: BagInput, writer: BagWriter, stereo: StereoTopics,
                 pipeline: StereoPipeline, sync: TimeSynchronizer, wanted: tuple[str, ...],
                 ns: str, mono16_bit_depth: Optional[int], strict: bool,
                 max_megapixels: Optional[float], points_organized: bool = False) -> None:
        self.bag, self.writer, self.stereo, self.pipeline = bag, writer, stereo, pipeline
        self.sync, self.wanted, self.ns = sync, wanted, ns
        self.strict, self.max_megapixels = strict, max_megapixels
        self.processor = StereoFrameProcessor(writer.types, mono16_bit_depth, max_megapixels,
                                              check_retry=0.0,
                                              organized_points=points_organized)
        self.summary = ProcessSummary(bag.path, writer.path, stereo, ns)
        self.inputs = {topic: index for index, topic in enumerate(stereo.as_list())}
        self.stamps: list[list[int]] = [[], [], [], []]

    def process(self, progress: bool) -> ProcessSummary:
        """Run over every message; return the summary (also when interrupted)."""
        bag, writer, summary = self.bag, self.writer, self.summary
        summary.bag_definitions = list(bag.redefined)
        summary.recovered_from = bag.recovered_from
        pair_latency: list[float] = []
        pipeline_ms: list[float] = []
        copies = _copy_topics(bag, writer, summary)
        summary.left_images = bag.message_count(self.stereo.left_image) or 0
        start = time.perf_counter()
        # The bar is closed on errors too, so an error line does not land on it.
        with tqdm(total=summary.left_images or None, desc='process-bag',
                  unit='frame', disable=not progress) as bar:
            with deferred_interrupts('stopping after the current pair (interrupt again to stop '
                                     'at once, keeping no output bag)') as stop:
                for connection, log_time, data in bag.messages():
                    if stop:
                        summary.interrupted = True
                        break
                    summary.messages_in += 1
                    if connection.id in copies:
                        writer.write_raw(copies[connection.id], data, log_time)
                    index = self.inputs.get(connection.topic)
                    if index is None:
                        continue
                    msg = self._decode(data, connection)
                    if msg is None:
                        continue
                    stamp = stamp_to_ns(msg.header.stamp)
                    self.stamps[index].append(stamp)
                    for matched in self.sync.add(index, stamp, msg):
                        tick = time.perf_counter()
                        output = self._process_pair(StereoPair(*matched))
                        bar.update(1)
                        if output is None:
                            continue
                        for name, message in output.messages.items():
                            writer.write(_output_topic(self.ns, name), message, log_time)
                        self._check(output)
                        summary.unconfirmed += output.views_unconfirmed
                        summary.aligned += output.rows_aligned
                        pair_latency.append((time.perf_counter() - tick) * 1e3)
                        pipeline_ms.append(output.timings.get('total_ms', float('nan')))
                        summary.pairs += 1
        summary.elapsed_s = time.perf_counter() - start
        # The 16-bit line as the whole bag says it (a bright frame late in it withdraws it).
        summary.notes = [note for note in summary.notes
                         if not note.startswith(NARROW_16_BIT_START)]
        summary.check = self.processor.latest_check
        final = self.processor.narrow_16_bit_note()
        if final is not None:
            summary.notes.append(final)
        paired = summary.pairs + summary.skipped
        summary.unpaired = {topic: len(self.stamps[i]) - paired
                            for topic, i in self.inputs.items()}
        summary.written = dict(writer.counts)
        summary.damage = bag.damage
        out_of_order = sum(report.out_of_order for _, report in bag.scan_reports)
        if out_of_order:
            summary.notes.append(
                f'read out of time order: {out_of_order} messages of this mcap bag '
                'were given before earlier ones of chunks far later in their file (more than '
                f'{MAX_HELD_BYTES // 2 ** 20} MiB held back to order them); pairs may have '
                'been missed: rewrite it in time order (ros2 bag convert)')
        if pair_latency:
            summary.mean_latency_ms = float(np.mean(pair_latency))
            summary.mean_pipeline_ms = float(np.nanmean(pipeline_ms))
        return summary

    def _check(self, output: Any) -> None:
        """Run the pair check due on a written output; a failing check never ends the run.

        The output's first note of each kind (the pipeline's warnings) is kept for the
        summary.
        """
        for note in output.notes:
            if all(note_kind(seen) != note_kind(note) for seen in self.summary.notes):
                self.summary.notes.append(note)
        try:
            self.processor.check(output)
        except Exception as error:
            self.summary.check_failed = f'{type(error).__name__}: {error}'

    def _decode(self, data: bytes, connection: Any) -> Any:
        """Return the message, or None (counted) when it cannot be decoded."""
        try:
            return self.bag.deserialize(data, connection)
        except DatasetError as error:
            if self.strict:
                raise DatasetError(f'{error} (--strict)') from None
            summary = self.summary
            summary.undecodable[connection.topic] = summary.undecodable.get(
                connection.topic, 0) + 1
            summary.first_undecodable = summary.first_undecodable or str(error)
            return None

    def _process_pair(self, pair: StereoPair) -> Any:
        """Return the output of one pair, or None (counted) when it is bad input."""
        summary = self.summary
        try:
            return self.processor.process(pair, self.pipeline, self.wanted)
        except StereoDepthError as error:
            summary.skipped += 1
            stamp = stamp_to_ns(pair.left_image.header.stamp) / 1e9
            summary.first_error = summary.first_error or f'{error} (stamp {stamp:.6f})'
            return None

    def why_nothing(self, slop: Optional[float], slop_name: str = '--slop') -> str:
        """Return why no pair was processed: empty topics, unpaired stamps or bad pairs.

        ``slop_name`` is the setting the approximate sync's ``slop`` came from.
        """
        topics = self.stereo.as_list()
        empty = [topic for topic, stamps in zip(topics, self.stamps) if not stamps]
        garbled = [topic for topic in empty if self.summary.undecodable.get(topic)]
        if garbled:
            counts = ', '.join(f'{topic}: {self.summary.undecodable[topic]}' for topic in garbled)
            return (f'no message on {", ".join(garbled)} could be decoded ({counts}); first: '
                    f'{self.summary.first_undecodable}')
        if empty:
            counts = ', '.join(f'{topic}: {len(stamps)}'
                               for topic, stamps in zip(topics, self.stamps))
            return f'no message on {", ".join(empty)} (messages: {counts})'
        if self.summary.first_error:
            return f'{self.summary.skipped} pairs were bad input, first: ' \
                   f'{self.summary.first_error}'
        return never_matched(topics, self.stamps, slop, slop_name)
