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
        assert image is not None, path
        cv2.imwrite(str(out.with_suffix('.png')), image)
        count += 1
    else:
        shutil.copy2(path, out)
print(f'{count} images unpacked into {dst}')
