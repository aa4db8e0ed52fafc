"""The contract every disparity backend follows."""

from abc import ABC, abstractmethod

import numpy as np

from ..errors import BackendError
from ..images import check_stereo_pair


class DisparityBackend(ABC):
    """Left/right rectified images in, left-view disparity in pixels out.

    Inputs are uint8 HxW or HxWx3 arrays of the same size (RGB channel order for colour).
    The output is float32 HxW; pixels without an estimate are NaN (not a negative or zero
    marker, as OpenCV's matchers write: the metrics would score it as an estimate), and the
    others lie within ``min_disparity`` .. ``max_disparity``. Any input size works: backends
    pad or crop to whatever divisor they need themselves.
    """

    #: The backend's registry name (its record's name).
    name: str = ''

    @property
    @abstractmethod
    def min_disparity(self) -> float:
        """Smallest disparity the backend can output, in pixels."""

    @property
    @abstractmethod
    def max_disparity(self) -> float:
        """Largest disparity the backend can output, in pixels."""

    def largest_disparity(self, width: int) -> float:
        """Return the largest disparity (px) the backend can give on a ``width``-px image.

        Its ``max_disparity``, at most ``width - 1``: no match lies farther.
        """
        return min(float(self.max_disparity), float(width - 1))

    def compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Return float32 HxW disparity of the left view; NaN where there is no estimate."""
        check_stereo_pair(left, right)
        disparity = self._compute(left, right)
        expected = left.shape[:2]
        if (not isinstance(disparity, np.ndarray) or disparity.shape != expected
                or disparity.dtype != np.float32):
            raise BackendError(
                f'backend {self.name!r} broke its contract: returned '
                f'{getattr(disparity, "dtype", type(disparity).__name__)} '
                f'{getattr(disparity, "shape", "")}, expected float32 {expected}')
        return disparity

    @abstractmethod
    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Compute disparity for an already validated pair."""

    def describe(self) -> str:
        """One line describing the configured backend (for logs)."""
        return f'{self.name} (disparity {self.min_disparity:g}..{self.max_disparity:g} px)'
