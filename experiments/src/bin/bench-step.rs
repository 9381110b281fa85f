//! Benchmark of one training step of GAN-EM's networks, beside PyTorch on the same CPU.
//!
//! Times the M-step update (one D update on a real and a generated batch, then one G update),
//! the E-net update at two batch sizes and an inference pass, each through the same library
//! code the EM loop runs. With `--pytorch FILE` (written by bench/pytorch_step.py) it prints
//! the ratio ours / PyTorch per row and writes everything to results/bench_step.csv.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::{load_profile, CsvOut};
use ganem_core::data::mnist;
use ganem_core::em::GanEm;
use ganem_core::nets::{classifier_flops, generator_flops};
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
    /// PyTorch timings (JSON object: row name -> milliseconds) to compare against.
    #[arg(long)]
    pytorch: Option<PathBuf>,
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
    /// `custom` (ganem's kernels) or `candle` (candle's own ops).
    kernels: &'static str,
    width: f64,
    ours_ms: f64,
    gflops: f64,
    pytorch_ms: Option<f64>,
    ratio: Option<f64>,
}

fn median_ms(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    let args = Args::parse();
    let k = 10;
    let mut profile = load_profile("mnist-cluster", "fast")?;
    profile.nets.width = args.width;
    profile.nets.generator_fc_hidden = 0;
    profile.nets.generator_activation = ganem_core::nets::Activation::LeakyRelu;
    let device = ganem_core::default_device()?;
    let image = mnist::SHAPE;
    let pytorch: BTreeMap<String, f64> = match &args.pytorch {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let all: BTreeMap<String, serde_json::Value> =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
            all.into_iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
                .collect()
        }
        None => BTreeMap::new(),
    };

    let d = classifier_flops(&profile.nets, image, k + 1);
    let e = classifier_flops(&profile.nets, image, k);
    let g = generator_flops(&profile.nets, image, k);
    let mut rows = Vec::new();
    let mut record = |name: &str, kernels: &'static str, ms: f64, flops: f64| {
        let py = pytorch.get(name).copied();
        rows.push(Row {
            name: name.to_string(),
            kernels,
            width: args.width,
            ours_ms: ms,
            gflops: flops / ms / 1e6,
            pytorch_ms: py,
            ratio: py.map(|p| ms / p),
        });
    };

    let kinds: &[&'static str] = if args.reference {
        &["custom", "candle"]
    } else {
        &["custom"]
    };
    for &kernels in kinds {
        ganem_core::ops::use_reference_ops(kernels == "candle");
        let mut model = GanEm::new(&profile, k, image, 64, args.seed, &device)?;
        let mut record = |name: &str, ms: f64, flops: f64| record(name, kernels, ms, flops);
        let batch = 64;
        let real = candle_core::Tensor::rand(0f32, 1f32, (batch, 28, 28, 1), &device)?;
        let w = candle_core::Tensor::full(1.0 / k as f32, (batch, k), &device)?;
        let ms = median_ms(args.repeats, || {
            model.gan_update(&real, &w).map(|_| ()).map_err(Into::into)
        })?;
        // D step: G forward, D forward + backward on 2B images; G step: D and G forward + backward.
        let b = batch as f64;
        record(
            "gan_iteration_b64",
            ms,
            b * (g + 3.0 * 2.0 * d + 3.0 * d + 2.0 * g),
        );
        for eb in [64, 256] {
            let ms = median_ms(args.repeats, || {
                model.enet_update(eb).map(|_| ()).map_err(Into::into)
            })?;
            record(
                &format!("enet_iteration_b{eb}"),
                ms,
                eb as f64 * (g + 3.0 * e),
            );
        }
        let images =
            candle_core::Tensor::rand(0f32, 1f32, (args.inference_images, 28, 28, 1), &device)?;
        let ms = median_ms(args.repeats.min(2), || {
            model.assign(&images).map(|_| ()).map_err(Into::into)
        })?;
        record("inference_10k", ms, args.inference_images as f64 * e);
    }
    println!(
        "{:<20} {:>8} {:>10} {:>9} {:>12} {:>8}",
        "row", "kernels", "ours ms", "GFLOP/s", "PyTorch ms", "ratio"
    );
    let mut csv = CsvOut::create(&args.out)?;
    for r in &rows {
        let fmt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:<20} {:>8} {:>10.1} {:>9.1} {:>12} {:>8}",
            r.name,
            r.kernels,
            r.ours_ms,
            r.gflops,
            fmt(r.pytorch_ms, 1),
            fmt(r.ratio, 2)
        );
        csv.row(r)?;
    }
    println!("wrote {}", csv.finish()?.display());
    Ok(())
}
