"""Offline processing of a stereo bag: pair messages, run the pipeline, write the results.

The input bag is copied whole into the output bag, and for every synchronised pair the node's
output topics are added under the stereo namespace (``/stereo/disparity`` for
``/stereo/left/image_rect``), built by the node's own :class:`StereoFrameProcessor` and stamped
like the left image. Pairing follows ``message_filters`` (see :mod:`stereo_depth_ros.sync`).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from .reader import BagInput, StereoTopics, find_stereo_topics
from .writer import BagWriter, get_distro_typestore
from ..errors import DatasetError, StereoDepthError
from ..msgs import stamp_to_ns
from ..pipeline import StereoPipeline
from ..processing import StereoFrameProcessor, StereoPair
from ..sync import TimeSynchronizer, make_synchronizer

#: Output topics (relative to the namespace) written by default; ``points2`` on request.
DEFAULT_OUTPUTS = ('disparity', 'depth', 'obstacle/mask', 'obstacle/range', 'disparity/color')


@dataclass
class ProcessSummary:
    """What :func:`process_bag` did."""

    in_bag: Path
    out_bag: Path
    topics: StereoTopics
    namespace: str
    pairs: int = 0
    skipped: int = 0
    unpaired: dict[str, int] = field(default_factory=dict)
    messages_in: int = 0
    not_copied: list[str] = field(default_factory=list)
    bag_definitions: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    mean_latency_ms: float = float('nan')
    mean_pipeline_ms: float = float('nan')
    first_error: Optional[str] = None

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
        if self.pairs == 0 and any(self.unpaired.values()):
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
                slop: Optional[float] = None, queue_size: int = 10, points: bool = False,
                storage: str = 'mcap', distro: str = 'jazzy', namespace: Optional[str] = None,
                mono16_bit_depth: Optional[int] = None,
                progress: bool = True) -> ProcessSummary:
    """Process every stereo pair of ``in_bag`` and write ``out_bag`` (inputs + outputs).

    ``topics`` may name ``left_image``, ``right_image``, ``left_info``, ``right_info``; the
    others are found by type and name. ``slop`` (s) selects approximate synchronisation.
    Pairs that are bad input (wrong encoding, calibration) are skipped and counted; if no pair
    could be processed the first such error is raised. Output topics the input bag already
    has are refused (DatasetError): choose another ``namespace``.

    Messages are decoded and written with the ``distro`` definitions, except for types the
    bag stores its own definition of: those keep the bag's (see :class:`BagInput`), so the
    copied bytes and the output bag's definitions agree.
    """
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    sync = make_synchronizer(4, queue_size, slop)
    typestore = get_distro_typestore(distro)
    wanted = DEFAULT_OUTPUTS + (('points2',) if points else ())
    with BagInput(in_bag, typestore=typestore) as bag:
        stereo = find_stereo_topics(bag.topics, **(topics or {}))
        ns = _output_namespace(stereo, namespace)
        _check_outputs_are_new(bag.topics, ns, wanted)
        with BagWriter(out_bag, storage=storage, typestore=typestore) as writer:
            summary = _process(bag, writer, stereo, pipeline, sync, wanted, ns,
                               mono16_bit_depth, progress)
    if summary.pairs == 0 and summary.first_error:
        raise StereoDepthError(f'no stereo pair of {in_bag} could be processed: '
                               f'{summary.first_error}')
    return summary


def _copy_topics(bag: BagInput, writer: BagWriter, summary: ProcessSummary) -> dict[int, Any]:
    """Add every copyable input connection to ``writer``; return input id -> output connection.

    A connection keeps the bag's own message definition and hash: its bytes were written with
    them. Without a hash (older recorders) it is computed from the typestore, which holds the
    bag's definition of that type; without a definition the typestore's is written.
    """
    copies: dict[int, Any] = {}
    store = writer.typestore
    for connection in bag.connections:
        qos = connection.ext.offered_qos_profiles
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


def _process(bag: BagInput, writer: BagWriter, stereo: StereoTopics, pipeline: StereoPipeline,
             sync: TimeSynchronizer, wanted: tuple[str, ...], ns: str,
             mono16_bit_depth: Optional[int], progress: bool) -> ProcessSummary:
    pair_latency: list[float] = []
    pipeline_ms: list[float] = []
    summary = ProcessSummary(bag.path, writer.path, stereo, ns)
    summary.bag_definitions = list(bag.redefined)
    inputs = {topic: index for index, topic in enumerate(stereo.as_list())}
    seen = [0, 0, 0, 0]
    processor = StereoFrameProcessor(writer.types, mono16_bit_depth)
    copies = _copy_topics(bag, writer, summary)
    start = time.perf_counter()
    # The bar is closed on errors too, so an error line does not land on it.
    with tqdm(total=bag.message_count(stereo.left_image), desc='process-bag',
              unit='frame', disable=not progress) as bar:
        for connection, log_time, data in bag.messages():
            summary.messages_in += 1
            if connection.id in copies:
                writer.write_raw(copies[connection.id], data, log_time)
            index = inputs.get(connection.topic)
            if index is None:
                continue
            msg = bag.deserialize(data, connection)
            seen[index] += 1
            for matched in sync.add(index, stamp_to_ns(msg.header.stamp), msg):
                tick = time.perf_counter()
                try:
                    output = processor.process(StereoPair(*matched), pipeline, wanted)
                except StereoDepthError as error:
                    summary.skipped += 1
                    summary.first_error = summary.first_error or str(error)
                    bar.update(1)
                    continue
                for name, message in output.messages.items():
                    writer.write(_output_topic(ns, name), message, log_time)
                pair_latency.append((time.perf_counter() - tick) * 1e3)
                pipeline_ms.append(output.timings.get('total_ms', float('nan')))
                summary.pairs += 1
                bar.update(1)
    summary.elapsed_s = time.perf_counter() - start
    paired = summary.pairs + summary.skipped
    summary.unpaired = {topic: seen[i] - paired for topic, i in inputs.items()}
    summary.written = dict(writer.counts)
    if pair_latency:
        summary.mean_latency_ms = float(np.mean(pair_latency))
        summary.mean_pipeline_ms = float(np.nanmean(pipeline_ms))
    return summary
