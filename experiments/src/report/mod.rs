//! The comparison with the paper: its printed numbers (`results/paper/`), our run summaries
//! (`results/*_summary.csv`, one aggregation for every experiment: [`crate::runs`]) and our
//! baselines, joined cell by cell into `results/table1.csv`, `reports/table1.md` and figures.
//! Every table is read with polars; a cell without runs stays empty, never zero.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::{CsvReadOptions, DataFrame, DataType, SerReader};
use serde::Serialize;

use crate::plots;

pub mod celeba;
mod table1;
use crate::runs::SummaryRow;
pub use table1::{
    table1, table1_cells_markdown, table1_figure, table1_markdown, CellRecipe, ComparedCell,
    Table1Profiles, RUN_CELLS,
};

/// A cell of a table as the paper prints it (error in percent).
#[derive(Debug, Clone, PartialEq)]
pub struct PaperCell {
    pub table: String,
    /// The method, e.g. `GAN-EM` or `K-means`.
    pub row: String,
    pub column: String,
    pub k: Option<usize>,
    pub error_percent: f64,
    pub std_percent: Option<f64>,
}

pub(crate) fn read_csv(path: &Path) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|reader| reader.finish())
        .with_context(|| format!("reading {}", path.display()))
}

/// A column as numbers (empty cells as `None`).
pub(crate) fn numbers(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let column = df
        .column(name)
        .with_context(|| format!("no column '{name}'"))?
        .cast(&DataType::Float64)
        .with_context(|| format!("column '{name}' is not numeric"))?;
    Ok(column.f64()?.iter().collect())
}

pub(crate) fn texts(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let column = df
        .column(name)
        .with_context(|| format!("no column '{name}'"))?
        .cast(&DataType::String)?;
    Ok(column
        .str()?
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

pub(crate) fn required<T>(values: Vec<Option<T>>, name: &str, path: &Path) -> Result<Vec<T>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.with_context(|| format!("{}: row {}: '{name}' is empty", path.display(), i + 1))
        })
        .collect()
}

/// The paper's cells from a `results/paper/*.csv` file.
pub fn read_paper(path: &Path) -> Result<Vec<PaperCell>> {
    let df = read_csv(path)?;
    let at = |e: anyhow::Error| e.context(format!("in {}", path.display()));
    let table = required(texts(&df, "table").map_err(at)?, "table", path)?;
    let row = required(texts(&df, "row").map_err(at)?, "row", path)?;
    let column = required(texts(&df, "column").map_err(at)?, "column", path)?;
    let k = numbers(&df, "k").map_err(at)?;
    let error = required(
        numbers(&df, "error_percent").map_err(at)?,
        "error_percent",
        path,
    )?;
    let std = numbers(&df, "std_percent").map_err(at)?;
    Ok((0..df.height())
        .map(|i| PaperCell {
            table: table[i].clone(),
            row: row[i].clone(),
            column: column[i].clone(),
            k: k[i].map(|k| k as usize),
            error_percent: error[i],
            std_percent: std[i],
        })
        .collect())
}

/// The lines of `{dir}/{name}_summary.csv` (as [`crate::runs::write_summary`] writes them);
/// none when the file does not exist yet.
pub fn read_summary(dir: &Path, name: &str) -> Result<Vec<SummaryRow>> {
    let path = dir.join(format!("{name}_summary.csv"));
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_csv(&path)?;
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let text = |c: &str| required(texts(&df, c)?, c, &path);
    let number = |c: &str| required(numbers(&df, c)?, c, &path);
    let count = |c: &str| -> Result<Vec<usize>> {
        Ok(number(c)?.into_iter().map(|v| v as usize).collect())
    };
    let (dataset, profile, hash, seeds) = (
        text("dataset")?,
        text("profile")?,
        text("profile_hash")?,
        text("seeds")?,
    );
    let (labels, k, runs, collapsed, diverged, iterations) = (
        count("labels")?,
        count("k")?,
        count("runs")?,
        count("collapsed")?,
        count("diverged")?,
        count("iterations")?,
    );
    // mean, std, min, max of each score.
    let stats = |score: &str| -> Result<[Vec<f64>; 4]> {
        Ok([
            number(&format!("{score}_mean"))?,
            number(&format!("{score}_std"))?,
            number(&format!("{score}_min"))?,
            number(&format!("{score}_max"))?,
        ])
    };
    let (error, nmi, ari) = (stats("test_error")?, stats("nmi")?, stats("ari")?);
    let minutes = number("minutes_mean")?;
    Ok((0..df.height())
        .map(|i| SummaryRow {
            dataset: dataset[i].clone(),
            labels: labels[i],
            k: k[i],
            profile: profile[i].clone(),
            profile_hash: hash[i].clone(),
            runs: runs[i],
            seeds: seeds[i].clone(),
            collapsed: collapsed[i],
            diverged: diverged[i],
            iterations: iterations[i],
            test_error_mean: error[0][i],
            test_error_std: error[1][i],
            test_error_min: error[2][i],
            test_error_max: error[3][i],
            nmi_mean: nmi[0][i],
            nmi_std: nmi[1][i],
            nmi_min: nmi[2][i],
            nmi_max: nmi[3][i],
            ari_mean: ari[0][i],
            ari_std: ari[1][i],
            ari_min: ari[2][i],
            ari_max: ari[3][i],
            minutes_mean: minutes[i],
        })
        .collect())
}

/// Our pixel-space baselines (`results/mnist_baselines.csv`): (method, K, test error).
pub fn read_baselines(dir: &Path) -> Result<Vec<(String, usize, f64)>> {
    let path = dir.join("mnist_baselines.csv");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_csv(&path)?;
    let method = required(texts(&df, "method")?, "method", &path)?;
    let k = required(numbers(&df, "k")?, "k", &path)?;
    let error = required(numbers(&df, "error")?, "error", &path)?;
    Ok((0..df.height())
        .map(|i| (method[i].clone(), k[i] as usize, error[i]))
        .collect())
}

/// The semi-supervised baseline of one setting: the E-net alone trained on the labelled images
/// (`--labels-only` of `semi-supervised` and `celeba`), over seeds, in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelsOnly {
    pub dataset: String,
    pub labels: usize,
    pub epochs: usize,
    pub seeds: usize,
    pub error: ganem_core::summary::Stats,
}

/// [`LabelsOnly`] per data set, labels and passes, from the rows of `profile` in `path`
/// (`results/semi_labels_only.csv`, `results/celeba_labels_only.csv`; none if it is absent).
pub fn read_labels_only(path: &Path, profile: &str) -> Result<Vec<LabelsOnly>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_csv(path)?;
    let dataset = required(texts(&df, "dataset")?, "dataset", path)?;
    let labels = required(numbers(&df, "labels")?, "labels", path)?;
    let epochs = required(numbers(&df, "epochs")?, "epochs", path)?;
    let error = required(numbers(&df, "test_error")?, "test_error", path)?;
    let profiles = required(texts(&df, "profile")?, "profile", path)?;
    let mut groups: std::collections::BTreeMap<(String, usize, usize), Vec<f64>> =
        Default::default();
    for i in (0..df.height()).filter(|&i| profiles[i] == profile) {
        groups
            .entry((dataset[i].clone(), labels[i] as usize, epochs[i] as usize))
            .or_default()
            .push(100.0 * error[i]);
    }
    Ok(groups
        .into_iter()
        .filter_map(|((dataset, labels, epochs), errors)| {
            Some(LabelsOnly {
                dataset,
                labels,
                epochs,
                seeds: errors.len(),
                error: ganem_core::summary::Stats::of(&errors)?,
            })
        })
        .collect())
}

/// A percentage with its ± when there is one.
pub(crate) fn percent(value: f64, std: Option<f64>) -> String {
    match std {
        Some(s) => format!("{value:.2} ± {s:.2}"),
        None => format!("{value:.2}"),
    }
}

/// `text` with the lines between `<!-- {name}:begin -->` and `<!-- {name}:end -->` replaced by
/// `content`.
pub fn replace_block(text: &str, name: &str, content: &str) -> Result<String> {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let start = text
        .find(&begin)
        .with_context(|| format!("no line '{begin}'"))?
        + begin.len();
    let stop = start
        + text[start..]
            .find(&end)
            .with_context(|| format!("no line '{end}' after '{begin}'"))?;
    Ok(format!("{}\n{}{}", &text[..start], content, &text[stop..]))
}

/// Test error per EM iteration of every run (one line per seed) of each of our Table 1
/// summaries of `profiles`:
/// `reports/figures/curves_{summary}_{dataset}_labels{N}_k{K}_{profile}.png`. Returns the files
/// written.
pub fn learning_curves(
    results: &Path,
    figures: &Path,
    profiles: &Table1Profiles,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for summary in ["mnist_cluster", "semi"] {
        let profile = profiles.for_summary(summary);
        let lines = read_summary(results, summary)?;
        for line in &lines {
            let picked = profiles.pick(&lines, summary, &line.dataset, line.labels, line.k);
            if !picked.is_some_and(|p| std::ptr::eq(p, line)) {
                continue;
            }
            let mut series = Vec::new();
            for seed in line.seeds.split(';').filter(|s| !s.is_empty()) {
                let Some(csv) = run_csv(results, summary, line, seed)? else {
                    continue;
                };
                let df = read_csv(&csv)?;
                let iterations = required(numbers(&df, "iteration")?, "iteration", &csv)?;
                let errors = required(numbers(&df, "test_error")?, "test_error", &csv)?;
                let points = iterations
                    .into_iter()
                    .zip(errors)
                    .map(|(i, e)| (i, 100.0 * e))
                    .collect();
                series.push((format!("seed {seed}"), points));
            }
            if series.is_empty() {
                continue;
            }
            let name = format!(
                "curves_{summary}_{}_labels{}_k{}_{}.png",
                line.dataset,
                line.labels,
                line.k,
                crate::runs::profile_slug(profile)
            );
            let path = figures.join(name);
            let title = format!(
                "{} {}, K = {}: test error per EM iteration ({})",
                line.dataset.to_uppercase(),
                if line.labels == 0 {
                    "clustering".to_string()
                } else {
                    format!("{} labels", line.labels)
                },
                line.k,
                line.profile
            );
            plots::lines(&path, &title, ("EM iteration", "test error (%)"), &series)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The per-iteration CSV of one run of a summary line, found through the run records.
fn run_csv(
    results: &Path,
    summary: &str,
    line: &SummaryRow,
    seed: &str,
) -> Result<Option<PathBuf>> {
    let prefix = format!("{summary}_");
    for entry in
        std::fs::read_dir(results).with_context(|| format!("reading {}", results.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.starts_with(&prefix) && name.ends_with(".json")) {
            continue;
        }
        let record = crate::runs::RunRecord::read(&path)?;
        let id = &record.identity;
        if id.dataset == line.dataset
            && id.labels == line.labels
            && id.clusters == line.k
            && id.profile == line.profile
            && id.seed.to_string() == seed
            && record.recipe_hash() == line.profile_hash
        {
            let csv = path.with_extension("csv");
            return Ok(csv.exists().then_some(csv));
        }
    }
    Ok(None)
}

/// Writes `rows` as CSV to `path`.
pub fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    crate::runs::write_atomically(path, &writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every number of the paper file is printed, with its ±, on its method's line of Table 1
    /// in the paper's text (GAN-EM's K = 20 and 30 on the two lines after).
    #[test]
    fn the_paper_file_holds_what_table_1_prints() {
        let text = std::fs::read_to_string(repository().join("../shared/paper/gan-em-paper.txt"))
            .expect("the paper's text in ../shared/paper");
        let start = text.find("Table 1: Experiment results").unwrap();
        let end = start + text[start..].find("Figure 2:").unwrap();
        let lines: Vec<&str> = text[start..end].lines().collect();
        let path = repository().join("results/paper/table1_mnist_svhn.csv");
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let mut checked = 0;
        for record in reader.records() {
            let record = record.unwrap();
            let (row, error, std) = (&record[1], &record[4], &record[5]);
            let at = lines
                .iter()
                .position(|l| {
                    // The name, then anything but a letter (a space, or a mis-decoded one).
                    l.strip_prefix(row)
                        .and_then(|rest| rest.chars().next())
                        .is_some_and(|c| !c.is_ascii_alphanumeric())
                })
                .unwrap_or_else(|| panic!("no line for {row}"));
            let segment = lines[at..lines.len().min(at + 3)].join("\n");
            let printed =
                segment.contains(&format!("{error}(")) || segment.contains(&format!("{error} "));
            assert!(printed, "{row}: {error} is not on its line: {segment}");
            if !std.is_empty() {
                assert!(
                    segment.contains(&format!("pm{std})"))
                        || segment.contains(&format!("pm {std})")),
                    "{row}: ± {std} is not on its line"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 27);
        let cells = read_paper(&path).unwrap();
        assert_eq!(cells.len(), 27);
        let gan_em_k20 = cells
            .iter()
            .find(|c| c.row == "GAN-EM" && c.k == Some(20))
            .unwrap();
        assert_eq!(
            (gan_em_k20.error_percent, gan_em_k20.std_percent),
            (4.04, Some(0.42))
        );
    }

    fn paper_block(start: &str, end: &str) -> String {
        let text = std::fs::read_to_string(repository().join("../shared/paper/gan-em-paper.txt"))
            .expect("the paper's text in ../shared/paper");
        let from = text.find(start).unwrap();
        let to = from + text[from..].find(end).unwrap();
        text[from..to].to_string()
    }

    /// Tables 2 and 3 (CelebA) as the files hold them are printed so in the paper's text.
    #[test]
    fn the_celeba_paper_files_hold_what_tables_2_and_3_print() {
        let table2 = paper_block("Table 2: GAN-EM unsupervised", "Since different models");
        let mut reader =
            csv::Reader::from_path(repository().join("results/paper/table2_celeba.csv")).unwrap();
        let mut rows = 0;
        for record in reader.records() {
            let record = record.unwrap();
            let line = table2
                .lines()
                .find(|l| l.starts_with(&format!("{} ", &record[1])))
                .unwrap_or_else(|| panic!("no line for {}", &record[1]));
            let values: Vec<&str> = line.split(' ').skip(1).collect();
            let at = usize::from(&record[2] == "CelebA (100 labels)");
            assert_eq!(values[at], &record[3], "{line}");
            rows += 1;
        }
        assert_eq!(rows, 11);
        let table3 = paper_block("Table 3: Error rates of GAN-EM", "Appendix B");
        let mut reader =
            csv::Reader::from_path(repository().join("results/paper/table3_celeba_attributes.csv"))
                .unwrap();
        let mut attributes = std::collections::BTreeSet::new();
        for record in reader.records() {
            let record = record.unwrap();
            let printed = format!("{} {} {}", &record[1], &record[3], &record[4]);
            assert!(
                table3
                    .lines()
                    .any(|l| l.starts_with(&printed) || l.ends_with(&printed)),
                "'{printed}' is not in Table 3"
            );
            if !record[2].is_empty() {
                attributes.insert(record[2].to_string());
            }
        }
        assert_eq!(attributes.len(), 39, "every attribute but Smiling, once");
        assert!(!attributes.contains("Smiling"));
    }

    fn summary_line(labels: usize, k: usize, errors: &[f64]) -> SummaryRow {
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        SummaryRow::example("mnist", labels, k, errors.len(), mean)
    }

    #[test]
    fn a_marked_block_is_replaced_and_a_missing_marker_named() {
        let text = "a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n";
        let new = replace_block(text, "t", "new\n").unwrap();
        assert_eq!(new, "a\n<!-- t:begin -->\nnew\n<!-- t:end -->\nb\n");
        assert_eq!(replace_block(&new, "t", "new\n").unwrap(), new);
        let err = replace_block("a\n", "t", "x").unwrap_err().to_string();
        assert!(err.contains("<!-- t:begin -->"), "{err}");
    }

    #[test]
    fn a_cell_with_a_known_recipe_shows_that_recipes_runs_whatever_their_name() {
        let line = |profile: &str, hash: &str, runs: usize| {
            let mut line = SummaryRow::example("mnist", 1000, 10, runs, 0.03);
            (line.profile, line.profile_hash) = (profile.into(), hash.into());
            line.iterations = 20;
            line
        };
        let mut shorter = line("fast[em.iterations=16]", "new", 3);
        shorter.iterations = 16;
        let lines = [
            line("fast", "old", 3),
            line("fast[semi.e_step_labelled_batch=64]", "new", 3),
            line("fast[semi.x=1]", "new", 1),
            shorter,
        ];
        let recipe_of_length = |fingerprint: &str, iterations: usize| Table1Profiles {
            recipes: vec![CellRecipe {
                summary: "semi".into(),
                dataset: "mnist".into(),
                labels: 1000,
                fingerprint: fingerprint.into(),
                iterations,
            }],
            ..Table1Profiles::same("fast")
        };
        let picked = |profiles: &Table1Profiles| {
            profiles
                .pick(&lines, "semi", "mnist", 1000, 10)
                .map(|l| l.profile.clone())
        };
        let with_recipe = |fingerprint: &str| recipe_of_length(fingerprint, 20);
        // The profile's recipe, filed under a --set name, the line with the most runs.
        assert_eq!(
            picked(&with_recipe("new")).as_deref(),
            Some("fast[semi.e_step_labelled_batch=64]")
        );
        // A length is not in the fingerprint: runs of the recipe's own length come first.
        assert_eq!(
            picked(&recipe_of_length("new", 16)).as_deref(),
            Some("fast[em.iterations=16]")
        );
        // Runs under the profile's name but of an older recipe do not count.
        assert_eq!(picked(&with_recipe("newer")), None);
        assert_eq!(picked(&with_recipe("old")).as_deref(), Some("fast"));
        // Without a known recipe (or for another cell), the name decides.
        assert_eq!(
            picked(&Table1Profiles::same("fast")).as_deref(),
            Some("fast")
        );
    }

    #[test]
    fn cells_without_runs_stay_missing_and_ours_sit_beside_the_paper() {
        let dir = std::env::temp_dir().join(format!("ganem-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_rows(
            &dir.join("mnist_cluster_summary.csv"),
            &[
                summary_line(0, 10, &[0.10, 0.12]),
                summary_line(0, 20, &[0.2]),
            ],
        )
        .unwrap();
        let paper = read_paper(&repository().join("results/paper/table1_mnist_svhn.csv")).unwrap();
        let fast = Table1Profiles::same("fast");
        let cells = table1(&paper, &dir, &fast).unwrap();
        assert_eq!(cells.len(), 8, "GAN-EM's six cells and the two baselines");
        let k10 = cells
            .iter()
            .find(|c| c.k == Some(10) && c.method == "GAN-EM")
            .unwrap();
        assert!((k10.our_error.unwrap() - 11.0).abs() < 1e-9);
        assert!((k10.difference.unwrap() - (11.0 - 4.20)).abs() < 1e-9);
        assert_eq!((k10.runs, k10.seeds.as_str()), (2, "1;2"));
        let k30 = cells.iter().find(|c| c.k == Some(30)).unwrap();
        assert_eq!((k30.our_error, k30.runs), (None, 0));
        // Another profile's runs do not fill the cells.
        assert!(table1(&paper, &dir, &Table1Profiles::same("paper"))
            .unwrap()
            .iter()
            .all(|c| c.our_error.is_none()));
        // The clustering cells follow the clustering profile alone.
        let split = Table1Profiles {
            clustering: "paper".into(),
            semi_supervised: "fast".into(),
            recipes: Vec::new(),
        };
        assert!(table1(&paper, &dir, &split)
            .unwrap()
            .iter()
            .all(|c| c.our_error.is_none()));
        // Missing stays an empty cell in the CSV and "missing" in the report, never 0.
        write_rows(&dir.join("table1.csv"), &cells).unwrap();
        let written = std::fs::read_to_string(dir.join("table1.csv")).unwrap();
        let k30_line = written.lines().find(|l| l.contains(",30,")).unwrap();
        assert!(k30_line.contains("3.97,0.37,,,,,,0,"), "{k30_line}");
        let md = table1_markdown(&paper, &cells, &[], &fast);
        assert!(md.contains("**ours 11.00 ± 1.00** (2 runs)"), "{md}");
        assert!(!md.contains("labels alone"));
        // The labels-only baseline: seeds of one profile and number of passes together.
        std::fs::write(
            dir.join("semi_labels_only.csv"),
            "dataset,labels,profile,seed,epochs,test_error,labelled_error,seconds,protocol\n\
             svhn,1000,fast,1,200,0.40,0,1,p\nsvhn,1000,fast,2,200,0.38,0,1,p\n\
             svhn,1000,paper,1,200,0.10,0,1,p\nmnist,100,fast,1,50,0.3,0,1,p\n",
        )
        .unwrap();
        let alone = read_labels_only(&dir.join("semi_labels_only.csv"), "fast").unwrap();
        assert_eq!(alone.len(), 2);
        let svhn = alone.iter().find(|a| a.dataset == "svhn").unwrap();
        assert_eq!((svhn.labels, svhn.epochs, svhn.seeds), (1000, 200, 2));
        assert!((svhn.error.mean - 39.0).abs() < 1e-9);
        let md = table1_markdown(&paper, &cells, &alone, &fast);
        assert!(
            md.contains("| SVHN (1000 labels) | 39.00 ± 1.41 (2 seeds, 200 passes) | *missing* |"),
            "{md}"
        );
        assert!(md.contains("ours: *missing*"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
