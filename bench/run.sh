#!/usr/bin/env bash
# Training-step benchmark: ganem beside PyTorch on this CPU, interleaved in rounds in one run,
# for Table 4's networks (width 1.0), the `fast` profiles' (width 0.5), the authors' generator
# with its FC 1024 layer at width 0.5, and one whole EM iteration of the `fast` clustering
# profile beside the PyTorch reference GAN-EM. All rows go to results/bench_step.csv; first, the
# host's raw speed (effective clock, fp32 FMA rates) to results/bench_host.csv.
# Installs torch, numpy and scipy from PyPI into bench/.venv when missing.
# Usage: bench/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
venv=bench/.venv
if ! "$venv/bin/python" -c "import torch, numpy, scipy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy scipy
fi
cargo build --release --bin bench-step
mkdir -p results
./target/release/bench-step --host
bench=(./target/release/bench-step --rounds "$rounds" --python "$venv/bin/python")
"${bench[@]}" --width 1.0
"${bench[@]}" --append --width 0.5
"${bench[@]}" --append --width 0.5 --generator-fc-hidden 1024
"${bench[@]}" --append --em-iteration
