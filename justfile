# GAN-EM experiments. `just --list` shows the recipes.

seeds := "1,2,3"
# Sweeps run their runs (seeds; for CelebA attributes and seeds) in this many processes side
# by side (`--lanes`): on 2 cores two lanes of one thread finish sooner than one process with two.
lanes := "2"
# Extra cargo flags for every build, e.g. `just features="--features cuda" reproduce table1 paper`.
features := ""

# Build everything in release mode (training is unusable without optimisation).
build:
    cargo build --release {{features}}

# The test suite (the same command CI runs).
test:
    cargo test --release

# What CI runs: format check, build, tests and the MNIST regression run.
ci:
    bash .ci/run

# GAN-EM clustering of MNIST: K clusters, a profile (short-rounds, fast, paper, ci or a TOML path), seeds.
mnist-cluster k="10" profile="short-rounds" seeds=seeds:
    cargo run --release {{features}} --bin mnist-cluster -- --k {{k}} --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}

# Semi-supervised classification: `just semi mnist 100`, `just semi svhn 1000`.
semi dataset="mnist" labels="100" profile="fast" seeds=seeds:
    cargo run --release {{features}} --bin semi-supervised -- --dataset {{dataset}} --labels {{labels}} --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}

# k-means and GMM on raw pixels (Table 1, first two rows).
mnist-baselines:
    cargo run --release {{features}} --bin mnist-baselines -- --seed 1

# Each recipe choice of the fast profile switched alone (configs/mnist-cluster/ablation.toml).
ablation seeds=seeds:
    cargo build --release {{features}}
    ./target/release/mnist-ablation --seeds {{seeds}}

# Table 1's clustering cells run `clustering`: by default short-rounds with fast (the best
# clustering recipe measured), otherwise the profile itself.
# Reproduce a table with its report, e.g. `just reproduce table1 fast 1,2,3`; finished runs are skipped.
reproduce table profile="fast" seeds=seeds clustering="":
    #!/usr/bin/env bash
    set -euo pipefail
    clustering="{{clustering}}"
    if [ -z "$clustering" ]; then
      if [ "{{profile}}" = fast ]; then clustering=short-rounds; else clustering="{{profile}}"; fi
    fi
    case "{{table}}" in
      table1)
        cargo build --release {{features}}
        [ -f results/mnist_baselines.csv ] || ./target/release/mnist-baselines --seed 1
        for k in 10 20 30; do
          ./target/release/mnist-cluster --k $k --profile "$clustering" --seeds {{seeds}} --lanes {{lanes}}
        done
        ./target/release/semi-supervised --dataset mnist --labels 100 --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}
        ./target/release/semi-supervised --dataset mnist --labels 1000 --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}
        ./target/release/semi-supervised --dataset svhn --labels 1000 --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}
        ./target/release/report table1 --profile {{profile}} --clustering-profile "$clustering" ;;
      table2|table3)
        cargo build --release {{features}}
        ./target/release/celeba --attribute all --labels 0 --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}
        ./target/release/celeba --attribute all --labels 100 --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}
        ./target/release/celeba --attribute all --labels 100 --labels-only 200 --profile {{profile}} --seeds {{seeds}} --lanes {{lanes}}
        ./target/release/report table2 --profile {{profile}} ;;
      *) echo "unknown table {{table}}: table1, table2 or table3" >&2; exit 2 ;;
    esac

# The paper's table beside our finished runs (results/table1.csv, reports/table1.md, figures).
report table="table1" profile="fast" clustering="short-rounds":
    cargo run --release {{features}} --bin report -- {{table}} --profile {{profile}} --clustering-profile {{clustering}}

# k = 2 learns slowly, so its runs go to `k2_iterations` EM iterations (README: 100).
# Fig. 4: E-net features with k = 2, 100, 1000 (unsupervised) and 1000 (supervised), t-SNE maps.
dimred profile="fast" seeds=seeds k2_iterations="100":
    cargo build --release {{features}}
    ./target/release/dimred --k-dim 2 --profile {{profile}} --seeds {{seeds}} --iterations {{k2_iterations}} --lanes {{lanes}}
    ./target/release/dimred --k-dim 100 --profile {{profile}} --seed 1
    ./target/release/dimred --k-dim 1000 --profile {{profile}} --seed 1
    ./target/release/dimred --k-dim 1000 --supervised --profile {{profile}} --seed 1

# CelebA's 40 attributes (Tables 2 and 3), unsupervised and with 100 labels, the E-net on the
# 100 labels alone (the baseline), then the report.
celeba-all profile="fast" seeds=seeds: (reproduce "table2" profile seeds)

# Training steps and one EM iteration against PyTorch, interleaved rounds (bench/run.sh).
bench rounds="3":
    bash bench/run.sh {{rounds}}

# A short sweep in one process and in `--lanes 2`, alternated in rounds (bench/lanes.sh).
bench-lanes rounds="2":
    bash bench/lanes.sh {{rounds}}
