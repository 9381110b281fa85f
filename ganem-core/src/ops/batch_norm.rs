//! Batch normalisation fused with the (leaky) ReLU that follows it, as one op.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, cpu_tensor, with_values};

/// Per-channel mean and biased variance.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStatistics {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// What a forward pass normalised with, kept for its backward pass.
#[derive(Debug)]
struct Normalisation {
    stats: BatchStatistics,
    inv_std: Vec<f32>,
}

/// Batch normalisation over the last dimension of `x`, then a leaky ReLU (slope 0: ReLU) if
/// one is given; arguments `(x, gamma, beta)`. With batch statistics (training, PyTorch's
/// train mode) the statistics of the batch are computed once in the forward pass and reused
/// by the backward pass and by [`BatchNormOp::statistics`] for the running averages; with
/// fixed statistics (PyTorch's eval mode) they are given.
#[derive(Debug, Clone)]
pub struct BatchNormOp {
    eps: f32,
    activation_slope: Option<f32>,
    fixed: Option<BatchStatistics>,
    used: Arc<Mutex<Option<Normalisation>>>,
}

impl BatchNormOp {
    /// Normalises with the statistics of the batch.
    pub fn batch(eps: f32, activation_slope: Option<f32>) -> Self {
        Self {
            eps,
            activation_slope,
            fixed: None,
            used: Arc::default(),
        }
    }

    /// Normalises with the given statistics (e.g. running averages).
    pub fn fixed(eps: f32, activation_slope: Option<f32>, stats: BatchStatistics) -> Self {
        Self {
            fixed: Some(stats),
            ..Self::batch(eps, activation_slope)
        }
    }

    /// The statistics the last forward pass of this op (or a clone of it) normalised with.
    pub fn statistics(&self) -> Option<BatchStatistics> {
        let used = self.used.lock().expect("batch-norm statistics poisoned");
        used.as_ref().map(|n| n.stats.clone())
    }

    fn slope(&self) -> f32 {
        // No activation is a leaky ReLU of slope 1.
        self.activation_slope.unwrap_or(1.0)
    }
}

/// Rows per parallel task: about four tasks per thread, whatever the batch size.
fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(4 * rayon::current_num_threads()).max(1)
}

/// Per-channel sums over the rows of an `(N, C)` matrix: `add_row(row, acc)` adds one row's
/// terms into `acc` (`terms * C` accumulators). Blocks of rows run in parallel; their partial
/// sums are added in block order, so the result does not depend on scheduling.
fn channel_sums(
    rows: usize,
    channels: usize,
    terms: usize,
    add_row: impl Fn(usize, &mut [f64]) + Sync,
) -> Vec<f64> {
    let block = rows_per_task(rows);
    let partials: Vec<Vec<f64>> = (0..rows.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0f64; terms * channels];
            for r in b * block..((b + 1) * block).min(rows) {
                add_row(r, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; terms * channels];
    for p in partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

/// Writes `out` row by row, `row(r, out_row)`, blocks of rows in parallel.
fn map_rows(out: &mut [f32], channels: usize, row: impl Fn(usize, &mut [f32]) + Sync) {
    let block = rows_per_task(out.len() / channels.max(1));
    out.par_chunks_mut(block * channels)
        .enumerate()
        .for_each(|(b, chunk)| {
            for (i, out_row) in chunk.chunks_exact_mut(channels).enumerate() {
                row(b * block + i, out_row);
            }
        });
}

/// Mean and biased variance per channel of rows `(N, C)`, two passes in f64 (the second over
/// centred values, so large means cost no precision).
fn batch_statistics(x: &[f32], channels: usize) -> BatchStatistics {
    let n = x.len() / channels;
    let row = |r: usize| &x[r * channels..(r + 1) * channels];
    let sums = channel_sums(n, channels, 1, |r, acc| {
        for (a, &v) in acc.iter_mut().zip(row(r)) {
            *a += v as f64;
        }
    });
    let mean: Vec<f32> = sums.iter().map(|s| (s / n.max(1) as f64) as f32).collect();
    let squares = channel_sums(n, channels, 1, |r, acc| {
        for ((a, &v), &m) in acc.iter_mut().zip(row(r)).zip(&mean) {
            let d = v - m;
            *a += (d * d) as f64;
        }
    });
    let var = squares
        .iter()
        .map(|s| (s / n.max(1) as f64) as f32)
        .collect();
    BatchStatistics { mean, var }
}

impl CustomOp3 for BatchNormOp {
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
        let c = gamma.len();
        if c == 0 || beta.len() != c || l1.shape().dims().last() != Some(&c) {
            candle_core::bail!(
                "batch norm: input {:?}, {} scales, {} shifts",
                l1.shape(),
                c,
                beta.len()
            );
        }
        let stats = match &self.fixed {
            Some(s) if s.mean.len() == c && s.var.len() == c => s.clone(),
            Some(_) => candle_core::bail!("batch norm: fixed statistics are not {c} channels"),
            None => batch_statistics(x, c),
        };
        let inv_std: Vec<f32> = stats
            .var
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect();
        let scale: Vec<f32> = inv_std.iter().zip(gamma).map(|(i, g)| g * i).collect();
        let shift: Vec<f32> = (0..c).map(|j| beta[j] - stats.mean[j] * scale[j]).collect();
        let slope = self.slope();
        let mut y = vec![0f32; x.len()];
        map_rows(&mut y, c, |r, out| {
            normalise_row(out, &x[r * c..(r + 1) * c], &scale, &shift, slope)
        });
        *self.used.lock().expect("batch-norm statistics poisoned") =
            Some(Normalisation { stats, inv_std });
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
        let used = self.used.lock().expect("batch-norm statistics poisoned");
        let Some(Normalisation { stats, inv_std }) = used.as_ref() else {
            candle_core::bail!("batch norm: backward pass before a forward pass");
        };
        let mean = &stats.mean;
        let c = mean.len();
        let gamma_v: Vec<f32> = gamma.to_vec1()?;
        let beta_v: Vec<f32> = beta.to_vec1()?;
        let scale: Vec<f32> = (0..c).map(|j| gamma_v[j] * inv_std[j]).collect();
        let shift: Vec<f32> = (0..c).map(|j| beta_v[j] - mean[j] * scale[j]).collect();
        let slope = self.slope();
        let (need_dx, need_dgamma, need_dbeta) = (x.track_op(), gamma.track_op(), beta.track_op());
        let shape = x.shape().clone();
        let coefficients = RowCoefficients {
            scale: &scale,
            shift: &shift,
            inv_std,
            centre: &(0..c).map(|j| -mean[j] * inv_std[j]).collect::<Vec<_>>(),
            slope,
        };
        let batch_mode = self.fixed.is_none();
        with_values(x, self.name(), |x| {
            with_values(grad, self.name(), |dy| {
                let n = x.len() / c;
                let rows = |r: usize| (&x[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c]);
                // dbeta = sum dz; dgamma = sum dz * xhat.
                let sums = channel_sums(n, c, 2, |r, acc| {
                    let (sum_dz, sum_dz_xhat) = acc.split_at_mut(c);
                    let (xr, gr) = rows(r);
                    coefficients.grad_sums_row(sum_dz, sum_dz_xhat, xr, gr);
                });
                let (sum_dz, sum_dz_xhat) = sums.split_at(c);
                let dx = if need_dx {
                    // Batch statistics: dx = gamma * inv_std * (dz - mean(dz) - xhat *
                    // mean(dz * xhat)); fixed statistics are constants: dx = gamma * inv_std * dz.
                    let (mean_dz, mean_dz_xhat): (Vec<f32>, Vec<f32>) = if batch_mode {
                        let nf = n.max(1) as f64;
                        (0..c)
                            .map(|j| ((sum_dz[j] / nf) as f32, (sum_dz_xhat[j] / nf) as f32))
                            .unzip()
                    } else {
                        (vec![0.0; c], vec![0.0; c])
                    };
                    let mut dx = vec![0f32; x.len()];
                    map_rows(&mut dx, c, |r, out| {
                        let (xr, gr) = rows(r);
                        coefficients.grad_row(out, xr, gr, &mean_dz, &mean_dz_xhat);
                    });
                    Some(cpu_tensor(dx, shape.clone())?)
                } else {
                    None
                };
                let to_tensor = |sums: &[f64]| {
                    cpu_tensor(sums.iter().map(|&s| s as f32).collect::<Vec<_>>(), c)
                };
                let dgamma = need_dgamma.then(|| to_tensor(sum_dz_xhat)).transpose()?;
                let dbeta = need_dbeta.then(|| to_tensor(sum_dz)).transpose()?;
                Ok((dx, dgamma, dbeta))
            })
        })
    }
}

/// Of one element: the gradient before the activation (from the sign of the recomputed
/// pre-activation) and the normalised value; `channel` is (scale, shift, inv_std, centre).
#[inline(always)]
fn dz_and_xhat(x: f32, dy: f32, channel: (f32, f32, f32, f32), slope: f32) -> (f32, f32) {
    let (scale, shift, inv_std, centre) = channel;
    let dz = if x * scale + shift > 0.0 {
        dy
    } else {
        dy * slope
    };
    (dz, x * inv_std + centre)
}

// The row kernels below are plain functions over equal-length slices, with every scalar
// passed by value, so that the compiler drops the bounds checks and vectorises them.

/// One row of the forward pass: `out = act(x * scale + shift)`, `act` a leaky ReLU.
fn normalise_row(out: &mut [f32], x: &[f32], scale: &[f32], shift: &[f32], slope: f32) {
    let c = out.len();
    let (x, scale, shift) = (&x[..c], &scale[..c], &shift[..c]);
    for j in 0..c {
        let z = x[j] * scale[j] + shift[j];
        out[j] = if z > 0.0 { z } else { z * slope };
    }
}

/// Per-channel coefficients of one normalisation, for the backward pass: `x * scale + shift`
/// is the pre-activation, `x * inv_std + centre` the normalised value.
struct RowCoefficients<'a> {
    scale: &'a [f32],
    shift: &'a [f32],
    inv_std: &'a [f32],
    centre: &'a [f32],
    slope: f32,
}

impl RowCoefficients<'_> {
    /// Adds one row's `dz` (the gradient before the activation) and `dz * xhat` to the sums.
    fn grad_sums_row(&self, sum_dz: &mut [f64], sum_dz_xhat: &mut [f64], x: &[f32], dy: &[f32]) {
        let c = sum_dz.len();
        let (sum_dz_xhat, x, dy) = (&mut sum_dz_xhat[..c], &x[..c], &dy[..c]);
        let (scale, shift) = (&self.scale[..c], &self.shift[..c]);
        let (inv_std, centre, slope) = (&self.inv_std[..c], &self.centre[..c], self.slope);
        for j in 0..c {
            let channel = (scale[j], shift[j], inv_std[j], centre[j]);
            let (dz, xhat) = dz_and_xhat(x[j], dy[j], channel, slope);
            sum_dz[j] += dz as f64;
            sum_dz_xhat[j] += (dz * xhat) as f64;
        }
    }

    /// One row of `dx = scale * (dz - mean_dz - xhat * mean_dz_xhat)`.
    fn grad_row(
        &self,
        out: &mut [f32],
        x: &[f32],
        dy: &[f32],
        mean_dz: &[f32],
        mean_dz_xhat: &[f32],
    ) {
        let c = out.len();
        let (x, dy, mean_dz, mean_dz_xhat) = (&x[..c], &dy[..c], &mean_dz[..c], &mean_dz_xhat[..c]);
        let (scale, shift) = (&self.scale[..c], &self.shift[..c]);
        let (inv_std, centre, slope) = (&self.inv_std[..c], &self.centre[..c], self.slope);
        for j in 0..c {
            let channel = (scale[j], shift[j], inv_std[j], centre[j]);
            let (dz, xhat) = dz_and_xhat(x[j], dy[j], channel, slope);
            out[j] = scale[j] * (dz - mean_dz[j] - xhat * mean_dz_xhat[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gradients, max_rel_diff, random};
    use super::*;
    use candle_core::Var;

    /// candle's ops: normalise with `stats` (batch statistics when `None`), then activate.
    fn reference(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        stats: Option<&BatchStatistics>,
        slope: Option<f32>,
        eps: f64,
    ) -> Tensor {
        let c = gamma.dim(0).unwrap();
        let (mean, var) = match stats {
            None => {
                let mean = x.mean_keepdim(0).unwrap();
                let var = x.broadcast_sub(&mean).unwrap().sqr().unwrap();
                (mean, var.mean_keepdim(0).unwrap())
            }
            Some(s) => (
                Tensor::from_slice(&s.mean, (1, c), x.device()).unwrap(),
                Tensor::from_slice(&s.var, (1, c), x.device()).unwrap(),
            ),
        };
        let xhat = x
            .broadcast_sub(&mean)
            .unwrap()
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap();
        let z = xhat
            .broadcast_mul(&gamma.unsqueeze(0).unwrap())
            .unwrap()
            .broadcast_add(&beta.unsqueeze(0).unwrap())
            .unwrap();
        match slope {
            Some(a) => candle_nn::ops::leaky_relu(&z, a as f64).unwrap(),
            None => z,
        }
    }

    #[test]
    fn batch_norm_matches_candle_forward_and_backward() {
        let eps = 1e-5;
        let fixed = BatchStatistics {
            mean: vec![0.5, -1.0, 0.0, 2.0, 1.0, 0.3],
            var: vec![1.0, 4.0, 0.5, 9.0, 2.0, 0.1],
        };
        // Batch and fixed statistics; plain, then fused with leaky ReLU (0.2) and ReLU.
        for stats in [None, Some(&fixed)] {
            for slope in [None, Some(0.2f32), Some(0.0)] {
                let x = Var::from_tensor(&random(&[150, 6], 5).affine(3.0, 1.0).unwrap()).unwrap();
                let gamma = Var::from_tensor(&random(&[6], 6)).unwrap();
                let beta = Var::from_tensor(&random(&[6], 7)).unwrap();
                let op = match stats {
                    None => BatchNormOp::batch(eps as f32, slope),
                    Some(s) => BatchNormOp::fixed(eps as f32, slope, s.clone()),
                };
                let (g, b) = (gamma.as_tensor(), beta.as_tensor());
                let ours = x.as_tensor().apply_op3(g, b, op.clone()).unwrap();
                let expected = reference(x.as_tensor(), g, b, stats, slope, eps);
                let what = format!("{stats:?} {slope:?}");
                assert!(max_rel_diff(&ours, &expected) < 1e-4, "{what}");
                let probe = random(&[150, 6], 8);
                let g1 = gradients(&ours, &probe, &[&x, &gamma, &beta]);
                let g2 = gradients(&expected, &probe, &[&x, &gamma, &beta]);
                for (a, b) in g1.iter().zip(&g2) {
                    let d = max_rel_diff(a.as_ref().unwrap(), b.as_ref().unwrap());
                    assert!(d < 1e-4, "{what}: gradient differs by {d}");
                }
                let used = op.statistics().unwrap();
                match stats {
                    Some(s) => assert_eq!(&used, s),
                    None => {
                        let x = x.as_tensor();
                        let mean = x.mean_keepdim(0).unwrap();
                        let var = x.broadcast_sub(&mean).unwrap().sqr().unwrap();
                        let var = var.mean_keepdim(0).unwrap();
                        let as_t = |v: &[f32]| Tensor::from_slice(v, (1, 6), x.device()).unwrap();
                        assert!(max_rel_diff(&as_t(&used.mean), &mean) < 1e-5);
                        assert!(max_rel_diff(&as_t(&used.var), &var) < 1e-5);
                    }
                }
            }
        }
    }

    #[test]
    fn untracked_arguments_get_no_gradient() {
        let x = Var::from_tensor(&random(&[20, 3], 9)).unwrap();
        let (gamma, beta) = (random(&[3], 10), random(&[3], 11));
        let y = x
            .as_tensor()
            .apply_op3(&gamma, &beta, BatchNormOp::batch(1e-5, Some(0.2)))
            .unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(grads.get(&gamma).is_none() && grads.get(&beta).is_none());
    }
}
