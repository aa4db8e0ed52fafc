"""Where and in which precision torch runs: one device chooser, one autocast chooser.

Used by the learned backends, training, adaptation and validation alike.
"""

import ctypes
import functools
import logging
import math
import time
from contextlib import AbstractContextManager
from typing import Any, Callable, Optional

import torch
from torch import nn

from .errors import BackendError, first_line
from .glibc import load_glibc
from .settings import PRECISION_CHOICES

LOGGER = logging.getLogger('stereo_depth_ros.torch')
#: bfloat16 counts as slow on a CPU where it takes longer than this times fp32.
BF16_SLOW_RATIO = 1.2
#: glibc's ``mallopt`` parameters and the values :func:`keep_freed_cpu_memory` gives them: the
#: largest mmap threshold glibc accepts on 64-bit (32 MiB) and a trim threshold above it.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def resolve_device(device: str) -> torch.device:
    """Return the torch device for ``auto``/``cpu``/``cuda[:n]``; BackendError if unusable."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cpu':
        return torch.device('cpu')
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise BackendError(f'device {device!r} requested but CUDA is not available; '
                               f'use device cpu (--device cpu; node parameter device)')
        try:
            return torch.device(device)
        except RuntimeError as error:
            raise BackendError(f'invalid device {device!r}: {error}') from None
    raise BackendError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {device!r}")


#: torch's intra-op thread count before a backend's ``num_threads`` first changed it (None:
#: none has). 0 puts this back.
_threads_before_backends: Optional[int] = None


def use_thread_count(threads: int) -> None:
    """Give the calling thread torch's intra-op thread count of a backend's ``num_threads``.

    ``threads`` > 0 sets that count; 0 puts back the count from before the first backend
    that set one (none set one: the count stays as it is). The count is the calling
    thread's (OpenMP's): a backend calls this where it computes, so a node's inference
    thread follows a ``learned.num_threads`` changed at run time by the executor's thread,
    and one switched back to 0 does not keep the last count.
    """
    global _threads_before_backends
    if threads:
        if _threads_before_backends is None:
            _threads_before_backends = torch.get_num_threads()
        target = threads
    elif _threads_before_backends is not None:
        target = _threads_before_backends
    else:
        return
    if torch.get_num_threads() != target:
        torch.set_num_threads(target)


@functools.lru_cache(maxsize=1)
def keep_freed_cpu_memory() -> bool:
    """Let glibc keep freed tensors of up to 32 MiB for reuse; return whether it took effect.

    glibc serves a large allocation with a fresh ``mmap`` (above 128 KiB at first; the
    threshold grows only as such blocks are freed) and returns it to the system when it is
    freed, so every page of the next tensor of that size faults again on first touch. A
    network that allocates and frees maps of 5-17 MB in every pass pays that in every frame:
    about 15 ms of a 70 ms ``costnet`` pass at 384x1248 on a 2-core Xeon VM. Raising the mmap
    and trim thresholds once per process keeps those blocks in the heap; the peak memory is
    about the same, it is just not handed back between frames. (PyTorch's CPU performance guide
    suggests a caching allocator such as jemalloc for the same reason; this needs none.) A
    no-op returning False where the C library is not glibc.
    """
    libc = load_glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)


@functools.lru_cache(maxsize=1)
def cpu_bf16_slowdown() -> float:
    """Return time(bf16 autocast) / time(fp32) of a small convolution on this CPU (measured).

    Measured once per process (about 0.1 s), single-threaded, best of several runs: whether
    bfloat16 helps depends on the CPU (native on Intel AMX and AVX512-BF16 parts, emulated and
    15-45x slower on others), so it is measured rather than guessed from flags.
    """
    conv = nn.Conv2d(32, 32, 3, padding=1).eval()
    image = torch.randn(1, 32, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for enabled in (False, True):
            with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16,
                                                        enabled=enabled):
                conv(image)
                best = math.inf
                for _ in range(5):
                    start = time.perf_counter()
                    conv(image)
                    best = min(best, time.perf_counter() - start)
            times.append(best)
    finally:
        torch.set_num_threads(threads)
    return times[1] / max(times[0], 1e-9)


def warn_if_bf16_slow(what: str) -> None:
    """Log a warning naming ``what`` when bfloat16 is slower than fp32 on this CPU."""
    slowdown = cpu_bf16_slowdown()
    if slowdown > BF16_SLOW_RATIO:
        LOGGER.warning(f'{what} is {slowdown:.1f}x slower than fp32 on this CPU (measured on a '
                       f'small convolution: no native bfloat16, it is emulated); use fp32')


def resolve_precision(precision: Optional[str], device: torch.device,
                      what: str = 'precision') -> str:
    """Return ``fp32``, ``bf16`` or ``fp16``: the one asked for if valid on ``device``.

    ``None``/``auto`` is fp16 on CUDA and fp32 on the CPU, never bf16. Asking for bf16 on a
    CPU where it is slower than fp32 (:func:`cpu_bf16_slowdown`) works but logs a warning
    that says so and why. ``what`` names the setting in messages.
    """
    if precision is None or precision == 'auto':
        return 'fp16' if device.type == 'cuda' else 'fp32'
    if precision not in PRECISION_CHOICES:
        raise BackendError(f'{what} must be one of {PRECISION_CHOICES}, got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise BackendError(f'{what} fp16 needs a CUDA device; use bf16 or fp32 on the CPU')
    if precision == 'bf16' and device.type == 'cpu':
        warn_if_bf16_slow(f'{what} bf16')
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Return the autocast context of a resolved ``precision`` (off for fp32)."""
    if precision == 'fp32':
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def compile_forward(module: nn.Module) -> Callable[..., Any]:
    """Replace ``module.forward`` by its ``torch.compile`` form; return the eager one.

    The instance attribute shadows the class's ``forward`` (``state_dict`` is unchanged). Each
    input shape compiles once, on its first call (``dynamic=False``: kernels specialised to it).
    """
    eager = module.forward
    module.forward = torch.compile(eager, dynamic=False)
    return eager


def is_compile_error(error: BaseException) -> bool:
    """Return whether ``error`` is ``torch.compile`` failing (e.g. no C++ compiler).

    Such errors are ``TorchDynamoException``s; errors of the compiled code itself (bad
    input) keep their own types. The module is imported only here, when there is an error
    to classify: importing it takes over half a second.
    """
    from torch._dynamo.exc import TorchDynamoException
    return isinstance(error, TorchDynamoException)


def compile_failure(error: BaseException) -> str:
    """Return ``'<type>: <first line>'`` of a ``torch.compile`` error, for one log line."""
    return f'{type(error).__name__}: {first_line(error)[:200]}'


class CompiledForward:
    """``module.forward`` replaced by its ``torch.compile`` form, with a way back to eager.

    Compiling is lazy: inductor generates and builds fused kernels (C++ on the CPU, which needs
    a compiler) on the first call of each input shape, so a failure shows only then.
    :meth:`call` runs ``function`` and, if compiling fails (:func:`is_compile_error`, such
    as inductor's error for a missing C++ compiler), logs one warning that names ``what``,
    restores the eager forward for good and runs ``function`` again. Other errors (bad input)
    propagate as they would uncompiled.
    """

    def __init__(self, module: nn.Module, what: str) -> None:
        self.module = module
        self.what = what
        self.eager = compile_forward(module)
        self.active = True

    def call(self, function: Callable[[], Any]) -> Any:
        """Return ``function()``, falling back to the eager forward if compiling fails."""
        if not self.active:
            return function()
        try:
            return function()
        except Exception as error:  # noqa: B902 - only compile errors are handled
            if not is_compile_error(error):
                raise
            self.module.forward = self.eager
            self.active = False
            LOGGER.warning(f'{self.what}: torch.compile failed ({compile_failure(error)}); '
                           f'running uncompiled')
            return function()
