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


def plot_curves(history: dict[str, list[dict]], path: str | Path, title: str = '') -> Path:
    """Write a PNG with the training loss and the validation EPE against the step."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    train = history.get('train', [])
    val = history.get('val', [])
    figure, (ax_loss, ax_epe) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([r['step'] for r in train], [r['loss'] for r in train], lw=1)
        ax_loss.set_yscale('log')
    ax_loss.set_xlabel('step')
    ax_loss.set_ylabel('training loss')
    ax_loss.grid(alpha=0.3)
    if train and 'epe' in train[0]:
        ax_train_epe = ax_epe
        ax_train_epe.plot([r['step'] for r in train], [r['epe'] for r in train], lw=1,
                          alpha=0.5, label='train EPE (finest scale)')
    if val:
        ax_epe.plot([r['step'] for r in val], [r['epe'] for r in val], 'o-',
                    label='held-out synthetic EPE')
    ax_epe.set_xlabel('step')
    ax_epe.set_ylabel('EPE (px)')
    ax_epe.grid(alpha=0.3)
    if train or val:
        ax_epe.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
