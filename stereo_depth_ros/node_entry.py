"""Entry point of ``depth_node``: where the node's dependencies are missing, one line.

The installed script runs the interpreter colcon built it with. Built with the system
``python3`` instead of the venv's, or started without a sourced ROS, a module the node
imports (OpenCV, yaml, rclpy) is missing, and the import would end in a traceback that does
not say why.
"""

import sys
from typing import Optional

from .errors import EXIT_BAD_INPUT


def main(args: Optional[list[str]] = None) -> int:
    """Run the node (:func:`stereo_depth_ros.node.main`); exit status 2 if it cannot load."""
    try:
        from .node import main as run_node
    except ModuleNotFoundError as error:
        top = (error.name or '').split('.')[0]
        if top == 'stereo_depth_ros':
            raise  # the package itself is broken: the traceback is the news
        advice = ('source /opt/ros/$ROS_DISTRO/setup.bash (and the workspace) first'
                  if top in ('rclpy', 'message_filters', 'rcl_interfaces', 'sensor_msgs',
                             'stereo_msgs')
                  else "build the workspace with `python3 -m colcon build` in the venv that "
                       "holds the package's dependencies (docs/ros.md, Install)")
        print(f'depth_node: cannot start: {error} (Python at {sys.executable}): {advice}',
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_node(args)


if __name__ == '__main__':
    sys.exit(main())
