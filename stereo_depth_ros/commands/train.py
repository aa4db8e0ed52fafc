"""Train a learned backend from a YAML experiment (config/train_<backend>.yaml).

The arguments and behaviour live in :mod:`stereo_depth_ros.training.train`, shared with
``python -m stereo_depth_ros.training.train``.
"""

from ..training.train import add_arguments, run

__all__ = ['add_arguments', 'run']
