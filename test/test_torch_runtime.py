"""The process-wide CPU settings of torch_runtime."""

import subprocess
import sys

import pytest

#: A child process that runs a small CostNet pass at 384x640 (its maps are 0.2-4 MB, above
#: glibc's initial mmap threshold) and prints the page faults of each of the last passes.
FAULTS_OF_REPEATED_PASSES = '''
import resource, sys, torch
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.torch_runtime import keep_freed_cpu_memory
if sys.argv[1] == 'keep':
    assert keep_freed_cpu_memory()
torch.set_num_threads(1)
model = CostNet(width=0.5, max_disparity=64, refine_channels=8).eval()
left, right = torch.rand(1, 3, 384, 640), torch.rand(1, 3, 384, 640)
with torch.inference_mode():
    for _ in range(3):
        model(left, right)
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(left, right)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def _fewest_faults_of_a_pass(mode: str) -> int:
    """Return the fewest page faults of one of the child's last passes.

    The fewest, not a sum: with the freed blocks kept, the heap still grows now and then (a
    few hundred faults in an odd pass, as fragmentation moves its top), while without them
    every pass faults on all of its large maps.
    """
    result = subprocess.run([sys.executable, '-c', FAULTS_OF_REPEATED_PASSES, mode],
                            capture_output=True, text=True, timeout=120, check=True)
    return min(int(line) for line in result.stdout.split())


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc only')
def test_keeping_freed_memory_stops_page_faults_of_repeated_passes() -> None:
    # Without it, glibc maps every large map afresh and each of its pages faults on first
    # touch, in every pass; with it, the freed blocks are reused.
    from stereo_depth_ros.torch_runtime import keep_freed_cpu_memory
    if not keep_freed_cpu_memory():
        pytest.skip('the C library is not glibc')
    default = _fewest_faults_of_a_pass('default')
    kept = _fewest_faults_of_a_pass('keep')
    assert default > 1000
    assert kept < default / 10


def test_auto_takes_cuda_where_there_is_one_and_fp16_there(monkeypatch) -> None:
    import torch
    from stereo_depth_ros.torch_runtime import resolve_device, resolve_precision
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert resolve_device('auto') == torch.device('cuda')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device('auto') == torch.device('cpu')
    assert resolve_precision('auto', torch.device('cuda')) == 'fp16'
    assert resolve_precision(None, torch.device('cpu')) == 'fp32'  # never bf16 by itself


def test_each_precision_gets_its_own_autocast_dtype() -> None:
    import warnings
    import torch
    from stereo_depth_ros.torch_runtime import autocast
    assert autocast(torch.device('cpu'), 'bf16').fast_dtype == torch.bfloat16
    with warnings.catch_warnings():  # a CPU-only torch warns that CUDA autocast is off
        warnings.simplefilter('ignore')
        assert autocast(torch.device('cuda'), 'fp16').fast_dtype == torch.float16
    with autocast(torch.device('cpu'), 'fp32'):
        assert not torch.is_autocast_enabled('cpu')


def test_the_bf16_slowdown_is_bf16_time_over_fp32_time(monkeypatch) -> None:
    # A convolution made 20 ms slower under bfloat16 autocast: the factor is well above 1.
    import time
    import torch
    from torch import nn
    from stereo_depth_ros import torch_runtime
    forward = nn.Conv2d.forward

    def slow_in_bf16(self, image):
        if torch.is_autocast_enabled('cpu'):
            time.sleep(0.02)
        return forward(self, image)

    monkeypatch.setattr(nn.Conv2d, 'forward', slow_in_bf16)
    torch_runtime.cpu_bf16_slowdown.cache_clear()
    try:
        assert torch_runtime.cpu_bf16_slowdown() > 2.0
    finally:
        torch_runtime.cpu_bf16_slowdown.cache_clear()


def test_a_backend_s_one_thread_is_one_thread_and_0_puts_the_count_back(monkeypatch) -> None:
    import torch
    from stereo_depth_ros import torch_runtime
    monkeypatch.setattr(torch_runtime, '_threads_before_backends', None)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch_runtime.use_thread_count(1)
        assert torch.get_num_threads() == 1
        torch_runtime.use_thread_count(0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_measuring_bf16_runs_on_one_thread_and_puts_the_count_back(monkeypatch) -> None:
    import torch
    from torch import nn
    from stereo_depth_ros import torch_runtime
    forward = nn.Conv2d.forward
    seen = set()

    def counting(self, image):
        seen.add(torch.get_num_threads())
        return forward(self, image)

    monkeypatch.setattr(nn.Conv2d, 'forward', counting)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch_runtime.cpu_bf16_slowdown.cache_clear()
    try:
        torch_runtime.cpu_bf16_slowdown()
        assert seen == {1}  # timings of one thread: other work on the cores distorts less
        assert torch.get_num_threads() == 2  # inference afterwards keeps its threads
    finally:
        torch_runtime.cpu_bf16_slowdown.cache_clear()
        torch.set_num_threads(threads)


def test_bf16_warning_names_the_setting_and_comes_only_on_a_slow_cpu(monkeypatch,
                                                                     caplog) -> None:
    import logging
    import torch
    from stereo_depth_ros import torch_runtime
    slowdown = [1.5]
    measured = []

    def measure() -> float:
        measured.append(True)
        return slowdown[0]

    monkeypatch.setattr(torch_runtime, 'cpu_bf16_slowdown', measure)
    cpu = torch.device('cpu')
    with caplog.at_level(logging.WARNING):
        torch_runtime.resolve_precision('bf16', cpu, 'optimization.precision')
    assert 'optimization.precision bf16 is 1.5x slower than fp32' in caplog.text
    caplog.clear()
    slowdown[0] = 1.1  # within timing noise of fp32: no warning
    with caplog.at_level(logging.WARNING):
        torch_runtime.resolve_precision('bf16', cpu)
    assert caplog.text == ''
    # On a GPU the CPU's bfloat16 speed is beside the point: not measured, not warned about.
    slowdown[0] = 20.0
    measured.clear()
    with caplog.at_level(logging.WARNING):
        assert torch_runtime.resolve_precision('bf16', torch.device('cuda')) == 'bf16'
    assert caplog.text == '' and not measured


def test_an_unknown_precision_is_refused_naming_the_setting() -> None:
    import torch
    from stereo_depth_ros.errors import BackendError
    from stereo_depth_ros.torch_runtime import resolve_precision
    with pytest.raises(BackendError, match='optimization.precision must be one of'):
        resolve_precision('int8', torch.device('cpu'), 'optimization.precision')
    with pytest.raises(BackendError, match='optimization.precision fp16 needs a CUDA device'):
        resolve_precision('fp16', torch.device('cpu'), 'optimization.precision')
