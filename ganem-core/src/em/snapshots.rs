//! The snapshot ensemble of `em.score_snapshots`: copies of the E-net as it stood after each
//! of the last few E-steps, whose mean posterior classifies the images that are scored. The
//! E-net of one EM iteration swings by points of test error from one iteration to the next
//! (CelebA, SVHN); the mean of a few of them swings less, and training never sees them.

use std::collections::VecDeque;

use candle_core::{DType, Tensor};
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use crate::error::{Error, Result};
use crate::nets::{layers::softmax, Classifier, Mode};

pub(super) struct SnapshotEnsemble {
    /// The kept E-nets, oldest first.
    pub(super) kept: VecDeque<Classifier>,
    /// Networks built like the E-net, not yet holding a snapshot.
    spare: Vec<Classifier>,
}

impl SnapshotEnsemble {
    /// An empty ensemble that keeps as many snapshots as `networks` (built like the E-net).
    pub(super) fn new(networks: Vec<Classifier>) -> Self {
        Self {
            kept: VecDeque::with_capacity(networks.len()),
            spare: networks,
        }
    }

    /// Keeps a copy of `enet` as the newest snapshot, in place of the oldest when full.
    pub(super) fn keep(&mut self, enet: &Classifier) -> Result<()> {
        let copy = self.take_network();
        copy.params.move_toward(&enet.params, 0.0)?;
        self.kept.push_back(copy);
        Ok(())
    }

    /// A network to hold the next snapshot: a spare one, or the oldest snapshot.
    pub(super) fn take_network(&mut self) -> Classifier {
        self.spare.pop().unwrap_or_else(|| {
            self.kept
                .pop_front()
                .expect("an ensemble holds at least one network")
        })
    }

    /// Snapshots the ensemble can hold.
    pub(super) fn capacity(&self) -> usize {
        self.kept.len() + self.spare.len()
    }

    /// Drops every snapshot (before a checkpoint's are loaded).
    pub(super) fn clear(&mut self) {
        self.spare.extend(self.kept.drain(..));
    }

    /// The mean posterior `(N, K)` of the kept E-nets on `images` (evaluation mode), each
    /// snapshot's classes first matched to the newest one's: the permutation under which the
    /// two agree on the most of `images` (no labels are used). In a run with labels the
    /// permutation is the identity unless an old snapshot contradicts the labels' classes;
    /// without labels it keeps a cluster whose number changed between two E-steps from
    /// cancelling itself out. `None` while nothing is kept.
    pub(super) fn posterior(&self, images: &Tensor, batch: usize) -> Result<Option<Tensor>> {
        let Some(newest) = self.kept.back() else {
            return Ok(None);
        };
        let posterior = |net: &Classifier| -> Result<Tensor> {
            Ok(softmax(&net.predict_logits(images, batch, Mode::Eval)?)?)
        };
        let newest_posterior = posterior(newest)?;
        let clusters = newest_posterior.dim(1)?;
        let newest_hard: Vec<u32> = newest_posterior.argmax(1)?.to_vec1()?;
        let mut sum = newest_posterior.clone();
        for net in self.kept.iter().take(self.kept.len() - 1) {
            let p = posterior(net)?;
            let hard: Vec<u32> = p.argmax(1)?.to_vec1()?;
            let order = matching_classes(&hard, &newest_hard, clusters)?;
            let idx = Tensor::from_vec(order, clusters, images.device())?;
            sum = (sum + p.index_select(&idx, 1)?)?;
        }
        Ok(Some((sum / self.kept.len() as f64)?.to_dtype(DType::F32)?))
    }
}

/// For each class j of the newest snapshot, the class of the other snapshot that is put in
/// its place: the one-to-one matching under which `other` and `newest` agree most often.
pub(super) fn matching_classes(other: &[u32], newest: &[u32], clusters: usize) -> Result<Vec<u32>> {
    let mut agreement = vec![0i64; clusters * clusters];
    for (&o, &n) in other.iter().zip(newest) {
        agreement[n as usize * clusters + o as usize] += 1;
    }
    let matrix = Matrix::from_vec(clusters, clusters, agreement)
        .map_err(|e| Error::Invalid(format!("class agreement matrix: {e:?}")))?;
    let (_, assignment) = kuhn_munkres(&matrix);
    Ok(assignment.into_iter().map(|o| o as u32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_puts_the_most_agreeing_class_of_the_other_snapshot_in_each_place() {
        // The other snapshot calls class 0 what the newest calls 1, and 2 what it calls 0.
        let newest = [0, 0, 1, 1, 2, 2, 0];
        let other = [2, 2, 0, 0, 1, 1, 1];
        assert_eq!(matching_classes(&other, &newest, 3).unwrap(), vec![2, 0, 1]);
        assert_eq!(
            matching_classes(&newest, &newest, 3).unwrap(),
            vec![0, 1, 2]
        );
    }
}
