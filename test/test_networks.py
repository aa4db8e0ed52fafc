"""Tests of the disparity networks, the correlation layer and the quantized-regression maths."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stereo_depth_ros.backends import backend_record, learned_backend_names
from stereo_depth_ros.errors import BackendError
from stereo_depth_ros.networks.common import (Float32Conv2d, full_resolution, normalize_image,
                                              pad_to_divisor, scaled_channels)
from stereo_depth_ros.networks.correlation import correlation_1d
from stereo_depth_ros.networks.costnet import CostNet
from stereo_depth_ros.networks.dispnet_qr import (DispNetQR, QROutput, decode_bins,
                                                  disparity_to_bins, gather_bins)
from stereo_depth_ros.weights import load_model, load_state, save_weights
from tiny_architectures import TINY

torch.set_num_threads(1)


def _one_backend_per_network() -> list[str]:
    """Return the first learned backend of each network class (costnet_fast is a CostNet)."""
    first: dict[type, str] = {}
    for name in learned_backend_names():
        first.setdefault(backend_record(name).network, name)
    return list(first.values())


NETWORK_BACKENDS = _one_backend_per_network()

#: Resolution of the finest prediction relative to the input.
FINEST_FACTOR = {'dispnet': 2, 'dispnetc': 2, 'squeezeseg': 1, 'costnet': 1}
#: Resolution step between consecutive predictions.
STEP = {'dispnet': 2, 'dispnetc': 2, 'squeezeseg': 2, 'costnet': 4}


def _pair(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, height, width, generator=generator),
            torch.randn(batch, 3, height, width, generator=generator))


@pytest.mark.parametrize('name', NETWORK_BACKENDS)
def test_forward_shapes_and_predict(name: str) -> None:
    torch.manual_seed(0)
    model = backend_record(name).network(**TINY[name])
    left, right = _pair(2, 64, 128)
    model.train()
    out = model(left, right)
    model.eval()
    with torch.no_grad():
        full = model.predict(left, right)
    assert full.shape == (2, 1, 64, 128)
    assert torch.isfinite(full).all()
    if name == 'dispnet_qr':
        assert isinstance(out, QROutput)
        assert out.logits.shape == out.residuals.shape == (2, 4, 64, 128)
        assert out.disparity.shape == (2, 1, 64, 128)
        assert [p.shape[-1] for p in out.trunk_predictions] == [2, 4, 8, 16, 32, 64]
        return
    sizes = [p.shape[-2:] for p in out]
    assert all(p.shape[:2] == (2, 1) for p in out)
    assert sizes[-1] == (64 // FINEST_FACTOR[name], 128 // FINEST_FACTOR[name])
    step = STEP[name]
    assert all(a[0] * step == b[0] and a[1] * step == b[1] for a, b in zip(sizes, sizes[1:]))


@pytest.mark.parametrize('name', NETWORK_BACKENDS)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = backend_record(name).network(**TINY[name]).train()
    left, right = _pair(2, 64, 64)
    out = model(left, right)
    if isinstance(out, QROutput):
        loss = out.logits.square().mean() + out.residuals.square().mean() + sum(
            p.abs().mean() for p in out.trunk_predictions)
    else:
        loss = sum(p.abs().mean() for p in out)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert unused == []


@pytest.mark.parametrize('name', NETWORK_BACKENDS)
def test_input_size_not_divisible_is_rejected(name: str) -> None:
    model = backend_record(name).network(**TINY[name])
    left, right = _pair(1, 64 + 8, 128)
    with pytest.raises(ValueError, match='divisible'):
        model(left, right)


@pytest.mark.parametrize('name', NETWORK_BACKENDS)
def test_architecture_rebuilds_the_same_network(name: str) -> None:
    model = backend_record(name).network(**TINY[name])
    rebuilt = backend_record(name).network(**model.architecture)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}


@pytest.mark.parametrize('name', NETWORK_BACKENDS)
def test_default_models_fit_the_16_mib_weights_budget(name: str) -> None:
    model = backend_record(name).network()
    size = sum(t.numel() * 4 for t in model.state_dict().values())
    assert size <= 16 * 2 ** 20


def test_width_multiplier_scales_parameter_count() -> None:
    small = sum(p.numel() for p in backend_record('dispnet').network(width=0.125).parameters())
    large = sum(p.numel() for p in backend_record('dispnet').network(width=0.25).parameters())
    assert 3.0 < large / small < 4.5  # ~quadratic in the width
    assert scaled_channels(64, 0.25) == 16
    assert scaled_channels(64, 0.01) == 4


def test_full_resolution_scales_pixel_units() -> None:
    half = torch.full((1, 1, 4, 8), 5.0)
    full = full_resolution([torch.zeros(1, 1, 2, 4), half], (8, 16))
    assert full.shape == (1, 1, 8, 16)
    assert torch.allclose(full, torch.full_like(full, 10.0))


def test_normalize_and_pad() -> None:
    image = torch.randint(0, 256, (2, 3, 10, 12), dtype=torch.uint8)
    normalized = normalize_image(image)
    assert torch.allclose(normalized.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(normalized.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-2)
    float_image = image.float() * 0.5 + 20
    untouched = float_image.clone()
    brighter = normalize_image(float_image)
    assert torch.allclose(brighter, normalized, atol=1e-2)  # gain/offset invariant
    assert torch.equal(float_image, untouched)  # a float32 input is the caller's: not changed
    grey = normalize_image(image[:, :1])
    assert grey.shape == (2, 3, 10, 12)
    padded, size = pad_to_divisor(normalized, 8)
    assert size == (10, 12) and padded.shape[-2:] == (16, 16)
    assert torch.equal(padded[..., :10, :12], normalized)
    assert torch.equal(padded[..., 15, 15], normalized[..., 9, 11])  # replicate
    zeros, _ = pad_to_divisor(normalized, 8, mode='zeros')
    assert (zeros[..., 10:, :] == 0).all()


def test_correlation_peaks_at_the_shift() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 8, 5, 40, generator=generator)
    # Unit-length feature vectors: by Cauchy-Schwarz the dot product peaks at the true match.
    features = features / features.norm(dim=1, keepdim=True)
    for shift in (0, 3, 7):
        # left[x] = right[x - shift]: the right view is the left shifted by `shift` columns.
        right = torch.roll(features, -shift, dims=3)
        volume = correlation_1d(features, right, max_displacement=10)
        assert volume.shape == (2, 11, 5, 40)
        interior = volume[..., 10:40 - shift]
        assert (interior.argmax(dim=1) == shift).all()
        expected = (features ** 2).mean(dim=1)[..., 10:40 - shift]
        assert torch.allclose(interior[:, shift], expected, atol=1e-5)


def test_correlation_known_values_and_zero_padding() -> None:
    left = torch.zeros(1, 2, 1, 6)
    right = torch.zeros(1, 2, 1, 6)
    left[0, :, 0, 4] = torch.tensor([1.0, 2.0])
    right[0, :, 0, 1] = torch.tensor([3.0, 4.0])
    volume = correlation_1d(left, right, max_displacement=4)
    # Only left x=4 against right x=1 (displacement 3) is non-zero: (1*3 + 2*4) / 2 channels.
    assert volume[0, 3, 0, 4].item() == pytest.approx(5.5)
    assert volume.abs().sum().item() == pytest.approx(5.5)
    ones = torch.ones(1, 1, 1, 6)
    padded = correlation_1d(ones, ones, max_displacement=4)
    for d in range(5):
        assert padded[0, d, 0, :d].abs().sum() == 0  # x - d < 0 sees zero padding
        assert (padded[0, d, 0, d:] == 1).all()


def test_correlation_matches_direct_sum_across_tiles() -> None:
    generator = torch.Generator().manual_seed(2)
    left = torch.randn(2, 5, 3, 150, generator=generator)  # several tiles, the last ragged
    right = torch.randn(2, 5, 3, 150, generator=generator)
    volume = correlation_1d(left, right, max_displacement=70)
    for d in (0, 1, 63, 64, 70):
        expected = (left[..., d:] * right[..., :150 - d]).mean(dim=1)
        assert torch.allclose(volume[:, d, :, d:], expected, atol=1e-5)
        assert volume[:, d, :, :d].abs().sum() == 0


def test_correlation_without_displacement_is_the_channel_mean_of_the_product() -> None:
    generator = torch.Generator().manual_seed(4)
    left = torch.randn(1, 3, 2, 9, generator=generator)
    right = torch.randn(1, 3, 2, 9, generator=generator)
    volume = correlation_1d(left, right, max_displacement=0)
    assert volume.shape == (1, 1, 2, 9)
    assert torch.allclose(volume[:, 0], (left * right).mean(dim=1), atol=1e-6)
    with pytest.raises(ValueError, match='max_displacement'):
        correlation_1d(left, right, max_displacement=-1)
    with pytest.raises(ValueError, match='one shape'):
        correlation_1d(left, right[..., :8], max_displacement=0)


@pytest.mark.parametrize('channels_last', [False, True])
def test_single_output_heads_compute_the_plain_convolution(channels_last: bool) -> None:
    generator = torch.Generator().manual_seed(3)
    head = Float32Conv2d(5, 1, 3, padding=1)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator))
        head.bias.fill_(0.25)
    features = torch.randn(2, 5, 7, 9, generator=generator)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    features.requires_grad_(True)
    expected = F.conv2d(features, head.weight, head.bias, padding=1)
    # Asymmetric weights: a tap shifted the wrong way, or the border, would show.
    assert torch.allclose(head(features), expected, atol=1e-5)
    upstream = torch.randn(expected.shape, generator=generator)
    inputs = (features, head.weight, head.bias)
    got = torch.autograd.grad((head(features) * upstream).sum(), inputs)
    want = torch.autograd.grad((expected * upstream).sum(), inputs)
    for mine, reference in zip(got, want):
        assert torch.allclose(mine, reference, atol=1e-4)
    # Other shapes keep the plain convolution.
    wide = Float32Conv2d(5, 2, 3, padding=1)
    assert torch.equal(wide(features), F.conv2d(features, wide.weight, wide.bias, padding=1))
    others = [Float32Conv2d(5, 1, 3, padding=1, padding_mode='replicate'),
              Float32Conv2d(5, 1, 3, padding=1, stride=2),
              Float32Conv2d(5, 1, 3, padding=2, dilation=2),
              Float32Conv2d(5, 1, 3, padding=0)]
    for other in others:
        assert torch.equal(other(features), nn.Conv2d.forward(other, features))


def test_disparity_to_bins_known_values() -> None:
    disparity = torch.tensor([0.0, 19.1, 45.0, 191.9, 250.0, -3.0])
    index, residual = disparity_to_bins(disparity, num_bins=10, bin_width=19.2)
    assert index.tolist() == [0, 0, 2, 9, 9, 0]
    expected = [-9.6, 9.5, -3.0, 9.5, 250.0 - 9.5 * 19.2, -12.6]
    assert residual.tolist() == pytest.approx(expected, abs=1e-4)


def test_decode_known_bin_and_residual() -> None:
    logits = torch.full((1, 10, 1, 1), -5.0)
    logits[0, 2] = 5.0
    residuals = torch.zeros(1, 10, 1, 1)
    residuals[0, 2] = 3.0
    residuals[0, 7] = 100.0  # ignored by argmax
    value = decode_bins(logits, residuals, bin_width=30.0, mode='argmax')
    assert value.shape == (1, 1, 1, 1)
    assert value.item() == pytest.approx(2.5 * 30 + 3)
    equal = torch.zeros(1, 2, 1, 1)
    averaged = decode_bins(equal, torch.tensor([1.0, -1.0]).view(1, 2, 1, 1), 10.0,
                           mode='expectation')
    assert averaged.item() == pytest.approx(((5 + 1) + (15 - 1)) / 2)
    with pytest.raises(ValueError, match='decode mode'):
        decode_bins(logits, residuals, 30.0, mode='median')


def test_bins_round_trip() -> None:
    generator = torch.Generator().manual_seed(0)
    disparity = torch.rand(2, 1, 6, 7, generator=generator) * 192
    index, residual = disparity_to_bins(disparity, 10, 19.2)
    assert index.min() >= 0 and index.max() <= 9
    assert residual.abs().max() <= 9.6 + 1e-4
    logits = torch.nn.functional.one_hot(index[:, 0], 10).permute(0, 3, 1, 2).float() * 50
    residuals = torch.randn(2, 10, 6, 7, generator=generator).scatter(1, index, residual)
    assert torch.allclose(gather_bins(residuals, index[:, 0]), residual)
    for mode in ('argmax', 'expectation'):
        decoded = decode_bins(logits, residuals, 19.2, mode=mode)
        assert torch.allclose(decoded, disparity, atol=1e-3)


def test_qr_defaults_and_validation() -> None:
    model = DispNetQR(num_bins=8, width=0.125, max_disparity=96)
    assert model.bin_width == pytest.approx(12.0)
    assert model.architecture['bin_width'] == pytest.approx(12.0)
    with pytest.raises(ValueError):
        DispNetQR(num_bins=1)
    with pytest.raises(ValueError):
        DispNetQR(decode='mode')


def test_qr_head_with_untrained_regressor_decodes_the_trunk_estimate() -> None:
    torch.manual_seed(0)
    model = DispNetQR(num_bins=4, width=0.125, max_disparity=64, head_channels=8).eval()
    torch.nn.init.zeros_(model.regressor.weight)
    torch.nn.init.zeros_(model.regressor.bias)
    left, right = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        output = model(left, right)
        coarse = torch.nn.functional.interpolate(output.trunk_predictions[-1], size=(64, 128),
                                                 mode='bilinear', align_corners=False) * 2
    # Every bin's residual is the coarse estimate's offset from that bin's centre.
    assert torch.allclose(output.disparity, coarse, atol=1e-4)
    plain = DispNetQR(num_bins=4, width=0.125, max_disparity=64, coarse_offsets=False)
    assert plain.architecture['coarse_offsets'] is False
    assert model.head_conv[0][0].in_channels == 8 + 1 + 4
    assert plain.head_conv[0][0].in_channels == plain.architecture['head_channels'] + 1


def _finest_head(model: torch.nn.Module, name: str) -> torch.nn.Conv2d:
    """The layer whose output becomes the full-resolution disparity."""
    if name == 'dispnet_qr':
        return model.regressor
    if name == 'squeezeseg':
        return model.heads[-1]
    return model.decoder.heads[-1]


@pytest.mark.parametrize('name', NETWORK_BACKENDS)
def test_bf16_autocast_keeps_the_disparity_output_in_float32(name: str) -> None:
    torch.manual_seed(0)
    model = backend_record(name).network(**TINY[name]).eval()
    with torch.no_grad():
        if name == 'costnet':  # a soft-argmin between the 48 and 52 px levels: ~49 px
            model.logits.bias[12] += 50.0
            model.logits.bias[13] += 49.0
        else:
            _finest_head(model, name).bias.add_(50.0)  # outputs of roughly 100 px
    left, right = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        disparity = model.predict(left, right)
    assert disparity.dtype == torch.float32 and disparity.mean() > 40
    # bfloat16 can hold 64-128 px only in steps of 0.5 px; the heads compute in float32.
    on_bf16_grid = disparity == disparity.to(torch.bfloat16).float()
    assert on_bf16_grid.float().mean() < 0.5


def test_qr_head_gives_the_same_output_in_either_memory_layout() -> None:
    # channels_last (the backends) computes the coarse offsets pixel-last; NCHW as before.
    torch.manual_seed(0)
    model = DispNetQR(num_bins=4, width=0.125, max_disparity=64, head_channels=8).eval()
    left, right = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    layouts = []
    model.head_up.register_forward_hook(lambda module, inputs, up: layouts.append(
        up.is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        plain = model(left, right)
        last = model.to(memory_format=torch.channels_last)(
            left.contiguous(memory_format=torch.channels_last),
            right.contiguous(memory_format=torch.channels_last))
    assert layouts == [False, True]  # each branch ran once
    for name in ('logits', 'residuals', 'disparity'):
        torch.testing.assert_close(getattr(last, name), getattr(plain, name),
                                   atol=1e-4, rtol=1e-4)


def test_qr_head_sits_on_either_dispnet_trunk() -> None:
    from stereo_depth_ros.networks.dispnetc import DispNetC
    model = DispNetQR(num_bins=4, width=0.125, max_disparity=64, trunk='dispnetc')
    assert isinstance(model.trunk, DispNetC) and model.architecture['trunk'] == 'dispnetc'
    output = model(torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128))
    assert output.disparity.shape == (1, 1, 64, 128)
    assert model.trunk.architecture == DispNetC(width=0.125, max_disparity=64).architecture
    with pytest.raises(ValueError, match='trunk'):
        DispNetQR(trunk='psmnet')


def test_costnet_refinement_starts_as_identity_on_weights_saved_without_it(tmp_path) -> None:
    torch.manual_seed(0)
    plain = CostNet(**TINY['costnet']).eval()
    path = save_weights(plain, tmp_path / 'plain.safetensors', 'costnet')
    refined = CostNet(**TINY['costnet'], refine_channels=8)
    with pytest.raises(BackendError, match='refine_channels'):
        load_state(refined, path, 'costnet')  # the whole network is expected by default
    load_state(refined, path, 'costnet', new_modules=['refine'])
    left, right = torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(refined.eval()(left, right)[1], plain(left, right)[1])
    # A file that lacks other keys is still refused.
    with pytest.raises(BackendError, match='missing keys'):
        load_state(CostNet(**TINY['costnet'], refine_channels=8), path, 'costnet',
                   new_modules=['mask'])


@pytest.mark.parametrize('training', [False, True])
def test_costnet_towers_compute_both_views_as_one_batch_would(training: bool) -> None:
    # In eval mode each view goes through the tower alone (faster on the CPU); batch norm
    # then uses its running statistics, so the features are those of one batch of both. In
    # training they are one batch: batch norm's statistics are those of both views.
    torch.manual_seed(4)
    model = CostNet(**TINY['costnet']).train(training)
    for module in model.tower.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    left, right = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        (left_half, right_half), (left_quarter, right_quarter) = model.towers(left, right)
        halves = model.tower[0](torch.cat([left, right]))
        quarters = model.tower[1:](halves)
    for got, expected in ((left_half, halves[:2]), (right_half, halves[2:]),
                          (left_quarter, quarters[:2]), (right_quarter, quarters[2:])):
        torch.testing.assert_close(got, expected)
    assert not torch.allclose(left_quarter, right_quarter)  # the views are not mixed up
    if training:  # each view alone would have had statistics of its own
        alone = model.tower[1:](model.tower[0](left))
        assert not torch.allclose(left_quarter, alone, atol=1e-3)


def test_dispnetc_widened_to_a_larger_range_computes_what_the_file_did(tmp_path) -> None:
    from stereo_depth_ros.networks.dispnetc import DispNetC
    torch.manual_seed(0)
    narrow = DispNetC(width=0.125, max_disparity=64).eval()
    path = save_weights(narrow, tmp_path / 'narrow.safetensors', 'dispnetc')
    wide = DispNetC(width=0.125, max_disparity=128)
    with pytest.raises(BackendError, match='max_disparity'):
        load_state(wide, path, 'dispnetc')  # another architecture is refused by default
    load_state(wide, path, 'dispnetc', widen_inputs=True)
    grown = wide.tail.conv3[0][0].weight
    assert grown.shape[1] == narrow.tail.conv3[0][0].weight.shape[1] + 16
    assert bool((grown[:, -16:] == 0).all()) and bool(grown[:, :-16].abs().sum() > 0)
    left, right = _pair(1, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(wide.eval().predict(left, right),
                                   narrow.predict(left, right))
    # Only input channels can grow: a wider network does not fit.
    with pytest.raises(BackendError, match='only more input channels'):
        load_state(DispNetC(width=0.25, max_disparity=128), path, 'dispnetc',
                   widen_inputs=True)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('features', [5, 3])  # more and fewer than the 4 channels
def test_refinement_inputs_equal_the_convolution_of_the_concatenated_map(
        training: bool, features: int) -> None:
    # The refinement projects the right features before warping them (or after, where they
    # have fewer channels) instead of concatenating [left, left - warped right,
    # disparity / 64]; all are the same function.
    from stereo_depth_ros.networks.common import warp_right_to_left
    from stereo_depth_ros.networks.costnet import DISPARITY_INPUT_SCALE, DisparityRefinement
    torch.manual_seed(3)
    refinement = DisparityRefinement(features=features, channels=4).train(training)
    for parameter in refinement.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    left, right = torch.randn(2, features, 8, 16), torch.randn(2, features, 8, 16)
    half = torch.rand(2, 1, 8, 16) * 6
    concatenated = torch.cat([left, left - warp_right_to_left(right, half),
                              half / DISPARITY_INPUT_SCALE], dim=1)
    expected = refinement.inputs(concatenated)
    torch.testing.assert_close(refinement.project_inputs(half, left, right), expected,
                               atol=1e-5, rtol=1e-5)
    assert float(expected.detach().abs().max()) > 0.1  # not a vacuous comparison of zeros


@pytest.mark.parametrize('bfloat16', [False, True])
def test_costnet_refinement_trains_and_round_trips(tmp_path, bfloat16: bool) -> None:
    torch.manual_seed(1)
    model = CostNet(**TINY['costnet'], refine_channels=8)
    assert model.refine is not None
    torch.nn.init.normal_(model.refine.residual.weight, std=0.1)  # as after a first step
    left, right = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    # Training also runs under bfloat16 autocast (in-place steps of mixed dtypes inside).
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bfloat16):
        full = model(left, right)[1]
    assert full.dtype == torch.float32
    full.sum().backward()
    for name, parameter in model.refine.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    path = save_weights(model.eval(), tmp_path / 'refined.safetensors', 'costnet')
    loaded, metadata = load_model(path, 'costnet')
    assert metadata.architecture['refine_channels'] == 8
    with torch.no_grad():
        torch.testing.assert_close(loaded(left, right)[1], model(left, right)[1])
        unrefined = CostNet(**TINY['costnet']).eval()
        unrefined.load_state_dict({key: value for key, value in model.state_dict().items()
                                   if not key.startswith('refine.')})
        assert (model(left, right)[1] - unrefined(left, right)[1]).abs().max() > 1e-3
