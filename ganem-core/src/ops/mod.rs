//! CPU kernels behind the layers, as candle custom ops with their own backward passes.
//!
//! Each layer is one graph node: a convolution is `im2col` plus one matrix product inside a
//! single op, BatchNorm and its activation are one op, a fully connected layer is one op.
//! candle's backward pass allocates a zeroed gradient and adds into it for every node, and its
//! matrix product always computes both operands' gradients; fewer, larger nodes that skip
//! the gradients nobody asked for (an input that is not tracked, weights held fixed) are
//! where most of the speed-up over candle's own ops comes from. The ops run on the CPU only;
//! `nets::layers` falls back to candle's own ops on other devices.

mod activation;
mod batch_norm;
mod conv;
mod gemm;

use std::cell::{Cell, RefCell};

use candle_core::{CpuStorage, Device, Layout, Result, Storage, Tensor};

pub use activation::LeakyRelu;
pub use batch_norm::{BatchNormOp, BatchStatistics};
pub use conv::{Conv2dOp, ConvTranspose2dOp, PatchGeometry};
pub use gemm::{gemm_backend, gemm_library, openblas_available, use_products, MatMulOp, Products};

thread_local! {
    static REFERENCE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Makes the layers and optimisers that this thread runs use candle's own ops instead of this
/// module's kernels, so that a benchmark can measure both in one run and a test can compare
/// them (per thread, so tests running beside it are unaffected).
pub fn use_reference_ops(on: bool) {
    REFERENCE_ONLY.with(|r| r.set(on));
}

/// Whether this module's kernels serve tensors on `device`: CPU only, unless switched off.
pub fn custom_kernels(device: &Device) -> bool {
    device.is_cpu() && !REFERENCE_ONLY.with(Cell::get)
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

/// Calls `f` with the values of a CPU f32 tensor (made contiguous first if need be).
fn with_values<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(contiguous_f32(cpu, layout, op)?),
        _ => candle_core::bail!("{op}: CPU tensors only"),
    }
}

/// A new CPU tensor that owns `values`.
fn cpu_tensor(values: Vec<f32>, shape: impl Into<candle_core::Shape>) -> Result<Tensor> {
    Tensor::from_vec(values, shape, &Device::Cpu)
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` values that is reused across calls on this thread, so that
/// the large `im2col` matrices do not cost an allocation and fresh pages on every step. The
/// contents on entry are unspecified. A nested call gets a fresh buffer.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Test helpers shared by the kernels' and the layers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Device, Tensor};

    pub fn random(shape: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Largest absolute difference relative to the largest magnitude in `b`.
    pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    /// Gradients of `sum(out * probe)` with respect to `vars`.
    pub fn gradients(
        out: &Tensor,
        probe: &Tensor,
        vars: &[&candle_core::Var],
    ) -> Vec<Option<Tensor>> {
        let grads = (out * probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        vars.iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect()
    }
}
