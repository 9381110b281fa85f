//! MNIST clustering with GAN-EM (Table 1, column 1): K = 10, 20 or 30 clusters, over seeds.

use anyhow::Result;
use clap::Parser;
use experiments::clustering::Row;
use experiments::runner::{CommonArgs, Experiment};
use ganem_core::data::mnist;

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

fn main() -> Result<()> {
    let args = Args::parse();
    let mut common = args.common.clone();
    // The best clustering recipe measured; `fast` stays what other experiments build on.
    common.profile.get_or_insert_with(|| "short-rounds".into());
    let common = &common;
    let (profile, label) = common.profile("mnist-cluster")?;
    let Some(seeds) =
        common.lane_share(common.seed_list()?, &format!("mnist_cluster_k{}", args.k))?
    else {
        return Ok(());
    };
    let device = ganem_core::default_device()?;
    let (train, test) = experiments::load_mnist(common.data_dir.as_deref(), &profile, &device)?;
    let experiment = Experiment {
        name: "mnist_cluster".into(),
        summary: "mnist_cluster",
        dataset: "mnist".into(),
        labels: 0,
        args: common,
        profile: &profile,
        label: &label,
        clusters: args.k,
        image: mnist::SHAPE,
        train: &train,
        device: &device,
    };
    experiment.run_seeds(
        &seeds,
        |_, _| Ok(()),
        |model, stats, seconds| Row::of(model, stats, seconds, &train, &test),
    )
}
