"""ROS 2 names: the node's, topic and namespace names, and parameter files' node keys.

Topic and namespace names are those ``ros2 bag play`` or rclpy accept.

The rules are those of rcl's topic name validation for fully qualified names: ``/``-separated
tokens of letters, digits and underscores, no token starting with a digit, no empty token
(``//``), no trailing ``/``, no ``__`` (reserved).
"""

import re
from typing import Any, Mapping

from .errors import DatasetError

#: The node's name (the launch file, the parameter files' keys).
NODE_NAME = 'stereo_depth_node'
#: Key of a node's parameters in a ROS 2 parameter file.
ROS_PARAMETERS = 'ros__parameters'

_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def check_namespace(name: str, option: str) -> str:
    """Return ``name`` as an absolute namespace (``''`` for the root); DatasetError if invalid.

    ``option`` names the setting in the message (e.g. ``--topic-prefix``).
    """
    stripped = name[1:] if name.startswith('/') else name
    if stripped.endswith('/'):
        stripped = stripped[:-1]
    if not stripped:
        return ''
    for token in stripped.split('/'):
        problem = _token_problem(token)
        if problem:
            raise DatasetError(f'{option} {name!r} is not a valid ROS 2 namespace: {problem} '
                               '(use letters, digits and _ between single slashes, e.g. '
                               '/stereo)')
    return '/' + stripped


def _token_problem(token: str) -> str:
    """Return what is wrong with one name token, or '' when it is valid."""
    if not token:
        return 'it has an empty part (//)'
    if not _TOKEN.fullmatch(token):
        bad = sorted({c for c in token if not (c.isalnum() or c == '_')})
        if bad:
            return f'{token!r} contains {" ".join(repr(c) for c in bad)}'
        return f'{token!r} starts with a digit'
    if '__' in token:
        return f'{token!r} contains __ (reserved)'
    return ''


def node_sections(document: Mapping[Any, Any], prefix: str = '') -> list[tuple[str, Any]]:
    """Return a parameter file's ``(node key, ros__parameters)`` pairs, in file order.

    Nested keys are joined with ``/`` as rcl does (``front: {stereo_depth_node: {...}}`` is
    ``front/stereo_depth_node``).
    """
    sections: list[tuple[str, Any]] = []
    for key, body in document.items():
        if not isinstance(body, dict):
            continue
        joined = f'{prefix}/{key}' if prefix else str(key)
        if ROS_PARAMETERS in body:
            sections.append((joined, body[ROS_PARAMETERS]))
        else:
            sections += node_sections(body, joined)
    return sections


def node_key_pattern(key: str) -> 're.Pattern[str]':
    """Return the regular expression of a node key, as rcl matches it to a node's full name.

    ``*`` stands for any part of one name token, ``**`` for any number of tokens; a key
    without a leading ``/`` is taken from the root.
    """
    parts = []
    for part in key.strip('/').split('/'):
        one = '/' + re.escape(part).replace(r'\*', '[^/]*')
        parts.append('(/[^/]+)*' if part == '**' else one)
    return re.compile(''.join(parts))


def _last_token(key: str) -> str:
    return key.rstrip('/').split('/')[-1]


def names_the_node(key: str) -> bool:
    """Return whether a node key ends in this node's name (not in a wildcard)."""
    return _last_token(key) == NODE_NAME


def may_name_the_node(key: str) -> bool:
    """Return whether a node key matches this node in some namespace (its name or a wildcard)."""
    last = _last_token(key)
    return last == '**' or node_key_pattern(last).fullmatch('/' + NODE_NAME) is not None
