//! The averaged E-net of `em.enet_average`: an exponential moving average of the E-net's
//! weights and running statistics, the classifier that is scored. The E-net of one moment
//! swings by a point or more of test error between EM iterations (SVHN); the average of its
//! recent updates does not, and training never sees it.

use crate::error::Result;
use crate::nets::Classifier;

pub(super) struct AveragedEnet {
    pub(super) net: Classifier,
    decay: f64,
    /// E-net updates followed so far (kept in checkpoints, since it sets the early decay).
    pub(super) updates: usize,
}

impl AveragedEnet {
    /// Starts the average at `enet`'s current values; `copy` is a network built like it.
    pub(super) fn new(copy: Classifier, enet: &Classifier, decay: f64) -> Result<Self> {
        copy.params.move_toward(&enet.params, 0.0)?;
        Ok(Self {
            net: copy,
            decay,
            updates: 0,
        })
    }

    /// One step toward `enet`, after one of its updates. Early on the decay is lower
    /// ((1 + t) / (10 + t) after t updates), so that the initial weights are soon forgotten.
    pub(super) fn follow(&mut self, enet: &Classifier) -> Result<()> {
        let t = self.updates as f64;
        let decay = self.decay.min((1.0 + t) / (10.0 + t));
        self.net.params.move_toward(&enet.params, decay)?;
        self.updates += 1;
        Ok(())
    }
}
