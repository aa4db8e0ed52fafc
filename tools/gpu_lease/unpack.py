"""Decode the lossless WebP copies of the unlabeled pairs back to PNG (bit-exact).

Run on the lent machine by run.sh: ``python3 .gpu/unpack.py .gpu/unlabeled_webp DEST``.
"""

import pathlib
import shutil
import sys

import cv2

src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
count = 0
for path in sorted(src.rglob('*')):
    if path.is_dir():
        continue
    out = dst / path.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == '.webp':
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or not cv2.imwrite(str(out.with_suffix('.png')), image):
            sys.exit(f'{path}: cannot decode it or write it back as PNG')
        count += 1
    else:
        shutil.copy2(path, out)
print(f'{count} images unpacked into {dst}')
