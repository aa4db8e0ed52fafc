"""ROS 2 node ``stereo_depth_node``: rectified stereo in; disparity, depth and obstacle out.

The only module of the package that imports rclpy. It is a thin shell: parameters are
defined and validated in :mod:`stereo_depth_ros.node_config` and turned into the pipeline by
:mod:`stereo_depth_ros.pipeline_config` (as ``stereo-depth process-bag`` does), the topics are
listed in :mod:`stereo_depth_ros.topics`, the per-pair work (checks, inference, message
building) is in :mod:`stereo_depth_ros.processing` and the inference thread in
:mod:`stereo_depth_ros.worker`.

Subscribes (relative names, remap them): ``left/image_rect``, ``right/image_rect``,
``left/camera_info``, ``right/camera_info`` (with ``image_transport: compressed`` the images
as sensor_msgs/CompressedImage on ``<image topic>/compressed``) - sensor-data QoS (REP 2003) unless
``use_system_default_qos`` is true; every policy can also be overridden with
``qos_overrides.<topic>.subscription.<policy>`` parameters. The four topics are paired by
exact stamp (``approximate_sync: false``) or by nearest stamp within
``approximate_sync_tolerance_seconds``.

Publishes (reliable, keep last :data:`OUTPUT_HISTORY_DEPTH`): ``disparity``
(stereo_msgs/DisparityImage), ``depth/image_rect`` (32FC1 metres, NaN unknown, REP 118;
-inf/+inf outside ``min_depth``/``max_depth``, REP 117) with ``depth/camera_info`` beside it
(the left CameraInfo, same header, where image_transport and depth_image_proc look),
``obstacle/mask`` (mono8, 255 = nearest obstacle), ``obstacle/range`` (sensor_msgs/Range),
``disparity/color`` (bgr8) and ``points2`` (PointCloud2 x, y, z, rgb; ``publish_points``).
Only outputs with subscribers are computed.
"""

import array
import os
import signal
import sys
from typing import Any, Mapping, Optional

import message_filters
import rclpy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_system_default)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.timer import Timer

from .errors import StereoDepthError
from .input_watch import InputArrivals, forget_after_jump
from .msgs.types import MessageTypes, stamp_to_ns
from .monitoring import format_stats, LogThrottle
from .node_config import (ALIASED, ALIASES, alias_value, apply_old_names, PARAMETERS,
                          ParameterSpec, SPECS, canonical_name, without_unset_aliases)
from .names import NODE_NAME
from .pipeline_config import PipelineManager
from .processing import StereoFrameProcessor, StereoPair
from .topics import input_subscriptions, OUTPUTS
from .worker import StereoWorker

#: Seconds between two checks of the pair: swapped inputs, rows off (about 40 ms at 1242x375).
PAIR_CHECK_PERIOD_S = 10.0
#: Seconds between two lines saying why no stereo set pairs, per kind of problem.
DIAGNOSIS_THROTTLE_S = 30.0
#: Seconds the inference thread may take to finish its pair at shutdown (ros2 launch sends
#: SIGTERM 5 s after SIGINT).
SHUTDOWN_WAIT_S = 2.0
#: What a bad parameter file or model raises at start-up: one line and exit status 2.
START_ERRORS = (StereoDepthError, ParameterException, ValueError, OSError)


class NodeStartError(Exception):
    """The node could not start; it has logged why with its own logger."""


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """Return the ROS parameter descriptor of one :class:`ParameterSpec`."""
    descriptor = ParameterDescriptor(description=spec.description,
                                     additional_constraints=spec.constraints,
                                     read_only=spec.read_only)
    if spec.limits is not None and spec.kind is int:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.limits[0]),
                                                 to_value=int(spec.limits[1]),
                                                 step=int(spec.step))]
    elif spec.limits is not None and spec.kind is float:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.limits[0]), to_value=float(spec.limits[1]), step=0.0)]
    return descriptor


def _plain(value: Any) -> Any:
    """Return a parameter value with array types (array.array, tuple) as a list."""
    if isinstance(value, (array.array, tuple)):
        return list(value)
    return value


#: Outputs are reliable and keep this many messages: with 1 (as stereo_image_proc) the
#: subscribers lost 13-63 % of the point clouds (a 512x256 drive, 30 frames) on loopback on
#: Jazzy, a newer message replacing one not yet delivered; with 5, none (two runs).
OUTPUT_HISTORY_DEPTH = 5


def _sensor_qos() -> QoSProfile:
    """Return a new sensor-data profile (best effort, volatile, keep last 5), REP 2003."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def _system_default_qos() -> QoSProfile:
    """Return a new copy of the system default profile (QoS overrides modify profiles)."""
    base = qos_profile_system_default
    return QoSProfile(history=base.history, depth=base.depth, reliability=base.reliability,
                      durability=base.durability)


class StereoDepthNode(Node):
    """Disparity, depth and nearest obstacle from a rectified stereo camera."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._start()
        except START_ERRORS as error:
            # Logged here, by the node's own logger: the line names the node with its
            # namespace and remappings, as every later line of it does.
            self.get_logger().fatal(f'cannot start: {type(error).__name__}: {error}')
            Node.destroy_node(self)
            raise NodeStartError(str(error)) from error

    def _start(self) -> None:
        """Declare the parameters, build the pipeline, subscribe, publish, start the worker."""
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._sync_timer: Optional[Timer] = None
        #: Parameters with old names changed since the last sync of their names.
        self._unsynced: set[str] = set()
        self._manager = PipelineManager(self._declare_node_parameters())
        self._types = MessageTypes.from_rclpy()
        self._output_pubs = {
            topic.name: self.create_publisher(
                getattr(self._types, topic.message), topic.name, OUTPUT_HISTORY_DEPTH,
                qos_overriding_options=QoSOverridingOptions.with_default_policies())
            for topic in OUTPUTS}
        processor = StereoFrameProcessor(self._types,
                                         self._manager.integer('mono16_bit_depth') or None,
                                         self._manager.number('max_megapixels') or None,
                                         'the start-up parameter max_megapixels:',
                                         check_period=PAIR_CHECK_PERIOD_S,
                                         organized_points=bool(
                                             self._manager.value('points_organized')))
        self._worker = StereoWorker(processor, lambda: self._manager.pipeline,
                                    self._wanted_topics, self._publish, self._warn,
                                    self._error, info=self.get_logger().info)
        self._input_subs = self._subscribe()
        self._arrivals = self._watch_arrivals(self._input_subs)
        self._diagnosis_throttle = LogThrottle(DIAGNOSIS_THROTTLE_S)
        self._sync = self._synchronizer(self._input_subs)
        self._sync.registerCallback(self._on_pair)
        period = self._manager.number('stats_period')
        # Wall time: with use_sim_time and no /clock (a bag not played yet) the node clock
        # stands still, and the lines saying that nothing arrives would never come.
        self._stats_timer = self.create_timer(period, self._log_stats,
                                              clock=self._steady_clock) if period > 0 else None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker.start()
        self.get_logger().info(
            f'{self._manager.pipeline.backend.describe()}; waiting for '
            f'{", ".join(sub.sub.topic_name for sub in self._input_subs)}')
        ignored = self._manager.ignored_settings()
        if ignored:
            self.get_logger().warning(ignored)
        self._warn_unknown_parameters()

    def _given_parameters(self) -> dict[str, Any]:
        """Return the parameters given to this node (parameter files, ``-p``) and their values.

        rclpy keeps them in the private ``_parameter_overrides`` (Humble, Jazzy); where it
        does not, nothing is known to be given.
        """
        given = getattr(self, '_parameter_overrides', None) or {}
        return {name: _plain(parameter.value) for name, parameter in given.items()}

    def _warn_unknown_parameters(self) -> None:
        """Warn about parameters given to the node that it does not have (typos, old files).

        ROS ignores them silently; ``qos_overrides.*`` are declared with the subscriptions
        and publishers, so this runs after those exist.
        """
        unknown = sorted(name for name in self._given_parameters()
                         if not self.has_parameter(name))
        if unknown:
            self.get_logger().warning(
                f'ignoring parameter(s) this node does not have: {", ".join(unknown)} '
                '(`ros2 param list` shows its parameters; docs/ros.md describes them)')

    # ------------------------------------------------------------------ set-up

    def _declare_node_parameters(self) -> dict[str, Any]:
        """Declare every parameter of :data:`PARAMETERS`; return their (overridden) values.

        Each alias (an old name, e.g. ``sgbm.block_size``) is declared too, unset: a value
        given under it at start-up is the value of the parameter it names.
        """
        for spec in PARAMETERS:
            default = list(spec.default) if isinstance(spec.default, list) else spec.default
            self.declare_parameter(spec.name, default, _descriptor(spec))
            for alias in spec.aliases:
                self.declare_parameter(alias, None, ParameterDescriptor(
                    description=f'Old name of {spec.name}, accepted; prefer {spec.name}.',
                    dynamic_typing=True))
        values = {spec.name: _plain(self.get_parameter(spec.name).value) for spec in PARAMETERS}
        old = {alias: alias_value(alias, _plain(self.get_parameter(alias).value))
               for alias in ALIASES}
        merged = apply_old_names(values, old, self._given_parameters())
        renamed = []
        for alias, value in old.items():
            if value is not None:
                self.get_logger().info(f'{alias} is the old name of {ALIASES[alias]}; using '
                                       f'{value!r}')
                renamed.append(Parameter(ALIASES[alias], value=value))
        # The parameter's own name shows the value too (ros2 param get/dump, rqt).
        for parameter, result in zip(renamed, self.set_parameters(renamed)):
            if not result.successful:
                raise ValueError(f'{parameter.name}: {result.reason}')
        return merged

    def _subscribe(self) -> list:
        """Create the four input subscriptions (message_filters) with the configured QoS.

        The image topics follow ``image_transport``: a compressed stream's topic is its
        base topic, resolved and remapped, plus ``/compressed`` (as image_transport names it).
        """
        system_default = bool(self._manager.value('use_system_default_qos'))
        subscribers = []
        transport = str(self._manager.value('image_transport'))
        # rclpy's Node.resolve_topic_name (expansion and remapping); an rclpy without it
        # subscribes to the relative name plus the suffix (remap that name then).
        resolve = getattr(self, 'resolve_topic_name', lambda name: name)
        for topic, suffix, type_name in input_subscriptions(transport):
            if suffix:
                topic = resolve(topic) + suffix
            qos = _system_default_qos() if system_default else _sensor_qos()
            subscribers.append(message_filters.Subscriber(
                self, getattr(self._types, type_name), topic, qos_profile=qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies()))
        return subscribers

    def _watch_arrivals(self, subscribers: list) -> InputArrivals:
        """Count each subscriber's messages, to say which input is missing when none pair.

        Registered before the synchronizer, so each message is seen here first.
        """
        topics = [sub.sub.topic_name for sub in subscribers]
        info_topics = [topic for topic, sub in zip(topics, subscribers)
                       if sub.sub.msg_type is self._types.CameraInfo]
        arrivals = InputArrivals(topics, info_topics)
        for sub in subscribers:
            sub.registerCallback(
                lambda msg, topic=sub.sub.topic_name: self._on_arrival(topic, msg))
        return arrivals

    def _on_arrival(self, topic: str, message: Any) -> None:
        """Count a message; where its stamp went back, forget the queued later ones."""
        stamp = stamp_to_ns(message.header.stamp)
        went_back = self._arrivals.record(topic, stamp)
        if not went_back:
            return
        with self._sync.lock:
            dropped = forget_after_jump(self._sync.queues, stamp, went_back)
        if dropped and self._diagnosis_throttle.check('went back') is not None:
            self.get_logger().info(
                f'stamps on {topic} went back {went_back / 1e9:.3f} s, to {stamp / 1e9:.3f} s '
                f'(a bag replayed or looped?): dropped {dropped} unpaired input message(s) '
                'left over from before, so pairing starts anew')

    def _synchronizer(self, subscribers: list) -> Any:
        """Return the exact- or approximate-time synchronizer of the four subscriptions."""
        queue_size = self._manager.integer('queue_size')
        if self._manager.value('approximate_sync'):
            slop = self._manager.number('approximate_sync_tolerance_seconds')
            return message_filters.ApproximateTimeSynchronizer(subscribers, queue_size, slop)
        return message_filters.TimeSynchronizer(subscribers, queue_size)

    # ------------------------------------------------------------------ callbacks

    def _on_pair(self, left_image: Any, right_image: Any, left_info: Any,
                 right_info: Any) -> None:
        """Hand a synchronised set to the inference thread (runs on the executor thread)."""
        self._worker.submit(StereoPair(left_image, right_image, left_info, right_info))

    def _wanted_topics(self) -> set[str]:
        """Return the enabled output topics that have at least one subscriber."""
        try:
            return {topic for topic in self._manager.enabled_topics()
                    if self._output_pubs[topic].get_subscription_count() > 0}
        except Exception:
            if self.context.ok():
                raise
            return set()  # Ctrl-C shut the context down under the inference thread: none

    def _publish(self, messages: Mapping[str, Any]) -> None:
        for topic, message in messages.items():
            try:
                self._output_pubs[topic].publish(message)
            except Exception:
                if self.context.ok():
                    raise
                return  # Ctrl-C shut the context down under the inference thread: quietly

    # The worker throttles these itself, per error class (monitoring.LogThrottle): rclpy's
    # throttle_duration_sec keeps one timer per call site, so one repeating problem would
    # hide every other one logged here.
    def _warn(self, text: str) -> None:
        self.get_logger().warning(text)

    def _error(self, text: str) -> None:
        self.get_logger().error(text)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a parameter change; reload the model when its settings changed.

        The new backend is built before the change is accepted: on any failure the
        change is rejected with the reason and the running model stays.
        """
        # An old name loaded as unset (a dumped file's null) changes nothing.
        changes = without_unset_aliases({p.name: _plain(p.value) for p in parameters
                                         if canonical_name(p.name) in SPECS
                                         and p.value is not None})
        if not changes:
            return SetParametersResult(successful=True)
        try:
            notes = self._manager.apply(changes)
        except Exception as error:  # any failure to build the backend must reject, not crash
            reason = f'{type(error).__name__}: {error}'
            self.get_logger().warning(f'rejected parameter change {changes}: {reason}')
            return SetParametersResult(successful=False, reason=reason)
        for note in notes:
            self.get_logger().info(note)
        # Once accepted, the value shows under the parameter's own name too, and under an old
        # name that holds one: a stale old name in a `ros2 param dump` file would contradict
        # the new one, and the node would refuse that file at its next start.
        aliased = {canonical_name(name) for name in changes} & ALIASED
        if aliased:
            self._unsynced |= aliased
            if self._sync_timer is None:  # one pending sync at a time, for every change
                self._sync_timer = self.create_timer(0.0, self._sync_aliases,
                                                     clock=self._steady_clock)
        return SetParametersResult(successful=True)

    def _sync_aliases(self) -> None:
        """Show each changed parameter's value under its name and its old names alike.

        A one-shot timer. The value is the one in force (the last accepted, whichever name it
        came under), so setting the names to it changes nothing more and the sync ends. An
        old name never given (unset) or deleted stays so.
        """
        if self._sync_timer is not None:
            self.destroy_timer(self._sync_timer)
            self._sync_timer = None
        names, self._unsynced = self._unsynced, set()
        updates = []
        for name in sorted(names):
            value = self._manager.value(name)
            for target in (name, *SPECS[name].aliases):
                if not self.has_parameter(target):
                    continue
                current = _plain(self.get_parameter(target).value)
                if target != name and alias_value(target, current) is None:
                    continue
                if current != value:
                    updates.append(Parameter(target, value=value))
        if updates:
            self.set_parameters(updates)

    def _log_stats(self) -> None:
        stats = self._worker.monitor.report()
        if stats['received'] == 0:
            approximate = bool(self._manager.value('approximate_sync'))
            tolerance = self._manager.number('approximate_sync_tolerance_seconds')
            text, problem = self._arrivals.diagnosis(stats['period_s'], approximate, tolerance)
            # Throttled per kind of problem: a new one (another silent topic) shows at once.
            if self._diagnosis_throttle.check(self._arrivals.last_kind) is None:
                return
            if problem:
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)
            return
        self.get_logger().info(format_stats(stats))
        note = self._arrivals.unpaired_note(stats['received'])
        if note is not None and self._diagnosis_throttle.check('few paired') is not None:
            self.get_logger().warning(note)

    def destroy_node(self) -> None:
        """Stop the inference thread, then destroy the node."""
        self._worker.stop(SHUTDOWN_WAIT_S)
        super().destroy_node()

    @property
    def inference_busy(self) -> bool:
        """Whether the inference thread is still in a pair (after :meth:`destroy_node`)."""
        return self._worker.busy


def main(args: Optional[list[str]] = None) -> int:
    """Run the node until Ctrl-C or ROS shutdown; return the exit status."""
    rclpy.init(args=args)
    node: Optional[StereoDepthNode] = None
    status = 0
    try:
        node = StereoDepthNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except NodeStartError:
        # A bad parameter file or model: the node logged one clear line instead of a
        # traceback; the project's exit status for bad input.
        status = 2
    except START_ERRORS as error:
        # Raised before the node had a logger of its own (rclpy's Node.__init__).
        get_logger(NODE_NAME).fatal(f'cannot start: {type(error).__name__}: {error}')
        status = 2
    except Exception:
        # rclpy's executor can fail on the context a Ctrl-C just invalidated (RCLError
        # "the given context is not valid", ros2/rclpy#398): that is the shutdown, not a crash.
        if rclpy.ok():
            raise
    finally:
        # Under ros2 launch a terminal's Ctrl-C arrives twice (the terminal's and launch's):
        # the second must not break the clean-up into a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        busy = False
        if node is not None:
            node.destroy_node()
            busy = node.inference_busy
            if busy:
                node.get_logger().warning(
                    f'the inference thread is still in a pair after {SHUTDOWN_WAIT_S:g} s; '
                    'exiting without it')
        rclpy.try_shutdown()
    if busy:
        # Python would stop the thread inside native code (OpenCV, torch) at exit and abort
        # the process (exit -6 under launch): leave at once instead, nothing left to publish.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == '__main__':
    sys.exit(main())
