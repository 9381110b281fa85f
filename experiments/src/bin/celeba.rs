//! CelebA's 40 attributes (Tables 2 and 3): for each attribute, GAN-EM with K = 2 on faces
//! balanced between the attribute and its absence, unsupervised or with 100 labels.

use anyhow::{Context, Result};
use clap::Parser;
use experiments::labels_only::{self, Baseline};
use experiments::report::celeba::AttributeRow;
use experiments::runner::{CommonArgs, Experiment, IterationRow};
use experiments::runs::RunRecord;
use ganem_core::data::celeba::{self, Celeba, ATTRIBUTES};
use ganem_core::data::{self, balanced_subset, ImageSet};
use ganem_core::em::RunStatus;
use ganem_core::metrics::{classification_error, score};
use serde::{Deserialize, Serialize};

/// Cluster CelebA faces into two groups per attribute (K = 2), or classify them with 100
/// labels, and score the groups against the attribute.
///
/// For each attribute, the faces are chosen as App. B.3 does: every face of the rarer value
/// (at most half of the profile's `data.train_subset`) and as many of the other, those whose
/// other 39 attributes are purest (the same for every seed; see docs/deviations.md). A fifth
/// of each value is held out and scores the run. Unsupervised, the error is Eq. 20 with K = 2
/// on the held-out faces; with --labels 100 (`--setting semi`), 50 training faces of each
/// value (drawn by the seed) train the E-net (Sec. 5.3) and the error is the plain
/// classification error on the held-out faces. Each run writes results/celeba_{attribute}_labels{N}_{profile}_k2_seed{S}.csv
/// (a row per EM iteration) and its record; results/celeba_summary.csv gets a line per
/// attribute, and results/celeba_attributes.csv a row per attribute, setting and seed
/// (rewritten atomically after each attribute, so an interrupted sweep resumes with
/// `--attribute all` where it stopped). `--lanes 2` runs the attributes and seeds in two
/// processes side by side, the faster way through a sweep on 2 cores.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// An attribute as named in list_attr_celeba.txt (e.g. `Eyeglasses`), several separated
    /// by commas, or `all`.
    #[arg(long, visible_alias = "attr", default_value = "all")]
    attribute: String,
    /// Table 2's setting: `unsup` clusters (no labels), `semi` trains with --labels faces
    /// (100 unless given). Without it, --labels alone decides.
    #[arg(long, value_enum)]
    setting: Option<Setting>,
    /// Labelled faces (half of each value): 0 for clustering, 100 as in Table 2. Default 0,
    /// or 100 with `--setting semi`.
    #[arg(long)]
    labels: Option<usize>,
    /// Instead of GAN-EM, the baseline it has to beat (with --labels): the profile's E-net
    /// alone, trained on the same labelled faces for this many passes, scored on the same
    /// held-out faces; one row per attribute and seed in results/celeba_labels_only.csv.
    #[arg(long, value_name = "EPOCHS")]
    labels_only: Option<usize>,
    #[command(flatten)]
    common: CommonArgs,
}

/// The two columns of Table 2.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Setting {
    /// K = 2 clustering without labels.
    Unsup,
    /// Semi-supervised, 100 labelled faces unless --labels says otherwise.
    Semi,
}

impl Args {
    /// The number of labelled faces that --setting and --labels ask for together.
    fn labelled_faces(&self) -> Result<usize> {
        match (self.setting, self.labels) {
            (None, labels) => Ok(labels.unwrap_or(0)),
            (Some(Setting::Unsup), None | Some(0)) => Ok(0),
            (Some(Setting::Unsup), Some(labels)) => {
                anyhow::bail!(
                    "--setting unsup clusters without labels, but --labels {labels} was given"
                )
            }
            (Some(Setting::Semi), None) => Ok(100),
            (Some(Setting::Semi), Some(0)) => {
                anyhow::bail!("--setting semi needs labelled faces, but --labels 0 was given")
            }
            (Some(Setting::Semi), Some(labels)) => Ok(labels),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Row {
    iteration: usize,
    test_error: f64,
    nmi: f64,
    ari: f64,
    labelled_error: f64,
    phi_min: f64,
    phi_max: f64,
    loss_d: f64,
    loss_g: f64,
    loss_e: f64,
    sample_spread: f64,
    status: RunStatus,
    seconds: f64,
    faces: usize,
}

impl IterationRow for Row {
    experiments::iteration_row_columns!();
    fn describe(&self) -> String {
        let labelled = if self.labelled_error.is_nan() {
            String::new()
        } else {
            format!("labelled error {:.3}, ", self.labelled_error)
        };
        format!(
            "error {:.4} on {} faces, NMI {:.3}, {labelled}{}",
            self.test_error,
            self.faces,
            self.nmi,
            self.training(),
        )
    }
}

/// The `protocol` of the baseline's rows: the faces that score it.
const HELD_OUT: &str = "held-out fifth";

/// Attributes named on the command line, as indices.
fn attributes(text: &str) -> Result<Vec<usize>> {
    if text == "all" {
        return Ok((0..ATTRIBUTES.len()).collect());
    }
    text.split(',')
        .map(|name| Ok(Celeba::attribute_index(name.trim())?))
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let common = &args.common;
    let labels = args.labelled_faces()?;
    let (profile, label) = common.profile_for_labels("celeba", Some(labels))?;
    let seeds = common.seed_list()?;
    let attributes = attributes(&args.attribute)?;
    anyhow::ensure!(
        labels % 2 == 0,
        "--labels {} must be even: half of the labelled faces show the attribute",
        labels
    );
    anyhow::ensure!(
        args.labels_only.is_none() || labels > 0,
        "--labels-only needs labelled faces: give --labels 100 (or --setting semi)"
    );
    let runs = attributes
        .iter()
        .flat_map(|&attribute| seeds.iter().map(move |&seed| (attribute, seed)))
        .collect();
    let Some(runs) = common.lane_share(runs, &format!("celeba_labels{}", labels))? else {
        return Ok(());
    };
    let device = ganem_core::default_device()?;
    let location = data::locate(common.data_dir.as_deref());
    let side = match profile.data.image_size {
        0 => celeba::PAPER_SIDE,
        side => side,
    };
    let data = celeba::load(&location, side, &device)
        .with_context(|| format!("loading CelebA from {location}"))?;
    println!("CelebA: {} faces, {side} x {side}", data.faces.len());
    let mut failed = Vec::new();
    for attribute in attributes {
        let seeds: Vec<u64> = runs
            .iter()
            .filter(|&&(a, _)| a == attribute)
            .map(|&(_, seed)| seed)
            .collect();
        if seeds.is_empty() {
            continue;
        }
        let name = ATTRIBUTES[attribute];
        let selection = data.select_for(attribute, profile.data.train_subset / 2)?;
        let labelled_faces = data.labelled_by(attribute)?;
        let faces = labelled_faces
            .select(&selection.train)?
            .to_symmetric_range()?;
        let held_out = labelled_faces
            .select(&selection.held_out)?
            .to_symmetric_range()?;
        anyhow::ensure!(
            labels < faces.len(),
            "--labels {} is not fewer than the {} training faces of {name}",
            labels,
            faces.len()
        );
        println!(
            "{name}: {} faces of each value (of {} with, {} without), {} to train, {} held out; \
             other attributes' purity {:.3}",
            selection.per_value,
            selection.available[1],
            selection.available[0],
            faces.len(),
            held_out.len(),
            selection.purity
        );
        // The labelled faces of a seed: the same for GAN-EM and for the baseline.
        let labelled_of = |seed: u64| -> Result<ImageSet> {
            let chosen = balanced_subset(&faces.labels, 2, labels / 2, seed)?;
            Ok(faces.select(&chosen)?)
        };
        if let Some(epochs) = args.labels_only {
            let baseline = Baseline {
                dataset: format!("celeba:{name}"),
                profile: &profile,
                label: &label,
                clusters: 2,
                image: celeba::shape(side),
                train_len: faces.len(),
                epochs,
                protocol: HELD_OUT.into(),
                device: &device,
            };
            let rows = seeds
                .iter()
                .map(|&seed| baseline.run(seed, labelled_of(seed)?, &held_out))
                .collect::<Result<Vec<_>>>()?;
            labels_only::file_rows(&common.out.join("celeba_labels_only.csv"), rows)?;
            continue;
        }
        let experiment = Experiment {
            name: format!("celeba_{name}_labels{}", labels),
            summary: "celeba",
            dataset: format!("celeba:{name}"),
            labels,
            args: common,
            profile: &profile,
            label: &label,
            clusters: 2,
            image: celeba::shape(side),
            train: &faces,
            device: &device,
        };
        let result = experiment.run_seeds(
            &seeds,
            |model, seed| {
                if labels > 0 {
                    let set = labelled_of(seed)?;
                    model.set_labelled(set.images, &set.labels)?;
                }
                Ok(())
            },
            |model, stats, seconds| {
                let predicted = model.predict(&held_out.images)?;
                let truth = &held_out.labels;
                let scores = score(&predicted, truth, 2, 2);
                Ok(Row {
                    iteration: stats.iteration,
                    test_error: if labels > 0 {
                        classification_error(&predicted, truth)
                    } else {
                        scores.error
                    },
                    nmi: scores.nmi,
                    ari: scores.ari,
                    labelled_error: stats.labelled_error.unwrap_or(f64::NAN),
                    phi_min: stats.phi_min,
                    phi_max: stats.phi_max,
                    loss_d: stats.loss_d,
                    loss_g: stats.loss_g,
                    loss_e: stats.loss_e,
                    sample_spread: stats.sample_spread,
                    status: stats.status,
                    seconds,
                    faces: truth.len(),
                })
            },
        );
        if let Err(e) = result {
            eprintln!("{name}: {e:#}");
            failed.push(name);
        }
        let mut rows = Vec::new();
        for &seed in &seeds {
            let (identity, stem) = experiment.identity(seed);
            let path = RunRecord::path(&common.out, &stem);
            if !path.exists() {
                continue;
            }
            let record = RunRecord::read(&path)?;
            if !record.is_run(&identity) {
                continue;
            }
            rows.push(AttributeRow {
                attribute: name.to_string(),
                setting: if labels > 0 { "semi" } else { "unsupervised" }.into(),
                labels,
                test_error: record.scores.test_error,
                nmi: record.scores.nmi,
                ari: record.scores.ari,
                n_train: faces.len(),
                n_held_out: held_out.len(),
                purity: selection.purity,
                status: record.status,
                iterations: record.iterations,
                seconds: record.seconds,
                profile: record.identity.profile.clone(),
                profile_hash: record.identity.profile_hash.clone(),
                seed,
            });
        }
        let same = |a: &AttributeRow, b: &AttributeRow| {
            (&a.attribute, a.labels, &a.profile, a.seed)
                == (&b.attribute, b.labels, &b.profile, b.seed)
        };
        experiments::merge_rows(&common.out.join("celeba_attributes.csv"), rows, same)?;
    }
    anyhow::ensure!(failed.is_empty(), "runs failed for {}", failed.join(", "));
    Ok(())
}
