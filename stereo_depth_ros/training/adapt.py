"""Self-supervised adaptation of a learned backend to a camera: ``stereo-depth adapt``.

A :class:`~stereo_depth_ros.training.trainer.Trainer` whose every step adds, to the supervised
loss of its synthetic ``data`` batch, the loss of crops of the user's own rectified pairs
(see :class:`~stereo_depth_ros.training.config.AdaptationConfig`): photometric reconstruction,
edge-aware smoothness and left-right-checked pseudo-labels (SGBM's, or a stronger learned
backend's: ``labeller``). Checkpoints, the loss curve,
the progress bar and the export are the trainer's; the held-out pairs' losses are logged at
every validation and written to ``adaptation.json`` in the run folder.
"""

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .config import ConfigError, TrainConfig
from .losses import masked_epe, valid_mask
from .pair_split import split_pairs
from .pseudo_labels import PSEUDO_LABEL_MAX_DISPARITY, pseudo_labelled_dataset
from .self_supervised import photometric_loss, smoothness_loss
from .trainer import check_step_count, resumes, Trainer, _log, _record_once
from ..atomic_files import written_atomically
from ..data.datasets import StereoSample
from ..data.photos import PhotoLibrary
from ..errors import DatasetError
from ..plausibility import check_pair, ROW_OFFSET_LIMIT, SWAP_SYMPTOM
from ..text import counted

#: The BatchNorm layers whose statistics adaptation keeps (the networks use BatchNorm2d).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _crop_batch(samples: Sequence[StereoSample], rng: np.random.Generator, count: int,
                crop: Sequence[int], divisor: int) -> dict[str, torch.Tensor]:
    """Return ``count`` random crops (same window in both views) as 0..255 float tensors.

    Each crop is at most ``crop`` (h, w) and its sides are multiples of ``divisor`` (the
    network's), as large as the image allows.
    """
    lefts, rights, labels = [], [], []
    for _ in range(count):
        sample = samples[int(rng.integers(len(samples)))]
        rows, cols = sample.disparity.shape
        height = min(crop[0], rows) // divisor * divisor
        width = min(crop[1], cols) // divisor * divisor
        if not height or not width:
            raise ConfigError(f'pair {sample.name} ({cols}x{rows}) is smaller than the '
                              f'network\'s divisor {divisor}')
        y, x = int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1))
        window = (slice(y, y + height), slice(x, x + width))
        lefts.append(sample.left[window])
        rights.append(sample.right[window])
        labels.append(sample.disparity[window])
    height = min(item.shape[0] for item in lefts)
    width = min(item.shape[1] for item in lefts)

    def stack(items: list[np.ndarray]) -> torch.Tensor:
        array = np.stack([np.asarray(item[:height, :width], np.float32) for item in items])
        if array.ndim == 3:
            array = array[:, None]
        else:
            array = array.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(array))
    return {'left': stack(lefts), 'right': stack(rights), 'disparity': stack(labels)}


class AdaptTrainer(Trainer):
    """Supervised synthetic batches plus self-supervised real batches, step by step."""

    def __init__(self, config: TrainConfig, pairs: Sequence[StereoSample], **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        adaptation = config.adaptation
        if len(adaptation.crop) != 2 or min(adaptation.crop) < 32:
            raise ConfigError(f'adaptation.crop must be [height, width] >= 32, got '
                              f'{adaptation.crop}')
        self.train_pairs, self.held_pairs = split_pairs(pairs, adaptation.holdout_every)
        if not self.train_pairs:
            raise ConfigError('adaptation needs at least one pair to train on')
        self.history.setdefault('adapt_val', [])

    def train_mode(self) -> None:
        """Enter training mode; BatchNorm in eval mode with ``keep_batch_norm_statistics``."""
        super().train_mode()
        if self.config.adaptation.keep_batch_norm_statistics:
            for module in self.model.modules():
                if isinstance(module, BATCH_NORMS):
                    module.eval()

    def training_metadata(self, final: dict[str, float]) -> dict[str, Any]:
        """Return the trainer's record, its data line naming the real pairs and labeller."""
        metadata = super().training_metadata(final)
        adaptation = self.config.adaptation
        metadata['data'] += (
            f'; adapted on {len(self.train_pairs)} real pair'
            f'{"s" if len(self.train_pairs) != 1 else ""} at {adaptation.pairs} '
            f'({len(self.held_pairs)} held out; labels: {adaptation.labeller}, left-right '
            f'checked; photometric {adaptation.photometric:g}, smoothness '
            f'{adaptation.smoothness:g}, pseudo-label {adaptation.pseudo_label:g})')
        return metadata

    def real_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the self-supervised loss of a real batch and its terms."""
        adaptation = self.config.adaptation
        output = self.forward(batch['left'], batch['right'])
        left = batch['left'].to(self.device) / 255.0
        right = batch['right'].to(self.device) / 255.0
        disparity = self.model.decode(output, left.shape[-2:])
        photo = photometric_loss(left, right, disparity)
        smooth = smoothness_loss(disparity, left)
        label = batch['disparity'].to(self.device)
        epe = masked_epe(disparity, torch.nan_to_num(label), valid_mask(label))
        terms = {'photo': float(photo.detach()), 'smooth': float(smooth.detach()),
                 'pseudo_epe': float(epe.detach())}
        pseudo = epe
        if adaptation.pseudo_label_loss == 'network':
            pseudo, _ = self.loss(output, label, self.step)
            terms['pseudo_loss'] = float(pseudo.detach())
        total = adaptation.photometric * photo + adaptation.smoothness * smooth + \
            adaptation.pseudo_label * pseudo
        return total, terms

    def step_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the supervised loss of ``batch`` plus the real pairs' self-supervised loss."""
        supervised, terms = super().step_loss(batch)
        rng = np.random.default_rng((self.config.seed, 7, self.step))
        real = _crop_batch(self.train_pairs, rng, self.config.adaptation.batch_size,
                           self.config.adaptation.crop, self.model.divisor)
        unsupervised, real_terms = self.real_loss(real)
        return supervised + unsupervised, {**terms, **real_terms,
                                           'supervised': float(supervised.detach())}

    @torch.no_grad()
    def held_out_losses(self) -> dict[str, float]:
        """Return the mean self-supervised terms on the held-out pairs (whole images)."""
        if not self.held_pairs:
            return {}
        self.model.eval()
        records = []
        for sample in self.held_pairs:
            batch = _crop_batch([sample], np.random.default_rng(0), 1, (4096, 4096),
                                self.model.divisor)
            _, terms = self.real_loss(batch)
            records.append(terms)
        self.train_mode()
        return {key: float(np.mean([record[key] for record in records]))
                for key in records[0]}

    def validate(self) -> dict[str, float]:
        """Synthetic validation plus the held-out real pairs' self-supervised losses."""
        metrics = super().validate()
        held = self.held_out_losses()
        if held:
            _record_once(self.history['adapt_val'], {'step': self.step, **held})
            _log(f'held-out real pairs step {self.step}: photometric {held["photo"]:.4f}, '
                 f'pseudo-label EPE {held["pseudo_epe"]:.3f} px '
                 f'({counted(len(self.held_pairs), "pair")})')
            with written_atomically(self.out_dir / 'adaptation.json') as staging:
                staging.write_text(json.dumps(self.history['adapt_val'], indent=1))
        return metrics


def check_adapt_run(config: TrainConfig, out_dir: str | Path, steps: Optional[int] = None,
                    resume: bool = False) -> None:
    """Raise for what an adaptation would refuse only after its pairs were prepared.

    ``steps`` (None: the config's) must be positive; the photograph folders of synthetic
    ``photo``/``mono`` sources must hold photographs; a run folder with a checkpoint is
    continued only with ``resume``, as ``train`` does.
    """
    check_step_count(int(config.optimization.steps if steps is None else steps))
    for source in config.data.sources:
        if source.kind == 'synthetic' and source.photos \
                and {'photo', 'mono'} & set(source.scene_kinds):
            PhotoLibrary(source.photos)  # DatasetError naming a missing or empty folder
    resumes(out_dir, resume)


def pair_warnings(pairs: Sequence[StereoSample]) -> list[str]:
    """Return a warning line for pairs that look swapped and for pairs whose rows are off.

    Either makes the SGBM pseudo-labels and the photometric loss of those pairs wrong. Most
    pairs swapped (the topics or files exchanged) is DatasetError: nothing to adapt on.
    Adaptation takes the principal points as equal (``cx_left == cx_right``, disparities from
    0): it reads no CameraInfo, and its SGBM pseudo-labels search from 0 px.
    """
    swapped: list[str] = []
    misaligned: list[tuple[float, str]] = []
    for pair in pairs:
        check = check_pair(pair.left, pair.right)
        if check.swapped:
            swapped.append(pair.name)
        elif check.misaligned:
            assert check.row_offset is not None
            misaligned.append((check.row_offset.largest, pair.name))
    lines = []
    if swapped:
        line = (f'{len(swapped)} of {len(pairs)} pairs (first: {swapped[0]}): {SWAP_SYMPTOM}; '
                'exchange the left and right images (of a bag: --left-image and --right-image)')
        if 2 * len(swapped) > len(pairs):  # the camera's, not a few odd pairs
            raise DatasetError(f'{line}: with most pairs so, adapting would teach the network '
                               'the wrong disparities (adapt takes cx_left = cx_right: a camera '
                               'whose principal points are apart is not supported)')
        lines.append(f'warning: {line}')
    if misaligned:
        worst, name = max(misaligned)
        lines.append(f'warning: {len(misaligned)} of {len(pairs)} pairs have rows of the right '
                     f'image {ROW_OFFSET_LIMIT:g} px or more off those of the left (worst: '
                     f'{name}, up to {worst:.1f} px); check the rectification and the '
                     'calibration: their pseudo-labels and photometric loss are wrong')
    return lines


def adapt(config: TrainConfig, pairs_root: Optional[str | Path] = None,
          progress: bool = True, resume: bool = False, **kwargs: Any) -> Any:
    """Adapt ``config.model.init_weights`` to the pairs under ``pairs_root``; return result.

    With ``resume`` a run folder's checkpoint is continued (where there is one).
    """
    out_dir = kwargs.get('out_dir') or config.output.out_dir
    check_adapt_run(config, out_dir, kwargs.get('steps'), resume)
    root = pairs_root or config.adaptation.pairs
    if not root:
        raise ConfigError('adapt needs pairs: --pairs DIR, --bag BAG or adaptation.pairs')
    if not config.model.init_weights:
        raise ConfigError('adapt starts from trained weights: set model.init_weights or '
                          'pass --weights')
    adaptation = config.adaptation
    adaptation.pairs = str(root)  # recorded in the weights' training metadata
    notes: list[str] = []
    pairs = pseudo_labelled_dataset(
        root, float(config.model.architecture.get('max_disparity',
                                                  PSEUDO_LABEL_MAX_DISPARITY)),
        adaptation.labeller, adaptation.labeller_weights, progress=progress,
        bit_depth=adaptation.mono16_bit_depth, notes=notes)
    for line in pair_warnings(pairs) + [f'warning: {note}' for note in notes[:1]]:
        _log(line)
    trainer = AdaptTrainer(config, pairs, progress=progress, **kwargs)
    _log(f'adapting on {counted(len(trainer.train_pairs), "pair")} under {root} '
         f'({len(trainer.held_pairs)} held out)')
    if not trainer.held_pairs:
        every = adaptation.holdout_every
        why = (f'there are {len(pairs)} pairs and one in {every} is held out; give {every} or '
               'more' if every >= 2 else f'holdout_every is {every}, below 2')
        _log(f'warning: no pair is held out ({why}), so no adaptation.json: nothing to '
             'compare runs by')
    trainer.out_dir.mkdir(parents=True, exist_ok=True)
    if resumes(trainer.out_dir, resume):
        trainer.resume()
    else:
        if resume:
            trainer.start_lines.append(f'{trainer.out_dir} holds no checkpoint yet: starting at '
                                       'step 0')
        trainer.validate()
    return trainer.run()
