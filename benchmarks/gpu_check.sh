#!/usr/bin/env bash
# The first time a CUDA GPU is available: train_step and inference (and the precision step-time ratio) on the
# GPU with bf16 autocast, sized to finish in under 5 minutes on one data-centre card. MFU is reported against
# the card's spec-sheet dense bf16 peak (benchmarks/common.py: GPU_BF16_PEAK_GFLOPS; the measured 8192³ bf16
# GEMM peak is printed next to it). Results land in benchmarks/results/gpu-<card>-<date>/.
#
#   bash benchmarks/gpu_check.sh            # BATCH=64 by default; BATCH=128 on 80 GB cards is also fine
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
BATCH="${BATCH:-64}"

"$PY" - <<'PYEOF' || exit 1
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: torch sees no CUDA device (torch %s, CUDA build %s)" % (torch.__version__, torch.version.cuda))
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| bf16 supported:", torch.cuda.is_bf16_supported())
PYEOF

CARD="$("$PY" -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "_"))')"
OUT="${OUT:-benchmarks/results/gpu-${CARD}-$(date +%Y-%m-%d)}"
mkdir -p "$OUT"
echo "writing to $OUT"

# Budget (timeouts add up to 4.5 min): a GPU is quiet, so one round per method is enough. Each run is ~15 s of
# process start + model build, then 3 warm-up + 10 timed steps of well under a second.
status=0
timeout 150 "$PY" benchmarks/train_step.py --device cuda --amp bf16 --batch "$BATCH" \
    --warmup 3 --steps 10 --rounds 1 --peak-gflops spec --json "$OUT/train_step.json" | tee "$OUT/train_step.txt" \
    || { echo "train_step failed or timed out"; status=1; }

timeout 60 "$PY" benchmarks/inference.py --device cuda --amp bf16 --batch "$((BATCH * 2))" \
    --text-batch "$((BATCH * 4))" --warmup 3 --rounds 20 --json "$OUT/inference.json" | tee "$OUT/inference.txt" \
    || { echo "inference failed or timed out"; status=1; }

# fp32 vs bf16 step time on the GPU (no demo: its accuracy is a CPU result)
timeout 60 "$PY" benchmarks/precision.py --device cuda --batch "$BATCH" --warmup 3 --steps 10 --rounds 1 \
    --no-demo --json "$OUT/precision.json" | tee "$OUT/precision.txt" \
    || { echo "precision failed or timed out"; status=1; }

echo "done: $OUT"
exit "$status"
