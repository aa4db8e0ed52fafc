"""The C library, where it is glibc: its heap is tuned and trimmed through ``ctypes``."""

import ctypes
import ctypes.util
import functools
import sys
from typing import Optional


@functools.lru_cache(maxsize=1)
def load_glibc() -> Optional[ctypes.CDLL]:
    """Return the C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None
    return libc if hasattr(libc, 'mallopt') and hasattr(libc, 'malloc_trim') else None
