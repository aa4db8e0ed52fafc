"""Faults from outside: SIGTERM mid-run, a file size limit, and the node core under overload."""

import argparse
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from types import SimpleNamespace

import pytest
from rosbags.rosbag2 import Reader

from bad_input_helpers import leftovers, write_stereo_bag
from fake_backends import ConstantBackend
from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.bags.writer import get_distro_typestore
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.monitoring import format_stats, LogThrottle
from stereo_depth_ros.msgs.types import MessageTypes
from stereo_depth_ros.processing import StereoFrameProcessor
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.monitoring import ThroughputMonitor
from stereo_depth_ros import soak as soak_module
from stereo_depth_ros.commands import soak as soak_command
from stereo_depth_ros.soak import make_pairs, SoakResult, run_soak
from stereo_depth_ros.worker import LatestSlot, StereoWorker, UNSWAPPED_INFO

CLI = [sys.executable, '-m', 'stereo_depth_ros.cli']


@pytest.fixture(scope='module')
def long_bag(tmp_path_factory):
    """40 pairs of 320x240."""
    return write_stereo_bag(tmp_path_factory.mktemp('long') / 'in', frames=40, width=320,
                            height=240)


def test_sigterm_mid_run_leaves_a_readable_bag(long_bag, tmp_path):
    out = tmp_path / 'out'
    # dispnet on the CPU takes long enough per pair to be caught mid-run.
    log = tmp_path / 'stderr.txt'
    with open(log, 'w') as stream:
        process = subprocess.Popen([*CLI, 'process-bag', str(long_bag), str(out), '--backend',
                                    'dispnet', '--device', 'cpu'],
                                   stdout=subprocess.PIPE, stderr=stream, text=True)
        deadline = time.monotonic() + 120
        while not re.search(r'\| *([2-9]|\d\d)/40', log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    stderr = log.read_text()
    assert process.returncode == 130, stderr
    assert 'Traceback' not in stderr and 'interrupted' in stderr
    assert leftovers(tmp_path, 'out') == ['out']
    assert (out / 'metadata.yaml').exists()
    with Reader(out) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert sum(1 for _ in reader.messages()) == sum(counts.values())
    pairs = int(stdout.split('pairs processed: ')[1].split()[0])
    assert 0 < pairs < 40, stdout
    assert counts['/stereo/disparity'] == pairs
    held = 'the pair' if pairs == 1 else f'the {pairs} pairs'
    assert f'holds {held} processed so far' in stderr


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))


def test_file_too_large_is_one_line_and_leaves_nothing(long_bag, tmp_path):
    result = subprocess.run([*CLI, 'process-bag', str(long_bag), str(tmp_path / 'out'),
                             '--backend', 'sgbm', '--backend-option', 'disparity_range=16'],
                            capture_output=True, text=True, preexec_fn=_limit_file_size,
                            timeout=120)
    errors = [line for line in result.stderr.replace('\r', '\n').splitlines()
              if line.startswith('stereo-depth') or 'Traceback' in line]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and 'File too large' in errors[0], result.stderr
    assert leftovers(tmp_path, 'out') == []


def test_monitor_memory_is_flat_without_reports():
    monitor = ThroughputMonitor()
    for _ in range(1000):
        monitor.processed(0.01, 5.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(20000):
        monitor.processed(0.01, 5.0)
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert growth < 10_000
    assert monitor.report()['mean_latency_ms'] == pytest.approx(10.0)


def test_pair_left_in_the_slot_at_shutdown_is_counted():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False and slot.put(2) is True
    assert slot.close() is True and slot.dropped_count == 2
    assert slot.close() is False
    worker = StereoWorker(None, lambda: None, lambda: {'disparity'}, lambda m: None,
                          print, print)
    worker.submit(object())
    worker.stop()
    monitor = worker.monitor
    assert monitor.total_received == 1 and monitor.total_dropped == 1
    worker.submit(object())  # a subscription's callback during shutdown: dropped too
    assert monitor.total_received == 2 and monitor.total_dropped == 2


def test_soak_command_passes_the_size_as_width_and_height(monkeypatch, capsys):
    calls = []

    def fake_run_soak(*args, **kwargs):
        calls.append((args[1:], kwargs))
        return SoakResult(backend_hz=10.0, input_hz=30.0, seconds=0.1, received=0,
                          processed=0, dropped=0, skipped=0, idle=0, rss_start_mb=0.0,
                          rss_end_mb=0.0)

    monkeypatch.setattr(soak_command, 'run_soak', fake_run_soak)
    parser = argparse.ArgumentParser()
    soak_command.add_arguments(parser)
    args = parser.parse_args(['--backend', 'sgbm', '--seconds', '2', '--size', '48x64',
                              '--bad-every', '7'])  # 48 rows, 64 columns
    soak_command.run(args)
    assert calls == [((2.0, 3.0, 64, 48), {'bad_every': 7})]


def test_soak_accounts_for_every_pair():
    pipeline = StereoPipeline(create_backend('sgbm', disparity_range=16))
    result = run_soak(pipeline, seconds=1.0, width=64, height=48, bad_every=5,
                      progress=False)
    assert result.balanced and result.idle == 0
    assert result.received == result.processed + result.dropped + result.skipped
    assert result.processed > 0 and result.dropped > 0 and result.skipped > 0
    # The feeder kept to the rate it set (3x the backend's; measured within 0.1 %), and
    # nothing piled up in memory (measured +0.0-0.8 MB).
    assert result.received / result.seconds == pytest.approx(result.input_hz, rel=0.3)
    assert result.rss_end_mb - result.rss_start_mb < 50


class _SoakClock:
    """soak.py's ``time``: a monotonic clock that a fed pair moves 0.01 s, sleeps move on."""

    perf_counter = staticmethod(time.perf_counter)  # the backend's rate: measured for real

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 0.01
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def test_soak_memory_rule_counts_growth_after_the_first_quarter_only(monkeypatch):
    # The rule alone: more than 64 MB from a quarter in to the end fails, whatever came before.
    def growth(settled: float, end: float) -> list[str]:
        return SoakResult(seconds=4.0, backend_hz=10.0, input_hz=30.0, received=1, processed=1,
                          dropped=0, skipped=0, idle=0, rss_start_mb=100.0, rss_end_mb=end,
                          rss_settled_mb=settled).problems()

    assert growth(settled=400.0, end=464.0) == []  # 300 MB of warm-up, then 64: passes
    assert growth(settled=400.0, end=464.5) == [
        'memory grew by 64.5 MB after the first quarter (more than 64 MB)']
    # run_soak reads the settled memory a quarter into the run, on a faked clock: memory that
    # grows 10 MB a second reads 100 + 10 t MB, so a quarter of 40 s in it is 200 MB.
    clock = _SoakClock()
    start = clock.now
    monkeypatch.setattr(soak_module, 'time', clock)
    monkeypatch.setattr(soak_module, 'resident_mb', lambda: 100.0 + 10.0 * (clock.now - start))
    pipeline = StereoPipeline(create_backend('sgbm', disparity_range=16))
    result = run_soak(pipeline, seconds=40.0, width=64, height=48, progress=False)
    assert result.rss_settled_mb == pytest.approx(200.0, abs=1.0)
    assert result.rss_end_mb == pytest.approx(500.0, abs=1.0)
    assert (f'memory grew by {result.grown_mb:.1f} MB after the first quarter (more than '
            '64 MB)') in result.problems()
    assert result.lines()[-1].startswith('FAILED: memory grew by 30')


def test_soak_interrupted_stops_its_worker_thread_first(monkeypatch):
    # Ctrl-C in the feeder: Python exiting with the worker inside OpenCV aborted the
    # process (exit 134) instead of `stereo-depth soak: interrupted` (130).
    pipeline = StereoPipeline(create_backend('sgbm', disparity_range=16))
    sleeps = []
    sleep = time.sleep

    def interrupted_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 5:
            raise KeyboardInterrupt
        sleep(seconds)

    monkeypatch.setattr(soak_module.time, 'sleep', interrupted_sleep)
    with pytest.raises(KeyboardInterrupt):
        run_soak(pipeline, seconds=30.0, width=64, height=48, progress=False)
    assert not [thread for thread in threading.enumerate()
                if thread.name == 'stereo_depth_worker']


def test_infer_on_a_full_disk_leaves_none_of_its_outputs(tmp_path):
    import cv2
    from bad_input_helpers import textured_pair
    left, right = textured_pair(0, 320, 240, shift=8)
    for name, image in (('left', left), ('right', right)):
        cv2.imwrite(str(tmp_path / f'{name}.png'), image[:, :, ::-1])
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')  # not infer's: stays
    # disparity.npy (307 kB, the first file written) is above the limit; the rollback of
    # files already written is test_atomic_files's.
    result = subprocess.run([*CLI, 'infer', '--left', str(tmp_path / 'left.png'), '--right',
                             str(tmp_path / 'right.png'), '--out-dir', str(out), '--backend',
                             'sgbm', '--fx', '300', '--baseline', '0.1'],
                            capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE,
                                                                  (200_000, 200_000)))
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and 'File too large' in errors[0], result.stderr
    assert sorted(p.name for p in out.iterdir()) == ['notes.txt']
    # The same run without the limit writes the whole set.
    assert subprocess.run([*CLI, 'infer', '--left', str(tmp_path / 'left.png'), '--right',
                           str(tmp_path / 'right.png'), '--out-dir', str(out), '--backend',
                           'sgbm', '--fx', '300', '--baseline', '0.1'],
                          capture_output=True, timeout=120).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == [
        'depth.npy', 'disparity.npy', 'disparity.png', 'notes.txt', 'obstacle.png']


def test_a_failing_subscriber_count_is_logged_and_the_worker_goes_on():
    # The node asks rclpy who listens before each pair; an error there killed the inference
    # thread with a traceback, and the node then published nothing more.
    errors: list[str] = []
    calls = iter([RuntimeError('publisher is invalid'), set()])

    def wanted() -> set[str]:
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    worker = StereoWorker(None, lambda: None, wanted, lambda m: None, print, errors.append)
    assert worker.process_one(object()) is False
    assert len(errors) == 1 and 'RuntimeError: publisher is invalid' in errors[0]
    assert worker.process_one(object()) is False  # no subscriber now: idle, not an error
    assert worker.monitor.total_failed == 1 and worker.monitor.total_skipped == 0


class FailingBackend(ConstantBackend):
    """A backend that raises ``error`` from its ``after``-th call on."""

    def __init__(self, error: Exception, after: int = 0) -> None:
        super().__init__(4.0, 16.0, name='failing')
        self.error, self.after, self.calls = error, after, 0

    def _compute(self, left, right):
        self.calls += 1
        if self.calls > self.after:
            raise self.error
        return super()._compute(left, right)


@pytest.mark.parametrize('error', [RuntimeError('CUDA error'), BackendError('sgbm failed')])
def test_a_failing_backend_is_counted_as_failed_not_as_bad_input(error):
    # The stats line said "skipped bad input: 1 RuntimeError": a backend fault read as an
    # input problem. Bad input itself stays "skipped".
    types = MessageTypes.from_typestore(get_distro_typestore('jazzy'))
    good, bad = make_pairs(types, 64, 48)
    pipeline = StereoPipeline(FailingBackend(error))
    errors: list[str] = []
    worker = StereoWorker(StereoFrameProcessor(types), lambda: pipeline,
                          lambda: {'depth/image_rect'}, lambda m: None, lambda t: None,
                          errors.append)
    assert worker.process_one(good) is False and worker.process_one(bad) is False
    stats = worker.monitor.report()
    assert stats['failed'] == {type(error).__name__: 1}
    assert stats['skipped'] == {'ImageFormatError': 1}
    assert format_stats(stats).endswith(
        f'; skipped bad input: 1 ImageFormatError; failed (not the input): 1 '
        f'{type(error).__name__}')
    assert len(errors) == 1 and 'processing a stereo pair failed' in errors[0]


def test_a_log_line_that_raises_after_publishing_does_not_end_the_worker():
    # Everything after the publish was outside the worker's guard: a raising logger ended
    # the thread, and the node published nothing more without a word.
    types = MessageTypes.from_typestore(get_distro_typestore('jazzy'))
    good, _ = make_pairs(types, 64, 48)
    pipeline = StereoPipeline(ConstantBackend(0.0, 16.0))  # no disparity: a warning
    published, errors = [], []

    def warn(text: str) -> None:
        raise OSError('log sink gone')

    worker = StereoWorker(StereoFrameProcessor(types), lambda: pipeline,
                          lambda: {'depth/image_rect'}, published.append, warn, errors.append)
    worker.start()
    try:
        for count in (1, 2):
            worker.submit(good)
            deadline = time.monotonic() + 10
            while len(published) < count and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        worker.stop()
    assert worker.monitor.total_processed == 2 and len(published) == 2
    assert errors and errors[0].startswith('reporting on a published stereo pair failed: '
                                           'OSError: log sink gone')


def test_soak_fails_when_pairs_fail_or_none_is_processed(capsys):
    pipeline = StereoPipeline(FailingBackend(RuntimeError('out of memory'), after=4))
    result = run_soak(pipeline, seconds=0.5, width=64, height=48, bad_every=5,
                      progress=False)
    assert result.balanced and result.failed > 0 and result.processed == 0
    assert result.problems()[:2] == [
        f'{result.failed} pairs failed (first: processing a stereo pair failed: RuntimeError: '
        'out of memory)', 'no pair was processed']
    assert result.lines()[-1].startswith('FAILED: no pair was processed')


class _SwapThenRightProcessor:
    """A processor whose pair check finds the stream swapped, then the right way round."""

    check_retry = 1.0

    def __init__(self) -> None:
        self.swapped = False
        self._answers = iter([True, False])

    def process(self, pair, pipeline, topics):
        return SimpleNamespace(messages={'depth/image_rect': object()}, timings={},
                               views_unconfirmed=self.swapped, notes=[], range_frame_id='')

    def check(self, output):
        self.swapped = next(self._answers)
        return SimpleNamespace(swapped=self.swapped, misaligned=False, row_offset=None)


@pytest.mark.parametrize('check_views', [True, False])
def test_a_cleared_swap_is_announced_only_where_check_views_withheld_pairs(check_views):
    # "pairs come out as measured again" is news only where check_views made them unknown;
    # without it every pair was published as measured all along.
    infos: list[str] = []
    warnings: list[str] = []
    worker = StereoWorker(_SwapThenRightProcessor(),
                          lambda: SimpleNamespace(check_views=check_views),
                          lambda: {'depth/image_rect'}, lambda m: None, warnings.append,
                          print, info=infos.append)
    for _ in range(2):
        assert worker.process_one(SimpleNamespace(received=time.monotonic()))
    assert infos == ([UNSWAPPED_INFO] if check_views else [])
    assert len(warnings) == 1
    assert ('pairs come out unknown until a check' in warnings[0]) == check_views


def test_log_throttle_counts_the_lines_dropped_since_the_previous_one_only():
    now = [0.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle.check('key') == 0
    for now[0] in (1.0, 2.0):
        assert throttle.check('key') is None
    now[0] = 6.0
    assert throttle.check('key') == 2
    now[0] = 12.0
    assert throttle.check('key') == 0  # none dropped since the line at 6 s
