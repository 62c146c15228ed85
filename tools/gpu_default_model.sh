#!/usr/bin/env bash
# Issue 6 on the GPU machine: calibrate the style weight, compare instance vs batch
# normalization, and train the built-in model, with Keras 3 on JAX (no TensorFlow there).
#
# Prepare here (a machine with PyPI):
#   python tools/bundle.py --content ../shared/data/content -o bundle/ --weights auto
#   python tools/paintings_folder.py --copy --out bundle/paintings      # 17 paintings, ~9 MB
#   du -sh bundle/                                                       # under 64 MiB
# Then one device `run` per phase, each with carry ["bundle"] and a timeout that fits:
#   bash tools/gpu_default_model.sh calibrate   # 3 x 1500 steps at style weights 5e-4/1e-3/2e-3 (~3 min)
#   bash tools/gpu_default_model.sh compare     # instance vs batch, 3000 steps each (~4 min)
#   bash tools/gpu_default_model.sh final [WEIGHT] [NORM] [STEPS]   # e.g. 1e-3 instance 20000 (~8 min)
# Everything is written under $OUT (models, run folders with previews, logs).
set -euo pipefail
phase=${1:?usage: gpu_default_model.sh calibrate|compare|final [style_weight] [normalization] [steps]}
OUT=${OUT:?the device tool sets OUT}

pip install --quiet --no-deps --target /tmp/keras bundle/wheels/*.whl
export PYTHONPATH=/tmp/keras:$PWD KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

train() {  # name style_weight normalization steps [extra options]
  local name=$1 weight=$2 norm=$3 steps=$4; shift 4
  python -m stylecbn train \
    --styles bundle/paintings --content bundle/content --vgg-weights bundle/vgg16_block4.npz \
    --style-weight "$weight" --normalization "$norm" --steps "$steps" \
    --batch-size 16 --crop-size 256 --precision mixed_bfloat16 --seed 0 \
    --checkpoint-every 1000 --preview-every 500 --log-every 100 --no-tensorboard \
    -o "$OUT/$name.keras" --run-dir "$OUT/$name" "$@" 2>&1 | tee "$OUT/$name.log"
}

case $phase in
  calibrate)
    for weight in 5e-4 1e-3 2e-3; do train "calib_$weight" "$weight" instance 1500; done ;;
  compare)
    for norm in instance batch; do train "compare_$norm" "${2:-1e-3}" "$norm" 3000; done ;;
  final)
    train default "${2:-1e-3}" "${3:-instance}" "${4:-20000}" ;;
  resume)
    train default "${2:-1e-3}" "${3:-instance}" "${4:-20000}" --resume ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
