//! Clustering metrics: the error of Eq. 20, normalised mutual information and adjusted Rand index.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::Serialize;

/// How clusters were mapped to labels for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mapping {
    /// The best one-to-one mapping (Hungarian algorithm), Eq. 20; used when K <= classes.
    OneToOne,
    /// Each cluster to the most frequent label among its members; used when K > classes,
    /// where no one-to-one mapping exists (as AAE, CatGAN and PixelGAN report).
    Majority,
}

impl Mapping {
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::OneToOne => "one_to_one",
            Mapping::Majority => "majority",
        }
    }
}

/// Scores of one clustering against ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClusteringScores {
    /// Fraction of samples whose mapped cluster differs from their label, in [0, 1].
    pub error: f64,
    pub nmi: f64,
    pub ari: f64,
    pub mapping: Mapping,
}

/// Counts `table[cluster][label]`.
fn contingency(clusters: &[usize], labels: &[usize], k: usize, classes: usize) -> Vec<Vec<u64>> {
    let mut table = vec![vec![0u64; classes]; k];
    for (&c, &l) in clusters.iter().zip(labels) {
        table[c][l] += 1;
    }
    table
}

/// Scores `clusters` (values in `0..k`) against `labels` (values in `0..classes`).
///
/// Panics if the slices differ in length or hold values out of range: callers build both.
pub fn score(clusters: &[usize], labels: &[usize], k: usize, classes: usize) -> ClusteringScores {
    assert_eq!(clusters.len(), labels.len(), "one cluster per label");
    let table = contingency(clusters, labels, k, classes);
    let n = clusters.len() as f64;
    let (correct, mapping) = if k <= classes {
        let weights = Matrix::from_rows(
            table
                .iter()
                .map(|row| row.iter().map(|&c| c as i64).collect::<Vec<_>>()),
        )
        .expect("rectangular contingency table");
        let (total, _) = kuhn_munkres(&weights);
        (total as f64, Mapping::OneToOne)
    } else {
        let majority: u64 = table
            .iter()
            .map(|row| row.iter().copied().max().unwrap_or(0))
            .sum();
        (majority as f64, Mapping::Majority)
    };
    ClusteringScores {
        error: if n > 0.0 { 1.0 - correct / n } else { 0.0 },
        nmi: nmi(&table, n),
        ari: ari(&table, n),
        mapping,
    }
}

fn entropy(counts: impl Iterator<Item = u64>, n: f64) -> f64 {
    counts
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

fn marginals(table: &[Vec<u64>]) -> (Vec<u64>, Vec<u64>) {
    let rows = table.iter().map(|r| r.iter().sum()).collect();
    let classes = table.first().map_or(0, Vec::len);
    let cols = (0..classes)
        .map(|j| table.iter().map(|r| r[j]).sum())
        .collect();
    (rows, cols)
}

/// NMI with the arithmetic-mean normalisation (scikit-learn's default).
fn nmi(table: &[Vec<u64>], n: f64) -> f64 {
    let (rows, cols) = marginals(table);
    let (h_rows, h_cols) = (
        entropy(rows.iter().copied(), n),
        entropy(cols.iter().copied(), n),
    );
    let mut mutual = 0.0;
    for (i, row) in table.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            if c > 0 {
                let c = c as f64;
                mutual += c / n * (c * n / (rows[i] as f64 * cols[j] as f64)).ln();
            }
        }
    }
    let denom = (h_rows + h_cols) / 2.0;
    if denom <= 0.0 {
        1.0
    } else {
        (mutual / denom).clamp(0.0, 1.0)
    }
}

fn pairs(c: u64) -> f64 {
    let c = c as f64;
    c * (c - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert and Arabie).
fn ari(table: &[Vec<u64>], n: f64) -> f64 {
    let (rows, cols) = marginals(table);
    let index: f64 = table.iter().flatten().map(|&c| pairs(c)).sum();
    let sum_rows: f64 = rows.iter().map(|&c| pairs(c)).sum();
    let sum_cols: f64 = cols.iter().map(|&c| pairs(c)).sum();
    let total = n * (n - 1.0) / 2.0;
    let expected = sum_rows * sum_cols / total;
    let max = (sum_rows + sum_cols) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

/// The fraction of `predicted` classes that differ from `labels`: the error of a classifier
/// whose class c means label c (semi-supervised runs; no mapping is searched).
pub fn classification_error(predicted: &[usize], labels: &[usize]) -> f64 {
    assert_eq!(predicted.len(), labels.len(), "one prediction per label");
    let wrong = predicted.iter().zip(labels).filter(|(p, l)| p != l).count();
    wrong as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_clustering_under_relabelling_scores_zero_error() {
        let labels = [0, 0, 1, 1, 2, 2, 2];
        let clusters = [2, 2, 0, 0, 1, 1, 1];
        let s = score(&clusters, &labels, 3, 3);
        assert_eq!(s.error, 0.0);
        assert!((s.nmi - 1.0).abs() < 1e-12);
        assert!((s.ari - 1.0).abs() < 1e-12);
        assert_eq!(s.mapping, Mapping::OneToOne);
    }

    #[test]
    fn constructed_confusion_matrix_gives_its_known_error() {
        // Contingency (cluster x label): [[5, 1], [4, 0]]. Greedy majority would map both
        // clusters to label 0 (9 correct); the best one-to-one mapping is c0->1, c1->0 or
        // c0->0, c1->1: max(5 + 0, 1 + 4) = 5 correct of 10, error 0.5.
        let mut clusters = vec![0; 6];
        clusters.extend([1; 4]);
        let mut labels = vec![0; 5];
        labels.push(1);
        labels.extend([0; 4]);
        let s = score(&clusters, &labels, 2, 2);
        assert!((s.error - 0.5).abs() < 1e-12, "{}", s.error);
    }

    #[test]
    fn more_clusters_than_labels_use_the_majority_label() {
        // K = 4 clusters over 2 labels: clusters 0,1 mostly label 0; 2,3 mostly label 1.
        let clusters = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3];
        let labels = [0, 0, 1, 0, 0, 1, 1, 0, 1, 1];
        let s = score(&clusters, &labels, 4, 2);
        assert_eq!(s.mapping, Mapping::Majority);
        assert!((s.error - 0.2).abs() < 1e-12);
    }

    #[test]
    fn nmi_and_ari_match_known_values() {
        // scikit-learn: normalized_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.8,
        // adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714.
        let s = score(&[0, 0, 1, 2], &[0, 0, 1, 1], 3, 2);
        assert!((s.nmi - 0.8).abs() < 1e-9, "{}", s.nmi);
        assert!((s.ari - 4.0 / 7.0).abs() < 1e-9, "{}", s.ari);
    }

    #[test]
    fn classification_error_counts_mismatches_without_mapping() {
        assert_eq!(classification_error(&[0, 1, 2, 3], &[0, 1, 3, 2]), 0.5);
        // A relabelled perfect clustering is still wrong as a classifier.
        assert_eq!(classification_error(&[1, 0], &[0, 1]), 1.0);
    }
}
