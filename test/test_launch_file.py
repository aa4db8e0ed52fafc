"""launch/depth.launch.py through launch's own API, its helpers, and config/depth.rviz.

The launch arguments are read with ``launch``'s loader (``get_launch_arguments()``) where
``launch`` and ``launch_ros`` are installed, and skipped elsewhere; the helpers the launch file
calls (:mod:`stereo_depth_ros.launch_support`) and the rviz configuration are checked without
ROS. The parameter file's node key is matched by rcl itself where rclpy is installed.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stereo_depth_ros.backends import backend_names
from stereo_depth_ros.bags.from_kitti import BASE_FRAME, LEFT_FRAME, topic_names
from stereo_depth_ros.launch_support import (RVIZ_MISSING, backend_choices,
                                             checked_params_file, image_transport_choices,
                                             input_remappings, node_name, parameter_overrides,
                                             unmatched_params_file)
from stereo_depth_ros.topics import INPUT_TOPICS, OUTPUT_TOPICS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'depth.launch.py'
RVIZ = ROOT / 'config' / 'depth.rviz'
PARAMS = ROOT / 'config' / 'depth.yaml'
DOCUMENTED = {'backend', 'weights', 'params_file', 'namespace', 'left_namespace',
              'right_namespace', 'approximate_sync', 'image_transport', 'use_sim_time',
              'use_rviz', 'rviz_config', 'log_level'}


# ------------------------------------------------------------------ helpers (no ROS)


def test_backend_choices_are_the_registry_s():
    assert backend_choices() == [''] + list(backend_names())


def test_remappings_cover_every_input_topic():
    remappings = dict(input_remappings('/camera/left/', 'right'))
    assert set(remappings) == set(INPUT_TOPICS)
    assert remappings['left/image_rect'] == '/camera/left/image_rect'
    assert remappings['right/camera_info'] == 'right/camera_info'
    assert dict(input_remappings('', '')) == {name: name for name in INPUT_TOPICS}


def test_only_given_arguments_override_the_parameter_file():
    # use_sim_time too: a parameter file's or a parent launch's SetParameter value stays.
    assert parameter_overrides('', '', '', '') == {}
    assert parameter_overrides('', '', '', 'false') == {'use_sim_time': False}
    assert parameter_overrides('dispnetc', 'w.safetensors', 'false', 'true') == {
        'use_sim_time': True, 'backend': 'dispnetc', 'weights': 'w.safetensors',
        'approximate_sync': False}
    assert parameter_overrides('', '', '', 'false', 'compressed') == {
        'use_sim_time': False, 'image_transport': 'compressed'}
    assert image_transport_choices() == ['', 'raw', 'compressed']


def test_the_launch_helpers_import_neither_opencv_nor_torch():
    # ros2 launch runs the launch file under the Python that runs ros2, which need not have
    # them (a from-source ROS without cv2 failed to load the launch file at all).
    code = ('import sys, stereo_depth_ros.launch_support; '
            'print(sorted(m for m in ("cv2", "torch") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'


def test_the_node_s_full_name_follows_the_namespaces():
    assert node_name('stereo') == '/stereo/stereo_depth_node'  # the launch file's default
    assert node_name('/robot/front/') == '/robot/front/stereo_depth_node'
    assert node_name('') == node_name('/') == '/stereo_depth_node'
    assert node_name('front', pushed='/robot') == '/robot/front/stereo_depth_node'
    assert node_name('/front', pushed='/robot') == '/front/stereo_depth_node'


@pytest.mark.parametrize('key, matches', [
    ('/**/stereo_depth_node', True), ('/**', True), ('/*/stereo_depth_node', True),
    ('/rear/stereo_depth_node', True), ('stereo_depth_node', False),
    ('/front/stereo_depth_node', False), ('/*/*/stereo_depth_node', False)])
def test_a_params_file_without_a_section_for_the_node_is_named(tmp_path, key, matches):
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump({key: {'ros__parameters': {'backend': 'sgbm'}}}))
    warning = unmatched_params_file(str(path), '/rear/stereo_depth_node')
    if matches:
        assert warning == ''
    else:
        assert f'has no section for /rear/stereo_depth_node (its node keys: {key})' in warning
        assert 'starts with its built-in defaults' in warning
    # The shipped file matches the node in any namespace.
    assert unmatched_params_file(str(PARAMS), '/rear/stereo_depth_node') == ''


def test_nested_node_keys_of_a_params_file_are_joined_as_rcl_joins_them(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump({
        '/other/node': {'ros__parameters': {'x': 1}},
        'robot': {'front': {'stereo_depth_node': {'ros__parameters': {'backend': 'sgbm'}}}}}))
    assert unmatched_params_file(str(path), '/robot/front/stereo_depth_node') == ''
    warning = unmatched_params_file(str(path), '/robot/rear/stereo_depth_node')
    assert '(its node keys: /other/node, robot/front/stereo_depth_node)' in warning


def test_a_params_file_that_is_not_there_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f'params_file my_depth.yaml is not a file \\(from '
                                         f'{tmp_path}\\); .*params_file:=\\$PWD/my_depth.yaml'):
        checked_params_file('my_depth.yaml')
    assert checked_params_file(str(PARAMS)) == str(PARAMS)


# ------------------------------------------------------------------ launch's API


@pytest.fixture
def launch_description(tmp_path, monkeypatch):
    """The launch file's description as launch's loader reads it, and a context."""
    pytest.importorskip('launch')
    pytest.importorskip('launch_ros')
    from launch import LaunchContext
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch.utilities import perform_substitutions
    # An ament prefix holding this checkout's share files, for get_package_share_directory.
    index = tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'stereo_depth_ros').write_text('')
    (tmp_path / 'share' / 'stereo_depth_ros').mkdir()
    (tmp_path / 'share' / 'stereo_depth_ros' / 'config').symlink_to(ROOT / 'config')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    description = get_launch_description_from_python_launch_file(str(LAUNCH))
    context = LaunchContext()
    for argument in description.get_launch_arguments():
        context.launch_configurations[argument.name] = perform_substitutions(
            context, argument.default_value)
    return description, context


@pytest.fixture
def launch_arguments(launch_description):
    """name -> (default, description, choices) as launch's loader reads them."""
    description, context = launch_description
    return {argument.name: (context.launch_configurations[argument.name],
                            argument.description, argument.choices)
            for argument in description.get_launch_arguments()}


def _started(launch_description, **arguments) -> list:
    """Return what the launch file starts with these arguments (names of its actions)."""
    from launch.actions import OpaqueFunction
    description, context = launch_description
    context.launch_configurations.update(arguments)
    (opaque,) = [entity for entity in description.entities
                 if isinstance(entity, OpaqueFunction)]
    from launch.actions import LogInfo
    from launch.utilities import perform_substitutions
    return [perform_substitutions(context, action.msg) if isinstance(action, LogInfo)
            else action.node_executable for action in opaque.execute(context)]


def test_missing_rviz2_or_params_file_start_nothing_half_way(launch_description, tmp_path,
                                                             monkeypatch):
    assert _started(launch_description) == ['depth_node']
    # No rviz2 in this prefix: a warning line, and the node alone (launch had stopped with
    # the node already started, left running without it).
    assert _started(launch_description, use_rviz='true') == [RVIZ_MISSING, 'depth_node']
    # With rviz2 in the prefix it starts beside the node.
    (tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rviz2').write_text('')
    (tmp_path / 'share' / 'rviz2').mkdir()
    assert _started(launch_description, use_rviz='true') == ['depth_node', 'rviz2']
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match='params_file my_depth.yaml is not a file'):
        _started(launch_description, params_file='my_depth.yaml', use_rviz='false')


def test_documented_arguments_are_declared_with_descriptions(launch_arguments):
    assert set(launch_arguments) == DOCUMENTED
    for name, (default, description, choices) in launch_arguments.items():
        assert len(description) > 15, name
        if choices is not None:
            assert default in choices, name
    assert launch_arguments['backend'][2] == backend_choices()
    assert Path(launch_arguments['params_file'][0]).resolve() == PARAMS.resolve()
    assert Path(launch_arguments['rviz_config'][0]).resolve() == RVIZ.resolve()


def test_default_topics_are_the_kitti2bag_topics(launch_arguments):
    namespace = launch_arguments['namespace'][0]
    remappings = dict(input_remappings(launch_arguments['left_namespace'][0],
                                       launch_arguments['right_namespace'][0]))
    resolved = {key: f'/{namespace}/{remappings[topic]}' for key, topic in (
        ('left_image', 'left/image_rect'), ('right_image', 'right/image_rect'),
        ('left_info', 'left/camera_info'), ('right_info', 'right/camera_info'))}
    bag = topic_names()
    assert all(bag[key] == topic for key, topic in resolved.items())


# ------------------------------------------------------------------ parameter file, by rcl


def test_parameter_file_reaches_the_node_in_any_namespace():
    rclpy = pytest.importorskip('rclpy')
    (key,) = yaml.safe_load(PARAMS.read_text())
    expected = yaml.safe_load(PARAMS.read_text())[key]['ros__parameters']['backend']
    context = rclpy.context.Context()
    rclpy.init(args=['--ros-args', '--params-file', str(PARAMS)], context=context)
    try:
        found = {}
        for namespace, name in (('/stereo', 'stereo_depth_node'),
                                ('/robot/cam', 'stereo_depth_node'), ('/stereo', 'other_node')):
            node = rclpy.create_node(name, namespace=namespace, context=context,
                                     automatically_declare_parameters_from_overrides=True)
            found[(namespace, name)] = (node.get_parameter('backend').value
                                        if node.has_parameter('backend') else None)
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    assert found[('/stereo', 'stereo_depth_node')] == expected
    assert found[('/robot/cam', 'stereo_depth_node')] == expected
    assert found[('/stereo', 'other_node')] is None


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
                                      '/stereo/depth/image_rect', '/stereo/obstacle/mask'}
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


def test_compressed_transport_moves_only_the_images():
    from stereo_depth_ros.topics import input_subscriptions
    assert input_subscriptions('raw') == [(topic, '', kind)
                                          for topic, kind in INPUT_TOPICS.items()]
    assert input_subscriptions('compressed') == [
        ('left/image_rect', '/compressed', 'CompressedImage'),
        ('right/image_rect', '/compressed', 'CompressedImage'),
        ('left/camera_info', '', 'CameraInfo'), ('right/camera_info', '', 'CameraInfo')]


def test_a_folder_is_no_params_file(tmp_path):
    with pytest.raises(ValueError, match='is not a file'):
        checked_params_file(str(tmp_path))


def test_a_params_file_of_bare_parameters_is_left_to_the_node(tmp_path):
    # ros__parameters at the top, beside a node's section: no file of node names, which the
    # node's own start-up check names; no second line on the other node's key.
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump({'ros__parameters': {'backend': 'sgbm'},
                                    '/other/node': {'ros__parameters': {'x': 1}}}))
    assert unmatched_params_file(str(path), '/rear/stereo_depth_node') == ''
