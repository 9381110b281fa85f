//! Pictures of results: grids of generated images.

use std::path::Path;

use candle_core::Tensor;

use crate::error::{Error, Result};

/// Writes `images` `(rows * cols, H, W, C)` in [0, 1] as one PNG grid, row-major, with a
/// one-pixel gap; C is 1 (grey) or 3 (RGB).
pub fn save_image_grid(images: &Tensor, rows: usize, cols: usize, path: &Path) -> Result<()> {
    let (n, h, w, c) = images.dims4()?;
    if n != rows * cols || !(c == 1 || c == 3) {
        return Err(Error::Invalid(format!(
            "image grid of {rows}x{cols} from {n} images with {c} channels"
        )));
    }
    let pixels: Vec<f32> = images.flatten_all()?.to_vec1()?;
    let (gw, gh) = (cols * (w + 1) + 1, rows * (h + 1) + 1);
    let mut canvas = image::RgbImage::from_pixel(gw as u32, gh as u32, image::Rgb([255, 255, 255]));
    for i in 0..n {
        let (r, col) = (i / cols, i % cols);
        for y in 0..h {
            for x in 0..w {
                let base = ((i * h + y) * w + x) * c;
                let px = |ch: usize| {
                    (pixels[base + ch.min(c - 1)].clamp(0.0, 1.0) * 255.0).round() as u8
                };
                let (cx, cy) = (col * (w + 1) + 1 + x, r * (h + 1) + 1 + y);
                canvas.put_pixel(cx as u32, cy as u32, image::Rgb([px(0), px(1), px(2)]));
            }
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    canvas
        .save(path)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}
