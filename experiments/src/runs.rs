//! Runs over seeds: file names, the record each run leaves beside its CSV, and the summary
//! (mean ± std over seeds) that every experiment writes the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ganem_core::em::{RunIdentity, RunStatus};
use ganem_core::summary::Stats;
use serde::{Deserialize, Serialize};

use crate::provenance::{Provenance, Stretch};

/// Parses a seed list such as `1,2,3` or `1-5`.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("'{s}' in --seeds '{text}' is not a seed (0, 1, 2, ...)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                anyhow::ensure!(a <= b, "--seeds range '{part}' runs backwards");
                seeds.extend(a..=b);
            }
            None => seeds.push(parse(part)?),
        }
    }
    anyhow::ensure!(!seeds.is_empty(), "--seeds '{text}' names no seed");
    seeds.dedup();
    Ok(seeds)
}

/// The name a run's files share: `{experiment}_{profile}_k{K}_seed{S}`.
pub fn run_stem(experiment: &str, identity: &RunIdentity) -> String {
    format!(
        "{experiment}_{}_k{}_seed{}",
        profile_slug(&identity.profile),
        identity.clusters,
        identity.seed
    )
}

/// A profile's label fit for a file name: a built-in name as it is, a path's file stem, and
/// the overrides in brackets spelled out (`fast[em.lr_decay=0.9]` -> `fast_em_lr_decay_0_9`),
/// so that runs of different settings never share a file.
pub fn profile_slug(label: &str) -> String {
    let (name, overrides) = match label.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']')),
        None => (label, ""),
    };
    let name = if name.ends_with(".toml") || name.contains('/') {
        Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string())
    } else {
        name.to_string()
    };
    let mut slug = String::new();
    for c in format!("{name}_{overrides}").chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            slug.push(c);
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.trim_end_matches('_').to_string()
}

/// The final scores of a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct FinalScores {
    pub test_error: f64,
    pub nmi: f64,
    pub ari: f64,
}

/// What a run leaves beside its CSV (`{stem}.json`): what it was, how it ended, what
/// produced it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub identity: RunIdentity,
    /// `ok`, `collapsed` (by the final iteration's collapse rule) or `diverged`.
    pub status: RunStatus,
    /// Why the run diverged, when it did.
    pub message: Option<String>,
    /// EM iterations finished.
    pub iterations: usize,
    /// The last finished iteration's scores.
    pub scores: FinalScores,
    pub seconds: f64,
    /// The profile's settings as the run used them (after overrides), as JSON.
    pub settings: serde_json::Value,
    /// What produced the run's iterations after those in `earlier_provenance` (all of them
    /// for a run that one kind of process ran from start to end).
    pub provenance: Provenance,
    /// What produced the earlier iterations of a run resumed by another build, product
    /// library or thread count, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_provenance: Vec<Stretch>,
}

impl RunRecord {
    pub fn path(dir: &Path, stem: &str) -> PathBuf {
        dir.join(format!("{stem}.json"))
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<PathBuf> {
        let path = Self::path(dir, stem);
        write_atomically(&path, serde_json::to_string_pretty(self)?.as_bytes())?;
        Ok(path)
    }

    /// The fingerprint of the settings this run used, as this version reads them (settings
    /// added since take their defaults), so that a run made before a new setting existed
    /// still counts as a run of the same recipe. Falls back to the recorded hash.
    pub fn recipe_hash(&self) -> String {
        serde_json::from_value::<ganem_core::config::Profile>(self.settings.clone())
            .map(|p| p.fingerprint())
            .unwrap_or_else(|_| self.identity.profile_hash.clone())
    }

    /// Whether this record is of the run `identity` names, with the same recipe.
    pub fn is_run(&self, identity: &RunIdentity) -> bool {
        let id = &self.identity;
        (&id.dataset, id.clusters, id.labels, &id.profile, id.seed)
            == (
                &identity.dataset,
                identity.clusters,
                identity.labels,
                &identity.profile,
                identity.seed,
            )
            && self.recipe_hash() == identity.profile_hash
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a run record", path.display()))
    }
}

/// Applies today's collapse rule to a finished run's iteration rows (`csv_path`, with columns
/// `loss_d`, `loss_g`, `sample_spread` and `status`) and record, so that a run made before the
/// rule changed is flagged as one made after it would be. Diverged iterations stay so.
/// Returns the record, rewritten (with its CSV) where a status changed.
pub fn restatus(
    csv_path: &Path,
    record_path: &Path,
    mut record: RunRecord,
    output_range: f64,
) -> Result<RunRecord> {
    let context = || format!("re-reading {} for the collapse rule", csv_path.display());
    let mut reader = csv::Reader::from_path(csv_path).with_context(context)?;
    let header = reader.headers().with_context(context)?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name}", csv_path.display()))
    };
    let (loss_d, loss_g, spread, status) = (
        column("loss_d")?,
        column("loss_g")?,
        column("sample_spread")?,
        column("status")?,
    );
    let mut rows = Vec::new();
    let mut changed = false;
    let mut last = None;
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(context)?;
        let number = |i: usize| -> Result<f64> {
            row[i].parse().with_context(|| {
                format!(
                    "{} row {}: {} is not a number",
                    csv_path.display(),
                    line + 2,
                    &row[i]
                )
            })
        };
        let now = if &row[status] == RunStatus::Diverged.as_str() {
            RunStatus::Diverged
        } else {
            ganem_core::em::health::status_of(ganem_core::em::Vitals {
                loss_d: number(loss_d)?,
                loss_g: number(loss_g)?,
                sample_spread: number(spread)?,
                output_range,
            })
        };
        changed |= &row[status] != now.as_str();
        let fields: Vec<&str> = (0..row.len())
            .map(|i| if i == status { now.as_str() } else { &row[i] })
            .collect();
        rows.push(csv::StringRecord::from(fields));
        last = Some(now);
    }
    // A diverged run's record keeps its status and message whatever its rows say.
    let last_changed =
        record.status != RunStatus::Diverged && last.is_some_and(|now| now != record.status);
    if changed {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&header)?;
        for row in &rows {
            writer.write_record(row)?;
        }
        write_atomically(csv_path, &writer.into_inner()?)?;
        if let (true, Some(now)) = (last_changed, last) {
            record.status = now;
            write_atomically(
                record_path,
                serde_json::to_string_pretty(&record)?.as_bytes(),
            )?;
        }
    }
    Ok(record)
}

/// Writes `bytes` to `path` through a temporary file renamed into place, so a reader never
/// sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Unique per process: runs of other K may rewrite the same summary at the same time.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// An exclusive lock on a table that several processes rewrite (the lanes of a sweep, see
/// [`crate::lanes`]), held until dropped. A process that reads, updates and rewrites the table
/// while holding it sees every row written before it took the lock, so that no lane drops
/// another's rows. The lock is a hidden file beside the table (`.{name}.lock`), left there:
/// removing it could let two processes lock two different files.
pub struct TableLock {
    /// Open for as long as the lock is held: closing it releases the lock.
    _file: std::fs::File,
}

impl TableLock {
    /// Waits until no other process holds the lock of `table`, then takes it.
    pub fn acquire(table: &Path) -> Result<Self> {
        let name = table
            .file_name()
            .with_context(|| format!("{} names no file", table.display()))?;
        let path = table.with_file_name(format!(".{}.lock", name.to_string_lossy()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the lock {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

/// One row of an experiment's summary: the runs of one data set, number of labels, K and
/// profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryRow {
    pub dataset: String,
    /// Labelled training images (0: unsupervised).
    pub labels: usize,
    pub k: usize,
    pub profile: String,
    pub profile_hash: String,
    pub runs: usize,
    /// The seeds, `;`-separated.
    pub seeds: String,
    pub collapsed: usize,
    pub diverged: usize,
    /// The fewest EM iterations any of the runs finished.
    pub iterations: usize,
    pub test_error_mean: f64,
    pub test_error_std: f64,
    pub test_error_min: f64,
    pub test_error_max: f64,
    pub nmi_mean: f64,
    pub nmi_std: f64,
    pub nmi_min: f64,
    pub nmi_max: f64,
    pub ari_mean: f64,
    pub ari_std: f64,
    pub ari_min: f64,
    pub ari_max: f64,
    pub minutes_mean: f64,
}

impl SummaryRow {
    /// A line of `runs` runs (seeds 1 to `runs`) with mean test error `mean` and std 0.01,
    /// for tests of what reads summaries.
    #[cfg(test)]
    pub(crate) fn example(dataset: &str, labels: usize, k: usize, runs: usize, mean: f64) -> Self {
        let seeds: Vec<String> = (1..=runs).map(|s| s.to_string()).collect();
        Self {
            dataset: dataset.into(),
            labels,
            k,
            profile: "fast".into(),
            profile_hash: "h".into(),
            runs,
            seeds: seeds.join(";"),
            collapsed: 0,
            diverged: 0,
            iterations: 20,
            test_error_mean: mean,
            test_error_std: 0.01,
            test_error_min: 0.0,
            test_error_max: 1.0,
            nmi_mean: 0.0,
            nmi_std: 0.0,
            nmi_min: 0.0,
            nmi_max: 0.0,
            ari_mean: 0.0,
            ari_std: 0.0,
            ari_min: 0.0,
            ari_max: 0.0,
            minutes_mean: 3.0,
        }
    }

    /// Aggregates runs of one K and profile; `None` for no runs. Collapsed and diverged runs
    /// count with their last finished iteration's scores.
    pub fn of(records: &[RunRecord]) -> Option<Self> {
        let first = records.first()?;
        let stats = |f: fn(&FinalScores) -> f64| {
            let v: Vec<f64> = records.iter().map(|r| f(&r.scores)).collect();
            Stats::of(&v).expect("at least one run")
        };
        let (err, nmi, ari) = (stats(|s| s.test_error), stats(|s| s.nmi), stats(|s| s.ari));
        let count = |status| records.iter().filter(|r| r.status == status).count();
        let mut seeds: Vec<u64> = records.iter().map(|r| r.identity.seed).collect();
        seeds.sort_unstable();
        Some(Self {
            dataset: first.identity.dataset.clone(),
            labels: first.identity.labels,
            k: first.identity.clusters,
            profile: first.identity.profile.clone(),
            profile_hash: first.recipe_hash(),
            runs: records.len(),
            seeds: seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(";"),
            collapsed: count(RunStatus::Collapsed),
            diverged: count(RunStatus::Diverged),
            iterations: records.iter().map(|r| r.iterations).min().unwrap_or(0),
            test_error_mean: err.mean,
            test_error_std: err.std,
            test_error_min: err.min,
            test_error_max: err.max,
            nmi_mean: nmi.mean,
            nmi_std: nmi.std,
            nmi_min: nmi.min,
            nmi_max: nmi.max,
            ari_mean: ari.mean,
            ari_std: ari.std,
            ari_min: ari.min,
            ari_max: ari.max,
            minutes_mean: records.iter().map(|r| r.seconds).sum::<f64>()
                / records.len() as f64
                / 60.0,
        })
    }
}

/// Rebuilds `{summary}_summary.csv` in `dir` from every run record there whose name starts
/// with `{summary}_`: one row per (data set, labels, K, profile), over the runs of the
/// profile's current settings (`current_hashes`, by data set and profile, since one profile
/// name has other settings on another data set; records of other settings are left out and
/// their number returned).
pub fn write_summary(
    dir: &Path,
    summary: &str,
    current_hashes: &BTreeMap<(String, String), String>,
) -> Result<(PathBuf, usize)> {
    let path = dir.join(format!("{summary}_summary.csv"));
    let _lock = TableLock::acquire(&path)?;
    type Key = (String, usize, usize, String);
    let mut groups: BTreeMap<Key, Vec<RunRecord>> = BTreeMap::new();
    let mut stale = 0;
    let prefix = format!("{summary}_");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        })
        .collect();
    paths.sort();
    for path in paths {
        let record = RunRecord::read(&path)?;
        let id = &record.identity;
        match current_hashes.get(&(id.dataset.clone(), id.profile.clone())) {
            Some(hash) if *hash != record.recipe_hash() => stale += 1,
            _ => groups
                .entry((
                    id.dataset.clone(),
                    id.labels,
                    id.clusters,
                    id.profile.clone(),
                ))
                .or_default()
                .push(record),
        }
    }
    let rows: Vec<SummaryRow> = groups.values().filter_map(|r| SummaryRow::of(r)).collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in &rows {
        writer.serialize(row)?;
    }
    write_atomically(&path, &writer.into_inner()?)?;
    Ok((path, stale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seed: u64, status: RunStatus, err: f64, hash: &str) -> RunRecord {
        RunRecord {
            identity: RunIdentity {
                dataset: "mnist".into(),
                clusters: 10,
                labels: 0,
                profile: "fast".into(),
                profile_hash: hash.into(),
                seed,
            },
            status,
            message: None,
            iterations: 3,
            scores: FinalScores {
                test_error: err,
                nmi: 0.5,
                ari: 0.4,
            },
            seconds: 60.0,
            settings: serde_json::Value::Null,
            provenance: Provenance::of_this_process(),
            earlier_provenance: Vec::new(),
        }
    }

    /// A CelebA run recorded as `ok` under the old rule whose G ended in one pattern (Wearing_Hat
    /// with 100 labels: L_D 0.21, L_G 8.91) is flagged when it is next read; rows the rule
    /// passes keep `ok`, and a second reading changes nothing.
    #[test]
    fn finished_runs_take_todays_collapse_rule() {
        let dir = std::env::temp_dir().join(format!("ganem-restatus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv_path = dir.join("run.csv");
        let rows = "iteration,test_error,loss_d,loss_g,sample_spread,status\n\
                    1,0.25,3.31,2.28,0.177,ok\n\
                    2,0.20,0.21,8.91,0.108,ok\n";
        std::fs::write(&csv_path, rows).unwrap();
        let record_path = RunRecord::path(&dir, "run");
        let old = record(1, RunStatus::Ok, 0.2, "h");
        old.write(&dir, "run").unwrap();

        let now = restatus(&csv_path, &record_path, old.clone(), 2.0).unwrap();
        assert_eq!(now.status, RunStatus::Collapsed);
        assert_eq!(RunRecord::read(&record_path).unwrap(), now);
        let text = std::fs::read_to_string(&csv_path).unwrap();
        assert!(text.contains("1,0.25,3.31,2.28,0.177,ok\n"), "{text}");
        assert!(
            text.ends_with("2,0.20,0.21,8.91,0.108,collapsed\n"),
            "{text}"
        );

        let again = restatus(&csv_path, &record_path, now.clone(), 2.0).unwrap();
        assert_eq!(again, now);
        assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), text);

        // A row that is not a number is named.
        std::fs::write(&csv_path, "loss_d,loss_g,sample_spread,status\nx,1,1,ok\n").unwrap();
        let err = restatus(&csv_path, &record_path, old, 2.0).unwrap_err();
        assert!(
            format!("{err:#}").contains("row 2: x is not a number"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_override_gets_its_own_file_name() {
        assert_eq!(profile_slug("fast"), "fast");
        assert_eq!(profile_slug("configs/mine.toml"), "mine");
        assert_eq!(
            profile_slug("fast[em.enet_batch_norm=batch]"),
            "fast_em_enet_batch_norm_batch"
        );
        assert_ne!(
            profile_slug("fast[em.generator_loss=paper_kl]"),
            profile_slug("fast[em.generator_loss=paper_kl,em.generator_weight_clip=0.01]")
        );
        assert_eq!(
            profile_slug("fast[optimizer={kind='rmsprop', lr=2e-4}]"),
            "fast_optimizer_kind_rmsprop_lr_2e-4"
        );
    }

    #[test]
    fn seeds_parse_lists_and_ranges() {
        assert_eq!(parse_seeds("1,2,3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_seeds("1-3, 7").unwrap(), vec![1, 2, 3, 7]);
        assert!(parse_seeds("1,x").unwrap_err().to_string().contains("'x'"));
        assert!(parse_seeds("").is_err() && parse_seeds("3-1").is_err());
    }

    #[test]
    fn summary_counts_collapsed_runs_in_the_mean_and_skips_other_settings() {
        let dir = std::env::temp_dir().join(format!("ganem-summary-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runs = [
            record(1, RunStatus::Ok, 0.1, "h"),
            record(2, RunStatus::Collapsed, 0.7, "h"),
            record(3, RunStatus::Ok, 0.2, "h"),
            record(4, RunStatus::Ok, 0.9, "old"),
        ];
        // The same profile name on another data set has other settings: not stale.
        let mut svhn = record(1, RunStatus::Ok, 0.5, "s");
        svhn.identity.dataset = "svhn".into();
        for r in runs.iter().chain([&svhn]) {
            let name = format!("mnist_cluster_{}", r.identity.dataset);
            r.write(&dir, &run_stem(&name, &r.identity)).unwrap();
        }
        let hashes = BTreeMap::from([(("mnist".to_string(), "fast".to_string()), "h".to_string())]);
        let (path, stale) = write_summary(&dir, "mnist_cluster", &hashes).unwrap();
        assert_eq!(stale, 1);
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let rows: Vec<SummaryRow> = reader.deserialize().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].dataset.as_str(), rows[1].runs), ("svhn", 1));
        let row = &rows[0];
        assert_eq!(
            (row.runs, row.collapsed, row.seeds.as_str()),
            (3, 1, "1;2;3")
        );
        assert!((row.test_error_mean - 1.0 / 3.0).abs() < 1e-12);
        assert!((row.test_error_std - 0.3214550253664318).abs() < 1e-12);
        assert_eq!((row.test_error_min, row.test_error_max), (0.1, 0.7));
        // The report reads the same lines back (with polars).
        assert_eq!(
            crate::report::read_summary(&dir, "mnist_cluster").unwrap(),
            rows
        );
        assert!(crate::report::read_summary(&dir, "semi")
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
