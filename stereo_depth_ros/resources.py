"""Find the files the package ships (models, configs) in a checkout, pip or colcon install."""

import os
import sys
from pathlib import Path
from typing import Optional

PACKAGE_NAME = 'stereo_depth_ros'
_PACKAGE_DIR = Path(__file__).resolve().parent


def share_dirs() -> list[Path]:
    """Return candidate folders holding ``models/``, ``config/`` and ``launch/``, best first.

    Order: ``$STEREO_DEPTH_ROS_SHARE``, the source checkout (the folder above the package
    holding ``package.xml``), the ament index (colcon install), then
    ``<prefix>/share/stereo_depth_ros`` of a pip install.
    """
    candidates: list[Path] = []
    env = os.environ.get('STEREO_DEPTH_ROS_SHARE')
    if env:
        candidates.append(Path(env))
    checkout = _PACKAGE_DIR.parent
    if (checkout / 'package.xml').is_file():  # not an install's site-packages, where
        candidates.append(checkout)  # another package's models/ or config/ may lie
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE_NAME)))
    except Exception:  # ament not installed, or the package is not in the index
        pass
    prefixes = [Path(sys.prefix), Path(sys.base_prefix)]
    if len(_PACKAGE_DIR.parents) > 3:  # <prefix>/lib/pythonX.Y/site-packages/<package>
        prefixes.append(_PACKAGE_DIR.parents[3])
    for prefix in prefixes:
        candidates.append(prefix / 'share' / PACKAGE_NAME)
    return [path for path in dict.fromkeys(candidates) if path.is_dir()]


def find_shared_file(relative: str) -> Optional[Path]:
    """Return the first existing ``<share dir>/<relative>``, or None."""
    for base in share_dirs():
        path = base / relative
        if path.exists():
            return path
    return None


def default_weights_path(backend: str) -> Optional[Path]:
    """Return ``models/<backend>.safetensors`` where it is installed, or None."""
    return find_shared_file(f'models/{backend}.safetensors')


def sample_data_dir() -> Path:
    """Return the folder of sample data shipped inside the Python package."""
    return _PACKAGE_DIR / 'sample_data'
