"""Decode the lossless WebP copies of the unlabeled pairs back to PNG (bit-exact).

Run on the lent machine by run.sh: ``python3 tools/gpu_lease/unpack.py .gpu/unlabeled_webp
DEST``. A file that already exists under DEST is left as it is (never rewritten): on a warm
machine the second call finds them all, and a CPU dry run from a copy of the repository
whose ``../shared/data/unlabeled`` is the real one changes nothing there. Each file is
written beside and renamed, so an interrupted call leaves no half-written image.
"""

import os
import pathlib
import shutil
import sys

import cv2

src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
if not src.is_dir():
    sys.exit(f'{src} is not a folder: run pack.py and carry its output')
count = kept = 0
for path in sorted(src.rglob('*')):
    if path.is_dir():
        continue
    out = dst / path.relative_to(src)
    if path.suffix == '.webp':
        out = out.with_suffix('.png')
    if out.exists():
        kept += 1
        continue
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f'.{out.stem}.unpacking{out.suffix}')
    if path.suffix == '.webp':
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or not cv2.imwrite(str(staging), image):
            sys.exit(f'{path}: cannot decode it or write it back as PNG')
    else:
        shutil.copy2(path, staging)
    os.replace(staging, out)
    count += 1
print(f'{count} files unpacked into {dst}, {kept} already there (left as they were)')
