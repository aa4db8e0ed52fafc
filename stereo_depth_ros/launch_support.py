"""What ``launch/depth.launch.py`` computes from its arguments, as plain functions.

Kept in the package (no ``launch`` import) so the launch file's behaviour is tested without ROS.
"""

from pathlib import Path
from typing import Any

import yaml

from .backends import backend_names
from .names import NODE_NAME, ROS_PARAMETERS, node_key_pattern, node_sections
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

    Each only when not '' (``approximate_sync`` and ``use_sim_time`` are ``'true'`` /
    ``'false'``): a ``use_sim_time`` of the file, or of a parent launch's
    ``SetParameter``, stays where the argument is not given.
    """
    overrides: dict[str, Any] = {}
    if use_sim_time:
        overrides['use_sim_time'] = use_sim_time == 'true'
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


def node_name(namespace: str, pushed: str = '') -> str:
    """Return the node's fully qualified name in ``namespace`` (relative to ``pushed``).

    ``pushed`` is the namespace a parent launch pushed (``PushRosNamespace``); an absolute
    ``namespace`` ignores it, as launch_ros does.
    """
    parts = [namespace.strip('/')] if namespace.startswith('/') else [pushed.strip('/'),
                                                                      namespace.strip('/')]
    return '/' + '/'.join([part for part in parts if part] + [NODE_NAME])


def unmatched_params_file(path: str, name: str) -> str:
    """Return a warning where no section of the parameter file at ``path`` is for ``name``.

    '' where one is, or where the file is no mapping of node names (the node's own start-up
    check names that). ROS 2 matches the keys against the fully qualified name, ``*`` for
    one part and ``**`` for any number; a key without a leading ``/`` is taken from the root:
    ``stereo_depth_node`` alone is the node in no namespace, and the node would start with its
    defaults (a learned backend on the CPU) without a word.
    """
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ''
    if not isinstance(document, dict) or ROS_PARAMETERS in document:
        return ''
    keys = [key for key, _ in node_sections(document)]
    if not keys or any(node_key_pattern(key).fullmatch(name) for key in keys):
        return ''
    return (f'params_file {path} has no section for {name} (its node keys: '
            f'{", ".join(keys)}): none of its parameters reach the node, which starts with '
            f'its built-in defaults and the launch arguments; key the section '
            f'"/**/{NODE_NAME}" to match it in any namespace')
