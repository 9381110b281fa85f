#!/usr/bin/env bash
# Lanes against one process: the same short two-seed sweep (MNIST clustering, `short-rounds`,
# a few EM iterations; and CelebA with 100 labels, two attributes, one iteration) run in one
# process with every core and with `--lanes 2`, alternated in rounds in one run, each in a
# fresh scratch folder. Prints each timing and the ratio of the medians, and appends the rows
# to results/bench_lanes.csv with the host's CPU model.
# Usage: bench/lanes.sh [ROUNDS] [MNIST_ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
iterations="${2:-3}"
cargo build --release --bin mnist-cluster --bin celeba
root="$(pwd)"
data="${GANEM_DATA_DIR:-$root/../shared/data}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cores="$(nproc)"
out=results/bench_lanes.csv
mkdir -p results
[ -f "$out" ] || echo "sweep,mode,round,seconds,cores,cpu" >"$out"

sweep() { # NAME LANES
  local dir="$scratch/$1-$2-$round"
  mkdir -p "$dir"
  local start end
  start=$(date +%s.%N)
  case "$1" in
    mnist) (cd "$dir" && env -u RAYON_NUM_THREADS "$root/target/release/mnist-cluster" --k 10 \
      --profile short-rounds --iterations "$iterations" --seeds 1,2 --lanes "$2" \
      --data-dir "$data/mnist" >/dev/null) ;;
    celeba) (cd "$dir" && env -u RAYON_NUM_THREADS "$root/target/release/celeba" \
      --attribute Eyeglasses,Wearing_Hat --labels 100 --profile fast --iterations 1 --seed 1 \
      --lanes "$2" --data-dir "$data" >/dev/null) ;;
  esac
  end=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
  local mode=$([ "$2" = 1 ] && echo "one process" || echo "$2 lanes")
  echo "$1,$mode,$round,$seconds,$cores,\"$cpu\"" >>"$out"
  echo "$1 ($mode), round $round: $seconds s"
  echo "$seconds" >>"$scratch/$1-$2.times"
}

for round in $(seq 1 "$rounds"); do
  for name in mnist celeba; do
    sweep "$name" 1
    sweep "$name" 2
  done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for name in mnist celeba; do
  one=$(median "$scratch/$name-1.times")
  two=$(median "$scratch/$name-2.times")
  echo "$name: one process $one s, two lanes $two s (medians of $rounds); one process / lanes = $(awk -v a="$one" -v b="$two" 'BEGIN {printf "%.2f", a / b}')"
done
