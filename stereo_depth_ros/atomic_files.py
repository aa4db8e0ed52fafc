"""Files that appear whole or not at all: write beside the target, then rename onto it.

An interrupted or failed write (Ctrl-C, a killed process, a full disk, an exception while
serialising) must not leave a half-written weights file, checkpoint or model card where a
loader will read it, nor destroy the file that was there before. :func:`written_atomically`
gives the writer a hidden file in the same folder (so the rename stays on one file system and
is atomic), flushes it to the disk and renames it onto the target only when the writer
finished. A process killed while writing leaves its hidden ``.NAME.partial-PID`` file behind
(nothing reads it; it can be deleted).
"""

import os
import stat
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterable, Iterator


def staging_path(path: Path) -> Path:
    """Return the hidden path beside ``path`` that this process writes before renaming."""
    return path.with_name(f'.{path.name}.partial-{os.getpid()}')


def _create_empty(staging: Path) -> int:
    """Create ``staging`` as any new file is created; return the permission bits it got.

    Those bits (0666 less the umask, or what the folder's default ACL gives) are restored
    after the writer ran: writers such as safetensors' ``save_file`` replace the file with a
    private (0600) one, the rename would carry that onto the target, and a node running as
    another user could not read the weights.
    """
    descriptor = os.open(staging, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
    try:
        return stat.S_IMODE(os.fstat(descriptor).st_mode)
    finally:
        os.close(descriptor)


@contextmanager
def written_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a path to write ``path``'s new content to; rename it onto ``path`` on success.

    The folder is created if needed; a folder at ``path`` is an IsADirectoryError naming it.
    The file gets the permissions of a newly created file (the umask's), whatever the writer
    or an older file had. If the body raises, the staging file is removed and ``path`` keeps
    its previous content (or stays absent). Like any rename, this replaces a symbolic link at
    ``path`` rather than the file it points to.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f'{target} is a folder, not a file to write')
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(target)
    try:
        mode = _create_empty(staging)
        yield staging
        os.chmod(staging, mode)
        with open(staging, 'rb+') as written:
            os.fsync(written.fileno())
        os.replace(staging, target)
        _sync_folder(target.parent)
    finally:
        staging.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (the rename) to the disk where the file system allows it."""
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def replace_files(folder: str | Path, contents: dict[str, bytes],
                  outputs: Iterable[str]) -> None:
    """Make ``folder``'s set of ``outputs`` exactly ``contents`` (name -> bytes), or none of it.

    Every name of ``outputs`` (all the files a command may write there) is removed first, so
    no file of an earlier run, of another input, stays beside the new ones; each new file is
    then written atomically. If one fails (a full disk), the ones already written are removed
    too, and so are the folders made for them, and the error is raised: the folder holds the
    whole new set or none of it.
    """
    folder = Path(folder)
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    for name in outputs:  # checked first: a refused run keeps the earlier outputs
        if (folder / name).is_dir():
            raise IsADirectoryError(f'{folder / name} is a folder, not a file to write')
    for name in outputs:
        (folder / name).unlink(missing_ok=True)
    written: list[Path] = []
    try:
        for name, data in contents.items():
            with written_atomically(folder / name) as staging:
                staging.write_bytes(data)
            written.append(folder / name)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for path in made:
            with suppress(OSError):  # not empty after all: left as it is
                path.rmdir()
        raise
