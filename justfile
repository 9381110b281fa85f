# GAN-EM experiments. `just --list` shows the recipes.

seed := "1"

# Build everything in release mode (training is unusable without optimisation).
build:
    cargo build --release

# The test suite (the same command CI runs).
test:
    cargo test --release

# What CI runs: format check, build, tests and the MNIST regression run.
ci:
    bash .ci/run

# GAN-EM clustering of MNIST with K clusters on a profile (fast, paper, ci or a TOML path).
mnist-cluster k="10" profile="fast":
    cargo run --release --bin mnist-cluster -- --k {{k}} --profile {{profile}} --seed {{seed}}

# k-means and GMM on raw pixels (Table 1, first two rows).
mnist-baselines:
    cargo run --release --bin mnist-baselines -- --seed {{seed}}

# Reproduce a table of the paper: `just reproduce table1` (MNIST column, fast profile).
reproduce table profile="fast":
    #!/usr/bin/env bash
    set -euo pipefail
    case "{{table}}" in
      table1)
        cargo build --release
        ./target/release/mnist-baselines --seed {{seed}}
        for k in 10 20 30; do
          ./target/release/mnist-cluster --k $k --profile {{profile}} --seed {{seed}}
        done ;;
      *) echo "only table1 (MNIST clustering column) is implemented so far" >&2; exit 2 ;;
    esac

# Training-step benchmark against PyTorch, interleaved in rounds (installs torch into
# bench/.venv when missing).
bench width="1.0" rounds="3":
    bash bench/run.sh {{width}} {{rounds}}
