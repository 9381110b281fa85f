//! Two-dimensional maps of learned features for Fig. 4 (Sec. 5.4): Barnes-Hut t-SNE from the
//! `bhtsne` crate, started from a seeded layout so that a seed gives the same map.
//!
//! bhtsne alone is not repeatable: its neighbour tree picks pivots from the thread's own
//! random generator, and its parallel sums add in whatever order rayon's work stealing
//! gives. So the neighbours are found here (exactly, ties broken by index) and the fit
//! runs on a one-thread pool.

use bhtsne::{tSNE, Neighbor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Epochs of early exaggeration at the start of every bhtsne fit.
const EXAGGERATED_EPOCHS: usize = 250;

/// Settings of a t-SNE map; the defaults are those of van der Maaten's reference code.
#[derive(Debug, Clone, PartialEq)]
pub struct TsneSettings {
    pub perplexity: f32,
    /// Barnes-Hut accuracy: 0 would be exact, larger is faster and coarser.
    pub theta: f32,
    pub epochs: usize,
}

impl Default for TsneSettings {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            theta: 0.5,
            epochs: 1000,
        }
    }
}

/// Maps the rows of `features` (row-major, `dim` numbers each) to 2-D points (row-major,
/// two numbers each).
pub fn tsne_2d(
    features: &[f32],
    dim: usize,
    settings: &TsneSettings,
    seed: u64,
) -> Result<Vec<f32>> {
    if dim == 0 || !features.len().is_multiple_of(dim) {
        return Err(Error::Invalid(format!(
            "{} feature values do not make rows of {dim}",
            features.len()
        )));
    }
    let n = features.len() / dim;
    // bhtsne looks up 3 x perplexity neighbours of every point.
    let needed = (3.0 * settings.perplexity).ceil() as usize + 2;
    if n < needed {
        return Err(Error::Invalid(format!(
            "t-SNE with perplexity {} needs at least {needed} points, got {n}",
            settings.perplexity
        )));
    }
    if settings.perplexity <= 0.0 || settings.theta <= 0.0 {
        return Err(Error::Invalid(format!(
            "t-SNE settings out of range: {settings:?}"
        )));
    }
    if settings.epochs <= EXAGGERATED_EPOCHS {
        return Err(Error::Invalid(format!(
            "t-SNE with {} epochs would end inside its first {EXAGGERATED_EPOCHS} (early \
             exaggeration, the map not yet spread out): give it at least 500",
            settings.epochs
        )));
    }
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!(
            "feature {} of row {} is not finite",
            i % dim,
            i / dim
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1e-4).expect("valid normal");
    let start: Vec<f32> = (0..2 * n).map(|_| normal.sample(&mut rng)).collect();
    let rows: Vec<&[f32]> = features.chunks(dim).collect();
    // bhtsne's own choice of neighbour count.
    let neighbours = nearest_neighbours(&rows, ((3.0 * settings.perplexity) as usize).max(1));
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start t-SNE's thread: {e}")))?;
    let map = one_thread.install(|| {
        tSNE::<f32, &[f32], 2>::new(&rows)
            .perplexity(settings.perplexity)
            .epochs(settings.epochs)
            .initial_embedding(start)
            .barnes_hut_with_neighbors(settings.theta, &neighbours)
            .embedding()
    });
    Ok(map)
}

/// The `k` nearest other rows of every row by Euclidean distance, nearest first, equal
/// distances in index order: the same table whatever the thread count.
fn nearest_neighbours(rows: &[&[f32]], k: usize) -> Vec<Vec<Neighbor<f32>>> {
    rows.par_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut by_distance: Vec<(f32, usize)> = rows
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(j, b)| (squared_distance(a, b), j))
                .collect();
            let order =
                |p: &(f32, usize), q: &(f32, usize)| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1));
            by_distance.select_nth_unstable_by(k - 1, order);
            by_distance.truncate(k);
            by_distance.sort_unstable_by(order);
            by_distance
                .into_iter()
                .map(|(squared, index)| Neighbor {
                    index,
                    distance: squared.sqrt(),
                })
                .collect()
        })
        .collect()
}

/// Sum of squared differences in a fixed order of 16 lanes, which the compiler can vectorise
/// (a plain running sum cannot be reordered).
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (a_blocks, b_blocks) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a_blocks.zip(b_blocks) {
        for lane in 0..16 {
            let d = x[lane] - y[lane];
            lanes[lane] += d * d;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well separated blobs in 10-D.
    fn blobs(per_blob: usize) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0f32, 0.3).unwrap();
        let (mut data, mut labels) = (Vec::new(), Vec::new());
        for blob in 0..3 {
            for _ in 0..per_blob {
                for d in 0..10 {
                    let centre = if d == blob { 5.0 } else { 0.0 };
                    data.push(centre + noise.sample(&mut rng));
                }
                labels.push(blob);
            }
        }
        (data, labels)
    }

    #[test]
    fn maps_every_row_to_two_numbers_the_same_way_for_a_seed_keeping_blobs_apart() {
        let (data, labels) = blobs(60);
        let settings = TsneSettings {
            perplexity: 10.0,
            epochs: 300,
            ..TsneSettings::default()
        };
        let map = tsne_2d(&data, 10, &settings, 5).unwrap();
        assert_eq!(map.len(), 2 * labels.len());
        // The same map whatever the threads, with the tests beside it competing for them.
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(
                map,
                pool.install(|| tsne_2d(&data, 10, &settings, 5).unwrap())
            );
        }
        assert_ne!(map, tsne_2d(&data, 10, &settings, 6).unwrap());
        // k-means on the map finds the blobs.
        let points = ndarray::Array2::from_shape_vec(
            (labels.len(), 2),
            map.iter().map(|&v| v as f64).collect(),
        )
        .unwrap();
        let clusters = crate::baselines::kmeans(points, 3, 1).unwrap();
        let scores = crate::metrics::score(&clusters, &labels, 3, 3);
        assert!(scores.error < 0.02, "{scores:?}");
    }

    #[test]
    fn neighbours_are_the_nearest_others_nearest_first_ties_by_index() {
        // Points on a line: 0, 1, 1, 3, 7 (rows 1 and 2 coincide), 37 dimensions for the tail.
        let rows: Vec<Vec<f32>> = [0.0f32, 1.0, 1.0, 3.0, 7.0]
            .iter()
            .map(|&x| (0..37).map(|d| if d == 20 { x } else { 0.25 }).collect())
            .collect();
        let views: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let table = nearest_neighbours(&views, 3);
        let of = |i: usize| -> Vec<(usize, f32)> {
            table[i].iter().map(|n| (n.index, n.distance)).collect()
        };
        assert_eq!(of(0), vec![(1, 1.0), (2, 1.0), (3, 3.0)]);
        assert_eq!(of(1), vec![(2, 0.0), (0, 1.0), (3, 2.0)]);
        assert_eq!(of(4), vec![(3, 4.0), (1, 6.0), (2, 6.0)]);
    }

    #[test]
    fn refuses_ragged_rows_too_few_points_and_non_finite_values() {
        let s = TsneSettings::default();
        assert!(tsne_2d(&[0.0; 7], 2, &s, 1).is_err());
        let short = TsneSettings {
            epochs: 200,
            ..TsneSettings::default()
        };
        assert!(tsne_2d(&[0.5; 400], 2, &short, 1)
            .unwrap_err()
            .to_string()
            .contains("epochs"));
        assert!(tsne_2d(&[0.0; 20], 2, &s, 1)
            .unwrap_err()
            .to_string()
            .contains("at least"));
        let mut data = vec![0.5f32; 200 * 2];
        data[7] = f32::NAN;
        let err = tsne_2d(&data, 2, &s, 1).unwrap_err().to_string();
        assert!(err.contains("row 3"), "{err}");
    }
}
