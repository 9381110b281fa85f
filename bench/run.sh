#!/usr/bin/env bash
# Training-step benchmark: ganem beside PyTorch on this CPU, interleaved in rounds in one run.
# Installs torch from PyPI into bench/.venv when missing. Usage: bench/run.sh [WIDTH] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
width="${1:-1.0}"
rounds="${2:-3}"
venv=bench/.venv
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch
fi
cargo build --release --bin bench-step
mkdir -p results
./target/release/bench-step --width "$width" --rounds "$rounds" --reference --python "$venv/bin/python"
