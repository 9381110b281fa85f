//! Pixel-space baselines of Table 1: k-means and a Gaussian mixture (linfa-clustering).

use std::time::Instant;

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::{GaussianMixtureModel, KMeans};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::metrics::{score, ClusteringScores};

/// A baseline clustering method on raw pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    KMeans,
    /// Full covariances (linfa's only kind), initialised by k-means, with `reg_covariance`
    /// added to their diagonals: many pixels are constant, so without it they are singular.
    GaussianMixture {
        reg_covariance: f64,
    },
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::KMeans => "k-means",
            Method::GaussianMixture { .. } => "gmm",
        }
    }
}

/// Scores of one baseline on the training and test images.
#[derive(Debug, Clone)]
pub struct BaselineResult {
    pub method: Method,
    /// Training images the model was fitted on.
    pub fitted_on: usize,
    pub train: ClusteringScores,
    pub test: ClusteringScores,
    pub seconds: f64,
}

fn to_array(set: &ImageSet) -> Result<Array2<f64>> {
    let n = set.len();
    let flat: Vec<f32> = set.images.flatten_all()?.to_vec1()?;
    let d = flat.len() / n.max(1);
    Array2::from_shape_vec((n, d), flat.into_iter().map(f64::from).collect())
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// k-means (3 restarts, seeded) of the rows of `points`: the cluster of each row.
pub fn kmeans(points: Array2<f64>, k: usize, seed: u64) -> Result<Vec<usize>> {
    let rng = ChaCha8Rng::seed_from_u64(seed);
    let data = DatasetBase::from(points);
    let model = kmeans_params(k, rng)
        .fit(&data)
        .map_err(|e| Error::Invalid(format!("k-means: {e}")))?;
    Ok(model.predict(data.records()).to_vec())
}

fn kmeans_params(
    k: usize,
    rng: ChaCha8Rng,
) -> linfa_clustering::KMeansParams<f64, ChaCha8Rng, linfa_nn::distance::L2Dist> {
    KMeans::params_with_rng(k, rng)
        .n_runs(3)
        .max_n_iterations(100)
        .tolerance(1e-4)
}

/// Fits `method` with `k` clusters on the first `fit_on` training images (0 = all), then
/// scores its clustering of every training and test image.
pub fn run(
    method: Method,
    train: &ImageSet,
    test: &ImageSet,
    k: usize,
    fit_on: usize,
    seed: u64,
) -> Result<BaselineResult> {
    let start = Instant::now();
    let fit_set = if fit_on == 0 {
        train.clone()
    } else {
        train.truncate(fit_on)?
    };
    let fit_data = DatasetBase::from(to_array(&fit_set)?);
    let (train_x, test_x) = (to_array(train)?, to_array(test)?);
    let rng = ChaCha8Rng::seed_from_u64(seed);
    let fail = |e: &dyn std::fmt::Display| Error::Invalid(format!("{}: {e}", method.name()));
    let (train_pred, test_pred) = match method {
        Method::KMeans => {
            let model = kmeans_params(k, rng).fit(&fit_data).map_err(|e| fail(&e))?;
            (model.predict(&train_x), model.predict(&test_x))
        }
        Method::GaussianMixture { reg_covariance } => {
            let model = GaussianMixtureModel::params_with_rng(k, rng)
                .reg_covariance(reg_covariance)
                .max_n_iterations(50)
                .tolerance(1e-3)
                .n_runs(1)
                .fit(&fit_data)
                .map_err(|e| fail(&e))?;
            (model.predict(&train_x), model.predict(&test_x))
        }
    };
    let classes = train.classes;
    Ok(BaselineResult {
        method,
        fitted_on: fit_set.len(),
        train: score(&train_pred.to_vec(), &train.labels, k, classes),
        test: score(&test_pred.to_vec(), &test.labels, k, classes),
        seconds: start.elapsed().as_secs_f64(),
    })
}
