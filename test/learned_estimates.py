"""costnet_fast on one synthetic scene: dense, and with options that drop pixels."""

from typing import Any, NamedTuple

import numpy as np

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.data.datasets import StereoSample, SyntheticSamples


class Estimates(NamedTuple):
    """The scene, ``costnet_fast``'s dense estimate, and the one with the options."""

    scene: StereoSample
    dense: np.ndarray
    filtered: np.ndarray
    #: The options' backend's :meth:`describe` line.
    description: str

    @property
    def kept(self) -> np.ndarray:
        """Where the options left an estimate."""
        return np.isfinite(self.filtered)

    @property
    def truth(self) -> np.ndarray:
        """The scene's true disparity (px)."""
        return np.asarray(self.scene.disparity, np.float32)


def costnet_fast_estimates(**options: Any) -> Estimates:
    """Return ``costnet_fast`` on layered scene 2 (128x320, up to 48 px), without and with."""
    scene = SyntheticSamples([2], 'layered', 128, 320, 48.0)[0]
    dense = create_backend('costnet_fast', device='cpu').compute(scene.left, scene.right)
    backend = create_backend('costnet_fast', device='cpu', **options)
    return Estimates(scene, dense, backend.compute(scene.left, scene.right), backend.describe())
