//! The per-iteration row of an unsupervised clustering run (MNIST clustering, dimensionality
//! reduction): clustering scores on the training images (from the E-step's assignments) and
//! on the test images.

use anyhow::Result;
use ganem_core::data::ImageSet;
use ganem_core::em::{GanEm, IterationStats, RunStatus};
use ganem_core::metrics::score;
use serde::{Deserialize, Serialize};

use crate::runner::IterationRow;

/// One row of a clustering run's CSV.
#[derive(Serialize, Deserialize)]
pub struct Row {
    pub iteration: usize,
    pub train_error: f64,
    pub test_error: f64,
    pub nmi: f64,
    pub ari: f64,
    pub train_nmi: f64,
    pub train_ari: f64,
    pub phi_min: f64,
    pub phi_max: f64,
    pub loss_d: f64,
    pub loss_g: f64,
    pub loss_e: f64,
    pub sample_spread: f64,
    pub status: RunStatus,
    pub seconds: f64,
    pub mapping: String,
}

impl Row {
    /// Scores `model` after an EM iteration.
    pub fn of(
        model: &GanEm,
        stats: &IterationStats,
        seconds: f64,
        train: &ImageSet,
        test: &ImageSet,
    ) -> Result<Self> {
        let k = model.clusters();
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
    }
}

impl IterationRow for Row {
    crate::iteration_row_columns!();
    fn describe(&self) -> String {
        format!(
            "train error {:.4}, test error {:.4} ({} mapping), NMI {:.3}, ARI {:.3}, \
             {}",
            self.train_error,
            self.test_error,
            self.mapping,
            self.nmi,
            self.ari,
            self.training(),
        )
    }
}
