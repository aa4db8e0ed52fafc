"""Entry point of ``depth_node``: where the node's dependencies are missing, one line.

The installed script runs the interpreter colcon built it with; built with the system
``python3`` instead of the venv's, it lacks torch, OpenCV or tqdm, and the import of the node
would end in a traceback that does not say why.
"""

import sys
from typing import Optional


def main(args: Optional[list[str]] = None) -> int:
    """Run the node (:func:`stereo_depth_ros.node.main`); exit status 2 if it cannot load."""
    try:
        from .node import main as run_node
    except ImportError as error:
        print(f'depth_node: cannot start: {error} (Python at {sys.executable}): build the '
              'workspace with `python3 -m colcon build` in the venv that holds the '
              "package's dependencies (docs/ros.md, Install)", file=sys.stderr)
        return 2
    return run_node(args)
