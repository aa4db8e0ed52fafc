#!/bin/bash
# On a lent GPU machine (tools/gpu_lease/README.md): train the configs of JOBS side by side
# for MIN minutes each, on the photographs and pairs that pack.py put in .gpu; results,
# logs and each run's final weights (<run folder>.safetensors), under $OUT.
set -u
PY=${PY:-python3}; MIN=${MIN:-7}; DEV=${DEV:-cuda}; LIMIT=${LIMIT:-540}
JOBS=${JOBS:-"gpu_costnet gpu_batch16_costnet"}
nvidia-smi -L 2>/dev/null; echo "cores $(nproc)"; df -h /dev/shm | tail -1
$PY -c "import torch, cv2, numpy; print(torch.__version__, cv2.__version__, numpy.__version__, torch.cuda.is_available())"
mkdir -p ~/.cache/stereo_depth_ros && rm -rf ~/.cache/stereo_depth_ros/photos
ln -s "$PWD/.gpu/photos" ~/.cache/stereo_depth_ros/photos
$PY .gpu/unpack.py .gpu/unlabeled_webp ../shared/data/unlabeled || exit 3
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
for cfg in $JOBS; do
  ( timeout "$LIMIT" $PY -m stereo_depth_ros.training.train --config "config/$cfg.yaml" \
      --device "$DEV" --minutes "$MIN" --no-export --no-progress ${EXTRA:-} > "$OUT/$cfg.log" 2>&1
    echo "rc $?" >> "$OUT/$cfg.log" ) &
done
( sleep 150; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv > "$OUT/smi.txt" 2>&1; uptime >> "$OUT/smi.txt" ) &
wait
for run in runs/*gpu*; do
  b=$(ls "$run"/*.safetensors 2>/dev/null | grep -v checkpoint | head -1)
  if [ -n "$b" ]; then cp "$b" "$OUT/$(basename "$run").safetensors"
  else echo "$run: no final weights" >> "$OUT/missing.txt"; fi
done
tar czf "$OUT/runs.tgz" runs/*gpu*/train.log runs/*gpu*/history.json runs/*gpu*/curves.png 2>/dev/null
ls -la "$OUT"
