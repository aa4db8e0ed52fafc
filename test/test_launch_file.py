"""launch/depth.launch.py and config/depth.rviz, checked without a ROS installation.

The launch file is parsed with ``ast`` (no ``launch`` import needed); where ``launch_ros`` and
an installed package are available it is also loaded and its description inspected.
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from stereo_depth_ros.bags.from_kitti import BASE_FRAME, LEFT_FRAME, topic_names
from stereo_depth_ros.topics import INPUT_TOPICS, OUTPUT_TOPICS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'depth.launch.py'
RVIZ = ROOT / 'config' / 'depth.rviz'
DOCUMENTED = {'backend', 'weights', 'params_file', 'namespace', 'left_namespace',
              'right_namespace', 'approximate_sync', 'use_sim_time', 'use_rviz', 'rviz_config',
              'log_level'}


def _tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(name: str) -> list[ast.Call]:
    return [node for node in ast.walk(_tree()) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keywords(call: ast.Call) -> dict:
    return {kw.arg: kw.value for kw in call.keywords}


def _arguments() -> dict[str, dict]:
    arguments = {}
    for call in _calls('DeclareLaunchArgument'):
        name = ast.literal_eval(call.args[0])
        keywords = _keywords(call)
        default = keywords.get('default_value')
        arguments[name] = {
            'description': ast.literal_eval(keywords['description']),
            'default': ast.literal_eval(default) if isinstance(default, ast.Constant)
            else ast.unparse(default),
            'choices': ast.literal_eval(keywords['choices']) if 'choices' in keywords else None,
        }
    return arguments


def test_launch_file_compiles_and_defines_generate_launch_description():
    compile(LAUNCH.read_text(), str(LAUNCH), 'exec')
    functions = [node.name for node in _tree().body if isinstance(node, ast.FunctionDef)]
    assert 'generate_launch_description' in functions


def test_documented_arguments_are_declared_with_descriptions():
    arguments = _arguments()
    assert set(arguments) == DOCUMENTED
    for name, argument in arguments.items():
        assert len(argument['description']) > 15, name
        if argument['choices'] is not None:
            assert argument['default'] in argument['choices'], name
    assert 'depth.yaml' in arguments['params_file']['default']
    assert 'depth.rviz' in arguments['rviz_config']['default']
    assert (ROOT / 'config' / 'depth.yaml').is_file() and RVIZ.is_file()


def test_default_topics_are_the_kitti2bag_topics():
    arguments = _arguments()
    namespace = arguments['namespace']['default']
    left, right = arguments['left_namespace']['default'], arguments['right_namespace']['default']
    resolved = {
        'left_image': f'/{namespace}/{left}/image_rect',
        'right_image': f'/{namespace}/{right}/image_rect',
        'left_info': f'/{namespace}/{left}/camera_info',
        'right_info': f'/{namespace}/{right}/camera_info',
    }
    bag = topic_names()
    assert all(bag[key] == topic for key, topic in resolved.items())
    # the node subscribes to exactly the remapped relative names
    assert set(INPUT_TOPICS) == {'left/image_rect', 'right/image_rect', 'left/camera_info',
                                 'right/camera_info'}


def test_node_action_uses_the_installed_executable_and_node_name():
    setup = (ROOT / 'setup.py').read_text()
    assert "'depth_node = stereo_depth_ros.node:main'" in setup
    nodes = [_keywords(call) for call in _calls('Node')]
    depth = [kw for kw in nodes if ast.literal_eval(kw['executable']) == 'depth_node']
    assert len(depth) == 1
    package = {node.targets[0].id: ast.literal_eval(node.value) for node in _tree().body
               if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)}
    assert package['PACKAGE'] == 'stereo_depth_ros'
    assert ast.unparse(depth[0]['package']) == 'PACKAGE'
    name = ast.literal_eval(depth[0]['name'])
    params = yaml.safe_load((ROOT / 'config' / 'depth.yaml').read_text())
    assert name == 'stereo_depth_node' and list(params) == [f'/**/{name}']
    assert re.search(r"NODE_NAME = 'stereo_depth_node'", (ROOT / 'stereo_depth_ros' /
                                                          'node.py').read_text())
    rviz = [kw for kw in nodes if kw is not depth[0]]
    assert len(rviz) == 1 and ast.literal_eval(rviz[0]['executable']) == 'rviz2'
    assert 'IfCondition(use_rviz)' in ast.unparse(rviz[0]['condition'])


def _rclpy_key_matches(key: str, node_fqn: str) -> bool:
    """Match a parameter-file node key against a node's full name as rclpy does."""
    key = key if key.startswith('/') else '/' + key
    return re.fullmatch(key.replace('/*', r'(/\w+)'), node_fqn) is not None


def test_parameter_file_reaches_the_node_in_its_launch_namespace():
    (key,) = yaml.safe_load((ROOT / 'config' / 'depth.yaml').read_text())
    namespace = _arguments()['namespace']['default']
    assert _rclpy_key_matches(key, f'/{namespace}/stereo_depth_node')
    assert _rclpy_key_matches(key, '/robot/cam/stereo_depth_node')
    assert not _rclpy_key_matches(key, f'/{namespace}/other_node')
    # why the wildcard: the bare node name misses a namespaced node
    assert not _rclpy_key_matches('stereo_depth_node', f'/{namespace}/stereo_depth_node')


def test_launch_description_loads_where_launch_ros_is_installed():
    pytest.importorskip('launch_ros')
    ament = pytest.importorskip('ament_index_python.packages')
    try:
        ament.get_package_share_directory('stereo_depth_ros')
    except ament.PackageNotFoundError:
        pytest.skip('stereo_depth_ros is not installed in an ament prefix')
    from launch.actions import DeclareLaunchArgument
    spec = importlib.util.spec_from_file_location('depth_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {entity.name for entity in description.entities
                if isinstance(entity, DeclareLaunchArgument)}
    assert declared == DOCUMENTED


# ------------------------------------------------------------------ rviz


def _displays() -> list[dict]:
    config = yaml.safe_load(RVIZ.read_text())
    return config['Visualization Manager']['Displays']


def test_rviz_config_is_valid_yaml_with_the_expected_displays():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] in (BASE_FRAME, LEFT_FRAME)
    by_class: dict[str, list[str]] = {}
    for display in _displays():
        assert display['Class'].startswith('rviz_default_plugins/')
        topic = display.get('Topic', {}).get('Value')
        by_class.setdefault(display['Class'].split('/')[1], []).append(topic)
    assert set(by_class['Image']) == {'/stereo/left/image_rect', '/stereo/disparity/color',
                                      '/stereo/depth', '/stereo/obstacle/mask'}
    assert by_class['PointCloud2'] == ['/stereo/points2']
    assert by_class['Range'] == ['/stereo/obstacle/range']


def test_rviz_topics_are_published_by_the_node_or_the_bag():
    published = {f'/stereo/{topic}' for topic in OUTPUT_TOPICS} | set(topic_names().values())
    for display in _displays():
        if 'Topic' in display:
            assert display['Topic']['Value'] in published, display['Name']
            # Best effort takes any publisher; reliable only our own reliable outputs.
            if display['Topic']['Reliability Policy'] == 'Reliable':
                assert display['Topic']['Value'][len('/stereo/'):] in OUTPUT_TOPICS
