"""Pluggable disparity backends: classical SGBM and the learned networks."""

from .base import DisparityBackend
from .record import BackendRecord
from .registry import (DEFAULT_BACKEND, backend_names, backend_options, backend_record,
                       create_backend, learned_backend_names, register_backend)

__all__ = ['BackendRecord', 'DEFAULT_BACKEND', 'DisparityBackend', 'backend_names',
           'backend_options', 'backend_record', 'create_backend', 'learned_backend_names',
           'register_backend']
