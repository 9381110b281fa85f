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
/// reproduce table1` runs the experiments first.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Which table.
    #[arg(value_enum)]
    table: Table,
    /// The profile whose runs fill our cells.
    #[arg(long, default_value = "fast")]
    profile: String,
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
    /// CelebA attributes, unsupervised.
    Table2,
    /// CelebA attributes, 100 labels.
    Table3,
    /// Every table that has runs.
    All,
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.table {
        Table::Table1 | Table::All => table1(&args)?,
        Table::Table2 | Table::Table3 => anyhow::bail!(
            "Tables 2 and 3 (CelebA) have no experiment yet: the CelebA work is still to be done"
        ),
    }
    if matches!(args.table, Table::All) {
        println!("Tables 2 and 3 (CelebA): no experiment yet, skipped");
    }
    Ok(())
}

fn table1(args: &Args) -> Result<()> {
    let paper = report::read_paper(&args.paper.join("table1_mnist_svhn.csv"))?;
    let cells = report::table1(&paper, &args.results, &args.profile)?;
    let csv = args.results.join("table1.csv");
    report::write_rows(&csv, &cells)?;
    let md = args.reports.join("table1.md");
    experiments::runs::write_atomically(
        &md,
        report::table1_markdown(&paper, &cells, &args.profile).as_bytes(),
    )?;
    let figures = args.reports.join("figures");
    let figure = figures.join("table1.png");
    report::table1_figure(&cells, &figure, &args.profile)?;
    let curves = report::learning_curves(&args.results, &figures, &args.profile)?;
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
