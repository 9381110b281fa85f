//! Dimensionality reduction on MNIST (Sec. 5.4, Fig. 4): the E-net with a layer r of k units
//! before its output layer, trained by the clustering EM loop (or, for the supervised
//! reference, on every training label), then read as a feature extractor.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::clustering::Row;
use experiments::plots::scatter_by_class;
use experiments::runner::{CommonArgs, Experiment};
use experiments::runs::RunRecord;
use experiments::Bars;
use ganem_core::baselines::kmeans;
use ganem_core::data::{mnist, ImageSet};
use ganem_core::em::GanEm;
use ganem_core::embedding::{tsne_2d, TsneSettings};
use ganem_core::metrics::{score, ClusteringScores};
use serde::Serialize;

/// Reduce MNIST to k dimensions with the E-net's layer r, map the test images' features to 2-D
/// with t-SNE, and score both.
///
/// Unsupervised (the default): the clustering profile with `nets.enet_bottleneck = k`, trained
/// by the clustering EM loop with K = 10; its runs are filed like clustering runs
/// (results/dimred_mnist_{profile}_k10_seed{S}.csv per EM iteration, the summary in
/// results/dimred_summary.csv). With --supervised, the same E-net is trained on all 60,000
/// training labels by cross-entropy instead (Fig. 4a).
///
/// Then, per run: the features of the 10,000 test images (results/{run}_features.npy), their
/// 2-D map (results/{run}_map.npy: t-SNE, or the features themselves when k = 2), the scores
/// in results/{run}_embedding.csv (the E-net's own clustering error, NMI and ARI, as the
/// paper's 11.8 % for k = 2; and the same for k-means with K = 10 on the map), and the map
/// drawn in reports/figures/{run}_map.png, one colour per digit.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Units k of layer r (the paper shows 2, 100 and 1000).
    #[arg(long, default_value_t = 2)]
    k_dim: usize,
    /// Train the E-net on every training label instead of by EM (Fig. 4a).
    #[arg(long)]
    supervised: bool,
    /// Passes over the training labels with --supervised.
    #[arg(long, default_value_t = 3)]
    supervised_epochs: usize,
    /// t-SNE iterations.
    #[arg(long, default_value_t = 1000)]
    tsne_epochs: usize,
    /// t-SNE perplexity.
    #[arg(long, default_value_t = 30.0)]
    perplexity: f32,
    #[command(flatten)]
    common: CommonArgs,
}

/// Scores of one run's features.
#[derive(Serialize)]
struct EmbeddingRow {
    dataset: &'static str,
    training: &'static str,
    k_dim: usize,
    profile: String,
    seed: u64,
    points: usize,
    enet_error: f64,
    enet_nmi: f64,
    enet_ari: f64,
    /// `tsne`, or `features` when they are 2-D already.
    map: &'static str,
    map_kmeans_error: f64,
    map_kmeans_nmi: f64,
    map_kmeans_ari: f64,
    map_seconds: f64,
    /// EM iterations of the model whose features these are (0 for the supervised E-net), so
    /// that a run extended later is scored again.
    em_iterations: usize,
}

/// Whether `path` holds the scores of a model after `em_iterations` EM iterations (files
/// written before the column existed do not).
fn scored_at(path: &Path, em_iterations: usize) -> bool {
    #[derive(serde::Deserialize)]
    struct Scored {
        em_iterations: usize,
    }
    let Ok(mut reader) = csv::Reader::from_path(path) else {
        return false;
    };
    let rows: Vec<Scored> = reader.deserialize().filter_map(|row| row.ok()).collect();
    matches!(rows.as_slice(), [row] if row.em_iterations == em_iterations)
}

const CLASSES: usize = 10;

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.k_dim >= 1,
        "--k-dim {} is out of range: layer r needs at least one unit",
        args.k_dim
    );
    let mut common = args.common.clone();
    common
        .overrides
        .insert(0, format!("nets.enet_bottleneck={}", args.k_dim));
    let (profile, label) = common.profile("mnist-cluster")?;
    let Some(seeds) = common.lane_share(common.seed_list()?, &format!("dimred_k{}", args.k_dim))?
    else {
        return Ok(());
    };
    let device = ganem_core::default_device()?;
    let (train, test) = experiments::load_mnist(common.data_dir.as_deref(), &profile, &device)?;
    let experiment = Experiment {
        name: if args.supervised {
            "dimred_mnist_supervised".into()
        } else {
            "dimred_mnist".into()
        },
        summary: "dimred",
        dataset: "mnist".into(),
        labels: if args.supervised { train.len() } else { 0 },
        args: &common,
        profile: &profile,
        label: &label,
        clusters: CLASSES,
        image: mnist::SHAPE,
        train: &train,
        device: &device,
    };
    if !args.supervised {
        experiment.run_seeds(
            &seeds,
            |_, _| Ok(()),
            |model, stats, seconds| Row::of(model, stats, seconds, &train, &test),
        )?;
    }
    for &seed in &seeds {
        let (_, stem) = experiment.identity(seed);
        let scores_path = common.out.join(format!("{stem}_embedding.csv"));
        let em_iterations = if args.supervised {
            0
        } else {
            RunRecord::read(&RunRecord::path(&common.out, &stem))?.iterations
        };
        if scored_at(&scores_path, em_iterations) && !common.force {
            println!(
                "{stem}: features scored earlier ({}); --force redoes it",
                scores_path.display()
            );
            continue;
        }
        let model = if args.supervised {
            train_supervised(&experiment, seed, &train, args.supervised_epochs)?
        } else {
            experiment.trained(seed)?
        };
        let row = reduce(
            &args,
            &model,
            &test,
            &stem,
            seed,
            &label,
            &common.reports,
            &common.out,
        )?;
        let mut out = csv::Writer::from_writer(Vec::new());
        out.serialize(&row)?;
        experiments::runs::write_atomically(&scores_path, &out.into_inner()?)?;
        println!(
            "{stem}: E-net error {:.4}, k-means on the map {:.4} (NMI {:.3}); wrote {}",
            row.enet_error,
            row.map_kmeans_error,
            row.map_kmeans_nmi,
            scores_path.display()
        );
    }
    Ok(())
}

/// The E-net of a fresh model trained on every training label (Fig. 4a).
fn train_supervised(
    experiment: &Experiment,
    seed: u64,
    train: &ImageSet,
    epochs: usize,
) -> Result<GanEm> {
    let mut model = GanEm::new(
        experiment.profile,
        CLASSES,
        experiment.image,
        train.len(),
        seed,
        experiment.device,
    )?;
    model.set_labelled(train.images.clone(), &train.labels)?;
    let started = Instant::now();
    let losses = model.fit_supervised(epochs, &mut Bars::new())?;
    println!(
        "supervised E-net, seed {seed}: cross-entropy per epoch {:?}, {:.0} s",
        losses.iter().map(|l| format!("{l:.4}")).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    Ok(model)
}

/// Features of the test images, their 2-D map, the scores and the figure of one run.
#[allow(clippy::too_many_arguments)]
fn reduce(
    args: &Args,
    model: &GanEm,
    test: &ImageSet,
    stem: &str,
    seed: u64,
    label: &str,
    reports: &Path,
    out: &Path,
) -> Result<EmbeddingRow> {
    let n = test.len();
    let features: Vec<f32> = model.features(&test.images)?.flatten_all()?.to_vec1()?;
    let dim = features.len() / n;
    experiments::write_npy(&out.join(format!("{stem}_features.npy")), n, dim, &features)?;
    let started = Instant::now();
    let (map, kind) = if dim == 2 {
        (features.clone(), "features")
    } else {
        println!("{stem}: t-SNE of {n} points of {dim} dimensions");
        let settings = TsneSettings {
            perplexity: args.perplexity,
            epochs: args.tsne_epochs,
            ..TsneSettings::default()
        };
        (tsne_2d(&features, dim, &settings, seed)?, "tsne")
    };
    let map_seconds = started.elapsed().as_secs_f64();
    experiments::write_npy(&out.join(format!("{stem}_map.npy")), n, 2, &map)?;
    let points = ndarray::Array2::from_shape_vec((n, 2), map.iter().map(|&v| v as f64).collect())
        .context("shaping the map")?;
    let on_map: ClusteringScores = score(
        &kmeans(points, CLASSES, seed)?,
        &test.labels,
        CLASSES,
        test.classes,
    );
    let own = score(
        &model.predict(&test.images)?,
        &test.labels,
        CLASSES,
        test.classes,
    );
    let training = if args.supervised {
        "supervised"
    } else {
        "unsupervised"
    };
    let figure = reports.join(format!("figures/{stem}_map.png"));
    let title = format!(
        "MNIST test images, E-net layer r with k = {dim}, {training} (seed {seed}){}",
        if kind == "tsne" { ", t-SNE" } else { "" }
    );
    let axes = if kind == "tsne" {
        ("t-SNE 1", "t-SNE 2")
    } else {
        ("feature 1", "feature 2")
    };
    scatter_by_class(&figure, &title, axes, &map, &test.labels, CLASSES)?;
    println!("wrote {}", figure.display());
    Ok(EmbeddingRow {
        dataset: "mnist",
        training,
        k_dim: dim,
        profile: label.to_string(),
        seed,
        points: n,
        enet_error: own.error,
        enet_nmi: own.nmi,
        enet_ari: own.ari,
        map: kind,
        map_kmeans_error: on_map.error,
        map_kmeans_nmi: on_map.nmi,
        map_kmeans_ari: on_map.ari,
        map_seconds,
        em_iterations: model.iteration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_of_a_model_extended_since_are_redone() {
        let dir = std::env::temp_dir().join(format!("ganem-dimred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("embedding.csv");
        std::fs::write(&path, "k_dim,em_iterations\n2,20\n").unwrap();
        assert!(scored_at(&path, 20));
        assert!(!scored_at(&path, 40), "the run went on after it was scored");
        std::fs::write(&path, "k_dim,enet_error\n2,0.3\n").unwrap();
        assert!(!scored_at(&path, 20), "a file from before the column");
        assert!(!scored_at(&dir.join("missing.csv"), 20));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
