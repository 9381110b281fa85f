//! Whether a run is still training: the collapse rule applied after every EM iteration.
//!
//! A GAN run has *collapsed* when D wins outright (its loss falls near zero, so G's gradient
//! vanishes: the failed K = 20 run reached L_D = 0.06 with L_G = 12 and blank samples) or when
//! G makes (nearly) the same image whatever c and z (samples without spread). A run has
//! *diverged* when a loss is not finite or explodes; that ends the run (`Error::Diverged`).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Mean L_D of an EM iteration below which D has won outright. Healthy runs of every profile
/// here stay above 0.3 (the losses sum K + 1 binary cross-entropies).
pub const D_WINS_BELOW: f64 = 0.1;

/// L_G / L_D above which D dominates G even where L_D has not reached [`D_WINS_BELOW`]: D calls
/// almost every generated image fake (L_G of 7 to 9 is a mean D(G(z)) below 0.1 %), and G's
/// samples stop looking like the data. Healthy runs end below 10 (MNIST K = 10: 8 to 10; CelebA
/// with 100 labels: at most 10) and pass 20 only briefly (one CelebA run reached 23 for an
/// iteration, then recovered); CelebA's Bald, unsupervised on 548 faces, ended at 19 with
/// faces still varied; the CelebA run whose G ended in one noise pattern stood at 42.
pub const D_DOMINATES_ABOVE: f64 = 25.0;

/// Mean over pixels of the standard deviation across generated samples, as a share of the
/// generator's output range, below which G makes one image whatever its input (healthy runs
/// here, MNIST in [0, 1], SVHN and CelebA in [-1, 1]: 0.05 to 0.26 of the range).
pub const SPREAD_BELOW: f64 = 0.02;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    Collapsed,
    Diverged,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Collapsed => "collapsed",
            RunStatus::Diverged => "diverged",
        }
    }
}

/// What the collapse rule looks at after an EM iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vitals {
    /// Mean L_D over the M-step.
    pub loss_d: f64,
    /// Mean L_G over the M-step.
    pub loss_g: f64,
    /// See [`sample_spread`].
    pub sample_spread: f64,
    /// Width of the generator's output range: 1 for sigmoid, 2 for tanh.
    pub output_range: f64,
}

/// The collapse rule: `Collapsed` when the iteration's mean L_D is below [`D_WINS_BELOW`],
/// L_G exceeds L_D [`D_DOMINATES_ABOVE`] times over, or the samples' spread is below
/// [`SPREAD_BELOW`] of the output range.
pub fn status_of(vitals: Vitals) -> RunStatus {
    let d_dominates = vitals.loss_g > D_DOMINATES_ABOVE * vitals.loss_d;
    let no_spread = vitals.sample_spread < SPREAD_BELOW * vitals.output_range;
    if vitals.loss_d < D_WINS_BELOW || d_dominates || no_spread {
        RunStatus::Collapsed
    } else {
        RunStatus::Ok
    }
}

/// Mean over pixels of the per-pixel standard deviation across `samples` `(B, ...)`.
pub fn sample_spread(samples: &Tensor) -> Result<f64> {
    let flat = samples.flatten_from(1)?;
    let mean = flat.mean_keepdim(0)?;
    let var = flat.broadcast_sub(&mean)?.sqr()?.mean(0)?;
    Ok(var.sqrt()?.mean_all()?.to_scalar::<f32>()? as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn d_winning_or_identical_samples_is_collapse() {
        let same = Tensor::full(0.3f32, (8, 4, 4, 1), &Device::Cpu).unwrap();
        assert!(sample_spread(&same).unwrap() < 1e-6);
        let varied = Tensor::rand(0f32, 1.0, (64, 4, 4, 1), &Device::Cpu).unwrap();
        let spread = sample_spread(&varied).unwrap();
        // U(0, 1) has standard deviation 0.289.
        assert!((spread - 0.289).abs() < 0.05, "{spread}");
        let healthy = Vitals {
            loss_d: 3.5,
            loss_g: 2.0,
            sample_spread: spread,
            output_range: 1.0,
        };
        assert_eq!(status_of(healthy), RunStatus::Ok);
        let d_wins = Vitals {
            loss_d: 0.06,
            ..healthy
        };
        assert_eq!(status_of(d_wins), RunStatus::Collapsed);
        let one_image = Vitals {
            sample_spread: 0.001,
            ..healthy
        };
        assert_eq!(status_of(one_image), RunStatus::Collapsed);
    }

    /// The recorded last iterations of CelebA runs (fast profile, tanh output): two whose G
    /// ended in one noise pattern, and healthy ones at their most lopsided.
    #[test]
    fn d_dominating_or_no_spread_in_the_output_range_is_collapse() {
        let celeba = |loss_d, loss_g, sample_spread| Vitals {
            loss_d,
            loss_g,
            sample_spread,
            output_range: 2.0,
        };
        // Wearing_Hat, 100 labels; Eyeglasses unsupervised.
        assert_eq!(status_of(celeba(0.21, 8.91, 0.108)), RunStatus::Collapsed);
        assert_eq!(status_of(celeba(0.40, 7.43, 0.028)), RunStatus::Collapsed);
        // Eyeglasses' spread alone, in [-1, 1], is collapse; in [0, 1] it would not be.
        assert_eq!(status_of(celeba(2.0, 2.0, 0.028)), RunStatus::Collapsed);
        let sigmoid = Vitals {
            output_range: 1.0,
            ..celeba(2.0, 2.0, 0.028)
        };
        assert_eq!(status_of(sigmoid), RunStatus::Ok);
        // Bald unsupervised and with 100 labels, Gray_Hair with 100 labels; MNIST K = 10 (semi,
        // 100 labels, seed 1).
        assert_eq!(status_of(celeba(0.369, 6.90, 0.379)), RunStatus::Ok);
        assert_eq!(status_of(celeba(0.60, 5.84, 0.370)), RunStatus::Ok);
        assert_eq!(status_of(celeba(0.61, 5.97, 0.402)), RunStatus::Ok);
        let mnist = Vitals {
            output_range: 1.0,
            ..celeba(0.69, 6.69, 0.178)
        };
        assert_eq!(status_of(mnist), RunStatus::Ok);
    }
}
