#!/bin/bash
# On a lent GPU machine (tools/gpu_lease/README.md): train the configs of JOBS side by side
# for MIN minutes each, on the photographs and pairs that pack.py put in .gpu; results,
# logs and each run's final weights (<run folder>.safetensors), under $OUT. Exit status 1 when
# a run left no final weights.
set -u
shopt -s nullglob
: "${OUT:?set OUT to the folder the results go to}"
PY=${PY:-python3}; MIN=${MIN:-7}; DEV=${DEV:-cuda}; LIMIT=${LIMIT:-540}
JOBS=${JOBS:-"gpu_costnet gpu_batch16_costnet"}
nvidia-smi -L 2>/dev/null; echo "cores $(nproc)"
$PY -c "import torch, cv2, numpy; print(torch.__version__, cv2.__version__, numpy.__version__, torch.cuda.is_available())"
photos=~/.cache/stereo_depth_ros/photos
if [ -e "$photos" ] && [ ! -L "$photos" ]; then
  echo "$photos is a real photo folder, not the link this script makes: not replacing it" >&2
  exit 2
fi
mkdir -p ~/.cache/stereo_depth_ros && rm -f "$photos" && ln -s "$PWD/.gpu/photos" "$photos"
$PY .gpu/unpack.py .gpu/unlabeled_webp ../shared/data/unlabeled || exit 3
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
rm -rf runs/*gpu*  # a warm machine keeps runs/ between calls: no stale weights come back
for cfg in $JOBS; do
  # SIGINT, not SIGTERM: the trainer saves its checkpoint on an interrupt
  ( timeout -s INT -k 30 "$LIMIT" $PY -m stereo_depth_ros.training.train \
      --config "config/$cfg.yaml" --device "$DEV" --minutes "$MIN" --no-export --no-progress \
      ${EXTRA:-} > "$OUT/$cfg.log" 2>&1
    echo "rc $?" >> "$OUT/$cfg.log" ) &
done
( sleep 150; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv > "$OUT/smi.txt" 2>&1
  uptime >> "$OUT/smi.txt" ) &
wait
status=0
for run in runs/*gpu*; do
  weights=
  for file in "$run"/*.safetensors; do
    case $(basename "$file") in checkpoint*) ;; *) weights=$file ;; esac
  done
  if [ -n "$weights" ]; then cp "$weights" "$OUT/$(basename "$run").safetensors"
  else echo "$run: no final weights" | tee -a "$OUT/missing.txt"; status=1; fi
done
logs=(runs/*gpu*/train.log runs/*gpu*/history.json runs/*gpu*/curves.png)
[ ${#logs[@]} -gt 0 ] && tar czf "$OUT/runs.tgz" "${logs[@]}"
ls -la "$OUT"
exit $status
