"""Files that appear whole or not at all: write beside the target, then rename onto it.

An interrupted or failed write (Ctrl-C, a full disk, an exception while serialising) must not
leave a half-written weights file, checkpoint or model card where a loader will read it, nor
destroy the file that was there before. :func:`written_atomically` gives the writer a hidden
file in the same folder (so the rename stays on one file system and is atomic) and renames it
onto the target only when the writer finished.
"""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def staging_path(path: Path) -> Path:
    """Return the hidden file beside ``path`` that this process writes before renaming."""
    return path.with_name(f'.{path.name}.partial-{os.getpid()}')


@contextmanager
def written_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a path to write ``path``'s new content to; rename it onto ``path`` on success.

    The folder is created if needed. If the body raises, the staging file is removed and
    ``path`` keeps its previous content (or stays absent).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(target)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
