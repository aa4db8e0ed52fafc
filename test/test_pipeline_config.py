"""One pipeline configuration: the node's parameter file, command-line overrides, the demo."""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stereo_depth_ros.cli import build_parser, main
from stereo_depth_ros.commands.common import pipeline_from_args
from stereo_depth_ros.data.synthetic import EVAL_SEED_OFFSET, make_scene
from stereo_depth_ros.errors import BackendError, DatasetError
from stereo_depth_ros.node_config import (backend_option_parameter, build_backend,
                                          default_values, validate)
from stereo_depth_ros.pipeline_config import (apply_overrides, check_parameters,
                                              configure_pipeline, PipelineManager,
                                              read_params_file, split_backend_options)

ROOT = Path(__file__).resolve().parents[1]
DEPTH_YAML = ROOT / 'config' / 'depth.yaml'

#: A tuned parameter set, nested as in config/depth.yaml.
TUNED = {'backend': 'sgbm', 'sgbm': {'disparity_range': 64, 'correlation_window_size': 7},
         'min_depth': 0.5, 'max_depth': 20.0, 'publish_points': True,
         'obstacle': {'max_range': 12.0, 'roi': [0.1, 0.2, 0.8, 0.7], 'camera_height': 1.2}}
TUNED_FLAT = {'backend': 'sgbm', 'sgbm.disparity_range': 64, 'sgbm.correlation_window_size': 7,
              'min_depth': 0.5, 'max_depth': 20.0, 'publish_points': True,
              'obstacle.max_range': 12.0, 'obstacle.roi': [0.1, 0.2, 0.8, 0.7],
              'obstacle.camera_height': 1.2}


def write_yaml(path, document):
    path.write_text(yaml.safe_dump(document))
    return path


# --------------------------------------------------------------------------- the reader


def test_depth_yaml_reads_as_the_node_defaults():
    # Every parameter, through the offline commands' reader (test_node_config.py checks
    # the file's values themselves).
    assert read_params_file(DEPTH_YAML) == default_values()


@pytest.mark.parametrize('document', [
    {'/**/stereo_depth_node': {'ros__parameters': TUNED}},
    {'stereo_depth_node': {'ros__parameters': TUNED}},
    {'/stereo/stereo_depth_node': {'ros__parameters': TUNED}},
    {'/**': {'ros__parameters': TUNED}},
    {'ros__parameters': TUNED},
    {'ros__parameters': TUNED_FLAT},  # dotted names written flat
    {'/**/stereo_depth_node': {'ros__parameters': {**TUNED_FLAT, 'use_sim_time': True}}},
], ids=['wildcard', 'plain', 'namespaced', 'all-nodes', 'bare', 'flat', 'ros-own'])
def test_params_file_nested_or_flat(tmp_path, document):
    assert read_params_file(write_yaml(tmp_path / 'p.yaml', document)) == TUNED_FLAT


def test_a_ros2_param_dump_file_with_unset_old_names_is_read(tmp_path):
    # `ros2 param dump` writes the old names (aliases) the node declares, unset, as null.
    dumped = {'/stereo/stereo_depth_node': {'ros__parameters': {
        'backend': 'sgbm', 'sgbm': {'correlation_window_size': 7, 'block_size': None,
                                    'p1': None, 'P1': 0}}}}
    values = validate(read_params_file(write_yaml(tmp_path / 'dump.yaml', dumped)))
    assert values['sgbm.correlation_window_size'] == 7 and values['backend'] == 'sgbm'


def test_params_file_ignores_other_nodes(tmp_path):
    path = write_yaml(tmp_path / 'p.yaml', {
        'other_node': {'ros__parameters': {'max_depth': 1.0}},
        '/**/stereo_depth_node': {'ros__parameters': {'max_depth': 9.0}}})
    assert read_params_file(path) == {'max_depth': 9.0}


TWO_CAMERAS = {  # docs/ros.md's two-camera recipe keeps both nodes' settings in one file
    '/**': {'ros__parameters': {'backend': 'sgbm', 'base_frame': 'base_link'}},
    'front': {'stereo_depth_node': {'ros__parameters': {'sgbm': {'disparity_range': 64}}}},
    '/rear/stereo_depth_node': {'ros__parameters': {'sgbm': {'disparity_range': 128}}},
}


def test_params_file_sections_for_two_namespaces_need_the_node_named(tmp_path, caplog):
    """As ROS 2 matches the keys; merged, the rear camera's range had run the front one."""
    path = write_yaml(tmp_path / 'p.yaml', TWO_CAMERAS)
    with pytest.raises(DatasetError, match=r'sections for /front/stereo_depth_node and '
                       r'/rear/stereo_depth_node: say which.*--params-node'):
        read_params_file(path)
    with caplog.at_level('WARNING', logger='stereo_depth_ros.params'):
        assert read_params_file(path, '/front/stereo_depth_node') == {
            'backend': 'sgbm', 'sgbm.disparity_range': 64}
    # Another node's setting under a wildcard is ignored with a word, as the node ignores it.
    assert [record.getMessage() for record in caplog.records] == [
        f'params file {path}: ignoring base_frame under "/**": not parameters of '
        'stereo_depth_node (the node ignores them too)']
    assert read_params_file(path, '/rear/stereo_depth_node')['sgbm.disparity_range'] == 128
    assert read_params_file(path, '/side/stereo_depth_node') == {'backend': 'sgbm'}  # /** only
    with pytest.raises(DatasetError, match=r'no section for /front/other_node \(its node '
                       r'keys: .*front/stereo_depth_node'):
        read_params_file(write_yaml(tmp_path / 'q.yaml', {
            key: body for key, body in TWO_CAMERAS.items() if key != '/**'}),
            '/front/other_node')


@pytest.mark.parametrize('key, node, matched', [
    ('/stereo/*', None, True), ('/stereo/*', '/stereo/stereo_depth_node', True),
    ('/stereo/*', '/front/stereo_depth_node', False), ('/*/stereo_*', None, True),
    ('/a/**', '/a/b/stereo_depth_node', True), ('/a/**', None, True),
    ('/stereo/other', None, False),
])
def test_params_file_keys_match_as_ros2_matches_them(tmp_path, key, node, matched):
    path = write_yaml(tmp_path / 'p.yaml', {
        key: {'ros__parameters': {'max_depth': 9.0}},
        '/**/stereo_depth_node': {'ros__parameters': {'min_depth': 1.0}}})
    expected = {'min_depth': 1.0, **({'max_depth': 9.0} if matched else {})}
    assert read_params_file(path, node) == expected


def test_params_node_picks_the_sections_of_process_bag_and_infer(tmp_path):
    path = write_yaml(tmp_path / 'p.yaml', TWO_CAMERAS)
    args = build_parser().parse_args(['process-bag', 'in', 'out', '--params-file', str(path),
                                      '--params-node', 'front/stereo_depth_node'])
    assert pipeline_from_args(args).values['sgbm.disparity_range'] == 64
    for flags, message in ((['--params-node', '/front/stereo_depth_node'],
                            '--params-node applies to --params-file, which is not given'),
                           (['--params-file', str(path), '--params-node', '/'], 'names no node'),
                           (['--params-file', str(path), '--params-node', '/front//x'],
                            'not a valid ROS 2 namespace')):
        args = build_parser().parse_args(['infer', '--left', 'l.png', '--right', 'r.png',
                                          '--out-dir', 'o', *flags])
        with pytest.raises((BackendError, DatasetError), match=message):
            pipeline_from_args(args)


@pytest.mark.parametrize('text, message', [
    (None, 'does not exist'),
    ('stereo_depth_node: {ros__parameters: {max_depth: [1,}}', 'not valid YAML at line 1'),
    ('other_node:\n  ros__parameters: {max_depth: 1.0}\n', 'no "stereo_depth_node'),
    ('- 1\n- 2\n', 'mapping of node names'),
    ('ros__parameters: 3\n', 'must be a mapping'),
    ('ros__parameters: {sgbm: {disparity_rang: 64}}\n', 'unknown parameter.*sgbm.disparity_rang'),
    ('ros__parameters: {sgbm: {disparity_range: 60}}\n', 'sgbm.disparity_range must be'),
    ('ros__parameters: {max_depth: fast}\n', 'max_depth must be a number'),
    ('ros__parameters: {obstacle: {roi: [0.5, 0.0, 0.8, 1.0]}}\n', 'obstacle roi'),
    ('ros__parameters: {backend: nope}\n', "unknown backend 'nope'"),
    # Typed as the node declares them: ROS 2 refuses these when the node starts.
    ('ros__parameters: {max_depth: 40}\n', r'max_depth is a floating-point parameter; write '
                                           r'40\.0'),
    ('ros__parameters: {obstacle: {roi: [0, 0.2, 1, 0.7]}}\n',
     r'obstacle.roi is a list of floating-point numbers.*\[0\.0, 0\.2, 1\.0, 0\.7\]'),
    ('ros__parameters: {obstacle: {roi: [0, null, 1, 1]}}\n', 'must be a list of numbers'),
    ('ros__parameters: {obstacle: {roi: [0, a, 1, 1]}}\n', 'must be a list of numbers'),
])
def test_params_file_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / 'p.yaml'
    if text is not None:
        path.write_text(text)
    with pytest.raises(DatasetError, match=message) as caught:
        read_params_file(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize('document, warned', [
    ({'/**/stereo_depth_node': {'ros__parameters': TUNED}}, None),
    ({'/stereo/stereo_depth_node': {'ros__parameters': TUNED}}, None),
    ({'stereo_depth_node': {'ros__parameters': TUNED}}, 'only in the root namespace'),
    ({'/stereo_depth_node': {'ros__parameters': TUNED}}, 'only in the root namespace'),
    ({'ros__parameters': TUNED}, 'without a node key'),
])
def test_params_file_keys_the_node_would_not_match_are_read_with_a_warning(
        tmp_path, caplog, document, warned):
    with caplog.at_level('WARNING', logger='stereo_depth_ros.params'):
        assert read_params_file(write_yaml(tmp_path / 'p.yaml', document)) == TUNED_FLAT
    messages = [record.getMessage() for record in caplog.records]
    if warned is None:
        assert not messages
    else:
        assert len(messages) == 1 and warned in messages[0] and '/**/stereo_depth_node' in \
            messages[0]


def test_a_bad_params_file_under_a_bare_key_is_only_its_error(tmp_path, caplog):
    path = write_yaml(tmp_path / 'p.yaml', {'stereo_depth_node': {'ros__parameters': {
        'max_depth': 40}}})
    with caplog.at_level('WARNING', logger='stereo_depth_ros.params'), \
            pytest.raises(DatasetError, match='write 40.0'):
        read_params_file(path)
    assert not caplog.records  # the key's warning would be a second line on stderr


def test_a_bad_params_file_is_one_error_line(tmp_path, capsys):
    path = tmp_path / 'p.yaml'
    path.write_text('ros__parameters: {obstacle: {max_rang: 3.0}}\n')
    assert main(['process-bag', str(tmp_path / 'in'), str(tmp_path / 'out'), '--params-file',
                 str(path)]) == 2
    err = capsys.readouterr().err
    assert 'obstacle.max_rang' in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- overrides


def test_backend_options_map_to_sgbm_or_learned_parameters():
    assert backend_option_parameter('sgbm', 'disparity_range') == 'sgbm.disparity_range'
    assert [backend_option_parameter('dispnet', key) for key in ('scale', 'decode')] == [
        'learned.scale', 'learned.decode']
    # a key without a node parameter stays a raw option for the backend factory
    assert split_backend_options('dispnet_qr', {'scale': 0.5, 'decode': 'soft'}) == (
        {'learned.scale': 0.5}, {'decode': 'soft'})


def test_command_line_flags_beat_the_file():
    file_values = {'backend': 'dispnet', 'weights': '/w/dispnet.safetensors', 'device': 'cpu',
                   'sgbm.disparity_range': 64, 'max_depth': 20.0}
    values, raw = apply_overrides(file_values, backend='sgbm', device='cuda',
                                  options={'disparity_range': 32, 'foo': 1})
    # another backend drops the file's weights (they belong to the file's backend)
    assert values == {'backend': 'sgbm', 'device': 'cuda', 'sgbm.disparity_range': 32,
                      'max_depth': 20.0}
    assert raw == {'foo': 1}
    values, _ = apply_overrides(file_values, precision='fp32', weights='/w/other.safetensors')
    assert values['precision'] == 'fp32' and values['weights'] == '/w/other.safetensors'
    assert values['backend'] == 'dispnet'
    assert apply_overrides(file_values) == (file_values, {})


def test_cli_pipeline_from_a_params_file_with_overrides(tmp_path):
    path = write_yaml(tmp_path / 'p.yaml', {'/**/stereo_depth_node': {'ros__parameters': TUNED}})
    args = build_parser().parse_args(['process-bag', 'in', 'out', '--params-file', str(path),
                                      '--backend-option', 'disparity_range=32'])
    config = pipeline_from_args(args)
    assert config.values['sgbm.disparity_range'] == 32  # the flag beats the file's 64
    assert config.values['sgbm.correlation_window_size'] == 7  # the file beats the default
    assert config.pipeline.backend.max_disparity == 31
    assert config.pipeline.max_depth == 20.0 and config.pipeline.min_depth == 0.5
    assert config.pipeline.obstacle_params.max_range == 12.0
    assert 'points2' in config.topics


def test_process_bag_with_a_params_file_configures_what_the_node_does(tmp_path):
    """The same file gives process-bag and the node the same pipeline settings."""
    document = yaml.safe_load(DEPTH_YAML.read_text())
    parameters = document['/**/stereo_depth_node']['ros__parameters']
    parameters['obstacle']['max_range'] = 15.0
    parameters['obstacle']['min_area'] = 80
    parameters['max_depth'] = 25.0
    parameters['backend'] = 'sgbm'
    parameters['sgbm']['uniqueness_ratio'] = 5
    parameters['publish_color'] = False
    path = write_yaml(tmp_path / 'tuned.yaml', document)
    args = build_parser().parse_args(['process-bag', 'in', 'out', '--params-file', str(path)])
    offline = pipeline_from_args(args)
    node = PipelineManager(read_params_file(path))
    assert offline.values == node.values
    assert offline.topics == node.enabled_topics()
    assert offline.pipeline.obstacle_params == node.pipeline.obstacle_params
    assert offline.pipeline.obstacle_params.max_range == 15.0
    assert (offline.pipeline.min_depth, offline.pipeline.max_depth) == (None, 25.0)
    assert offline.pipeline.backend.params == node.pipeline.backend.params
    assert offline.pipeline.backend.params.uniqueness_ratio == 5


def test_raw_options_reach_the_backend_factory():
    values = configure_pipeline({'backend': 'sgbm'}).values
    with pytest.raises(BackendError, match="unknown sgbm option.*'foo'"):
        build_backend(values, {'foo': 1})
    _, raw = split_backend_options('sgbm', {'foo': 1})
    with pytest.raises(BackendError, match='foo'):
        configure_pipeline(values, raw_options=raw)


# --------------------------------------------------------------------------- entry points


def test_infer_takes_obstacle_and_depth_settings_from_a_params_file(tmp_path, capsys):
    scene = make_scene(EVAL_SEED_OFFSET + 5, height=160, width=320, kind='road')
    cv2.imwrite(str(tmp_path / 'left.png'), scene.left[:, :, ::-1])
    cv2.imwrite(str(tmp_path / 'right.png'), scene.right[:, :, ::-1])
    near = 0.8 * scene.obstacle_distance
    params = write_yaml(tmp_path / 'p.yaml', {'/**/stereo_depth_node': {'ros__parameters': {
        'max_depth': float(near), 'obstacle': {'max_range': float(near)}}}})
    common = ['infer', '--left', str(tmp_path / 'left.png'), '--right',
              str(tmp_path / 'right.png'), '--fx', str(scene.camera.fx), '--baseline',
              str(scene.camera.baseline)]
    assert main(common + ['--out-dir', str(tmp_path / 'default')]) == 0
    found = capsys.readouterr().out
    assert 'nearest obstacle: none' not in found
    assert re.search(r'nearest obstacle: [0-9.]+ m, box x \d+ y \d+ width \d+ height \d+ px',
                     found)
    assert main(common + ['--out-dir', str(tmp_path / 'tuned'), '--params-file',
                          str(params)]) == 0
    assert 'nearest obstacle: none found' in capsys.readouterr().out
    default = np.load(tmp_path / 'default' / 'depth.npy')
    tuned = np.load(tmp_path / 'tuned' / 'depth.npy')
    assert np.nanmax(default) > near and not (tuned[np.isfinite(tuned)] > near).any()
    assert np.isfinite(tuned).sum() < np.isfinite(default).sum()
    assert np.isposinf(tuned).any()  # beyond max_depth: REP 117's "nothing within range"


def test_demo_honours_its_backend_options_in_the_bag_part(tmp_path, capsys):
    """`demo --backend-option disparity_range=32` used to process its bag with range 128."""
    code = main(['demo', '--out-dir', str(tmp_path), '--frames', '2', '--road-scenes', '1',
                 '--no-compare', '--backend', 'sgbm', '--backend-option', 'disparity_range=32'])
    assert code == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['backend'] == 'sgbm (disparity 0..31 px)'
    assert summary['bag_demo']['backend'] == summary['backend']


def test_params_file_old_sgbm_names_read_as_stereo_image_proc_names(tmp_path):
    document = {'/**/stereo_depth_node': {'ros__parameters': {
        'backend': 'sgbm',
        'sgbm': {'block_size': 9, 'p1': 200, 'p2': 800, 'speckle_window_size': 50}}}}
    values = read_params_file(write_yaml(tmp_path / 'old.yaml', document))
    assert values == {'backend': 'sgbm', 'sgbm.correlation_window_size': 9, 'sgbm.P1': 200,
                      'sgbm.P2': 800, 'sgbm.speckle_size': 50}
    assert configure_pipeline(values).pipeline.backend.params.P2 == 800


@pytest.mark.parametrize('values, words', [
    ({'min_depth': 50.0}, "min_depth (50 m) is not below the obstacle search's max_range "
                          '(40 m; node parameter obstacle.max_range'),
    ({'max_depth': 0.2}, "max_depth (0.2 m) is not above the obstacle search's min_range "
                         '(0.3 m; node parameter obstacle.min_range'),
])
def test_a_depth_range_the_obstacle_search_cannot_see_into_is_refused(values, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        check_parameters({**default_values(), **values})


def test_star_is_one_token_and_double_star_may_be_none(tmp_path):
    from stereo_depth_ros.pipeline_config import read_params_file
    from stereo_depth_ros.launch_support import unmatched_params_file
    path = write_yaml(tmp_path / 'p.yaml', {
        '/stereo/*': {'ros__parameters': {'max_depth': 9.0}},
        '/**/stereo_depth_node': {'ros__parameters': {'min_depth': 1.0}}})
    assert read_params_file(path, '/stereo/left/stereo_depth_node') == {'min_depth': 1.0}
    assert read_params_file(path, '/stereo_depth_node') == {'min_depth': 1.0}
    only = write_yaml(tmp_path / 'q.yaml', {'/stereo/*': {'ros__parameters': {'max_depth': 9.0}}})
    assert unmatched_params_file(str(only), '/stereo/left/stereo_depth_node') != ''


def test_naming_the_file_s_own_backend_keeps_the_file_s_weights():
    """``--backend dispnet`` over a file for dispnet must not fall back to the shipped file."""
    file_values = {'backend': 'dispnet', 'weights': '/w/mine.safetensors'}
    values, raw = apply_overrides(file_values, backend='dispnet', device='cpu')
    assert values == {**file_values, 'device': 'cpu'} and raw == {}


def test_check_views_reaches_the_pipeline_and_follows_a_change():
    configured = configure_pipeline({'backend': 'sgbm', 'check_views': False})
    assert configured.pipeline.check_views is False
    manager = PipelineManager({'backend': 'sgbm'})
    assert manager.pipeline.check_views is True
    manager.apply({'check_views': False})
    assert manager.pipeline.check_views is False


def test_params_file_qos_overrides_are_ros_s_own_and_ignored(tmp_path):
    """``ros2 param dump`` writes qos_overrides.<topic>.publisher.* too; ROS reads them."""
    qos = {'/stereo/depth/image_rect': {'publisher': {'depth': 3, 'reliability': 'reliable'}}}
    document = {'/**/stereo_depth_node': {'ros__parameters': {**TUNED, 'qos_overrides': qos}}}
    assert read_params_file(write_yaml(tmp_path / 'p.yaml', document)) == TUNED_FLAT
