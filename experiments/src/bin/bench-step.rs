//! Benchmark of one training step of GAN-EM's networks, beside PyTorch on the same CPU.
//!
//! Times the M-step update (one D update on a real and a generated batch, then one G update),
//! the E-net update at two batch sizes and an inference pass, each through the same library
//! code the EM loop runs. With `--python` it runs bench/pytorch_step.py (the same networks in
//! PyTorch) in every round, prints the ratio ours / PyTorch per row and writes everything to
//! results/bench_step.csv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Parser;
use experiments::{load_profile, CsvOut};
use ganem_core::config::Profile;
use ganem_core::data::mnist;
use ganem_core::em::GanEm;
use ganem_core::nets::{classifier_flops, generator_flops};
use ganem_core::ops;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Network width multiplier (1.0 = Table 4).
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Timed repetitions per row (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Images in the inference pass.
    #[arg(long, default_value_t = 10000)]
    inference_images: usize,
    /// Rounds; each runs PyTorch then every variant of ours, and each row reports medians over
    /// rounds, so that a slow spell of a shared machine hits both sides alike.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Python with torch installed: run the PyTorch reference in every round (e.g.
    /// bench/.venv/bin/python). Without it only our timings are measured.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/pytorch_step.py")]
    pytorch_script: PathBuf,
    #[arg(long, default_value = "results/bench_step.csv")]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also time candle's own ops (no custom kernels), the "before" of every row.
    #[arg(long)]
    reference: bool,
}

#[derive(Serialize)]
struct Row {
    name: String,
    /// `custom+openblas`, `custom+gemm` (ganem's kernels, matrix products by OpenBLAS or the
    /// gemm crate) or `candle` (candle's own ops).
    kernels: &'static str,
    width: f64,
    rounds: usize,
    /// Median over rounds of each round's median time.
    ours_ms: f64,
    gflops: f64,
    pytorch_ms: Option<f64>,
    /// Median over rounds of ours / PyTorch within the round.
    ratio: Option<f64>,
    ratio_min: Option<f64>,
    ratio_max: Option<f64>,
    /// The host the row was measured on.
    cpu_model: String,
    vector_isa: String,
    /// The product library as loaded (its kernel), whichever `kernels` used.
    product_library: String,
    threads: usize,
}

/// One round's (ours ms, PyTorch ms) for one row.
type RoundTiming = (f64, Option<f64>);

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_ms(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

/// Runs the PyTorch reference once; returns row name -> milliseconds.
fn run_pytorch(args: &Args, python: &Path) -> Result<BTreeMap<String, f64>> {
    let script = &args.pytorch_script;
    let output = Command::new(python)
        .arg(script)
        .args(["--width", &args.width.to_string()])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--inference-images", &args.inference_images.to_string()])
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let all: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing the output of {}", script.display()))?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
        .collect())
}

/// Our timings of every row with the current kernels: (row name, ms, FLOPs per call).
fn time_rows(args: &Args, profile: &Profile) -> Result<Vec<(String, f64, f64)>> {
    let k = 10;
    let image = mnist::SHAPE;
    let device = ganem_core::default_device()?;
    let d = classifier_flops(&profile.nets, image, k + 1);
    let e = classifier_flops(&profile.nets, image, k);
    let g = generator_flops(&profile.nets, image, k);
    let mut model = GanEm::new(profile, k, image, 64, args.seed, &device)?;
    let mut rows = Vec::new();
    let batch = 64;
    let real = Tensor::rand(0f32, 1f32, (batch, 28, 28, 1), &device)?;
    let w = Tensor::full(1.0 / k as f32, (batch, k), &device)?;
    let ms = median_ms(args.repeats, || {
        model.gan_update(&real, &w).map(|_| ()).map_err(Into::into)
    })?;
    // D step: G forward, D forward + backward on 2B images; G step: D and G forward +
    // backward. FLOPs as PyTorch computes them (ganem skips D's weight gradients in G's step).
    let b = batch as f64;
    let flops = b * (g + 3.0 * 2.0 * d + 3.0 * d + 2.0 * g);
    rows.push(("gan_iteration_b64".to_string(), ms, flops));
    for eb in [64, 256] {
        let ms = median_ms(args.repeats, || {
            model.enet_update(eb).map(|_| ()).map_err(Into::into)
        })?;
        rows.push((
            format!("enet_iteration_b{eb}"),
            ms,
            eb as f64 * (g + 3.0 * e),
        ));
    }
    let images = Tensor::rand(0f32, 1f32, (args.inference_images, 28, 28, 1), &device)?;
    let ms = median_ms(args.repeats.min(2), || {
        model.assign(&images).map(|_| ()).map_err(Into::into)
    })?;
    rows.push((
        "inference_10k".to_string(),
        ms,
        args.inference_images as f64 * e,
    ));
    Ok(rows)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut profile = load_profile("mnist-cluster", "fast", &[])?.profile;
    profile.nets.width = args.width;
    profile.nets.generator_fc_hidden = 0;
    profile.nets.generator_activation = ganem_core::nets::Activation::LeakyRelu;

    let mut variants = Vec::new();
    ops::use_gemm_crate(false);
    if ops::gemm_backend() == "openblas" {
        variants.push("custom+openblas");
    }
    variants.push("custom+gemm");
    if args.reference {
        variants.push("candle");
    }
    // (variant, row) -> per-round timings; FLOPs per row, in row order.
    let mut timings: BTreeMap<(&str, String), Vec<RoundTiming>> = BTreeMap::new();
    let mut flops: Vec<(String, f64)> = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let pytorch = match &args.python {
            Some(python) => run_pytorch(&args, python)?,
            None => BTreeMap::new(),
        };
        for &variant in &variants {
            ops::use_reference_ops(variant == "candle");
            ops::use_gemm_crate(variant == "custom+gemm");
            for (name, ms, f) in time_rows(&args, &profile)? {
                let py = pytorch.get(&name).copied();
                let py_text = py.map_or("-".to_string(), |p| format!("{p:.1} ms"));
                eprintln!(
                    "round {round}: {name:<20} {variant:<16} {ms:>8.1} ms  PyTorch {py_text}"
                );
                timings
                    .entry((variant, name.clone()))
                    .or_default()
                    .push((ms, py));
                if !flops.iter().any(|(n, _)| *n == name) {
                    flops.push((name, f));
                }
            }
        }
    }
    ops::use_reference_ops(false);
    ops::use_gemm_crate(false);

    println!(
        "{:<20} {:>16} {:>9} {:>9} {:>11} {:>7} {:>13}",
        "row", "kernels", "ours ms", "GFLOP/s", "PyTorch ms", "ratio", "ratio range"
    );
    let host = experiments::provenance::Provenance::of_this_process();
    println!(
        "host: {}, {}, {}, {} threads",
        host.cpu_model, host.vector_isa, host.product_library, host.threads
    );
    let mut csv = CsvOut::create(&args.out)?;
    for &variant in &variants {
        for (name, f) in &flops {
            let per_round = &timings[&(variant, name.clone())];
            let ours_ms = median(&mut per_round.iter().map(|t| t.0).collect::<Vec<_>>());
            let mut pytorch: Vec<f64> = per_round.iter().filter_map(|t| t.1).collect();
            let mut ratios: Vec<f64> = per_round
                .iter()
                .filter_map(|&(ours, py)| py.map(|py| ours / py))
                .collect();
            let row = Row {
                name: name.clone(),
                kernels: variant,
                width: args.width,
                rounds: per_round.len(),
                ours_ms,
                gflops: f / ours_ms / 1e6,
                pytorch_ms: (!pytorch.is_empty()).then(|| median(&mut pytorch)),
                ratio: (!ratios.is_empty()).then(|| median(&mut ratios)),
                ratio_min: ratios.first().copied(),
                ratio_max: ratios.last().copied(),
                cpu_model: host.cpu_model.clone(),
                vector_isa: host.vector_isa.clone(),
                product_library: host.product_library.clone(),
                threads: host.threads,
            };
            let fmt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
            let range = match (row.ratio_min, row.ratio_max) {
                (Some(lo), Some(hi)) => format!("{lo:.2}-{hi:.2}"),
                _ => "-".to_string(),
            };
            println!(
                "{:<20} {:>16} {:>9.1} {:>9.1} {:>11} {:>7} {:>13}",
                row.name,
                row.kernels,
                row.ours_ms,
                row.gflops,
                fmt(row.pytorch_ms, 1),
                fmt(row.ratio, 2),
                range
            );
            csv.row(&row)?;
        }
    }
    println!("wrote {}", csv.finish()?.display());
    Ok(())
}
