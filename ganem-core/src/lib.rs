//! GAN-EM (Zhao et al., 2018, "GAN-EM: GAN based EM Learning Framework") on candle.
//!
//! One EM loop ([`em::GanEm`]) over one set of network builders ([`nets`]) and one metrics
//! module ([`metrics`]); experiments are configurations ([`config::Profile`]) of them.

pub mod baselines;
pub mod config;
pub mod data;
pub mod em;
pub mod embedding;
pub mod error;
pub mod losses;
pub mod metrics;
pub mod nets;
pub mod ops;
pub mod optim;
pub mod report;
pub mod summary;

pub use error::{Error, Result};

/// The device runs use: the first CUDA GPU when built with the `cuda` feature, else the CPU.
pub fn default_device() -> Result<candle_core::Device> {
    #[cfg(feature = "cuda")]
    {
        Ok(candle_core::Device::new_cuda(0)?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(candle_core::Device::Cpu)
    }
}
