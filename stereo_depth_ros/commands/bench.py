"""Benchmark backends: median ms per pair, peak memory and speed relative to sgbm."""

import argparse
import gc
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TYPE_CHECKING, Optional

import numpy as np
import psutil
from tqdm import tqdm

from .common import (add_device_argument, add_precision_argument, parse_backend_options,
                     parse_size, positive_int, refuse_given_flags)
from ..backends.base import DisparityBackend
from ..backends.registry import (backend_names, backend_options, backend_record,
                                 create_backend)
from ..errors import BackendError
from ..evaluation.layer_times import LayerTimer, format_layer_times
from ..glibc import load_glibc
from ..text import counted

if TYPE_CHECKING:
    import torch

DEFAULT_BACKENDS = ','.join(backend_names())


@dataclass
class BenchResult:
    """Timing and memory of one backend (``note`` set when it was skipped)."""

    backend: str
    weights: str
    times_ms: list[float]
    peak_mib: float = float('nan')
    memory_kind: str = ''
    note: str = ''

    @property
    def median_ms(self) -> float:
        """Median time per pair in ms (NaN when skipped)."""
        return statistics.median(self.times_ms) if self.times_ms else float('nan')


def make_pair(height: int, width: int, shift: int = 8,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a textured RGB pair of constant disparity ``shift`` (left[x] == right[x-shift])."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 4 + 1, (width + shift) // 4 + 1, 3), np.uint8)
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)
    texture = np.clip(texture.astype(np.int16) + rng.integers(-20, 21, texture.shape), 0, 255)
    texture = texture.astype(np.uint8)[:height]
    left = np.ascontiguousarray(texture[:, :width])
    right = np.ascontiguousarray(texture[:, shift:shift + width])
    return left, right


def _rss_bytes() -> int:
    """Return the resident set size of this process in bytes."""
    return int(psutil.Process().memory_info().rss)


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), for clean deltas."""
    gc.collect()
    libc = load_glibc()
    if libc is not None:
        libc.malloc_trim(0)


class PeakRSS:
    """Context manager sampling RSS in a thread; ``.delta`` = peak minus the starting RSS."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> 'PeakRSS':
        self.start = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def delta(self) -> int:
        """Peak RSS increase in bytes."""
        return max(0, self.peak - self.start)


def _random_weights(name: str, folder: Path) -> Path:
    """Save a randomly initialised network of ``name`` (default architecture) to ``folder``."""
    from ..weights import save_weights
    model = backend_record(name).build_network({})
    return save_weights(model, folder / f'{name}_random.safetensors', name,
                        extra_metadata={'note': 'random initialisation (benchmark only)'})


def _build(name: str, args: argparse.Namespace, folder: Path, explicit: dict[str, str],
           options: dict[str, Any]) -> tuple[Optional[DisparityBackend], str, str]:
    """Return (backend or None, weights description, skip note); ``options``: a learned one's."""
    info = backend_record(name)
    if not info.needs_weights:
        return create_backend(name, device=args.device), '-', ''
    weights = explicit.get(name)
    if weights is None:
        default = info.default_weights()
        weights = str(default) if default is not None else None
    if weights is None:
        if not args.random_weights:
            return None, 'missing', 'no shipped weights; use --random-weights to time anyway'
        weights = str(_random_weights(name, folder))
        label = 'random'
    else:
        label = Path(weights).name
    return create_backend(name, weights=weights, device=args.device, **options), label, ''


def _cuda_device(backend: DisparityBackend) -> Optional['torch.device']:
    device = getattr(backend, 'device', None)
    return device if device is not None and getattr(device, 'type', '') == 'cuda' else None


#: The pair (height, width) every backend runs once on before any is measured.
START_UP_SIZE = (64, 128)


def start_up(built: list[tuple[str, DisparityBackend, str]], progress: tqdm) -> None:
    """Run every backend once on a small pair, before any memory is measured.

    The first pass of a process sets up what later ones share (torch's thread pool and
    allocator, oneDNN's kernels): about 22 MiB, which the first learned backend measured was
    charged (``costnet_fast`` 25.9 MiB at 64x128 when first, 2.8 MiB after ``costnet``).
    """
    small = make_pair(*START_UP_SIZE)
    for name, backend, _ in built:
        progress.set_postfix_str(f'{name} start-up')
        backend.compute(*small)
        progress.update()


def warm_up(name: str, backend: DisparityBackend, label: str,
            pair: tuple[np.ndarray, np.ndarray], warmup: int, progress: tqdm) -> BenchResult:
    """Run ``backend`` ``warmup`` times untimed; return its result with peak memory, no times."""
    left, right = pair
    cuda = _cuda_device(backend)
    if cuda is not None:
        import torch
        torch.cuda.synchronize(cuda)
        torch.cuda.reset_peak_memory_stats(cuda)
        base = torch.cuda.memory_allocated(cuda)
    release_free_memory()
    # Memory is sampled over the warm-up runs only: the sampling thread would take CPU time
    # from the timed ones (about 8 ms of 90 for costnet on a 2-core CPU).
    with PeakRSS() as rss:
        for _ in range(warmup):
            backend.compute(left, right)
            progress.update()
    if cuda is not None:
        peak, kind = (torch.cuda.max_memory_allocated(cuda) - base) / 2 ** 20, 'cuda alloc'
    else:
        peak, kind = rss.delta / 2 ** 20, 'RSS delta'
    return BenchResult(name, label, [], peak, kind)


def time_rounds(timed: list[tuple[BenchResult, DisparityBackend]],
                pair: tuple[np.ndarray, np.ndarray], repeats: int, progress: tqdm) -> None:
    """Add ``repeats`` times (ms) to each result, the backends taking turns round by round.

    In each round every backend runs twice, untimed and then timed: a slow spell of a shared
    machine (seconds long on a VM) falls on all of them alike instead of on whichever was
    being timed, so their ratios are steadier, and each timed run follows a run of its own
    backend, as in a node that runs one. Without the untimed run the times depend on which
    backend ran before (likely thread pools left spinning or asleep by the other library;
    measured in docs/speed.md), which flattered the networks' ratios. The order rotates from
    round to round.
    """
    left, right = pair
    for round_index in range(repeats):
        start_at = round_index % max(len(timed), 1)
        for result, backend in timed[start_at:] + timed[:start_at]:
            progress.set_postfix_str(result.backend)
            backend.compute(left, right)  # untimed: the backend's own state again
            start = time.perf_counter()
            backend.compute(left, right)  # returns numpy: implies a device sync
            result.times_ms.append((time.perf_counter() - start) * 1000.0)
            progress.update(2)


def profile_backend(name: str, backend: DisparityBackend, pair: tuple[np.ndarray, np.ndarray],
                    repeats: int, progress: tqdm) -> Optional[str]:
    """Return where ``backend``'s network spends ``repeats`` more runs (None: no network).

    Runs of its own with timers on the network's top-level layers (which cost a little), so
    the timed runs stay untouched. Not on CUDA (the layers only queue their kernels) and not
    compiled (the compiled code does not run the layers one by one). First one untimed run,
    as in :func:`time_rounds`. ``progress`` advances by ``repeats + 1`` in every case.
    """
    model = getattr(backend, 'model', None)
    if model is None:
        progress.update(repeats + 1)
        return None
    compiled = getattr(backend, 'compiled', None)
    skipped = ('on CUDA (its layers only queue kernels)' if _cuda_device(backend) is not None
               else 'with torch_compile (the layers do not run one by one)'
               if compiled is not None and compiled.active else '')
    if skipped:
        progress.update(repeats + 1)
        return f'{name}: not profiled {skipped}'
    left, right = pair
    backend.compute(left, right)  # untimed: after another backend's runs, as in time_rounds
    progress.update()
    total = 0.0
    with LayerTimer(model) as timer:
        for _ in range(repeats):
            start = time.perf_counter()
            backend.compute(left, right)
            total += time.perf_counter() - start
            progress.update()  # outside the timed part, as in time_rounds
    return format_layer_times(name, timer.seconds, total, repeats)


def format_table(results: list[BenchResult], reference: str = 'sgbm') -> str:
    """Return the results as an aligned text table with the ratio to ``reference``."""
    ref = next((r.median_ms for r in results if r.backend == reference and r.times_ms), None)
    header = ('backend', 'weights', 'median ms', 'min ms', 'peak MiB', 'memory', f'x {reference}')
    rows = [header]
    for r in results:
        if not r.times_ms:
            rows.append((r.backend, r.weights, '-', '-', '-', '-', f'skipped: {r.note}'))
            continue
        ratio = f'{r.median_ms / ref:.2f}' if ref else 'n/a'
        rows.append((r.backend, r.weights, f'{r.median_ms:.1f}', f'{min(r.times_ms):.1f}',
                     f'{r.peak_mib:.1f}', r.memory_kind, ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ['  '.join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]])
             for row in rows]
    return '\n'.join(lines)


#: A reference backend whose median is more than this share, and :data:`BUSY_MS`, above its
#: fastest run was slowed by other work on the machine: its times (41-43 ms for ``sgbm`` at
#: 384x1248 on a quiet 2-core VM) vary little otherwise.
BUSY_SHARE = 0.05
BUSY_MS = 1.0


def busy_note(results: list[BenchResult], reference: str = 'sgbm') -> Optional[str]:
    """Return a line saying the machine was busy when ``reference``'s times say so, or None."""
    ref = next((r for r in results if r.backend == reference and r.times_ms), None)
    if ref is None:
        return None
    fastest = min(ref.times_ms)
    if not ref.median_ms > max(fastest * (1 + BUSY_SHARE), fastest + BUSY_MS):
        return None
    return (f'note: {reference}\'s median is {ref.median_ms - fastest:.1f} ms '
            f'({100 * (ref.median_ms / fastest - 1):.0f} %) above its fastest run: something '
            'else used the CPU during the rounds, so the ratios may be off; run again with '
            'nothing else running')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the bench options."""
    parser.add_argument('--backends', default=DEFAULT_BACKENDS,
                        help=f'comma-separated backend names (default {DEFAULT_BACKENDS})')
    parser.add_argument('--size', default='384x1248', metavar='HxW',
                        help='image size, height first (default 384x1248: a KITTI camera)')
    add_precision_argument(parser)
    add_device_argument(parser)
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed runs per backend, in rounds where every backend runs '
                             'once untimed, then timed (default 5)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='warm-up runs per backend before the rounds, over which peak '
                             'memory is sampled (at least 1; default 1)')
    parser.add_argument('--weights', action='append', default=[], metavar='NAME=PATH',
                        help='weights file of a learned backend (repeatable)')
    parser.add_argument('--random-weights', action='store_true',
                        help='time learned backends without shipped weights using random ones')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch CPU threads, at least 1 (default: torch default)')
    parser.add_argument('--profile', action='store_true',
                        help='then time each learned backend\'s layers (runs of their own) and '
                             'print where its time goes (CPU, uncompiled: on CUDA or with '
                             'torch_compile it says "not profiled")')
    parser.add_argument('--backend-option', action='append', default=[], metavar='KEY=VALUE',
                        help='option of the learned backends, repeatable (e.g. near_scale=0; '
                             '`stereo-depth backends` lists them)')


def _parse_weights(items: list[str]) -> dict[str, str]:
    explicit: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--weights must be NAME=PATH, got {item!r}')
        if name in explicit:
            raise ValueError(f'--weights gives {name} two files ({explicit[name]} and {path}); '
                             'give each backend one')
        explicit[name] = path
    return explicit


def run(args: argparse.Namespace) -> int:
    """Benchmark every requested backend on one synthetic pair and print the table."""
    names = [name.strip() for name in args.backends.split(',') if name.strip()]
    if not names:
        raise BackendError('--backends is empty')
    records = [backend_record(name) for name in names]  # unknown names fail before any work
    learned = [record.name for record in records if record.needs_weights]
    options = parse_backend_options(args.backend_option)  # and so do malformed options
    if not learned:
        refuse_given_flags((('--backend-option', options), ('--precision', args.precision),
                            ('--random-weights', args.random_weights),
                            ('--profile', args.profile), ('--threads', args.threads),
                            ('--device', args.device != 'auto')),
                           f'to the learned backends, and none is in --backends '
                           f'({",".join(names)})')
    if args.precision:
        options['precision'] = args.precision
    for record in records:  # bad option names or values, before the progress bar starts
        if record.needs_weights:
            backend_options(record, options)
    explicit = _parse_weights(args.weights)
    strays = sorted(set(explicit) - set(learned))
    if strays:
        raise BackendError(f'--weights for {", ".join(strays)}, which is not a learned backend '
                           f'in --backends ({",".join(names)})')
    if args.repeats < 1 or args.warmup < 1:
        raise ValueError('--repeats and --warmup must be >= 1')
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    height, width = parse_size(args.size)
    pair = make_pair(height, width)
    results: list[BenchResult] = []
    profiles: list[str] = []
    runs = 1 + args.warmup + args.repeats * 2 + (args.repeats + 1 if args.profile else 0)
    with tempfile.TemporaryDirectory() as tmp, \
            tqdm(total=len(names) * runs, desc='bench', unit='run', leave=False) as progress:
        built: list[tuple[str, DisparityBackend, str]] = []
        for name in names:
            progress.set_postfix_str(name)
            backend, label, note = _build(name, args, Path(tmp), explicit, options)
            if backend is None:
                results.append(BenchResult(name, label, [], note=note))
                progress.update(runs)
                continue
            built.append((name, backend, label))
        start_up(built, progress)
        timed: list[tuple[BenchResult, DisparityBackend]] = []
        for name, backend, label in built:
            progress.set_postfix_str(name)
            results.append(warm_up(name, backend, label, pair, args.warmup, progress))
            timed.append((results[-1], backend))
        del built
        results.sort(key=lambda result: names.index(result.backend))  # the order asked for
        time_rounds(timed, pair, args.repeats, progress)
        if args.profile:
            for result, backend in timed:
                progress.set_postfix_str(result.backend)
                profile = profile_backend(result.backend, backend, pair, args.repeats, progress)
                if profile is not None:
                    profiles.append(profile)
        del timed
    precision = args.precision or 'default'
    given = ''.join(f', {option}' for option in args.backend_option)
    print(f'{height}x{width}, device {args.device}, precision {precision}{given}, '
          f'{counted(args.repeats, "round")} (the backends taking turns, each timed run after an '
          f'untimed one of its own) after {args.warmup} warm-up')
    print(format_table(results))
    busy = busy_note(results)
    if busy is not None:
        print(busy)
    for profile in profiles:
        print(profile)
    return 0
