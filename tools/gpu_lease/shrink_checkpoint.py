"""Write a training checkpoint small enough to come back from the lent machine (<= 16 MiB).

``python3 tools/gpu_lease/shrink_checkpoint.py IN OUT MAX_BYTES`` (run.sh calls it when a
run's ``checkpoint.safetensors`` is over the limit): keeps the model's tensors and the
record (step, history, config) and drops the optimizer's moments (AdamW's ``exp_avg`` and
``exp_avg_sq``, two thirds of the file); floating tensors go to fp16 as well if that is
still too large. ``stereo-depth train --resume`` reads the result like any checkpoint: the
weights as trained (to fp16 precision where it had to), the optimizer starting afresh.
Exit status 1 when even that is over MAX_BYTES.
"""

import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def main() -> int:
    """Shrink IN into OUT; 0 when OUT is at most MAX_BYTES."""
    source, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with safe_open(source, framework='pt') as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()
                   if key.startswith('model.')}
    if 'record' in metadata:
        record = json.loads(metadata['record'])
        record['optimizer_scalars'] = {}  # their tensors are gone: the optimizer restarts
        record.setdefault('extra', {})['shrunk_for_the_lease'] = True
        metadata['record'] = json.dumps(record, separators=(',', ':'))
    for half in (False, True):
        if half:
            tensors = {key: value.half() if value.is_floating_point() else value
                       for key, value in tensors.items()}
        save_file(tensors, target, metadata=metadata)
        if os.path.getsize(target) <= limit:
            print(f'{target}: {os.path.getsize(target) / 2 ** 20:.1f} MiB (model tensors'
                  f'{" in fp16" if half else ""}, no optimizer state)')
            return 0
    print(f'{target}: still {os.path.getsize(target) / 2 ** 20:.1f} MiB', file=sys.stderr)
    return 1


if __name__ == '__main__':
    torch.set_num_threads(1)
    sys.exit(main())
