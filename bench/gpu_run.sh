#!/bin/bash
# The GPU figures issue 43 asks for, in one run on a lent device machine (one
# H100 or H200), each step under its own time cap so that one slow step leaves
# the others' figures:
#   1. rows/s of the paper's 768x12 model at 32 Euler steps in bf16 and of the
#      one-step student (256x1, configs/demo_distill.py), each beside a plain
#      matmul of its largest shape (bench/sample_throughput.py);
#   2. the 100M point end to end (make scale: train the demo, distil it, sample
#      100M rows, index and search them with faiss-gpu), timed per command.
# Figures go to $OUT (or bench-gpu/) as .md and .log; paste them into
# bench/RESULTS.md with the card's name.
#
#   bash bench/gpu_run.sh               # on the device machine, repository root
set -uo pipefail
OUT=${OUT:-bench-gpu}
mkdir -p "$OUT"
PY=${PY:-python}
if ! $PY -c 'import jax, faiss; assert jax.default_backend() == "gpu"; faiss.StandardGpuResources' \
    2>/dev/null; then
  $PY -m pip install -q -r requirements-gpu.txt || exit 1
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"

timeout 300 $PY bench/sample_throughput.py --configs base --dtypes bfloat16 --steps 32 \
  --batch-size 65536 --iters 20 --repeats 2 | tee "$OUT/throughput-full.md"
timeout 200 $PY bench/sample_throughput.py --configs demo --dtypes bfloat16,float32 --steps 1 \
  --batch-size 262144 --iters 20 --repeats 2 --models 256x1x768,256x3x768 \
  | tee "$OUT/throughput-student.md"

for step in "train.py --config configs/demo.py" \
            "train.py --config configs/demo_distill.py" \
            "evaluate.py --workdir runs/demo-distilled --config configs/demo_100m.py --quiet"; do
  start=$(date +%s)
  timeout 1500 $PY $step > "$OUT/scale-$(echo "$step" | cut -d' ' -f3 | tr '/.' '__').log" 2>&1
  rc=$?
  echo "| $step | $(( $(date +%s) - start )) s | rc $rc |" | tee -a "$OUT/scale-times.md"
done
cp runs/demo-distilled/eval/report.md "$OUT/scale-report.md" 2>/dev/null
cp runs/demo-distilled/eval/results.json "$OUT/scale-results.json" 2>/dev/null
