//! Training profiles: everything a run needs besides K and the seed, read from TOML.

pub mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::em::{EmSpec, SemiSpec};
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
    /// The side of the square images the data set is scaled to, for data sets that allow it
    /// (CelebA: 8 to 70); 0 = the paper's size (64 for CelebA, 28 for MNIST, 32 for SVHN).
    #[serde(skip_serializing_if = "is_zero")]
    pub image_size: usize,
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
    /// Used only by runs with labelled images.
    #[serde(default)]
    pub semi: SemiSpec,
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

    /// Checks every setting's range (profile values and any overrides applied since), so
    /// that a bad setting fails before work starts. The message names the setting, its value
    /// and the allowed range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.em.validate()?;
        self.nets.validate()?;
        self.semi.validate()?;
        if self.em.enet_batch_norm == crate::em::EnetBatchNorm::Labelled
            && self.semi.e_step_labelled_batch == 0
        {
            return Err(
                "em.enet_batch_norm = \"labelled\" gathers the E-net's running \
                        statistics on the E-step's labelled batch, but \
                        semi.e_step_labelled_batch is 0: set it too"
                    .into(),
            );
        }
        self.validate_image_size()?;
        self.optimizer.validate()
    }

    /// An image side set in the profile must be one the generator can draw; the data set's
    /// own range (CelebA: 8 to 70) is checked where it is loaded.
    fn validate_image_size(&self) -> std::result::Result<(), String> {
        let side = self.data.image_size;
        let upsamplings = self.nets.generator_upsamplings();
        let factor = 1usize << upsamplings;
        if side == 0 || side.is_multiple_of(factor) {
            return Ok(());
        }
        let above = side.div_ceil(factor) * factor;
        let nearest = match side / factor * factor {
            0 => format!("{above}"),
            below => format!("{below} or {above}"),
        };
        Err(format!(
            "data.image_size = {side} is out of range for these networks: the generator doubles \
             its first feature map's side {upsamplings} times (nets.generator_deconv_channels \
             and the output layer), so the side must be a multiple of {factor} (e.g. {nearest})"
        ))
    }

    /// Checks the data subsets against the data there is (0 means all).
    pub fn validate_data(&self, train_len: usize, test_len: usize) -> Result<()> {
        let check = || -> std::result::Result<(), String> {
            validate::subset("data.train_subset", self.data.train_subset, train_len)?;
            validate::subset("data.test_subset", self.data.test_subset, test_len)
        };
        check().map_err(Error::Invalid)
    }

    /// A short hash of every setting but the number of EM iterations, so that runs of the same
    /// recipe (extended or not) are recognised and runs of edited profiles are not mixed.
    pub fn fingerprint(&self) -> String {
        let mut recipe = self.clone();
        recipe.em.iterations = 0;
        recipe.description.clear();
        let json = serde_json::to_string(&recipe).expect("profiles serialise");
        // FNV-1a: stable across Rust versions, unlike std's hasher.
        let hash = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }
}

/// For settings added after runs were filed: left out of the serialised profile while off,
/// so that the fingerprints of earlier profiles stay what they were.
pub(crate) fn is_zero(value: &usize) -> bool {
    *value == 0
}

/// [`is_zero`] for rates where 0 means off.
pub(crate) fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

/// [`is_zero`] for weights whose neutral value is 1.
pub(crate) fn is_one(value: &f64) -> bool {
    *value == 1.0
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

    #[test]
    fn every_out_of_range_setting_is_refused_naming_setting_value_and_range() {
        let p = Path::new("x.toml");
        let cases = [
            ("[em]\nlr_decay = 1.5", "em.lr_decay = 1.5", "(0, 1]"),
            ("[em]\nlr_decay = 0.0", "em.lr_decay = 0", "(0, 1]"),
            ("[em]\nm_step_epochs = -1.0", "em.m_step_epochs = -1", "> 0"),
            ("[em]\nm_step_epochs = nan", "em.m_step_epochs = NaN", "> 0"),
            ("[em]\nbatch_size = 0", "em.batch_size = 0", "at least 1"),
            (
                "[em]\ne_step_iterations = 0",
                "em.e_step_iterations = 0",
                "at least 1",
            ),
            (
                "[em]\ne_step_batch_size = 0",
                "em.e_step_batch_size = 0",
                "at least 1",
            ),
            (
                "[em]\ndiscriminator_steps = 0",
                "em.discriminator_steps = 0",
                "at least 1",
            ),
            (
                "[em]\neval_batch_size = 0",
                "em.eval_batch_size = 0",
                "at least 1",
            ),
            (
                "[em]\nextra_unit_weight = -2.0",
                "em.extra_unit_weight = -2",
                ">= 0",
            ),
            (
                "[em]\ngenerator_weight_clip = inf",
                "em.generator_weight_clip = inf",
                ">= 0",
            ),
            ("[em]\nmax_loss = 0.0", "em.max_loss = 0", "> 0"),
            ("[nets]\nwidth = 0.0\n[em]", "nets.width = 0", "> 0"),
            (
                "[nets]\nfc_hidden = 0\n[em]",
                "nets.fc_hidden = 0",
                "at least 1",
            ),
            (
                "[nets]\nnoise_dim = 0\n[em]",
                "nets.noise_dim = 0",
                "at least 1",
            ),
            (
                "[nets]\nconv_channels = []\n[em]",
                "nets.conv_channels",
                "at least one",
            ),
            (
                "[data]\nimage_size = 33\n[nets]\ngenerator_deconv_channels = [64, 32]\n[em]",
                "data.image_size = 33",
                "multiple of 8 (e.g. 32 or 40)",
            ),
            (
                "[data]\nimage_size = 7\n[nets]\ngenerator_deconv_channels = [64, 32]\n[em]",
                "data.image_size = 7",
                "multiple of 8 (e.g. 8)",
            ),
            (
                "[em]\n[optimizer]\nkind = 'rmsprop'\nlr = -1.0",
                "optimizer.lr = -1",
                "> 0",
            ),
            (
                "[em]\n[optimizer]\nkind = 'rmsprop'\nlr = 1e-4\nalpha = 1.0",
                "optimizer.alpha = 1",
                "[0, 1)",
            ),
            (
                "[em]\n[optimizer]\nkind = 'adam'\nlr = 1e-4\nbeta1 = 1.0\nbeta2 = 0.9\n\
                 generator_scale = 1.0\nenet_scale = 1.0",
                "optimizer.beta1 = 1",
                "[0, 1)",
            ),
            (
                "[em]\n[optimizer]\nkind = 'adam'\nlr = 1e-4\nbeta1 = 0.5\nbeta2 = 0.9\n\
                 generator_scale = 0.0\nenet_scale = 1.0",
                "optimizer.generator_scale = 0",
                "> 0",
            ),
        ];
        for (body, setting, range) in cases {
            let text = format!("description = 'a'\n{body}\n");
            let err = Profile::from_toml(&text, p).unwrap_err().to_string();
            assert!(
                err.contains(setting) && err.contains(range),
                "{body}: {err}"
            );
        }
        // Zeros that mean "all" or "off" stay allowed.
        let text = "description = 'a'\n[data]\ntrain_subset = 0\n[nets]\n\
                    generator_fc_hidden = 0\n[em]\ngenerator_weight_clip = 0.0\n\
                    extra_unit_weight = 0.0\n";
        let profile = Profile::from_toml(text, p).unwrap();
        assert!(profile.validate_data(60_000, 10_000).is_ok());
        let drawable = "description = 'a'\n[data]\nimage_size = 32\n[nets]\n\
                        generator_deconv_channels = [64, 32]\n[em]\n";
        assert!(Profile::from_toml(drawable, p).is_ok());
        let mut big = profile.clone();
        big.data.train_subset = 70_000;
        let err = big.validate_data(60_000, 10_000).unwrap_err().to_string();
        assert!(
            err.contains("data.train_subset = 70000") && err.contains("60000"),
            "{err}"
        );
    }

    #[test]
    fn the_fingerprint_ignores_the_iteration_count_and_sees_every_setting() {
        let p = Path::new("x.toml");
        let a = Profile::from_toml("description = 'a'\n[em]\niterations = 3\n", p).unwrap();
        let mut b = a.clone();
        b.em.iterations = 30;
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.em.lr_decay = 0.9;
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
