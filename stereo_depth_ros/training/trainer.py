"""The training loop: AdamW, LR schedule, validation, checkpoints, curves and export.

A run folder (``output.out_dir``) receives ``train.log``, ``history.json``, ``curves.png``
(training loss and held-out EPE against the step), ``checkpoint.safetensors`` (resumable, no
pickle; ``checkpoint.json`` is a readable copy of its record) and the final
``<backend>.safetensors``; the weights are also exported to ``output.export``
(``models/<backend>.safetensors``) together with the training part of the model card
(``models/<backend>.yaml``).
"""

import json
import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from .checkpoint import has_checkpoint, load_checkpoint, read_record, save_checkpoint
from .config import batch_crop, ConfigError, OptimizationConfig, TrainConfig
from .losses import build_loss
from .report import hardware_info, plot_curves
from .sources import TrainingData, batch_iterator
from .validate import heldout_scenes, validate
from ..atomic_files import written_atomically
from ..backends.registry import backend_record, learned_backend_names
from ..errors import BackendError, ExplainedInterrupt, StereoDepthError
from ..interrupts import Abort, deferred_interrupts
from ..networks.common import StereoNet, normalize_image
from ..torch_runtime import (autocast, compile_failure, compile_forward, is_compile_error,
                             keep_freed_cpu_memory, resolve_device, resolve_precision)
from ..weights import keep_previous_export, load_state, save_weights

LOGGER = logging.getLogger('stereo_depth_ros.training')


@dataclass
class TrainResult:
    """What a finished (or resumed and finished) run produced."""

    out_dir: Path
    step: int
    weights: Path
    exported: Optional[Path]
    history: dict
    final_validation: dict
    wall_time_s: float


def build_lr_scheduler(optimizer: torch.optim.Optimizer, opt: OptimizationConfig,
                       total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Return the run's LR schedule, stepped once after every optimizer step.

    ``warmup_steps`` of linear warm-up (``lr / warmup_steps`` up to ``lr``), then ``cosine``
    annealing to ``min_lr_ratio * lr`` at ``total_steps``, ``step`` (x ``gamma`` from each
    ``milestones`` fraction of ``total_steps`` on) or ``constant``.
    """
    schedulers = torch.optim.lr_scheduler
    warmup = max(0, opt.warmup_steps)
    main: schedulers.LRScheduler
    if opt.lr_schedule == 'cosine':
        main = schedulers.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup),
                                            eta_min=opt.lr * opt.min_lr_ratio)
    elif opt.lr_schedule == 'step':  # milestones count steps from the start of the run
        milestones = [max(0, math.ceil(m * total_steps) - warmup) for m in opt.milestones]
        main = schedulers.MultiStepLR(optimizer, milestones=milestones, gamma=opt.gamma)
    else:
        main = schedulers.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warmup:
        return main
    ramp = schedulers.LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0,
                               total_iters=warmup - 1)
    return schedulers.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def build_model(config: TrainConfig) -> StereoNet:
    """Construct the network of ``config.backend`` from ``model.architecture``."""
    try:
        record = backend_record(config.backend)
        if record.network is None:
            raise ConfigError(f'backend {config.backend!r} has no network; learned backends: '
                              f'{", ".join(learned_backend_names())}')
        return record.build_network(config.model.architecture)
    except BackendError as error:
        raise ConfigError(f'model.architecture or backend: {error}') from None


def _setup_logging(out_dir: Path) -> logging.Handler:
    LOGGER.setLevel(logging.INFO)
    handler = logging.FileHandler(out_dir / 'train.log')
    handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    LOGGER.addHandler(handler)
    return handler


def _log(message: str) -> None:
    LOGGER.info(message)
    tqdm.write(message, file=sys.stdout)


def describe_data(config: TrainConfig) -> str:
    """One line describing the training data and augmentation."""
    sources = []
    for source in config.data.sources:
        if source.kind == 'synthetic':
            text = (f'synthetic {"+".join(source.scene_kinds)} scenes '
                    f'{source.width}x{source.height} (seeds < 1000000, max disparity '
                    f'{source.max_disparity:g} px, weight {source.weight:g})')
        elif source.kind == 'pseudo':
            text = (f'pseudo at {source.root} (labels: {source.labeller}, left-right '
                    f'checked; weight {source.weight:g})')
        else:
            text = f'{source.kind} at {source.root} (weight {source.weight:g})'
        own = _describe_transforms(source.augmentation)
        sources.append(text + (f' with its own augmentation: {own}' if own else ''))
    transforms = _describe_transforms(config.data.augmentation)
    return '; '.join(sources) + (f'; augmentation: {transforms}' if transforms else '')


def _describe_transforms(specs: list[dict]) -> str:
    """Return ``name(key=value, ...)`` of each transform spec, comma-separated."""
    return ', '.join(
        '{}({})'.format(t.get('name'), ', '.join(f'{k}={v}' for k, v in t.items() if k != 'name'))
        for t in specs)


def submodule(model: torch.nn.Module, name: Optional[str],
              setting: str) -> torch.nn.Module:
    """Return ``model``'s submodule called ``name`` (dotted), or ``model`` for None/empty."""
    if not name:
        return model
    try:
        return model.get_submodule(name)
    except AttributeError:
        children = sorted(n for n, _ in model.named_children())
        raise ConfigError(f'model.{setting}: {type(model).__name__} has no submodule '
                          f'{name!r}; its top-level parts are {children}') from None


#: Printed when Ctrl-C (or SIGTERM) arrives during a training step, which finishes first.
STEP_NOTICE = ('stopping after this training step, so that its checkpoint resumes exactly; '
               'Ctrl-C again stops at once, saving nothing since the last checkpoint')


#: A time budget's new plan that ends the run later replaces the current one only when it
#: moves the end by more than this fraction (one that ends it earlier always does).
REPLAN_TOLERANCE = 0.05


class TimeBudget:
    """A wall-clock limit on a run's training steps (``stereo-depth train --minutes``).

    The run is planned to end at the step its measured rate reaches within the budget (never
    later than the configured steps), so that the LR and loss schedules still run to their
    end. The rate is measured from a twentieth of the budget on (the first steps start the
    data workers or compile), and the run is planned at a tenth, a quarter and half of the
    budget, each time from the rate since the plan before: the steps after the start are
    served from batches the workers built meanwhile, faster than the workers keep up, and how
    long that lasts depends on the budget (a 4-minute GPU run measured 0.026 s/step at its
    tenth and went on at 0.11). Should the rate fall after the last plan, the run stops when
    the budget is spent.
    """

    #: Fraction of the budget from which the rate is measured.
    MEASURE_FROM = 0.05
    #: Fractions of the budget at which the run is planned.
    PLAN_AT = (0.1, 0.25, 0.5)
    #: The fewest steps the rate is measured on.
    MEASURED_STEPS = 10

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.rate = 0.0  # seconds per step, once measured
        self._mark: Optional[tuple[int, float]] = None
        self.start()

    def start(self) -> None:
        """Start the clock (at the first training step of this run or resumption)."""
        self._start = time.perf_counter()
        self._mark = None
        self._plans = 0

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self._start

    def spent(self) -> bool:
        """Whether the budget is used up."""
        return self.elapsed() >= self.seconds

    def plan(self, step: int, limit: int) -> Optional[int]:
        """Return the step to end at (at most ``limit``) at each planning point, else None."""
        if self._plans >= len(self.PLAN_AT):
            return None
        now = time.perf_counter()
        elapsed = now - self._start
        if self._mark is None:
            if elapsed >= self.MEASURE_FROM * self.seconds:
                self._mark = (step, now)
            return None
        mark_step, mark_time = self._mark
        if (elapsed < self.PLAN_AT[self._plans] * self.seconds
                or step - mark_step < self.MEASURED_STEPS):
            return None
        self.rate = (now - mark_time) / (step - mark_step)
        self._mark = (step, now)
        self._plans += 1
        return min(limit, step + max(0, int((self.seconds - elapsed) / self.rate)))


class StepThenInterrupt(KeyboardInterrupt):
    """A Ctrl-C that came during a training step, raised once the step was counted."""

    def __init__(self, signal_name: str, result: tuple[float, dict[str, float]]) -> None:
        super().__init__(signal_name)
        #: The step's loss and loss terms, for the run's history.
        self.result = result


class TrainingDiverged(StereoDepthError, FloatingPointError):
    """The training loss stopped being a number: one line (exit 2), not a traceback."""


def check_step_count(steps: int) -> None:
    """Raise ConfigError unless a run's number of steps is positive."""
    if steps <= 0:
        raise ConfigError(f'steps must be > 0, got {steps}')


def run_checkpoint_prefix(out_dir: str | Path) -> Path:
    """Return the prefix of the checkpoint files of the run folder ``out_dir``."""
    return Path(out_dir) / 'checkpoint'


def resumed_seed(out_dir: str | Path, seed: int, given: bool) -> int:
    """Return the seed a run resumed in ``out_dir`` continues with: its checkpoint's.

    The seed chooses the run's data: a resumed run given none (``given`` False) takes the
    one it started with, not the config's (it fell back to the config's, and the run went on
    with other scenes than its first part and recorded the wrong seed). A ``--seed`` that
    differs from it is refused (ConfigError). ``seed`` where the folder holds no checkpoint.
    """
    prefix = run_checkpoint_prefix(out_dir)
    if not has_checkpoint(prefix):
        return seed
    recorded = read_record(prefix).get('extra', {}).get('config', {}).get('seed')
    if recorded is None:
        return seed
    if given and int(recorded) != seed:
        raise ConfigError(f'--seed {seed}: the run in {out_dir} started with seed {recorded}, '
                          'and a resumed run continues its data; leave --seed out, or start '
                          'a new run in another --out-dir')
    return int(recorded)


def _record_once(records: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """Append ``record`` to a history list, replacing one of the same step.

    A finished run resumed with no steps left validates its last step again.
    """
    records[:] = [item for item in records if item.get('step') != record['step']]
    records.append(record)


def resumes(out_dir: str | Path, resume: bool) -> bool:
    """Return whether a run in ``out_dir`` continues its checkpoint (``resume`` and one there).

    A folder that holds a checkpoint is reused only with ``resume``: ConfigError otherwise.
    """
    found = has_checkpoint(run_checkpoint_prefix(out_dir))
    if found and not resume:
        raise ConfigError(f'{out_dir} already holds a checkpoint; pass --resume to continue '
                          f'it or choose another --out-dir')
    return found


class Trainer:
    """One training run of a config; see :func:`train`."""

    def __init__(self, config: TrainConfig, device: str = 'auto', steps: Optional[int] = None,
                 out_dir: Optional[str | Path] = None, progress: bool = True,
                 minutes: Optional[float] = None, invocation: Optional[str] = None) -> None:
        self.config = config
        #: The command lines of the run, the one that started it first (a resumed run's
        #: checkpoint holds those before), recorded in the weights (empty: not known).
        self.invocations: list[str] = [invocation] if invocation else []
        # None, not 0, means "the config's": --steps 0 is refused, not read as the default.
        self.total_steps = int(config.optimization.steps if steps is None else steps)
        check_step_count(self.total_steps)
        #: Whether --steps or --minutes chose the length (else a resumed run keeps its own).
        self.length_given = steps is not None or minutes is not None
        #: The most steps a time budget may plan (the configured or requested steps).
        self.step_limit = self.total_steps
        if minutes is not None and not 0 < minutes < math.inf:
            raise ConfigError(f'--minutes must be a finite number > 0, got {minutes}')
        self.budget = TimeBudget(60.0 * minutes) if minutes else None
        #: The run's whole time budget (s; None: none), kept across --resume, and what the
        #: parts of the run before this one spent of it (s, by the budget's own clock).
        self.time_budget_s = 60.0 * minutes if minutes else None
        self.budget_spent_s = 0.0
        self.out_dir = Path(out_dir or config.output.out_dir)
        config.output.out_dir = str(self.out_dir)  # recorded as run: --out-dir, not the file's
        self.device = resolve_device(device)
        self.progress = progress
        opt = config.optimization
        if self.device.type == 'cpu':
            keep_freed_cpu_memory()
            if opt.num_threads:
                torch.set_num_threads(opt.num_threads)
        torch.manual_seed(config.seed)
        self.model = build_model(config)
        if config.model.init_weights:
            target = submodule(self.model, config.model.init_weights_into, 'init_weights_into')
            load_state(target, config.model.init_weights,
                       config.model.init_weights_backend or config.backend,
                       new_modules=config.model.init_weights_new,
                       widen_inputs=config.model.init_weights_widen)
        self.frozen = [submodule(self.model, name, 'freeze') for name in config.model.freeze]
        for module in self.frozen:
            module.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ConfigError('model.freeze leaves no parameter to train')
        self.model = self.model.to(self.device)
        if opt.torch_compile:
            compile_forward(self.model)
        try:
            self.precision = resolve_precision(opt.precision, self.device,
                                               'optimization.precision')
        except BackendError as error:
            raise ConfigError(str(error)) from None
        self.optimizer = torch.optim.AdamW(trainable, lr=opt.lr,
                                           betas=(opt.betas[0], opt.betas[1]),
                                           weight_decay=opt.weight_decay)
        self.scaler = torch.amp.GradScaler('cuda') if opt.precision == 'fp16' else None
        self.scheduler = build_lr_scheduler(self.optimizer, opt, self.total_steps)
        self.loss = build_loss(self.model, config.model.loss, self.total_steps)
        self.data = TrainingData(config.data, config.seed, opt.batch_size, progress=progress)
        self.history: dict[str, list[dict]] = {'train': [], 'val': []}
        self.step = 0
        self.wall_time = 0.0
        self._val_scenes: Optional[list] = None
        #: Lines said before the run's log file is open (a resumption), logged at its start.
        self.start_lines: list[str] = []

    def train_mode(self) -> None:
        """Put the model in training mode, except frozen parts (BatchNorm statistics kept)."""
        self.model.train()
        for module in self.frozen:
            module.eval()

    def replan(self, total_steps: int) -> None:
        """End the run at ``total_steps``: LR and loss schedules are rebuilt for it.

        The LR schedule is replayed from the configured learning rate to the current step, as
        if the run had been planned for ``total_steps`` from its start.
        """
        self.total_steps = int(total_steps)
        for group in self.optimizer.param_groups:
            group['lr'] = group['initial_lr'] = self.config.optimization.lr
        self.scheduler = build_lr_scheduler(self.optimizer, self.config.optimization,
                                            self.total_steps)
        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()"
            warnings.simplefilter('ignore', UserWarning)
            for _ in range(self.step):
                self.scheduler.step()
        self.loss = build_loss(self.model, self.config.model.loss, self.total_steps)

    def _follow_budget(self) -> bool:
        """Plan the run to the time budget at its planning points; True: stop now.

        A plan that ends the run earlier always replaces the current one; one that ends it
        later only beyond ``REPLAN_TOLERANCE``. Either way the schedules are rebuilt for the
        new end, so the learning rate steps to where the new plan has it at this step.
        """
        assert self.budget is not None
        if self.step < self.total_steps and self.budget.spent():
            _log(f'time budget {self.budget.seconds / 60:.1f} min spent at step {self.step} '
                 f'of {self.total_steps}')
            return True
        planned = self.budget.plan(self.step, self.step_limit)
        if planned is not None and (planned < self.total_steps or planned > self.total_steps
                                    * (1 + REPLAN_TOLERANCE)):
            _log(f'time budget {self.budget.seconds / 60:.1f} min: {self.budget.rate:.3f} '
                 f's/step, the run ends at step {planned} instead of {self.total_steps}')
            self.replan(planned)
        return self.step >= self.total_steps

    @property
    def checkpoint_prefix(self) -> Path:
        """Prefix of the run's checkpoint files."""
        return run_checkpoint_prefix(self.out_dir)

    def resume(self) -> None:
        """Continue from the run folder's checkpoint."""
        record = load_checkpoint(self.checkpoint_prefix, self.model, self.optimizer)
        self.step = int(record['step'])
        extra = record.get('extra', {})
        self.wall_time = float(extra.get('wall_time_s', 0.0))
        if not self.length_given and extra.get('planned_steps'):
            # The length the run had when it stopped (a --minutes plan, --steps), not the
            # config's: "continue with --resume" continues the same run.
            self.total_steps = self.step_limit = int(extra['planned_steps'])
            if extra.get('time_budget_s'):
                # And its time budget, what is left of it: a run stopped before its first
                # plan had the config's whole length as its plan (hours, for minutes asked).
                self.time_budget_s = float(extra['time_budget_s'])
                self.budget_spent_s = float(extra.get('time_budget_spent_s', self.wall_time))
                left = self.time_budget_s - self.budget_spent_s
                if left > 0:
                    self.step_limit = int(extra.get('step_limit', self.step_limit))
                    self.budget = TimeBudget(left)
                else:  # spent: the run ends where it stopped
                    self.total_steps = self.step_limit = self.step
        if self.step > self.total_steps:
            raise ConfigError(f'{self.out_dir} is at step {self.step}, beyond the '
                              f'{self.total_steps} steps asked for; give more --steps')
        # for this run's total_steps, which --steps may have changed since the checkpoint
        self.replan(self.total_steps)
        self.history = extra.get('history', self.history)
        self.invocations = [*extra.get('invocations', []), *self.invocations]
        # What the run started from, for its record (the checkpoint holds the weights since).
        started = extra.get('config', {}).get('model', {})
        if 'init_weights' in started:
            self.config.model.init_weights = started['init_weights']
        self.start_lines.append(f'resumed {self.checkpoint_prefix} at step {self.step}')

    def save(self) -> None:
        """Write the checkpoint, the history and the curves."""
        save_checkpoint(self.checkpoint_prefix, self.model, self.optimizer, self.step,
                        {'history': self.history, 'wall_time_s': self.wall_time,
                         'config': self.config.to_dict(), 'planned_steps': self.total_steps,
                         'invocations': self.invocations,
                         **({'time_budget_s': self.time_budget_s,
                             'time_budget_spent_s': self.budget_spent_s + (
                                 self.budget.elapsed() if self.budget is not None else 0.0),
                             'step_limit': self.step_limit} if self.time_budget_s else {})})
        with written_atomically(self.out_dir / 'history.json') as staging:
            staging.write_text(json.dumps(self.history, indent=1))
        plot_curves(self.history, self.out_dir / 'curves.png',
                    f'{self.config.name} ({self.config.backend})')

    def validate(self) -> dict[str, float]:
        """Score the model on the held-out scenes and record it in the history."""
        if self._val_scenes is None:
            self._val_scenes = heldout_scenes(self.config.evaluation)
        if not self._val_scenes:
            return {}
        # fp32 like the backends' CPU default, so the numbers match `stereo-depth eval`
        metrics = validate(self.model, self._val_scenes, self.device)
        record = {'step': self.step, **metrics}
        _record_once(self.history['val'], record)
        _log(f'val step {self.step}: EPE {metrics["epe"]:.3f} px, D1 {100 * metrics["d1"]:.2f} '
             f'%, bad-3 {100 * metrics["bad3"]:.2f} % ({len(self._val_scenes)} held-out '
             f'{self.config.evaluation.kind} scenes)')
        return metrics

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> Any:
        """Run the model on 0..255 image batches (normalised here) under the run's autocast."""
        left = normalize_image(left.to(self.device, non_blocking=True))
        right = normalize_image(right.to(self.device, non_blocking=True))
        with autocast(self.device, self.precision):
            output = self.model(left, right)
        return self.model.output_float(output)

    def step_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the loss of one batch and its named terms (supervised by the batch)."""
        output = self.forward(batch['left'], batch['right'])
        disparity = batch['disparity'].to(self.device, non_blocking=True)
        return self.loss(output, disparity, self.step)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        opt = self.config.optimization
        lr = self.optimizer.param_groups[0]['lr']
        loss, terms = self.step_loss(batch)
        if not torch.isfinite(loss):
            message = (f'training loss became {float(loss)} at step {self.step}; lower '
                       'optimization.lr or enable grad_clip')
            _log(f'stopped: {message}')
            raise TrainingDiverged(message)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if opt.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), {**terms, 'lr': lr}

    def _whole_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        """Run one training step and count it; a Ctrl-C during it takes effect after it.

        Stopped inside, a step has changed the weights, the optimizer's state or BatchNorm's
        statistics without being counted, and a checkpoint saved then would not resume
        exactly. A second Ctrl-C stops at once and saves nothing.
        """
        with deferred_interrupts(STEP_NOTICE) as stop:
            try:
                result = self._train_step(batch)
                self.step += 1
            except Abort:
                raise ExplainedInterrupt('twice: stopped inside a training step; nothing since '
                                         'the last checkpoint was saved') from None
        if stop:
            raise StepThenInterrupt(stop.signal_name, result)
        return result

    def run(self) -> TrainResult:
        """Train to ``total_steps`` (from the current step), validate, save and export."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        handler = _setup_logging(self.out_dir)
        try:
            return self._run()
        except Exception as error:  # noqa: B902 - only compile errors are rephrased
            if not (self.config.optimization.torch_compile and is_compile_error(error)):
                raise
            raise ConfigError(f'optimization.torch_compile: torch.compile failed '
                              f'({compile_failure(error)}); set it to false') from None
        finally:
            LOGGER.removeHandler(handler)
            handler.close()

    def _run(self) -> TrainResult:
        cfg, opt = self.config, self.config.optimization
        for line in self.start_lines:  # into train.log too, now that it is open
            _log(line)
        _log(f'training {cfg.backend} ({cfg.name}) on {self.device}, steps {self.step} -> '
             f'{self.total_steps}, batch {opt.batch_size}, precision {opt.precision}, '
             f'{torch.get_num_threads()} threads, '
             f'{sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters')
        self.train_mode()
        window: list[tuple[float, dict[str, float]]] = []
        window_start = time.perf_counter()
        last = time.perf_counter()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f'train {cfg.backend}',
                   unit='step', file=sys.stderr, disable=not self.progress,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0)
        batches = batch_iterator(self.data, self.step, self.total_steps, opt.batch_size,
                                 cfg.data.num_workers)
        if self.budget is not None:
            self.budget.start()
        try:
            for batch in batches:
                window.append(self._whole_step(batch))
                bar.update(1)
                now = time.perf_counter()
                self.wall_time += now - last
                last = now
                if self.step % cfg.output.log_every == 0 or self.step == self.total_steps:
                    self._log_window(window, now - window_start)
                    window, window_start = [], time.perf_counter()
                if cfg.evaluation.every and self.step % cfg.evaluation.every == 0 \
                        and self.step < self.total_steps:
                    self.validate()
                    self.train_mode()
                if self.step % cfg.output.checkpoint_every == 0:
                    self.save()
                last = time.perf_counter()
                if self.budget is not None and self._follow_budget():
                    self._log_window(window, last - window_start)
                    bar.total = self.step
                    self.total_steps = self.step  # the run's length, for --resume and the card
                    break
                bar.total = self.total_steps  # a time budget's plan: the bar's share and ETA
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, ExplainedInterrupt):
                raise  # stopped inside a step: saving it would not resume exactly
            # The steps since the last log line, the one the Ctrl-C came in too, go into the
            # history and the curves.
            if isinstance(interrupt, StepThenInterrupt):
                window.append(interrupt.result)
                bar.update(1)  # the bar shows the step the checkpoint resumes after
            self._log_window(window, time.perf_counter() - window_start)
            self.save()
            _log(f'interrupted at step {self.step}; checkpoint saved, continue with --resume '
                 f'and --out-dir {self.out_dir}')
            raise
        finally:
            bar.close()
        try:
            final = self.validate() if cfg.evaluation.num_scenes else {}
        except KeyboardInterrupt:  # the steps are done: keep them
            self.save()
            _log(f'interrupted in the final validation at step {self.step}; checkpoint saved, '
                 f'continue with --resume and --out-dir {self.out_dir}')
            raise
        self.train_mode()
        self.save()
        weights, exported = self.export(final)
        _log(f'finished {self.step} steps in {self.wall_time / 60:.1f} min; weights {weights}'
             + (f', exported to {exported}' if exported else ''))
        return TrainResult(self.out_dir, self.step, weights, exported, self.history, final,
                           self.wall_time)

    def _log_window(self, window: list[tuple[float, dict[str, float]]], seconds: float) -> None:
        if not window:
            return
        keys = [k for k in window[-1][1] if all(k in terms for _, terms in window)]
        record: dict[str, Any] = {'step': self.step,
                                  'loss': sum(loss for loss, _ in window) / len(window)}
        for key in keys:
            record[key] = sum(terms[key] for _, terms in window) / len(window)
        record['s_per_step'] = seconds / len(window)
        self.history['train'].append(record)
        remaining = (self.total_steps - self.step) * record['s_per_step']
        extras = ' '.join(f'{k} {v:.3g}' for k, v in record.items()
                          if k not in ('step', 'loss', 's_per_step', 'lr'))
        _log(f'step {self.step}/{self.total_steps} loss {record["loss"]:.4g} {extras} '
             f'lr {record.get("lr", 0):.2e} {record["s_per_step"]:.3f} s/step '
             f'eta {remaining / 60:.1f} min')

    def training_metadata(self, final: dict[str, float]) -> dict[str, Any]:
        """Return what the weights file and model card record about this run."""
        cfg = self.config
        crop = batch_crop(cfg.data.augmentation)
        config = cfg.to_dict()  # a fresh copy
        # The steps the schedule was planned for (--steps / --minutes), not the file's.
        config['optimization']['steps'] = self.total_steps
        return {
            'experiment': cfg.name,
            **({'invocation': self.invocations[0]} if self.invocations else {}),
            **({'resumed_with': self.invocations[1:]} if len(self.invocations) > 1 else {}),
            'steps': self.step,
            'batch_size': cfg.optimization.batch_size,
            'crop': list(crop) if crop else None,
            'precision': cfg.optimization.precision,
            'wall_time_s': round(self.wall_time, 1),
            **({'time_budget_min': round(self.time_budget_s / 60, 2)}
               if self.time_budget_s else {}),
            'hardware': hardware_info(self.device),
            'data': describe_data(cfg),
            'final_validation': {
                'scenes': f'{cfg.evaluation.num_scenes} held-out synthetic '
                          f'{cfg.evaluation.kind} {cfg.evaluation.width}x'
                          f'{cfg.evaluation.height} (validation seeds from 1000000)',
                **{k: round(float(v), 4) for k, v in final.items()}},
            'finished_utc': datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'config': config,
        }

    def export(self, final: dict[str, float]) -> tuple[Path, Optional[Path]]:
        """Save the final weights in the run folder and, if configured, to ``output.export``."""
        from .model_card import write_card
        cfg = self.config
        metadata = {'training': self.training_metadata(final)}
        weights = save_weights(self.model, self.out_dir / f'{cfg.backend}.safetensors',
                               cfg.backend, extra_metadata=metadata,
                               dtype=cfg.output.weights_dtype)
        exported = None
        if cfg.output.export:
            kept = keep_previous_export(cfg.output.export)
            exported = save_weights(self.model, cfg.output.export, cfg.backend,
                                    extra_metadata=metadata, dtype=cfg.output.weights_dtype)
            write_card(exported, exported.with_suffix('.yaml'), evaluations=None)
            if kept is not None:
                _log(f'replaced {exported}; the weights it held are in {kept}')
        return weights, exported


def train(config: TrainConfig, device: str = 'auto', steps: Optional[int] = None,
          resume: bool = False, out_dir: Optional[str | Path] = None,
          progress: bool = True, minutes: Optional[float] = None,
          invocation: Optional[str] = None) -> TrainResult:
    """Run (or, with ``resume``, continue) the experiment ``config``.

    ``steps`` overrides ``optimization.steps``; ``out_dir`` overrides ``output.out_dir``;
    ``minutes`` bounds the training steps' wall time (:class:`TimeBudget`). A
    run folder that already holds a checkpoint is only reused with ``resume`` (which starts
    from step 0 where there is no checkpoint yet).
    """
    trainer = Trainer(config, device=device, steps=steps, out_dir=out_dir, progress=progress,
                      minutes=minutes, invocation=invocation)
    if resumes(trainer.out_dir, resume):
        trainer.resume()
    elif resume:
        trainer.start_lines.append(f'{trainer.out_dir} holds no checkpoint: starting at step 0')
    return trainer.run()
