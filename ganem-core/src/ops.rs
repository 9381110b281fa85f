//! CPU kernels behind the convolution layers, as candle custom ops.
//!
//! Convolutions run in NHWC layout as `im2col` followed by one matrix product (candle's
//! multi-threaded gemm), and transposed convolutions as one matrix product followed by
//! `col2im`. `im2col` and `col2im` are each other's adjoint, so each op's backward pass is the
//! other op: no convolution-specific gradient code is needed. The ops run on the CPU only;
//! `nets::layers` falls back to candle's own convolutions on other devices.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

static REFERENCE_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every layer and optimiser use candle's own ops instead of this module's kernels
/// (process-wide), so a benchmark can measure both in one run.
pub fn use_reference_ops(on: bool) {
    REFERENCE_ONLY.store(on, Ordering::Relaxed);
}

/// Whether this module's kernels serve tensors on `device`: CPU only, unless switched off.
pub fn custom_kernels(device: &Device) -> bool {
    device.is_cpu() && !REFERENCE_ONLY.load(Ordering::Relaxed)
}

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

    /// Calls `f(row_in_image, column_offset, pixel_offset)` for every in-bounds (patch, tap):
    /// `column_offset` indexes into a patch row, `pixel_offset` into one NHWC image.
    #[inline]
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (gh, gw) = (self.grid_height(), self.grid_width());
        let (k, s, p, c) = (self.kernel, self.stride, self.padding, self.channels);
        for gy in 0..gh {
            for gx in 0..gw {
                let row = gy * gw + gx;
                for ky in 0..k {
                    let iy = (gy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= self.height as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (gx * s + kx) as isize - p as isize;
                        if ix < 0 || ix >= self.width as isize {
                            continue;
                        }
                        let pixel = (iy as usize * self.width + ix as usize) * c;
                        f(row, (ky * k + kx) * c, pixel);
                    }
                }
            }
        }
    }
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(d) => d,
        _ => candle_core::bail!("{op}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Unfolds an NHWC batch `(B, H, W, C)` into patch rows `(B * GH * GW, K * K * C)`.
#[derive(Debug, Clone, Copy)]
pub struct Im2Col(pub PatchGeometry);

/// Folds patch rows `(B * GH * GW, K * K * C)` back into an NHWC batch, summing overlaps.
#[derive(Debug, Clone, Copy)]
pub struct Col2Im(pub PatchGeometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "ganem-im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let src = contiguous_f32(storage, layout, self.name())?;
        if src.len() != g.batch * g.image_len() {
            candle_core::bail!("im2col: input has {} values, geometry {g:?}", src.len());
        }
        let (rows, patch) = (g.rows_per_image(), g.patch_len());
        let mut cols = vec![0f32; g.batch * rows * patch];
        cols.par_chunks_mut(rows * patch)
            .zip(src.par_chunks(g.image_len()))
            .for_each(|(dst, img)| {
                g.for_each_tap(|row, col, pixel| {
                    let d = row * patch + col;
                    dst[d..d + g.channels].copy_from_slice(&img[pixel..pixel + g.channels]);
                })
            });
        Ok((CpuStorage::F32(cols), Shape::from((g.batch * rows, patch))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "ganem-col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let src = contiguous_f32(storage, layout, self.name())?;
        let (rows, patch) = (g.rows_per_image(), g.patch_len());
        if src.len() != g.batch * rows * patch {
            candle_core::bail!("col2im: input has {} values, geometry {g:?}", src.len());
        }
        let mut image = vec![0f32; g.batch * g.image_len()];
        image
            .par_chunks_mut(g.image_len())
            .zip(src.par_chunks(rows * patch))
            .for_each(|(img, cols)| {
                g.for_each_tap(|row, col, pixel| {
                    let s = row * patch + col;
                    for (o, v) in img[pixel..pixel + g.channels]
                        .iter_mut()
                        .zip(&cols[s..s + g.channels])
                    {
                        *o += v;
                    }
                })
            });
        let shape = Shape::from((g.batch, g.height, g.width, g.channels));
        Ok((CpuStorage::F32(image), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0))?))
    }
}

/// Leaky ReLU with its own backward pass: one pass over memory each way instead of candle-nn's
/// five element-wise ops (zeros, max, min, mul, add) and their gradients.
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu(pub f32);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "ganem-leaky-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        let slope = self.0;
        let out: Vec<f32> = src
            .iter()
            .map(|&v| if v > 0.0 { v } else { v * slope })
            .collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad, &LeakyReluGrad(self.0))?,
        ))
    }
}

/// `grad * (x > 0 ? 1 : slope)`; arguments `(x, grad)`.
struct LeakyReluGrad(f32);

impl candle_core::CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "ganem-leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let g = contiguous_f32(s2, l2, self.name())?;
        let slope = self.0;
        let out: Vec<f32> = x
            .iter()
            .zip(g)
            .map(|(&x, &g)| if x > 0.0 { g } else { g * slope })
            .collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Rows per parallel work unit of the BatchNorm kernels.
const ROWS_PER_TASK: usize = 64;

/// Per-channel sums over rows `(N, C)` of `f(row, channel, value)`'s two outputs, in f64,
/// in parallel blocks of rows.
fn channel_sums(
    x: &[f32],
    channels: usize,
    f: impl Fn(usize, usize, f32) -> (f64, f64) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let zero = || (vec![0f64; channels], vec![0f64; channels]);
    x.par_chunks(channels * ROWS_PER_TASK)
        .enumerate()
        .fold(zero, |(mut a, mut b), (task, block)| {
            for (i, row) in block.chunks_exact(channels).enumerate() {
                let row_index = task * ROWS_PER_TASK + i;
                for (j, &v) in row.iter().enumerate() {
                    let (u, w) = f(row_index, j, v);
                    a[j] += u;
                    b[j] += w;
                }
            }
            (a, b)
        })
        .reduce(zero, |(mut a, mut b), (c, d)| {
            a.iter_mut().zip(c).for_each(|(x, y)| *x += y);
            b.iter_mut().zip(d).for_each(|(x, y)| *x += y);
            (a, b)
        })
}

/// Per-channel mean and biased variance of rows `(N, C)`, one pass in f64.
fn channel_stats(x: &[f32], channels: usize) -> (Vec<f32>, Vec<f32>) {
    let (sum, sum_sq) = channel_sums(x, channels, |_, _, v| {
        let v = v as f64;
        (v, v * v)
    });
    let n = (x.len() / channels).max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let var = sum_sq
        .iter()
        .zip(&sum)
        .map(|(q, s)| ((q / n) - (s / n) * (s / n)).max(0.0) as f32)
        .collect();
    (mean, var)
}

/// Per-channel mean and 1 / sqrt(variance + eps) of rows `(N, C)`.
fn mean_and_inv_std(x: &[f32], channels: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let (mean, var) = channel_stats(x, channels);
    let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    (mean, inv_std)
}

/// Training-mode batch normalisation of rows `(N, C)` with batch statistics, optionally
/// followed by a leaky ReLU; arguments `(x, gamma, beta)`. One fused pass each way instead of
/// candle's dim-0 reductions, which are strided and slow on the CPU, and one graph node
/// instead of two.
#[derive(Debug, Clone, Copy)]
pub struct BatchNormTrain {
    pub eps: f32,
    /// Slope of the leaky ReLU applied to the normalised values (0 = ReLU), if any.
    pub activation_slope: Option<f32>,
}

#[inline]
fn activate(z: f32, slope: Option<f32>) -> f32 {
    match slope {
        Some(a) if z <= 0.0 => z * a,
        _ => z,
    }
}

/// Per-channel `(mean, biased variance)` of rows `(N, C)`, as a `(2, C)` tensor, no gradient.
#[derive(Debug, Clone, Copy)]
pub struct BatchStats;

impl CustomOp1 for BatchStats {
    fn name(&self) -> &'static str {
        "ganem-batch-stats"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let (_, channels) = layout.shape().dims2()?;
        let (mut mean, var) = channel_stats(x, channels);
        mean.extend(var);
        Ok((CpuStorage::F32(mean), Shape::from((2, channels))))
    }
}

impl candle_core::CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "ganem-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let gamma = contiguous_f32(s2, l2, self.name())?;
        let beta = contiguous_f32(s3, l3, self.name())?;
        let (_, channels) = l1.shape().dims2()?;
        let (mean, inv_std) = mean_and_inv_std(x, channels, self.eps);
        let scale: Vec<f32> = inv_std.iter().zip(gamma).map(|(i, g)| g * i).collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let slope = self.activation_slope;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(channels * ROWS_PER_TASK)
            .zip(x.par_chunks(channels * ROWS_PER_TASK))
            .for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_exact_mut(channels).zip(xc.chunks_exact(channels)) {
                    for (((o, &v), s), b) in yr.iter_mut().zip(xr).zip(&scale).zip(&shift) {
                        *o = activate(v * s + b, slope);
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c) = x.dims2()?;
        let all = x.contiguous()?.apply_op3_no_bwd(
            &grad.contiguous()?,
            &Tensor::stack(&[gamma, beta], 0)?,
            &BatchNormGrad {
                eps: self.eps,
                activation_slope: self.activation_slope,
            },
        )?;
        let dx = all.narrow(0, 0, n * c)?.reshape((n, c))?;
        let dgamma = all.narrow(0, n * c, c)?;
        let dbeta = all.narrow(0, n * c + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Gradients of [`BatchNormTrain`]; arguments `(x, dy, [gamma; beta])`, output
/// `[dx, dgamma, dbeta]` flattened into one vector. With an activation, `dy` is first taken
/// back through it, from the sign of the recomputed pre-activation.
struct BatchNormGrad {
    eps: f32,
    activation_slope: Option<f32>,
}

impl candle_core::CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "ganem-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let dy = contiguous_f32(s2, l2, self.name())?;
        let (n, c) = l1.shape().dims2()?;
        let (gamma, beta) = contiguous_f32(s3, l3, self.name())?.split_at(c);
        let (mean, inv_std) = mean_and_inv_std(x, c, self.eps);
        let slope = self.activation_slope;
        // The gradient at the normalised output, through the activation.
        let dz = |j: usize, xhat: f32, g: f32| match slope {
            Some(a) if xhat * gamma[j] + beta[j] <= 0.0 => g * a,
            _ => g,
        };
        // dbeta = sum dz; dgamma = sum dz * xhat.
        let (sum_dz, sum_dz_xhat) = channel_sums(x, c, |row, j, v| {
            let xhat = (v - mean[j]) * inv_std[j];
            let g = dz(j, xhat, dy[row * c + j]) as f64;
            (g, g * xhat as f64)
        });
        // dx = gamma * inv_std * (dz - mean(dz) - xhat * mean(dz * xhat)).
        let nf = n as f64;
        let mean_dz: Vec<f32> = sum_dz.iter().map(|s| (s / nf) as f32).collect();
        let mean_dz_xhat: Vec<f32> = sum_dz_xhat.iter().map(|s| (s / nf) as f32).collect();
        let mut out = vec![0f32; n * c + 2 * c];
        let (dx, rest) = out.split_at_mut(n * c);
        dx.par_chunks_mut(c * ROWS_PER_TASK)
            .zip(x.par_chunks(c * ROWS_PER_TASK))
            .zip(dy.par_chunks(c * ROWS_PER_TASK))
            .for_each(|((dxc, xc), gc)| {
                for ((dr, xr), gr) in dxc
                    .chunks_exact_mut(c)
                    .zip(xc.chunks_exact(c))
                    .zip(gc.chunks_exact(c))
                {
                    for j in 0..c {
                        let xhat = (xr[j] - mean[j]) * inv_std[j];
                        let g = dz(j, xhat, gr[j]);
                        dr[j] = gamma[j] * inv_std[j] * (g - mean_dz[j] - xhat * mean_dz_xhat[j]);
                    }
                }
            });
        for j in 0..c {
            rest[j] = sum_dz_xhat[j] as f32;
            rest[c + j] = sum_dz[j] as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(n * c + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        // <im2col(x), y> == <x, col2im(y)> for random x and y.
        let g = PatchGeometry {
            batch: 2,
            height: 7,
            width: 7,
            channels: 3,
            kernel: 4,
            stride: 2,
            padding: 1,
        };
        let x = random(&[2, 7, 7, 3], 1);
        let cols = x.apply_op1_no_bwd(&Im2Col(g)).unwrap();
        let y = random(cols.dims(), 2);
        let back = y.apply_op1_no_bwd(&Col2Im(g)).unwrap();
        let lhs: f32 = (cols * &y).unwrap().sum_all().unwrap().to_scalar().unwrap();
        let rhs: f32 = (x * back).unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn leaky_relu_matches_candle_forward_and_backward() {
        let x = Var::from_tensor(&random(&[4, 33], 3)).unwrap();
        let ours = x.as_tensor().apply_op1(LeakyRelu(0.2)).unwrap();
        let reference = candle_nn::ops::leaky_relu(x.as_tensor(), 0.2).unwrap();
        assert!(max_rel_diff(&ours, &reference) < 1e-6);
        let w = random(&[4, 33], 4);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (g1, g2) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
        assert!(max_rel_diff(g1, g2) < 1e-6);
    }

    #[test]
    fn batch_norm_matches_candle_forward_and_backward() {
        // Plain, then fused with leaky ReLU (0.2) and ReLU.
        for slope in [None, Some(0.2f32), Some(0.0)] {
            let x = Var::from_tensor(&random(&[150, 6], 5).affine(3.0, 1.0).unwrap()).unwrap();
            let gamma = Var::from_tensor(&random(&[6], 6)).unwrap();
            let beta = Var::from_tensor(&random(&[6], 7)).unwrap();
            let eps = 1e-5;
            let op = BatchNormTrain {
                eps: eps as f32,
                activation_slope: slope,
            };
            let ours = x
                .as_tensor()
                .apply_op3(gamma.as_tensor(), beta.as_tensor(), op)
                .unwrap();
            let reference = {
                let x = x.as_tensor();
                let mean = x.mean_keepdim(0).unwrap();
                let centered = x.broadcast_sub(&mean).unwrap();
                let var = centered.sqr().unwrap().mean_keepdim(0).unwrap();
                let xhat = centered
                    .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
                    .unwrap();
                let z = xhat
                    .broadcast_mul(&gamma.as_tensor().unsqueeze(0).unwrap())
                    .unwrap()
                    .broadcast_add(&beta.as_tensor().unsqueeze(0).unwrap())
                    .unwrap();
                match slope {
                    Some(a) => candle_nn::ops::leaky_relu(&z, a as f64).unwrap(),
                    None => z,
                }
            };
            assert!(max_rel_diff(&ours, &reference) < 1e-4, "{slope:?}");
            let probe = random(&[150, 6], 8);
            let g1 = (ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (reference * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &gamma, &beta] {
                let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(d < 1e-4, "{slope:?}: gradient differs by {d}");
            }
        }
        let x = random(&[150, 6], 9).affine(3.0, 1.0).unwrap();
        let stats = x.apply_op1_no_bwd(&BatchStats).unwrap();
        let mean = x.mean_keepdim(0).unwrap();
        let var = x
            .broadcast_sub(&mean)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_keepdim(0)
            .unwrap();
        assert!(max_rel_diff(&stats.narrow(0, 0, 1).unwrap(), &mean) < 1e-5);
        assert!(max_rel_diff(&stats.narrow(0, 1, 1).unwrap(), &var) < 1e-5);
    }
}
