//! Pixel-space baselines of Table 1 (rows K-means and GMM), measured on MNIST.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use experiments::{read_rows, CsvOut};
use ganem_core::baselines::{self, Method};
use ganem_core::config::validate;
use ganem_core::data::{self, mnist};
use serde::{Deserialize, Serialize};

/// Cluster MNIST's raw pixels with k-means and a Gaussian mixture (K = 10) and write
/// results/mnist_baselines.csv (errors by the best one-to-one mapping of Eq. 20). Rows of
/// methods not run this time are kept from the existing file.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training images k-means is fitted on (0 = all 60,000).
    #[arg(long, default_value_t = 0)]
    kmeans_fit_on: usize,
    /// Training images the Gaussian mixture is fitted on (0 = all; full 784 x 784
    /// covariances make each EM step cost O(N 784^2)).
    #[arg(long, default_value_t = 5000)]
    gmm_fit_on: usize,
    /// Added to the diagonal of each Gaussian's covariance (pixel values are in [0, 1]).
    #[arg(long, default_value_t = 0.1)]
    gmm_reg_covariance: f64,
    /// Which methods to run.
    #[arg(long, value_delimiter = ',', default_value = "k-means,gmm")]
    methods: Vec<String>,
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Folder holding MNIST (see mnist-cluster --help).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Row {
    method: String,
    k: usize,
    fitted_on: usize,
    error: f64,
    nmi: f64,
    ari: f64,
    train_error: f64,
    seconds: f64,
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate::positive("--gmm-reg-covariance", args.gmm_reg_covariance)
        .map_err(|m| anyhow::anyhow!("invalid setting: {m}"))?;
    let methods = args
        .methods
        .iter()
        .map(|m| match m.as_str() {
            "k-means" | "kmeans" => Ok((Method::KMeans, args.kmeans_fit_on)),
            "gmm" => Ok((
                Method::GaussianMixture {
                    reg_covariance: args.gmm_reg_covariance,
                },
                args.gmm_fit_on,
            )),
            other => anyhow::bail!("unknown method '{other}': use k-means or gmm"),
        })
        .collect::<Result<Vec<_>>>()?;
    let location = data::locate(args.data_dir.as_deref());
    let splits = mnist::load(&location, &candle_core::Device::Cpu)
        .with_context(|| format!("loading MNIST from {location}"))?;
    let n = splits.train.len();
    anyhow::ensure!(
        (2..=n).contains(&args.k),
        "--k {} is out of range: K must be in [2, {n}] (the number of training images)",
        args.k
    );
    for (name, fit_on) in [
        ("--kmeans-fit-on", args.kmeans_fit_on),
        ("--gmm-fit-on", args.gmm_fit_on),
    ] {
        validate::subset(name, fit_on, n).map_err(|m| anyhow::anyhow!("invalid setting: {m}"))?;
    }
    let csv_path = args.out.join("mnist_baselines.csv");
    let mut rows: Vec<Row> = if csv_path.exists() {
        read_rows(&csv_path)?
    } else {
        Vec::new()
    };
    let mut failed = Vec::new();
    for (method, fit_on) in methods {
        println!("{}: fitting ...", method.name());
        let (train, test) = (&splits.train, &splits.test);
        let r = match baselines::run(method, train, test, args.k, fit_on, args.seed) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: failed: {e}", method.name());
                failed.push(method.name());
                continue;
            }
        };
        println!(
            "{}: test error {:.4}, NMI {:.3}, ARI {:.3}; train error {:.4}; {:.0} s",
            method.name(),
            r.test.error,
            r.test.nmi,
            r.test.ari,
            r.train.error,
            r.seconds
        );
        rows.retain(|row| row.method != method.name());
        rows.push(Row {
            method: method.name().to_string(),
            k: args.k,
            fitted_on: r.fitted_on,
            error: r.test.error,
            nmi: r.test.nmi,
            ari: r.test.ari,
            train_error: r.train.error,
            seconds: r.seconds,
            seed: args.seed,
        });
    }
    // Methods that failed this time keep their earlier rows.
    let mut csv = CsvOut::create(&csv_path)?;
    for row in &rows {
        csv.row(row)?;
    }
    println!("wrote {}", csv.finish()?.display());
    anyhow::ensure!(failed.is_empty(), "no result for: {}", failed.join(", "));
    Ok(())
}
