#!/usr/bin/env bash
# Everything a lent GPU should check, in one script that finishes in under 8 minutes on one data-centre card
# (the timeouts below add up to 7.5 min; a quiet H100/H200 should need about half). Random weights, nothing downloaded.
#
#   1. gpu_check.py: bf16/fp16 AMP, activation checkpointing (same gradients), bf16 frozen weights, and open_clip's
#      ViT-B-16-SigLIP (timm trunk, sigmoid loss) — pass/fail checks of the library's own methods;
#   2. train_step.py: R-Adapter vs FLYP vs LoRA step time and MFU, ViT-B/16 bf16 (MFU against the card's spec-sheet
#      dense bf16 peak, common.GPU_BF16_PEAK_GFLOPS; the measured 8192³ GEMM peak is printed next to it);
#   3. memory.py: peak memory and step time with/without checkpointing and with bf16 frozen weights, ViT-B/16 and
#      ViT-L/14 at batch 32 (torch.cuda.max_memory_allocated);
#   4. inference.py (merged = base?) and precision.py (fp32 / bf16 / bf16 frozen step time) on the GPU.
#
# Results land in benchmarks/results/gpu-<card>-<date>/ (OUT=... to change). Exit status 1 if a step failed.
#
#   bash benchmarks/gpu_check.sh                # CUDA; BATCH=64 for train_step (BATCH=128 suits 80 GB cards)
#   bash benchmarks/gpu_check.sh --cpu-smoke    # every step on tiny models on the CPU (seconds; tests run it)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
BATCH="${BATCH:-64}"
export HF_HUB_OFFLINE=1  # nothing is downloaded; fail fast instead of waiting for a network

if [ "${1:-}" = "--cpu-smoke" ]; then
    OUT="${OUT:-$(mktemp -d -t radapter-gpu-check-XXXXXX)}"
    DEV=(--device cpu)
    SMOKE=(--smoke)
    CHECK=(--cpu-smoke)
    AMP=bf16
    FIXED_TIMEOUT=120
    BATCH=4
else
    "$PY" - <<'PYEOF' || exit 1
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: torch sees no CUDA device (torch %s, CUDA build %s); use --cpu-smoke on a CPU"
             % (torch.__version__, torch.version.cuda))
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| bf16 supported:", torch.cuda.is_bf16_supported())
PYEOF
    CARD="$("$PY" -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "_"))')"
    OUT="${OUT:-benchmarks/results/gpu-${CARD}-$(date +%Y-%m-%d)}"
    DEV=(--device cuda)
    SMOKE=()
    CHECK=()
    AMP=bf16
    FIXED_TIMEOUT=
fi
mkdir -p "$OUT"
echo "writing to $OUT"
status=0
step() {  # step NAME SECONDS COMMAND...: runs under the timeout and tees the output to OUT/NAME.txt
    local name="$1" secs="${FIXED_TIMEOUT:-$2}"
    shift 2
    timeout "$secs" "$@" 2>&1 | grep -v -E '^(USDT|WARNING:root:No pretrained)|gpuGetDeviceCount' | tee "$OUT/$name.txt"
    local rc="${PIPESTATUS[0]}"
    if [ "$rc" -ne 0 ]; then
        echo "$name failed or timed out (exit $rc)"
        status=1
    fi
}

step gpu_check 110 "$PY" benchmarks/gpu_check.py "${DEV[@]}" "${CHECK[@]}" --json "$OUT/gpu_check.json"

step train_step 60 "$PY" benchmarks/train_step.py "${DEV[@]}" "${SMOKE[@]}" --amp "$AMP" --batch "$BATCH" \
    --warmup 3 --steps 10 --rounds 1 --inprocess --peak-gflops spec --json "$OUT/train_step.json"

# in-process: the CUDA figures are the caching allocator's, relative to what the process held before each variant
step memory 200 "$PY" benchmarks/memory.py "${DEV[@]}" "${SMOKE[@]}" --configs ViT-B-16@32 ViT-L-14@32 \
    --warmup 1 --steps 3 --rounds 1 --inprocess --json "$OUT/memory.json"

step inference 40 "$PY" benchmarks/inference.py "${DEV[@]}" "${SMOKE[@]}" --amp "$AMP" --batch "$((BATCH * 2))" \
    --text-batch "$((BATCH * 4))" --warmup 3 --rounds 20 --json "$OUT/inference.json"

# fp32 vs bf16 vs bf16 frozen step time on the device (no demo: its accuracy is a CPU result)
step precision 45 "$PY" benchmarks/precision.py "${DEV[@]}" "${SMOKE[@]}" --batch "$BATCH" --warmup 3 --steps 10 \
    --rounds 1 --inprocess --no-demo --json "$OUT/precision.json"

echo "done: $OUT"
exit "$status"
