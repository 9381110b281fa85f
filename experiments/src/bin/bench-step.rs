//! Benchmark of one training step of GAN-EM's networks, beside PyTorch on the same CPU.
//!
//! Times the M-step update (one D update on a real and a generated batch, then one G update),
//! the E-net update at two batch sizes and an inference pass, each through the same library
//! code the EM loop runs. With `--python` it runs bench/pytorch_step.py (the same networks in
//! PyTorch) in every round, prints the ratio ours / PyTorch per row and writes everything to
//! results/bench_step.csv.
//!
//! With `--em-iteration` it times instead one whole EM iteration of the `fast` clustering profile
//! on MNIST beside the PyTorch reference (`../shared/reference/ganem_probe.py`, `--em 1`) at
//! the same recipe, so that the end-to-end cost is on the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Parser;
use experiments::load_profile;
use ganem_core::config::Profile;
use ganem_core::data::{mnist, ImageSet};
use ganem_core::em::{GanEm, Silent};
use ganem_core::nets::{classifier_flops, generator_flops};
use ganem_core::ops;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Network width multiplier (1.0 = Table 4; 0.5 = the `fast` profiles).
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Units of the generator's extra FC input layer before scaling by the width (0 = Table 4;
    /// 1024 = the authors' code and the `fast-v1` profile).
    #[arg(long, default_value_t = 0)]
    generator_fc_hidden: usize,
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
    /// Keep the rows of an earlier `--out` file other than those this run measures (same row,
    /// kernels, width and generator), so that several configurations share one table.
    #[arg(long)]
    append: bool,
    /// Time only one whole EM iteration of the `fast` clustering profile on MNIST (M-step,
    /// E-step, assignment of the training images, test predictions), beside the reference
    /// with `--python`.
    #[arg(long)]
    em_iteration: bool,
    /// Measure only the host's raw speed (its effective clock and fp32 multiply-add rates at
    /// 256 and 512 bits, one thread and all threads) into results/bench_host.csv, one row per
    /// kind of host, so that timings from two hosts can be compared with what each can do.
    #[arg(long)]
    host: bool,
    #[arg(long, default_value = "results/bench_host.csv")]
    host_out: PathBuf,
    /// The PyTorch reference GAN-EM for `--em-iteration`.
    #[arg(long, default_value = "../shared/reference/ganem_probe.py")]
    probe: PathBuf,
    /// MNIST's folder for `--em-iteration` (default: ../shared/data or $GANEM_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Serialize, serde::Deserialize)]
struct Row {
    name: String,
    /// `custom+openblas`, `custom+gemm` (ganem's kernels, matrix products by OpenBLAS or the
    /// gemm crate) or `candle` (candle's own ops).
    kernels: String,
    width: f64,
    generator_fc_hidden: usize,
    rounds: usize,
    /// Median over rounds of each round's median time.
    ours_ms: f64,
    /// What PyTorch computes per second at our time (empty for the EM iteration).
    gflops: Option<f64>,
    pytorch_ms: Option<f64>,
    /// Median over rounds of ours / PyTorch within the round.
    ratio: Option<f64>,
    ratio_min: Option<f64>,
    ratio_max: Option<f64>,
    /// The host the row was measured on.
    cpu_model: String,
    vector_isa: String,
    /// The library that computed the row's matrix products (OpenBLAS with its kernel, or the
    /// gemm crate with the widest ISA it uses).
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
        .args([
            "--generator-fc-hidden",
            &args.generator_fc_hidden.to_string(),
        ])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--inference-images", &args.inference_images.to_string()])
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .output();
    let stdout = checked_output(python, script, output)?;
    let all: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&stdout)
        .with_context(|| format!("parsing the output of {}", script.display()))?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
        .collect())
}

/// The standard output of a finished Python script, or an error with its standard error.
fn checked_output(
    python: &Path,
    script: &Path,
    output: std::io::Result<std::process::Output>,
) -> Result<Vec<u8>> {
    let output =
        output.with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// The `fast` clustering profile with the reference's generator: its first feature map has
/// 128 channels at any width (ours scales it with the width, 64 at 0.5).
fn em_iteration_profile() -> Result<Profile> {
    let mut profile = load_profile("mnist-cluster", "fast", &[])?.profile;
    profile.nets.generator_base_channels = (128.0 / profile.nets.width).round() as usize;
    Ok(profile)
}

/// Milliseconds of the reference's first EM iteration at `profile`'s recipe (it prints whole
/// seconds since its start after every iteration).
fn run_probe(args: &Args, python: &Path, profile: &Profile) -> Result<f64> {
    let output = Command::new(python)
        .arg(&args.probe)
        .args(["--em", "1", "--seed", &args.seed.to_string()])
        .args(["--m-epochs", &profile.em.m_step_epochs.to_string()])
        .args(["--e-iters", &profile.em.e_step_iterations.to_string()])
        .args(["--width", &profile.nets.width.to_string()])
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .output();
    let stdout =
        String::from_utf8_lossy(&checked_output(python, &args.probe, output)?).into_owned();
    let seconds = stdout
        .split_whitespace()
        .find_map(|word| {
            word.strip_prefix("t=")?
                .strip_suffix('s')?
                .parse::<f64>()
                .ok()
        })
        .with_context(|| {
            format!(
                "no `t=...s` in the output of {}: {stdout}",
                args.probe.display()
            )
        })?;
    Ok(seconds * 1e3)
}

/// One EM iteration of ours, as `mnist-cluster` runs it, then the test predictions.
fn time_em_iteration(
    args: &Args,
    profile: &Profile,
    train: &ImageSet,
    test: &ImageSet,
) -> Result<f64> {
    let device = ganem_core::default_device()?;
    let mut model = GanEm::new(profile, 10, mnist::SHAPE, train.len(), args.seed, &device)?;
    let start = Instant::now();
    model.step(train, &mut Silent)?;
    model.predict(&test.images)?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
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
    if args.host {
        return measure_host(&args.host_out);
    }
    let mut profile = load_profile("mnist-cluster", "fast", &[])?.profile;
    profile.nets.width = args.width;
    profile.nets.generator_fc_hidden = args.generator_fc_hidden;
    profile.nets.generator_activation = ganem_core::nets::Activation::LeakyRelu;
    let em = if args.em_iteration {
        let profile = em_iteration_profile()?;
        let (train, test) = experiments::load_mnist(
            args.data_dir.as_deref(),
            &profile,
            &ganem_core::default_device()?,
        )?;
        Some((profile, train, test))
    } else {
        None
    };
    let width = em.as_ref().map_or(args.width, |(p, _, _)| p.nets.width);

    let mut variants = Vec::new();
    if ops::openblas_available() {
        variants.push("custom+openblas");
    }
    variants.push("custom+gemm");
    if args.reference && em.is_none() {
        variants.push("candle");
    }
    // (variant, row) -> per-round timings; FLOPs per row, in row order.
    let mut timings: BTreeMap<(&str, String), Vec<RoundTiming>> = BTreeMap::new();
    let mut flops: Vec<(String, f64)> = Vec::new();
    let mut libraries: BTreeMap<&str, String> = BTreeMap::new();
    for round in 1..=args.rounds.max(1) {
        let pytorch = match (&args.python, &em) {
            (Some(python), None) => run_pytorch(&args, python)?,
            (Some(python), Some((profile, _, _))) => {
                BTreeMap::from([(EM_ROW.to_string(), run_probe(&args, python, profile)?)])
            }
            (None, _) => BTreeMap::new(),
        };
        for &variant in &variants {
            ops::use_reference_ops(variant == "candle");
            ops::use_products(Some(match variant {
                "custom+openblas" => ops::Products::OpenBlas,
                _ => ops::Products::GemmCrate,
            }));
            libraries.insert(variant, ops::gemm_library());
            let rows = match &em {
                Some((profile, train, test)) => vec![(
                    EM_ROW.to_string(),
                    time_em_iteration(&args, profile, train, test)?,
                    f64::NAN,
                )],
                None => time_rows(&args, &profile)?,
            };
            for (name, ms, f) in rows {
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
    ops::use_products(None);

    println!(
        "{:<20} {:>16} {:>9} {:>9} {:>11} {:>7} {:>13}",
        "row", "kernels", "ours ms", "GFLOP/s", "PyTorch ms", "ratio", "ratio range"
    );
    let host = experiments::provenance::Provenance::of_this_process();
    println!(
        "host: {}, {}, {} threads, products by default: {}",
        host.cpu_model, host.vector_isa, host.threads, host.product_library
    );
    let mut measured = Vec::new();
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
                kernels: variant.to_string(),
                width,
                generator_fc_hidden: if em.is_some() {
                    0
                } else {
                    args.generator_fc_hidden
                },
                rounds: per_round.len(),
                ours_ms,
                gflops: (!f.is_nan()).then(|| f / ours_ms / 1e6),
                pytorch_ms: (!pytorch.is_empty()).then(|| median(&mut pytorch)),
                ratio: (!ratios.is_empty()).then(|| median(&mut ratios)),
                ratio_min: ratios.first().copied(),
                ratio_max: ratios.last().copied(),
                cpu_model: host.cpu_model.clone(),
                vector_isa: host.vector_isa.clone(),
                product_library: libraries[variant].clone(),
                threads: host.threads,
            };
            let fmt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
            let range = match (row.ratio_min, row.ratio_max) {
                (Some(lo), Some(hi)) => format!("{lo:.2}-{hi:.2}"),
                _ => "-".to_string(),
            };
            println!(
                "{:<20} {:>16} {:>9.1} {:>9} {:>11} {:>7} {:>13}",
                row.name,
                row.kernels,
                row.ours_ms,
                fmt(row.gflops, 1),
                fmt(row.pytorch_ms, 1),
                fmt(row.ratio, 2),
                range
            );
            measured.push(row);
        }
    }
    let same = |a: &Row, b: &Row| {
        (&a.name, &a.kernels, a.width, a.generator_fc_hidden)
            == (&b.name, &b.kernels, b.width, b.generator_fc_hidden)
    };
    if args.append {
        experiments::merge_rows(&args.out, measured, same)?;
    } else {
        experiments::report::write_rows(&args.out, &measured)?;
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `--host`: this host's raw rates, replacing its earlier row in `out`.
fn measure_host(out: &Path) -> Result<()> {
    let speed = experiments::host_speed::HostSpeed::measure();
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "host: {} ({}), {}, {} threads",
        speed.cpu_model, speed.cpu_family_model, speed.vector_isa, speed.threads
    );
    println!(
        "effective clock {} GHz; fp32 FMA GFLOP/s per thread: {} at 256 bits, {} at 512 bits; \
         {} on all {} threads",
        rate(speed.effective_clock_ghz),
        rate(speed.fma256_gflops),
        rate(speed.fma512_gflops),
        rate(speed.all_threads_gflops),
        speed.threads
    );
    let same = |a: &experiments::host_speed::HostSpeed, b: &experiments::host_speed::HostSpeed| {
        (&a.cpu_model, &a.cpu_family_model, &a.vector_isa, a.threads)
            == (&b.cpu_model, &b.cpu_family_model, &b.vector_isa, b.threads)
    };
    experiments::merge_rows(out, vec![speed], same)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The row of `--em-iteration`.
const EM_ROW: &str = "em_iteration_fast";
