"""Tests of the learned backends, the weights files and the backends/bench commands."""

import argparse
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from stereo_depth_ros.backends import (backend_names, backend_record, create_backend,
                                       learned_backend_names)
from stereo_depth_ros.backends import record as record_module
from stereo_depth_ros.commands import backends as backends_command
from stereo_depth_ros.commands import bench
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.networks.common import StereoNet, normalize_image, pad_to_divisor
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.data.synthetic import EVAL_SEED_OFFSET, make_scene
from stereo_depth_ros.networks.inference import (blend_near_pass, images_to_tensor,
                                                 near_pass_scales, predict_with_near_pass,
                                                 shrink_images)
from stereo_depth_ros.weights import (FORMAT_VERSION, check_export_path, keep_previous_export,
                                      load_model, load_state, read_metadata, save_weights,
                                      widened)
from tiny_architectures import TINY

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
#: Backend keyword arguments of tests of the network's own output: on the CPU, without the
#: refinement by matching that some networks' defaults add (option ``refine_radius``).
NETWORK_ALONE = {'device': 'cpu', 'refine_radius': 0.0}


def _final_bias(model: torch.nn.Module, name: str) -> torch.Tensor:
    """Bias of the layer producing the full-resolution output (finest disparity head)."""
    if name == 'dispnet_qr':
        return model.regressor.bias
    if name == 'squeezeseg':
        return model.heads[-1].bias
    return model.decoder.heads[-1].bias


def make_model(name: str, offset: float = 0.0, seed: int = 0) -> torch.nn.Module:
    """A random tiny network; ``offset`` is added to its finest output (in that scale's px)."""
    torch.manual_seed(seed)
    model = backend_record(name).network(**TINY[name]).eval()
    with torch.no_grad():
        if name == 'dispnet_qr':
            # Residuals small: decoding = the trunk's estimate, lifted by ``offset``.
            model.regressor.weight.mul_(0.01)
            model.regressor.bias.zero_()
            model.trunk.decoder.heads[-1].bias.add_(offset)
        elif isinstance(model, CostNet):
            # Soft-argmin output: make the level nearest ``offset`` (full-res px) win.
            level = min(max(int(round(offset / 4)), 0), model.levels - 1)
            model.logits.bias[level] += 50.0
        else:
            _final_bias(model, name).add_(offset)
    return model


def save_tiny(tmp_path: Path, name: str, offset: float = 15.0, **kw: object) -> Path:
    """Save a random tiny network whose predictions are positive and below max_disparity."""
    return save_weights(make_model(name, offset), tmp_path / f'{name}.safetensors', name, **kw)


def _images(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    right = np.roll(left, -4, axis=1)
    return left, right


def test_registry_lists_learned_backends() -> None:
    names = backend_names()
    learned = learned_backend_names()
    assert learned == [name for name in names if name != 'sgbm']
    for name in learned:
        record = backend_record(name)
        assert record.needs_weights and issubclass(record.network, StereoNet)
        assert record.default_weights() == ROOT / 'models' / f'{name}.safetensors'
    assert not backend_record('sgbm').needs_weights


@pytest.mark.parametrize('name', learned_backend_names())
def test_backend_runs_on_odd_sizes(tmp_path: Path, name: str) -> None:
    backend = create_backend(name, weights=save_tiny(tmp_path, name), device='cpu')
    # Near passes at 1/2 and 1/4 scale: the network's 64 px become 256 (at least 192 px).
    assert backend.max_disparity == 256 and backend.min_disparity == 0
    left, right = _images(123, 251)
    disparity = backend.compute(left, right)
    assert disparity.shape == (123, 251) and disparity.dtype == np.float32
    assert np.isfinite(disparity).all()  # in range: the backend makes the rest NaN
    grey = backend.compute(left[..., 0].copy(), right[..., 0].copy())
    assert grey.shape == (123, 251) and np.isfinite(grey).all()


@pytest.mark.parametrize('name', learned_backend_names())
def test_odd_size_output_is_the_top_left_crop_of_the_padded_prediction(
        tmp_path: Path, name: str) -> None:
    path = save_tiny(tmp_path, name)
    backend = create_backend(name, weights=path, **NETWORK_ALONE, precision='fp32', fuse=False,
                             near_scale=0)
    model, _ = load_model(path, name)
    height, width = 123, 251
    left, right = _images(height, width, seed=4)
    tensors = [normalize_image(torch.from_numpy(image.transpose(2, 0, 1).copy())[None])
               for image in (left, right)]
    padded = [pad_to_divisor(tensor, model.divisor, 'replicate')[0] for tensor in tensors]
    assert padded[0].shape[-2] > height and padded[0].shape[-1] > width
    with torch.no_grad():
        full = model.predict(*padded)[0, 0].numpy()
    expected = full[:height, :width].copy()
    expected[(expected < 0) | (expected > backend.max_disparity)] = np.nan
    disparity = backend.compute(left, right)
    assert disparity.shape == (height, width)
    np.testing.assert_array_equal(np.isnan(disparity), np.isnan(expected))
    np.testing.assert_allclose(disparity, expected, rtol=1e-4, atol=1e-3, equal_nan=True)


@pytest.mark.parametrize('name', ['dispnet', 'squeezeseg'])
def test_out_of_range_predictions_are_nan(tmp_path: Path, name: str) -> None:
    left, right = _images(64, 80)
    for offset in (-1000.0, 1000.0):
        path = save_weights(make_model(name, offset), tmp_path / 'w.safetensors', name)
        disparity = create_backend(name, weights=path, device='cpu').compute(left, right)
        assert disparity.shape == (64, 80) and np.isnan(disparity).all()
    path = save_tiny(tmp_path, name)
    capped = create_backend(name, weights=path, device='cpu', max_disparity=1.0)
    assert capped.max_disparity == 1.0
    assert np.isnan(capped.compute(left, right)).all()


@pytest.mark.parametrize('name, offset', [('dispnet', 30.0), ('squeezeseg', 50.0)])
def test_no_disparity_is_wider_than_the_image(tmp_path: Path, name: str, offset: float) -> None:
    # The tiny networks answer about 60 and 50 px, within their range of 64 px: on a pair
    # 48 px wide no match lies that far, and the DisparityImage says 47 px at most. (A near
    # pass of a 60-px-wide pair, shrunk to 15 px and padded, answered 168 px.)
    path = save_weights(make_model(name, offset), tmp_path / 'w.safetensors', name)
    backend = create_backend(name, weights=path, near_scale=0, **NETWORK_ALONE)
    wide = backend.compute(*_images(64, 80))
    assert np.isfinite(wide).all() and wide.min() > 47.0
    assert np.isnan(backend.compute(*_images(64, 48))).all()


@pytest.mark.parametrize('name', learned_backend_names())
def test_weights_round_trip_gives_identical_outputs(tmp_path: Path, name: str) -> None:
    model = make_model(name, offset=3.0, seed=1)
    path = save_weights(model, tmp_path / 'w.safetensors', name,
                        extra_metadata={'epoch': 3, 'dataset': 'synthetic'})
    loaded, metadata = load_model(path, name)
    assert metadata.backend == name and metadata.format_version == 1
    assert metadata.architecture == model.architecture
    assert metadata.extra['dataset'] == 'synthetic' and json.loads(metadata.extra['epoch']) == 3
    left, right = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(model.predict(left, right), loaded.predict(left, right))
    half = save_weights(model, tmp_path / 'h.safetensors', name, dtype='fp16')
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded_half, _ = load_model(half, name)
    assert next(loaded_half.parameters()).dtype == torch.float32
    with torch.no_grad():
        difference = (model.predict(left, right) - loaded_half.predict(left, right)).abs()
    assert difference.max() < 0.01  # fp16 rounding of the weights (measured <= 0.0008 px)


def test_prefixed_state_dict_keys_are_stripped(tmp_path: Path) -> None:
    model = make_model('dispnet')
    source = save_weights(model, tmp_path / 'plain.safetensors', 'dispnet')
    metadata = {'backend': 'dispnet', 'architecture': json.dumps(model.architecture),
                'format_version': '1'}
    tensors = {f'_orig_mod.module.{k}': v.clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp_path / 'prefixed.safetensors'), metadata=metadata)
    loaded, _ = load_model(tmp_path / 'prefixed.safetensors', 'dispnet')
    reference, _ = load_model(source, 'dispnet')
    for (key, a), (_, b) in zip(loaded.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), key


def test_wrong_backend_or_architecture_raises(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    with pytest.raises(BackendError, match="backend 'dispnet', not 'dispnetc'"):
        load_model(path, 'dispnetc')
    with pytest.raises(BackendError, match="'dispnet', not 'squeezeseg'"):
        create_backend('squeezeseg', weights=path, device='cpu')
    with pytest.raises(BackendError, match='width'):
        load_model(path, 'dispnet', expected_architecture={'width': 0.5})
    with pytest.raises(BackendError, match='architecture'):
        load_state(backend_record('dispnet').network(width=0.25, max_disparity=64), path,
                   'dispnet')


@pytest.mark.parametrize('name', learned_backend_names())
def test_batch_norm_fusion_keeps_outputs(tmp_path: Path, name: str) -> None:
    model = make_model(name, offset=15.0)
    with torch.no_grad():  # non-trivial running statistics so that fusion matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    path = save_weights(model, tmp_path / 'w.safetensors', name)
    left, right = _images(64, 256)  # the near passes answer up to ~120 px: wider than that
    fused = create_backend(name, weights=path, device='cpu')
    plain = create_backend(name, weights=path, device='cpu', fuse=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.model.modules())
    a, b = fused.compute(left, right), plain.compute(left, right)
    both = np.isfinite(a) & np.isfinite(b)
    assert both.mean() > 0.9
    assert np.abs(a[both] - b[both]).max() < 1e-2


@pytest.mark.skipif(shutil.which('c++') is None and shutil.which('g++') is None,
                    reason='torch.compile (inductor) builds C++ kernels on the CPU')
def test_torch_compile_keeps_the_outputs(tmp_path: Path) -> None:
    # Weights with some spread, so that a wrongly fused kernel would show.
    path = save_tiny(tmp_path, 'costnet', offset=40.0)
    left, right = _images(64, 256)  # wider than the near passes' answers
    eager = create_backend('costnet', weights=path, device='cpu')
    compiled = create_backend('costnet', weights=path, device='cpu', torch_compile=True)
    a, b = eager.compute(left, right), compiled.compute(left, right)
    assert compiled.compiled is not None and compiled.compiled.active  # it did compile
    assert 'torch.compile' in compiled.describe() and 'torch.compile' not in eager.describe()
    both = np.isfinite(a) & np.isfinite(b)
    assert both.mean() > 0.9
    assert np.abs(a[both] - b[both]).max() < 1e-3


def test_torch_compile_failure_falls_back_to_eager_with_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from torch._dynamo.exc import TorchDynamoException

    def broken_compile(function: object, **_: object) -> object:
        def compiled(*args: object) -> object:
            raise TorchDynamoException('InvalidCxxCompiler: no C++ compiler\nmore detail')
        return compiled

    monkeypatch.setattr(torch, 'compile', broken_compile)
    path = save_tiny(tmp_path, 'dispnet')
    left, right = _images(64, 128)
    backend = create_backend('dispnet', weights=path, device='cpu', torch_compile=True)
    expected = create_backend('dispnet', weights=path, device='cpu').compute(left, right)
    with caplog.at_level(logging.WARNING, logger='stereo_depth_ros.torch'):
        first = backend.compute(left, right)
        second = backend.compute(left, right)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)
    assert [r.getMessage() for r in caplog.records] == [
        'dispnet backend: torch.compile failed (TorchDynamoException: InvalidCxxCompiler: no '
        'C++ compiler); running uncompiled']
    assert 'torch.compile' not in backend.describe()


def test_torch_compile_lets_other_errors_through_and_stays_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def compile_that_sees_bad_input(function: object, **_: object) -> object:
        def compiled(*args: object) -> object:
            raise ValueError('input of the wrong size')
        return compiled

    monkeypatch.setattr(torch, 'compile', compile_that_sees_bad_input)
    backend = create_backend('dispnet', weights=save_tiny(tmp_path, 'dispnet'), device='cpu',
                             torch_compile=True)
    with pytest.raises(ValueError, match='input of the wrong size'):
        backend.compute(*_images(64, 128))
    assert backend.compiled is not None and backend.compiled.active


def _rewrite(path: Path, target: Path, edit: object, metadata: dict | None = None) -> Path:
    model, meta = load_model(path, 'dispnet')
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    edit(tensors)
    raw = {'backend': meta.backend, 'architecture': json.dumps(meta.architecture),
           'format_version': str(meta.format_version)}
    raw.update(metadata or {})
    save_file(tensors, str(target), metadata=raw)
    return target


def test_bad_weights_files_raise_backend_error(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    missing = _rewrite(path, tmp_path / 'missing.safetensors',
                       lambda t: t.pop('decoder.pr6.weight'))
    with pytest.raises(BackendError, match='missing keys.*decoder.pr6.weight'):
        load_model(missing, 'dispnet')
    extra = _rewrite(path, tmp_path / 'extra.safetensors',
                     lambda t: t.update({'head.extra': torch.zeros(2)}))
    with pytest.raises(BackendError, match='unexpected keys.*head.extra'):
        load_model(extra, 'dispnet')
    shape = _rewrite(path, tmp_path / 'shape.safetensors',
                     lambda t: t.update({'decoder.pr6.bias': torch.zeros(3)}))
    with pytest.raises(BackendError, match='decoder.pr6.bias has shape'):
        load_model(shape, 'dispnet')
    newer = _rewrite(path, tmp_path / 'newer.safetensors', lambda t: None,
                     {'format_version': '99'})
    with pytest.raises(BackendError, match='format 99'):
        load_model(newer, 'dispnet')
    save_file({'x': torch.zeros(1)}, str(tmp_path / 'bare.safetensors'))
    with pytest.raises(BackendError, match='lacks the metadata'):
        read_metadata(tmp_path / 'bare.safetensors')
    (tmp_path / 'pickle.pt').write_bytes(b'\x80\x04not a safetensors file')
    with pytest.raises(BackendError, match='not a readable safetensors'):
        load_model(tmp_path / 'pickle.pt', 'dispnet')
    with pytest.raises(BackendError, match='does not exist'):
        create_backend('dispnet', weights=tmp_path / 'absent.safetensors')


def test_an_architecture_setting_the_file_lacks_is_named_as_not_recorded(
        tmp_path: Path) -> None:
    """Weights that lack a setting the network has are refused naming it as not recorded."""
    path = save_tiny(tmp_path, 'costnet')
    metadata = read_metadata(path)
    architecture = {key: value for key, value in metadata.architecture.items()
                    if key != 'max_disparity'}
    raw = {'backend': 'costnet', 'format_version': str(metadata.format_version),
           'architecture': json.dumps(architecture)}
    old = tmp_path / 'old.safetensors'
    save_file(load_file(str(path)), str(old), metadata=raw)
    with pytest.raises(BackendError) as caught:
        load_model(old, 'costnet')
    assert re.fullmatch(r'\S*old\.safetensors was saved for another costnet architecture '
                        r'\(max_disparity: not recorded in the file, expected \d+\.0\)',
                        str(caught.value))
    with pytest.raises(BackendError, match=r'\(max_disparity: file 64\.0 vs expected 32\)$'):
        load_model(path, 'costnet', {'max_disparity': 32})  # a recorded one: both values


@pytest.mark.parametrize('change', [{'max_disparity': -8.0}, {'bogus': 1}, {'topk_radius': -1}])
def test_architecture_metadata_the_network_refuses_raises_backend_error(
        tmp_path: Path, change: dict) -> None:
    """A negative max_disparity raised torch's RuntimeError: a traceback, not one line."""
    path = save_tiny(tmp_path, 'costnet')
    metadata = read_metadata(path)
    raw = {'backend': 'costnet', 'format_version': str(metadata.format_version),
           'architecture': json.dumps({**metadata.architecture, **change})}
    bad = tmp_path / 'bad.safetensors'
    save_file(load_file(str(path)), str(bad), metadata=raw)
    with pytest.raises(BackendError, match=r'bad\.safetensors: invalid costnet architecture'
                       r'.*use other weights'):
        create_backend('costnet', weights=bad, device='cpu')


def test_non_finite_weights_raise_backend_error(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    for value in (float('nan'), float('inf')):
        bad = _rewrite(path, tmp_path / 'bad.safetensors',
                       lambda t: t['decoder.pr6.bias'].fill_(value))
        with pytest.raises(BackendError, match=r'bad\.safetensors.*decoder\.pr6\.bias'):
            load_model(bad, 'dispnet')
        with pytest.raises(BackendError, match='NaN or Inf'):
            create_backend('dispnet', weights=bad, device='cpu')


@pytest.mark.parametrize('options, message', [
    ({'max_disparity': float('nan')}, 'max_disparity'),
    ({'max_disparity': float('inf')}, 'max_disparity'),
    ({'max_disparity': -1.0}, 'max_disparity'),
    ({'max_disparity': 'far'}, 'max_disparity'),
    ({'num_threads': -1}, 'num_threads'),
    ({'num_threads': 1.5}, 'num_threads'),
])
def test_invalid_numeric_options_raise_backend_error(tmp_path: Path, options: dict,
                                                     message: str) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    threads = torch.get_num_threads()
    try:
        with pytest.raises(BackendError, match=message):
            create_backend('dispnet', weights=path, device='cpu', **options)
    finally:
        torch.set_num_threads(threads)
    assert create_backend('dispnet', weights=path, device='cpu', num_threads=0,
                          max_disparity=32).max_disparity == 32.0
    assert create_backend('dispnet', weights=path, device='cpu', max_disparity=0.0,
                          near_scale=0).max_disparity == 64.0  # 0: the network's own
    assert torch.get_num_threads() == threads


def test_precision_and_device_options(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnetc')
    left, right = _images(70, 130)
    reference = create_backend('dispnetc', weights=path, device='cpu').compute(left, right)
    backend = create_backend('dispnetc', weights=path, device='cpu', precision='bf16')
    assert backend.precision == 'bf16'
    bf16 = backend.compute(left, right)
    assert bf16.shape == (70, 130) and np.isfinite(bf16).all()
    # bfloat16 ran (its rounding moves the output), and only by rounding (measured 0.0002 px).
    difference = np.abs(bf16 - reference)
    assert difference.max() > 0 and np.median(difference) < 0.05
    with pytest.raises(BackendError, match='fp16 needs a CUDA'):
        create_backend('dispnetc', weights=path, device='cpu', precision='fp16')
    with pytest.raises(BackendError, match='precision must be'):
        create_backend('dispnetc', weights=path, device='cpu', precision='int8')
    with pytest.raises(BackendError, match=r"unknown dispnetc option 'block_size'"):
        create_backend('dispnetc', weights=path, block_size=5)
    with pytest.raises(BackendError, match='pad_mode'):
        create_backend('dispnetc', weights=path, pad_mode='reflect101')
    with pytest.raises(BackendError, match='device must be'):
        create_backend('dispnetc', weights=path, device='tpu')
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match='CUDA is not available'):
            create_backend('dispnetc', weights=path, device='cuda')
        assert create_backend('dispnetc', weights=path).device.type == 'cpu'


def test_backends_command_lists_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    shipped = save_tiny(tmp_path, 'dispnet')
    monkeypatch.setattr(record_module, 'default_weights_path',
                        lambda name: shipped if name == 'dispnet' else None)
    assert backends_command.run(argparse.Namespace(options=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    text = '\n'.join(lines)
    for name in backend_names():
        assert any(line.startswith(name + ' ') for line in lines)
    size = shipped.stat().st_size / 2 ** 20
    assert 1.0 < size < 16.0
    assert f'{shipped} ({size:.1f} MiB, batch_norm=True, max_disparity=64.0, width=0.125)' in text
    assert 'missing - train with `stereo-depth train --config config/train_dispnetc.yaml`' in text
    assert 'no weights needed' in text
    options = [line for line in lines if line.strip().startswith('options:')]
    assert len(options) == len(backend_names())
    assert 'correlation_window_size=5 (or block_size)' in options[0]
    assert "decode=''" in options[backend_names().index('dispnet_qr')]


def _bench_args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(['--size', '64x192', '--repeats', '2', '--warmup', '1'])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_bench_says_when_the_machine_was_busy() -> None:
    # sgbm's times vary little on a quiet machine: a median 5 % above its fastest run says
    # something else used the CPU, and the ratios may be off.
    quiet = bench.BenchResult('sgbm', '-', [41.2, 41.9, 42.0])
    tiny = bench.BenchResult('sgbm', '-', [0.5, 0.9, 1.2])  # 0.4 ms: no telling at that size
    busy = bench.BenchResult('sgbm', '-', [41.4, 55.0, 62.1])
    other = bench.BenchResult('costnet_fast', 'costnet_fast.safetensors', [60.0, 90.0, 95.0])
    assert bench.busy_note([quiet, other]) is None and bench.busy_note([tiny]) is None
    assert bench.busy_note([other]) is None  # no sgbm: nothing to tell it by
    assert bench.busy_note([busy, other]) == (
        "note: sgbm's median is 13.6 ms (33 %) above its fastest run: something else used the "
        'CPU during the rounds, so the ratios may be off; run again with nothing else running')


def test_bench_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(record_module, 'default_weights_path', lambda name: None)
    weights = save_tiny(tmp_path, 'dispnet')
    args = _bench_args(backends='sgbm,dispnet,squeezeseg', weights=[f'dispnet={weights}'])
    assert bench.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ['backend', 'weights', 'median']
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows['sgbm'][-1] == '1.00'
    assert rows['dispnet'][1] == 'dispnet.safetensors'
    assert float(rows['dispnet'][2]) > 0 and float(rows['dispnet'][-1]) > 0
    assert rows['squeezeseg'][1] == 'missing'
    squeezeseg = next(line for line in lines if line.startswith('squeezeseg'))
    assert 'skipped: no shipped weights; use --random-weights' in squeezeseg
    assert bench.run(_bench_args(backends='squeezeseg', random_weights=True)) == 0
    random_row = capsys.readouterr().out.splitlines()[2].split()
    assert random_row[:2] == ['squeezeseg', 'random'] and float(random_row[2]) > 0
    # Backend options reach the learned backends (a refused value shows it), not sgbm.
    assert bench.run(_bench_args(backends='sgbm,dispnet', weights=[f'dispnet={weights}'],
                                 backend_option=['near_scale=0'])) == 0
    assert ', near_scale=0,' in capsys.readouterr().out.splitlines()[0]
    with pytest.raises(BackendError, match='near_scale must be 0'):
        bench.run(_bench_args(backends='sgbm,dispnet', weights=[f'dispnet={weights}'],
                              backend_option=['near_scale=0.05']))
    with pytest.raises(ValueError, match='--backend-option needs KEY=VALUE'):
        bench.run(_bench_args(backends='sgbm', backend_option=['near_scale']))
    with pytest.raises(BackendError, match='unknown backend'):
        bench.run(_bench_args(backends='sgbm,nope'))
    with pytest.raises(ValueError, match='--repeats and --warmup must be >= 1'):
        bench.run(_bench_args(backends='sgbm', warmup=0))
    assert bench.parse_size('384x1248') == (384, 1248)
    with pytest.raises(ValueError, match='HEIGHTxWIDTH'):
        bench.parse_size('384')


def test_bench_refuses_two_weights_files_for_one_backend(tmp_path: Path) -> None:
    """The last one was timed without a word (the table shows only its name)."""
    with pytest.raises(ValueError, match=r'--weights gives dispnet two files \(a and b\)'):
        bench.run(_bench_args(backends='sgbm,dispnet',
                              weights=['dispnet=a', 'dispnet=b']))


def test_bench_warms_up_each_backend_then_times_them_in_turns(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    calls: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
            calls.append(self.name if left.shape[:2] != bench.START_UP_SIZE else 'small')
            return np.zeros(left.shape[:2], np.float32)

    monkeypatch.setattr(bench, '_build', lambda name, args, folder, explicit, options: (
        Recorder(name), 'fake', ''))
    assert bench.run(_bench_args(backends='sgbm,dispnet,costnet', repeats=3, warmup=2)) == 0
    # Each once on a small pair first: no backend's memory holds the process's start-up.
    start_up, warmups, rounds = calls[:3], calls[3:9], calls[9:]
    assert start_up == ['small'] * 3
    assert warmups == ['sgbm', 'sgbm', 'dispnet', 'dispnet', 'costnet', 'costnet']
    # Two runs of each per round (untimed, timed), the order rotating from round to round.
    order = ['sgbm', 'dispnet', 'costnet', 'dispnet', 'costnet', 'sgbm',
             'costnet', 'sgbm', 'dispnet']
    assert rounds == [name for name in order for _ in range(2)]
    out = capsys.readouterr().out
    assert ('3 rounds (the backends taking turns, each timed run after an untimed one of its '
            'own) after 2 warm-up') in out.splitlines()[0]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]
            if not line.startswith('note:')}
    assert set(rows) == {'sgbm', 'dispnet', 'costnet'}


def test_bench_profile_says_where_the_time_goes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(record_module, 'default_weights_path', lambda name: None)
    weights = save_tiny(tmp_path, 'costnet')
    assert bench.run(_bench_args(backends='sgbm,costnet', weights=[f'costnet={weights}'],
                                 profile=True, repeats=3)) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('costnet: '))
    assert not any(line.startswith('sgbm: ') for line in lines)  # no network to time
    rows = {line.rsplit(None, 4)[0].strip(): float(line.split()[-4]) for line in lines[start + 1:]}
    total = float(lines[start].split()[1])
    assert {'tower', 'down8', 'logits', 'outside the layers'} <= set(rows)
    # Each layer timed, and counted once: what is left outside them is not negative (the
    # row itself is the total less the layers).
    layers = {name: ms for name, ms in rows.items() if name != 'outside the layers'}
    assert all(0 < ms < total for ms in layers.values()), rows
    assert rows['outside the layers'] >= 0
    # Without --profile the output ends with the table.
    assert bench.run(_bench_args(backends='costnet', weights=[f'costnet={weights}'])) == 0
    assert 'with timers' not in capsys.readouterr().out


def test_layer_timer_sums_each_top_level_layer_and_unhooks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch import nn
    from stereo_depth_ros.evaluation.layer_times import LayerTimer, format_layer_times
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Tanh()))
    # A clock that advances 1 s each time it is read: a layer's interval is opened and closed
    # once per outermost call (2 reads, 1 s), however many of its modules run inside it.
    ticks = iter(range(1000))
    monkeypatch.setattr('stereo_depth_ros.evaluation.layer_times.time.perf_counter',
                        lambda: float(next(ticks)))
    with LayerTimer(model) as parts:
        model[1][1:](model[1][0](torch.zeros(2, 4)))  # the parts of child 1, not child 1
    assert parts.seconds == {'0': 0.0, '1': 2.0}  # two outermost calls: ReLU, then [Tanh]
    with LayerTimer(model) as timer:
        model(torch.zeros(2, 4))
        model(torch.zeros(2, 4))
    assert timer.seconds == {'0': 2.0, '1': 2.0}
    with pytest.raises(RuntimeError), LayerTimer(model) as failing:
        model(torch.zeros(2, 5))  # the Linear raises: its interval still closes
    assert failing.seconds['0'] == 1.0 and failing._depth == {'0': 0, '1': 0}
    before = dict(timer.seconds)
    model(torch.zeros(2, 4))  # hooks removed: nothing more is counted
    assert timer.seconds == before
    table = format_layer_times('net', {'a': 0.003, 'b': 0.001, 'never': 0.0}, 0.010, 2)
    assert table.splitlines() == [
        'net: 5.0 ms per pair with timers on its layers',
        '  a                       1.5 ms   30.0 %',
        '  b                       0.5 ms   10.0 %',
        '  outside the layers      3.0 ms   60.0 %']


def test_bench_pair_is_shifted() -> None:
    left, right = bench.make_pair(32, 48, shift=5)
    assert left.shape == right.shape == (32, 48, 3)
    assert np.array_equal(left[:, 5:], right[:, :-5])


def test_dispnet_qr_decode_option(tmp_path: Path) -> None:
    model = backend_record('dispnet_qr').network(**TINY['dispnet_qr'])
    path = tmp_path / 'qr.safetensors'
    save_weights(model, path, 'dispnet_qr')
    rng = np.random.default_rng(3)
    left = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    right = np.roll(left, -4, axis=1)
    argmax = create_backend('dispnet_qr', weights=path, device='cpu').compute(left, right)
    backend = create_backend('dispnet_qr', weights=path, device='cpu', decode='expectation')
    assert backend.model.decode_mode == 'expectation'
    expectation = backend.compute(left, right)
    assert expectation.shape == argmax.shape
    assert not np.allclose(np.nan_to_num(expectation), np.nan_to_num(argmax))
    with pytest.raises(BackendError, match='decode must be one of'):
        create_backend('dispnet_qr', weights=path, device='cpu', decode='mean')


def test_near_pass_blend_takes_each_estimate_on_its_side_of_the_threshold() -> None:
    full = torch.full((1, 1, 1, 7), 10.0)
    near = torch.tensor([[[[0.0, 90.0, 94.0, 96.0, 98.0, 102.0, 150.0]]]])
    blended = blend_near_pass(full, near, 96.0)[0, 0, 0]
    # The blend spans 96 / 12 = 8 px: full below 92, near above 100, halfway at 96.
    assert blended[:2].tolist() == [10.0, 10.0]
    assert blended[-2:].tolist() == [102.0, 150.0]
    assert blended[3].item() == pytest.approx(53.0)
    assert blended[2].item() == pytest.approx(10 + 0.25 * 84)
    assert blended[4].item() == pytest.approx(10 + 0.75 * 88)


@pytest.mark.parametrize('offset', [5.0, 20.0])
def test_near_pass_replaces_large_disparities_by_the_half_scale_estimate(
        tmp_path: Path, offset: float) -> None:
    # The tiny dispnet's finest (1/2-resolution) head predicts ``offset``: about 2 * offset
    # px at full resolution, at any input size, and twice that from the half-scale pass.
    path = save_weights(make_model('dispnet', offset), tmp_path / 'w.safetensors', 'dispnet')
    left, right = _images(64, 96)
    one_pass = create_backend('dispnet', weights=path, **NETWORK_ALONE, near_scale=0)
    half = create_backend('dispnet', weights=path, **NETWORK_ALONE, near_scale=0, scale=0.5)
    both = create_backend('dispnet', weights=path, **NETWORK_ALONE, near_scale=0.5, near_from=0.5,
                          near_passes=1)
    assert (one_pass.max_disparity, half.max_disparity, both.max_disparity) == (64, 128, 128)
    full, coarse = one_pass.compute(left, right), half.compute(left, right)
    expected = blend_near_pass(torch.from_numpy(full), torch.from_numpy(coarse), 32.0).numpy()
    result = both.compute(left, right)
    np.testing.assert_allclose(result, expected, atol=1e-4)
    # Near pass ~20 px (< 32): the full-scale estimate stays; ~80 px: the near pass wins.
    chosen = full if offset == 5.0 else coarse
    assert np.median(np.abs(result - chosen)) < 1e-4


def test_dispnetc_near_pass_takes_over_from_a_third_of_its_range_unless_told(
        tmp_path: Path) -> None:
    # near_from 0 (the default) is the network's own: 0.33 for dispnetc, chosen on validation
    # scenes, so its near pass takes over above 21 px of the tiny 64-px network, not 32 px.
    # The half-scale pass of this tiny dispnetc predicts about 4 * 6.5 = 26 px: between.
    path = save_weights(make_model('dispnetc', 6.5), tmp_path / 'w.safetensors', 'dispnetc')
    left, right = _images(64, 128)
    full = create_backend('dispnetc', weights=path, **NETWORK_ALONE, near_scale=0)
    half = create_backend('dispnetc', weights=path, **NETWORK_ALONE, near_scale=0, scale=0.5)
    full_estimate, half_estimate = full.compute(left, right), half.compute(left, right)
    assert 23.0 < np.median(half_estimate) < 30.0
    own = create_backend('dispnetc', weights=path, **NETWORK_ALONE, near_passes=1)
    told = create_backend('dispnetc', weights=path, **NETWORK_ALONE, near_passes=1, near_from=0.5)
    expected = blend_near_pass(torch.from_numpy(full_estimate),
                               torch.from_numpy(half_estimate), 0.33 * 64, 64.0, 128.0)
    np.testing.assert_allclose(own.compute(left, right), expected.numpy(), atol=1e-4)
    assert np.median(np.abs(own.compute(left, right) - half_estimate)) < 1e-4
    assert np.median(np.abs(told.compute(left, right) - full_estimate)) < 1e-4
    with pytest.raises(BackendError, match="near_from must be 0 .the network's own. or at "
                                           'least 0.05, got 0.01'):
        create_backend('dispnetc', weights=path, **NETWORK_ALONE, near_from=0.01)


@pytest.mark.parametrize('offset', [5.0, 20.0])
def test_near_passes_continue_until_the_range_reaches_192_px(tmp_path: Path,
                                                             offset: float) -> None:
    # A 64-px network gets passes at 1/2 and 1/4 scale (range 256 px); each takes over above
    # half of the range of the pass before it: 32 px, then 64 px. The tiny dispnet predicts
    # about 2 * offset px at full scale, 4 * offset at 1/2 and 8 * offset at 1/4.
    path = save_weights(make_model('dispnet', offset), tmp_path / 'w.safetensors', 'dispnet')
    left, right = _images(64, 192)  # wider than the quarter-scale pass's ~160 px
    passes = [create_backend('dispnet', weights=path, **NETWORK_ALONE, near_scale=0, scale=scale)
              for scale in (1.0, 0.5, 0.25)]
    full, half, quarter = (torch.from_numpy(one.compute(left, right)) for one in passes)
    cascade = create_backend('dispnet', weights=path, **NETWORK_ALONE)
    assert cascade.max_disparity == 256.0
    assert cascade.describe().endswith('near pass x0.5, near pass x0.25, disparity 0..256 px)')
    expected = blend_near_pass(blend_near_pass(full, half, 32.0, 64.0, 128.0), quarter, 64.0,
                               128.0, 256.0).numpy()
    result = cascade.compute(left, right)
    np.testing.assert_allclose(result, expected, atol=1e-4)
    # ~10 px: the full-scale estimate stays; ~160 px: the quarter-scale pass wins.
    chosen = full if offset == 5.0 else quarter
    assert np.median(np.abs(result - chosen.numpy())) < 1e-4


def test_near_pass_scales_follow_the_network_range_and_the_options() -> None:
    def scales(network_range: float, **options: float) -> list[float]:
        model = make_model('dispnet', 0.0)
        model.max_disparity = network_range
        return near_pass_scales(model, options.pop('scale', 1.0), options.pop('near', 0.5),
                                **options)  # type: ignore[arg-type]

    assert scales(192) == [0.5] and scales(128) == [0.5]  # one pass already reaches 192 px
    assert scales(64) == [0.5, 0.25] and scales(32) == [0.5, 0.25, 0.125]
    assert scales(16) == [0.5, 0.25, 0.125]  # at most three by themselves
    assert scales(64, scale=0.5) == [0.25]  # the input scale already doubles the range
    assert scales(64, near_passes=1) == [0.5] and scales(192, near_passes=2) == [0.5, 0.25]
    assert scales(64, near=0.0) == []
    assert scales(64, near=0.3) == [0.3]  # 64 / 0.3 = 213 px
    # A capped range drops the passes that could only take over above it: the 1/2 pass
    # starts at 32 * (1 - 1/24) = 30.7 px, the 1/4 one at 61.3 px.
    assert scales(64, max_disparity=30.0) == [] and scales(64, max_disparity=40.0) == [0.5]
    assert scales(16, min_scale=0.2) == [0.5, 0.25]


@pytest.mark.parametrize('value, message', [(0.05, 'dispnet near_scale must be 0'),
                                            (0.9, 'near_scale'), (-0.1, 'near_scale')])
def test_near_scale_out_of_its_limits_is_refused(tmp_path: Path, value: float,
                                                 message: str) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    with pytest.raises(BackendError, match=message):
        create_backend('dispnet', weights=path, device='cpu', near_scale=value)
    # The node's parameter check names its section, as for every other option rule.
    from stereo_depth_ros.node_config import validate
    with pytest.raises(ValueError, match=r'learned[ .]near_scale'):  # BackendError is one
        validate({'backend': 'dispnet', 'learned.near_scale': value})


def test_near_pass_blend_ignores_a_pass_that_has_no_usable_value() -> None:
    nan, inf = float('nan'), float('inf')
    full = torch.tensor([[[[10.0, 10.0, nan, 250.0, 10.0, inf]]]])
    near = torch.tensor([[[[nan, 500.0, 150.0, 150.0, -3.0, 20.0]]]])
    blended = blend_near_pass(full, near, 96.0, full_range=192.0, near_range=384.0)[0, 0, 0]
    # near unusable (NaN, beyond its range, negative): full; full unusable: near.
    assert blended[[0, 1, 4]].tolist() == [10.0, 10.0, 10.0]
    assert blended[[2, 3]].tolist() == [150.0, 150.0]
    assert blended[5].item() == 20.0


@pytest.mark.parametrize('offset, expected', [(5.0, 20.0), (12.0, 96.0)])
def test_near_pass_with_an_input_scale(tmp_path: Path, offset: float, expected: float) -> None:
    # The tiny dispnet's 1/2-resolution head predicts ``offset``: ~4 * offset output px at
    # scale 0.5 and ~8 * offset from the near pass at 0.25. The near pass takes over above
    # 0.5 * 64 / 0.5 = 64 px: not for offset 5 (20 / 40 px), for offset 12 (48 / 96 px).
    path = save_weights(make_model('dispnet', offset), tmp_path / 'w.safetensors', 'dispnet')
    backend = create_backend('dispnet', weights=path, **NETWORK_ALONE, scale=0.5, near_scale=0.5)
    assert backend.max_disparity == 256.0
    left, right = _images(64, 128)
    assert np.median(backend.compute(left, right)) == pytest.approx(expected, rel=0.05)


def test_max_disparity_above_the_range_searched_is_refused(tmp_path: Path) -> None:
    """It would pass for a range searched: DisparityImage, Range and near guard take it."""
    path = save_tiny(tmp_path, 'dispnet')  # 64 px; one near pass at 0.5 (auto: 128, 256)
    reach = create_backend('dispnet', weights=path, device='cpu', near_passes=1).max_disparity
    assert reach == 128.0
    assert create_backend('dispnet', weights=path, device='cpu', near_passes=1,
                          max_disparity=128.0).max_disparity == 128.0  # the edge itself
    with pytest.raises(BackendError, match=r'max_disparity 129 px is above the range dispnet '
                       r'searches \(0-128 px: passes at scale 1, 0\.5\).*near_passes'):
        create_backend('dispnet', weights=path, device='cpu', near_passes=1, max_disparity=129)
    with pytest.raises(BackendError, match=r'0-64 px: passes at scale 1\)'):
        create_backend('dispnet', weights=path, device='cpu', near_scale=0, max_disparity=65)
    assert create_backend('dispnet', weights=path, device='cpu', near_passes=2,
                          max_disparity=129).max_disparity == 129.0


def test_num_threads_zero_puts_back_the_count_from_before(tmp_path: Path, monkeypatch) -> None:
    """A node set back to 0 must not keep the last backend's count."""
    from stereo_depth_ros import torch_runtime
    monkeypatch.setattr(torch_runtime, '_threads_before_backends', None)  # no earlier test's
    path = save_tiny(tmp_path, 'dispnet')
    threads = torch.get_num_threads()
    other = 2 if threads == 1 else 1
    try:
        # No backend has set a count: 0 leaves the caller's as it is.
        torch.set_num_threads(other)
        create_backend('dispnet', weights=path, device='cpu')
        assert torch.get_num_threads() == other
        torch.set_num_threads(threads)
        create_backend('dispnet', weights=path, device='cpu', num_threads=other)
        assert torch.get_num_threads() == other
        create_backend('dispnet', weights=path, device='cpu', num_threads=3)
        assert torch.get_num_threads() == 3
        create_backend('dispnet', weights=path, device='cpu', num_threads=0)
        assert torch.get_num_threads() == threads
        # A refused backend changes nothing.
        with pytest.raises(BackendError, match='max_disparity'):
            create_backend('dispnet', weights=path, device='cpu', num_threads=3,
                           near_scale=0, max_disparity=65)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(threads)


def test_num_threads_reach_the_thread_that_computes(tmp_path: Path, monkeypatch) -> None:
    """The count is OpenMP's, per thread: the node builds a backend in its executor's thread
    while its inference thread, started before, computes; a count changed at run time did
    not reach it."""
    import queue
    import threading
    from stereo_depth_ros import torch_runtime
    monkeypatch.setattr(torch_runtime, '_threads_before_backends', None)
    path = save_tiny(tmp_path, 'dispnet')
    threads = torch.get_num_threads()
    left, right = _images(32, 64)
    jobs: queue.Queue = queue.Queue()
    seen: queue.Queue = queue.Queue()

    def worker() -> None:  # started first, as the node's inference thread is
        for backend in iter(jobs.get, None):
            backend.compute(left, right)
            seen.put(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for wanted in (3, 0):
            jobs.put(create_backend('dispnet', weights=path, device='cpu', num_threads=wanted,
                                    refine_radius=0.0))
            assert seen.get(timeout=60) == (wanted or threads)
    finally:
        jobs.put(None)
        thread.join()
        torch.set_num_threads(threads)


def test_a_capped_range_below_the_near_threshold_runs_one_pass(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    capped = create_backend('dispnet', weights=path, device='cpu', max_disparity=20.0)
    assert capped.max_disparity == 20.0 and 'near pass' not in capped.describe()
    assert 'near pass x0.5' in create_backend('dispnet', weights=path, device='cpu',
                                              max_disparity=40.0).describe()
    with pytest.raises(BackendError, match='scale x near_scale'):
        create_backend('dispnet', weights=path, device='cpu', scale=0.2, near_scale=0.2)


def test_refined_costnet_runs_as_a_backend_with_folded_batch_norms(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = CostNet(**TINY['costnet'], refine_channels=8)
    assert model.refine is not None
    torch.nn.init.normal_(model.refine.residual.weight, std=0.05)
    model.train()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        model(torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96))
    path = save_weights(model.eval(), tmp_path / 'refined.safetensors', 'costnet')
    left, right = _images(64, 96, seed=2)
    folded = create_backend('costnet', weights=path, device='cpu', near_scale=0)
    plain = create_backend('costnet', weights=path, device='cpu', near_scale=0, fuse=False)
    np.testing.assert_allclose(folded.compute(left, right), plain.compute(left, right),
                               atol=1e-3, equal_nan=True)


@pytest.mark.parametrize('name', learned_backend_names())
def test_shipped_networks_keep_their_output_under_fp16_autocast(name: str) -> None:
    # fp16 is what precision auto picks on CUDA (a Jetson's default): with the shipped weights,
    # folded batch norms and the backend's own passes, no value may overflow and the estimate
    # may move only by rounding. CPU autocast rounds to fp16 as CUDA's does. Measured on this
    # scene (disparities 1-27 px): mean change 0.0009-0.0081 px, 99th percentile 0.006-0.123
    # px, bad-2 within 0.03 points.
    backend = create_backend(name, device='cpu')
    scene = make_scene(EVAL_SEED_OFFSET + 100, height=256, width=512, kind='layered')
    left = images_to_tensor([scene.left], backend.device)
    right = images_to_tensor([scene.right], backend.device)
    estimates = {precision: predict_with_near_pass(
        backend.model, left, right, precision=precision, pad_mode=backend.options.pad_mode,
        scale=backend.scale, near_scales=backend.near_scales,
        near_from=backend.options.near_from, match_passes=backend.match_passes,
        refine_radius=backend.refine_radius)[0, 0].numpy()
        for precision in ('fp32', 'fp16')}
    assert np.isfinite(estimates['fp32']).all() and np.isfinite(estimates['fp16']).all()
    change = np.abs(estimates['fp16'] - estimates['fp32'])
    assert change.mean() < 0.05 and np.percentile(change, 99) < 0.5, change.max()
    bad2 = [float((np.abs(estimates[key] - scene.disparity) > 2).mean())
            for key in ('fp32', 'fp16')]
    assert abs(bad2[1] - bad2[0]) < 0.002, bad2


@pytest.mark.parametrize('size, small', [((48, 64), (24, 32)), ((48, 63), (16, 21)),
                                         ((15, 18), (8, 9))])
def test_shrinking_images_averages_areas(size, small) -> None:
    # Exact factors sum strided slices, others interpolate: both are area averages.
    images = torch.rand(2, 3, *size).contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.interpolate(images, size=small, mode='area')
    torch.testing.assert_close(shrink_images(images, small), expected)


def test_near_pass_blend_ignores_infinite_and_nan_values_with_unlimited_ranges() -> None:
    # With the default (infinite) ranges only finiteness and sign decide what is usable.
    nan, inf = float('nan'), float('inf')
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        full = torch.tensor([inf, 10.0, nan, -1.0, 10.0, inf], dtype=dtype).view(1, 1, 1, -1)
        near = torch.tensor([95.0, inf, 150.0, 150.0, nan, -inf], dtype=dtype).view(1, 1, 1, -1)
        blended = blend_near_pass(full, near, 96.0)[0, 0, 0].float()
        assert blended[:5].tolist() == [95.0, 10.0, 150.0, 150.0, 10.0], dtype
        assert blended[5] == inf  # neither pass usable: the first one's value stays


def test_weights_one_format_newer_are_refused(tmp_path: Path) -> None:
    """A file of the next format version is refused, not read as if it were this one's."""
    path = save_tiny(tmp_path, 'dispnet')
    newer = _rewrite(path, tmp_path / 'next.safetensors', lambda t: None,
                     {'format_version': str(FORMAT_VERSION + 1)})
    with pytest.raises(BackendError, match=f'format {FORMAT_VERSION + 1}; this version reads '
                       f'up to {FORMAT_VERSION}'):
        read_metadata(newer)
    assert read_metadata(path).format_version == FORMAT_VERSION


def test_architecture_metadata_that_is_no_json_object_is_refused(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    listed = _rewrite(path, tmp_path / 'listed.safetensors', lambda t: None,
                      {'architecture': '[0.25, 64]'})
    with pytest.raises(BackendError, match='architecture metadata is not a JSON object'):
        read_metadata(listed)


def test_load_state_refuses_weights_of_another_backend_that_fit_the_network(
        tmp_path: Path) -> None:
    """Tensors that fit are no reason to take another backend's weights (e.g. --init)."""
    model = make_model('dispnet')
    path = save_weights(model, tmp_path / 'w.safetensors', 'dispnet')
    with pytest.raises(BackendError, match="backend 'dispnet', not 'dispnetc'"):
        load_state(model, path, 'dispnetc')
    assert load_state(model, path, 'dispnet').backend == 'dispnet'


def test_integer_tensors_for_floating_point_weights_are_refused(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    rounded = _rewrite(path, tmp_path / 'int.safetensors',
                       lambda t: t.update({'decoder.pr6.bias':
                                           t['decoder.pr6.bias'].round().to(torch.int32)}))
    with pytest.raises(BackendError, match='stores decoder.pr6.bias as int32, not as floating '
                       'point'):
        load_model(rounded, 'dispnet')


def test_extra_metadata_may_not_override_the_dtype(tmp_path: Path) -> None:
    """A file saved as fp32 that says fp16 would misdescribe itself."""
    with pytest.raises(ValueError, match="may not override 'dtype'"):
        save_weights(make_model('dispnet'), tmp_path / 'w.safetensors', 'dispnet',
                     extra_metadata={'dtype': 'fp16'})
    assert not (tmp_path / 'w.safetensors').exists()


def test_widening_adds_input_channels_only() -> None:
    """A tensor with fewer outputs (dimension 0) is refused, never broadcast over them."""
    grown = widened(torch.ones(4, 2, 3, 3), (4, 3, 3, 3), 'w')
    assert grown.shape == (4, 3, 3, 3) and bool((grown[:, 2] == 0).all())
    with pytest.raises(BackendError, match='only more input channels can be added'):
        widened(torch.ones(1, 2, 3, 3), (4, 3, 3, 3), 'w')


def test_export_path_holding_another_backend_s_weights_is_refused(tmp_path: Path) -> None:
    """Checked without training: exporting over it would make that backend unusable."""
    path = save_tiny(tmp_path, 'dispnet')
    with pytest.raises(BackendError, match='holds dispnet weights; costnet weights there'):
        check_export_path(path, 'costnet')
    check_export_path(path, 'dispnet')


def test_keeping_a_previous_export_skips_a_name_whose_card_is_there(tmp_path: Path) -> None:
    path = save_tiny(tmp_path, 'dispnet')
    orphan = tmp_path / 'dispnet.previous.yaml'
    orphan.write_text('# Model card of weights the user deleted\n')
    kept = keep_previous_export(path)
    assert kept == tmp_path / 'dispnet.previous-2.safetensors'
    assert kept.read_bytes() == path.read_bytes()
    assert orphan.read_text() == '# Model card of weights the user deleted\n'
