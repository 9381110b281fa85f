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
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
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
