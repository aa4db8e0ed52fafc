"""Named augmentation transforms for stereo training pairs.

Every transform is called as ``transform(sample, rng)`` with a :class:`TrainSample` and a
``numpy.random.Generator`` and returns a new sample. Geometric transforms move the left image,
the right image and the left-view disparity together so that ``left[y, x]`` still matches
``right[y, x - d[y, x]]``. There is deliberately no horizontal flip: mirroring swaps the roles
of the two cameras (the flipped left image would need the flipped *right* view's disparity),
so it breaks the stereo geometry. A vertical flip of both views keeps the epipolar lines and
is allowed. Photometric changes are drawn independently for the left and the right image, as
two real cameras differ in gain, response and noise.

Config form (``data.augmentation`` in a training YAML)::

    - {name: random_scale, low: 0.8, high: 1.2, probability: 0.5}
    - {name: vignetting, strength: 0.6, probability: 0.5}
    - {name: random_crop, height: 128, width: 256}
    - {name: photometric, brightness: 0.2, contrast: 0.2, gamma: 0.2, noise: 2.0}
    - {name: camera_degradation, blur: 1.0, jpeg_quality: [40, 95], vertical_shift: 1.0}
    - {name: vertical_flip, probability: 0.5}

They run in the order listed: ``vignetting`` before the crop (a lens is centred on the whole
image) and before ``photometric`` (the sensor's noise comes after the lens).
"""

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .config import ConfigError


@dataclass
class TrainSample:
    """One training pair: float32 HxWx3 images (0..255) and HxW disparity (NaN unknown)."""

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray


Transform = Callable[[TrainSample, np.random.Generator], TrainSample]


class RandomCrop:
    """Crop the same ``height`` x ``width`` window from both views and the disparity."""

    def __init__(self, height: int, width: int) -> None:
        if height <= 0 or width <= 0:
            raise ConfigError(f'random_crop needs positive height/width, got {height}x{width}')
        self.height, self.width = int(height), int(width)

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the cropped sample."""
        rows, cols = sample.disparity.shape
        if rows < self.height or cols < self.width:
            raise ConfigError(f'random_crop {self.height}x{self.width} is larger than the '
                              f'{rows}x{cols} training image')
        y = int(rng.integers(0, rows - self.height + 1))
        x = int(rng.integers(0, cols - self.width + 1))
        window = (slice(y, y + self.height), slice(x, x + self.width))
        return TrainSample(sample.left[window], sample.right[window], sample.disparity[window])


class Photometric:
    """Brightness, contrast, gamma, per-channel gain and noise, drawn per view.

    ``brightness``: additive offset up to +-brightness*255; ``contrast``: factor in
    1 +- contrast around the image mean; ``gamma``: exponent in 1 +- gamma; ``color``:
    per-channel gain in 1 +- color; ``noise``: Gaussian noise with a standard deviation drawn
    uniformly in [0, noise] grey levels. ``probability``: chance to apply at all.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, gamma: float = 0.2,
                 color: float = 0.05, noise: float = 2.0, probability: float = 1.0) -> None:
        for name, value in (('brightness', brightness), ('contrast', contrast),
                            ('gamma', gamma), ('color', color), ('noise', noise)):
            if value < 0:
                raise ConfigError(f'photometric {name} must be >= 0, got {value}')
        if gamma >= 1 or contrast >= 1:
            raise ConfigError('photometric gamma and contrast must be < 1')
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma
        self.color, self.noise, self.probability = color, noise, probability

    def _one(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        image = image.astype(np.float32)
        gamma = rng.uniform(1 - self.gamma, 1 + self.gamma)
        image = 255.0 * np.power(np.clip(image, 0, 255) / 255.0, gamma)
        mean = image.mean()
        image = (image - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        image = image * rng.uniform(1 - self.color, 1 + self.color, size=3).astype(np.float32)
        image = image + rng.uniform(-self.brightness, self.brightness) * 255.0
        if self.noise > 0:
            sigma = rng.uniform(0, self.noise)
            image = image + rng.normal(0, sigma, size=image.shape).astype(np.float32)
        return np.clip(image, 0, 255).astype(np.float32)

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the sample with independently changed left and right images."""
        if rng.random() >= self.probability:
            return sample
        return replace(sample, left=self._one(sample.left, rng),
                       right=self._one(sample.right, rng))


class VerticalFlip:
    """Flip both views and the disparity upside down with ``probability``."""

    def __init__(self, probability: float = 0.5) -> None:
        if not 0 <= probability <= 1:
            raise ConfigError(f'vertical_flip probability must be in [0, 1], got {probability}')
        self.probability = probability

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the (maybe) flipped sample."""
        if rng.random() >= self.probability:
            return sample
        return TrainSample(sample.left[::-1], sample.right[::-1], sample.disparity[::-1])


class CameraDegradation:
    """What differs between two real cameras, drawn per view: blur, JPEG, misalignment.

    Each view is blurred (Gaussian, sigma up to ``blur`` px) with ``blur_probability`` and
    JPEG-compressed (quality in ``jpeg_quality``) with ``jpeg_probability``. With
    ``shift_probability`` the right view moves vertically by up to ``vertical_shift`` px (an
    imperfect rectification; the ground truth is kept, as a real camera's would be). With
    ``eraser_probability`` 1-2 rectangles of the right view are painted over with its mean
    colour: left pixels that no longer have a match, as in an occlusion.
    """

    def __init__(self, blur: float = 1.0, blur_probability: float = 0.3,
                 jpeg_quality: Sequence[int] = (40, 95), jpeg_probability: float = 0.3,
                 vertical_shift: float = 1.0, shift_probability: float = 0.3,
                 eraser_probability: float = 0.3) -> None:
        quality = tuple(int(q) for q in jpeg_quality)
        if len(quality) != 2 or not 1 <= quality[0] <= quality[1] <= 100:
            raise ConfigError(f'camera_degradation jpeg_quality must be [low, high] in 1..100, '
                              f'got {jpeg_quality}')
        if blur < 0 or vertical_shift < 0:
            raise ConfigError('camera_degradation blur and vertical_shift must be >= 0')
        self.blur, self.blur_probability = float(blur), float(blur_probability)
        self.jpeg_quality, self.jpeg_probability = quality, float(jpeg_probability)
        self.vertical_shift, self.shift_probability = float(vertical_shift), shift_probability
        self.eraser_probability = float(eraser_probability)

    def _one(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.blur > 0 and rng.random() < self.blur_probability:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.2, self.blur))
        if rng.random() < self.jpeg_probability:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            pixels = np.clip(image + 0.5, 0, 255).astype(np.uint8)
            ok, encoded = cv2.imencode('.jpg', pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
            decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None
            if decoded is not None:
                image = decoded.astype(np.float32)
        return image

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the sample with each view degraded independently."""
        left, right = self._one(sample.left, rng), self._one(sample.right, rng)
        if self.vertical_shift > 0 and rng.random() < self.shift_probability:
            shift = rng.uniform(-self.vertical_shift, self.vertical_shift)
            matrix = np.array([[1, 0, 0], [0, 1, shift]], np.float32)
            right = cv2.warpAffine(right, matrix, (right.shape[1], right.shape[0]),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < self.eraser_probability:
            right = right.copy()
            mean = right.reshape(-1, 3).mean(axis=0)
            rows, cols = right.shape[:2]
            for _ in range(int(rng.integers(1, 3))):
                h, w = int(rng.integers(rows // 16 + 1, rows // 3 + 2)), \
                    int(rng.integers(cols // 16 + 1, cols // 3 + 2))
                y, x = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
                right[y:y + h, x:x + w] = mean
        return TrainSample(left, right, sample.disparity)


class RandomScale:
    """Resize the sample by a factor drawn log-uniformly in [low, high], with ``probability``.

    Disparity values scale with the width; unknown (NaN) ground truth stays unknown (nearest
    neighbour resampling of the disparity, so no value is blended across an edge). The
    disparity's nearest neighbour is taken around pixel centres, as the images' resampling
    takes them (OpenCV's ``INTER_NEAREST_EXACT``; plain ``INTER_NEAREST`` takes
    ``floor(x / factor)`` and moved the labels' depth edges about 0.4 px right and down of the
    images' until 2026-12-07, in every stage trained before).
    """

    def __init__(self, low: float = 0.8, high: float = 1.2, probability: float = 0.5) -> None:
        if not 0 < low <= high:
            raise ConfigError(f'random_scale needs 0 < low <= high, got {low}, {high}')
        self.low, self.high, self.probability = float(low), float(high), float(probability)

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the (maybe) resized sample."""
        if rng.random() >= self.probability:
            return sample
        factor = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        rows, cols = sample.disparity.shape
        size = (max(int(round(cols * factor)), 1), max(int(round(rows * factor)), 1))
        scale = size[0] / cols
        images = [cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1
                             else cv2.INTER_LINEAR) for image in (sample.left, sample.right)]
        disparity = cv2.resize(sample.disparity, size,
                               interpolation=cv2.INTER_NEAREST_EXACT) * scale
        return TrainSample(images[0], images[1], disparity.astype(np.float32))


def vignette(image: np.ndarray, strength: float,
             centre: tuple[float, float] | None = None) -> np.ndarray:
    """Return ``image`` (HxW or HxWxC) darkened towards its corners, as by a lens.

    The gain is ``1 - strength * r**2``, ``r`` the distance from ``centre`` (default the
    image's middle) over the half diagonal: ``strength`` 0.5 leaves half the light in the
    corners. Both views of a stereo pair have it around their own centre, so one point of a
    surface is brighter in one view than in the other by an amount that grows with its
    disparity: on a weakly textured wall that difference can outweigh the texture.
    """
    if not 0 <= strength < 1:
        raise ValueError(f'vignetting strength must be in [0, 1), got {strength}')
    rows, cols = image.shape[:2]
    cx, cy = centre if centre is not None else ((cols - 1) / 2, (rows - 1) / 2)
    y, x = np.ogrid[:rows, :cols]
    squared = ((x - cx) ** 2 + (y - cy) ** 2) / (((cols - 1) / 2) ** 2 + ((rows - 1) / 2) ** 2)
    gain = (1 - strength * np.minimum(squared, 1)).astype(np.float32)
    return image.astype(np.float32) * (gain if image.ndim == 2 else gain[..., None])


class Vignetting:
    """Darken both views towards their corners, as a real lens does (:func:`vignette`).

    With ``probability`` the pair gets one strength drawn in [0, ``strength``] (the two
    cameras have the same lens), changed by up to ``difference`` (relative) per view, and each
    view's centre moves by up to ``centre_jitter`` of its half width and half height.
    """

    def __init__(self, strength: float = 0.6, probability: float = 0.5,
                 difference: float = 0.15, centre_jitter: float = 0.1) -> None:
        if not 0 <= strength < 1:
            raise ConfigError(f'vignetting strength must be in [0, 1), got {strength}')
        if not 0 <= probability <= 1 or not 0 <= difference < 1 or centre_jitter < 0:
            raise ConfigError('vignetting needs probability in [0, 1], difference in [0, 1) '
                              'and centre_jitter >= 0')
        self.strength, self.probability = float(strength), float(probability)
        self.difference, self.centre_jitter = float(difference), float(centre_jitter)

    def _one(self, image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        rows, cols = image.shape[:2]
        jitter = rng.uniform(-self.centre_jitter, self.centre_jitter, 2)
        centre = ((cols - 1) / 2 * (1 + jitter[0]), (rows - 1) / 2 * (1 + jitter[1]))
        own = min(strength * rng.uniform(1 - self.difference, 1 + self.difference), 0.99)
        return vignette(image, own, centre)

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the (maybe) vignetted sample; the disparity is unchanged."""
        if rng.random() >= self.probability:
            return sample
        strength = rng.uniform(0, self.strength)
        return replace(sample, left=self._one(sample.left, strength, rng),
                       right=self._one(sample.right, strength, rng))


TRANSFORMS: dict[str, type] = {
    'random_crop': RandomCrop,
    'photometric': Photometric,
    'vertical_flip': VerticalFlip,
    'camera_degradation': CameraDegradation,
    'random_scale': RandomScale,
    'vignetting': Vignetting,
}

_FORBIDDEN = {
    'horizontal_flip': 'a horizontal flip swaps the roles of the left and right cameras and '
                       'breaks the stereo geometry',
    'hflip': 'a horizontal flip swaps the roles of the left and right cameras and breaks the '
             'stereo geometry',
}


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: TrainSample, rng: np.random.Generator) -> TrainSample:
        """Return the sample after every transform, made contiguous."""
        for transform in self.transforms:
            sample = transform(sample, rng)
        return TrainSample(np.ascontiguousarray(sample.left, dtype=np.float32),
                           np.ascontiguousarray(sample.right, dtype=np.float32),
                           np.ascontiguousarray(sample.disparity, dtype=np.float32))


def build_transform(spec: dict[str, Any]) -> Transform:
    """Build one transform from ``{name: ..., <parameters>}``; ConfigError if unknown."""
    params = dict(spec)
    name = params.pop('name', None)
    if name in _FORBIDDEN:
        raise ConfigError(f'augmentation {name!r} is not allowed: {_FORBIDDEN[name]}')
    if name not in TRANSFORMS:
        raise ConfigError(f'unknown augmentation {name!r}; known: {", ".join(TRANSFORMS)}')
    try:
        return TRANSFORMS[name](**params)
    except TypeError as error:
        raise ConfigError(f'augmentation {name!r}: {error}') from None


def build_augmentation(specs: Sequence[dict[str, Any]]) -> Compose:
    """Build the ordered pipeline of ``data.augmentation``."""
    return Compose([build_transform(spec) for spec in specs])
