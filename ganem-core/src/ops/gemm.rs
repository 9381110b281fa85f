//! Matrix products on CPU slices, reading transposed operands in place, and the fully
//! connected layer's op.
//!
//! Two libraries can compute the products: the system's OpenBLAS (loaded at run time, so
//! nothing is needed to build) and the `gemm` crate, the one candle's CPU backend uses, built
//! with its AVX-512 kernels. Which one serves a process is decided once, by `Products::pick`:
//! OpenBLAS where its kernel uses the widest vector ISA the CPU has (on an AVX2 host it is
//! 10-40 % faster than the crate on the networks' batch-64 shapes), the crate where the CPU
//! has AVX-512 and OpenBLAS runs narrower kernels (hosts whose environment pins
//! `OPENBLAS_CORETYPE=Haswell`, or an OpenBLAS older than the CPU; there the crate is 1.4-1.8x
//! faster). `GANEM_GEMM=openblas|gemm` overrides the choice.

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
            if requested_products() == Some(Products::GemmCrate) {
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

/// The library that computes the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    /// The system's OpenBLAS, with the kernel it chose for this CPU.
    OpenBlas,
    /// The `gemm` crate, whose kernels follow the CPU's features at run time (AVX-512 too).
    GemmCrate,
}

impl Products {
    /// The library for a CPU with (or without) AVX-512 given OpenBLAS's kernel name (`None`
    /// when OpenBLAS is absent): OpenBLAS unless it would leave the CPU's widest vectors
    /// unused.
    pub fn pick(cpu_has_avx512: bool, openblas_core: Option<&str>) -> Products {
        match openblas_core {
            None => Products::GemmCrate,
            Some(core) if cpu_has_avx512 && !is_avx512_core(core) => Products::GemmCrate,
            Some(_) => Products::OpenBlas,
        }
    }
}

/// OpenBLAS's kernels that use AVX-512 (its names for Skylake-X and later Intel cores; it
/// runs Zen 4 and 5 on these too).
fn is_avx512_core(core: &str) -> bool {
    ["skylakex", "cooperlake", "sapphirerapids"]
        .iter()
        .any(|name| core.eq_ignore_ascii_case(name))
}

/// `GANEM_GEMM` as set: `openblas`, `gemm`, or nothing (an unknown value is reported once
/// and ignored).
fn requested_products() -> Option<Products> {
    static REQUESTED: OnceLock<Option<Products>> = OnceLock::new();
    *REQUESTED.get_or_init(|| match std::env::var("GANEM_GEMM").as_deref() {
        Ok("openblas") => Some(Products::OpenBlas),
        Ok("gemm") => Some(Products::GemmCrate),
        Ok(other) => {
            eprintln!("GANEM_GEMM={other} is neither `openblas` nor `gemm`; ignored");
            None
        }
        Err(_) => None,
    })
}

fn cpu_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The library serving this process's products unless a thread overrides it: `GANEM_GEMM`
/// where set (OpenBLAS only where it loads), `Products::pick` otherwise.
fn default_products() -> Products {
    static DEFAULT: OnceLock<Products> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let core = openblas().map(|o| o.core.as_str());
        match (requested_products(), core) {
            (Some(Products::OpenBlas), Some(_)) => Products::OpenBlas,
            (Some(_), _) => Products::GemmCrate,
            (None, core) => Products::pick(cpu_has_avx512(), core),
        }
    })
}

thread_local! {
    static THREAD_PRODUCTS: Cell<Option<Products>> = const { Cell::new(None) };
}

/// Makes the matrix products that this thread starts use `library` (`None`: the process's
/// default), so that a benchmark can measure both in one run. OpenBLAS falls back to the
/// crate where it is not loaded.
pub fn use_products(library: Option<Products>) {
    THREAD_PRODUCTS.with(|c| c.set(library));
}

/// OpenBLAS, if it serves the products this thread starts.
fn active_openblas() -> Option<&'static OpenBlas> {
    match THREAD_PRODUCTS
        .with(Cell::get)
        .unwrap_or_else(default_products)
    {
        Products::OpenBlas => openblas(),
        Products::GemmCrate => None,
    }
}

/// Whether OpenBLAS could serve the products (it is installed and not switched off).
pub fn openblas_available() -> bool {
    openblas().is_some()
}

/// The library computing the matrix products this thread starts and its kernel:
/// `"openblas (Zen)"`, say, or `"gemm (AVX-512)"` (the crate picks its kernel by CPU feature
/// at run time).
pub fn gemm_library() -> String {
    match active_openblas() {
        Some(o) => format!("openblas ({})", o.core),
        None if cpu_has_avx512() => "gemm (AVX-512)".into(),
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
    fn products_use_the_widest_kernels_the_cpu_has() {
        use Products::*;
        // AVX-512 CPU: OpenBLAS only with an AVX-512 kernel.
        assert_eq!(Products::pick(true, Some("Haswell")), GemmCrate);
        assert_eq!(Products::pick(true, Some("Zen")), GemmCrate);
        assert_eq!(Products::pick(true, Some("SkylakeX")), OpenBlas);
        assert_eq!(Products::pick(true, Some("COOPERLAKE")), OpenBlas);
        // AVX2 CPU: OpenBLAS whatever its kernel; no OpenBLAS: the crate.
        assert_eq!(Products::pick(false, Some("Haswell")), OpenBlas);
        assert_eq!(Products::pick(false, Some("Zen")), OpenBlas);
        assert_eq!(Products::pick(false, None), GemmCrate);
        assert_eq!(Products::pick(true, None), GemmCrate);
    }

    #[test]
    fn a_thread_can_override_the_library() {
        use_products(Some(Products::GemmCrate));
        assert_eq!(gemm_backend(), "gemm");
        assert!(gemm_library().starts_with("gemm"));
        use_products(Some(Products::OpenBlas));
        let expected = if openblas_available() {
            "openblas"
        } else {
            "gemm"
        };
        assert_eq!(gemm_backend(), expected);
        use_products(None);
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
