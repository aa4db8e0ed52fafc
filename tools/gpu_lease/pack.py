"""Pack the training data a lent GPU machine lacks into a folder small enough to carry.

The machine has no network and a call carries at most 64 MiB with the working tree, so the
photographs (``stereo-depth fetch-photos``, 172 MB) go shrunk and the unlabeled pairs
(``../shared/data/unlabeled``, 100 PNGs) go as lossless WebP::

    .venv/bin/python tools/gpu_lease/pack.py --out .gpu     # then carry .gpu (README.md)

The scripts that run there (run.sh, unpack.py, seeds.py, shrink_checkpoint.py) are not
copied: they travel with the working tree and run from tools/gpu_lease, so an edit to them
needs no new pack. ``.gpu/run.sh`` is only a stub that runs ``tools/gpu_lease/run.sh``, for
the commands written before (an older pack's copy of unpack.py is removed).

Photographs: a fixed random subset within ``--photo-mb``, each shrunk to ``--max-side`` px
(the training's own limit, so nothing the training would see is lost but the subset): JPEG
at ``--quality``, PNG where an alpha channel outlines an object. Pairs: every PNG as lossless
WebP, checked to decode to the same pixels; grey PNGs (WebP decodes them as colour) and other
files are copied.
"""

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from stereo_depth_ros.data.photos import DEFAULT_PHOTO_CACHE, IMAGE_SUFFIXES, decode_photo


#: ``.gpu/run.sh``: the older command ``bash .gpu/run.sh`` runs the script of the tree.
STUB = ('#!/bin/bash\n# Written by tools/gpu_lease/pack.py: run.sh travels with the tree.\n'
        'exec bash tools/gpu_lease/run.sh "$@"\n')


def pack_photos(source: Path, target: Path, budget_mb: float, max_side: int,
                quality: int) -> tuple[int, int]:
    """Write shrunk photographs until ``budget_mb`` is used; return (files, bytes)."""
    files = sorted(path for path in source.rglob('*')
                   if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    order = np.random.default_rng(0).permutation(len(files))
    written = used = 0
    for index in order:
        path = files[int(index)]
        decoded = decode_photo(path, max_side)  # as the training reads it
        if decoded is None:
            continue
        cutout = decoded.alpha is not None
        image = cv2.cvtColor(decoded.rgb, cv2.COLOR_RGB2BGR)
        if cutout:
            image = np.dstack([image, decoded.alpha])
        suffix = '.png' if cutout else '.jpg'
        options = [] if cutout else [cv2.IMWRITE_JPEG_QUALITY, quality]
        out = (target / path.relative_to(source)).with_suffix(suffix)
        ok, data = cv2.imencode(suffix, image, options)
        if not ok or out.exists() or used + data.nbytes > budget_mb * 2 ** 20:
            continue  # (x.png and x.jpg would both become x.jpg: the first one stays)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data.tobytes())
        written, used = written + 1, used + data.nbytes
    return written, used


def pack_pairs(source: Path, target: Path) -> tuple[int, int]:
    """Write the colour PNGs under ``source`` as lossless WebP, copy the rest; (files, bytes)."""
    written = used = 0
    for path in sorted(source.rglob('*')):
        if path.is_dir():
            continue
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        image = (cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.suffix.lower() == '.png'
                 else None)
        if image is None or image.ndim == 2:  # not a PNG, or grey (WebP decodes it as colour)
            shutil.copy2(path, out)
            used += out.stat().st_size
            continue
        ok, data = cv2.imencode('.webp', image, [cv2.IMWRITE_WEBP_QUALITY, 101])
        back = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else None
        if back is None or back.shape != image.shape or not np.array_equal(back, image):
            raise SystemExit(f'{path}: lossless WebP does not give the same pixels back')
        out.with_suffix('.webp').write_bytes(data.tobytes())
        written, used = written + 1, used + data.nbytes
    return written, used


def main() -> None:
    """Pack photographs and pairs into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=Path('.gpu'))
    parser.add_argument('--photos', type=Path, default=DEFAULT_PHOTO_CACHE)
    parser.add_argument('--pairs', type=Path, default=Path('../shared/data/unlabeled'))
    parser.add_argument('--photo-mb', type=float, default=26.0)
    parser.add_argument('--max-side', type=int, default=768)
    parser.add_argument('--quality', type=int, default=88)
    args = parser.parse_args()
    args.photos = args.photos.expanduser()
    for folder in (args.photos, args.pairs):
        if not folder.is_dir():
            raise SystemExit(f'{folder} is not a folder')
    for name in ('photos', 'unlabeled_webp'):
        shutil.rmtree(args.out / name, ignore_errors=True)
    photos = pack_photos(args.photos, args.out / 'photos', args.photo_mb,
                         args.max_side, args.quality)
    pairs = pack_pairs(args.pairs, args.out / 'unlabeled_webp')
    (args.out / 'unpack.py').unlink(missing_ok=True)  # an older pack.py's copy
    (args.out / 'run.sh').write_text(STUB)
    total = sum(path.stat().st_size for path in args.out.rglob('*') if path.is_file())
    print(f'{photos[0]} photographs ({photos[1] / 2 ** 20:.1f} MiB) and {pairs[0]} pair images '
          f'({pairs[1] / 2 ** 20:.1f} MiB) in {args.out}, {total / 2 ** 20:.1f} MiB in all; '
          f'what a call would carry: bash tools/gpu_lease/travel.sh size')


if __name__ == '__main__':
    main()
