//! MNIST clustering with GAN-EM (Table 1, column 1): K = 10, 20 or 30 clusters, over seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::provenance::Provenance;
use experiments::runs::{parse_seeds, run_stem, write_summary, FinalScores, RunRecord};
use experiments::{check_memory, load_profile, read_rows, Bars, CsvOut};
use ganem_core::config::Profile;
use ganem_core::data::{self, mnist, ImageSet};
use ganem_core::em::{GanEm, RunIdentity, RunStatus};
use ganem_core::metrics::score;
use ganem_core::report::save_image_grid;
use ganem_core::Error;
use serde::{Deserialize, Serialize};

const EXPERIMENT: &str = "mnist_cluster";

/// Cluster MNIST with GAN-EM and write one CSV row per EM iteration, for one seed or several.
///
/// Each run writes results/mnist_cluster_{profile}_k{K}_seed{S}.csv (one row per EM
/// iteration, with a `status` column: ok, or collapsed by the rule in docs/deviations.md),
/// results/mnist_cluster_{profile}_k{K}_seed{S}.json (how it ended and what produced it) and
/// reports/figures/mnist_cluster_{profile}_k{K}_seed{S}_samples.png (a row of generated digits
/// per cluster); then results/mnist_cluster_summary.csv is rebuilt: mean ± std over the seeds
/// of every K and profile. A run that already finished is skipped (--force reruns it).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Number of clusters K (the paper reports 10, 20 and 30).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Training profile: `fast` (this CPU, about 15 minutes per run), `paper` (App. B.1 as
    /// written), `ci` (a few minutes), or a path to a TOML file of the same form.
    #[arg(long, default_value = "fast")]
    profile: String,
    /// Change one setting of the profile, e.g. `--set em.enet_batch_norm=batch` (repeatable;
    /// the value in TOML syntax). The results are filed under `profile[settings]`.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Seed of every random draw; the same seed on the same machine gives the same numbers.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    seed: u64,
    /// Several seeds, one run each, e.g. `1,2,3` or `1-5`; a failed run does not stop the
    /// others.
    #[arg(long)]
    seeds: Option<String>,
    /// Folder for the CSV tables, run records and the summary.
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
    /// Folder under which each run keeps its checkpoint, saved after every EM iteration.
    #[arg(long, default_value = "checkpoints")]
    checkpoint_dir: PathBuf,
    /// Continue each run from its checkpoint instead of starting afresh.
    #[arg(long)]
    resume: bool,
    /// Rerun runs that already finished.
    #[arg(long)]
    force: bool,
    /// Exit with an error when a run's final test error (a fraction) is above this (for CI).
    #[arg(long)]
    max_test_error: Option<f64>,
}

/// One row of the results table.
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
    sample_spread: f64,
    status: RunStatus,
    seconds: f64,
    mapping: String,
}

/// Everything the runs of one invocation share.
struct Setup {
    args: Args,
    profile: Profile,
    /// The profile's name and overrides, under which results are filed.
    label: String,
    train: ImageSet,
    test: ImageSet,
    device: candle_core::Device,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let loaded = load_profile("mnist-cluster", &args.profile, &args.overrides)?;
    let (mut profile, label) = (loaded.profile, loaded.label);
    if let Some(n) = args.iterations {
        profile.em.iterations = n;
    }
    profile
        .validate()
        .map_err(|m| anyhow::anyhow!("invalid setting: {m}"))?;
    if let Some(limit) = args.max_test_error {
        anyhow::ensure!(
            (0.0..=1.0).contains(&limit),
            "--max-test-error {limit} is out of range: it is a fraction in [0, 1]"
        );
    }
    let seeds = match &args.seeds {
        Some(text) => parse_seeds(text)?,
        None => vec![args.seed],
    };
    let device = ganem_core::default_device()?;
    let location = data::locate(args.data_dir.as_deref());
    let splits = mnist::load(&location, &device)
        .with_context(|| format!("loading MNIST from {location:?}"))?;
    profile.validate_data(splits.train.len(), splits.test.len())?;
    let subset = |set: &ImageSet, n: usize| {
        if n == 0 {
            Ok(set.clone())
        } else {
            set.truncate(n)
        }
    };
    let train = subset(&splits.train, profile.data.train_subset)?;
    let test = subset(&splits.test, profile.data.test_subset)?;
    anyhow::ensure!(
        (2..=train.len()).contains(&args.k),
        "--k {} is out of range: K must be in [2, {}] (the number of training images)",
        args.k,
        train.len()
    );
    check_memory(
        &format!("K = {} on {} training images", args.k, train.len()),
        GanEm::memory_estimate(&profile, args.k, mnist::SHAPE, train.len()),
    )?;
    let setup = Setup {
        args,
        profile,
        label,
        train,
        test,
        device,
    };

    let mut failed = Vec::new();
    let mut finished = 0;
    for &seed in &seeds {
        match run(&setup, seed) {
            Ok(record) => {
                finished += 1;
                if record.status == RunStatus::Diverged {
                    failed.push(format!(
                        "seed {seed}: {}",
                        record.message.unwrap_or_default()
                    ));
                }
            }
            Err(e) => {
                eprintln!("seed {seed} failed: {e:#}");
                failed.push(format!("seed {seed}: {e:#}"));
            }
        }
    }
    if finished > 0 {
        let hashes = BTreeMap::from([(setup.label.clone(), setup.profile.fingerprint())]);
        let (path, stale) = write_summary(&setup.args.out, EXPERIMENT, &hashes)?;
        println!("summary: {}", path.display());
        if stale > 0 {
            println!(
                "  ({stale} run(s) of earlier settings of profile {} left out of it)",
                setup.label
            );
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} of {} run(s) failed:\n  {}",
        failed.len(),
        seeds.len(),
        failed.join("\n  ")
    );
    Ok(())
}

/// Runs (or resumes, or skips) one seed; writes its CSV, record and figure once at least one
/// EM iteration has finished, and nothing otherwise.
fn run(setup: &Setup, seed: u64) -> Result<RunRecord> {
    let Setup {
        args,
        profile,
        label,
        train,
        test,
        device,
    } = setup;
    let identity = RunIdentity {
        dataset: "mnist".into(),
        clusters: args.k,
        profile: label.clone(),
        profile_hash: profile.fingerprint(),
        seed,
    };
    let stem = run_stem(EXPERIMENT, &identity);
    let csv_path = args.out.join(format!("{stem}.csv"));
    let record_path = RunRecord::path(&args.out, &stem);
    let checkpoints = args.checkpoint_dir.join(&stem);
    if !args.force && !args.resume && record_path.exists() {
        let record = RunRecord::read(&record_path)?;
        if record.identity == identity && record.iterations >= profile.em.iterations {
            println!(
                "{stem}: finished earlier ({} iterations, test error {:.4}); --force reruns it",
                record.iterations, record.scores.test_error
            );
            return Ok(record);
        }
    }

    let mut model = GanEm::new(profile, args.k, mnist::SHAPE, train.len(), seed, device)?;
    let mut rows: Vec<Row> = Vec::new();
    if args.resume {
        // The checkpoint is checked before anything else is read, so a mismatch says so.
        GanEm::checkpoint_iteration(&checkpoints, &identity)
            .with_context(|| format!("resuming from {}", checkpoints.display()))?;
        model.resume(&checkpoints, &identity, train)?;
        // An interrupted run's rows are in the partial file; a finished run's in the CSV.
        let partial = CsvOut::partial_path(&csv_path);
        let earlier: Vec<Row> = read_rows(if partial.exists() {
            &partial
        } else {
            &csv_path
        })?;
        rows.extend(
            earlier
                .into_iter()
                .filter(|r| r.iteration <= model.iteration),
        );
        println!("{stem}: resumed at EM iteration {}", model.iteration);
    }
    println!(
        "GAN-EM on MNIST: K = {}, profile {} ({}), seed {seed}, {} training / {} test images, \
         matrix products by {}, {} threads",
        args.k,
        label,
        identity.profile_hash,
        train.len(),
        test.len(),
        ganem_core::ops::gemm_backend(),
        rayon::current_num_threads()
    );
    // Created with the first row, so a run that finishes no iteration writes nothing.
    let mut csv: Option<CsvOut> = None;
    let write_row = |csv: &mut Option<CsvOut>, row: &Row| -> Result<()> {
        if csv.is_none() {
            *csv = Some(CsvOut::create(&csv_path)?);
        }
        csv.as_mut().expect("created").row(row)
    };
    for row in &rows {
        write_row(&mut csv, row)?;
    }
    let elapsed_before = rows.last().map_or(0.0, |r| r.seconds);
    let started = Instant::now();
    let mut bars = Bars::new();
    let mut diverged = None;
    while model.iteration < profile.em.iterations {
        let stats = match model.step(train, &mut bars) {
            Ok(stats) => stats,
            Err(e @ Error::Diverged { .. }) => {
                eprintln!("{stem}: {e}; the run stops, its last checkpoint and rows stay");
                diverged = Some(e.to_string());
                break;
            }
            Err(e) => return Err(e.into()),
        };
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
            sample_spread: stats.sample_spread,
            status: stats.status,
            seconds: elapsed_before + started.elapsed().as_secs_f64(),
            mapping: test_scores.mapping.as_str().to_string(),
        };
        println!(
            "EM {:>3}: train error {:.4}, test error {:.4} ({} mapping), NMI {:.3}, ARI {:.3}, \
             phi [{:.3}, {:.3}], L_D {:.3} L_G {:.3} L_E {:.3}, spread {:.3}, {}, {:.0} s",
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
            row.sample_spread,
            row.status.as_str(),
            row.seconds
        );
        write_row(&mut csv, &row)?;
        model
            .save(&checkpoints, &identity)
            .with_context(|| format!("saving checkpoint to {}", checkpoints.display()))?;
        rows.push(row);
    }
    let (Some(csv), Some(last)) = (csv, rows.last()) else {
        anyhow::bail!(
            "{stem}: no EM iteration finished ({}); nothing was written",
            diverged.unwrap_or_else(|| "no iterations to run".into())
        );
    };
    if diverged.is_none() {
        let per_class = 10;
        let figure = args.reports.join(format!("figures/{stem}_samples.png"));
        save_image_grid(&model.samples(per_class, seed)?, args.k, per_class, &figure)?;
        println!("wrote {}", figure.display());
    }
    let written = csv.finish()?;
    let record = RunRecord {
        identity,
        status: if diverged.is_some() {
            RunStatus::Diverged
        } else {
            last.status
        },
        message: diverged,
        iterations: last.iteration,
        scores: FinalScores {
            test_error: last.test_error,
            nmi: last.nmi,
            ari: last.ari,
        },
        seconds: last.seconds,
        settings: serde_json::to_value(profile)?,
        provenance: Provenance::of_this_process(),
    };
    let record_path = record.write(&args.out, &stem)?;
    println!("wrote {} and {}", written.display(), record_path.display());
    check_threshold(args.max_test_error, last.test_error, &written)?;
    Ok(record)
}

fn check_threshold(limit: Option<f64>, error: f64, csv: &Path) -> Result<()> {
    if let Some(limit) = limit {
        anyhow::ensure!(
            error <= limit,
            "regression: final test error {error:.4} ({}) is above the threshold {limit:.4}",
            csv.display()
        );
        println!("regression check passed: test error {error:.4} <= {limit:.4}");
    }
    Ok(())
}
