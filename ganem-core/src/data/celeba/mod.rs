//! CelebA aligned faces with their 40 binary attributes (Tables 2 and 3), from a parquet file:
//! a struct column `image` whose `bytes` hold a JPEG, a string column `image_id`, and one
//! boolean column per attribute, named as in `list_attr_celeba.txt`. Faces become square RGB
//! images (64 x 64 as in the paper, or smaller for a CPU budget) the DCGAN way: the central
//! 140 x 140 of a 178 x 218 face, scaled down; the box is taken in proportion, so half-size
//! copies (89 x 109) land on the same pixels.

mod selection;

use std::path::Path;

use candle_core::Device;

use super::{dataset_dir, DataLocation, ImageSet, ParquetImages};
use crate::error::{Error, Result};
use crate::nets::ImageShape;

pub use selection::{purity, select_for_attribute, AttributeSelection, HELD_OUT_EVERY};

/// The side of the faces in the paper (Table 6): 64 x 64.
pub const PAPER_SIDE: usize = 64;

/// The shape of faces scaled to `side` x `side`.
pub fn shape(side: usize) -> ImageShape {
    ImageShape {
        height: side,
        width: side,
        channels: 3,
    }
}

/// The sides a face can be scaled to: at most the half-size copies' crop (70 pixels), and at
/// least 8 so that the networks' stride-2 layers have something to work on.
pub const SIDES: std::ops::RangeInclusive<usize> = 8..=70;

/// The 40 attributes in the order of `list_attr_celeba.txt` (and of the paper's Tables 2, 3).
pub const ATTRIBUTES: [&str; 40] = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
];

/// The aligned face's size and the side of its central crop (DCGAN's CelebA pipeline).
const FACE: (f64, f64) = (178.0, 218.0);
const CROP: f64 = 140.0;

/// Faces with their attributes.
pub struct Celeba {
    /// Square RGB faces in [0, 1]; the labels are those of attribute 0 until
    /// [`Celeba::labelled_by`] picks another.
    pub faces: ImageSet,
    /// Per face, the 40 attributes in the order of [`ATTRIBUTES`] (`true` = 1 in the file).
    pub attributes: Vec<[bool; 40]>,
    /// CelebA's file name of each face, e.g. `000001.jpg`.
    pub ids: Vec<String>,
}

impl Celeba {
    /// The faces labelled 1 where `attribute` holds and 0 where not (two classes).
    pub fn labelled_by(&self, attribute: usize) -> Result<ImageSet> {
        if attribute >= ATTRIBUTES.len() {
            return Err(Error::Invalid(format!(
                "attribute {attribute} is out of range 0..{}",
                ATTRIBUTES.len() - 1
            )));
        }
        let mut set = self.faces.clone();
        set.labels = self
            .attributes
            .iter()
            .map(|a| a[attribute] as usize)
            .collect();
        Ok(set)
    }

    /// The faces of `attribute`'s experiment (App. B.3), see [`select_for_attribute`].
    pub fn select_for(&self, attribute: usize, cap_per_value: usize) -> Result<AttributeSelection> {
        select_for_attribute(&self.attributes, attribute, cap_per_value)
    }

    /// The index of an attribute by its name in `list_attr_celeba.txt`.
    pub fn attribute_index(name: &str) -> Result<usize> {
        ATTRIBUTES.iter().position(|a| *a == name).ok_or_else(|| {
            Error::Invalid(format!(
                "no CelebA attribute '{name}' (they are: {})",
                ATTRIBUTES.join(", ")
            ))
        })
    }
}

/// Loads `celeba.parquet` from `location` (a folder holding it, or a `celeba` folder that
/// does), faces scaled to `side` x `side` (see [`SIDES`]). CelebA is not fetched from the Hub:
/// its licence asks for a local copy.
pub fn load(location: &DataLocation, side: usize, device: &Device) -> Result<Celeba> {
    match location {
        DataLocation::Dir(dir) => {
            let path = dataset_dir(dir, "celeba").join("celeba.parquet");
            if !path.is_file() {
                return Err(Error::Invalid(format!(
                    "no CelebA in {}: expected celeba.parquet",
                    dir.display()
                )));
            }
            read_parquet(&path, side, device)
        }
        DataLocation::Hub => Err(Error::Invalid(
            "no local CelebA: give --data-dir (a folder with celeba/celeba.parquet) or set \
             GANEM_DATA_DIR"
                .into(),
        )),
    }
}

/// Reads a CelebA parquet file, faces scaled to `side` x `side`; every problem names the file
/// and the row.
pub fn read_parquet(path: &Path, side: usize, device: &Device) -> Result<Celeba> {
    if !SIDES.contains(&side) {
        return Err(Error::Invalid(format!(
            "data.image_size = {side} is out of range for CelebA: faces can be {} to {} pixels \
             wide ({PAPER_SIDE} in the paper)",
            SIDES.start(),
            SIDES.end()
        )));
    }
    let shape = shape(side);
    let file = ParquetImages::read(path)?;
    let bad = |problem: String| file.bad(problem);
    let column = |name: &str| file.column(name);
    let images = file.image_bytes("JPEG")?;
    let ids = column("image_id")?;
    let ids: Vec<Option<String>> = ids
        .str()
        .map_err(|e| bad(format!("column 'image_id' is not text: {e}")))?
        .iter()
        .map(|s| s.map(str::to_string))
        .collect();
    let mut flags = Vec::with_capacity(ATTRIBUTES.len());
    for name in ATTRIBUTES {
        let series = column(name)?;
        let values: Vec<Option<bool>> = series
            .bool()
            .map_err(|e| bad(format!("column '{name}' is not boolean: {e}")))?
            .iter()
            .collect();
        flags.push(values);
    }

    let n = images.len();
    let per_face = shape.height * shape.width * shape.channels;
    let mut pixels = vec![0u8; n * per_face];
    let decoded: Vec<Result<()>> = {
        use rayon::prelude::*;
        let jpegs: Vec<Option<&[u8]>> = images.iter().collect();
        pixels
            .par_chunks_mut(per_face)
            .zip(jpegs.par_iter())
            .enumerate()
            .map(|(row, (out, jpeg))| {
                let jpeg = jpeg.ok_or_else(|| bad(format!("row {row}: no image bytes")))?;
                let face = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
                    .map_err(|e| bad(format!("row {row}: not a JPEG image: {e}")))?;
                let face = match face {
                    image::DynamicImage::ImageRgb8(rgb) => rgb,
                    other => {
                        return Err(bad(format!(
                            "row {row}: image is {:?}, expected RGB (8-bit)",
                            other.color()
                        )))
                    }
                };
                crop(&face, side, out).map_err(|problem| bad(format!("row {row}: {problem}")))
            })
            .collect()
    };
    // The first problem by row, so the message does not depend on the threads.
    decoded.into_iter().collect::<Result<Vec<()>>>()?;
    let mut attributes = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    for row in 0..n {
        let mut face = [false; 40];
        for (a, values) in flags.iter().enumerate() {
            face[a] = values[row]
                .ok_or_else(|| bad(format!("row {row}: no value of '{}'", ATTRIBUTES[a])))?;
        }
        attributes.push(face);
        names.push(
            ids[row]
                .clone()
                .ok_or_else(|| bad(format!("row {row}: no image_id")))?,
        );
    }
    if n == 0 {
        return Err(bad("no images".into()));
    }
    let labels = attributes.iter().map(|a| a[0] as usize).collect();
    Ok(Celeba {
        faces: ImageSet::from_bytes(pixels, labels, shape, 2, device)?,
        attributes,
        ids: names,
    })
}

/// The central crop of an aligned face (140 / 178 of its width, a square), scaled to `side` x
/// `side` into `out` (RGB, row-major). Each output pixel averages n x n bilinear samples spread
/// over the area it covers (n = 2 at 64 x 64, more for smaller sides), so the reduction does
/// not alias.
fn crop(face: &image::RgbImage, side: usize, out: &mut [u8]) -> std::result::Result<(), String> {
    let (w, h) = (face.width() as f64, face.height() as f64);
    if (w / h - FACE.0 / FACE.1).abs() > 0.01 || w < 64.0 {
        return Err(format!(
            "image is {w}x{h}; an aligned CelebA face is 178x218 (or a scaled copy)"
        ));
    }
    let crop_side = CROP * w / FACE.0;
    let (left, top) = ((w - crop_side) / 2.0, (h - crop_side) / 2.0);
    let step = crop_side / side as f64;
    let per_axis = (2 * PAPER_SIDE).div_ceil(side).max(2);
    let offsets: Vec<f64> = (0..per_axis)
        .map(|i| (i as f64 + 0.5) / per_axis as f64)
        .collect();
    let sample = |x: f64, y: f64, c: usize| -> f64 {
        // Pixel centres at integer + 0.5.
        let (x, y) = ((x - 0.5).clamp(0.0, w - 1.0), (y - 0.5).clamp(0.0, h - 1.0));
        let (x0, y0) = (x.floor() as u32, y.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w as u32 - 1), (y0 + 1).min(h as u32 - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let p = |x, y| face.get_pixel(x, y)[c] as f64;
        (p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx) * (1.0 - fy)
            + (p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx) * fy
    };
    let samples = (per_axis * per_axis) as f64;
    for v in 0..side {
        for u in 0..side {
            for c in 0..3 {
                let mut sum = 0.0;
                for dy in &offsets {
                    for dx in &offsets {
                        sum += sample(
                            left + (u as f64 + dx) * step,
                            top + (v as f64 + dy) * step,
                            c,
                        );
                    }
                }
                out[(v * side + u) * 3 + c] = (sum / samples).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// A face of `w` x `h` whose central crop is red and whose border is blue.
    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let side = 140.0 * w as f64 / 178.0;
        let (left, top) = ((w as f64 - side) / 2.0, (h as f64 - side) / 2.0);
        let face = image::RgbImage::from_fn(w, h, |x, y| {
            let inside = (x as f64) >= left - 1.0
                && (x as f64) < left + side + 1.0
                && (y as f64) >= top - 1.0
                && (y as f64) < top + side + 1.0;
            if inside {
                image::Rgb([220, 20, 20])
            } else {
                image::Rgb([20, 20, 220])
            }
        });
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(face)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    }

    fn write(path: &Path, jpegs: Vec<Option<Vec<u8>>>, drop_attribute: Option<&str>) {
        let n = jpegs.len();
        let bytes = Series::new("bytes".into(), jpegs);
        let paths = Series::new("path".into(), vec![None::<&str>; n]);
        let image = StructChunked::from_series("image".into(), n, [bytes, paths].iter())
            .unwrap()
            .into_series();
        let ids: Vec<String> = (1..=n).map(|i| format!("{i:06}.jpg")).collect();
        let mut columns = vec![image.into(), Series::new("image_id".into(), ids).into()];
        for (a, name) in ATTRIBUTES.iter().enumerate() {
            if Some(*name) != drop_attribute {
                let values: Vec<bool> = (0..n).map(|i| (i + a) % 2 == 0).collect();
                columns.push(Series::new((*name).into(), values).into());
            }
        }
        let mut frame = DataFrame::new(n, columns).unwrap();
        ParquetWriter::new(std::fs::File::create(path).unwrap())
            .finish(&mut frame)
            .unwrap();
    }

    fn temp(name: &str) -> std::path::PathBuf {
        super::super::testing::temp("celeba", name)
    }

    #[test]
    fn both_resolutions_crop_to_the_same_64_by_64_centre_and_errors_name_file_and_row() {
        let good = temp("good.parquet");
        write(&good, vec![Some(jpeg(178, 218)), Some(jpeg(89, 109))], None);
        let data = read_parquet(&good, PAPER_SIDE, &Device::Cpu).unwrap();
        assert_eq!(data.faces.images.dims(), &[2, 64, 64, 3]);
        assert_eq!(data.ids, vec!["000001.jpg", "000002.jpg"]);
        // Attribute a of face i is (i + a) even.
        assert!(data.attributes[0][0] && !data.attributes[1][0] && data.attributes[1][1]);
        let male = Celeba::attribute_index("Male").unwrap();
        assert_eq!(data.labelled_by(male).unwrap().labels, vec![1, 0]);
        assert!(Celeba::attribute_index("Beard").is_err());
        // Only the red centre is left, at both resolutions.
        let pixels: Vec<f32> = data.faces.images.flatten_all().unwrap().to_vec1().unwrap();
        for rgb in pixels.chunks(3) {
            assert!(rgb[0] > 0.7 && rgb[2] < 0.3, "{rgb:?}");
        }
        // A smaller side keeps the same centre; a side out of range is refused by value.
        let small = read_parquet(&good, 32, &Device::Cpu).unwrap();
        assert_eq!(small.faces.images.dims(), &[2, 32, 32, 3]);
        let pixels: Vec<f32> = small.faces.images.flatten_all().unwrap().to_vec1().unwrap();
        assert!(pixels.chunks(3).all(|rgb| rgb[0] > 0.7 && rgb[2] < 0.3));
        let err = read_parquet(&good, 128, &Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("data.image_size = 128"), "{err}");

        type Case = (
            &'static str,
            Vec<Option<Vec<u8>>>,
            Option<&'static str>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "size.parquet",
                vec![Some(jpeg(178, 218)), Some(jpeg(100, 100))],
                None,
                "row 1: image is 100x100",
            ),
            (
                "jpeg.parquet",
                vec![Some(vec![1, 2, 3])],
                None,
                "row 0: not a JPEG",
            ),
            ("null.parquet", vec![None], None, "row 0: no image bytes"),
            (
                "attribute.parquet",
                vec![Some(jpeg(178, 218))],
                Some("Smiling"),
                "no column 'Smiling'",
            ),
        ];
        super::super::testing::assert_refused(
            "celeba",
            cases.iter().map(|c| (c.0, c.3)).collect(),
            |path, i| write(path, cases[i].1.clone(), cases[i].2),
            |path| read_parquet(path, PAPER_SIDE, &Device::Cpu),
        );
        std::fs::remove_dir_all(good.parent().unwrap()).unwrap();
    }

    /// The shared subset: its size and attribute counts as its README tables them.
    #[test]
    fn the_shared_subset_has_its_documented_faces_and_attribute_counts() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/celeba/celeba.parquet");
        if !path.is_file() {
            eprintln!("skipped: no shared CelebA");
            return;
        }
        let data = read_parquet(&path, PAPER_SIDE, &Device::Cpu).unwrap();
        assert_eq!(data.faces.len(), 15_723);
        let count = |name: &str| {
            let a = Celeba::attribute_index(name).unwrap();
            data.attributes.iter().filter(|f| f[a]).count()
        };
        assert_eq!(
            (count("Male"), count("Eyeglasses"), count("Young")),
            (5860, 945, 12345)
        );
        assert_eq!(data.ids[0], "000001.jpg");
        // Eyeglasses: all 945 wearers and 945 others, purer than the first 945 by position.
        let glasses = Celeba::attribute_index("Eyeglasses").unwrap();
        let s = data.select_for(glasses, 0).unwrap();
        assert_eq!(
            (s.per_value, s.train.len(), s.held_out.len()),
            (945, 1512, 378)
        );
        let others: Vec<usize> = (0..data.faces.len())
            .filter(|&i| !data.attributes[i][glasses])
            .take(945)
            .chain((0..data.faces.len()).filter(|&i| data.attributes[i][glasses]))
            .collect();
        assert!(s.purity > purity(&data.attributes, &others, glasses));
    }
}
