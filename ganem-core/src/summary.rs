//! Results over seeds: a GAN run is one draw, so every reported number is a mean and sample
//! standard deviation over runs. One aggregation for every experiment.

use serde::Serialize;

/// Mean, sample standard deviation (n - 1; 0 for one value), min and max of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self {
            mean,
            std,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_min_max() {
        let s = Stats::of(&[0.1, 0.2, 0.3]).unwrap();
        assert!((s.mean - 0.2).abs() < 1e-12);
        assert!((s.std - 0.1).abs() < 1e-12);
        assert_eq!((s.min, s.max), (0.1, 0.3));
        assert_eq!(Stats::of(&[0.5]).unwrap().std, 0.0);
        assert!(Stats::of(&[]).is_none());
    }
}
