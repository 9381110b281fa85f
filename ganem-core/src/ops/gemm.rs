//! Matrix products on CPU slices, reading transposed operands in place, and the fully
//! connected layer's op.
//!
//! Products run through OpenBLAS when the system has it (loaded at run time, so nothing is
//! needed to build), and otherwise through the `gemm` crate, the one candle's CPU backend
//! uses. On this project's 2-core AMD machine OpenBLAS is 10-40 % faster on the networks'
//! small-batch shapes (64 x 2304 by 2304 x 1024, say); `GANEM_GEMM=gemm` forces the crate.

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, cpu_tensor, with_values};

/// A row-major `rows x cols` matrix view, or the transpose of one (`transposed`: the values
/// are stored as the `cols x rows` matrix).
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    values: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Matrix<'a> {
    pub(crate) fn new(values: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "matrix {rows}x{cols}");
        Self {
            values,
            rows,
            cols,
            transposed: false,
        }
    }

    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
            ..self
        }
    }

    /// (row stride, column stride).
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (1, self.rows as isize)
        } else {
            (self.cols as isize, 1)
        }
    }

    /// BLAS's leading dimension: the stored matrix's row length.
    fn leading_dim(&self) -> i32 {
        (if self.transposed {
            self.rows
        } else {
            self.cols
        }) as i32
    }

    /// Offset of logical element `(row, col)` in `values`.
    fn offset(&self, row: usize, col: usize) -> usize {
        let (rs, cs) = self.strides();
        row * rs as usize + col * cs as usize
    }
}

/// `cblas_sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
type Sgemm = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    f32,
    *const f32,
    i32,
    *const f32,
    i32,
    f32,
    *mut f32,
    i32,
);

struct OpenBlas {
    sgemm: Sgemm,
    /// The kernel OpenBLAS chose for this CPU (`openblas_get_corename`), e.g. `Zen` or
    /// `SkylakeX`.
    core: String,
    /// Keeps the library loaded for as long as `sgemm` may be called.
    _library: libloading::Library,
}

/// The system's OpenBLAS, set to one thread (the products are split over rayon's threads
/// instead, so that one thread pool serves every kernel), unless `GANEM_GEMM=gemm`.
fn openblas() -> Option<&'static OpenBlas> {
    static OPENBLAS: OnceLock<Option<OpenBlas>> = OnceLock::new();
    OPENBLAS
        .get_or_init(|| {
            if std::env::var("GANEM_GEMM").is_ok_and(|v| v == "gemm") {
                return None;
            }
            ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"]
                .into_iter()
                .find_map(|name| {
                    // SAFETY: loading OpenBLAS runs no initialiser with preconditions; the
                    // symbols are looked up with their C signatures.
                    unsafe {
                        let library = libloading::Library::new(name).ok()?;
                        let sgemm = *library.get::<Sgemm>(b"cblas_sgemm\0").ok()?;
                        let threads = library
                            .get::<unsafe extern "C" fn(i32)>(b"openblas_set_num_threads\0")
                            .ok()?;
                        threads(1);
                        let core = library
                            .get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(
                                b"openblas_get_corename\0",
                            )
                            .ok()
                            .map(|f| f())
                            .filter(|p| !p.is_null())
                            .map(|p| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
                            .unwrap_or_else(|| "unknown".into());
                        Some(OpenBlas {
                            sgemm,
                            core,
                            _library: library,
                        })
                    }
                })
        })
        .as_ref()
}

thread_local! {
    static CRATE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Makes the matrix products that this thread starts use the `gemm` crate even where
/// OpenBLAS is loaded, so that a benchmark can measure both in one run.
pub fn use_gemm_crate(on: bool) {
    CRATE_ONLY.with(|c| c.set(on));
}

/// OpenBLAS, if it serves the products this thread starts.
fn active_openblas() -> Option<&'static OpenBlas> {
    openblas().filter(|_| !CRATE_ONLY.with(Cell::get))
}

/// The library computing the matrix products this thread starts and its kernel:
/// `"openblas (Zen)"`, say, or `"gemm"` (the crate picks its kernel by CPU feature at run time).
pub fn gemm_library() -> String {
    match active_openblas() {
        Some(o) => format!("openblas ({})", o.core),
        None => "gemm".into(),
    }
}

/// The library computing the matrix products this thread starts: `"openblas"` or `"gemm"`.
pub fn gemm_backend() -> &'static str {
    if active_openblas().is_some() {
        "openblas"
    } else {
        "gemm"
    }
}

/// `dst = a * b`, or `dst += a * b` when `accumulate`; `dst` is row-major `a.rows x b.cols`.
pub(crate) fn matmul(dst: &mut [f32], a: Matrix, b: Matrix, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul {m}x{k} by {}x{n}", b.rows);
    assert_eq!(dst.len(), m * n, "matmul destination");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    match active_openblas() {
        Some(blas) => blas_matmul(blas, dst, a, b, accumulate),
        None => crate_matmul(dst, a, b, accumulate),
    }
}

/// The `gemm` crate, on rayon's threads.
fn crate_matmul(dst: &mut [f32], a: Matrix, b: Matrix, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let ((a_rs, a_cs), (b_rs, b_cs)) = (a.strides(), b.strides());
    // SAFETY: the asserts above and in `Matrix::new` keep every index in bounds; `dst` does
    // not alias the operands (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.values.as_ptr(),
            a_cs,
            a_rs,
            b.values.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// OpenBLAS on one thread per part, the larger of the output's two sides split evenly over
/// rayon's threads.
fn blas_matmul(blas: &OpenBlas, dst: &mut [f32], a: Matrix, b: Matrix, accumulate: bool) {
    const ROW_MAJOR: i32 = 101;
    let trans = |m: &Matrix| if m.transposed { 112 } else { 111 };
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let beta = if accumulate { 1.0 } else { 0.0 };
    let split_rows = m >= n;
    let side = if split_rows { m } else { n };
    // Parts of at least 16 rows or columns, a multiple of the kernels' tile size.
    let parts = rayon::current_num_threads().min(side / 16).max(1);
    let part_len = side.div_ceil(parts).next_multiple_of(16);
    let dst_addr = dst.as_mut_ptr() as usize;
    (0..side.div_ceil(part_len)).into_par_iter().for_each(|p| {
        let (lo, len) = (p * part_len, part_len.min(side - p * part_len));
        let (rows, cols, a_at, b_at, dst_at) = if split_rows {
            (len, n, a.offset(lo, 0), 0, lo * n)
        } else {
            (m, len, 0, b.offset(0, lo), lo)
        };
        // SAFETY: the parts write disjoint blocks of `dst` (rows or columns lo..lo + len),
        // every block lies inside the slices (checked by `matmul`'s asserts).
        unsafe {
            (blas.sgemm)(
                ROW_MAJOR,
                trans(&a),
                trans(&b),
                rows as i32,
                cols as i32,
                k as i32,
                1.0,
                a.values.as_ptr().add(a_at),
                a.leading_dim(),
                b.values.as_ptr().add(b_at),
                b.leading_dim(),
                beta,
                (dst_addr as *mut f32).add(dst_at),
                n as i32,
            )
        }
    });
}

/// `x (N, in) * w (in, out)`, the fully connected layer. Unlike candle's matmul, the backward
/// pass computes only the gradients that are tracked: none for the input images of a first
/// layer, none for weights held fixed.
#[derive(Debug, Clone, Copy)]
pub struct MatMulOp;

impl CustomOp2 for MatMulOp {
    fn name(&self) -> &'static str {
        "ganem-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, inputs) = l1.shape().dims2()?;
        let (w_in, outputs) = l2.shape().dims2()?;
        if inputs != w_in {
            candle_core::bail!("matmul: input has {inputs} features, weight expects {w_in}");
        }
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let mut y = vec![0f32; n * outputs];
        matmul(
            &mut y,
            Matrix::new(x, n, inputs),
            Matrix::new(w, inputs, outputs),
            false,
        );
        Ok((CpuStorage::F32(y), Shape::from((n, outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, inputs) = x.dims2()?;
        let outputs = w.dim(1)?;
        with_values(grad, self.name(), |dy| {
            let dy = Matrix::new(dy, n, outputs);
            let dx = x.track_op().then(|| {
                with_values(w, self.name(), |w| {
                    let mut dx = vec![0f32; n * inputs];
                    matmul(&mut dx, dy, Matrix::new(w, inputs, outputs).t(), false);
                    cpu_tensor(dx, (n, inputs))
                })
            });
            let dw = w.track_op().then(|| {
                with_values(x, self.name(), |x| {
                    let mut dw = vec![0f32; inputs * outputs];
                    matmul(&mut dw, Matrix::new(x, n, inputs).t(), dy, false);
                    cpu_tensor(dw, (inputs, outputs))
                })
            });
            Ok((dx.transpose()?, dw.transpose()?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gradients, max_rel_diff, random};
    use super::*;
    use candle_core::Var;

    type Product = dyn Fn(&mut [f32], Matrix, Matrix, bool);

    #[test]
    fn both_backends_handle_transposes_accumulation_and_splits() {
        let values = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        // Tall, wide (split by rows, by columns) and tiny products.
        for (m, k, n) in [(70, 9, 20), (20, 9, 70), (5, 3, 4)] {
            let a = random(&[m, k], 1);
            let b = random(&[k, n], 2);
            let expected = a.matmul(&b).unwrap();
            let (at, bt) = (values(&a.t().unwrap()), values(&b.t().unwrap()));
            let (av, bv) = (values(&a), values(&b));
            let with_openblas = |d: &mut [f32], a: Matrix, b: Matrix, acc: bool| match openblas() {
                Some(blas) => blas_matmul(blas, d, a, b, acc),
                None => crate_matmul(d, a, b, acc),
            };
            let backends: [(&str, &Product); 2] =
                [("gemm", &crate_matmul), ("openblas", &with_openblas)];
            for (name, product) in &backends {
                // Each operand as stored, or as its stored transpose read in place.
                for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                    let lhs = match a_t {
                        false => Matrix::new(&av, m, k),
                        true => Matrix::new(&at, k, m).t(),
                    };
                    let rhs = match b_t {
                        false => Matrix::new(&bv, k, n),
                        true => Matrix::new(&bt, n, k).t(),
                    };
                    let mut dst = vec![1f32; m * n];
                    product(&mut dst, lhs, rhs, true);
                    let got = (cpu_tensor(dst, (m, n)).unwrap() - 1.0).unwrap();
                    let d = max_rel_diff(&got, &expected);
                    assert!(d < 1e-5, "{name} {m}x{k}x{n} {a_t} {b_t}: {d}");
                }
            }
        }
    }

    #[test]
    fn matmul_op_matches_candle_and_skips_untracked_gradients() {
        let x = Var::from_tensor(&random(&[7, 5], 3)).unwrap();
        let w = Var::from_tensor(&random(&[5, 6], 4)).unwrap();
        let ours = x.as_tensor().apply_op2(w.as_tensor(), MatMulOp).unwrap();
        let reference = x.as_tensor().matmul(w.as_tensor()).unwrap();
        assert!(max_rel_diff(&ours, &reference) < 1e-6);
        let probe = random(&[7, 6], 5);
        let g1 = gradients(&ours, &probe, &[&x, &w]);
        let g2 = gradients(&reference, &probe, &[&x, &w]);
        for (a, b) in g1.iter().zip(&g2) {
            assert!(max_rel_diff(a.as_ref().unwrap(), b.as_ref().unwrap()) < 1e-6);
        }
        // Weights held fixed: only the input's gradient is computed.
        let fixed = x
            .as_tensor()
            .apply_op2(&w.as_detached_tensor(), MatMulOp)
            .unwrap();
        let g = gradients(&fixed, &probe, &[&x, &w]);
        assert!(g[0].is_some() && g[1].is_none());
    }
}
