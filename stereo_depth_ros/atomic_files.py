"""Files that appear whole or not at all: write beside the target, then rename onto it.

An interrupted or failed write (Ctrl-C, a killed process, a full disk, an exception while
serialising) must not leave a half-written weights file, checkpoint or model card where a
loader will read it, nor destroy the file that was there before. :func:`written_atomically`
gives the writer a hidden file in the same folder (so the rename stays on one file system and
is atomic), flushes it to the disk and renames it onto the target only when the writer
finished. A process killed while writing leaves its hidden ``.NAME.partial-PID`` file behind
(nothing reads it; it can be deleted).
"""

import contextlib
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def staging_path(path: Path) -> Path:
    """Return the hidden path beside ``path`` that this process writes before renaming."""
    return path.with_name(f'.{path.name}.partial-{os.getpid()}')


def _mode_for(target: Path) -> int:
    """Return the permission bits the written file gets: the old file's, else the umask's.

    Writers such as safetensors' ``save_file`` create private (0600) temporary files; the
    rename would carry that onto the target, and a node running as another user could not
    read the weights.
    """
    if target.exists():
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def written_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a path to write ``path``'s new content to; rename it onto ``path`` on success.

    The folder is created if needed; a folder at ``path`` is an IsADirectoryError naming it.
    If the body raises, the staging file is removed and ``path`` keeps its previous content
    (or stays absent). Like any rename, this replaces a symbolic link at ``path`` rather than
    the file it points to.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f'{target} is a folder, not a file to write')
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(target)
    try:
        yield staging
        os.chmod(staging, _mode_for(target))
        with open(staging, 'rb') as written:
            os.fsync(written.fileno())
        os.replace(staging, target)
        _sync_folder(target.parent)
    finally:
        staging.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (the rename) to the disk where the file system allows it."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
