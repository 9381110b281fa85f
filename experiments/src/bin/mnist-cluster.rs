//! MNIST clustering with GAN-EM (Table 1, column 1): K = 10, 20 or 30 clusters.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::{load_profile, read_rows, Bars, CsvOut};
use ganem_core::data::{self, mnist};
use ganem_core::em::GanEm;
use ganem_core::metrics::score;
use ganem_core::report::save_image_grid;
use serde::{Deserialize, Serialize};

/// Cluster MNIST with GAN-EM and write one CSV row per EM iteration.
///
/// Writes results/mnist_cluster_k{K}_seed{N}.csv and
/// reports/figures/mnist_k{K}_seed{N}_samples.png (one row of generated digits per cluster).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Number of clusters K (the paper reports 10, 20 and 30).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Training profile: `fast` (this CPU, under an hour), `paper` (App. B.1 as written),
    /// `ci` (a few minutes), or a path to a TOML file of the same form.
    #[arg(long, default_value = "fast")]
    profile: String,
    /// Seed of every random draw; the same seed on the same machine gives the same numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the CSV table.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Folder for figures (written under `figures/`).
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// Folder holding MNIST's IDX files (else $GANEM_DATA_DIR, ../shared/data, ./data, or a
    /// download from the Hugging Face Hub).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override the profile's number of EM iterations.
    #[arg(long)]
    iterations: Option<usize>,
    /// Folder for checkpoints, saved after every EM iteration
    /// [default: checkpoints/mnist_k{K}_seed{N}].
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in --checkpoint-dir instead of starting afresh.
    #[arg(long)]
    resume: bool,
    /// Exit with an error when the final test error (a fraction) is above this (for CI).
    #[arg(long)]
    max_test_error: Option<f64>,
}

/// One row of the results table; the same columns in every experiment's CSV.
#[derive(Serialize, Deserialize)]
struct Row {
    iteration: usize,
    train_error: f64,
    test_error: f64,
    nmi: f64,
    ari: f64,
    train_nmi: f64,
    train_ari: f64,
    phi_min: f64,
    phi_max: f64,
    loss_d: f64,
    loss_g: f64,
    loss_e: f64,
    seconds: f64,
    mapping: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut profile = load_profile("mnist-cluster", &args.profile)?;
    if let Some(n) = args.iterations {
        profile.em.iterations = n;
    }
    let device = ganem_core::default_device()?;
    let location = data::locate(args.data_dir.as_deref());
    let splits = mnist::load(&location, &device)
        .with_context(|| format!("loading MNIST from {location:?}"))?;
    let subset = |set: &data::ImageSet, n: usize| {
        if n == 0 {
            Ok(set.clone())
        } else {
            set.truncate(n)
        }
    };
    let train = subset(&splits.train, profile.data.train_subset)?;
    let test = subset(&splits.test, profile.data.test_subset)?;
    let tag = format!("k{}_seed{}", args.k, args.seed);
    let csv_path = args.out.join(format!("mnist_cluster_{tag}.csv"));
    let checkpoints = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("checkpoints/mnist_{tag}")));

    let mut model = GanEm::new(
        &profile,
        args.k,
        mnist::SHAPE,
        train.len(),
        args.seed,
        &device,
    )?;
    // An interrupted run's rows are in the partial file; a finished run's in the CSV itself.
    let earlier_rows: Vec<Row> = if args.resume {
        let partial = CsvOut::partial_path(&csv_path);
        read_rows(if partial.exists() {
            &partial
        } else {
            &csv_path
        })?
    } else {
        Vec::new()
    };
    let mut csv = CsvOut::create(&csv_path)?;
    let mut elapsed_before = 0.0;
    if args.resume {
        model
            .resume(&checkpoints, &train)
            .with_context(|| format!("resuming from {}", checkpoints.display()))?;
        for row in earlier_rows
            .into_iter()
            .filter(|r| r.iteration <= model.iteration)
        {
            elapsed_before = row.seconds;
            csv.row(&row)?;
        }
        println!("resumed at EM iteration {}", model.iteration);
    }
    println!(
        "GAN-EM on MNIST: K = {}, profile {}, seed {}, {} training / {} test images, \
         matrix products by {}",
        args.k,
        args.profile,
        args.seed,
        train.len(),
        test.len(),
        ganem_core::ops::gemm_backend()
    );
    let started = Instant::now();
    let mut bars = Bars::new();
    let mut last_test_error = None;
    while model.iteration < profile.em.iterations {
        let stats = model.step(&train, &mut bars)?;
        let train_scores = score(
            &model.predict_from_assignments()?,
            &train.labels,
            args.k,
            train.classes,
        );
        let test_scores = score(
            &model.predict(&test.images)?,
            &test.labels,
            args.k,
            test.classes,
        );
        let row = Row {
            iteration: stats.iteration,
            train_error: train_scores.error,
            test_error: test_scores.error,
            nmi: test_scores.nmi,
            ari: test_scores.ari,
            train_nmi: train_scores.nmi,
            train_ari: train_scores.ari,
            phi_min: stats.phi_min,
            phi_max: stats.phi_max,
            loss_d: stats.loss_d,
            loss_g: stats.loss_g,
            loss_e: stats.loss_e,
            seconds: elapsed_before + started.elapsed().as_secs_f64(),
            mapping: test_scores.mapping.as_str().to_string(),
        };
        println!(
            "EM {:>3}: train error {:.4}, test error {:.4} ({} mapping), NMI {:.3}, ARI {:.3}, \
             phi [{:.3}, {:.3}], L_D {:.3} L_G {:.3} L_E {:.3}, {:.0} s",
            row.iteration,
            row.train_error,
            row.test_error,
            row.mapping,
            row.nmi,
            row.ari,
            row.phi_min,
            row.phi_max,
            row.loss_d,
            row.loss_g,
            row.loss_e,
            row.seconds
        );
        csv.row(&row)?;
        model
            .save(&checkpoints)
            .with_context(|| format!("saving checkpoint to {}", checkpoints.display()))?;
        last_test_error = Some(row.test_error);
    }
    let per_class = 10;
    let figure = args
        .reports
        .join(format!("figures/mnist_{tag}_samples.png"));
    save_image_grid(
        &model.samples(per_class, args.seed)?,
        args.k,
        per_class,
        &figure,
    )?;
    let written = csv.finish()?;
    println!("wrote {} and {}", written.display(), figure.display());
    if let (Some(limit), Some(err)) = (args.max_test_error, last_test_error) {
        anyhow::ensure!(
            err <= limit,
            "regression: final test error {err:.4} is above the threshold {limit:.4}"
        );
        println!("regression check passed: test error {err:.4} <= {limit:.4}");
    }
    Ok(())
}
