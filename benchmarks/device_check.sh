#!/usr/bin/env bash
# Accelerator check: the ELECTRA-Small pre-training step (batch 32, length 128) in fp32, fp32 + XLA
# and mixed bfloat16, and the PyTorch pair (transformers, same model and objective) on the same GPU;
# prints tokens/s, the ratio to torch and MFU against a matmul peak measured in the same run.
#
#   benchmarks/device_check.sh [OUT_DIR]      # writes OUT_DIR/device_check.json (default: /tmp)
#
# With a GPU (nvidia-smi lists one) it installs what is missing (pip: this project with the
# `bench` extra, tensorflow[and-cuda]) and times 20 steps per mode after 3 warm-up steps, in
# under 5 minutes on a recent GPU (XLA compiles for about a minute). Without one it says so and
# falls back to a short CPU run (fp32 only, 1 step after 1 warm-up) that checks the script works;
# CPU figures belong to bench_pretraining.py runs (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-/tmp}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
  nvidia-smi -L
  if ! "$PY" -c "import tensorflow as tf, torch, transformers, tensorflow_text, sys
sys.exit(not (tf.config.list_physical_devices('GPU') and torch.cuda.is_available()))" 2>/dev/null; then
    echo "== installing: the project with the bench extra, tensorflow[and-cuda]"
    "$PY" -m pip install -q -e ".[bench]" "tensorflow[and-cuda]>=2.16,<2.22"
  fi
  "$PY" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, tf.config.list_physical_devices('GPU'))"
  "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  MODES="fp32,fp32_xla,bf16"
  STEPS=20
  WARMUP=3
  LIMIT=290  # the check's promise: under 5 minutes
else
  echo "== no GPU found (nvidia-smi lists none): short CPU fallback run, fp32 only, 1 step;"
  echo "   it checks this script, not the accelerator. CPU figures: BENCHMARKS.md."
  "$PY" -c "import torch, transformers" 2>/dev/null || "$PY" -m pip install -q -e ".[bench]"
  MODES="fp32"
  STEPS=1
  WARMUP=1
  LIMIT=1200  # a shared CPU may be slow; this run only checks the script
fi

start=$(date +%s)
timeout "$LIMIT" "$PY" benchmarks/bench_pretraining.py --modes "$MODES" --steps "$STEPS" \
  --warmup "$WARMUP" --json "$OUT_DIR/device_check.json"
echo "== device check done in $(($(date +%s) - start)) s; figures in $OUT_DIR/device_check.json"
