//! The host's raw speed, measured: how fast one core runs a chain of dependent integer adds
//! (its effective clock, with whatever share of the core a virtual machine gets) and
//! independent fp32 multiply-adds at 256 and 512 bits (its peak arithmetic rate). Training
//! times from two hosts differ by these before any code of ours enters; `bench-step --host`
//! puts them in a table so that a slow host can be told from slow code.

use std::hint::black_box;
use std::time::Instant;

use serde::Serialize;

/// One host's raw rates, one thread unless `threads` says otherwise.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HostSpeed {
    pub cpu_model: String,
    /// `family F model M` from /proc/cpuinfo: AMD's Zen 4 is family 25, Zen 5 family 26, and
    /// both report the same model name in these virtual machines.
    pub cpu_family_model: String,
    pub vector_isa: String,
    /// Dependent 64-bit adds per nanosecond on one thread (1 per cycle on every x86 core since
    /// the Pentium Pro, so the clock the thread really gets).
    pub effective_clock_ghz: Option<f64>,
    /// fp32 multiply-adds of 256-bit vectors (AVX2 + FMA), GFLOP/s on one thread.
    pub fma256_gflops: Option<f64>,
    /// fp32 multiply-adds of 512-bit vectors (AVX-512F), GFLOP/s on one thread; about twice
    /// the 256-bit rate where the core has full-width units (Zen 5), about the same where it
    /// splits them in two (Zen 4).
    pub fma512_gflops: Option<f64>,
    /// The 256- or 512-bit rate (the faster) on every thread of the pool at once.
    pub all_threads_gflops: Option<f64>,
    pub threads: usize,
}

impl HostSpeed {
    /// Measures this host (about two seconds).
    pub fn measure() -> Self {
        let provenance = crate::provenance::Provenance::of_this_process();
        let fma256 = fma_rate(256);
        let fma512 = fma_rate(512);
        let widest = if fma512.unwrap_or(0.0) >= fma256.unwrap_or(0.0) {
            512
        } else {
            256
        };
        let threads = rayon::current_num_threads();
        let all_threads = fma_loop(widest).map(|one_loop| {
            use rayon::prelude::*;
            let work = (fma_flops(widest) * threads) as f64;
            best_rate(Clock::Wall, work, || {
                (0..threads).into_par_iter().for_each(|_| one_loop());
            }) / 1e9
        });
        Self {
            cpu_model: provenance.cpu_model,
            cpu_family_model: cpu_family_model(),
            vector_isa: provenance.vector_isa,
            effective_clock_ghz: effective_clock_ghz(),
            fma256_gflops: fma256,
            fma512_gflops: fma512,
            all_threads_gflops: all_threads,
            threads,
        }
    }
}

fn cpu_family_model() -> String {
    let field = |name| crate::provenance::cpuinfo_field(name).unwrap_or_else(|| "?".into());
    format!("family {} model {}", field("cpu family"), field("model"))
}

/// What a rate is measured against.
#[derive(Clone, Copy)]
enum Clock {
    /// This thread's own CPU time, so that other processes of the machine do not lower it.
    Thread,
    /// Wall time, for several threads at once (whether they really run side by side).
    Wall,
}

fn thread_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `time` is a valid timespec for the call to fill.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) } == 0 {
            return Some(time.tv_sec as f64 + time.tv_nsec as f64 * 1e-9);
        }
    }
    None
}

/// `work` operations per second of `f`, the best of three runs.
fn best_rate(clock: Clock, work: f64, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let wall = Instant::now();
        let cpu = thread_cpu_seconds();
        f();
        let seconds = match (clock, cpu, thread_cpu_seconds()) {
            (Clock::Thread, Some(start), Some(end)) => end - start,
            _ => wall.elapsed().as_secs_f64(),
        };
        best = best.min(seconds);
    }
    work / best
}

/// Cycles per second of one thread, from a chain of dependent 64-bit multiplies: `imul`'s
/// latency is 3 cycles on every x86 core since Sandy Bridge and Zen, while a chain of
/// `add reg, imm` runs faster than one per cycle where the renamer folds immediates (Intel
/// from Golden Cove on: 6.4 "GHz" on a 2.5 GHz Xeon).
fn effective_clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        const LOOPS: u64 = 10_000_000;
        const MULTIPLY_LATENCY_CYCLES: f64 = 3.0;
        let multiplies_per_second = best_rate(Clock::Thread, (LOOPS * 8) as f64, || {
            let mut x = black_box(3u64);
            let one = black_box(1u64);
            for _ in 0..LOOPS {
                // SAFETY: register-only arithmetic on `x`.
                unsafe {
                    std::arch::asm!(
                        "imul {x}, {one}", "imul {x}, {one}", "imul {x}, {one}", "imul {x}, {one}",
                        "imul {x}, {one}", "imul {x}, {one}", "imul {x}, {one}", "imul {x}, {one}",
                        x = inout(reg) x,
                        one = in(reg) one,
                        options(nomem, nostack, pure),
                    );
                }
            }
            black_box(x);
        });
        Some(multiplies_per_second * MULTIPLY_LATENCY_CYCLES / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Independent accumulators: enough to hide a 4-cycle FMA latency on two pipes, and some.
const ACCUMULATORS: usize = 12;
const FMA_LOOPS: usize = 20_000_000;

fn fma_flops(bits: usize) -> usize {
    FMA_LOOPS * ACCUMULATORS * (bits / 32) * 2
}

/// The FMA loop at `bits` (256 or 512), `None` where the CPU lacks the instructions.
fn fma_loop(bits: usize) -> Option<fn()> {
    #[cfg(target_arch = "x86_64")]
    {
        if bits == 256
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features were detected above.
            return Some(|| unsafe { fma256_loop() });
        }
        if bits == 512 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected above.
            return Some(|| unsafe { fma512_loop() });
        }
    }
    let _ = bits;
    None
}

/// GFLOP/s of fp32 FMAs at `bits` on this thread's own CPU time.
fn fma_rate(bits: usize) -> Option<f64> {
    fma_loop(bits).map(|one_loop| best_rate(Clock::Thread, fma_flops(bits) as f64, one_loop) / 1e9)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma256_loop() {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
    let scale = _mm256_set1_ps(black_box(0.999_999));
    let shift = _mm256_set1_ps(black_box(1e-7));
    for _ in 0..FMA_LOOPS {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, scale, shift);
        }
    }
    black_box(acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma512_loop() {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
    let scale = _mm512_set1_ps(black_box(0.999_999));
    let shift = _mm512_set1_ps(black_box(1e-7));
    for _ in 0..FMA_LOOPS {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, scale, shift);
        }
    }
    black_box(acc);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe measures something plausible on the thread's own CPU time, busy machine or
    /// not: a clock between 0.3 and 7 GHz, and FMA rates no higher than 2 pipes x 16 lanes x 2
    /// FLOPs per cycle of that clock allow (with slack for turbo between the measurements).
    #[test]
    fn the_host_probe_reports_plausible_rates() {
        let speed = HostSpeed::measure();
        if let Some(ghz) = speed.effective_clock_ghz {
            assert!((0.3..7.0).contains(&ghz), "clock {ghz} GHz");
            for rate in [speed.fma256_gflops, speed.fma512_gflops]
                .into_iter()
                .flatten()
            {
                assert!(
                    rate > 0.1 && rate < ghz * 64.0 * 1.5,
                    "{rate} GFLOP/s at {ghz} GHz"
                );
            }
        }
        assert!(speed.cpu_family_model.starts_with("family "));
    }
}
