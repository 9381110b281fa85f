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
/// here stay above 1 (the losses sum K + 1 binary cross-entropies).
pub const D_WINS_BELOW: f64 = 0.1;

/// Mean over pixels of the standard deviation across generated samples below which G makes
/// one image whatever its input (healthy MNIST runs: about 0.2 to 0.35).
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

/// The collapse rule: `Collapsed` when the iteration's mean L_D is below [`D_WINS_BELOW`] or
/// the samples' spread is below [`SPREAD_BELOW`].
pub fn status_of(loss_d: f64, sample_spread: f64) -> RunStatus {
    if loss_d < D_WINS_BELOW || sample_spread < SPREAD_BELOW {
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
        assert_eq!(status_of(3.5, spread), RunStatus::Ok);
        assert_eq!(status_of(0.06, spread), RunStatus::Collapsed);
        assert_eq!(status_of(3.5, 0.001), RunStatus::Collapsed);
    }
}
