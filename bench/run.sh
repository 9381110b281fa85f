#!/usr/bin/env bash
# Training-step benchmark: ganem beside PyTorch on this CPU, in one run.
# Installs torch from PyPI into bench/.venv when missing. Usage: bench/run.sh [WIDTH]
set -euo pipefail
cd "$(dirname "$0")/.."
width="${1:-1.0}"
venv=bench/.venv
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch
fi
cargo build --release --bin bench-step
mkdir -p results
"$venv/bin/python" bench/pytorch_step.py --width "$width" > results/bench_pytorch.json
./target/release/bench-step --width "$width" --reference --pytorch results/bench_pytorch.json
