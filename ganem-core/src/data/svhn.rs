//! SVHN cropped digits (32 x 32 RGB) from parquet files in the layout of the Hugging Face data
//! set `ufldl-stanford/svhn`, config `cropped_digits`: a struct column `image` whose `bytes`
//! hold a PNG, and an integer column `label` in 0..9 (the digit 0 is label 0).

use std::path::{Path, PathBuf};

use candle_core::Device;
use polars::prelude::*;

use super::{dataset_dir, DataLocation, ImageSet, ParquetImages};
use crate::error::{Error, Result};
use crate::nets::ImageShape;

pub const SHAPE: ImageShape = ImageShape {
    height: 32,
    width: 32,
    channels: 3,
};
pub const CLASSES: usize = 10;

/// Which images train and which score a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The official splits: train on `train.parquet`, score on `test.parquet`.
    Official,
    /// Only (the first 10,000 images of) the official test split is at hand: its images
    /// 0-4999 are the training pool (the labelled images are drawn from it) and 5000-9999
    /// the evaluation set. Not directly comparable with numbers on the official splits.
    TestSplit,
}

impl Protocol {
    /// The name results record.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Official => "official",
            Protocol::TestSplit => "test-split-5000",
        }
    }
}

/// Images to train on and images to score on, by a named protocol.
pub struct SvhnData {
    pub train: ImageSet,
    pub test: ImageSet,
    pub protocol: Protocol,
}

/// Images of the official test split that [`Protocol::TestSplit`] uses, and where it cuts.
const TEST_SPLIT_LEN: usize = 10_000;
const TEST_SPLIT_CUT: usize = 5_000;

/// Loads SVHN from `location`, values in [0, 1]: both official splits when `train.parquet`
/// is there (or from the Hub), else [`Protocol::TestSplit`] on `test.parquet`.
pub fn load(location: &DataLocation, device: &Device) -> Result<SvhnData> {
    let (train, test) = match location {
        DataLocation::Dir(dir) => {
            let dir = dataset_dir(dir, "svhn");
            let test = dir.join("test.parquet");
            if !test.is_file() {
                return Err(Error::Invalid(format!(
                    "no SVHN in {}: expected test.parquet (and train.parquet)",
                    dir.display()
                )));
            }
            let train = dir.join("train.parquet");
            (train.is_file().then_some(train), test)
        }
        DataLocation::Hub => {
            let (train, test) = download()?;
            (Some(train), test)
        }
    };
    let test_set = read_parquet(&test, device)?;
    match train {
        Some(train) => Ok(SvhnData {
            train: read_parquet(&train, device)?,
            test: test_set,
            protocol: Protocol::Official,
        }),
        None => {
            if test_set.len() < TEST_SPLIT_LEN {
                return Err(Error::bad_file(
                    &test,
                    format!(
                        "{} images; the test-split protocol needs {TEST_SPLIT_LEN}",
                        test_set.len()
                    ),
                ));
            }
            Ok(SvhnData {
                train: test_set.range(0..TEST_SPLIT_CUT)?,
                test: test_set.range(TEST_SPLIT_CUT..TEST_SPLIT_LEN)?,
                protocol: Protocol::TestSplit,
            })
        }
    }
}

/// Reads one parquet file of SVHN images; every problem names the file and the row.
pub fn read_parquet(path: &Path, device: &Device) -> Result<ImageSet> {
    let file = ParquetImages::read(path)?;
    let bad = |problem: String| file.bad(problem);
    let images = file.image_bytes("PNG")?;
    let labels = file
        .column("label")?
        .cast(&DataType::Int64)
        .map_err(|e| bad(format!("column 'label' is not an integer: {e}")))?;
    let labels = labels.i64().map_err(|e| bad(e.to_string()))?.clone();

    let per_image = SHAPE.height * SHAPE.width * SHAPE.channels;
    let mut pixels = Vec::with_capacity(images.len() * per_image);
    let mut classes = Vec::with_capacity(images.len());
    for (row, (png, label)) in images.iter().zip(labels.iter()).enumerate() {
        let png = png.ok_or_else(|| bad(format!("row {row}: no image bytes")))?;
        let decoded = image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .map_err(|e| bad(format!("row {row}: not a PNG image: {e}")))?;
        let rgb = match decoded {
            image::DynamicImage::ImageRgb8(rgb)
                if (rgb.width(), rgb.height()) == (SHAPE.width as u32, SHAPE.height as u32) =>
            {
                rgb
            }
            other => {
                return Err(bad(format!(
                    "row {row}: image is {}x{} {:?}, expected {}x{} RGB (8-bit)",
                    other.width(),
                    other.height(),
                    other.color(),
                    SHAPE.width,
                    SHAPE.height
                )))
            }
        };
        let label = label.ok_or_else(|| bad(format!("row {row}: no label")))?;
        if !(0..CLASSES as i64).contains(&label) {
            return Err(bad(format!(
                "row {row}: label {label} is out of range 0..{}",
                CLASSES - 1
            )));
        }
        pixels.extend_from_slice(rgb.as_raw());
        classes.push(label as usize);
    }
    if classes.is_empty() {
        return Err(bad("no images".into()));
    }
    ImageSet::from_bytes(pixels, classes, SHAPE, CLASSES, device)
}

#[cfg(feature = "hub")]
fn download() -> Result<(PathBuf, PathBuf)> {
    let fail = |e: hf_hub::HFError| Error::Download {
        what: "ufldl-stanford/svhn (cropped_digits) from the Hugging Face Hub".into(),
        message: e.to_string(),
    };
    let api = hf_hub::HFClientSync::new().map_err(fail)?;
    let repo = api.dataset("ufldl-stanford", "svhn");
    let get = |split: &str| {
        let download = repo
            .download_file()
            .filename(format!("cropped_digits/{split}/0000.parquet"))
            .revision("refs/convert/parquet");
        match download.clone().local_files_only(true).send() {
            Err(hf_hub::HFError::LocalEntryNotFound { .. }) => download.send(),
            cached => cached,
        }
        .map_err(fail)
    };
    Ok((get("train")?, get("test")?))
}

#[cfg(not(feature = "hub"))]
fn download() -> Result<(PathBuf, PathBuf)> {
    Err(Error::Invalid(
        "no local SVHN found (give --data-dir or set GANEM_DATA_DIR) and this build has no \
         `hub` feature to download it"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a parquet file in the Hub layout with the given PNGs and labels.
    fn write(path: &Path, pngs: Vec<Option<Vec<u8>>>, labels: Vec<i64>) {
        let bytes = Series::new("bytes".into(), pngs);
        let paths = Series::new("path".into(), vec![None::<&str>; labels.len()]);
        let image = StructChunked::from_series("image".into(), labels.len(), [bytes, paths].iter())
            .unwrap()
            .into_series();
        let height = labels.len();
        let columns = vec![image.into(), Series::new("label".into(), labels).into()];
        let mut frame = DataFrame::new(height, columns).unwrap();
        let file = std::fs::File::create(path).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();
    }

    fn png(width: u32, height: u32, rgb: bool) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let image = if rgb {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
                image::Rgb([x as u8, y as u8, 7])
            }))
        } else {
            image::DynamicImage::ImageLuma8(image::GrayImage::new(width, height))
        };
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn temp(name: &str) -> PathBuf {
        super::super::testing::temp("svhn", name)
    }

    #[test]
    fn reads_the_hub_layout_and_names_file_and_row_in_errors() {
        let good = temp("good.parquet");
        write(
            &good,
            vec![Some(png(32, 32, true)), Some(png(32, 32, true))],
            vec![5, 0],
        );
        let set = read_parquet(&good, &Device::Cpu).unwrap();
        assert_eq!((set.len(), set.labels.clone()), (2, vec![5, 0]));
        assert_eq!(set.images.dims(), &[2, 32, 32, 3]);
        // Pixel (x = 3, y = 2) of the first image is (3, 2, 7) / 255.
        let px: Vec<f32> = set
            .images
            .get(0)
            .unwrap()
            .get(2)
            .unwrap()
            .get(3)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!((px[0] - 3.0 / 255.0).abs() < 1e-6 && (px[2] - 7.0 / 255.0).abs() < 1e-6);

        type Case = (&'static str, Vec<Option<Vec<u8>>>, Vec<i64>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "size.parquet",
                vec![Some(png(32, 32, true)), Some(png(28, 28, true))],
                vec![1, 2],
                "row 1: image is 28x28",
            ),
            (
                "mode.parquet",
                vec![Some(png(32, 32, false))],
                vec![1],
                "row 0: image is 32x32 L8",
            ),
            (
                "label.parquet",
                vec![Some(png(32, 32, true)), Some(png(32, 32, true))],
                vec![1, 10],
                "row 1: label 10 is out of range",
            ),
            (
                "png.parquet",
                vec![Some(vec![1, 2, 3])],
                vec![1],
                "row 0: not a PNG",
            ),
            ("null.parquet", vec![None], vec![1], "row 0: no image bytes"),
        ];
        super::super::testing::assert_refused(
            "svhn",
            cases.iter().map(|c| (c.0, c.3)).collect(),
            |path, i| write(path, cases[i].1.clone(), cases[i].2.clone()),
            |path| read_parquet(path, &Device::Cpu),
        );

        let missing = temp("nolabel.parquet");
        let mut frame =
            DataFrame::new(1, vec![Series::new("digit".into(), vec![1i64]).into()]).unwrap();
        ParquetWriter::new(std::fs::File::create(&missing).unwrap())
            .finish(&mut frame)
            .unwrap();
        let err = read_parquet(&missing, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("nolabel.parquet") && err.contains("no column 'image'"),
            "{err}"
        );
        std::fs::remove_dir_all(good.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_shared_test_split_loads_under_the_test_split_protocol() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        if !dir.join("svhn/test.parquet").is_file() {
            eprintln!("skipped: no shared SVHN");
            return;
        }
        let data = load(&DataLocation::Dir(dir), &Device::Cpu).unwrap();
        assert_eq!(data.protocol, Protocol::TestSplit);
        assert_eq!((data.train.len(), data.test.len()), (5000, 5000));
        // The README's first labels of the official test split.
        assert_eq!(&data.train.labels[..5], &[5, 2, 1, 0, 6]);
    }
}
