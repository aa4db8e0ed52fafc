"""Backends the tests make up: a disparity they choose, whatever the images show."""

import numpy as np

from stereo_depth_ros.backends.base import DisparityBackend


class ConstantBackend(DisparityBackend):
    """A backend of range 0-``max_disparity`` px that reads every pixel ``value`` px.

    As a network paints a surface whatever it is shown, or reads a scene beyond its range.
    """

    min_disparity = 0.0
    max_disparity = 0.0  # each instance's own, set in __init__

    def __init__(self, value: float, max_disparity: float, name: str = 'constant') -> None:
        self.name = name
        self.value = float(value)
        self.max_disparity = float(max_disparity)

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.full(left.shape[:2], self.value, np.float32)
