//! Table 1: MNIST clustering, semi-supervised MNIST and SVHN, and the pixel baselines,
//! cell by cell beside the paper.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{percent, read_baselines, read_summary, LabelsOnly, PaperCell};
use crate::plots;
use crate::runs::SummaryRow;

/// Where our number for a column of Table 1 comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// A summary file, data set and number of labels (K from the paper's cell).
    Runs(&'static str, &'static str, usize),
    /// `mnist_baselines.csv`, by method.
    Baseline(&'static str),
}

/// Table 1's GAN-EM columns and the runs that fill them: (column, summary file, data set,
/// labelled images; 0 for clustering).
pub const RUN_CELLS: [(&str, &str, &str, usize); 4] = [
    ("MNIST (unsupervised)", "mnist_cluster", "mnist", 0),
    ("MNIST (100 labels)", "semi", "mnist", 100),
    ("MNIST (1000 labels)", "semi", "mnist", 1000),
    ("SVHN (1000 labels)", "semi", "svhn", 1000),
];

fn source(cell: &PaperCell) -> Option<Source> {
    Some(match (cell.row.as_str(), cell.column.as_str()) {
        ("GAN-EM", column) => {
            let &(_, summary, dataset, labels) = RUN_CELLS.iter().find(|c| c.0 == column)?;
            Source::Runs(summary, dataset, labels)
        }
        ("K-means", "MNIST (unsupervised)") => Source::Baseline("k-means"),
        ("GMM", "MNIST (unsupervised)") => Source::Baseline("gmm"),
        _ => return None,
    })
}

/// The profiles whose runs fill Table 1: the clustering cells and the semi-supervised ones
/// may come from different profiles (clustering's best recipe is `short-rounds`, while the
/// semi-supervised runs have their own `fast`).
#[derive(Debug, Clone, PartialEq)]
pub struct Table1Profiles {
    pub clustering: String,
    pub semi_supervised: String,
    /// The fingerprint of each cell's recipe as the profile now reads, where it is known:
    /// those cells show the runs of that recipe, whatever name they were filed under (runs
    /// made with `--set` before the profile took the same settings count; runs of an older
    /// version of the profile do not).
    pub recipes: Vec<CellRecipe>,
}

/// The recipe a profile names for one summary, data set and number of labels.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRecipe {
    /// `mnist_cluster` or `semi`.
    pub summary: String,
    pub dataset: String,
    pub labels: usize,
    pub fingerprint: String,
    /// The recipe's EM iterations: a run's length is not part of its fingerprint (a run can
    /// be extended), so runs of the recipe's own length come first.
    pub iterations: usize,
}

impl Table1Profiles {
    /// One profile for every cell, runs found by the profile's name.
    pub fn same(profile: &str) -> Self {
        Self {
            clustering: profile.to_string(),
            semi_supervised: profile.to_string(),
            recipes: Vec::new(),
        }
    }

    /// The summary line of a cell: the runs of the cell's recipe where its fingerprint is
    /// known (those of the recipe's length first, then those filed under the profile's own
    /// name, then the most runs), else the runs filed under the profile's name.
    pub fn pick<'a>(
        &self,
        lines: &'a [SummaryRow],
        summary: &str,
        dataset: &str,
        labels: usize,
        k: usize,
    ) -> Option<&'a SummaryRow> {
        let name = self.for_summary(summary);
        let mut cell = lines
            .iter()
            .filter(|s| s.dataset == dataset && s.labels == labels && s.k == k);
        let recipe = self
            .recipes
            .iter()
            .find(|r| r.summary == summary && r.dataset == dataset && r.labels == labels);
        match recipe {
            Some(r) => cell
                .filter(|s| s.profile_hash == r.fingerprint)
                .max_by_key(|s| {
                    (
                        s.iterations == r.iterations,
                        s.profile == name,
                        s.runs,
                        s.iterations,
                    )
                }),
            None => cell.find(|s| s.profile == name),
        }
    }

    /// The profile of the runs behind a summary file (`mnist_cluster` or `semi`).
    pub fn for_summary(&self, summary: &str) -> &str {
        if summary == "semi" {
            &self.semi_supervised
        } else {
            &self.clustering
        }
    }

    /// `fast`, or `short-rounds (clustering), fast (semi-supervised)`, for titles.
    pub fn describe(&self) -> String {
        if self.clustering == self.semi_supervised {
            self.clustering.clone()
        } else {
            format!(
                "{} (clustering), {} (semi-supervised)",
                self.clustering, self.semi_supervised
            )
        }
    }

    /// "profile `fast`", or "profiles `short-rounds` (clustering) and `fast`
    /// (semi-supervised)", for Markdown.
    fn markdown(&self) -> String {
        if self.clustering == self.semi_supervised {
            format!("profile `{}`", self.clustering)
        } else {
            format!(
                "profiles `{}` (clustering) and `{}` (semi-supervised)",
                self.clustering, self.semi_supervised
            )
        }
    }
}

/// One cell of Table 1 with ours beside the paper's (percent); ours empty when missing.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComparedCell {
    pub column: String,
    pub method: String,
    pub k: Option<usize>,
    pub paper_error: f64,
    pub paper_std: Option<f64>,
    pub our_error: Option<f64>,
    pub our_std: Option<f64>,
    pub our_min: Option<f64>,
    pub our_max: Option<f64>,
    /// Ours minus the paper's, in percentage points.
    pub difference: Option<f64>,
    pub runs: usize,
    pub seeds: String,
    pub collapsed: usize,
    pub iterations: Option<usize>,
    pub minutes_per_run: Option<f64>,
    pub profile: String,
    /// What makes the cell not directly comparable, if anything.
    pub note: String,
}

/// Joins the paper's Table 1 with our summaries of `profiles` and our baselines. Only the
/// cells we reproduce are returned (GAN-EM and the two pixel baselines).
pub fn table1(
    paper: &[PaperCell],
    results: &Path,
    profiles: &Table1Profiles,
) -> Result<Vec<ComparedCell>> {
    let clustering = read_summary(results, "mnist_cluster")?;
    let semi = read_summary(results, "semi")?;
    let baselines = read_baselines(results)?;
    let mut cells = Vec::new();
    for cell in paper {
        let Some(source) = source(cell) else { continue };
        let mut compared = ComparedCell {
            column: cell.column.clone(),
            method: cell.row.clone(),
            k: cell.k,
            paper_error: cell.error_percent,
            paper_std: cell.std_percent,
            our_error: None,
            our_std: None,
            our_min: None,
            our_max: None,
            difference: None,
            runs: 0,
            seeds: String::new(),
            collapsed: 0,
            iterations: None,
            minutes_per_run: None,
            profile: String::new(),
            note: String::new(),
        };
        match source {
            Source::Runs(summary, dataset, labels) => {
                let lines = if summary == "semi" {
                    &semi
                } else {
                    &clustering
                };
                let k = cell.k.unwrap_or(10);
                if let Some(s) = profiles.pick(lines, summary, dataset, labels, k) {
                    compared.our_error = Some(100.0 * s.test_error_mean);
                    compared.our_std = Some(100.0 * s.test_error_std);
                    compared.our_min = Some(100.0 * s.test_error_min);
                    compared.our_max = Some(100.0 * s.test_error_max);
                    compared.runs = s.runs;
                    compared.seeds = s.seeds.clone();
                    compared.collapsed = s.collapsed;
                    compared.iterations = Some(s.iterations);
                    compared.minutes_per_run = Some(s.minutes_mean);
                    compared.profile = s.profile.clone();
                }
                if dataset == "svhn" {
                    compared.note = "ours: split protocol test-split-5000 unless the official \
                                     train split is present (docs/deviations.md)"
                        .into();
                }
            }
            Source::Baseline(method) => {
                if let Some((_, _, error)) = baselines
                    .iter()
                    .find(|(m, k, _)| m == method && Some(*k) == cell.k)
                {
                    compared.our_error = Some(100.0 * error);
                    compared.runs = 1;
                    compared.profile = "baseline (pixels, seed 1)".into();
                }
            }
        }
        compared.difference = compared.our_error.map(|e| e - cell.error_percent);
        cells.push(compared);
    }
    Ok(cells)
}

/// Our Table 1 cells beside the paper's, one line each (a Markdown table).
pub fn table1_cells_markdown(cells: &[ComparedCell]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| Cell | Paper | Ours | Ours − paper (points) | Range | Runs (seeds) | Collapsed | EM iterations | Minutes per run | Profile |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for c in cells {
        let k = c.k.map(|k| format!(", K = {k}")).unwrap_or_default();
        // Without runs every cell is missing; with runs, what does not apply is a dash.
        let none = if c.our_error.is_some() {
            "-"
        } else {
            "*missing*"
        };
        let or_missing = |v: Option<String>| v.unwrap_or_else(|| none.into());
        let _ = writeln!(
            md,
            "| {} {}{k} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.method,
            c.column,
            percent(c.paper_error, c.paper_std),
            or_missing(
                c.our_error
                    .map(|e| percent(e, c.our_std.filter(|_| c.runs > 1)))
            ),
            or_missing(c.difference.map(|d| format!("{d:+.2}"))),
            or_missing(
                c.our_min
                    .zip(c.our_max)
                    .map(|(a, b)| format!("{a:.2} – {b:.2}"))
            ),
            if c.seeds.is_empty() {
                c.runs.to_string()
            } else {
                format!("{} ({})", c.runs, c.seeds.replace(';', ", "))
            },
            c.collapsed,
            or_missing(c.iterations.map(|i| i.to_string())),
            or_missing(c.minutes_per_run.map(|m| format!("{m:.1}"))),
            c.profile,
        );
    }
    md
}

/// The paper's Table 1, every row and column, with our number under each cell we reproduce.
pub fn table1_markdown(
    paper: &[PaperCell],
    cells: &[ComparedCell],
    labels_only: &[LabelsOnly],
    profiles: &Table1Profiles,
) -> String {
    let profile = profiles.markdown();
    let semi_profile = &profiles.semi_supervised;
    let columns = [
        "MNIST (unsupervised)",
        "MNIST (100 labels)",
        "MNIST (1000 labels)",
        "SVHN (1000 labels)",
    ];
    let mut rows: Vec<&str> = Vec::new();
    for cell in paper {
        if !rows.contains(&cell.row.as_str()) {
            rows.push(&cell.row);
        }
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Table 1: error rates (%) on MNIST and SVHN, the paper beside this project\n\n\
         Generated by `report table1` from `results/paper/table1_mnist_svhn.csv` (the paper's \
         numbers, typed from its Table 1) and our run summaries of {profile} \
         (`results/mnist_cluster_summary.csv`, `results/semi_summary.csv`) and baselines \
         (`results/mnist_baselines.csv`). Each of our cells is the mean ± standard deviation \
         of the final test error over the seeds listed; *missing* means no finished run yet.\n"
    );
    let _ = writeln!(md, "| Method | {} |", columns.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(columns.len()));
    for row in &rows {
        let mut line = format!("| {row} |");
        for column in columns {
            let entries: Vec<String> = paper
                .iter()
                .filter(|c| c.row == *row && c.column == column)
                .map(|c| {
                    let k = c.k.map(|k| format!(" (K={k})")).unwrap_or_default();
                    let mut text = format!("{}{k}", percent(c.error_percent, c.std_percent));
                    if let Some(ours) = cells
                        .iter()
                        .find(|o| o.method == c.row && o.column == c.column && o.k == c.k)
                    {
                        text += &match ours.our_error {
                            Some(e) => format!(
                                "<br>**ours {}** ({} run{})",
                                percent(e, ours.our_std.filter(|_| ours.runs > 1)),
                                ours.runs,
                                if ours.runs == 1 { "" } else { "s" }
                            ),
                            None => "<br>ours: *missing*".into(),
                        };
                    }
                    text
                })
                .collect();
            if entries.is_empty() {
                line += " - |";
            } else {
                line += &format!(" {} |", entries.join("<br>"));
            }
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md, "\n## Our cells\n");
    md += &table1_cells_markdown(cells);
    if !labels_only.is_empty() {
        let _ = writeln!(
            md,
            "\n## The E-net on the labels alone\n\n\
             What GAN-EM's generated images add: the same E-net (profile `{semi_profile}`) trained on \
             the same labelled images only, for the number of passes shown \
             (`semi-supervised --labels-only`, `results/semi_labels_only.csv`), beside GAN-EM. \
             Not in the paper.\n\n\
             | Setting | E-net on the labels alone | GAN-EM (ours) |\n|---|---|---|"
        );
        for alone in labels_only {
            let column = format!("{} ({} labels)", alone.dataset.to_uppercase(), alone.labels);
            let ours = cells
                .iter()
                .find(|c| c.method == "GAN-EM" && c.column == column)
                .and_then(|c| {
                    c.our_error
                        .map(|e| percent(e, c.our_std.filter(|_| c.runs > 1)))
                })
                .unwrap_or_else(|| "*missing*".into());
            let _ = writeln!(
                md,
                "| {column} | {} ({} seed{}, {} passes) | {ours} |",
                percent(
                    alone.error.mean,
                    Some(alone.error.std).filter(|_| alone.seeds > 1)
                ),
                alone.seeds,
                if alone.seeds == 1 { "" } else { "s" },
                alone.epochs
            );
        }
    }
    let _ = writeln!(md, "\n## Reading\n");
    let _ = writeln!(
        md,
        "Why ours differ, in general: our GAN-EM cells come from the profile named in each \
         row, and the CPU profiles (`fast`, `short-rounds`, `ci`) train narrower networks for far fewer \
         updates than the paper (App. B: full width, 5 epochs per M-step, 1000 E-net updates \
         per E-step, an unstated number of EM iterations); the learning curves \
         (`reports/figures/curves_*.png`) show where the error still fell when a run stopped. \
         The GMM baseline is fitted on the first 5,000 training images \
         (`results/mnist_baselines.csv`, column `fitted_on`). SVHN trains on 5,000 images of \
         the official test split when the training split is absent, not on 73,257. Cell by \
         cell:\n"
    );
    for c in cells {
        let k = c.k.map(|k| format!(", K = {k}")).unwrap_or_default();
        let what = format!("{} {}{k}", c.method, c.column);
        let sentence = match (c.our_error, c.difference) {
            (Some(e), Some(d)) if d.abs() <= c.paper_std.unwrap_or(0.0) => format!(
                "- {what}: ours {e:.2} % matches the paper's {:.2} % within its spread.",
                c.paper_error
            ),
            (Some(e), Some(d))
                if d.abs() <= c.paper_std.unwrap_or(0.0) + c.our_std.unwrap_or(0.0) =>
            {
                format!(
                    "- {what}: ours {e:.2} % is {d:+.2} points from the paper's {:.2} %, within \
                     the two standard deviations added ({:.2}): our seeds spread too widely to \
                     call it a gap or a match.",
                    c.paper_error,
                    c.paper_std.unwrap_or(0.0) + c.our_std.unwrap_or(0.0)
                )
            }
            (Some(e), Some(d)) if d < 0.0 => format!(
                "- {what}: ours {e:.2} % is {:.2} points below the paper's {:.2} %.",
                -d, c.paper_error
            ),
            (Some(e), Some(d)) => format!(
                "- {what}: ours {e:.2} % is {d:.2} points above the paper's {:.2} % ({:.1} times its error).",
                c.paper_error,
                e / c.paper_error
            ),
            _ => format!("- {what}: no finished run of {profile} yet."),
        };
        let _ = writeln!(
            md,
            "{sentence}{}",
            if c.note.is_empty() {
                String::new()
            } else {
                format!(" Note: {}.", c.note)
            }
        );
    }
    md
}

/// Grouped bars of the paper's numbers and ours (with their standard deviations) for every
/// cell we reproduce.
pub fn table1_figure(cells: &[ComparedCell], path: &Path, profiles: &Table1Profiles) -> Result<()> {
    let profile = profiles.describe();
    let groups: Vec<plots::BarGroup> = cells
        .iter()
        .map(|c| {
            let short = match c.column.as_str() {
                "MNIST (unsupervised)" => "MNIST".to_string(),
                "MNIST (100 labels)" => "MNIST 100 lab.".into(),
                "MNIST (1000 labels)" => "MNIST 1000 lab.".into(),
                "SVHN (1000 labels)" => "SVHN 1000 lab.".into(),
                other => other.into(),
            };
            let k = c.k.map(|k| format!(" K={k}")).unwrap_or_default();
            plots::BarGroup {
                name: format!("{} {short}{k}", c.method),
                bars: vec![
                    Some((c.paper_error, c.paper_std)),
                    c.our_error.map(|e| (e, c.our_std.filter(|_| c.runs > 1))),
                ],
            }
        })
        .collect();
    plots::grouped_bars(
        path,
        &format!("Table 1: error (%), the paper vs ours ({profile}; missing bars: no runs)"),
        "test error (%)",
        &["paper".to_string(), format!("ours ({profile})")],
        &groups,
    )
}
