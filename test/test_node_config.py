"""Node parameters: definitions, validation, config/depth.yaml, live reconfiguration."""

import threading
from dataclasses import asdict, fields
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from stereo_depth_ros import node_config
from stereo_depth_ros.backends.sgbm import SGBMBackend, SGBMOptions
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.backends import backend_record
from stereo_depth_ros.backends.options import LearnedOptions
from stereo_depth_ros.node_config import (apply_old_names, PARAMETERS, SPECS, backend_options,
                                          build_backend, check_value, default_values,
                                          validate)
from stereo_depth_ros.obstacle import ObstacleParameters
from stereo_depth_ros.pipeline_config import check_parameters, obstacle_parameters, \
    PipelineManager
from stereo_depth_ros.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
YAML_PATH = ROOT / 'config' / 'depth.yaml'


def _flatten(tree: dict, prefix: str = '') -> dict:
    """ROS 2 parameter-file nesting -> dotted names, as rcl reads it."""
    flat = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def _yaml_parameters() -> dict:
    document = yaml.safe_load(YAML_PATH.read_text())
    # rclpy matches the key as a pattern against the node's full name (/stereo/...): a bare
    # node name would only match in the root namespace.
    assert list(document) == ['/**/stereo_depth_node']
    return _flatten(document['/**/stereo_depth_node']['ros__parameters'])


def _tiny_weights(tmp_path: Path, name: str) -> Path:
    torch.manual_seed(0)
    model = backend_record(name).network(width=0.125, max_disparity=64).eval()
    return save_weights(model, tmp_path / f'{name}.safetensors', name)


# ------------------------------------------------------------------ definitions


def test_every_parameter_is_described_and_its_default_valid():
    assert len(SPECS) == len(PARAMETERS)  # no duplicate names
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        assert spec.kind in (bool, int, float, str, list), spec.name
        assert check_value(spec.name, spec.default) == spec.default
    assert validate({}) == default_values()


def test_sgbm_from_the_node_s_defaults_matches_the_library_s():
    # The node, process-bag and the CLI must give the same disparity out of the box as
    # create_backend('sgbm') does: the node's values, through its whole path, make that sgbm.
    from stereo_depth_ros.backends import create_backend
    from stereo_depth_ros.data.synthetic import EVAL_SEED_OFFSET, make_scene
    scene = make_scene(EVAL_SEED_OFFSET + 3, height=96, width=192, max_disparity=40)
    node = build_backend({**default_values(), 'backend': 'sgbm'})
    np.testing.assert_array_equal(node.compute(scene.left, scene.right),
                                  create_backend('sgbm').compute(scene.left, scene.right))
    assert node.describe() == create_backend('sgbm').describe()


def test_obstacle_parameters_map_to_the_dataclass_with_its_defaults():
    assert obstacle_parameters(default_values()) == ObstacleParameters()
    values = dict(default_values(), **{'obstacle.roi': [0.1, 0.5, 0.8, 0.5],
                                       'obstacle.max_clearance': 0.0,
                                       'obstacle.camera_height': 1.65,
                                       'obstacle.min_area': 12})
    params = obstacle_parameters(values)
    assert params.roi == (0.1, 0.5, 0.8, 0.5)
    assert params.max_clearance is None  # 0 stands for "no limit"
    assert params.camera_height == 1.65
    assert params.min_area == 12


def test_constraints_text_names_choices_ranges_and_steps():
    assert 'sgbm_3way' in SPECS['sgbm.mode'].constraints
    assert SPECS['sgbm.disparity_range'].constraints == '16 .. 1024; in steps of 16'
    assert 'start-up' in SPECS['queue_size'].constraints


# ------------------------------------------------------------------ single values


@pytest.mark.parametrize('name, value, message', [
    ('sgbm.disparity_range', 100, 'multiple of 16'),
    ('sgbm.block_size', 4, 'must be odd'),
    ('sgbm.block_size', 53, 'within 1 .. 51'),
    ('queue_size', 0, 'within'),
    ('queue_size', True, 'integer'),
    ('max_depth', '80', 'number'),
    ('max_depth', float('nan'), 'finite number'),
    ('approximate_sync', 1, 'true or false'),
    ('precision', 'fp64', 'one of'),
    ('obstacle.roi', 'all', 'list of numbers'),
    ('nonexistent', 1, 'unknown parameter'),
])
def test_check_value_rejects_with_the_parameter_named(name, value, message):
    with pytest.raises(ValueError, match=message) as error:
        check_value(name, value)
    assert name in str(error.value)


def test_check_value_normalises_numbers():
    assert check_value('max_depth', 80) == 80.0
    assert isinstance(check_value('max_depth', 80), float)
    assert check_value('obstacle.roi', (0, 0, 1, 1)) == [0.0, 0.0, 1.0, 1.0]
    assert check_value('sgbm.block_size', 7) == 7


# ------------------------------------------------------------------ combinations


@pytest.mark.parametrize('changes, error, message', [
    ({'backend': 'nope'}, BackendError, "unknown backend 'nope'; known backends: .*sgbm"),
    ({'device': 'gpu'}, ValueError, 'device must be'),
    ({'backend': 'sgbm', 'weights': '/x/dispnet.safetensors'}, BackendError, 'takes no weights'),
    ({'min_depth': 5.0, 'max_depth': 2.0}, ValueError, 'min_depth'),
    ({'sgbm.p1': 100, 'sgbm.p2': 50}, BackendError, r'P2 > P1'),
    # P2 automatic: 32 x 7^2 = 1568, below P1 (OpenCV raised it to 2001 without a word)
    ({'sgbm.p1': 2000, 'sgbm.correlation_window_size': 7}, BackendError,
     r'P2 > P1, got P1=2000 P2=1568 \(0: 8 or 32 x correlation_window_size\^2\)'),
    ({'approximate_sync': True, 'approximate_sync_tolerance_seconds': 0.0}, ValueError,
     'tolerance'),
    ({'obstacle.roi': [0.5, 0.0, 0.8, 1.0]}, ValueError, 'obstacle roi'),
    ({'obstacle.min_range': 50.0}, ValueError, 'min_range < max_range'),
    ({'mono16_bit_depth': 4}, ValueError, 'mono16_bit_depth'),
    ({'foo': 1}, ValueError, 'unknown parameter'),
])
def test_validate_rejects_inconsistent_settings(changes, error, message):
    with pytest.raises(error, match=message):
        check_parameters(changes)


def test_depth_limit_zero_means_none():
    manager = PipelineManager({'min_depth': 0.0, 'max_depth': 30.0})
    assert manager.pipeline.min_depth is None
    assert manager.pipeline.max_depth == 30.0


def test_backend_options_per_backend():
    values = validate({'backend': 'sgbm', 'sgbm.block_size': 7, 'precision': 'bf16'})
    options = backend_options(values)
    assert options['correlation_window_size'] == 7 and 'precision' not in options
    assert set(options) == {f.name for f in fields(SGBMOptions)}
    learned = validate({'backend': 'dispnet', 'precision': 'bf16',
                        'learned.max_disparity': 96.0, 'learned.num_threads': 1})
    assert backend_options(learned) == {**asdict(LearnedOptions()), 'precision': 'bf16',
                                        'max_disparity': 96.0, 'num_threads': 1}


def test_sgbm_parameters_take_stereo_image_proc_names_and_the_old_ones():
    names = {spec.name for spec in PARAMETERS}
    assert {'sgbm.correlation_window_size', 'sgbm.P1', 'sgbm.P2', 'sgbm.prefilter_cap',
            'sgbm.speckle_size'} <= names
    old = validate({'backend': 'sgbm', 'sgbm.block_size': 9, 'sgbm.p1': 100, 'sgbm.p2': 400,
                    'sgbm.pre_filter_cap': 20, 'sgbm.speckle_window_size': 50})
    new = validate({'backend': 'sgbm', 'sgbm.correlation_window_size': 9, 'sgbm.P1': 100,
                    'sgbm.P2': 400, 'sgbm.prefilter_cap': 20, 'sgbm.speckle_size': 50})
    assert old == new
    params = build_backend(new).params
    assert (params.correlation_window_size, params.P1, params.P2) == (9, 100, 400)
    with pytest.raises(ValueError, match='name one parameter'):
        validate({'sgbm.block_size': 9, 'sgbm.correlation_window_size': 7})
    with pytest.raises(ValueError, match='sgbm.block_size must be'):
        validate({'sgbm.block_size': 4})


def test_enabled_topics_follow_the_switches():
    manager = PipelineManager({'backend': 'sgbm'})  # any backend: sgbm loads fastest
    assert manager.enabled_topics() == {'disparity', 'depth/image_rect', 'depth/camera_info',
                                        'obstacle/mask', 'obstacle/range', 'disparity/color'}
    manager.apply({'publish_points': True, 'publish_obstacle': False})
    assert manager.enabled_topics() == {'disparity', 'depth/image_rect', 'depth/camera_info',
                                        'disparity/color', 'points2'}
    manager.apply({'publish_depth': False})
    assert manager.enabled_topics() == {'disparity', 'disparity/color', 'points2'}


def test_typed_values_of_the_manager():
    manager = PipelineManager({'queue_size': 7, 'max_megapixels': 2})
    assert manager.integer('queue_size') == 7 and manager.number('max_megapixels') == 2.0
    assert manager.number('queue_size') == 7  # an integer is a number too
    with pytest.raises(TypeError, match='backend is not a number'):
        manager.number('backend')
    with pytest.raises(TypeError, match='max_megapixels is not an integer'):
        manager.integer('max_megapixels')
    with pytest.raises(TypeError, match='approximate_sync is not an integer'):
        manager.integer('approximate_sync')  # bools are not numbers here


# ------------------------------------------------------------------ config/depth.yaml


def test_depth_yaml_declares_exactly_the_node_parameters_with_their_types():
    values = _yaml_parameters()
    assert set(values) == set(SPECS)
    for name, value in values.items():
        kind = SPECS[name].kind
        # rclpy refuses an int for a double parameter: floats must be written as floats.
        assert type(value) is kind, f'{name}: {value!r} is not a {kind.__name__}'
        if kind is list:
            assert all(type(v) is float for v in value), name


def test_depth_yaml_documents_the_defaults():
    # Fails when a default changes (e.g. in ObstacleParameters) and depth.yaml was not updated.
    assert validate(_yaml_parameters()) == default_values()


def test_every_parameter_is_in_the_ros_documentation():
    text = (ROOT / 'docs' / 'ros.md').read_text()
    missing = [name for name in SPECS if f'`{name}`' not in text]
    assert not missing


# ------------------------------------------------------------------ live reconfiguration


def test_depth_change_keeps_the_backend_and_swaps_the_pipeline():
    manager = PipelineManager({'backend': 'sgbm'})  # any backend: sgbm loads fastest
    before = manager.pipeline
    notes = manager.apply({'max_depth': 25.0})
    assert manager.pipeline is not before
    assert manager.pipeline.backend is before.backend  # no model reload
    assert manager.pipeline.max_depth == 25.0
    assert notes == ['parameters set: max_depth=25.0']


def test_sgbm_change_rebuilds_the_backend():
    manager = PipelineManager({'backend': 'sgbm'})
    old_backend = manager.pipeline.backend
    notes = manager.apply({'sgbm.disparity_range': 64})
    backend = manager.pipeline.backend
    assert isinstance(backend, SGBMBackend) and backend is not old_backend
    assert backend.max_disparity == 63.0
    assert any(note.startswith('loaded backend sgbm') for note in notes)


def test_rejected_changes_leave_everything_as_it_was(tmp_path):
    manager = PipelineManager({'backend': 'sgbm'})  # any backend: sgbm loads fastest
    pipeline, values = manager.pipeline, manager.values
    attempts = [
        ({'backend': 'nope'}, BackendError, 'unknown backend'),
        ({'backend': 'dispnet', 'weights': str(tmp_path / 'missing.safetensors')},
         BackendError, 'does not exist'),
        ({'queue_size': 10}, ValueError, 'start-up only'),
        ({'sgbm.block_size': 4}, ValueError, 'must be odd'),
    ]
    for changes, error, message in attempts:
        with pytest.raises(error, match=message):
            manager.apply(changes)
        assert manager.pipeline is pipeline
        assert manager.values == values


def test_weights_of_another_backend_are_rejected_and_the_old_model_keeps_running(tmp_path):
    weights = _tiny_weights(tmp_path, 'dispnet')
    manager = PipelineManager({'backend': 'dispnet', 'weights': str(weights),
                               'device': 'cpu', 'learned.num_threads': 1})
    running = manager.pipeline.backend
    assert running.name == 'dispnet'
    with pytest.raises(BackendError, match='dispnet'):
        manager.apply({'backend': 'dispnetc'})  # the dispnet file does not fit dispnetc
    assert manager.pipeline.backend is running
    assert manager.value('backend') == 'dispnet'
    # Switching to sgbm needs the weights cleared first (one parameter at a time).
    with pytest.raises(BackendError, match="set weights to '' first"):
        manager.apply({'backend': 'sgbm'})
    notes = manager.apply({'backend': 'sgbm', 'weights': ''})
    assert manager.pipeline.backend.name == 'sgbm' and notes[1].startswith('loaded backend sgbm')
    # device and learned.num_threads, set for dispnet, now lie unused: named once, with
    # run-time advice.
    assert notes[2] == ('backend sgbm ignores device, learned.num_threads (settings of other '
                        'backends); they apply when backend is set to theirs')


def test_device_under_sgbm_is_only_recorded_as_precision_is():
    # sgbm runs in OpenCV on the CPU: a device change rebuilt it and was not named ignored.
    manager = PipelineManager({'backend': 'sgbm'})
    running = manager.pipeline.backend
    for name, value in (('device', 'cpu'), ('precision', 'fp32')):
        notes = manager.apply({name: value})
        assert manager.pipeline.backend is running and manager.value(name) == value
        assert not any(note.startswith('loaded backend') for note in notes)
        assert any(f'backend sgbm ignores {name} ' in note for note in notes)


def test_unrelated_and_unchanged_parameters_are_accepted():
    manager = PipelineManager({'backend': 'sgbm'})  # any backend: sgbm loads fastest
    pipeline = manager.pipeline
    assert manager.apply({'qos_overrides./stereo/depth/image_rect.publisher.depth': 3,
                          'use_sim_time': True}) == []
    assert manager.pipeline is pipeline
    # A parameter "set" to its current value (a read-only one too, or the node mirroring an
    # alias onto its own name) is no change: nothing logged, nothing rebuilt.
    assert manager.apply({'queue_size': 5}) == [] and manager.pipeline is pipeline
    assert manager.apply({'sgbm.correlation_window_size': 5}) == []
    assert manager.apply({'sgbm.block_size': 7})[0] == 'parameters set: ' \
        'sgbm.correlation_window_size=7'  # and the reload of sgbm
    assert manager.apply({'sgbm.correlation_window_size': 7}) == []


def test_a_change_giving_a_parameter_and_its_old_name_two_values_is_refused():
    """As at start-up (docs/ros.md): e.g. one set_parameters_atomically call with both names."""
    manager = PipelineManager({'backend': 'sgbm'})  # any backend: sgbm loads fastest
    pipeline = manager.pipeline
    with pytest.raises(ValueError, match=r'sgbm.block_size \(7\) and '
                       r'sgbm.correlation_window_size \(9\) name one parameter; give one \(a '
                       r'`ros2 param dump` file holds both: edit sgbm.correlation_window_size'):
        manager.apply({'sgbm.block_size': 7, 'sgbm.correlation_window_size': 9})
    assert manager.pipeline is pipeline and manager.value('sgbm.correlation_window_size') == 5
    assert manager.apply({'sgbm.block_size': 7, 'sgbm.correlation_window_size': 7})[0] == \
        'parameters set: sgbm.correlation_window_size=7'  # one value under both: fine


def test_a_rebuilt_pipeline_keeps_the_streams_colour_scale():
    # A parameter change builds a new pipeline; the colours of the stream keep their scale
    # (a scene of 0-40 px stays painted up to 64 px, not restarted from the next frame).
    manager = PipelineManager({'backend': 'sgbm'})
    old = manager.pipeline
    assert old.colour_scale.top(np.full((8, 8), 40.0, np.float32), 128.0) == 64.0
    manager.apply({'obstacle.max_range': 20.0})
    assert manager.pipeline is not old and manager.pipeline.colour_scale is old.colour_scale
    manager.apply({'sgbm.disparity_range': 96})  # a new backend too
    assert manager.pipeline.colour_scale is old.colour_scale
    # Kept while the frame still needs at least 0.4 of it: 30 px stays at 64, not 32.
    assert manager.pipeline.colour_scale.top(np.full((8, 8), 30.0, np.float32), 96.0) == 64.0


def test_factory_failure_keeps_the_running_pipeline():
    calls = []

    def factory(values):
        calls.append(values['sgbm.correlation_window_size'])
        if values['sgbm.correlation_window_size'] == 9:
            raise RuntimeError('CUDA out of memory')
        return node_config.build_backend(values)

    manager = PipelineManager({'backend': 'sgbm'}, backend_factory=factory)
    pipeline = manager.pipeline
    with pytest.raises(RuntimeError, match='out of memory'):
        manager.apply({'sgbm.block_size': 9})
    assert manager.pipeline is pipeline and manager.value('sgbm.correlation_window_size') == 5
    assert calls == [5, 9]


def test_concurrent_readers_always_see_a_whole_pipeline():
    manager = PipelineManager({'backend': 'sgbm'})
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            pipeline = manager.pipeline
            seen.append((pipeline.max_depth, pipeline.backend.max_disparity))

    thread = threading.Thread(target=reader)
    thread.start()
    for depth in (10.0, 20.0, 30.0):
        manager.apply({'max_depth': depth, 'sgbm.disparity_range': 16 * int(depth // 10)})
    stop.set()
    thread.join()
    allowed = {(None, 127.0), (10.0, 15.0), (20.0, 31.0), (30.0, 47.0)}
    assert seen and set(seen) <= allowed
    assert (manager.pipeline.max_depth, manager.pipeline.backend.max_disparity) == (30.0, 47.0)


def test_settings_of_another_backend_are_named_and_do_not_rebuild_the_model():
    """An sgbm-tuned parameter file without a backend line runs the learned default."""
    values = node_config.validate({'sgbm.disparity_range': 48, 'sgbm.min_disparity': 16})
    assert values['backend'] == node_config.DEFAULT_BACKEND != 'sgbm'
    warning = node_config.ignored_settings(values)
    assert warning is not None and warning.startswith(f'backend {values["backend"]} ignores '
                                                      'sgbm.disparity_range, sgbm.min_disparity')
    assert node_config.ignored_settings(node_config.validate({})) is None
    sgbm = node_config.validate({'backend': 'sgbm', 'learned.refine_radius': 8.0,
                                 'sgbm.disparity_range': 48})
    assert 'ignores learned.refine_radius ' in node_config.ignored_settings(sgbm)
    assert 'sgbm.disparity_range' not in node_config.ignored_settings(sgbm)
    assert node_config.backend_key(values) == node_config.backend_key(
        node_config.validate({}))  # sgbm.* is not part of a learned backend's model

    built = []

    def factory(values):
        built.append(values['backend'])
        return node_config.build_backend({**values, 'backend': 'sgbm'})

    manager = PipelineManager({}, backend_factory=factory)
    notes = manager.apply({'sgbm.block_size': 9})
    assert built == [node_config.DEFAULT_BACKEND]  # not rebuilt for a setting it ignores
    assert notes[0] == 'parameters set: sgbm.correlation_window_size=9'
    assert notes[1] == (f'backend {node_config.DEFAULT_BACKEND} ignores '
                        'sgbm.correlation_window_size (settings of other backends); they apply '
                        'when backend is set to theirs')
    assert manager.apply({'max_depth': 20.0}) == ['parameters set: max_depth=20.0']
    assert manager.ignored_settings().startswith(f'backend {node_config.DEFAULT_BACKEND} '
                                                 'ignores sgbm.correlation_window_size')
    # Tuned for sgbm at start-up, then switched: the tuning that now lies unused is named.
    tuned = PipelineManager({'backend': 'sgbm', 'sgbm.disparity_range': 48})
    assert tuned.apply({'backend': node_config.DEFAULT_BACKEND})[-1] == (
        f'backend {node_config.DEFAULT_BACKEND} ignores sgbm.disparity_range (settings of '
        'other backends); they apply when backend is set to theirs')
    # Switching to another backend that ignores them too does not repeat it.
    assert not any('ignores' in note for note in manager.apply({'backend': 'costnet'}))
    # Set back to its default, an ignored setting is not named; values are compared as the
    # parameter reads them (an int for a double, a tuple for a list).
    assert manager.apply({'sgbm.correlation_window_size': 5}) == [
        'parameters set: sgbm.correlation_window_size=5']
    assert manager.apply({'max_depth': 20}) == []
    assert manager.apply({'obstacle.roi': (0.0, 0.0, 1.0, 1.0)}) == []
    with pytest.raises(ValueError, match='obstacle.roi'):
        manager.apply({'obstacle.roi': [False, False, True, True]})


def test_a_command_names_the_settings_its_backend_ignores(tmp_path, capsys, caplog):
    from stereo_depth_ros.cli import build_parser
    from stereo_depth_ros.commands.common import pipeline_from_args
    params = tmp_path / 'sgbm_tuned.yaml'
    params.write_text(yaml.safe_dump({'/**/stereo_depth_node': {'ros__parameters': {
        'sgbm': {'disparity_range': 48}}}}))
    args = build_parser().parse_args(['process-bag', 'in', 'out', '--params-file', str(params),
                                      '--backend', 'sgbm'])
    with caplog.at_level('WARNING'):
        assert pipeline_from_args(args).values['backend'] == 'sgbm'
    assert not caplog.records
    args = build_parser().parse_args(['process-bag', 'in', 'out', '--params-file', str(params)])
    with caplog.at_level('WARNING'):
        pipeline_from_args(args)
    assert [record.getMessage() for record in caplog.records] == [
        f'backend {node_config.DEFAULT_BACKEND} ignores sgbm.disparity_range (settings of '
        'other backends); set backend to the one they are for, or leave them out']


def test_old_names_set_the_new_ones_and_a_clash_is_refused():
    values = default_values()
    old = {'sgbm.block_size': 7, 'sgbm.p2': None}
    merged = apply_old_names(values, old, given={'sgbm.block_size': 7})
    assert merged['sgbm.correlation_window_size'] == 7 and merged['sgbm.P2'] == values['sgbm.P2']
    assert values['sgbm.correlation_window_size'] == 5  # not changed in place
    # The same value under both names is no clash; different ones are.
    assert apply_old_names(values, old, {'sgbm.correlation_window_size': 7})[
        'sgbm.correlation_window_size'] == 7
    with pytest.raises(ValueError, match=r'sgbm.block_size \(the old name, 7\) and '
                                         r'sgbm.correlation_window_size \(9\) are both given: '
                                         r'name one \(a `ros2 param dump` file holds both: '
                                         r'edit sgbm.correlation_window_size and delete '
                                         r'sgbm.block_size\)'):
        apply_old_names(values, old, {'sgbm.correlation_window_size': 9})
    # A file written by `ros2 param dump` holds the unset old names as null, which rcl reads
    # as 'null' ('None' through `ros2 param load`): not given, so no clash.
    dumped = {'sgbm.block_size': 'null', 'sgbm.p2': 'None', 'sgbm.p1': '~'}
    given = {'sgbm.correlation_window_size': 9, 'sgbm.block_size': 'null'}
    assert apply_old_names(values, dumped, given) == values


def test_the_parameters_read_at_start_up_only_are_refused_at_run_time():
    """The subscription and points2 layout settings are fixed once the node runs."""
    assert {spec.name for spec in PARAMETERS if spec.read_only} == {
        'points_organized', 'queue_size', 'approximate_sync',
        'approximate_sync_tolerance_seconds', 'image_transport', 'use_system_default_qos',
        'mono16_bit_depth', 'max_megapixels', 'stats_period'}
    manager = PipelineManager({'backend': 'sgbm'})  # any backend: sgbm loads fastest
    pipeline = manager.pipeline
    with pytest.raises(ValueError, match='points_organized is read at start-up only'):
        manager.apply({'points_organized': True})
    assert manager.pipeline is pipeline and manager.value('points_organized') is False


@pytest.mark.parametrize('bits, good', [(7, False), (8, True), (16, True), (0, True)])
def test_mono16_bit_depth_is_0_or_8_to_16(bits, good):
    if good:
        assert validate({'mono16_bit_depth': bits})['mono16_bit_depth'] == bits
    else:
        with pytest.raises(ValueError, match='mono16_bit_depth must be 0 or 8..16, got 7'):
            validate({'mono16_bit_depth': bits})


@pytest.mark.parametrize('near_from, good', [(0.04, False), (0.05, True), (0.0, True)])
def test_learned_near_from_is_0_or_at_least_its_smallest_value(near_from, good):
    """The smallest non-zero near_from (0.05) itself is allowed."""
    if good:
        assert validate({'learned.near_from': near_from})['learned.near_from'] == near_from
    else:
        with pytest.raises(BackendError, match='near_from must be 0 .* or at least 0.05'):
            validate({'learned.near_from': near_from})


def test_learned_refine_radius_between_minus_1_and_0_is_refused():
    with pytest.raises(BackendError, match=r"refine_radius must be -1 \(the network's own\)"):
        validate({'learned.refine_radius': -0.5})
    assert validate({'learned.refine_radius': -1.0})['learned.refine_radius'] == -1.0


def test_sgbm_p2_equal_to_p1_is_refused():
    """OpenCV would raise P2 to P1 + 1 without a word."""
    with pytest.raises(BackendError, match='P2 > P1, got P1=100 P2=100'):
        validate({'backend': 'sgbm', 'sgbm.P1': 100, 'sgbm.P2': 100})
    validate({'backend': 'sgbm', 'sgbm.P1': 100, 'sgbm.P2': 101})


def test_every_sgbm_parameter_reaches_the_opencv_matcher():
    values = validate({'backend': 'sgbm', 'sgbm.min_disparity': 2,
                       'sgbm.correlation_window_size': 7, 'sgbm.P1': 300, 'sgbm.P2': 1200,
                       'sgbm.disp12_max_diff': 3, 'sgbm.prefilter_cap': 40,
                       'sgbm.uniqueness_ratio': 12, 'sgbm.speckle_size': 0,
                       'sgbm.speckle_range': 4, 'sgbm.mode': 'hh'})
    matcher = build_backend(values)._matcher(64)
    assert (matcher.getMinDisparity(), matcher.getNumDisparities(), matcher.getBlockSize(),
            matcher.getP1(), matcher.getP2(), matcher.getDisp12MaxDiff(),
            matcher.getPreFilterCap(), matcher.getUniquenessRatio(),
            matcher.getSpeckleWindowSize(), matcher.getSpeckleRange(),
            matcher.getMode()) == (2, 64, 7, 300, 1200, 3, 40, 12, 0, 4, cv2.STEREO_SGBM_MODE_HH)
    assert SGBMOptions().penalties() == (200, 800)  # 0: 8 and 32 x 5^2


def test_learned_near_pass_at_exactly_the_smallest_pass_scale_is_allowed():
    """scale 0.2 x near_scale 0.25 = 0.05, the smallest scale a pass may run at."""
    assert validate({'learned.scale': 0.2, 'learned.near_scale': 0.25})['learned.scale'] == 0.2
    with pytest.raises(BackendError, match=r'scale x near_scale\^1 must be at least 0.05'):
        validate({'learned.scale': 0.19, 'learned.near_scale': 0.25})


def test_learned_scale_below_the_smallest_pass_scale_is_refused_even_in_one_pass():
    with pytest.raises(ValueError, match=r'learned.scale must be within 0.05 .. 1'):
        validate({'learned.scale': 0.0, 'learned.near_scale': 0.0})


def test_sgbm_keeps_a_disparity_of_exactly_min_disparity():
    """A zero disparity (a surface at infinity) is a value, not OpenCV's invalid mark."""
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (48, 96), dtype=np.uint8)
    disparity = SGBMBackend(SGBMOptions(disparity_range=16)).compute(left, left.copy())
    assert np.isfinite(disparity).mean() > 0.5 and np.nanmedian(disparity) == 0.0
