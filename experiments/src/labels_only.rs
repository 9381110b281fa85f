//! The labels-only baseline of the semi-supervised experiments: the profile's E-net trained on
//! the labelled images alone, scored on the same evaluation images as GAN-EM, so that a table
//! can show what the generated images add.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use ganem_core::config::Profile;
use ganem_core::data::ImageSet;
use ganem_core::em::GanEm;
use ganem_core::metrics::classification_error;
use ganem_core::nets::ImageShape;
use serde::{Deserialize, Serialize};

use crate::Bars;

/// One seed of the baseline: a row of `semi_labels_only.csv` or `celeba_labels_only.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelsOnlyRow {
    /// The data set (`mnist`, `svhn`, `celeba:Eyeglasses`).
    pub dataset: String,
    pub labels: usize,
    pub profile: String,
    pub seed: u64,
    /// Passes over the labelled images.
    pub epochs: usize,
    /// Classification error on the evaluation images.
    pub test_error: f64,
    /// Error on the labelled images themselves, after the last pass.
    pub labelled_error: f64,
    pub seconds: f64,
    /// Which images scored it (the split protocol).
    pub protocol: String,
}

/// What one baseline run needs besides its seed and images.
pub struct Baseline<'a> {
    pub dataset: String,
    pub profile: &'a Profile,
    /// The profile's name as filed, overrides included.
    pub label: &'a str,
    pub clusters: usize,
    pub image: ImageShape,
    /// Images of the training pool the labelled ones were drawn from.
    pub train_len: usize,
    pub epochs: usize,
    pub protocol: String,
    pub device: &'a Device,
}

impl Baseline<'_> {
    /// Trains a fresh E-net of `seed` on `labelled` for `epochs` passes and scores it on
    /// `evaluation`.
    pub fn run(
        &self,
        seed: u64,
        labelled: ImageSet,
        evaluation: &ImageSet,
    ) -> Result<LabelsOnlyRow> {
        anyhow::ensure!(self.epochs >= 1, "--labels-only 0: give at least one pass");
        let started = Instant::now();
        let labels = labelled.labels.len();
        let mut model = GanEm::new(
            self.profile,
            self.clusters,
            self.image,
            self.train_len,
            seed,
            self.device,
        )?;
        model.set_labelled(labelled.images, &labelled.labels)?;
        model.fit_supervised(self.epochs, &mut Bars::new())?;
        let row = LabelsOnlyRow {
            dataset: self.dataset.clone(),
            labels,
            profile: self.label.to_string(),
            seed,
            epochs: self.epochs,
            test_error: classification_error(
                &model.predict(&evaluation.images)?,
                &evaluation.labels,
            ),
            labelled_error: model.labelled_error()?.unwrap_or(f64::NAN),
            seconds: started.elapsed().as_secs_f64(),
            protocol: self.protocol.clone(),
        };
        println!(
            "{}, {labels} labels only, seed {seed}: test error {:.4} (labelled {:.3}) after {} \
             passes, {:.0} s",
            row.dataset, row.test_error, row.labelled_error, row.epochs, row.seconds
        );
        Ok(row)
    }
}

/// Files `rows` in the CSV at `path`, replacing earlier rows of the same data set, number of
/// labels, profile, seed and passes, and keeping every other row.
pub fn file_rows(path: &Path, rows: Vec<LabelsOnlyRow>) -> Result<()> {
    crate::merge_rows(path, rows, |a, b| {
        (&a.dataset, a.labels, &a.profile, a.seed, a.epochs)
            == (&b.dataset, b.labels, &b.profile, b.seed, b.epochs)
    })
}
