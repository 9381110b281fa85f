//! The library's error type: every failure names the file, value or setting at fault.

use std::path::PathBuf;

/// Errors from loading data, reading configurations and checkpoints, and training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A data file that exists but cannot be used: wrong magic number, truncated, bad values.
    #[error("{path}: {problem}")]
    BadFile { path: PathBuf, problem: String },
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// Training produced a loss that is not finite or whose magnitude passed the limit.
    #[error(
        "the run diverged in EM iteration {iteration}: {loss} = {value} (limit: finite, |loss| <= {limit})"
    )]
    Diverged {
        iteration: usize,
        loss: &'static str,
        value: f64,
        limit: f64,
    },
    #[error("could not download {what}: {message}")]
    Download { what: String, message: String },
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
