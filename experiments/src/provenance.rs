//! What produced a result: the build, the host and the matrix-product library.

use serde::Serialize;

/// Recorded beside every run's results.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Provenance {
    /// The workspace version and, when built from a git checkout, the commit.
    pub version: String,
    /// `release` or `debug`.
    pub build_profile: String,
    pub cpu_model: String,
    /// The widest x86 vector ISA this CPU offers: `AVX-512`, `AVX2` or `other`.
    pub vector_isa: String,
    /// `openblas (its kernel)` or `gemm`.
    pub product_library: String,
    /// Threads of the compute pool.
    pub threads: usize,
}

impl Provenance {
    pub fn of_this_process() -> Self {
        let commit = option_env!("GANEM_GIT_COMMIT").unwrap_or("unknown");
        Self {
            version: format!("{} ({commit})", env!("CARGO_PKG_VERSION")),
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            cpu_model: cpu_model(),
            vector_isa: vector_isa().into(),
            product_library: ganem_core::ops::gemm_library(),
            threads: rayon::current_num_threads(),
        }
    }
}

fn cpu_model() -> String {
    cpuinfo_field("model name").unwrap_or_else(|| "unknown".into())
}

/// The first value of `name` in /proc/cpuinfo (e.g. `model name`, `cpu family`).
pub fn cpuinfo_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.split(':').next().map(str::trim) == Some(name))
        .and_then(|l| l.split(':').nth(1))
        .map(|v| v.trim().to_string())
}

fn vector_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
    }
    "other"
}

/// EM iterations `first_iteration..=last_iteration` of a resumed run, produced by an earlier
/// process than the one that finished it (another build, library or thread count).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Stretch {
    pub first_iteration: usize,
    pub last_iteration: usize,
    pub provenance: Provenance,
}

/// What produced iterations 1..=`resumed_at` of a run resumed there, oldest first, from its
/// earlier record (`earlier` stretches, then `provenance` up to `recorded_iterations`), with
/// the stretches that `current` also describes at the end dropped: a run resumed by the same
/// kind of process lists none.
pub fn stretches_before(
    earlier: &[Stretch],
    provenance: &Provenance,
    recorded_iterations: usize,
    resumed_at: usize,
    current: &Provenance,
) -> Vec<Stretch> {
    let mut stretches: Vec<Stretch> = earlier
        .iter()
        .filter(|s| s.first_iteration <= resumed_at)
        .map(|s| Stretch {
            last_iteration: s.last_iteration.min(resumed_at),
            ..s.clone()
        })
        .collect();
    let first = stretches.last().map_or(1, |s| s.last_iteration + 1);
    let last = recorded_iterations.min(resumed_at);
    if first <= last {
        stretches.push(Stretch {
            first_iteration: first,
            last_iteration: last,
            provenance: provenance.clone(),
        });
    }
    while stretches.last().is_some_and(|s| &s.provenance == current) {
        stretches.pop();
    }
    stretches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made_by(library: &str, threads: usize) -> Provenance {
        Provenance {
            product_library: library.into(),
            threads,
            ..Provenance::of_this_process()
        }
    }

    fn stretch(first: usize, last: usize, provenance: &Provenance) -> Stretch {
        Stretch {
            first_iteration: first,
            last_iteration: last,
            provenance: provenance.clone(),
        }
    }

    /// A run of 45 iterations by OpenBLAS with 2 threads, extended by gemm with 1 thread,
    /// lists the first 45 as an earlier stretch; extended again by gemm, still only those 45;
    /// resumed at 30 of the 45 (a later checkpoint lost), only 1-30.
    #[test]
    fn a_resumed_run_keeps_what_produced_its_earlier_iterations() {
        let openblas = made_by("openblas", 2);
        let gemm = made_by("gemm", 1);
        assert_eq!(
            stretches_before(&[], &openblas, 45, 45, &gemm),
            vec![stretch(1, 45, &openblas)]
        );
        let earlier = [stretch(1, 45, &openblas)];
        assert_eq!(
            stretches_before(&earlier, &gemm, 80, 80, &gemm),
            vec![stretch(1, 45, &openblas)]
        );
        assert_eq!(
            stretches_before(&earlier, &gemm, 80, 30, &gemm),
            vec![stretch(1, 30, &openblas)]
        );
        assert_eq!(
            stretches_before(&[], &openblas, 45, 45, &openblas),
            Vec::<Stretch>::new()
        );
        assert_eq!(
            stretches_before(&earlier, &gemm, 80, 80, &openblas),
            vec![stretch(1, 45, &openblas), stretch(46, 80, &gemm)]
        );
    }
}
