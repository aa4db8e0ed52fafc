"""A folder of real photographs as a source of textures and object silhouettes.

Any folder works (searched recursively for ``.jpg``, ``.jpeg``, ``.png``, ``.ppm``);
``stereo-depth fetch-photos`` fills :data:`DEFAULT_PHOTO_CACHE` from Debian packages. Images
are decoded on first use, shrunk so that their longer side is at most ``max_side`` pixels and
kept, as 8-bit pixels, in a least-recently-used cache of at most ``cache_mb`` megabytes: the
1,655 photographs of ``fetch-photos`` take about 450 MB at 768 px, so by default every one is
decoded once per process (a decode took about 6 ms, most of a photo scene's time when
the cache held 192 of them in float32). A PNG whose alpha channel has both transparent and
opaque parts is also a *cutout*: a real object with its real outline.
"""

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..errors import DatasetError

#: Where ``stereo-depth fetch-photos`` puts photographs by default.
DEFAULT_PHOTO_CACHE = Path('~/.cache/stereo_depth_ros/photos').expanduser()
#: File name suffixes read as images.
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.ppm')


@dataclass
class Photo:
    """An RGB float32 image (0..255) and, for cutouts, its alpha mask (float32 0..1)."""

    rgb: np.ndarray
    alpha: Optional[np.ndarray] = None


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Return ``image`` shrunk (area mean) so that its longer side is at most ``max_side``."""
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(int(image.shape[1] * scale), 1), max(int(image.shape[0] * scale), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class DecodedPhoto:
    """A shrunk photograph as decoded: RGB uint8 and, for cutouts, alpha uint8."""

    rgb: np.ndarray
    alpha: Optional[np.ndarray] = None

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held."""
        return self.rgb.nbytes + (0 if self.alpha is None else self.alpha.nbytes)

    def photo(self) -> Photo:
        """Return the float32 :class:`Photo` (a new copy of the pixels)."""
        alpha = None if self.alpha is None else self.alpha.astype(np.float32) / 255.0
        return Photo(self.rgb.astype(np.float32), alpha)


def decode_photo(path: Path, max_side: int) -> Optional[DecodedPhoto]:
    """Decode ``path`` shrunk to ``max_side`` as 8-bit pixels; None if it is no usable image."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim < 2 or min(image.shape[:2]) < 16:
        return None
    if image.dtype != np.uint8:
        image = (image / max(float(image.max()), 1.0) * 255).astype(np.uint8)
    image = _shrink(image, max_side)
    if image.ndim == 2:
        return DecodedPhoto(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
    alpha = None
    if image.shape[2] == 4:
        coverage = float(np.mean(image[..., 3] > 127))
        if 0.05 < coverage < 0.95:
            alpha = np.ascontiguousarray(image[..., 3])
        image = image[..., :3]
    return DecodedPhoto(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), alpha)


def read_photo(path: Path, max_side: int) -> Optional[Photo]:
    """Read ``path`` as a :class:`Photo` (alpha kept when it outlines an object); None if not."""
    decoded = decode_photo(path, max_side)
    return None if decoded is None else decoded.photo()


def _cached_size(decoded: Optional[DecodedPhoto]) -> int:
    """Return the bytes a cache entry holds (an unusable file, None, holds none)."""
    return 0 if decoded is None else decoded.nbytes


class PhotoLibrary:
    """Photographs under ``root`` (recursively), decoded lazily into a bounded cache."""

    def __init__(self, root: str | Path, max_side: int = 768, cache_mb: float = 512) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f'photo folder {self.root} does not exist; fill it with '
                               f'`stereo-depth fetch-photos --cache {self.root}` or point the '
                               f'config at any folder of photographs')
        files = sorted(path for path in self.root.rglob('*')
                       if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
        if not files:
            raise DatasetError(f'photo folder {self.root} holds no .jpg/.png/.ppm images')
        self.files = files
        #: PNG files: the candidates for cutouts (checked for a usable alpha when read).
        self.png_files = [path for path in files if path.suffix.lower() == '.png']
        self.max_side = int(max_side)
        self.cache_bytes = int(cache_mb * 2 ** 20)
        self._cache: OrderedDict[Path, Optional[DecodedPhoto]] = OrderedDict()
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> Optional[Photo]:
        if path in self._cache:
            self._cache.move_to_end(path)
            decoded = self._cache[path]
        else:
            decoded = decode_photo(path, self.max_side)
            self._cache[path] = decoded
            self._cached_bytes += _cached_size(decoded)
            while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
                self._cached_bytes -= _cached_size(self._cache.popitem(last=False)[1])
        return None if decoded is None else decoded.photo()

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded pixels held in the cache."""
        return self._cached_bytes

    def texture(self, rng: np.random.Generator) -> np.ndarray:
        """Return a random photograph's RGB (float32), for use as a texture."""
        for _ in range(20):
            photo = self._load(self.files[int(rng.integers(len(self.files)))])
            if photo is not None:
                return photo.rgb
        raise DatasetError(f'could not read a photograph under {self.root}')

    def cutout(self, rng: np.random.Generator) -> Optional[Photo]:
        """Return a random photograph with an object alpha mask, or None when there is none."""
        if not self.png_files:
            return None
        for _ in range(8):
            photo = self._load(self.png_files[int(rng.integers(len(self.png_files)))])
            if photo is not None and photo.alpha is not None:
                return photo
        return None
