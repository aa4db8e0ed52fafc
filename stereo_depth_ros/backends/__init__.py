"""Pluggable disparity backends: classical SGBM and the learned networks."""

from .base import DisparityBackend
from .registry import (BackendInfo, backend_info, backend_names, create_backend,
                       register_backend)

__all__ = ['BackendInfo', 'DisparityBackend', 'backend_info', 'backend_names',
           'create_backend', 'register_backend']
