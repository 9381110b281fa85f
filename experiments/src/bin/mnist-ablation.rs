//! The ablation of the clustering recipe: each choice of the base profile switched alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::runs::{parse_seeds, profile_slug, write_atomically, RunRecord};
use ganem_core::summary::Stats;
use serde::{Deserialize, Serialize};

/// Run every variant of an ablation file with `mnist-cluster` (one `--set` list each, on the
/// file's seeds, for its screening length) and write results/mnist_ablation.csv: per variant,
/// mean ± std of the test error after that many EM iterations and the difference from the
/// base profile. Runs that already exist are not repeated.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// The ablation file.
    #[arg(long, default_value = "configs/mnist-cluster/ablation.toml")]
    config: PathBuf,
    /// Folder of the runs' results and of the ablation table.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Run these seeds instead of the file's, e.g. `3` to add a third seed; the table covers
    /// the file's seeds and these.
    #[arg(long)]
    seeds: Option<String>,
    /// Only write the table from the runs that exist; start none.
    #[arg(long)]
    table_only: bool,
    /// Passed on to mnist-cluster.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ablation {
    base: String,
    k: usize,
    iterations: usize,
    seeds: String,
    variant: Vec<Variant>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Variant {
    name: String,
    source: String,
    set: Vec<String>,
}

/// The columns of a run's CSV that the table reads.
#[derive(Deserialize)]
struct RunRow {
    iteration: usize,
    test_error: f64,
    status: String,
}

#[derive(Serialize)]
struct TableRow {
    variant: String,
    settings: String,
    source: String,
    k: usize,
    iterations: usize,
    runs: usize,
    seeds: String,
    collapsed: usize,
    test_error_mean: Option<f64>,
    test_error_std: Option<f64>,
    test_error_min: Option<f64>,
    test_error_max: Option<f64>,
    /// Mean test error minus the base profile's on the same seeds (negative: the variant is
    /// better).
    difference_from_base: Option<f64>,
    #[serde(skip)]
    errors_by_seed: Vec<(u64, f64)>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let ablation: Ablation =
        toml::from_str(&text).with_context(|| format!("{}", args.config.display()))?;
    anyhow::ensure!(
        ablation.iterations >= 1,
        "{}: iterations must be at least 1",
        args.config.display()
    );
    let seeds = parse_seeds(args.seeds.as_deref().unwrap_or(&ablation.seeds))?;
    let mut table_seeds = parse_seeds(&ablation.seeds)?;
    table_seeds.extend(&seeds);
    table_seeds.sort_unstable();
    table_seeds.dedup();
    let seed_list = table_seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let base = Variant {
        name: format!("{} (base)", ablation.base),
        source: "the base profile".into(),
        set: Vec::new(),
    };
    let variants: Vec<Variant> = std::iter::once(base)
        .chain(ablation.variant.clone())
        .collect();

    let cluster = sibling_binary("mnist-cluster")?;
    let mut rows = Vec::new();
    for variant in &variants {
        let label = if variant.set.is_empty() {
            ablation.base.clone()
        } else {
            format!("{}[{}]", ablation.base, variant.set.join(","))
        };
        let missing: Vec<u64> = seeds
            .iter()
            .copied()
            .filter(|&s| row_at(&args.out, &label, ablation.k, s, ablation.iterations).is_none())
            .collect();
        if !missing.is_empty() && !args.table_only {
            println!("== {}: seeds {missing:?}", variant.name);
            let mut cmd = Command::new(&cluster);
            cmd.args(["--k", &ablation.k.to_string(), "--profile", &ablation.base])
                .args(["--iterations", &ablation.iterations.to_string()])
                .args(["--out".as_ref(), args.out.as_os_str()])
                .args([
                    "--seeds",
                    &missing
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ]);
            for s in &variant.set {
                cmd.args(["--set", s]);
            }
            if let Some(dir) = &args.data_dir {
                cmd.args(["--data-dir".as_ref(), dir.as_os_str()]);
            }
            // A failed variant (a diverged run, say) is reported and the others go on.
            let status = cmd
                .status()
                .with_context(|| format!("running {}", cluster.display()))?;
            if !status.success() {
                eprintln!("{}: mnist-cluster exited with {status}", variant.name);
            }
        }
        let found: Vec<(u64, RunRow)> = table_seeds
            .iter()
            .filter_map(|&s| {
                row_at(&args.out, &label, ablation.k, s, ablation.iterations).map(|r| (s, r))
            })
            .collect();
        let errors: Vec<f64> = found.iter().map(|(_, r)| r.test_error).collect();
        let stats = Stats::of(&errors);
        rows.push(TableRow {
            variant: variant.name.clone(),
            settings: variant.set.join(" "),
            source: variant.source.clone(),
            k: ablation.k,
            iterations: ablation.iterations,
            runs: found.len(),
            seeds: found
                .iter()
                .map(|(s, _)| s.to_string())
                .collect::<Vec<_>>()
                .join(";"),
            collapsed: found.iter().filter(|(_, r)| r.status != "ok").count(),
            test_error_mean: stats.map(|s| s.mean),
            test_error_std: stats.map(|s| s.std),
            test_error_min: stats.map(|s| s.min),
            test_error_max: stats.map(|s| s.max),
            difference_from_base: None,
            errors_by_seed: found.iter().map(|(s, r)| (*s, r.test_error)).collect(),
        });
    }
    let base = rows[0].errors_by_seed.clone();
    for row in &mut rows {
        // Paired by seed: GAN-EM's seed-to-seed spread is larger than most effects.
        let pairs: Vec<f64> = row
            .errors_by_seed
            .iter()
            .filter_map(|(s, e)| base.iter().find(|(b, _)| b == s).map(|(_, b)| e - b))
            .collect();
        row.difference_from_base = Stats::of(&pairs).map(|d| d.mean);
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in &rows {
        writer.serialize(row)?;
    }
    let path = args.out.join("mnist_ablation.csv");
    write_atomically(&path, &writer.into_inner()?)?;
    println!("wrote {} (seeds {seed_list})", path.display());
    for r in &rows {
        let cell = |v: Option<f64>| v.map_or("missing".to_string(), |v| format!("{v:.3}"));
        println!(
            "{:<45} {} ± {} (runs {}, collapsed {}), vs base {}",
            r.variant,
            cell(r.test_error_mean),
            cell(r.test_error_std),
            r.runs,
            r.collapsed,
            cell(r.difference_from_base)
        );
    }
    Ok(())
}

/// The row of EM iteration `iteration` of a run of `label`, if that run got so far (its
/// record must name the same profile and settings).
fn row_at(out: &Path, label: &str, k: usize, seed: u64, iteration: usize) -> Option<RunRow> {
    let stem = format!("mnist_cluster_{}_k{k}_seed{seed}", profile_slug(label));
    let record = RunRecord::read(&RunRecord::path(out, &stem)).ok()?;
    if record.identity.profile != label || record.identity.clusters != k {
        return None;
    }
    let mut reader = csv::Reader::from_path(out.join(format!("{stem}.csv"))).ok()?;
    reader
        .deserialize::<RunRow>()
        .filter_map(|r| r.ok())
        .find(|r| r.iteration == iteration)
}

/// A binary built beside this one.
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating this binary")?;
    let path = me.with_file_name(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it (cargo build --release)",
        path.display()
    );
    Ok(path)
}
