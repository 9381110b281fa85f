//! Data sets as image tensors in NHWC layout with values in [0, 1], and where to find them.

pub mod celeba;
pub mod idx;
pub mod mnist;
pub mod svhn;

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

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Invalid(format!(
                "image index {bad} is out of range for {} images",
                self.len()
            )));
        }
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::from_vec(idx, indices.len(), self.images.device())?;
        Ok(Self {
            images: self.images.index_select(&idx, 0)?,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            classes: self.classes,
        })
    }

    /// The images `range` (a contiguous part, in order).
    pub fn range(&self, range: std::ops::Range<usize>) -> Result<Self> {
        let indices: Vec<usize> = range.collect();
        self.select(&indices)
    }

    /// The same images with values mapped from [0, 1] to [-1, 1] (for a tanh generator).
    pub fn to_symmetric_range(&self) -> Result<Self> {
        Ok(Self {
            images: self.images.affine(2.0, -1.0)?,
            ..self.clone()
        })
    }
}

/// `per_class` images of every class, drawn without replacement by `seed`: the labelled part
/// of a semi-supervised run. Indices are returned sorted; the same seed gives the same set.
pub fn balanced_subset(
    labels: &[usize],
    classes: usize,
    per_class: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(u32::MAX));
    let mut chosen = Vec::with_capacity(classes * per_class);
    for class in 0..classes {
        let of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if of_class.len() < per_class {
            return Err(Error::Invalid(format!(
                "{per_class} labelled images per class asked for, but class {class} has only {}",
                of_class.len()
            )));
        }
        chosen.extend(of_class.choose_multiple(&mut rng, per_class).copied());
    }
    chosen.sort_unstable();
    Ok(chosen)
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

impl std::fmt::Display for DataLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataLocation::Dir(dir) => write!(f, "{}", dir.display()),
            DataLocation::Hub => write!(
                f,
                "the Hugging Face Hub (no local copy: no --data-dir, no ${DATA_DIR_ENV}, no \
                 ../shared/data or ./data folder here)"
            ),
        }
    }
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

/// A parquet file of images in the Hub's layout (a struct column `image` whose `bytes` hold
/// an encoded image), read whole: every problem names the file.
pub(crate) struct ParquetImages<'a> {
    path: &'a Path,
    frame: polars::prelude::DataFrame,
}

impl<'a> ParquetImages<'a> {
    pub(crate) fn read(path: &'a Path) -> Result<Self> {
        use polars::prelude::SerReader;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let frame = polars::prelude::ParquetReader::new(file)
            .finish()
            .map_err(|e| Error::bad_file(path, format!("not a readable parquet file: {e}")))?;
        Ok(Self { path, frame })
    }

    /// An error about this file.
    pub(crate) fn bad(&self, problem: String) -> Error {
        Error::bad_file(self.path, problem)
    }

    pub(crate) fn column(&self, name: &str) -> Result<polars::prelude::Series> {
        self.frame
            .column(name)
            .map(|c| c.as_materialized_series().clone())
            .map_err(|_| {
                self.bad(format!(
                    "no column '{name}' (columns: {:?})",
                    self.frame.get_column_names()
                ))
            })
    }

    /// The encoded images (`format` names what they should be, for the errors).
    pub(crate) fn image_bytes(&self, format: &str) -> Result<polars::prelude::BinaryChunked> {
        let images = self.column("image")?;
        let bytes = images
            .struct_()
            .map_err(|e| {
                self.bad(format!(
                    "column 'image' is not a struct with {format} bytes: {e}"
                ))
            })?
            .field_by_name("bytes")
            .map_err(|e| self.bad(format!("column 'image' has no field 'bytes': {e}")))?;
        Ok(bytes
            .binary()
            .map_err(|e| self.bad(format!("image.bytes is not binary: {e}")))?
            .clone())
    }
}

/// Test helpers shared by the parquet loaders' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    /// `name` inside a temporary folder of this test process for `loader`.
    pub fn temp(loader: &str, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ganem-{loader}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Each `(file, expected)`, written by `write`, must be refused by `read` with an error
    /// naming the file and saying `expected`; so must a file that is no parquet.
    pub fn assert_refused<T, E: std::fmt::Display>(
        loader: &str,
        cases: Vec<(&str, &str)>,
        mut write: impl FnMut(&Path, usize),
        read: impl Fn(&Path) -> Result<T, E>,
    ) {
        for (case, (name, expected)) in cases.into_iter().enumerate() {
            let path = temp(loader, name);
            write(&path, case);
            let err = read(&path).err().expect("refused").to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
        }
        let corrupt = temp(loader, "corrupt.parquet");
        std::fs::write(&corrupt, b"PAR1 not really").unwrap();
        let err = read(&corrupt).err().expect("refused").to_string();
        assert!(
            err.contains("corrupt.parquet") && err.contains("not a readable parquet"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_subset_is_balanced_deterministic_and_seed_dependent() {
        // 1,000 labels, class i at every index with i = index % 10, class 9 rarer.
        let labels: Vec<usize> = (0..1000)
            .map(|i| if i % 10 == 9 && i > 200 { 0 } else { i % 10 })
            .collect();
        let a = balanced_subset(&labels, 10, 10, 1).unwrap();
        assert_eq!(a.len(), 100);
        for class in 0..10 {
            assert_eq!(a.iter().filter(|&&i| labels[i] == class).count(), 10);
        }
        let mut unique = a.clone();
        unique.dedup();
        assert_eq!(unique.len(), 100, "drawn without replacement");
        assert_eq!(a, balanced_subset(&labels, 10, 10, 1).unwrap());
        assert_ne!(a, balanced_subset(&labels, 10, 10, 2).unwrap());
        // Class 9 has 20 images (9, 19, ..., 199): 30 per class cannot be had.
        let err = balanced_subset(&labels, 10, 30, 1).unwrap_err().to_string();
        assert!(err.contains("class 9 has only 20"), "{err}");
    }
}
