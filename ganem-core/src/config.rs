//! Training profiles: everything a run needs besides K and the seed, read from TOML.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::em::EmSpec;
use crate::error::{Error, Result};
use crate::nets::NetSpec;
use crate::optim::OptimizerSpec;

/// Which training images a run uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSpec {
    /// Train on the first `train_subset` training images (0 = all of them).
    pub train_subset: usize,
    /// Score the test error on the first `test_subset` test images (0 = all of them).
    pub test_subset: usize,
}

/// A named training profile (`configs/*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile is for and where its numbers come from.
    pub description: String,
    #[serde(default)]
    pub data: DataSpec,
    #[serde(default)]
    pub nets: NetSpec,
    pub em: EmSpec,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
}

impl Profile {
    /// Parses a profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let profile: Profile = toml::from_str(text).map_err(|e| Error::Config {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        profile.validate().map_err(|message| Error::Config {
            path: origin.to_path_buf(),
            message,
        })?;
        Ok(profile)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let em = &self.em;
        let positive = [
            ("em.iterations", em.iterations),
            ("em.batch_size", em.batch_size),
            ("em.e_step_iterations", em.e_step_iterations),
            ("em.e_step_batch_size", em.e_step_batch_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if em.m_step_epochs.is_nan() || em.m_step_epochs <= 0.0 {
            return Err(format!(
                "em.m_step_epochs must be positive, got {}",
                em.m_step_epochs
            ));
        }
        if self.nets.width.is_nan() || self.nets.width <= 0.0 {
            return Err(format!(
                "nets.width must be positive, got {}",
                self.nets.width
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys_and_bad_values_naming_the_file() {
        let p = Path::new("x.toml");
        let err = Profile::from_toml("description = 'a'\n[em]\niterations = 1\nbogus = 2\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("bogus"), "{err}");
        let err = Profile::from_toml("description = 'a'\n[em]\niterations = 0\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("em.iterations"), "{err}");
    }
}
