"""Training curves plot and a description of the hardware a run used."""

import os
import platform
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """Return the CPU model name (from /proc/cpuinfo where available)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: torch.device) -> dict[str, Any]:
    """Return device, CPU model, core count, torch threads and the torch version."""
    info: dict[str, Any] = {
        'device': device.type,
        'cpu': cpu_model(),
        'cpu_cores': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch': torch.__version__,
    }
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def _plot_held_out_real(axis: Any, records: list[dict]) -> None:
    """Draw the held-out real pairs' photometric loss and pseudo-label EPE (two y axes)."""
    steps = [r['step'] for r in records]
    axis.plot(steps, [r['photo'] for r in records], 'o-', color='tab:blue',
              label='photometric')
    axis.set_xlabel('step')
    axis.set_ylabel('held-out real pairs: photometric', color='tab:blue')
    axis.grid(alpha=0.3)
    twin = axis.twinx()
    twin.plot(steps, [r['pseudo_epe'] for r in records], 's--', color='tab:orange',
              label='pseudo-label EPE')
    twin.set_ylabel('pseudo-label EPE (px)', color='tab:orange')
    axis.set_title('held-out real pairs (lower is better)')


def plot_curves(history: dict[str, list[dict]], path: str | Path, title: str = '') -> Path:
    """Write a PNG with the training loss and the validation EPE against the step.

    An adaptation's history (``adapt_val``) adds a third panel: the held-out real pairs'
    photometric loss and pseudo-label EPE, the figures runs are compared by. Lines carry
    markers, so a run logged once still shows its point.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    train = history.get('train', [])
    val = history.get('val', [])
    real = history.get('adapt_val', [])
    figure, axes = plt.subplots(1, 3 if real else 2, figsize=(16 if real else 11, 4))
    ax_loss, ax_epe = axes[0], axes[1]
    if train:
        ax_loss.plot([r['step'] for r in train], [r['loss'] for r in train], '.-', lw=1)
        ax_loss.set_yscale('log')
    ax_loss.set_xlabel('step')
    ax_loss.set_ylabel('training loss')
    ax_loss.grid(alpha=0.3)
    if train and 'epe' in train[0]:
        ax_epe.plot([r['step'] for r in train], [r['epe'] for r in train], '.-', lw=1,
                    alpha=0.5, label='train EPE (finest scale)')
    if val:
        ax_epe.plot([r['step'] for r in val], [r['epe'] for r in val], 'o-',
                    label='held-out synthetic EPE')
    ax_epe.set_xlabel('step')
    ax_epe.set_ylabel('EPE (px)')
    ax_epe.grid(alpha=0.3)
    if train or val:
        ax_epe.legend()
    if real:
        _plot_held_out_real(axes[2], real)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
