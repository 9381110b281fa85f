//! MNIST: 60,000 training and 10,000 test digits, 28 x 28 grey.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::idx::read_idx;
use super::{dataset_dir, DataLocation, ImageSet, Splits};
use crate::error::{Error, Result};
use crate::nets::ImageShape;

pub const SHAPE: ImageShape = ImageShape {
    height: 28,
    width: 28,
    channels: 1,
};
pub const CLASSES: usize = 10;

/// Loads both splits from `location`.
pub fn load(location: &DataLocation, device: &Device) -> Result<Splits> {
    match location {
        DataLocation::Dir(dir) => load_dir(&dataset_dir(dir, "mnist"), device),
        DataLocation::Hub => load_hub(device),
    }
}

/// The file `stem` in `dir`, plain or with `.gz`, under the usual or the dotted name.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let candidates = [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    candidates
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::io(
                dir.join(stem),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "MNIST file not found (also tried {})",
                        candidates[1..].join(", ")
                    ),
                ),
            )
        })
}

/// Reads one split from its image and label files, checking them against each other.
pub fn load_split(images_path: &Path, labels_path: &Path, device: &Device) -> Result<ImageSet> {
    let images = read_idx(images_path)?;
    if images.dims.len() != 3 || images.dims[1] != SHAPE.height || images.dims[2] != SHAPE.width {
        return Err(Error::bad_file(
            images_path,
            format!(
                "expected N x 28 x 28 images, found dimensions {:?}",
                images.dims
            ),
        ));
    }
    let labels = read_idx(labels_path)?;
    if labels.dims.len() != 1 {
        return Err(Error::bad_file(
            labels_path,
            format!("expected one dimension of labels, found {:?}", labels.dims),
        ));
    }
    if labels.dims[0] != images.dims[0] {
        return Err(Error::bad_file(
            labels_path,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        return Err(Error::bad_file(
            labels_path,
            format!("label {l} at item {i} is outside 0..9"),
        ));
    }
    let labels = labels.data.iter().map(|&l| l as usize).collect();
    ImageSet::from_bytes(images.data, labels, SHAPE, CLASSES, device)
}

fn load_dir(dir: &Path, device: &Device) -> Result<Splits> {
    let split = |prefix: &str| -> Result<ImageSet> {
        let images = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        load_split(&images, &labels, device)
    };
    Ok(Splits {
        train: split("train")?,
        test: split("t10k")?,
    })
}

#[cfg(feature = "hub")]
fn load_hub(device: &Device) -> Result<Splits> {
    let download = |e: candle_core::Error| Error::Download {
        what: "ylecun/mnist from the Hugging Face Hub".into(),
        message: e.to_string(),
    };
    let ds = candle_datasets::vision::mnist::load().map_err(download)?;
    let to_set = |images: &candle_core::Tensor, labels: &candle_core::Tensor| -> Result<ImageSet> {
        let labels: Vec<u8> = labels.to_vec1()?;
        let n = labels.len();
        let images = images
            .reshape((n, SHAPE.height, SHAPE.width, SHAPE.channels))?
            .to_device(device)?;
        Ok(ImageSet {
            images,
            labels: labels.into_iter().map(usize::from).collect(),
            shape: SHAPE,
            classes: CLASSES,
        })
    };
    Ok(Splits {
        train: to_set(&ds.train_images, &ds.train_labels)?,
        test: to_set(&ds.test_images, &ds.test_labels)?,
    })
}

#[cfg(not(feature = "hub"))]
fn load_hub(_device: &Device) -> Result<Splits> {
    Err(Error::Invalid(
        "no local MNIST found (give --data-dir or set GANEM_DATA_DIR) and this build has no \
         `hub` feature to download it"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::idx_bytes;

    fn write(dir: &Path, name: &str, bytes: Vec<u8>) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn loads_a_generated_split_and_rejects_bad_labels() {
        let dir = std::env::temp_dir().join(format!("ganem-mnist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 256) as u8).collect();
        let images = write(&dir, "img", idx_bytes(&[2, 28, 28], &pixels));
        let labels = write(&dir, "lab", idx_bytes(&[2], &[3, 9]));
        let set = load_split(&images, &labels, &Device::Cpu).unwrap();
        assert_eq!(set.labels, vec![3, 9]);
        assert_eq!(set.images.dims(), &[2, 28, 28, 1]);

        let bad = write(&dir, "bad-lab", idx_bytes(&[2], &[3, 10]));
        let msg = load_split(&images, &bad, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("bad-lab") && msg.contains("label 10"), "{msg}");

        let short = write(&dir, "short-lab", idx_bytes(&[1], &[3]));
        let msg = load_split(&images, &short, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("1 labels for 2 images"), "{msg}");

        let wrong = write(&dir, "wrong-img", idx_bytes(&[1, 4, 4], &[0; 16]));
        let msg = load_split(&wrong, &labels, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("28 x 28"), "{msg}");

        let msg = load(&DataLocation::Dir(dir.clone()), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("train-images-idx3-ubyte") && msg.contains("not found"),
            "{msg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
