"""Where a network's time goes: wall time per top-level layer, measured with forward hooks.

``stereo-depth bench --profile`` runs each learned backend again with a :class:`LayerTimer`
on its network and prints :func:`format_layer_times`: the milliseconds per pair spent in each
of the network's top-level children (``tower``, ``refine``, ...; summed over the passes of a
pair, so the near pass counts too), and what remains outside them (the correlation, the
regression, upsampling, the near-pass blend, the image conversion). A child the network
reaches through a method of its own rather than a call (``self.trunk.features(x)``) counts
while its modules run; the code between them counts as outside. The hooks run only in these
extra runs, so the timed runs of the table stay as they are.
"""

import time
from typing import Any, Callable

from torch import nn
from torch.utils.hooks import RemovableHandle


class LayerTimer:
    """Sum the wall time of each top-level child of ``model`` while the timer is entered.

    Every module under a child is hooked too, so a child counts also where the network calls
    its parts rather than the child itself (``self.tower[1:](x)``); calls nested inside one
    another count once, from the outermost one's start to its end.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.seconds: dict[str, float] = {name: 0.0 for name, _ in model.named_children()}
        self._depth: dict[str, int] = dict.fromkeys(self.seconds, 0)
        self._started: dict[str, float] = {}
        self._handles: list[RemovableHandle] = []

    def _before(self, name: str) -> Callable[[nn.Module, Any], None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            if self._depth[name] == 0:
                self._started[name] = time.perf_counter()
            self._depth[name] += 1
        return hook

    def _after(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._depth[name] -= 1
            if self._depth[name] == 0:
                self.seconds[name] += time.perf_counter() - self._started[name]
        return hook

    def __enter__(self) -> 'LayerTimer':
        self._depth = dict.fromkeys(self.seconds, 0)
        for name, child in self.model.named_children():
            for module in child.modules():  # the child and everything under it
                self._handles.append(module.register_forward_pre_hook(self._before(name)))
                # always_call: a forward that raises still closes its layer's interval.
                self._handles.append(module.register_forward_hook(self._after(name),
                                                                  always_call=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def format_layer_times(title: str, seconds: dict[str, float], total_seconds: float,
                       pairs: int) -> str:
    """Return a table of ms per pair and share of the total for each layer, largest first.

    ``seconds`` are the layers' summed times over ``pairs`` pairs that took ``total_seconds``
    in all; the last row is the time outside the layers. Layers that never ran are left out.
    """
    total_ms = 1000.0 * total_seconds / pairs
    rows = [(name, 1000.0 * value / pairs) for name, value in seconds.items() if value > 0]
    rows.sort(key=lambda row: -row[1])
    rows.append(('outside the layers', total_ms - sum(ms for _, ms in rows)))
    width = max(len(name) for name, _ in rows)
    lines = [f'{title}: {total_ms:.1f} ms per pair with timers on its layers']
    lines += [f'  {name.ljust(width)}  {ms:7.1f} ms  {100.0 * ms / total_ms:5.1f} %'
              for name, ms in rows]
    return '\n'.join(lines)
