//! MNIST clustering with GAN-EM (Table 1, column 1): K = 10, 20 or 30 clusters, over seeds.

use anyhow::{Context, Result};
use clap::Parser;
use experiments::runner::{CommonArgs, Experiment, IterationRow};
use ganem_core::data::{self, mnist, ImageSet};
use ganem_core::em::RunStatus;
use ganem_core::metrics::score;
use serde::{Deserialize, Serialize};

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
    #[command(flatten)]
    common: CommonArgs,
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

impl IterationRow for Row {
    experiments::iteration_row_columns!();
    fn describe(&self) -> String {
        format!(
            "train error {:.4}, test error {:.4} ({} mapping), NMI {:.3}, ARI {:.3}, \
             phi [{:.3}, {:.3}], L_D {:.3} L_G {:.3} L_E {:.3}, spread {:.3}, {}, {:.0} s",
            self.train_error,
            self.test_error,
            self.mapping,
            self.nmi,
            self.ari,
            self.phi_min,
            self.phi_max,
            self.loss_d,
            self.loss_g,
            self.loss_e,
            self.sample_spread,
            self.status.as_str(),
            self.seconds
        )
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let common = &args.common;
    let (profile, label) = common.profile("mnist-cluster")?;
    let seeds = common.seed_list()?;
    let device = ganem_core::default_device()?;
    let location = data::locate(common.data_dir.as_deref());
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
    let k = args.k;
    let experiment = Experiment {
        name: "mnist_cluster".into(),
        summary: "mnist_cluster",
        dataset: "mnist".into(),
        labels: 0,
        args: common,
        profile: &profile,
        label: &label,
        clusters: k,
        image: mnist::SHAPE,
        train: &train,
        device: &device,
    };
    experiment.run_seeds(
        &seeds,
        |_, _| Ok(()),
        |model, stats, seconds| {
            let on_train = score(
                &model.predict_from_assignments()?,
                &train.labels,
                k,
                train.classes,
            );
            let on_test = score(&model.predict(&test.images)?, &test.labels, k, test.classes);
            Ok(Row {
                iteration: stats.iteration,
                train_error: on_train.error,
                test_error: on_test.error,
                nmi: on_test.nmi,
                ari: on_test.ari,
                train_nmi: on_train.nmi,
                train_ari: on_train.ari,
                phi_min: stats.phi_min,
                phi_max: stats.phi_max,
                loss_d: stats.loss_d,
                loss_g: stats.loss_g,
                loss_e: stats.loss_e,
                sample_spread: stats.sample_spread,
                status: stats.status,
                seconds,
                mapping: on_test.mapping.as_str().to_string(),
            })
        },
    )
}
