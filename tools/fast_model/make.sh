#!/usr/bin/env bash
# The built-in fast model (stylecbn/assets/fast.keras): distilled from the built-in model on
# this project's CPU, and continued from where the last session stopped.
#
#   bash tools/fast_model/make.sh [STEPS]     # train (or continue) up to STEPS (default 20000)
#   Ctrl-C stops it with a checkpoint; the same command continues it.
#   bash tools/fast_model/make.sh ship STEPS  # write the model at the last checkpoint, install it
#
# The student is the `lowres` preset (README "The recipe, chosen by measurement" says why: the table of
# benchmarks/distill_recipe.py and the latencies of benchmarks/architecture_cost.py).
# It needs ../shared/data/content (the project's photos). The content folder is a folder of
# links to them (bundle/distill/content, the 3 held-out photos of README's quality tables left
# out), made by benchmarks/distill_recipe.py's own function; nothing is copied. The run
# folder is bundle/fast/run-lowres (git-ignored). The teacher's paintings are painted there
# again when missing (about 20 minutes here), or hard-linked from another run folder of
# bundle/fast (distill checks their fingerprint and repaints them when it differs). The
# student's state comes from the newest checkpoint committed beside this script, unless the
# run folder has a newer one.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python}
preset=lowres
run=bundle/fast/run-$preset
mode=train
if [ "${1:-}" = ship ]; then mode=ship; shift; fi
steps=${1:-20000}

$python - <<'PY'
import sys
sys.path.insert(0, "benchmarks")
from pathlib import Path
from distill_recipe import content_links
content_links(Path("bundle/distill"))
PY
mkdir -p "$run"
if [ ! -d "$run/teacher" ]; then
  for other in bundle/fast/*/teacher; do
    if [ -f "$other/fingerprint.json" ]; then
      mkdir "$run/teacher"
      ln "$other"/* "$run/teacher/"
      break
    fi
  done
fi
committed=$(ls tools/fast_model/checkpoint-*.npz 2>/dev/null | sort | tail -1 || true)
newest=$(ls "$run"/checkpoint-*.npz 2>/dev/null | sort | tail -1 || true)
if [ -n "$committed" ] && { [ -z "$newest" ] || [[ "$(basename "$committed")" > "$(basename "$newest")" ]]; }; then
  cp "$committed" "$run/"
  newest=$run/$(basename "$committed")
fi
resume=()
[ -n "$newest" ] && resume=(--resume)

if [ $mode = ship ]; then
  $python -m stylecbn distill -o bundle/fast/fast.keras --run-dir "$run" --resume \
    --steps "$steps" --force
  $python tools/ship_default_model.py bundle/fast/fast.keras --name fast --float32
  exit
fi
$python -m stylecbn distill --teacher default --content bundle/distill/content \
  -o bundle/fast/fast.keras --run-dir "$run" --preset "$preset" --steps "$steps" \
  --crop-size 160 --photo-size 288 --batch-size 16 --precision mixed_bfloat16 \
  --pixel-weight 10 --gram-weight 1e-3 --gram-normalization absolute --feature-weight 100 \
  --checkpoint-every 200 --preview-every 500 --log-every 50 --no-tensorboard \
  "${resume[@]}" --force
