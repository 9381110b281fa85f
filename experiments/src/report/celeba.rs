//! Tables 2 and 3: CelebA's 40 attributes, unsupervised (K = 2) and with 100 labels, beside
//! the paper's per-attribute errors (App. A.3) and its averages over the attributes.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use ganem_core::data::celeba::ATTRIBUTES;
use ganem_core::em::RunStatus;
use serde::{Deserialize, Serialize};

use super::{numbers, read_csv, read_summary, required, texts};
use crate::plots;

/// One row of `results/celeba_attributes.csv` (written by `celeba`): a finished run of one
/// attribute, setting and seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttributeRow {
    pub attribute: String,
    /// `unsupervised` or `semi` (with `labels` labelled faces).
    pub setting: String,
    pub labels: usize,
    pub test_error: f64,
    pub nmi: f64,
    pub ari: f64,
    pub n_train: usize,
    pub n_held_out: usize,
    /// Mean share of the majority value of the other 39 attributes among the chosen faces.
    pub purity: f64,
    pub status: RunStatus,
    pub iterations: usize,
    pub seconds: f64,
    pub profile: String,
    pub profile_hash: String,
    pub seed: u64,
}

/// The rows of `results/celeba_attributes.csv` under `results`; none where there is no file.
pub fn read_attribute_rows(results: &Path) -> Result<Vec<AttributeRow>> {
    let path = results.join("celeba_attributes.csv");
    if !path.exists() {
        return Ok(Vec::new());
    }
    crate::read_rows(&path)
}

/// One attribute: the paper's errors and ours (percent), for both settings.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributeCell {
    /// As the paper prints it (`hat`, `glass`, `gender`), or the attribute's name where the
    /// paper leaves it out.
    pub printed: String,
    /// The name in `list_attr_celeba.txt`; empty where the paper's row names none.
    pub attribute: String,
    pub paper_unsupervised: Option<f64>,
    pub paper_semi: Option<f64>,
    pub our_unsupervised: Option<f64>,
    pub our_unsupervised_std: Option<f64>,
    pub runs_unsupervised: usize,
    /// Of those runs, how many ended collapsed (`ganem_core::em::health`).
    pub collapsed_unsupervised: usize,
    /// The fewest EM iterations of those runs (0 without runs).
    pub iterations_unsupervised: usize,
    pub our_semi: Option<f64>,
    pub our_semi_std: Option<f64>,
    pub runs_semi: usize,
    pub collapsed_semi: usize,
    pub iterations_semi: usize,
    /// The E-net trained on the same 100 labelled faces alone (`celeba --labels-only`), mean
    /// over seeds: what GAN-EM's generated faces have to add to.
    pub labels_only_semi: Option<f64>,
    pub runs_labels_only: usize,
    /// The profile whose runs fill the unsupervised column (and the labels-only baseline's).
    pub unsupervised_profile: String,
    /// The profile whose runs fill the 100-label column.
    pub semi_profile: String,
}

/// Which profile's runs fill each setting: the 100-label column may come from a variant of
/// the unsupervised one's profile (`report table2 --semi-profile`), as a recipe for the
/// labels is tried on all 40 attributes before it becomes the profile's.
#[derive(Debug, Clone, PartialEq)]
pub struct CelebaProfiles {
    pub unsupervised: String,
    pub semi: String,
}

impl CelebaProfiles {
    /// One profile for both settings.
    pub fn same(profile: &str) -> Self {
        Self {
            unsupervised: profile.into(),
            semi: profile.into(),
        }
    }

    /// The profile of one setting.
    pub fn of(&self, semi: bool) -> &str {
        if semi {
            &self.semi
        } else {
            &self.unsupervised
        }
    }

    /// How the reports name them: one name, or each with its setting.
    fn describe(&self) -> String {
        if self.unsupervised == self.semi {
            format!("`{}`", self.unsupervised)
        } else {
            format!(
                "`{}` unsupervised, `{}` with 100 labels",
                self.unsupervised, self.semi
            )
        }
    }
}

impl AttributeCell {
    fn without_runs(
        printed: String,
        attribute: String,
        paper: [Option<f64>; 2],
        profiles: &CelebaProfiles,
    ) -> Self {
        Self {
            printed,
            attribute,
            paper_unsupervised: paper[0],
            paper_semi: paper[1],
            our_unsupervised: None,
            our_unsupervised_std: None,
            runs_unsupervised: 0,
            collapsed_unsupervised: 0,
            iterations_unsupervised: 0,
            our_semi: None,
            our_semi_std: None,
            runs_semi: 0,
            collapsed_semi: 0,
            iterations_semi: 0,
            labels_only_semi: None,
            runs_labels_only: 0,
            unsupervised_profile: profiles.unsupervised.clone(),
            semi_profile: profiles.semi.clone(),
        }
    }
}

/// Table 3's rows with ours beside them, plus the attributes the paper leaves out. The
/// labels-only baseline comes from the rows filed under the unsupervised column's profile.
pub fn table3(
    paper_file: &Path,
    results: &Path,
    profiles: &CelebaProfiles,
) -> Result<Vec<AttributeCell>> {
    let df = read_csv(paper_file)?;
    let printed = required(texts(&df, "row")?, "row", paper_file)?;
    let attribute: Vec<String> = texts(&df, "attribute")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let unsupervised = required(
        numbers(&df, "unsupervised_error")?,
        "unsupervised_error",
        paper_file,
    )?;
    let semi = required(
        numbers(&df, "semi_supervised_100_labels_error")?,
        "semi_supervised_100_labels_error",
        paper_file,
    )?;
    let summary = read_summary(results, "celeba")?;
    let alone = super::read_labels_only(
        &results.join("celeba_labels_only.csv"),
        &profiles.unsupervised,
    )?;
    let ours = |attribute: &str, labels: usize| {
        let profile = profiles.of(labels > 0);
        summary.iter().find(|s| {
            s.dataset == format!("celeba:{attribute}") && s.labels == labels && s.profile == profile
        })
    };
    let mut cells: Vec<AttributeCell> = (0..df.height())
        .map(|i| {
            AttributeCell::without_runs(
                printed[i].clone(),
                attribute[i].clone(),
                // The paper prints fractions with four decimals: percent with two.
                [unsupervised[i], semi[i]].map(|e| Some((1e4 * e).round() / 100.0)),
                profiles,
            )
        })
        .collect();
    for name in ATTRIBUTES {
        if !cells.iter().any(|c| c.attribute == name) {
            cells.push(AttributeCell::without_runs(
                format!("{name} (not in the paper's table)"),
                name.to_string(),
                [None, None],
                profiles,
            ));
        }
    }
    for cell in &mut cells {
        if cell.attribute.is_empty() {
            continue;
        }
        if let Some(s) = ours(&cell.attribute, 0) {
            cell.our_unsupervised = Some(100.0 * s.test_error_mean);
            cell.our_unsupervised_std = Some(100.0 * s.test_error_std);
            cell.runs_unsupervised = s.runs;
            cell.collapsed_unsupervised = s.collapsed;
            cell.iterations_unsupervised = s.iterations;
        }
        if let Some(s) = ours(&cell.attribute, 100) {
            cell.our_semi = Some(100.0 * s.test_error_mean);
            cell.our_semi_std = Some(100.0 * s.test_error_std);
            cell.runs_semi = s.runs;
            cell.collapsed_semi = s.collapsed;
            cell.iterations_semi = s.iterations;
        }
        // With several numbers of passes on file, the most passes.
        if let Some(a) = alone
            .iter()
            .filter(|a| a.dataset == format!("celeba:{}", cell.attribute) && a.labels == 100)
            .max_by_key(|a| a.epochs)
        {
            cell.labels_only_semi = Some(a.error.mean);
            cell.runs_labels_only = a.seeds;
        }
    }
    Ok(cells)
}

/// A column of Table 3 averaged over the attributes, as Table 2 does.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMean {
    /// The mean, once all 40 attributes have runs of the same length (else `None`): a mean
    /// over runs of 10 and of 15 EM iterations would be neither's. With seeds that ran all 40,
    /// the mean of their means, so that a seed still under way leaves the cell as it was.
    pub mean: Option<f64>,
    /// Attributes with runs.
    pub attributes: usize,
    /// The fewest and the most EM iterations among them.
    pub iterations: (usize, usize),
    /// Attributes whose runs reached the most.
    pub longest: usize,
    /// The fewest and the most EM iterations among the others.
    pub shorter: (usize, usize),
    /// With a mean, each seed whose runs of this length cover all 40 attributes, with its own
    /// mean over them: Table 2's cell is one draw per seed, and two or more give its spread.
    pub seeds: Vec<(u64, f64)>,
}

impl ColumnMean {
    /// The sample standard deviation of the per-seed means, from two seeds on.
    pub fn seed_std(&self) -> Option<f64> {
        let means: Vec<f64> = self.seeds.iter().map(|s| s.1).collect();
        ganem_core::summary::Stats::of(&means)
            .filter(|_| means.len() > 1)
            .map(|s| s.std)
    }

    /// Why there is no mean yet, or the mean.
    fn describe(&self, what: &str) -> String {
        match self.mean {
            Some(m) if self.seeds.len() > 1 => format!(
                "{what} {} (seeds {}: {})",
                super::percent(m, self.seed_std()),
                self.seeds
                    .iter()
                    .map(|(seed, _)| seed.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.seeds
                    .iter()
                    .map(|(_, mean)| format!("{mean:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(m) => format!("{what} {m:.2}"),
            None if self.attributes < ATTRIBUTES.len() => format!(
                "{what}: *missing* ({} of 40 attributes run)",
                self.attributes
            ),
            None => format!(
                "{what}: *missing* (40 attributes run, {} of them to {} EM iterations, the \
                 others to {})",
                self.longest,
                self.iterations.1,
                match self.shorter {
                    (fewest, most) if fewest == most => fewest.to_string(),
                    (fewest, most) => format!("{fewest}-{most}"),
                }
            ),
        }
    }
}

/// Table 2's GAN-EM row: the mean over the attributes, of ours unsupervised and with 100
/// labels ([`ColumnMean`]); `runs` (`results/celeba_attributes.csv`) give each seed's own.
pub fn averages(cells: &[AttributeCell], runs: &[AttributeRow]) -> [ColumnMean; 2] {
    let mut columns = [
        mean_over_attributes(cells, |c| {
            c.our_unsupervised.map(|e| (e, c.iterations_unsupervised))
        }),
        mean_over_attributes(cells, |c| c.our_semi.map(|e| (e, c.iterations_semi))),
    ];
    for (column, semi) in columns.iter_mut().zip([false, true]) {
        if column.mean.is_none() {
            continue;
        }
        let Some(profile) = cells.first().map(|c| {
            if semi {
                &c.semi_profile
            } else {
                &c.unsupervised_profile
            }
        }) else {
            continue;
        };
        column.seeds = seed_means(runs, profile, semi, column.iterations.0);
        let means: Vec<f64> = column.seeds.iter().map(|s| s.1).collect();
        if let Some(stats) = ganem_core::summary::Stats::of(&means) {
            column.mean = Some(stats.mean);
        }
    }
    columns
}

/// Each seed with runs of `profile`, the setting and `iterations` EM iterations for all 40
/// attributes, with the mean of their errors (percent), in the order of the seeds.
fn seed_means(
    runs: &[AttributeRow],
    profile: &str,
    semi: bool,
    iterations: usize,
) -> Vec<(u64, f64)> {
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
        .into_iter()
        .filter_map(|seed| {
            let errors: Vec<f64> = ATTRIBUTES
                .iter()
                .filter_map(|&attribute| {
                    runs.iter()
                        .find(|r| {
                            r.seed == seed
                                && r.attribute == attribute
                                && r.profile == profile
                                && (r.labels > 0) == semi
                                && r.iterations == iterations
                        })
                        .map(|r| 100.0 * r.test_error)
                })
                .collect();
            (errors.len() == ATTRIBUTES.len())
                .then(|| (seed, errors.iter().sum::<f64>() / errors.len() as f64))
        })
        .collect()
}

/// The mean of `value` (error, EM iterations) over the attributes.
fn mean_over_attributes(
    cells: &[AttributeCell],
    value: impl Fn(&AttributeCell) -> Option<(f64, usize)>,
) -> ColumnMean {
    let values: Vec<(f64, usize)> = cells
        .iter()
        .filter(|c| !c.attribute.is_empty())
        .filter_map(value)
        .collect();
    let fewest = values.iter().map(|v| v.1).min().unwrap_or(0);
    let most = values.iter().map(|v| v.1).max().unwrap_or(0);
    let complete = values.len() == ATTRIBUTES.len() && fewest == most;
    ColumnMean {
        mean: complete.then(|| values.iter().map(|v| v.0).sum::<f64>() / values.len() as f64),
        attributes: values.len(),
        iterations: (fewest, most),
        longest: values.iter().filter(|v| v.1 == most).count(),
        shorter: (
            fewest,
            values
                .iter()
                .map(|v| v.1)
                .filter(|&i| i < most)
                .max()
                .unwrap_or(fewest),
        ),
        seeds: Vec::new(),
    }
}

/// Runs that ended collapsed over all attributes: unsupervised, then with 100 labels.
fn collapsed_totals(cells: &[AttributeCell]) -> [usize; 2] {
    [
        cells.iter().map(|c| c.collapsed_unsupervised).sum(),
        cells.iter().map(|c| c.collapsed_semi).sum(),
    ]
}

/// The cells of the paper's Table 2: (method, column, error in percent).
fn read_table2(paper_table2: &Path) -> Result<Vec<(String, String, f64)>> {
    let df = read_csv(paper_table2)?;
    let rows = required(texts(&df, "row")?, "row", paper_table2)?;
    let columns = required(texts(&df, "column")?, "column", paper_table2)?;
    let errors = required(
        numbers(&df, "error_percent")?,
        "error_percent",
        paper_table2,
    )?;
    Ok(rows
        .into_iter()
        .zip(columns)
        .zip(errors)
        .map(|((row, column), error)| (row, column, error))
        .collect())
}

/// The rows of `results/celeba_comparison.csv`: every attribute of [`table3`], then the mean
/// over the attributes (the paper's from its Table 2 GAN-EM row; ours only once all 40
/// attributes have runs, with how many do in the `runs_*` columns).
pub fn comparison(
    paper_table2: &Path,
    cells: &[AttributeCell],
    runs: &[AttributeRow],
) -> Result<Vec<AttributeCell>> {
    let table2 = read_table2(paper_table2)?;
    let paper = |column: &str| {
        table2
            .iter()
            .find(|(row, c, _)| row == "GAN-EM" && c == column)
            .map(|&(_, _, error)| error)
    };
    let [unsupervised, semi] = averages(cells, runs);
    let alone = mean_over_attributes(cells, |c| c.labels_only_semi.map(|e| (e, 0)));
    let [collapsed_unsupervised, collapsed_semi] = collapsed_totals(cells);
    let mut rows = cells.to_vec();
    rows.push(AttributeCell {
        printed: "mean over the 40 attributes (Table 2)".into(),
        attribute: String::new(),
        paper_unsupervised: paper("CelebA (unsupervised)"),
        paper_semi: paper("CelebA (100 labels)"),
        our_unsupervised: unsupervised.mean,
        our_unsupervised_std: unsupervised.seed_std(),
        runs_unsupervised: unsupervised.attributes,
        collapsed_unsupervised,
        iterations_unsupervised: unsupervised.iterations.0,
        our_semi: semi.mean,
        our_semi_std: semi.seed_std(),
        runs_semi: semi.attributes,
        collapsed_semi,
        iterations_semi: semi.iterations.0,
        labels_only_semi: alone.mean,
        runs_labels_only: alone.attributes,
        unsupervised_profile: cells
            .first()
            .map(|c| c.unsupervised_profile.clone())
            .unwrap_or_default(),
        semi_profile: cells
            .first()
            .map(|c| c.semi_profile.clone())
            .unwrap_or_default(),
    });
    Ok(rows)
}

/// Tables 2 and 3 in Markdown.
pub fn markdown(
    paper_table2: &Path,
    cells: &[AttributeCell],
    runs: &[AttributeRow],
    profiles: &CelebaProfiles,
) -> Result<String> {
    let profile = profiles.describe();
    let table2 = read_table2(paper_table2)?;
    let [unsupervised, semi] = averages(cells, runs);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Tables 2 and 3: CelebA's 40 attributes, the paper beside this project\n\n\
         Generated by `report table2` from `results/paper/table2_celeba.csv`, \
         `results/paper/table3_celeba_attributes.csv` and our `results/celeba_summary.csv` \
         and `results/celeba_attributes.csv` (profile {profile}). Errors in percent; ours are \
         means over seeds (Table 2: the mean over the seeds that ran all 40 attributes of \
         each one's mean, ± their spread; Table 3: every run of the attribute, a seed still \
         under way included); *missing* means no finished run. \
         Our faces are a 15,723-face subset of CelebA balanced per attribute \
         (docs/deviations.md), not the paper's selection from 200k faces.\n"
    );
    let _ = writeln!(md, "## Table 2: mean error over the attributes\n");
    let _ = writeln!(
        md,
        "| Method | unsupervised | semi-supervised (100 labels) |\n|---|---|---|"
    );
    let mut methods: Vec<&str> = Vec::new();
    for (r, _, _) in &table2 {
        if !methods.contains(&r.as_str()) {
            methods.push(r);
        }
    }
    for method in methods {
        let cell = |column: &str| {
            table2
                .iter()
                .find(|(r, c, _)| r == method && c == column)
                .map_or("-".to_string(), |(_, _, error)| format!("{error:.2}"))
        };
        let mut line = format!(
            "| {method} | {} | {} |",
            cell("CelebA (unsupervised)"),
            cell("CelebA (100 labels)")
        );
        if method == "GAN-EM" {
            let ours = |column: &ColumnMean, collapsed: usize| {
                let mut text = column.describe("ours");
                if column.mean.is_some() {
                    text = format!("**{text}**");
                }
                if collapsed > 0 {
                    let _ = write!(text, " ({collapsed} collapsed)");
                }
                text
            };
            let [collapsed_unsupervised, collapsed_semi] = collapsed_totals(cells);
            line = format!(
                "| GAN-EM | {}<br>{} | {}<br>{} |",
                cell("CelebA (unsupervised)"),
                ours(&unsupervised, collapsed_unsupervised),
                cell("CelebA (100 labels)"),
                ours(&semi, collapsed_semi)
            );
        }
        let _ = writeln!(md, "{line}");
    }
    let alone = mean_over_attributes(cells, |c| c.labels_only_semi.map(|e| (e, 0)));
    let alone = if alone.attributes == 0 {
        "ours: *missing* (`celeba --labels 100 --labels-only 200`)".into()
    } else {
        alone.describe("ours")
    };
    let _ = writeln!(
        md,
        "| E-net on the 100 labels alone (not in the paper) | - | {alone} |"
    );
    let _ = writeln!(md, "\n## Table 3: GAN-EM per attribute\n");
    let _ = writeln!(
        md,
        "The last column is the E-net trained on the same 100 labelled faces alone (`celeba \
         --labels-only`, the most passes on file), scored on the same held-out faces: what GAN-EM's generated \
         faces add to.\n"
    );
    let _ = writeln!(
        md,
        "| Attribute (as printed) | Paper, unsupervised | Ours, unsupervised | Paper, 100 labels | Ours, 100 labels | Ours, 100 labels alone |\n|---|---|---|---|---|---|"
    );
    // Where a column mixes run lengths (a sweep being extended), each cell says its own.
    let show = |v: Option<f64>,
                std: Option<f64>,
                runs: usize,
                collapsed: usize,
                iterations: usize,
                column: &ColumnMean| match v {
        Some(v) => format!(
            "{} ({runs} run{}{}{})",
            super::percent(v, std.filter(|_| runs > 1)),
            if runs == 1 { "" } else { "s" },
            if column.iterations.0 == column.iterations.1 {
                String::new()
            } else {
                format!(", {iterations} EM iterations")
            },
            match collapsed {
                0 => String::new(),
                c if c == runs => ", collapsed".into(),
                c => format!(", {c} collapsed"),
            }
        ),
        None => "*missing*".into(),
    };
    for c in cells {
        let paper = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.printed,
            paper(c.paper_unsupervised),
            if c.attribute.is_empty() {
                "- (which attribute?)".into()
            } else {
                show(
                    c.our_unsupervised,
                    c.our_unsupervised_std,
                    c.runs_unsupervised,
                    c.collapsed_unsupervised,
                    c.iterations_unsupervised,
                    &unsupervised,
                )
            },
            paper(c.paper_semi),
            if c.attribute.is_empty() {
                "-".into()
            } else {
                show(
                    c.our_semi,
                    c.our_semi_std,
                    c.runs_semi,
                    c.collapsed_semi,
                    c.iterations_semi,
                    &semi,
                )
            },
            match c.labels_only_semi {
                Some(v) if !c.attribute.is_empty() => format!(
                    "{v:.2} ({} run{})",
                    c.runs_labels_only,
                    if c.runs_labels_only == 1 { "" } else { "s" }
                ),
                _ => "-".into(),
            },
        );
    }
    Ok(md)
}

/// Per attribute, the paper's error and ours for one setting, as grouped bars.
pub fn figure(
    cells: &[AttributeCell],
    semi: bool,
    path: &Path,
    profiles: &CelebaProfiles,
) -> Result<()> {
    let profile = profiles.of(semi);
    let groups: Vec<plots::BarGroup> = cells
        .iter()
        .filter(|c| !c.attribute.is_empty())
        .map(|c| {
            let (paper, ours, std, runs) = if semi {
                (c.paper_semi, c.our_semi, c.our_semi_std, c.runs_semi)
            } else {
                (
                    c.paper_unsupervised,
                    c.our_unsupervised,
                    c.our_unsupervised_std,
                    c.runs_unsupervised,
                )
            };
            plots::BarGroup {
                name: c.attribute.clone(),
                bars: vec![
                    paper.map(|p| (p, None)),
                    ours.map(|o| (o, std.filter(|_| runs > 1))),
                ],
            }
        })
        .collect();
    let setting = if semi {
        "100 labels"
    } else {
        "unsupervised, K = 2"
    };
    plots::grouped_bars(
        path,
        &format!(
            "Table 3, CelebA {setting}: error (%) per attribute, the paper vs ours ({profile})"
        ),
        "error (%)",
        &["paper".to_string(), format!("ours ({profile})")],
        &groups,
    )
    .with_context(|| format!("the {setting} figure"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::SummaryRow;

    #[test]
    fn attributes_take_their_runs_and_the_average_waits_for_all_forty() {
        let dir = std::env::temp_dir().join(format!("ganem-celeba-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |attribute: &str, labels: usize, error: f64| {
            SummaryRow::example(&format!("celeba:{attribute}"), labels, 2, 3, error)
        };
        let paper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/paper");
        let table = paper.join("table3_celeba_attributes.csv");
        let mut lines = vec![line("Eyeglasses", 0, 0.4), line("Wearing_Hat", 100, 0.2)];
        lines[1].collapsed = 3;
        crate::report::write_rows(&dir.join("celeba_summary.csv"), &lines).unwrap();
        // The labels-only baseline: its most passes, over seeds; other profiles left out.
        let alone = |profile: &str, seed, epochs, test_error| crate::labels_only::LabelsOnlyRow {
            dataset: "celeba:Eyeglasses".into(),
            labels: 100,
            profile: profile.into(),
            seed,
            epochs,
            test_error,
            labelled_error: 0.0,
            seconds: 1.0,
            protocol: "held-out fifth".into(),
        };
        let baseline = [
            alone("fast", 1, 200, 0.3),
            alone("fast", 2, 200, 0.2),
            alone("fast", 1, 50, 0.45),
            alone("ci", 1, 200, 0.1),
        ];
        crate::report::write_rows(&dir.join("celeba_labels_only.csv"), &baseline).unwrap();
        let fast = CelebaProfiles::same("fast");
        let markdown_of = |cells: &[AttributeCell]| {
            markdown(&paper.join("table2_celeba.csv"), cells, &[], &fast).unwrap()
        };
        let cells = table3(&table, &dir, &fast).unwrap();
        assert_eq!(cells.len(), 41, "the paper's 40 rows and Smiling");
        let glass = cells.iter().find(|c| c.printed == "glass").unwrap();
        assert_eq!(
            (glass.our_unsupervised, glass.runs_unsupervised),
            (Some(40.0), 3)
        );
        assert_eq!(glass.our_semi, None);
        assert_eq!(glass.runs_labels_only, 2);
        assert!((glass.labels_only_semi.unwrap() - 25.0).abs() < 1e-9);
        assert!((glass.paper_unsupervised.unwrap() - 29.83).abs() < 1e-9);
        assert_eq!(
            averages(&cells, &[]).map(|c| (c.mean, c.attributes)),
            [(None, 1), (None, 1)]
        );
        let md = markdown_of(&cells);
        assert!(
            md.contains("ours: *missing* (1 of 40 attributes run) |"),
            "{md}"
        );
        assert!(md.contains("| 25.00 (2 runs) |"), "{md}");
        assert!(md.contains("alone (not in the paper) | - | ours: *missing* (1 of 40"));
        // Collapsed runs are named beside their attribute and in the mean's cell.
        assert!(md.contains("| 20.00 ± 1.00 (3 runs, collapsed) |"), "{md}");
        assert!(
            md.contains("ours: *missing* (1 of 40 attributes run) (3 collapsed) |"),
            "{md}"
        );
        // With every attribute run, the average is their mean.
        lines = ganem_core::data::celeba::ATTRIBUTES
            .iter()
            .map(|a| line(a, 0, if *a == "Bald" { 0.2 } else { 0.4 }))
            .collect();
        crate::report::write_rows(&dir.join("celeba_summary.csv"), &lines).unwrap();
        let cells = table3(&table, &dir, &fast).unwrap();
        let ColumnMean {
            mean,
            attributes: n,
            ..
        } = averages(&cells, &[])[0].clone();
        assert_eq!(n, 40);
        assert!((mean.unwrap() - (39.0 * 40.0 + 20.0) / 40.0).abs() < 1e-9);
        // The comparison file ends with the means: the paper's Table 2 row beside ours.
        let rows = comparison(&paper.join("table2_celeba.csv"), &cells, &[]).unwrap();
        assert_eq!(rows.len(), cells.len() + 1);
        let mean_row = rows.last().unwrap();
        assert_eq!(mean_row.paper_unsupervised, Some(42.09));
        assert_eq!(mean_row.paper_semi, Some(28.82));
        assert_eq!(
            (mean_row.our_unsupervised, mean_row.runs_unsupervised),
            (mean, 40)
        );
        assert_eq!((mean_row.our_semi, mean_row.runs_semi), (None, 0));
        assert_eq!(mean_row.our_unsupervised_std, None);
        // Each seed that ran all 40 attributes (at the column's length, of its profile) has
        // its own mean; two or more give Table 2's cell a spread.
        let run = |attribute: &str, seed, error, iterations, profile: &str| AttributeRow {
            attribute: attribute.into(),
            setting: "unsupervised".into(),
            labels: 0,
            test_error: error,
            nmi: 0.0,
            ari: 0.0,
            n_train: 100,
            n_held_out: 25,
            purity: 0.8,
            status: RunStatus::Ok,
            iterations,
            seconds: 1.0,
            profile: profile.into(),
            profile_hash: "0".into(),
            seed,
        };
        let mut runs: Vec<AttributeRow> = ATTRIBUTES
            .iter()
            .flat_map(|a| [run(a, 1, 0.40, 20, "fast"), run(a, 2, 0.44, 20, "fast")])
            .collect();
        runs.push(run("Bald", 3, 0.1, 20, "fast"));
        runs.extend(ATTRIBUTES.iter().map(|a| run(a, 4, 0.1, 20, "ci")));
        runs.extend(ATTRIBUTES.iter().map(|a| run(a, 5, 0.1, 10, "fast")));
        let column = averages(&cells, &runs)[0].clone();
        assert_eq!(column.seeds.len(), 2, "{:?}", column.seeds);
        assert_eq!(column.seeds[0].0, 1);
        assert!((column.seeds[1].1 - 44.0).abs() < 1e-9);
        assert!((column.seed_std().unwrap() - 8.0_f64.sqrt()).abs() < 1e-9);
        let mean_row = comparison(&paper.join("table2_celeba.csv"), &cells, &runs)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(mean_row.our_unsupervised_std, column.seed_std());
        assert_eq!(mean_row.our_unsupervised, column.mean);
        let md = markdown(&paper.join("table2_celeba.csv"), &cells, &runs, &fast).unwrap();
        // Table 2's cell is over the seeds that ran all 40: seed 3's one run leaves it out.
        assert!((column.mean.unwrap() - 42.0).abs() < 1e-9);
        assert!(
            md.contains("ours 42.00 ± 2.83 (seeds 1, 2: 40.00, 44.00)"),
            "{md}"
        );
        // A sweep being extended to more EM iterations: no mean until every attribute has
        // them, and each cell names its length.
        let mut longer = lines.clone();
        longer[0].iterations = 30;
        crate::report::write_rows(&dir.join("celeba_summary.csv"), &longer).unwrap();
        let cells = table3(&table, &dir, &fast).unwrap();
        let column = averages(&cells, &[])[0].clone();
        assert_eq!(
            (
                column.mean,
                column.attributes,
                column.iterations,
                column.longest
            ),
            (None, 40, (20, 30), 1)
        );
        let md = markdown_of(&cells);
        assert!(
            md.contains("ours: *missing* (40 attributes run, 1 of them to 30 EM iterations, the others to 20)"),
            "{md}"
        );
        assert!(
            md.contains("| 40.00 ± 1.00 (3 runs, 30 EM iterations) |"),
            "{md}"
        );
        assert!(
            md.contains("| 40.00 ± 1.00 (3 runs, 20 EM iterations) |"),
            "{md}"
        );
        // The 100-label column may come from a variant of the profile; the baseline stays.
        let mut variant = line("Eyeglasses", 100, 0.15);
        variant.profile = "fast[semi.warm_start_epochs=200]".into();
        lines.push(variant);
        crate::report::write_rows(&dir.join("celeba_summary.csv"), &lines).unwrap();
        let glass = |profiles: &CelebaProfiles| {
            let cells = table3(&table, &dir, profiles).unwrap();
            let cell = cells.into_iter().find(|c| c.printed == "glass").unwrap();
            (cell.our_unsupervised, cell.our_semi, cell.runs_labels_only)
        };
        assert_eq!(glass(&fast), (Some(40.0), None, 2));
        let profiles = CelebaProfiles {
            unsupervised: "fast".into(),
            semi: "fast[semi.warm_start_epochs=200]".into(),
        };
        assert_eq!(glass(&profiles), (Some(40.0), Some(15.0), 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
