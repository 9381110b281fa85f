//! The one driver of GAN-EM runs that every experiment binary shares: the common command
//! line, seeds, resume and skip, per-iteration CSV rows, checkpoints, the run record, the
//! samples figure and the summary. An experiment supplies its data, how to prepare the model
//! and how to score an iteration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use ganem_core::config::Profile;
use ganem_core::data::ImageSet;
use ganem_core::em::{GanEm, IterationStats, RunIdentity, RunStatus};
use ganem_core::nets::ImageShape;
use ganem_core::report::save_image_grid;
use ganem_core::Error;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::provenance::{stretches_before, Provenance};
use crate::runs::{parse_seeds, restatus, run_stem, write_summary, FinalScores, RunRecord};
use crate::{check_memory, load_profile_for_labels, read_rows, Bars, CsvOut};

/// Command-line options every experiment binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Training profile: `fast` (this CPU), `short-rounds` (clustering's best recipe
    /// measured), `paper` (the paper as written), `ci` (a few minutes), or a path to a TOML
    /// file of the same form. [default: short-rounds for mnist-cluster, fast for the others]
    #[arg(long)]
    pub profile: Option<String>,
    /// Change one setting of the profile, e.g. `--set em.enet_batch_norm=batch` (repeatable;
    /// the value in TOML syntax). The results are filed under `profile[settings]`.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Seed of every random draw; the same seed on the same machine gives the same numbers.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    pub seed: u64,
    /// Several seeds, one run each, e.g. `1,2,3` or `1-5`; a failed run does not stop the
    /// others.
    #[arg(long)]
    pub seeds: Option<String>,
    /// Folder for the CSV tables, run records and the summary.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Folder for figures (written under `figures/`).
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Folder holding the data sets (else $GANEM_DATA_DIR, ../shared/data, ./data, or a
    /// download from the Hugging Face Hub).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Override the profile's number of EM iterations.
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Folder under which each run keeps its checkpoint, saved after every EM iteration.
    #[arg(long, default_value = "checkpoints")]
    pub checkpoint_dir: PathBuf,
    /// Continue each run from its checkpoint, also a run that finished (to extend it with
    /// --iterations) or whose checkpoint has an earlier version's fingerprint. A run cut off
    /// before it finished goes on from its checkpoint even without --resume.
    #[arg(long)]
    pub resume: bool,
    /// Rerun runs that already finished.
    #[arg(long)]
    pub force: bool,
    /// Exit with an error when a run's final test error (a fraction) is above this (for CI).
    #[arg(long)]
    pub max_test_error: Option<f64>,
    /// Run the runs (seeds; for CelebA attributes and seeds) in this many processes side by
    /// side, every n-th run in each, the cores shared among them (RAYON_NUM_THREADS, if set,
    /// is each lane's threads); each lane writes its output to
    /// {checkpoint-dir}/{experiment}_lane{i}.log. On 2 cores two lanes of one thread finish a
    /// sweep sooner than one process with two, and a lane's runs give the numbers of a
    /// one-thread run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub lanes: u64,
}

impl CommonArgs {
    /// The profile with overrides and `--iterations` applied and every setting checked, and
    /// the label its results are filed under.
    pub fn profile(&self, experiment: &str) -> Result<(Profile, String)> {
        self.profile_for_labels(experiment, None)
    }

    /// [`Self::profile`] for runs with `labels` labelled images: with the profile's settings
    /// for that number (`[for_labels.N]`), if it has any.
    pub fn profile_for_labels(
        &self,
        experiment: &str,
        labels: Option<usize>,
    ) -> Result<(Profile, String)> {
        let name = self.profile.as_deref().unwrap_or("fast");
        let loaded = load_profile_for_labels(experiment, name, labels, &self.overrides)?;
        let (mut profile, label) = (loaded.profile, loaded.label);
        if let Some(n) = self.iterations {
            profile.em.iterations = n;
        }
        profile
            .validate()
            .map_err(|m| anyhow::anyhow!("invalid setting: {m}"))?;
        if let Some(limit) = self.max_test_error {
            anyhow::ensure!(
                (0.0..=1.0).contains(&limit),
                "--max-test-error {limit} is out of range: it is a fraction in [0, 1]"
            );
        }
        Ok((profile, label))
    }

    pub fn seed_list(&self) -> Result<Vec<u64>> {
        match &self.seeds {
            Some(text) => parse_seeds(text),
            None => Ok(vec![self.seed]),
        }
    }

    /// The `runs` this process does with `--lanes` (see [`crate::lanes::split`]): all, its
    /// lane's share, or `None` once the lanes, logged as `{name}_lane{i}.log`, did them.
    pub fn lane_share<T: Clone>(&self, runs: Vec<T>, name: &str) -> Result<Option<Vec<T>>> {
        crate::lanes::split(runs, self.lanes, name, &self.checkpoint_dir)
    }
}

/// One CSV row per EM iteration; each experiment has its own columns.
pub trait IterationRow: Serialize + DeserializeOwned {
    fn iteration(&self) -> usize;
    /// Seconds since the run started, resumed runs included.
    fn seconds(&self) -> f64;
    fn status(&self) -> RunStatus;
    fn scores(&self) -> FinalScores;
    /// The line printed after the iteration.
    fn describe(&self) -> String;
    /// The training part of that line, see [`describe_training`].
    fn training(&self) -> String;
}

/// The part of an iteration's console line every experiment shares: the class prior's range,
/// the three losses, the samples' spread, the status and the elapsed time.
pub fn describe_training(
    phi: (f64, f64),
    loss_d: f64,
    loss_g: f64,
    loss_e: f64,
    spread: f64,
    status: RunStatus,
    seconds: f64,
) -> String {
    format!(
        "phi [{:.3}, {:.3}], L_D {loss_d:.3} L_G {loss_g:.3} L_E {loss_e:.3}, spread {spread:.3}, \
         {}, {seconds:.0} s",
        phi.0,
        phi.1,
        status.as_str()
    )
}

/// Implements the bookkeeping part of [`IterationRow`] for a row type with the usual
/// `iteration`, `seconds`, `status`, `test_error`, `nmi` and `ari` columns; the row type
/// writes only its `describe`.
#[macro_export]
macro_rules! iteration_row_columns {
    () => {
        fn iteration(&self) -> usize {
            self.iteration
        }
        fn seconds(&self) -> f64 {
            self.seconds
        }
        fn status(&self) -> ganem_core::em::RunStatus {
            self.status
        }
        fn scores(&self) -> $crate::runs::FinalScores {
            $crate::runs::FinalScores {
                test_error: self.test_error,
                nmi: self.nmi,
                ari: self.ari,
            }
        }
        fn training(&self) -> String {
            $crate::runner::describe_training(
                (self.phi_min, self.phi_max),
                self.loss_d,
                self.loss_g,
                self.loss_e,
                self.sample_spread,
                self.status,
                self.seconds,
            )
        }
    };
}

/// What one experiment's runs share.
pub struct Experiment<'a> {
    /// File-name prefix of the runs, e.g. `mnist_cluster` or `semi_mnist_labels100`.
    pub name: String,
    /// The summary the runs go into: `{summary}_summary.csv` over every record named
    /// `{summary}_*` (e.g. `mnist_cluster`, or `semi` for every semi-supervised setting).
    pub summary: &'a str,
    /// Recorded in the checkpoint and the run record, e.g. `mnist` or `svhn`.
    pub dataset: String,
    /// Labelled training images (0: unsupervised).
    pub labels: usize,
    pub args: &'a CommonArgs,
    pub profile: &'a Profile,
    pub label: &'a str,
    pub clusters: usize,
    pub image: ImageShape,
    pub train: &'a ImageSet,
    pub device: &'a Device,
}

impl Experiment<'_> {
    /// Checks K and the memory the runs need against the data and the machine.
    pub fn check_resources(&self) -> Result<()> {
        let n = self.train.len();
        anyhow::ensure!(
            (2..=n).contains(&self.clusters),
            "--k {} is out of range: K must be in [2, {n}] (the number of training images)",
            self.clusters,
        );
        check_memory(
            &format!("K = {} on {n} training images", self.clusters),
            GanEm::memory_estimate(self.profile, self.clusters, self.image, n),
        )
    }

    /// Runs every seed (going on when one fails), then rebuilds the summary. `prepare` sets
    /// up a fresh model (e.g. its labelled images) and `score` makes an iteration's row.
    pub fn run_seeds<R: IterationRow>(
        &self,
        seeds: &[u64],
        mut prepare: impl FnMut(&mut GanEm, u64) -> Result<()>,
        mut score: impl FnMut(&GanEm, &IterationStats, f64) -> Result<R>,
    ) -> Result<()> {
        self.check_resources()?;
        let mut failed = Vec::new();
        let mut finished = 0;
        for &seed in seeds {
            match self.run_seed(seed, &mut prepare, &mut score) {
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
            let hashes = BTreeMap::from([(
                (self.dataset.clone(), self.label.to_string()),
                self.profile.fingerprint(),
            )]);
            let (path, stale) = write_summary(&self.args.out, self.summary, &hashes)?;
            println!("summary: {}", path.display());
            if stale > 0 {
                println!(
                    "  ({stale} run(s) of earlier settings of profile {} left out of it)",
                    self.label
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

    /// What a run of `seed` is, and the name its files share.
    pub fn identity(&self, seed: u64) -> (RunIdentity, String) {
        let identity = RunIdentity {
            dataset: self.dataset.clone(),
            clusters: self.clusters,
            labels: self.labels,
            profile: self.label.to_string(),
            profile_hash: self.profile.fingerprint(),
            seed,
        };
        let stem = run_stem(&self.name, &identity);
        (identity, stem)
    }

    /// The model of a finished run of `seed`, from its last checkpoint, e.g. to read features
    /// from it after [`Experiment::run_seeds`].
    pub fn trained(&self, seed: u64) -> Result<GanEm> {
        let (identity, stem) = self.identity(seed);
        let dir = self.args.checkpoint_dir.join(&stem);
        let mut model = GanEm::new(
            self.profile,
            self.clusters,
            self.image,
            self.train.len(),
            seed,
            self.device,
        )?;
        model.resume(&dir, &identity, self.train).with_context(|| {
            format!("loading the trained model of {stem} from {}", dir.display())
        })?;
        anyhow::ensure!(
            model.iteration >= self.profile.em.iterations,
            "{stem} stopped after {} of {} EM iterations; finish it with --resume",
            model.iteration,
            self.profile.em.iterations
        );
        Ok(model)
    }

    /// Runs (or resumes, or skips) one seed; writes its CSV, record and figure once at least
    /// one EM iteration has finished, and nothing otherwise.
    fn run_seed<R: IterationRow>(
        &self,
        seed: u64,
        prepare: &mut impl FnMut(&mut GanEm, u64) -> Result<()>,
        score: &mut impl FnMut(&GanEm, &IterationStats, f64) -> Result<R>,
    ) -> Result<RunRecord> {
        let args = self.args;
        let (identity, stem) = self.identity(seed);
        let csv_path = args.out.join(format!("{stem}.csv"));
        let record_path = RunRecord::path(&args.out, &stem);
        let checkpoints = args.checkpoint_dir.join(&stem);
        if !args.force && !args.resume && record_path.exists() {
            let record = RunRecord::read(&record_path)?;
            if record.is_run(&identity) && record.iterations >= self.profile.em.iterations {
                let range = self
                    .profile
                    .nets
                    .generator_output
                    .output_range()
                    .unwrap_or(1.0);
                let record = restatus(&csv_path, &record_path, record, range)?;
                println!(
                    "{stem}: finished earlier ({} iterations, test error {:.4}, {}); --force \
                     reruns it",
                    record.iterations,
                    record.scores.test_error,
                    record.status.as_str()
                );
                return Ok(record);
            }
        }

        let n = self.train.len();
        let mut model = GanEm::new(
            self.profile,
            self.clusters,
            self.image,
            n,
            seed,
            self.device,
        )?;
        prepare(&mut model, seed)?;
        let mut rows: Vec<R> = Vec::new();
        // Running a command again after it was cut off goes on from its checkpoint, so that
        // `just reproduce` continues where it stopped.
        let cut_off = !args.force
            && !args.resume
            && GanEm::saved_iteration(&checkpoints, &identity).is_some_and(|i| i > 0);
        if cut_off {
            println!(
                "{stem}: cut off earlier; going on from its checkpoint (--force starts afresh)"
            );
        }
        let this_process = Provenance::of_this_process();
        let mut earlier_provenance = Vec::new();
        if args.resume || cut_off {
            // A run recorded before a setting was added stored the fingerprint of its time in
            // its checkpoint; its record shows it is the same recipe.
            let mut saved_as = identity.clone();
            let mut earlier_record = None;
            if record_path.exists() {
                let record = RunRecord::read(&record_path)?;
                if record.is_run(&identity) {
                    saved_as.profile_hash = record.identity.profile_hash.clone();
                    earlier_record = Some(record);
                }
            }
            model
                .resume(&checkpoints, &saved_as, self.train)
                .with_context(|| format!("resuming from {}", checkpoints.display()))?;
            if let Some(record) = earlier_record {
                earlier_provenance = stretches_before(
                    &record.earlier_provenance,
                    &record.provenance,
                    record.iterations,
                    model.iteration,
                    &this_process,
                );
            }
            // An interrupted run's rows are in the partial file; a finished run's in the CSV.
            let partial = CsvOut::partial_path(&csv_path);
            let earlier: Vec<R> = read_rows(if partial.exists() {
                &partial
            } else {
                &csv_path
            })?;
            rows.extend(
                earlier
                    .into_iter()
                    .filter(|r| r.iteration() <= model.iteration),
            );
            println!("{stem}: resumed at EM iteration {}", model.iteration);
        }
        let threads = rayon::current_num_threads();
        println!(
            "{stem}: K = {}, profile {} ({}), seed {seed}, {n} training images, matrix products \
             by {}, {threads} thread{}",
            self.clusters,
            self.label,
            identity.profile_hash,
            ganem_core::ops::gemm_backend(),
            if threads == 1 { "" } else { "s" }
        );
        // Created with the first row, so a run that finishes no iteration writes nothing.
        let mut csv: Option<CsvOut> = None;
        let write_row = |csv: &mut Option<CsvOut>, row: &R| -> Result<()> {
            if csv.is_none() {
                *csv = Some(CsvOut::create(&csv_path)?);
            }
            csv.as_mut().expect("created").row(row)
        };
        for row in &rows {
            write_row(&mut csv, row)?;
        }
        let elapsed_before = rows.last().map_or(0.0, |r| r.seconds());
        let started = Instant::now();
        let mut bars = Bars::new();
        let mut diverged = None;
        while model.iteration < self.profile.em.iterations {
            let stats = match model.step(self.train, &mut bars) {
                Ok(stats) => stats,
                Err(e @ Error::Diverged { .. }) => {
                    eprintln!("{stem}: {e}; the run stops, its last checkpoint and rows stay");
                    diverged = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let seconds = elapsed_before + started.elapsed().as_secs_f64();
            let row = score(&model, &stats, seconds)?;
            println!("EM {:>3}: {}", row.iteration(), row.describe());
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
            let mut samples = model.samples(per_class, seed)?;
            if self.profile.nets.generator_output == ganem_core::nets::Activation::Tanh {
                samples = samples.affine(0.5, 0.5)?;
            }
            save_image_grid(&samples, self.clusters, per_class, &figure)?;
            println!("wrote {}", figure.display());
        }
        let written = csv.finish()?;
        let record = RunRecord {
            identity,
            status: if diverged.is_some() {
                RunStatus::Diverged
            } else {
                last.status()
            },
            message: diverged,
            iterations: last.iteration(),
            scores: last.scores(),
            seconds: last.seconds(),
            settings: serde_json::to_value(self.profile)?,
            provenance: this_process,
            earlier_provenance,
        };
        let record_path = record.write(&args.out, &stem)?;
        println!("wrote {} and {}", written.display(), record_path.display());
        if let Some(limit) = args.max_test_error {
            let error = record.scores.test_error;
            anyhow::ensure!(
                error <= limit,
                "regression: final test error {error:.4} ({}) is above the threshold {limit:.4}",
                written.display()
            );
            println!("regression check passed: test error {error:.4} <= {limit:.4}");
        }
        Ok(record)
    }
}
