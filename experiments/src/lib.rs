//! Shared plumbing of the experiment binaries: profiles, progress bars, result files, runs
//! over seeds and their summaries.

pub mod clustering;
pub mod host_speed;
pub mod labels_only;
pub mod lanes;
pub mod plots;
pub mod provenance;
pub mod report;
pub mod runner;
pub mod runs;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ganem_core::config::Profile;
use ganem_core::em::Progress;
use indicatif::{ProgressBar, ProgressStyle};

// Training allocates and frees buffers of megabytes for every op; glibc's malloc hands them
// back to the kernel each time, and faulting them in again cost a quarter of a training step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A built-in profile: (experiment, name, path in the repository, TOML).
macro_rules! builtin {
    ($experiment:literal, $name:literal, $file:literal) => {
        (
            $experiment,
            $name,
            concat!("configs/", $file),
            include_str!(concat!("../../configs/", $file)),
        )
    };
}

/// Profiles shipped with the binaries, so they run from any folder.
const BUILTIN_PROFILES: &[(&str, &str, &str, &str)] = &[
    builtin!("mnist-cluster", "paper", "mnist-cluster/paper.toml"),
    builtin!("mnist-cluster", "fast", "mnist-cluster/fast.toml"),
    builtin!("mnist-cluster", "fast-v1", "mnist-cluster/fast-v1.toml"),
    builtin!(
        "mnist-cluster",
        "short-rounds",
        "mnist-cluster/short-rounds.toml"
    ),
    builtin!("mnist-cluster", "ci", "mnist-cluster/ci.toml"),
    builtin!(
        "semi-supervised/mnist",
        "fast",
        "semi-supervised/mnist-fast.toml"
    ),
    builtin!(
        "semi-supervised/mnist",
        "paper",
        "semi-supervised/mnist-paper.toml"
    ),
    builtin!(
        "semi-supervised/mnist",
        "ci",
        "semi-supervised/mnist-ci.toml"
    ),
    builtin!(
        "semi-supervised/svhn",
        "fast",
        "semi-supervised/svhn-fast.toml"
    ),
    builtin!(
        "semi-supervised/svhn",
        "paper",
        "semi-supervised/svhn-paper.toml"
    ),
    builtin!("semi-supervised/svhn", "ci", "semi-supervised/svhn-ci.toml"),
    builtin!("celeba", "fast", "celeba/fast.toml"),
    builtin!("celeba", "paper", "celeba/paper.toml"),
    builtin!("celeba", "ci", "celeba/ci.toml"),
];

/// A profile as a run uses it: its settings and the label its results are filed under (the
/// name, plus the overrides in brackets).
pub struct LoadedProfile {
    pub profile: Profile,
    pub label: String,
}

/// Loads `name` as a built-in profile of `experiment`, or as a path to a TOML file, and
/// applies `overrides` (`section.key=value`, the value in TOML syntax, a bare word read as a
/// string), then checks every setting.
pub fn load_profile(experiment: &str, name: &str, overrides: &[String]) -> Result<LoadedProfile> {
    load_profile_for_labels(experiment, name, None, overrides)
}

/// Whether `name` is one of `experiment`'s built-in profiles (not a file or a variant).
pub fn is_builtin(experiment: &str, name: &str) -> bool {
    BUILTIN_PROFILES
        .iter()
        .any(|(e, n, _, _)| *e == experiment && *n == name)
}

/// The key of a profile's settings for one number of labelled images: a table
/// `[for_labels.N.section]` is laid over the profile's own settings in runs with N labels.
const FOR_LABELS: &str = "for_labels";

/// [`load_profile`] for a run with `labels` labelled images: the profile's `[for_labels.N]`
/// settings for that number come first, then `overrides`. The settings for every other number
/// are checked too, so a mistake in them fails before any run starts.
pub fn load_profile_for_labels(
    experiment: &str,
    name: &str,
    labels: Option<usize>,
    overrides: &[String],
) -> Result<LoadedProfile> {
    let (text, origin) = if let Some((_, _, path, text)) = BUILTIN_PROFILES
        .iter()
        .find(|(e, n, _, _)| *e == experiment && *n == name)
    {
        (text.to_string(), PathBuf::from(path))
    } else if Path::new(name).is_file() {
        let text = std::fs::read_to_string(name).with_context(|| format!("reading {name}"))?;
        (text, PathBuf::from(name))
    } else {
        let known: Vec<&str> = BUILTIN_PROFILES
            .iter()
            .filter(|(e, _, _, _)| *e == experiment)
            .map(|(_, n, _, _)| *n)
            .collect();
        anyhow::bail!(
            "unknown profile '{name}': use one of {} or a path to a TOML file",
            known.join(", ")
        )
    };
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("configuration {}", origin.display()))?;
    let per_labels = table.remove(FOR_LABELS);
    if per_labels.is_none() && overrides.is_empty() {
        // Parsed from the text itself, so that errors point at its lines.
        let profile = Profile::from_toml(&text, &origin)?;
        return Ok(LoadedProfile {
            profile,
            label: name.to_string(),
        });
    }
    if let Some(per_labels) = per_labels {
        let per_labels = per_labels.as_table().with_context(|| {
            format!(
                "configuration {}: '{FOR_LABELS}' must hold tables such as \
                 [{FOR_LABELS}.1000.semi]",
                origin.display()
            )
        })?;
        let mut chosen = None;
        for (count, settings) in per_labels {
            let context = || format!("configuration {}, [{FOR_LABELS}.{count}]", origin.display());
            let count = count
                .parse::<usize>()
                .with_context(|| format!("{}: '{count}' is not a number of labels", context()))?;
            let settings = settings
                .as_table()
                .with_context(|| format!("{}: not a table of settings", context()))?;
            let mut merged = table.clone();
            merge_tables(&mut merged, settings);
            Profile::from_toml(&toml::to_string(&merged)?, &origin).with_context(context)?;
            if labels == Some(count) {
                chosen = Some(merged);
            }
        }
        if let Some(merged) = chosen {
            table = merged;
        }
    }
    for setting in overrides {
        apply_override(&mut table, setting)?;
    }
    let parsed = Profile::from_toml(&toml::to_string(&table)?, &origin);
    if overrides.is_empty() {
        return Ok(LoadedProfile {
            profile: parsed?,
            label: name.to_string(),
        });
    }
    Ok(LoadedProfile {
        profile: parsed.with_context(|| format!("with --set {}", overrides.join(" --set ")))?,
        label: format!("{name}[{}]", overrides.join(",")),
    })
}

/// Lays `settings` over `table`, section by section.
fn merge_tables(table: &mut toml::Table, settings: &toml::Table) {
    for (key, value) in settings {
        match (table.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => {
                merge_tables(inner, more)
            }
            _ => {
                table.insert(key.clone(), value.clone());
            }
        }
    }
}

fn apply_override(table: &mut toml::Table, setting: &str) -> Result<()> {
    let (path, value) = setting
        .split_once('=')
        .with_context(|| format!("--set '{setting}' is not of the form section.key=value"))?;
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(value.trim().to_string()),
    };
    let keys: Vec<&str> = path.trim().split('.').collect();
    let (last, sections) = keys.split_last().expect("split yields one part");
    let mut current = table;
    for key in sections {
        current = current
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| format!("--set '{setting}': '{key}' is not a section"))?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

/// MNIST's training and test images as `profile` asks for them (`data.train_subset` and
/// `data.test_subset`: the first N, 0 for all), from `--data-dir` or the default places.
pub fn load_mnist(
    data_dir: Option<&Path>,
    profile: &Profile,
    device: &candle_core::Device,
) -> Result<(ganem_core::data::ImageSet, ganem_core::data::ImageSet)> {
    use ganem_core::data::{self, mnist};
    let location = data::locate(data_dir);
    let splits =
        mnist::load(&location, device).with_context(|| format!("loading MNIST from {location}"))?;
    profile_subsets(&splits.train, &splits.test, profile)
}

/// The training and evaluation images `profile` asks for (`data.train_subset` and
/// `data.test_subset`: the first N, 0 for all), after checking them against the data.
pub fn profile_subsets(
    train: &ganem_core::data::ImageSet,
    test: &ganem_core::data::ImageSet,
    profile: &Profile,
) -> Result<(ganem_core::data::ImageSet, ganem_core::data::ImageSet)> {
    profile.validate_data(train.len(), test.len())?;
    let side = train.shape.height;
    let asked = profile.data.image_size;
    anyhow::ensure!(
        asked == 0 || asked == side,
        "data.image_size = {asked} does not fit these images: they are {side} x {} and only \
         CelebA's faces are rescaled (leave it out, or 0)",
        train.shape.width
    );
    let subset = |set: &ganem_core::data::ImageSet, n: usize| -> Result<_> {
        Ok(if n == 0 {
            set.clone()
        } else {
            set.truncate(n)?
        })
    };
    Ok((
        subset(train, profile.data.train_subset)?,
        subset(test, profile.data.test_subset)?,
    ))
}

/// Writes a `rows x cols` matrix of f32 (row-major) as a NumPy `.npy` file (format 1.0), the
/// compact form of features that numpy, polars and most tools read.
pub fn write_npy(path: &Path, rows: usize, cols: usize, values: &[f32]) -> Result<()> {
    anyhow::ensure!(
        values.len() == rows * cols,
        "{} values for a {rows} x {cols} matrix",
        values.len()
    );
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    runs::write_atomically(path, &bytes)
}

/// Fails when `needed` bytes are more than the machine has available now, naming both.
pub fn check_memory(what: &str, needed: u64) -> Result<()> {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    if let Some(available) = available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        anyhow::ensure!(
            needed <= available,
            "{what} needs about {:.1} GiB of memory but this machine has {:.1} GiB available",
            gib(needed),
            gib(available)
        );
    }
    Ok(())
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

/// Rewrites the CSV at `path` with the earlier rows that `same` pairs with none of `rows`,
/// then `rows`, atomically ([`report::write_rows`]), so that several runs (or an
/// interrupted sweep) add to one table without a broken file; under the table's
/// [`runs::TableLock`], so that processes merging into it side by side keep each other's rows.
pub fn merge_rows<T: serde::Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    rows: Vec<T>,
    same: impl Fn(&T, &T) -> bool,
) -> Result<()> {
    let _lock = runs::TableLock::acquire(path)?;
    let mut all: Vec<T> = if path.exists() {
        read_rows(path)
            .with_context(|| format!("keeping the earlier rows of {}", path.display()))?
    } else {
        Vec::new()
    };
    all.retain(|old| !rows.iter().any(|new| same(old, new)));
    all.extend(rows);
    report::write_rows(path, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_rows_replace_their_earlier_selves_and_keep_the_rest() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Row {
            name: String,
            value: u32,
        }
        let row = |name: &str, value| Row {
            name: name.into(),
            value,
        };
        let path = std::env::temp_dir().join(format!("ganem-merge-{}.csv", std::process::id()));
        let same = |a: &Row, b: &Row| a.name == b.name;
        merge_rows(&path, vec![row("a", 1), row("b", 2)], same).unwrap();
        merge_rows(&path, vec![row("b", 3)], same).unwrap();
        let rows: Vec<Row> = read_rows(&path).unwrap();
        assert_eq!(rows, vec![row("a", 1), row("b", 3)]);
        std::fs::remove_file(&path).unwrap();
    }

    /// Writers merging into one table at the same time, each under the table's lock, keep
    /// every row: none reads the table while another is between reading and renaming.
    #[test]
    fn side_by_side_merges_keep_every_row() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Row {
            writer: usize,
            step: usize,
        }
        let dir = std::env::temp_dir().join(format!("ganem-locked-{}", std::process::id()));
        let path = dir.join("table.csv");
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let path = &path;
                scope.spawn(move || {
                    for step in 0..25 {
                        let same = |a: &Row, b: &Row| (a.writer, a.step) == (b.writer, b.step);
                        merge_rows(path, vec![Row { writer, step }], same).unwrap();
                    }
                });
            }
        });
        let rows: Vec<Row> = read_rows(&path).unwrap();
        assert_eq!(rows.len(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Settings added later stay out of the fingerprint while off, so that the checkpoints of
    /// runs filed before them still resume (their records under results/ hold these hashes,
    /// as `RunRecord::recipe_hash` reads them).
    #[test]
    fn fingerprints_of_filed_profiles_do_not_change() {
        let hash = |experiment, name| {
            load_profile(experiment, name, &[])
                .unwrap()
                .profile
                .fingerprint()
        };
        assert_eq!(hash("mnist-cluster", "fast"), "ac1f107615f6e91b");
        assert_eq!(hash("semi-supervised/mnist", "fast"), "d8da70f2bd0c6c38");
    }

    /// A profile's `[for_labels.N]` settings reach runs with N labels only, and a mistake in
    /// the settings for another number fails all the same.
    #[test]
    fn settings_for_a_number_of_labels_apply_to_that_number_only() {
        let base = include_str!("../../configs/semi-supervised/mnist-fast.toml");
        let dir = std::env::temp_dir().join(format!("ganem-for-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.toml");
        let write = |extra: &str| {
            let text = format!("{}\n{extra}", base.split("[for_labels").next().unwrap());
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };
        let name = write("[for_labels.1000.semi]\ne_step_labelled_batch = 48\n");
        let load = |labels| {
            load_profile_for_labels("semi-supervised/mnist", &name, labels, &[])
                .unwrap()
                .profile
        };
        assert_eq!(load(Some(1000)).semi.e_step_labelled_batch, 48);
        assert_eq!(load(Some(100)).semi.e_step_labelled_batch, 0);
        assert_eq!(load(None).semi.e_step_labelled_batch, 0);
        assert_eq!(load(Some(100)).fingerprint(), load(None).fingerprint());
        assert_ne!(load(Some(1000)).fingerprint(), load(None).fingerprint());
        let sets = ["semi.e_step_labelled_batch=8".to_string()];
        let overridden =
            load_profile_for_labels("semi-supervised/mnist", &name, Some(1000), &sets).unwrap();
        assert_eq!(overridden.profile.semi.e_step_labelled_batch, 8);

        let name = write("[for_labels.1000.semi]\nlabelled_error_target = 2.0\n");
        let error = load_profile_for_labels("semi-supervised/mnist", &name, Some(100), &[])
            .err()
            .expect("a bad setting for 1000 labels fails a run with 100");
        assert!(
            format!("{error:#}").contains("[for_labels.1000]"),
            "{error:#}"
        );
        let name = write("[for_labels.many.semi]\ne_step_labelled_batch = 48\n");
        assert!(load_profile_for_labels("semi-supervised/mnist", &name, Some(100), &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn npy_files_have_a_padded_header_and_the_values() {
        let path = std::env::temp_dir().join(format!("ganem-npy-{}.npy", std::process::id()));
        write_npy(&path, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(
            header.contains("'shape': (2, 3)") && header.ends_with('\n'),
            "{header}"
        );
        let last = &bytes[bytes.len() - 4..];
        assert_eq!(f32::from_le_bytes(last.try_into().unwrap()), 6.5);
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert!(write_npy(&path, 2, 2, &[1.0]).is_err());
    }

    #[test]
    fn overrides_change_one_setting_and_name_the_run() {
        let base = load_profile("mnist-cluster", "fast", &[]).unwrap();
        let sets = [
            "em.enet_batch_norm=batch".to_string(),
            "em.lr_decay=0.9".into(),
        ];
        let changed = load_profile("mnist-cluster", "fast", &sets).unwrap();
        assert_eq!(
            changed.label,
            "fast[em.enet_batch_norm=batch,em.lr_decay=0.9]"
        );
        assert_eq!(
            changed.profile.em.enet_batch_norm,
            ganem_core::em::EnetBatchNorm::Batch
        );
        assert_eq!(changed.profile.em.lr_decay, 0.9);
        let mut expected = base.profile.clone();
        expected.em.enet_batch_norm = ganem_core::em::EnetBatchNorm::Batch;
        expected.em.lr_decay = 0.9;
        assert_eq!(changed.profile, expected);
        let bad = load_profile("mnist-cluster", "fast", &["em.lr_decay=2.0".into()]);
        let message = format!("{:#}", bad.err().unwrap());
        assert!(message.contains("em.lr_decay = 2"), "{message}");
        let unknown = load_profile("mnist-cluster", "fast", &["em.bogus=1".into()]);
        assert!(format!("{:#}", unknown.err().unwrap()).contains("bogus"));
    }
}
