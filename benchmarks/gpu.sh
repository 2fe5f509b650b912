#!/usr/bin/env bash
# The GPU measurements of benchmarks/RESULTS.md, in one script (about 8 minutes on one H100/H200-class GPU).
#
#   bash benchmarks/gpu.sh                       # on a machine with a GPU: full sizes, device cuda
#   SIZE=small DEVICE=cpu bash benchmarks/gpu.sh # the same steps at toy sizes on CPU (what the test runs)
#
# Writes JSON files and a log under $OUT (default bench-out/gpu). Steps:
#   1. D* and nearest-two at (10,000 x 50,000 x 3072) beside the peers, in fp32, TF32 and bf16 autocast,
#      with errors against float64 (benchmarks/peers.py --size cifar);
#   2. an 18-step Heun trajectory with D* (m = 1,000, n = 50,000, d = 3072; benchmarks/sampler.py);
#   3. images/s of yoon-unet-128 on 32x32 Mondrian, bf16 autocast, channels_last, compile off and on,
#      memgen train against a plain loop (benchmarks/train_step.py), and the peak GPU memory;
#   4. steps/s of every network and batch that `memgen report --scale paper` trains, and the hours of the
#      whole report on one GPU (benchmarks/paper_cost.py --measure).
set -euo pipefail
SIZE="${SIZE:-full}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-bench-out/gpu}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
if [ "$SIZE" = small ]; then
  PEERS=small; M=16; N=500; D=48; PRESET=unet-tiny; IMG=8; BATCH=8; STEPS=6; PRECISIONS="fp32 bf16"; COMPILES="off"
  COST="--scale quick --seeds 1 --steps 1"
else
  PEERS=cifar; M=1000; N=50000; D=3072; PRESET=yoon-unet-128; IMG=32; BATCH=128; STEPS=30; PRECISIONS="fp32 tf32 bf16"; COMPILES="off default"
  COST="--scale paper --steps 10"
fi
{
  echo "# $(date -u +%FT%TZ) SIZE=$SIZE DEVICE=$DEVICE load: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; fi
  for p in $PRECISIONS; do
    "$PY" -m benchmarks.peers --size "$PEERS" --device "$DEVICE" --precision "$p" --repeats 3 --no-memory \
      --out "$OUT/peers_$p.json"
  done
  "$PY" -m benchmarks.sampler --m "$M" --n "$N" --d "$D" --device "$DEVICE" --out "$OUT/sampler.json"
  for c in $COMPILES; do
    "$PY" -m benchmarks.train_step --preset "$PRESET" --size "$IMG" --batch "$BATCH" --steps "$STEPS" --rounds 1 \
      --device "$DEVICE" --precision bf16 --channels-last on --compile "$c" --out "$OUT/train_compile_$c.json"
  done
  # shellcheck disable=SC2086
  "$PY" -m benchmarks.paper_cost $COST --measure "$DEVICE" --out "$OUT/paper_cost.json"
} 2>&1 | tee "$OUT/log.txt"
