//! Shared plumbing of the experiment binaries: profiles, progress bars, result files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ganem_core::config::Profile;
use ganem_core::em::Progress;
use indicatif::{ProgressBar, ProgressStyle};

// Training allocates and frees buffers of megabytes for every op; glibc's malloc hands them
// back to the kernel each time, and faulting them in again cost a quarter of a training step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Profiles shipped with the binaries, so they run from any folder: (experiment, name, TOML).
const BUILTIN_PROFILES: &[(&str, &str, &str)] = &[
    (
        "mnist-cluster",
        "paper",
        include_str!("../../configs/mnist-cluster/paper.toml"),
    ),
    (
        "mnist-cluster",
        "fast",
        include_str!("../../configs/mnist-cluster/fast.toml"),
    ),
    (
        "mnist-cluster",
        "ci",
        include_str!("../../configs/mnist-cluster/ci.toml"),
    ),
];

/// Loads `name` as a built-in profile of `experiment`, or as a path to a TOML file.
pub fn load_profile(experiment: &str, name: &str) -> Result<Profile> {
    if let Some((_, _, text)) = BUILTIN_PROFILES
        .iter()
        .find(|(e, n, _)| *e == experiment && *n == name)
    {
        let origin = PathBuf::from(format!("configs/{experiment}/{name}.toml"));
        return Ok(Profile::from_toml(text, &origin)?);
    }
    let path = Path::new(name);
    if path.is_file() {
        return Ok(Profile::from_file(path)?);
    }
    let known: Vec<&str> = BUILTIN_PROFILES
        .iter()
        .filter(|(e, _, _)| *e == experiment)
        .map(|(_, n, _)| *n)
        .collect();
    anyhow::bail!(
        "unknown profile '{name}': use one of {} or a path to a TOML file",
        known.join(", ")
    )
}

/// Progress bars on standard error (hidden when it is not a terminal).
pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    pub fn new() -> Self {
        Self { bar: None }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bars {
    fn start(&mut self, phase: &str, total: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>16} [{bar:32}] {pos}/{len} {per_sec} elapsed {elapsed} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(phase.to_string());
        self.bar = Some(bar);
    }

    fn advance(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// A CSV file written under a temporary name and renamed into place by [`CsvOut::finish`], so
/// an interrupted run never leaves a file that looks complete.
pub struct CsvOut {
    writer: csv::Writer<std::fs::File>,
    partial: PathBuf,
    path: PathBuf,
}

impl CsvOut {
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let partial = Self::partial_path(path);
        let writer = csv::Writer::from_path(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Self {
            writer,
            partial,
            path: path.to_path_buf(),
        })
    }

    /// Where rows go until [`CsvOut::finish`]: `path` with `.partial` appended.
    pub fn partial_path(path: &Path) -> PathBuf {
        path.with_extension("csv.partial")
    }

    pub fn row<T: serde::Serialize>(&mut self, row: &T) -> Result<()> {
        self.writer.serialize(row)?;
        self.writer.flush()?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<PathBuf> {
        self.writer.flush()?;
        drop(self.writer);
        std::fs::rename(&self.partial, &self.path)
            .with_context(|| format!("renaming {} into place", self.partial.display()))?;
        Ok(self.path)
    }
}

/// Reads the rows of an earlier CSV written with the same row type.
pub fn read_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("{}: row {}", path.display(), i + 1)))
        .collect()
}
