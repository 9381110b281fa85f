//! Semi-supervised classification with GAN-EM (Table 1, columns 2-4): MNIST with 100 or 1000
//! labels, SVHN with 1000 labels, over seeds.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use experiments::labels_only::{self, Baseline};
use experiments::runner::{CommonArgs, Experiment, IterationRow};
use ganem_core::data::{self, balanced_subset, mnist, svhn, ImageSet};
use ganem_core::em::{GanEm, RunStatus};
use ganem_core::metrics::{classification_error, score};
use ganem_core::nets::ImageShape;
use serde::{Deserialize, Serialize};

/// Semi-supervised GAN-EM (Sec. 5.3): the clustering EM loop, plus, after every E-step, the
/// E-net trained on a few labelled real images until its error on them is at most epsilon;
/// class c of the generator is then digit c.
///
/// The labelled images are balanced over the classes (10 per class for 100 labels), drawn from
/// the training pool by the seed; every training image, labelled or not, enters the M-step
/// through its soft assignment. Each run writes
/// results/semi_{dataset}_labels{N}_{profile}_k10_seed{S}.csv (one row per EM iteration, with
/// the split protocol), its record (.json) and a samples figure (a row per class), then
/// rebuilds results/semi_summary.csv (mean ± std over seeds per data set, labels and profile).
///
/// MNIST: the official 60,000 / 10,000 splits. SVHN: the official splits when train.parquet is
/// present (or from the Hub); otherwise the `test-split-5000` protocol on the first 10,000
/// official test images: 0-4999 are the training pool, 5000-9999 the evaluation set (not
/// directly comparable with the paper's numbers; the CSV says which protocol ran).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
    dataset: Dataset,
    /// Labelled training images, spread evenly over the 10 classes.
    #[arg(long, default_value_t = 100)]
    labels: usize,
    /// Instead of GAN-EM, the baseline it has to beat: the profile's E-net alone, trained on the
    /// same labelled images for this many passes (cross-entropy, the profile's E-net optimiser),
    /// scored on the same evaluation images; one row per seed in
    /// results/semi_labels_only.csv.
    #[arg(long, value_name = "EPOCHS")]
    labels_only: Option<usize>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dataset {
    Mnist,
    Svhn,
}

/// One row of the results table.
#[derive(Serialize, Deserialize)]
struct Row {
    iteration: usize,
    /// Classification error on the evaluation images (class c = digit c).
    test_error: f64,
    /// The E-net's error on the labelled images after the E-step.
    labelled_error: f64,
    labelled_updates: usize,
    /// Clustering error of the same predictions under the best one-to-one mapping (Eq. 20).
    clustering_error: f64,
    nmi: f64,
    ari: f64,
    phi_min: f64,
    phi_max: f64,
    loss_d: f64,
    loss_g: f64,
    loss_e: f64,
    sample_spread: f64,
    status: RunStatus,
    seconds: f64,
    protocol: String,
}

impl IterationRow for Row {
    experiments::iteration_row_columns!();
    fn describe(&self) -> String {
        format!(
            "test error {:.4} (mapped {:.4}), labelled error {:.3} after {} updates, NMI {:.3}, \
             {}",
            self.test_error,
            self.clustering_error,
            self.labelled_error,
            self.labelled_updates,
            self.nmi,
            self.training(),
        )
    }
}

/// The training pool, the evaluation set and the protocol that split them.
struct Data {
    train: ImageSet,
    test: ImageSet,
    shape: ImageShape,
    protocol: &'static str,
}

fn load(
    dataset: Dataset,
    location: &data::DataLocation,
    device: &candle_core::Device,
) -> Result<Data> {
    Ok(match dataset {
        Dataset::Mnist => {
            let splits = mnist::load(location, device)
                .with_context(|| format!("loading MNIST from {location}"))?;
            Data {
                train: splits.train,
                test: splits.test,
                shape: mnist::SHAPE,
                protocol: "official",
            }
        }
        Dataset::Svhn => {
            let data = svhn::load(location, device)
                .with_context(|| format!("loading SVHN from {location}"))?;
            // Table 5's generator ends in tanh: images in [-1, 1] (App. B.2).
            Data {
                train: data.train.to_symmetric_range()?,
                test: data.test.to_symmetric_range()?,
                shape: svhn::SHAPE,
                protocol: data.protocol.as_str(),
            }
        }
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let common = &args.common;
    let name = match args.dataset {
        Dataset::Mnist => "mnist",
        Dataset::Svhn => "svhn",
    };
    let (profile, label) =
        common.profile_for_labels(&format!("semi-supervised/{name}"), Some(args.labels))?;
    let seeds = common.seed_list()?;
    let classes = 10;
    anyhow::ensure!(
        args.labels >= classes && args.labels.is_multiple_of(classes),
        "--labels {} is out of range: it must be a positive multiple of {classes} (the same \
         number of labelled images per class)",
        args.labels
    );
    let lanes_name = format!("semi_{name}_labels{}", args.labels);
    let Some(seeds) = common.lane_share(seeds, &lanes_name)? else {
        return Ok(());
    };
    let device = ganem_core::default_device()?;
    let location = data::locate(common.data_dir.as_deref());
    let data = load(args.dataset, &location, &device)?;
    let (train, test) = experiments::profile_subsets(&data.train, &data.test, &profile)?;
    anyhow::ensure!(
        args.labels <= train.len(),
        "--labels {} is more than the {} training images",
        args.labels,
        train.len()
    );
    println!(
        "semi-supervised {name}, {} labels, protocol {}: {} training / {} evaluation images",
        args.labels,
        data.protocol,
        train.len(),
        test.len()
    );
    let experiment = Experiment {
        name: format!("semi_{name}_labels{}", args.labels),
        summary: "semi",
        dataset: name.into(),
        labels: args.labels,
        args: common,
        profile: &profile,
        label: &label,
        clusters: classes,
        image: data.shape,
        train: &train,
        device: &device,
    };
    // The labelled images of a seed: the same for GAN-EM and for the baseline.
    let labelled_of = |seed: u64| -> Result<ImageSet> {
        let chosen = balanced_subset(&train.labels, classes, args.labels / classes, seed)?;
        Ok(train.select(&chosen)?)
    };
    if let Some(epochs) = args.labels_only {
        let baseline = Baseline {
            dataset: name.into(),
            profile: &profile,
            label: &label,
            clusters: classes,
            image: data.shape,
            train_len: train.len(),
            epochs,
            protocol: data.protocol.to_string(),
            device: &device,
        };
        let rows = seeds
            .iter()
            .map(|&seed| baseline.run(seed, labelled_of(seed)?, &test))
            .collect::<Result<Vec<_>>>()?;
        return labels_only::file_rows(&common.out.join("semi_labels_only.csv"), rows);
    }
    let label_images = |model: &mut GanEm, seed: u64| -> Result<()> {
        let labelled = labelled_of(seed)?;
        Ok(model.set_labelled(labelled.images, &labelled.labels)?)
    };
    experiment.run_seeds(&seeds, label_images, |model, stats, seconds| {
        let predicted = model.predict(&test.images)?;
        let scores = score(&predicted, &test.labels, classes, test.classes);
        Ok(Row {
            iteration: stats.iteration,
            test_error: classification_error(&predicted, &test.labels),
            labelled_error: stats.labelled_error.unwrap_or(f64::NAN),
            labelled_updates: stats.labelled_updates,
            clustering_error: scores.error,
            nmi: scores.nmi,
            ari: scores.ari,
            phi_min: stats.phi_min,
            phi_max: stats.phi_max,
            loss_d: stats.loss_d,
            loss_g: stats.loss_g,
            loss_e: stats.loss_e,
            sample_spread: stats.sample_spread,
            status: stats.status,
            seconds,
            protocol: data.protocol.to_string(),
        })
    })
}
