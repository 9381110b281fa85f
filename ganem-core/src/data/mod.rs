//! Data sets as image tensors in NHWC layout with values in [0, 1], and where to find them.

pub mod idx;
pub mod mnist;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::nets::ImageShape;

/// Images with their ground-truth labels (used only for evaluation and semi-supervision).
#[derive(Clone)]
pub struct ImageSet {
    /// `(N, H, W, C)` f32 in [0, 1].
    pub images: Tensor,
    /// One label per image, in `0..classes`.
    pub labels: Vec<usize>,
    pub shape: ImageShape,
    pub classes: usize,
}

impl ImageSet {
    /// Builds a set from raw bytes `(N, H, W, C)` scaled by 1/255, checking every label.
    pub fn from_bytes(
        pixels: Vec<u8>,
        labels: Vec<usize>,
        shape: ImageShape,
        classes: usize,
        device: &Device,
    ) -> Result<Self> {
        let n = labels.len();
        let per_image = shape.height * shape.width * shape.channels;
        if pixels.len() != n * per_image {
            return Err(Error::Invalid(format!(
                "{} pixel values for {n} images of {per_image}",
                pixels.len()
            )));
        }
        let images = Tensor::from_vec(
            pixels,
            (n, shape.height, shape.width, shape.channels),
            device,
        )?
        .to_dtype(candle_core::DType::F32)?
        .affine(1.0 / 255.0, 0.0)?;
        Ok(Self {
            images,
            labels,
            shape,
            classes,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images (all of them when `n` is larger).
    pub fn truncate(&self, n: usize) -> Result<Self> {
        let n = n.min(self.len());
        Ok(Self {
            images: self.images.narrow(0, 0, n)?,
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
            classes: self.classes,
        })
    }
}

/// A training split and a held-out test split.
#[derive(Clone)]
pub struct Splits {
    pub train: ImageSet,
    pub test: ImageSet,
}

/// Where a data set is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataLocation {
    /// A folder holding the data set (or a folder per data set, e.g. `shared/data/mnist`).
    Dir(PathBuf),
    /// The Hugging Face Hub, cached in the usual HF cache.
    Hub,
}

/// Environment variable naming the data folder when no `--data-dir` is given.
pub const DATA_DIR_ENV: &str = "GANEM_DATA_DIR";

/// Resolves the data location, in this order: the `--data-dir` flag, `$GANEM_DATA_DIR`,
/// `../shared/data` or `./data` when present, else the Hugging Face Hub.
pub fn locate(flag: Option<&Path>) -> DataLocation {
    if let Some(dir) = flag {
        return DataLocation::Dir(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return DataLocation::Dir(PathBuf::from(dir));
    }
    ["../shared/data", "data"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .map_or(DataLocation::Hub, DataLocation::Dir)
}

/// `dir/name` when that folder exists, else `dir` itself.
pub(crate) fn dataset_dir(dir: &Path, name: &str) -> PathBuf {
    let nested = dir.join(name);
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}
