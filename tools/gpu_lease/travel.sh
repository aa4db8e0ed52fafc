#!/bin/bash
# What a call of the lent machine carries (at most 64 MiB: the tracked and untracked-not-
# ignored files of the checkout the session was started in, plus the carried paths), and how
# to keep it under that (tools/gpu_lease/README.md, step 2). From the repository root:
#   bash tools/gpu_lease/travel.sh size [CARRIED ...]  # the sizes; exit 1 when over (default .gpu)
#   bash tools/gpu_lease/travel.sh slim                # empty the files a costnet run never reads
#   bash tools/gpu_lease/travel.sh restore             # put them back, byte for byte
# slim empties only files that are unchanged against git (HEAD) and keeps a copy of each in
# runs/gpu_slim/ (ignored); restore copies them back and checks them against HEAD.
set -u
cd "$(git rev-parse --show-toplevel)" || exit 2
LIMIT=$((64 * 1024 * 1024))
BACKUP=runs/gpu_slim
# The report's networks' weights (a costnet run reads models/costnet.safetensors only) and
# the documentation's images.
slim_files() {
  printf '%s\n' models/dispnet.safetensors models/dispnetc.safetensors \
    models/dispnet_qr.safetensors models/squeezeseg.safetensors
  git ls-files docs/images
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

case ${1:-size} in
  size)
    shift $(($# > 0 ? 1 : 0))
    [ $# -gt 0 ] || set -- .gpu
    tree=$(git ls-files -z -c -o --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null |
      awk '{ s += $1 } END { print s + 0 }')
    total=$tree
    echo "working tree (tracked + untracked not ignored): $tree bytes ($(mib "$tree"))"
    for path in "$@"; do
      size=$(du -sb "$path" 2>/dev/null | cut -f1); size=${size:-0}
      echo "carried $path: $size bytes ($(mib "$size"))"
      total=$((total + size))
    done
    echo "in all: $total bytes ($(mib "$total")) of $LIMIT ($(mib "$LIMIT"))"
    if [ "$total" -gt "$LIMIT" ]; then
      echo "OVER the limit: 'bash tools/gpu_lease/travel.sh slim' (restore after the call)"
      exit 1
    fi ;;
  slim)
    slim_files | while read -r file; do
      if [ ! -s "$file" ]; then continue; fi
      if ! git diff --quiet HEAD -- "$file"; then
        echo "$file differs from HEAD: left as it is"; continue
      fi
      mkdir -p "$BACKUP/$(dirname "$file")" && cp -p "$file" "$BACKUP/$file" && : > "$file" &&
        echo "emptied $file"
    done
    echo "restore with: bash tools/gpu_lease/travel.sh restore (before any commit)" ;;
  restore)
    status=0
    slim_files | while read -r file; do
      if [ -f "$BACKUP/$file" ] && [ ! -s "$file" ]; then cp -p "$BACKUP/$file" "$file"; fi
    done
    while read -r file; do
      git diff --quiet HEAD -- "$file" || { echo "$file still differs from HEAD"; status=1; }
    done < <(slim_files)
    [ $status -eq 0 ] && echo "restored: the slimmed files match HEAD"
    exit $status ;;
  *) echo "usage: travel.sh size [CARRIED ...] | slim | restore" >&2; exit 2 ;;
esac
