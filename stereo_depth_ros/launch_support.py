"""What ``launch/depth.launch.py`` computes from its arguments, as plain functions.

Kept in the package (no ``launch`` import) so the launch file's behaviour is tested without ROS.
"""

from pathlib import Path
from typing import Any

from .backends import backend_names
from .topics import IMAGE_TRANSPORTS, INPUT_TOPICS


def backend_choices() -> list[str]:
    """Return the values of the ``backend`` argument: '' (keep params_file) or a backend."""
    return [''] + list(backend_names())


def input_remappings(left_namespace: str, right_namespace: str) -> list[tuple[str, str]]:
    """Return the node's remappings of ``left/*`` and ``right/*`` to the given namespaces.

    A namespace is relative to the node's (``left``) or absolute (``/camera/left``); a
    trailing ``/`` is ignored and '' means the default.
    """
    targets = {'left': left_namespace.rstrip('/') or 'left',
               'right': right_namespace.rstrip('/') or 'right'}
    remappings = []
    for topic in INPUT_TOPICS:
        side, _, name = topic.partition('/')
        remappings.append((topic, f'{targets[side]}/{name}'))
    return remappings


def image_transport_choices() -> list[str]:
    """Return the values of the ``image_transport`` argument: '' (keep params_file) or one."""
    return [''] + list(IMAGE_TRANSPORTS)


def parameter_overrides(backend: str, weights: str, approximate_sync: str,
                        use_sim_time: str, image_transport: str = '') -> dict[str, Any]:
    """Return the parameters that override ``params_file``: only the arguments given.

    ``use_sim_time`` is always set; ``backend``, ``weights``, ``approximate_sync`` and
    ``image_transport`` only when not '' (``approximate_sync`` and ``use_sim_time`` are
    ``'true'``/``'false'``).
    """
    overrides: dict[str, Any] = {'use_sim_time': use_sim_time == 'true'}
    if backend:
        overrides['backend'] = backend
    if weights:
        overrides['weights'] = weights
    if approximate_sync:
        overrides['approximate_sync'] = approximate_sync == 'true'
    if image_transport:
        overrides['image_transport'] = image_transport
    return overrides


def checked_params_file(path: str) -> str:
    """Return ``path`` if it is a file; ValueError naming it otherwise.

    launch_ros only warns about a parameter file that is not there and starts the node with
    its built-in defaults, so a relative path given from another folder was quietly ignored.
    """
    if not Path(path).is_file():
        raise ValueError(f'params_file {path} is not a file (from {Path.cwd()}); give its '
                         'path, e.g. params_file:=$PWD/my_depth.yaml')
    return path


RVIZ_MISSING = ('use_rviz:=true but rviz2 is not installed (e.g. sudo apt install '
                'ros-$ROS_DISTRO-rviz2): starting stereo_depth_node without it')
