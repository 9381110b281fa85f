//! Convolutions in NHWC layout as `im2col` plus one matrix product, and transposed
//! convolutions as one matrix product plus `col2im`, each a single op. `im2col` and `col2im`
//! are each other's adjoint, so each op's backward pass is built from the other's pieces.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{matmul, Matrix};
use super::{contiguous_f32, cpu_tensor, with_scratch, with_values};

/// Geometry of a square-kernel convolution over an NHWC image batch.
///
/// `image` is the side that `im2col` reads and `col2im` writes: the input of a convolution, or
/// the output of a transposed convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGeometry {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PatchGeometry {
    /// Height of the grid of patch positions.
    pub fn grid_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Width of the grid of patch positions.
    pub fn grid_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Length of one patch row: kernel * kernel * channels.
    pub fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    fn rows_per_image(&self) -> usize {
        self.grid_height() * self.grid_width()
    }

    /// Patch rows of the whole batch.
    fn rows(&self) -> usize {
        self.batch * self.rows_per_image()
    }

    /// Calls `f(column_offset, pixel_offset, len)` for each run of one patch row that lies in
    /// one image row: `len` values from `column_offset` in the patch row match `len` values
    /// from `pixel_offset` in the NHWC image, or padding where `pixel_offset` is `None`.
    #[inline]
    fn for_each_span(&self, gy: usize, gx: usize, mut f: impl FnMut(usize, Option<usize>, usize)) {
        let (k, c) = (self.kernel, self.channels);
        let x0 = (gx * self.stride) as isize - self.padding as isize;
        // The kernel row's taps that fall inside the image, [first, last).
        let first = (-x0).clamp(0, k as isize) as usize;
        let last = (self.width as isize - x0).clamp(first as isize, k as isize) as usize;
        for ky in 0..k {
            let row_start = ky * k * c;
            let iy = (gy * self.stride + ky) as isize - self.padding as isize;
            if iy < 0 || iy >= self.height as isize {
                f(row_start, None, k * c);
                continue;
            }
            if first > 0 {
                f(row_start, None, first * c);
            }
            if last > first {
                let pixel = (iy as usize * self.width) as isize + x0 + first as isize;
                f(
                    row_start + first * c,
                    Some(pixel as usize * c),
                    (last - first) * c,
                );
            }
            if last < k {
                f(row_start + last * c, None, (k - last) * c);
            }
        }
    }
}

/// Unfolds NHWC images into patch rows `(B * GH * GW, K * K * C)`, overwriting `cols`.
fn im2col(g: &PatchGeometry, images: &[f32], cols: &mut [f32]) {
    let (rows, patch) = (g.rows_per_image(), g.patch_len());
    let gw = g.grid_width();
    cols.par_chunks_mut(rows * patch)
        .zip(images.par_chunks(g.image_len()))
        .for_each(|(dst, img)| {
            for (row, out) in dst.chunks_exact_mut(patch).enumerate() {
                g.for_each_span(row / gw, row % gw, |col, pixel, len| match pixel {
                    Some(p) => out[col..col + len].copy_from_slice(&img[p..p + len]),
                    None => out[col..col + len].fill(0.0),
                });
            }
        });
}

/// Folds patch rows back into NHWC images, summing overlaps; overwrites `images`.
fn col2im(g: &PatchGeometry, cols: &[f32], images: &mut [f32]) {
    let (rows, patch) = (g.rows_per_image(), g.patch_len());
    let gw = g.grid_width();
    images
        .par_chunks_mut(g.image_len())
        .zip(cols.par_chunks(rows * patch))
        .for_each(|(img, src)| {
            img.fill(0.0);
            for (row, patch_row) in src.chunks_exact(patch).enumerate() {
                g.for_each_span(row / gw, row % gw, |col, pixel, len| {
                    if let Some(p) = pixel {
                        for (o, v) in img[p..p + len].iter_mut().zip(&patch_row[col..col + len]) {
                            *o += v;
                        }
                    }
                });
            }
        });
}

fn check_len(op: &str, what: &str, got: usize, want: usize, g: &PatchGeometry) -> Result<()> {
    if got != want {
        candle_core::bail!("{op}: {what} has {got} values, expected {want} for {g:?}");
    }
    Ok(())
}

/// Convolution: NHWC images `(B, H, W, C_in)` (the geometry's image side) and weight
/// `(K * K * C_in, C_out)`, rows ordered (ky, kx, channel), give `(B, GH, GW, C_out)`.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dOp(pub PatchGeometry);

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "ganem-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        check_len(self.name(), "input", x.len(), g.batch * g.image_len(), g)?;
        let (rows, patch) = (g.rows(), g.patch_len());
        let (w_rows, out_channels) = l2.shape().dims2()?;
        check_len(self.name(), "weight rows", w_rows, patch, g)?;
        let mut y = vec![0f32; rows * out_channels];
        with_scratch(rows * patch, |cols| {
            im2col(g, x, cols);
            matmul(
                &mut y,
                Matrix::new(cols, rows, patch),
                Matrix::new(w, patch, out_channels),
                false,
            );
        });
        let shape = (g.batch, g.grid_height(), g.grid_width(), out_channels);
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = &self.0;
        let (rows, patch) = (g.rows(), g.patch_len());
        let out_channels = w.dim(1)?;
        with_values(grad, self.name(), |dy| {
            let dy = Matrix::new(dy, rows, out_channels);
            let dw = w.track_op().then(|| {
                with_values(x, self.name(), |x| {
                    let mut dw = vec![0f32; patch * out_channels];
                    with_scratch(rows * patch, |cols| {
                        im2col(g, x, cols);
                        matmul(&mut dw, Matrix::new(cols, rows, patch).t(), dy, false);
                    });
                    cpu_tensor(dw, (patch, out_channels))
                })
            });
            let dx = x.track_op().then(|| {
                with_values(w, self.name(), |w| {
                    let mut dx = vec![0f32; g.batch * g.image_len()];
                    with_scratch(rows * patch, |dcols| {
                        let wt = Matrix::new(w, patch, out_channels).t();
                        matmul(dcols, dy, wt, false);
                        col2im(g, dcols, &mut dx);
                    });
                    cpu_tensor(dx, x.shape())
                })
            });
            Ok((dx.transpose()?, dw.transpose()?))
        })
    }
}

/// Transposed convolution: NHWC input `(B, GH, GW, C_in)` (the geometry's grid) and weight
/// `(C_in, K * K * C_out)`, columns ordered (ky, kx, channel), give the geometry's images
/// `(B, H, W, C_out)`.
#[derive(Debug, Clone, Copy)]
pub struct ConvTranspose2dOp(pub PatchGeometry);

impl CustomOp2 for ConvTranspose2dOp {
    fn name(&self) -> &'static str {
        "ganem-conv-transpose2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let (rows, patch) = (g.rows(), g.patch_len());
        let (in_channels, w_cols) = l2.shape().dims2()?;
        check_len(self.name(), "input", x.len(), rows * in_channels, g)?;
        check_len(self.name(), "weight columns", w_cols, patch, g)?;
        let mut y = vec![0f32; g.batch * g.image_len()];
        with_scratch(rows * patch, |cols| {
            matmul(
                cols,
                Matrix::new(x, rows, in_channels),
                Matrix::new(w, in_channels, patch),
                false,
            );
            col2im(g, cols, &mut y);
        });
        let shape = (g.batch, g.height, g.width, g.channels);
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = &self.0;
        let (rows, patch) = (g.rows(), g.patch_len());
        let in_channels = w.dim(0)?;
        let (need_dx, need_dw) = (x.track_op(), w.track_op());
        if !need_dx && !need_dw {
            return Ok((None, None));
        }
        with_values(grad, self.name(), |dy| {
            with_scratch(rows * patch, |dcols| {
                im2col(g, dy, dcols);
                let dcols = Matrix::new(dcols, rows, patch);
                let dx = need_dx.then(|| {
                    with_values(w, self.name(), |w| {
                        let mut dx = vec![0f32; rows * in_channels];
                        let wt = Matrix::new(w, in_channels, patch).t();
                        matmul(&mut dx, dcols, wt, false);
                        cpu_tensor(dx, x.shape())
                    })
                });
                let dw = need_dw.then(|| {
                    with_values(x, self.name(), |x| {
                        let mut dw = vec![0f32; in_channels * patch];
                        let xt = Matrix::new(x, rows, in_channels).t();
                        matmul(&mut dw, xt, dcols, false);
                        cpu_tensor(dw, (in_channels, patch))
                    })
                });
                Ok((dx.transpose()?, dw.transpose()?))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::random;
    use super::*;

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        // <im2col(x), y> == <x, col2im(y)> for random x and y, with padding on every side.
        let g = PatchGeometry {
            batch: 2,
            height: 7,
            width: 6,
            channels: 3,
            kernel: 4,
            stride: 2,
            padding: 1,
        };
        let x: Vec<f32> = random(&[2 * 7 * 6 * 3], 1).to_vec1().unwrap();
        let mut cols = vec![f32::NAN; g.rows() * g.patch_len()];
        im2col(&g, &x, &mut cols);
        let y: Vec<f32> = random(&[cols.len()], 2).to_vec1().unwrap();
        let mut back = vec![f32::NAN; x.len()];
        col2im(&g, &y, &mut back);
        let lhs: f32 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
