"""Fetch real photographs (Debian packages) into a cache folder for training textures.

Training takes any folder of images (``data.sources[*].photos`` in a training config); this
command fills one from Debian packages of photographs and textures, without installing them:
``apt-get download`` fetches each ``.deb`` and ``dpkg-deb -x`` unpacks it into a scratch folder,
from which the image files are copied (flattened, named ``<package>__<file>``) into
``<cache>/<package>/``. Nothing of them is committed to the project. Packages that are already
in the cache are skipped; a package that cannot be fetched is reported and skipped.
"""

import argparse
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from tqdm import tqdm

from ..errors import StereoDepthError
from ..data.photos import DEFAULT_PHOTO_CACHE, IMAGE_SUFFIXES

#: Debian packages of photographs and textures, with what each brings.
PHOTO_PACKAGES = {
    'mate-backgrounds': 'desktop photographs (landscapes, plants, buildings)',
    'plasma-workspace-wallpapers': 'desktop photographs',
    'tuxpaint-stamps-default': 'photographs of objects with an alpha mask (silhouettes)',
    'gimp-data': 'GIMP patterns and brushes (small textures)',
    'nexuiz-textures': 'about 2,000 photographic game textures (walls, ground, metal) in a zip',
}

#: Archives inside a package whose image members are extracted too.
ARCHIVE_SUFFIXES = ('.zip', '.pk3')
#: Name parts of texture maps that are not photographs (normal, gloss, glow maps).
NOT_PHOTO_MARKERS = ('_norm', '_gloss', '_glow', '_bump', '_shirt', '_pants', '_reflect')

#: Files smaller than this (bytes) are icons or brush tips, not photographs.
MIN_FILE_BYTES = 8_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument('--cache', default=str(DEFAULT_PHOTO_CACHE),
                        help=f'folder to fill (default: {DEFAULT_PHOTO_CACHE})')
    parser.add_argument('--packages', default=','.join(PHOTO_PACKAGES),
                        help='comma-separated Debian packages (default: all known)')


def fetch_package(package: str, target: Path) -> int:
    """Download and unpack ``package``; copy its image files into ``target``; return count."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        download = subprocess.run(['apt-get', 'download', package], cwd=work,
                                  capture_output=True, text=True)
        debs = sorted(work.glob('*.deb'))
        if download.returncode != 0 or not debs:
            message = (download.stderr.strip().splitlines() or ['no .deb'])[-1]
            raise StereoDepthError(f'apt-get download {package} failed: {message}')
        unpacked = work / 'root'
        subprocess.run(['dpkg-deb', '-x', str(debs[0]), str(unpacked)], check=True)
        partial = target.with_name(target.name + '.partial')
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        count = 0
        for path in sorted(unpacked.rglob('*')):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() \
                    and path.stat().st_size >= MIN_FILE_BYTES:
                relative = path.relative_to(unpacked)
                name = '__'.join(relative.parts[-3:])
                shutil.copyfile(path, partial / name)
                count += 1
            elif path.suffix.lower() in ARCHIVE_SUFFIXES and zipfile.is_zipfile(path):
                count += _extract_archive(path, partial)
        partial.rename(target)
    return count


def _extract_archive(archive: Path, target: Path) -> int:
    """Copy the photographic images of a zip archive into ``target``; return their count."""
    count = 0
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            name = member.filename.lower()
            if not name.endswith(IMAGE_SUFFIXES) or member.file_size < MIN_FILE_BYTES \
                    or any(marker in name for marker in NOT_PHOTO_MARKERS):
                continue
            flat = '__'.join(Path(member.filename).parts[-3:])
            (target / flat).write_bytes(bundle.read(member))
            count += 1
    return count


def run(args: argparse.Namespace) -> int:
    """Fetch every requested package that is not in the cache yet."""
    if shutil.which('apt-get') is None or shutil.which('dpkg-deb') is None:
        raise StereoDepthError('fetch-photos needs apt-get and dpkg-deb (a Debian or Ubuntu '
                               'system); elsewhere, point training at any folder of photos')
    cache = Path(args.cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    packages = [name.strip() for name in args.packages.split(',') if name.strip()]
    failed = []
    for package in tqdm(packages, desc='photo packages', unit='pkg'):
        target = cache / package
        if target.is_dir():
            continue
        try:
            count = fetch_package(package, target)
        except (StereoDepthError, subprocess.CalledProcessError) as error:
            failed.append(package)
            tqdm.write(f'skipped {package}: {error}')
            continue
        tqdm.write(f'{package}: {count} images')
    total = sum(1 for path in cache.rglob('*') if path.suffix.lower() in IMAGE_SUFFIXES)
    print(f'{total} images in {cache}' + (f'; failed: {", ".join(failed)}' if failed else ''))
    return 1 if failed and total == 0 else 0
