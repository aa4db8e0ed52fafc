"""Training losses of the learned networks; each network picks its own (``make_loss``).

* :class:`MultiScaleEPELoss` (dispnet, dispnetc, squeezeseg): the weighted sum over the
  coarse -> fine predictions of the end-point error (mean absolute disparity difference) to the
  ground truth downsampled to each prediction's size, with disparity values scaled by the
  same factor. The weights follow a :class:`LossSchedule` (DispNet: all weight on the
  coarsest prediction first, moved to the finest as training proceeds). ``unseen_weight``
  weighs the pixels the right camera cannot see more (:func:`pixel_weights`).
* :class:`QuantizedRegressionLoss` (dispnet_qr): ``ce_weight * cross_entropy(logits, true
  bin) + residual_weight * smooth_l1(residual of the true bin, true residual)`` plus an
  optional multi-scale EPE on the DispNet trunk's predictions (``trunk_weight``).
* :class:`CostVolumeLoss` (costnet): the multi-scale EPE plus ``ce_weight`` x the
  cross-entropy of the cost volume against a two-hot target of the true disparity.

Ground truth is ``Bx1xHxW`` with NaN (or <= 0) for unknown pixels, which every term ignores.
"""

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from .config import ConfigError, LossConfig
from ..evaluation.visibility import unseen_by_right_camera
from ..networks.dispnet_qr import QROutput, disparity_to_bins, gather_bins

if TYPE_CHECKING:
    from ..networks.common import StereoNet
    from ..networks.costnet import CostNet


class LossSchedule:
    """Per-scale weights as a function of the training step.

    ``entries`` are ``(at, weights)`` pairs sorted by ``at``; ``at`` is a step, or a fraction
    of ``total_steps`` when ``units == 'fraction'``. Piecewise constant (the weights of the
    last entry with ``at <= step``) or, with ``interpolate``, linear between entries.
    """

    def __init__(self, entries: Sequence[tuple[float, Sequence[float]]], total_steps: int,
                 units: str = 'steps', interpolate: bool = False) -> None:
        if not entries:
            raise ConfigError('the loss schedule needs at least one entry')
        scale = float(total_steps) if units == 'fraction' else 1.0
        points = [(float(at) * scale, [float(w) for w in weights]) for at, weights in entries]
        if any(b[0] < a[0] for a, b in zip(points, points[1:])):
            raise ConfigError('loss schedule entries must be sorted by "at"')
        if len({len(w) for _, w in points}) != 1:
            raise ConfigError('all loss schedule entries need the same number of weights')
        if any(w < 0 for _, weights in points for w in weights):
            raise ConfigError('loss schedule weights must be >= 0')
        self.points = points
        self.interpolate = interpolate
        self.num_scales = len(points[0][1])

    @classmethod
    def from_config(cls, config: LossConfig, total_steps: int) -> 'LossSchedule':
        """Build the schedule of ``model.loss``."""
        return cls([(e.at, e.weights) for e in config.schedule], total_steps,
                   config.schedule_units, config.interpolate)

    @classmethod
    def required(cls, config: LossConfig, total_steps: int) -> 'LossSchedule':
        """Build the schedule of ``model.loss``; ConfigError when the config has none."""
        if not config.schedule:
            raise ConfigError('model.loss.schedule is required for the multi-scale EPE loss')
        return cls.from_config(config, total_steps)

    def weights(self, step: int) -> list[float]:
        """Return the loss weight of each scale (coarse -> fine) at ``step``."""
        before = [p for p in self.points if p[0] <= step]
        if not before:
            return list(self.points[0][1])
        at, weights = before[-1]
        if not self.interpolate:
            return list(weights)
        after = [p for p in self.points if p[0] > step]
        if not after:
            return list(weights)
        next_at, next_weights = after[0]
        t = (step - at) / (next_at - at)
        return [(1 - t) * a + t * b for a, b in zip(weights, next_weights)]


def valid_mask(disparity: torch.Tensor) -> torch.Tensor:
    """Return the float mask of known ground truth (finite and > 0)."""
    return (torch.isfinite(disparity) & (disparity > 0)).to(torch.float32)


def downsample_target(disparity: torch.Tensor, size: Sequence[int]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (disparity, mask) of ``Bx1xHxW`` ground truth at ``size``, values rescaled.

    Unknown pixels are left out of the averages; the disparity is multiplied by ``w / W``. A
    coarse pixel is known when at least half of its fine pixels are.
    """
    height, width = int(size[0]), int(size[1])
    mask = valid_mask(disparity)
    filled = torch.where(mask > 0, disparity, torch.zeros_like(disparity))
    if disparity.shape[-2:] == (height, width):
        return filled, mask
    if disparity.shape[-2] % height == 0 and disparity.shape[-1] % width == 0:
        total = F.adaptive_avg_pool2d(filled, (height, width))
        share = F.adaptive_avg_pool2d(mask, (height, width))
    else:
        total = F.interpolate(filled, size=(height, width), mode='bilinear',
                              align_corners=False)
        share = F.interpolate(mask, size=(height, width), mode='bilinear', align_corners=False)
    target = total / share.clamp_min(1e-6) * (width / disparity.shape[-1])
    return target, (share >= 0.5).to(torch.float32)


def pixel_weights(disparity: torch.Tensor, unseen_weight: float) -> Optional[torch.Tensor]:
    """Return ``unseen_weight`` where :func:`unseen_by_right_camera`, 1 elsewhere; None at 1."""
    if unseen_weight == 1.0:
        return None
    return 1.0 + (unseen_weight - 1.0) * unseen_by_right_camera(disparity)


def weighted_epe(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
    """Sum of ``weights`` x |prediction - target| over ``mask``, divided by the mask's count.

    Divided by the count, not by the weights, so pixels of weight 1 count as in
    :func:`masked_epe` whatever share of the batch the others are.
    """
    error = (prediction.float() - target).abs() * mask * weights
    return error.sum() / mask.sum().clamp_min(1.0)


def masked_epe(prediction: torch.Tensor, target: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """Mean |prediction - target| over ``mask`` (0 when nothing is known)."""
    error = (prediction.float() - target).abs() * mask
    return error.sum() / mask.sum().clamp_min(1.0)


class MultiScaleEPELoss:
    """Scheduled weighted sum of per-scale EPEs; ``terms`` reports each scale's EPE.

    With ``unseen_weight`` above 1 each scale's EPE weighs the pixels the right camera cannot
    see (:func:`~stereo_depth_ros.evaluation.visibility.unseen_by_right_camera`, their share
    of each pixel averaged to the scale's size) by it and the others by 1
    (:func:`weighted_epe`); the reported ``terms`` stay unweighted.
    """

    def __init__(self, schedule: LossSchedule, unseen_weight: float = 1.0) -> None:
        if not unseen_weight >= 1.0:
            raise ConfigError(f'model.loss.unseen_weight must be >= 1, got {unseen_weight:g}')
        self.schedule = schedule
        self.unseen_weight = float(unseen_weight)

    def __call__(self, predictions: Sequence[torch.Tensor], disparity: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, {'epe_s<k>': EPE per scale, 'epe': finest EPE in full-res pixels})."""
        if len(predictions) != self.schedule.num_scales:
            raise ConfigError(f'the loss schedule has {self.schedule.num_scales} weights per '
                              f'entry but the network returns {len(predictions)} predictions')
        weights = self.schedule.weights(step)
        total = predictions[-1].new_zeros((), dtype=torch.float32)
        terms: dict[str, float] = {}
        emphasis = pixel_weights(disparity, self.unseen_weight)
        for k, (prediction, weight) in enumerate(zip(predictions, weights)):
            target, mask = downsample_target(disparity, prediction.shape[-2:])
            epe = masked_epe(prediction, target, mask)
            terms[f'epe_s{k}'] = float(epe.detach())
            if weight and emphasis is not None:
                scaled = F.interpolate(emphasis, size=prediction.shape[-2:], mode='area')
                total = total + weight * weighted_epe(prediction, target, mask, scaled)
            elif weight:
                total = total + weight * epe
        terms['epe'] = terms[f'epe_s{len(predictions) - 1}'] * (
            disparity.shape[-1] / predictions[-1].shape[-1])
        return total, terms


class QuantizedRegressionLoss:
    """Bin cross-entropy + smooth-L1 on the true bin's residual (+ optional trunk EPE)."""

    def __init__(self, num_bins: int, bin_width: float, ce_weight: float = 1000.0,
                 residual_weight: float = 1.0, trunk_weight: float = 0.0,
                 trunk_loss: MultiScaleEPELoss | None = None,
                 residual_neighbours: int = 0) -> None:
        if residual_neighbours < 0:
            raise ConfigError(f'residual_neighbours must be >= 0, got {residual_neighbours}')
        self.num_bins, self.bin_width = int(num_bins), float(bin_width)
        self.residual_neighbours = int(residual_neighbours)
        self.ce_weight, self.residual_weight = float(ce_weight), float(residual_weight)
        self.trunk_weight = float(trunk_weight)
        self.trunk_loss = trunk_loss
        if self.trunk_weight and trunk_loss is None:
            raise ConfigError('trunk_weight > 0 needs a loss schedule for the trunk')

    def __call__(self, output: QROutput, disparity: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, {'ce', 'residual', 'epe' of the decoded disparity, ...})."""
        mask = valid_mask(disparity)[:, 0] > 0
        gt = torch.where(mask, disparity[:, 0], torch.zeros_like(disparity[:, 0]))
        bins, residual = disparity_to_bins(gt, self.num_bins, self.bin_width)
        count = mask.sum().clamp_min(1)
        ce = F.cross_entropy(output.logits.float(), bins, reduction='none')
        ce = (ce * mask).sum() / count
        smooth = self._residual_loss(output.residuals.float(), gt, bins, residual, mask)
        total = self.ce_weight * ce + self.residual_weight * smooth
        epe = masked_epe(output.disparity[:, 0], gt, mask.float())
        terms = {'ce': float(ce.detach()), 'residual': float(smooth.detach()),
                 'epe': float(epe.detach())}
        if self.trunk_weight and self.trunk_loss is not None:
            trunk, _ = self.trunk_loss(output.trunk_predictions, disparity, step)
            total = total + self.trunk_weight * trunk
            terms['trunk'] = float(trunk.detach())
        return total, terms

    def _residual_loss(self, residuals: torch.Tensor, gt: torch.Tensor, bins: torch.Tensor,
                       residual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean smooth-L1 of the true bin's residual (+ the neighbours' within range)."""
        chosen = gather_bins(residuals, bins)[:, 0]
        smooth = F.smooth_l1_loss(chosen, residual, reduction='none') * mask
        total, count = smooth.sum(), mask.sum()
        for shift in range(1, self.residual_neighbours + 1):
            for neighbour in (bins - shift, bins + shift):
                inside = mask & (neighbour >= 0) & (neighbour < self.num_bins)
                neighbour = neighbour.clamp(0, self.num_bins - 1)
                target = gt - (neighbour.to(gt.dtype) + 0.5) * self.bin_width
                value = gather_bins(residuals, neighbour)[:, 0]
                term = F.smooth_l1_loss(value, target, reduction='none')
                total = total + (term * inside).sum()
                count = count + inside.sum()
        return total / count.clamp_min(1)


class CostVolumeLoss(MultiScaleEPELoss):
    """Multi-scale EPE plus ``ce_weight`` x the cost volume's cross-entropy (CostNet)."""

    def __init__(self, schedule: LossSchedule, model: 'CostNet', ce_weight: float,
                 unseen_weight: float = 1.0) -> None:
        super().__init__(schedule, unseen_weight)
        self.model, self.ce_weight = model, float(ce_weight)

    def __call__(self, predictions: Sequence[torch.Tensor], disparity: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, terms) with the EPE terms and ``ce``."""
        from ..networks.costnet import volume_cross_entropy
        total, terms = super().__call__(predictions, disparity, step)
        logits = self.model.last_logits
        target, mask = downsample_target(disparity, logits.shape[-2:])
        ce = volume_cross_entropy(logits, target, mask)
        terms['ce'] = float(ce.detach())
        return total + self.ce_weight * ce, terms


#: One training loss: ``loss(forward output, ground truth, step) -> (loss, named terms)``.
Loss = Callable[[Any, torch.Tensor, int], tuple[torch.Tensor, dict[str, float]]]
LOSS_KINDS = ('multiscale_epe', 'quantized_regression', 'cost_volume')


def build_loss(model: 'StereoNet', config: LossConfig, total_steps: int) -> Loss:
    """Return ``model``'s own training loss, configured by ``model.loss``.

    ``model.loss.kind`` is ``auto`` or must name the network's loss (a config written for
    another architecture fails here, not as a shape error mid-run).
    """
    if config.kind not in ('auto',) + LOSS_KINDS:
        raise ConfigError(f'model.loss.kind must be auto or one of {LOSS_KINDS}, got '
                          f'{config.kind!r}')
    if config.kind not in ('auto', model.loss_kind):
        raise ConfigError(f'model.loss.kind {config.kind} does not fit {type(model).__name__}, '
                          f'whose loss is {model.loss_kind}')
    return model.make_loss(config, total_steps)
