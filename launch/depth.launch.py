"""Launch stereo_depth_node (and optionally rviz2) on a rectified stereo camera or a bag.

Defaults match the bags written by ``stereo-depth kitti2bag``: the node runs in namespace
``stereo`` and reads ``/stereo/left/image_rect``, ``/stereo/right/image_rect``,
``/stereo/left/camera_info`` and ``/stereo/right/camera_info`` (a bag written with
``--compressed``: add ``image_transport:=compressed``).

    ros2 launch stereo_depth_ros depth.launch.py use_rviz:=true
    ros2 launch stereo_depth_ros depth.launch.py backend:=dispnetc \\
        left_namespace:=/camera/left right_namespace:=/camera/right approximate_sync:=true

``backend``, ``weights``, ``approximate_sync``, ``image_transport`` and ``use_sim_time`` left
empty keep the values of ``params_file``; given, they override it.
"""

import os

from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from stereo_depth_ros.names import NODE_NAME
from stereo_depth_ros.launch_support import (RVIZ_MISSING, backend_choices,
                                             checked_params_file, image_transport_choices,
                                             input_remappings, node_name, parameter_overrides,
                                             unmatched_params_file)

PACKAGE = 'stereo_depth_ros'


def generate_launch_description() -> LaunchDescription:
    """Return the launch description: arguments, the depth node, rviz2 when asked."""
    share = get_package_share_directory(PACKAGE)

    backend = LaunchConfiguration('backend')
    weights = LaunchConfiguration('weights')
    params_file = LaunchConfiguration('params_file')
    namespace = LaunchConfiguration('namespace')
    left_namespace = LaunchConfiguration('left_namespace')
    right_namespace = LaunchConfiguration('right_namespace')
    approximate_sync = LaunchConfiguration('approximate_sync')
    image_transport = LaunchConfiguration('image_transport')
    use_sim_time = LaunchConfiguration('use_sim_time')
    use_rviz = LaunchConfiguration('use_rviz')
    rviz_config = LaunchConfiguration('rviz_config')
    log_level = LaunchConfiguration('log_level')

    arguments = [
        DeclareLaunchArgument(
            'backend', default_value='', choices=backend_choices(),
            description=f"Disparity backend: {', '.join(backend_choices()[1:])}; '' keeps the "
                        "value of params_file"),
        DeclareLaunchArgument(
            'weights', default_value='',
            description="Weights file of a learned backend; '' keeps the value of params_file "
                        "(whose '' means the shipped models/<backend>.safetensors)"),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'depth.yaml'),
            description='Parameter file of stereo_depth_node'),
        DeclareLaunchArgument(
            'namespace', default_value='stereo',
            description='Namespace of the node and of its input and output topics'),
        DeclareLaunchArgument(
            'left_namespace', default_value='left',
            description='Where left/image_rect and left/camera_info come from (relative to '
                        'namespace, or absolute such as /camera/left)'),
        DeclareLaunchArgument(
            'right_namespace', default_value='right',
            description='Where right/image_rect and right/camera_info come from (relative to '
                        'namespace, or absolute such as /camera/right)'),
        DeclareLaunchArgument(
            'approximate_sync', default_value='', choices=['', 'true', 'false'],
            description="Pair left/right by nearest stamp (true) or exact stamp (false); "
                        "'' keeps the value of params_file"),
        DeclareLaunchArgument(
            'image_transport', default_value='', choices=image_transport_choices(),
            description="raw: sensor_msgs/Image on <side>/image_rect; compressed: "
                        "sensor_msgs/CompressedImage on <side>/image_rect/compressed (JPEG or "
                        "PNG, as image_transport publishes); '' keeps the value of params_file"),
        DeclareLaunchArgument(
            'use_sim_time', default_value='', choices=['', 'true', 'false'],
            description="Use /clock (e.g. ros2 bag play --clock); '' keeps the value of "
                        "params_file or of a parent launch's SetParameter (default false)"),
        DeclareLaunchArgument(
            'use_rviz', default_value='false', choices=['true', 'false'],
            description='Start rviz2 with rviz_config'),
        DeclareLaunchArgument(
            'rviz_config', default_value=os.path.join(share, 'config', 'depth.rviz'),
            description='rviz2 configuration (its topics assume namespace:=stereo)'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            choices=['debug', 'info', 'warn', 'error', 'fatal'],
            description='Log level of the started nodes'),
    ]

    def nodes(context, *args, **kwargs) -> list:
        """Build the nodes once the arguments are known (overrides only for given ones).

        Checked before anything starts: a params_file that is not there (launch_ros would
        only warn and start the node with its defaults), and rviz2 where use_rviz asks for it
        (launch would stop with the depth node already started, left running).
        """
        parameters_path = checked_params_file(params_file.perform(context))
        # Checked too: a file none of whose sections is the node's (launch_ros says nothing).
        full_name = node_name(namespace.perform(context),
                              context.launch_configurations.get('ros_namespace', ''))
        unmatched = unmatched_params_file(parameters_path, full_name)
        warnings = [LogInfo(msg=f'WARNING: {unmatched}')] if unmatched else []
        overrides = parameter_overrides(backend.perform(context), weights.perform(context),
                                        approximate_sync.perform(context),
                                        use_sim_time.perform(context),
                                        image_transport.perform(context))
        for name in ('backend', 'weights'):  # a name such as 1e3 stays a string
            if name in overrides:
                overrides[name] = ParameterValue(overrides[name], value_type=str)
        remappings = input_remappings(left_namespace.perform(context),
                                      right_namespace.perform(context))
        started: list = [Node(
            package=PACKAGE, executable='depth_node', name=NODE_NAME,
            namespace=namespace, output='screen', emulate_tty=True,
            parameters=[parameters_path, overrides], remappings=remappings,
            arguments=['--ros-args', '--log-level', log_level])]
        if use_rviz.perform(context) != 'true':
            return warnings + started
        try:
            get_package_share_directory('rviz2')
        except PackageNotFoundError:
            return warnings + [LogInfo(msg=RVIZ_MISSING)] + started
        sim_time = {key: value for key, value in overrides.items() if key == 'use_sim_time'}
        return warnings + started + [Node(
            package='rviz2', executable='rviz2', name='rviz2', output='screen',
            arguments=['-d', rviz_config, '--ros-args', '--log-level', log_level],
            parameters=[sim_time])]

    return LaunchDescription(arguments + [OpaqueFunction(function=nodes)])
