"""Whether a pair's two views confirm its disparity at all (pipeline setting ``check_views``).

A backend gives disparities even where a pair holds no stereo match: a right camera that is
black, covered or failing, image topics of two different cameras, sensor noise in the dark.
A network then paints a plausible surface and ``sgbm`` keeps a few chance matches, and the
obstacle search finds near obstacles in either.

:func:`check_views` looks at a copy of the pair shrunk to at most :data:`MAX_PIXELS`: where
the left image has texture (a 5x5 window whose grey levels vary, along the rows too, by
:data:`NOISE_MULTIPLE` times the image's pixel noise as shrinking leaves it, and by
:data:`MIN_TEXTURE_STD` at least) and the estimate a match inside the right image, does the
right view warped by the estimate correlate with the left (zero-mean normalised
cross-correlation above :data:`CONFIRMING_ZNCC`)? Below :data:`MIN_AGREEMENT` of those
pixels the views do not match; with too few of them to judge (fewer than :data:`MIN_JUDGED`
of the shrunken pair: a blank view, noise) there is nothing to match, unless the views
share a pattern at that noise level (a random-dot pair, :data:`SHARED_PATTERN_AGREEMENT`).
A textured pair whose two images are one image (the shrunken views equal on more than
:data:`SAME_IMAGE_SHARE` of the textured pixels: both topics from one camera; two real
cameras differ there by their sensors' noise) matches any estimate near 0 px, and is refused
before that is asked.
Either way the pipeline reports the pair as unknown, as it is. A matching pair whose estimate
is below :data:`STILL_DISPARITY` on :data:`STILL_SHARE` of the judged pixels passes with a
warning (:meth:`ViewCheck.caution`): one camera's image on both topics, not bit-equal, looks
the same as a view all beyond the camera's reach. So it does, without this
check, with the pairs of a stream whose latest pair check found left and right swapped (the
verdict :data:`SWAPPED_VIEWS`; ``StereoPipeline.process``'s ``swapped``).

Chosen on pairs without ground truth (``python tools/view_check_sweep.py``): the 50 real pairs
of ``unlabeled/``, every fourth of them also made dark, noisy, 2 or 3 px off in rows, with
the right camera's exposure or gamma off, or JPEG at quality 10, and full-range validation
scenes all pass with every backend (the learned ones with 18 % or more of the judged pixels
confirmed, ``sgbm`` with 17 % or more); a black or noisy right view, a noise left view and
noise in both fail with every backend, views of two different scenes with ``costnet``,
``costnet_fast``, ``dispnetc`` and ``dispnet_qr`` (under 8 % confirmed) and with most of
them for the others (1, 3 and 2 of 17 pass for ``sgbm``, ``dispnet`` and ``squeezeseg``, at
up to 11, 17 and 13 %). Known misses: a right camera covered on part of its view passes on
the rest (``max_match_cost`` leaves the covered pixels unknown one by one), and rows 3 px
off on fine foliage can fail it (two ETH3D forest pairs with ``costnet_fast``, found by review
outside the sweep's quarter of the pairs; the row check warns about such pairs).
"""

import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .plausibility import SWAPPED_KIND
from .window_match import warp_to_left, window_variance, window_zncc

#: The check looks at the pair shrunk to at most this many pixels (its time: docs/ros.md).
MAX_PIXELS = 40_000
#: Side of the square windows (shrunken px) over which texture and correlation are measured.
WINDOW = 5
#: A window of the shrunken left image has texture when its grey levels' standard deviation
#: is at least this many times the left image's pixel noise as shrinking leaves it, and at
#: least :data:`MIN_TEXTURE_STD`: noise alone is no texture, and a dark scene still has some.
NOISE_MULTIPLE = 3.0
#: The least standard deviation (grey levels of 255) a textured window has.
MIN_TEXTURE_STD = 1.0
#: A pixel is confirmed when its window correlates with the warped right view above this.
CONFIRMING_ZNCC = 0.8
#: Views whose confirmed share of the judged pixels is below this do not match.
MIN_AGREEMENT = 0.1
#: Fewer judged pixels than this share of the shrunken pair leave nothing to judge by.
MIN_JUDGED = 0.001
#: A pair whose texture is all at its noise level (random dots, or noise) still matches when
#: this share of its windows of :data:`MIN_TEXTURE_STD` or more confirm the estimate, and
#: they cover :data:`SHARED_PATTERN_JUDGED` of it: random dots shared by both views do,
#: independent noise does not.
SHARED_PATTERN_AGREEMENT = 0.5
SHARED_PATTERN_JUDGED = 0.25
#: A shrunken pair narrower or lower than this many pixels is not judged (a 40x40 pair is).
MIN_SIDE = 4 * WINDOW
#: Views equal on more than this share of their textured pixels are one image, not two.
SAME_IMAGE_SHARE = 0.99
#: A matching pair whose estimate is below :data:`STILL_DISPARITY` px on this share of its
#: judged pixels shows no depth anywhere: one camera's image sent as both topics (re-encoded
#: or noisy, so not equal), or a view all beyond the camera's reach (sky, a drone high up).
#: It passes, with a warning: the two cannot be told apart from the images.
STILL_SHARE = 0.9
STILL_DISPARITY = 0.5


class Views(enum.Enum):
    """What :func:`check_views` found."""

    MATCH = 'match'
    NO_MATCH = 'no match'
    NO_TEXTURE = 'no texture'
    SAME_IMAGE = 'same image'
    #: Not judged here: a pair check of the stream found left and right exchanged
    #: (:func:`~stereo_depth_ros.plausibility.check_pair`); see :data:`SWAPPED_VIEWS`.
    SWAPPED = 'swapped'


@dataclass(frozen=True)
class ViewCheck:
    """The verdict and what it rests on (shares of the shrunken pair's pixels, 0-1)."""

    verdict: Views
    #: Left-image texture with an estimate whose match lies inside the right image.
    judged: float
    #: The share of the judged pixels that the warped right view confirms (NaN: none judged).
    agreement: float
    #: The share of the judged pixels whose estimate is below :data:`STILL_DISPARITY` px.
    still: float = math.nan

    def caution(self) -> str:
        """Return the warning line for a pair that passes with no depth anywhere ('' if none)."""
        if not self.still >= STILL_SHARE:
            return ''
        return (f'no disparity in view: the estimate is below {STILL_DISPARITY:g} px on '
                f'{100 * self.still:.0f} % of the pixels with texture: is one camera\'s image '
                'sent as both topics (re-encoded, so not equal), or is everything in view '
                'beyond what the camera measures (sky, far terrain)? Obstacles and depths say '
                'so: nothing within range')

    def note(self) -> str:
        """Return the warning line for a pair whose views fail the check ('' if they pass)."""
        unknown = 'disparity, depth, points and obstacle are unknown for this pair'
        if self.verdict is Views.NO_MATCH:
            return (f'left and right views do not match: the right view confirms '
                    f'{100 * self.agreement:.1f} % of the estimate where the left image has '
                    f'texture (fewer than {100 * MIN_AGREEMENT:.0f} %): is a camera covered, '
                    'dark or failing, are the topics of two different cameras, or is the '
                    f'scene nearer than the backend measures? {unknown}')
        if self.verdict is Views.SAME_IMAGE:
            return ('left and right images are the same image (more than '
                    f'{100 * SAME_IMAGE_SHARE:.0f} % of their textured pixels equal): do both '
                    f'topics come from one camera? {unknown}')
        if self.verdict is Views.SWAPPED:
            return (f'{SWAPPED_KIND}: the pair check found the best match on most rows at a '
                    'negative disparity (below cx_left - cx_right where the principal points '
                    f'differ), where obstacles would be phantoms; {unknown} (exchange the '
                    'inputs, unless cx_left - cx_right is wrong: a wrong sign of --doffs or of '
                    "the CameraInfos' principal points looks the same; check_views false keeps "
                    "a swapped pair's outputs)")
        if self.verdict is Views.NO_TEXTURE:
            return (f'no texture to match: {100 * self.judged:.2g} % of the pair has texture '
                    f'above its noise and an estimate (fewer than {100 * MIN_JUDGED:g} %): a '
                    f'covered lens, darkness or a blank view? {unknown}')
        return ''


#: The verdict on a pair of a stream whose pair check found left and right exchanged.
SWAPPED_VIEWS = ViewCheck(Views.SWAPPED, judged=math.nan, agreement=math.nan)


def shrink_factor(height: int, width: int) -> int:
    """Return the factor (2 or more) that brings ``height x width`` to at most MAX_PIXELS.

    At least 2: averaging blocks of pixels smooths sensor noise away and keeps texture.
    """
    return max(2, math.ceil(math.sqrt(height * width / MAX_PIXELS)))


def _grey(image: np.ndarray) -> np.ndarray:
    """Return uint8 grey or RGB ``image`` as a uint8 grey image."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _shrunk(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return ``grey`` shrunk to ``size`` (width, height) by block means, as float32."""
    return cv2.resize(grey.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def pixel_noise(grey: np.ndarray) -> float:
    """Return the pixel noise (grey levels) of a uint8 grey image, from every fourth row.

    The median absolute difference of horizontal neighbours, scaled to a Gaussian's standard
    deviation: texture raises it a little, noise sets it.
    """
    steps = np.abs(np.diff(grey[::4].astype(np.int16), axis=1)).ravel()
    # The median of integers 0-255 from their histogram: np.median's, without its sort.
    below = np.cumsum(np.bincount(steps, minlength=256))
    middle = np.searchsorted(below, [(steps.size - 1) // 2 + 1, steps.size // 2 + 1])
    return float(middle.mean()) / (0.6745 * math.sqrt(2))


def _texture_variance(image: np.ndarray) -> np.ndarray:
    """Return the variance of each window of ``image`` or of its row steps, the lesser.

    A window that varies only from row to row (a horizontal edge, a vertical ramp of shade)
    or evenly along the rows (a ramp: its steps are all one) looks the same at every
    disparity once ZNCC has taken its mean away: it would confirm any estimate.
    """
    steps = np.diff(image, axis=1, append=image[:, -1:])
    return np.minimum(window_variance(image, WINDOW), window_variance(steps, WINDOW))


def check_views(left: np.ndarray, right: np.ndarray, disparity: np.ndarray) -> ViewCheck:
    """Return whether uint8 ``left``/``right`` confirm the HxW ``disparity`` (px, NaN unknown).

    A pair that shrinks to fewer than :data:`MIN_SIDE` rows or columns is not judged: it
    passes.
    """
    height, width = disparity.shape
    factor = shrink_factor(height, width)
    rows, cols = height // factor, width // factor
    if min(rows, cols) < MIN_SIDE:
        return ViewCheck(Views.MATCH, judged=math.nan, agreement=math.nan)
    grey_left = _grey(left)
    shrunk_left, shrunk_right = (_shrunk(grey, (cols, rows)) for grey in (grey_left,
                                                                          _grey(right)))
    centre = factor // 2
    with np.errstate(over='ignore'):  # beyond float32's range: inf, no estimate either
        estimate = disparity[centre::factor, centre::factor][:rows, :cols].astype(np.float32)
    estimate[~np.isfinite(estimate)] = np.nan
    warped, sources = warp_to_left(shrunk_right, estimate / factor)
    usable = np.isfinite(estimate) & (sources >= 0) & (sources <= cols - 1)
    texture = _texture_variance(shrunk_left)
    least_std = max(MIN_TEXTURE_STD, NOISE_MULTIPLE * pixel_noise(grey_left) / factor)
    textured = texture >= least_std ** 2
    if textured.sum() >= MIN_JUDGED * rows * cols and _one_image(shrunk_left, shrunk_right,
                                                                 textured):
        return ViewCheck(Views.SAME_IMAGE, judged=float(textured.mean()), agreement=math.nan)
    judged = textured & usable
    if judged.sum() >= MIN_JUDGED * rows * cols:
        share, agreement = _confirmed_share(shrunk_left, warped, judged)
        verdict = Views.MATCH if agreement >= MIN_AGREEMENT else Views.NO_MATCH
        still = float(np.mean(np.abs(estimate[judged]) < STILL_DISPARITY))
        return ViewCheck(verdict, judged=share, agreement=agreement, still=still)
    above_noise = float(judged.mean())
    # All the texture there is lies at the image's noise level: random dots, or noise.
    judged = (texture >= MIN_TEXTURE_STD ** 2) & usable
    if judged.sum() >= SHARED_PATTERN_JUDGED * rows * cols:
        share, agreement = _confirmed_share(shrunk_left, warped, judged)
        if agreement >= SHARED_PATTERN_AGREEMENT:
            return ViewCheck(Views.MATCH, judged=share, agreement=agreement)
    return ViewCheck(Views.NO_TEXTURE, judged=above_noise, agreement=math.nan)


def _one_image(left: np.ndarray, right: np.ndarray, textured: np.ndarray) -> bool:
    """Return whether two views are equal on more than SAME_IMAGE_SHARE of ``textured``."""
    equal = np.count_nonzero(left[textured] == right[textured])
    return bool(equal > SAME_IMAGE_SHARE * np.count_nonzero(textured))


def _confirmed_share(left: np.ndarray, warped: np.ndarray,
                     judged: np.ndarray) -> tuple[float, float]:
    """Return the share of the pixels judged and the share of those ``warped`` confirms."""
    count = int(judged.sum())
    confirmed = judged & (window_zncc(left, warped, WINDOW)[0] > CONFIRMING_ZNCC)
    return count / judged.size, int(confirmed.sum()) / count
