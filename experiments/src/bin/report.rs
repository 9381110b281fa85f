//! The paper's tables with our numbers beside every cell: `report table1`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use experiments::report;

/// Put our runs beside the paper's numbers, cell by cell.
///
/// For Table 1 it reads the paper's numbers (results/paper/table1_mnist_svhn.csv), our run
/// summaries of one profile (results/mnist_cluster_summary.csv, results/semi_summary.csv) and
/// our pixel baselines (results/mnist_baselines.csv), and writes results/table1.csv (our cell,
/// the paper's, the difference, runs and profile), reports/table1.md (the paper's table with
/// ours under each cell, and a reading of the gaps), reports/figures/table1.png (paper vs
/// ours, with standard deviations) and a learning-curve figure per experiment
/// (reports/figures/curves_*.png: test error per EM iteration, a line per seed). A cell
/// without finished runs shows as missing, never as zero. It runs nothing itself: `just
/// reproduce table1` runs the experiments first. Tables 2 and 3 (CelebA) come from
/// results/celeba_summary.csv and the paper's results/paper/table{2,3}_*.csv:
/// results/celeba_comparison.csv (every attribute and the means, ours beside the paper's),
/// reports/table2.md (both tables) and reports/figures/table3_{unsupervised,labels100}.png.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Which table.
    #[arg(value_enum)]
    table: Table,
    /// The profile whose runs fill our cells.
    #[arg(long, default_value = "fast")]
    profile: String,
    /// The profile whose runs fill Table 1's clustering cells, when not --profile (the README's
    /// table: `--profile fast --clustering-profile short-rounds`).
    #[arg(long)]
    clustering_profile: Option<String>,
    /// The profile whose runs fill Tables 2 and 3's 100-label column, when not --profile: a
    /// variant such as `fast[semi.warm_start_epochs=200]` (as `celeba --set` files it). The
    /// unsupervised column and the labels-only baseline stay with --profile.
    #[arg(long)]
    semi_profile: Option<String>,
    /// Folder of our results (run summaries and baselines).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Folder of the paper's numbers.
    #[arg(long, default_value = "results/paper")]
    paper: PathBuf,
    /// Also put Table 1's cells into this file (the README) between the lines
    /// `<!-- table1:begin -->` and `<!-- table1:end -->`.
    #[arg(long)]
    readme: Option<PathBuf>,
    /// Folder for the report and its figures.
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Table {
    /// MNIST clustering and semi-supervised MNIST and SVHN.
    Table1,
    /// CelebA: the mean over the 40 attributes (written with Table 3).
    Table2,
    /// CelebA: every attribute (written with Table 2).
    Table3,
    /// Every table that has runs.
    All,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if matches!(args.table, Table::Table1 | Table::All) {
        table1(&args)?;
    }
    if matches!(args.table, Table::Table2 | Table::Table3 | Table::All) {
        celeba_tables(&args)?;
    }
    Ok(())
}

/// Tables 2 and 3 come from the same runs, so they are written together.
fn celeba_tables(args: &Args) -> Result<()> {
    use report::celeba;
    let profiles = celeba::CelebaProfiles {
        unsupervised: args.profile.clone(),
        semi: args
            .semi_profile
            .clone()
            .unwrap_or_else(|| args.profile.clone()),
    };
    let cells = celeba::table3(
        &args.paper.join("table3_celeba_attributes.csv"),
        &args.results,
        &profiles,
    )?;
    let runs = celeba::read_attribute_rows(&args.results)?;
    let csv = args.results.join("celeba_comparison.csv");
    report::write_rows(
        &csv,
        &celeba::comparison(&args.paper.join("table2_celeba.csv"), &cells, &runs)?,
    )?;
    let md = args.reports.join("table2.md");
    let text = celeba::markdown(
        &args.paper.join("table2_celeba.csv"),
        &cells,
        &runs,
        &profiles,
    )?;
    experiments::runs::write_atomically(&md, text.as_bytes())?;
    let figures = args.reports.join("figures");
    for (semi, name) in [
        (false, "table3_unsupervised.png"),
        (true, "table3_labels100.png"),
    ] {
        celeba::figure(&cells, semi, &figures.join(name), &profiles)?;
    }
    let [unsupervised, semi] = celeba::averages(&cells, &runs);
    println!(
        "wrote {}, {} and figures/table3_*.png; attributes with runs: {} unsupervised, {} with 100 labels",
        csv.display(),
        md.display(),
        unsupervised.attributes,
        semi.attributes
    );
    Ok(())
}

/// The fingerprints of the recipes the two profiles name for Table 1's cells, where they are
/// built-in profiles (a variant such as `fast[semi.x=1]` is found by its name instead).
fn table1_recipes(clustering: &str, semi_supervised: &str) -> Vec<report::CellRecipe> {
    report::RUN_CELLS
        .iter()
        .filter_map(|&(_, summary, dataset, labels)| {
            let (experiment, profile) = if summary == "semi" {
                (format!("semi-supervised/{dataset}"), semi_supervised)
            } else {
                ("mnist-cluster".to_string(), clustering)
            };
            if !experiments::is_builtin(&experiment, profile) {
                return None;
            }
            let labels_of_run = (labels > 0).then_some(labels);
            let loaded =
                experiments::load_profile_for_labels(&experiment, profile, labels_of_run, &[])
                    .ok()?;
            Some(report::CellRecipe {
                summary: summary.into(),
                dataset: dataset.into(),
                labels,
                fingerprint: loaded.profile.fingerprint(),
                iterations: loaded.profile.em.iterations,
            })
        })
        .collect()
}

fn table1(args: &Args) -> Result<()> {
    let paper = report::read_paper(&args.paper.join("table1_mnist_svhn.csv"))?;
    let clustering = args
        .clustering_profile
        .clone()
        .unwrap_or_else(|| args.profile.clone());
    let profiles = report::Table1Profiles {
        recipes: table1_recipes(&clustering, &args.profile),
        clustering,
        semi_supervised: args.profile.clone(),
    };
    let cells = report::table1(&paper, &args.results, &profiles)?;
    let csv = args.results.join("table1.csv");
    report::write_rows(&csv, &cells)?;
    let md = args.reports.join("table1.md");
    experiments::runs::write_atomically(
        &md,
        report::table1_markdown(
            &paper,
            &cells,
            &report::read_labels_only(&args.results.join("semi_labels_only.csv"), &args.profile)?,
            &profiles,
        )
        .as_bytes(),
    )?;
    let figures = args.reports.join("figures");
    let figure = figures.join("table1.png");
    report::table1_figure(&cells, &figure, &profiles)?;
    let curves = report::learning_curves(&args.results, &figures, &profiles)?;
    if let Some(readme) = &args.readme {
        let text = std::fs::read_to_string(readme)
            .with_context(|| format!("reading {}", readme.display()))?;
        let updated =
            report::replace_block(&text, "table1", &report::table1_cells_markdown(&cells))
                .with_context(|| format!("in {}", readme.display()))?;
        experiments::runs::write_atomically(readme, updated.as_bytes())?;
        println!("updated {}", readme.display());
    }
    println!(
        "wrote {}, {}, {}",
        csv.display(),
        md.display(),
        figure.display()
    );
    for path in curves {
        println!("wrote {}", path.display());
    }
    for c in &cells {
        let k = c.k.map(|k| format!(" K={k}")).unwrap_or_default();
        match c.our_error {
            Some(e) => println!(
                "{:<8} {:<22}{k:<6} paper {:>6.2}  ours {:>6.2} ({} runs)",
                c.method, c.column, c.paper_error, e, c.runs
            ),
            None => println!(
                "{:<8} {:<22}{k:<6} paper {:>6.2}  ours missing",
                c.method, c.column, c.paper_error
            ),
        }
    }
    Ok(())
}
