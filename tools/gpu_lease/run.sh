#!/bin/bash
# On a lent GPU machine (tools/gpu_lease/README.md), from the repository root:
#   OUT=... [JOBS="a b"] [SEEDS="s1 s2"] [CALL=600] [MIN=...] [LIMIT=...] [CONTINUE=1] \
#       bash tools/gpu_lease/run.sh
# trains the configs config/<job>.yaml of JOBS side by side, each for MIN minutes of steps
# (--minutes), on the photographs and pairs that pack.py put in DATA (.gpu), each into its own
# run folder runs/lease/<call>/<job> (--out-dir: any config works). What comes back, under
# $OUT (at most 8 files come back from a call: at most 6 jobs):
#   summary.txt                   each job's end (ok / timeout / FAILED and why), seeds, limits
#   logs.tgz                      every log, history.json and curves.png of the call
#   <job>.safetensors             a job's final weights, or where the time ran out first:
#   <job>.checkpoint.safetensors  its checkpoint (SIGINT at LIMIT; the trainer saves it then)
# Exit status: 0 every job's final weights came back; 4 some only a checkpoint; 1 a job
# brought back nothing; 2 the call was refused before training (arguments, files); 3 the
# machine lacks what training needs (Python packages, CUDA).
set -u
shopt -s nullglob
: "${OUT:?set OUT to the folder the results go to}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DEV=${DEV:-cuda}; DATA=${DATA:-.gpu}; CONTINUE=${CONTINUE:-0}; EXTRA=${EXTRA:-}
JOBS=${JOBS:-gpu_unseen_costnet}
# CALL: the seconds the call may run (run's timeout_s, or less where status says less device
# time is left). Every job gets SIGINT by then less GRACE (for its checkpoint) and RESERVE
# (for packing what comes back), whatever LIMIT says.
CALL=${CALL:-600}; GRACE=${GRACE:-20}; RESERVE=${RESERVE:-15}
MIN=${MIN:-$(awk -v c="$CALL" 'BEGIN { printf "%.2f", (c - 105) / 60 }')}
LIMIT=${LIMIT:-$(awk -v m="$MIN" 'BEGIN { printf "%d", m * 60 + 60 }')}
MAX_BYTES=$((16 * 1024 * 1024 - 65536))  # a file that comes back: at most 16 MiB
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

call=1
while [ -e "runs/lease/$call" ]; do call=$((call + 1)); done
CALLDIR=runs/lease/$call
mkdir -p "$CALLDIR/back" "$OUT" || exit 2
SUMMARY=$CALLDIR/summary.txt
note() { echo "$*" | tee -a "$SUMMARY"; }

# Packs the logs, copies what came back to $OUT, prints the summary and exits with $1.
finish() {
  local status=$1
  note "exit status $status ($2)"
  if [ -s "$CALLDIR/smi.txt" ]; then
    note "last GPU/load samples:"; tail -4 "$CALLDIR/smi.txt" >> "$SUMMARY"
  fi
  ( cd "$CALLDIR" && files=(*.log smi.tx[t] */train.log */history.json */checkpoint.json \
      */curves.png) && tar czf logs.tgz summary.txt "${files[@]}" 2>/dev/null )
  if [ "$(stat -c %s "$CALLDIR/logs.tgz" 2>/dev/null || echo 0)" -gt "$MAX_BYTES" ]; then
    ( cd "$CALLDIR" && files=(*.log smi.tx[t] */train.log */history.json) &&
      tar czf logs.tgz summary.txt "${files[@]}" 2>/dev/null )
  fi
  cp "$SUMMARY" "$OUT/summary.txt"
  [ -f "$CALLDIR/logs.tgz" ] && cp "$CALLDIR/logs.tgz" "$OUT/logs.tgz"
  for file in "$CALLDIR"/back/*; do cp "$file" "$OUT/"; done
  ls -la "$OUT"
  echo "--- summary ($SUMMARY) ---"; cat "$SUMMARY"
  exit "$status"
}

note "call $call in $PWD ($(date -u +%FT%TZ)): JOBS='$JOBS' DEV=$DEV MIN=$MIN LIMIT=$LIMIT" \
  "CALL=$CALL GRACE=$GRACE CONTINUE=$CONTINUE DATA=$DATA PY=$PY EXTRA='$EXTRA'"
read -r -a jobs <<< "$JOBS"
[ ${#jobs[@]} -ge 1 ] && [ ${#jobs[@]} -le 6 ] ||
  finish 2 "JOBS names ${#jobs[@]} configs: 1 to 6 (8 files come back: 2 + one per job)"
for job in "${jobs[@]}"; do
  [[ $job =~ ^[A-Za-z0-9_.-]+$ ]] && [ -f "config/$job.yaml" ] ||
    finish 2 "no config/$job.yaml (JOBS names configs without folder and .yaml)"
done
awk -v m="$MIN" -v l="$LIMIT" 'BEGIN { exit !(m > 0 && l >= 1) }' ||
  finish 2 "MIN ($MIN) and LIMIT ($LIMIT) must be positive numbers"
[ -d "$DATA/photos" ] && [ -d "$DATA/unlabeled_webp" ] ||
  finish 2 "$DATA/photos or $DATA/unlabeled_webp missing: run pack.py and carry $DATA"

# Where each job starts: its config's weights; with CONTINUE=1 what the latest earlier call
# on this machine returned for it (runs/lease/<call>/back); with FROM=<folder>, the
# <job>.safetensors or <job>.checkpoint.safetensors there (files returned to you, carried).
FROM=${FROM:-}
starts=()
for job in "${jobs[@]}"; do
  start=config
  if [ -n "$FROM" ]; then folders=("$FROM")
  elif [ "$CONTINUE" = 1 ]; then
    folders=(); for ((k = call - 1; k >= 1; k--)); do folders+=("runs/lease/$k/back"); done
  else folders=()
  fi
  for folder in "${folders[@]}"; do
    if [ -f "$folder/$job.safetensors" ]; then start=$folder/$job.safetensors; break; fi
    if [ -f "$folder/$job.checkpoint.safetensors" ]; then
      start=$folder/$job.checkpoint.safetensors; break
    fi
  done
  if { [ -n "$FROM" ] || [ "$CONTINUE" = 1 ]; } && [ "$start" = config ]; then
    finish 2 "CONTINUE/FROM: nothing to continue $job from in ${folders[*]:-no earlier call}
    (JOBS: only the jobs that returned something)"
  fi
  starts+=("$start")
done

# Seeds: distinct and new unless SEEDS names them (one per job, or 'config' for each
# config's own); tools/gpu_lease/seeds.py avoids the configs' and earlier calls' seeds.
SEEDS=${SEEDS:-}
if [ -z "$SEEDS" ]; then
  used=$(cat runs/lease/*/seeds.txt 2>/dev/null | tr '\n' ' ')
  SEEDS=$($PY "$HERE/seeds.py" --count ${#jobs[@]} --used $used) ||
    finish 2 "seeds.py failed: give SEEDS"
fi
read -r -a seeds <<< "$SEEDS"
if [ "$SEEDS" = config ]; then
  seeds=(); for job in "${jobs[@]}"; do seeds+=(config); done
fi
[ ${#seeds[@]} -eq ${#jobs[@]} ] || finish 2 "SEEDS has ${#seeds[@]} seeds for ${#jobs[@]} jobs"
for seed in "${seeds[@]}"; do
  [[ $seed =~ ^([0-9]+|config)$ ]] || finish 2 "SEEDS: '$seed' is not a seed"
  [ "$seed" = config ] || echo "$seed" >> "$CALLDIR/seeds.txt"
done

{ command -v nvidia-smi > /dev/null && nvidia-smi -L 2>&1; echo "cores $(nproc --all)"; } |
  tee -a "$CALLDIR/setup.log"
$PY -c "import torch, cv2, numpy, safetensors, yaml
print('torch', torch.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__,
      'cuda', torch.cuda.is_available())
assert '$DEV' != 'cuda' or torch.cuda.is_available(), 'DEV=cuda but torch sees no GPU'
" >> "$CALLDIR/setup.log" 2>&1 || { tail -3 "$CALLDIR/setup.log" >> "$SUMMARY"
  finish 3 "$PY lacks a package, or CUDA (setup.log)"; }
photos=~/.cache/stereo_depth_ros/photos
if [ -e "$photos" ] && [ ! -L "$photos" ]; then
  finish 2 "$photos is a real photo folder, not the link this script makes: not replacing it
    (for a dry run, point HOME elsewhere)"
fi
case $DATA in /*) target=$DATA/photos ;; *) target=$PWD/$DATA/photos ;; esac
mkdir -p ~/.cache/stereo_depth_ros && rm -f "$photos" && ln -s "$target" "$photos"
$PY "$HERE/unpack.py" "$DATA/unlabeled_webp" ../shared/data/unlabeled \
  >> "$CALLDIR/setup.log" 2>&1 || finish 3 "unpacking the pairs failed (setup.log)"
note "setup took $SECONDS s: $(tail -1 "$CALLDIR/setup.log")"

# The sampler runs while the jobs do, and is stopped when they end.
( while :; do
    { date -u +%T; command -v nvidia-smi > /dev/null &&
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
      uptime; } >> "$CALLDIR/smi.txt" 2>&1
    sleep 20
  done ) > /dev/null 2>&1 < /dev/null &
sampler=$!

pids=(); limits=(); started=$SECONDS
for i in "${!jobs[@]}"; do
  job=${jobs[$i]} dir=$CALLDIR/${jobs[$i]} args=()
  # SIGINT, not SIGTERM or SIGKILL: the trainer saves its checkpoint on an interrupt
  cap=$((CALL - SECONDS - GRACE - RESERVE))
  limit=$(awk -v l="$LIMIT" -v c="$cap" 'BEGIN { printf "%d", (l < c ? l : c) }')
  if [ "$cap" -lt 10 ]; then
    note "$job: no time left before CALL ($CALL s) ends: not started"; limit=0
  fi
  limits+=("$limit")
  if [ "$limit" -gt 0 ] && awk -v l="$limit" -v m="$MIN" 'BEGIN { exit !(l < m * 60 + 40) }'
  then
    note "$job: warning: SIGINT after $limit s may come before its final weights (MIN $MIN)"
  fi
  [ "${seeds[$i]}" = config ] || args+=(--seed "${seeds[$i]}")
  case ${starts[$i]} in
    config) ;;
    *.checkpoint.safetensors)
      mkdir -p "$dir" && cp "${starts[$i]}" "$dir/checkpoint.safetensors"; args+=(--resume) ;;
    *) args+=(--weights "${starts[$i]}") ;;
  esac
  if [ "$limit" -eq 0 ]; then pids+=(0); continue; fi
  # shellcheck disable=SC2086  # EXTRA is a list of options
  timeout -s INT -k "$GRACE" "$limit" $PY -m stereo_depth_ros.training.train \
    --config "config/$job.yaml" --device "$DEV" --minutes "$MIN" --out-dir "$dir" \
    --no-export --no-progress "${args[@]}" $EXTRA > "$CALLDIR/$job.log" 2>&1 &
  pids+=($!)
  note "$job: seed ${seeds[$i]}, from ${starts[$i]}${EXTRA:+ (and EXTRA)}, SIGINT after" \
    "$limit s (pid ${pids[$i]})"
done

rcs=()
for i in "${!jobs[@]}"; do
  if [ "${pids[$i]}" = 0 ]; then rcs+=(-); continue; fi
  wait "${pids[$i]}"; rcs+=($?)
done
kill "$sampler" 2>/dev/null
note "jobs ended $((SECONDS - started)) s after they started"

status=0
for i in "${!jobs[@]}"; do
  job=${jobs[$i]} dir=$CALLDIR/${jobs[$i]} rc=${rcs[$i]} weights=
  for file in "$dir"/*.safetensors; do
    case $(basename "$file") in checkpoint*) ;; *) weights=$file ;; esac
  done
  steps=$(grep -o 'finished [0-9]* steps in [0-9.]* min' "$dir/train.log" 2>/dev/null | tail -1)
  case $rc in 124) why="SIGINT at $((limits[i])) s" ;; 137) why="killed $GRACE s after SIGINT" ;;
    0) why="ended" ;; -) why="not started" ;; *) why="exit status $rc" ;; esac
  if [ -n "$weights" ]; then
    cp "$weights" "$CALLDIR/back/$job.safetensors"
    note "$job: OK ($why, $steps): final weights $job.safetensors" \
      "($(stat -c %s "$weights") bytes)"
  elif [ -f "$dir/checkpoint.safetensors" ] &&
      ! cmp -s "$dir/checkpoint.safetensors" "${starts[$i]}"; then  # not the one it resumed
    step=$(grep -m1 -o '"step": *[0-9]*' "$dir/checkpoint.json" 2>/dev/null | grep -o '[0-9]*$')
    back=$CALLDIR/back/$job.checkpoint.safetensors
    if [ "$(stat -c %s "$dir/checkpoint.safetensors")" -le "$MAX_BYTES" ]; then
      cp "$dir/checkpoint.safetensors" "$back"
    elif ! $PY "$HERE/shrink_checkpoint.py" "$dir/checkpoint.safetensors" "$back" \
        "$MAX_BYTES" >> "$CALLDIR/setup.log" 2>&1; then
      rm -f "$back"
    fi
    if [ -f "$back" ]; then
      [ $status -eq 0 ] && status=4
      note "$job: TIMEOUT ($why): no final weights; checkpoint of step ${step:-?}" \
        "returned as $job.checkpoint.safetensors ($(stat -c %s "$back") bytes);" \
        "weights from it: README.md, 'What comes back'"
    else
      status=1; note "$job: FAILED ($why): checkpoint of step ${step:-?} over 16 MiB, not returned"
    fi
  else
    status=1
    note "$job: FAILED ($why): nothing to return; the end of $job.log:"
    tail -n 15 "$CALLDIR/$job.log" 2>/dev/null | sed 's/^/    /' >> "$SUMMARY"
  fi
done
case $status in 0) finish 0 "every job's final weights came back" ;;
  4) finish 4 "a job returned only its checkpoint" ;; *) finish 1 "a job returned nothing" ;; esac
