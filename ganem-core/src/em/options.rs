//! Settings of the EM loop: every recipe choice of the paper, the authors' code and the
//! reference probe is one named value here (see docs/deviations.md for who makes which).

use serde::{Deserialize, Serialize};

use crate::config::validate::{self, Violation};
use crate::losses::GeneratorLoss;

/// How the E-step draws the classes of the generated images it trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassSampling {
    /// c ~ phi, as the paper (Eq. 5, Algorithm 1 line 11).
    Prior,
    /// Every class equally often in each batch, as the authors' code.
    Even,
}

/// Distribution of the generator's noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    /// U[0, 1), as App. B.1 ("the random noise of generator is in uniform distribution").
    Uniform,
    /// N(0, 1), as Eq. 1 and 5 write z ~ N.
    Normal,
}

/// Which BatchNorm statistics the generator uses when it makes the E-step's training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorStatistics {
    /// Each batch's own statistics, as G is trained in the M-step.
    Batch,
    /// The running statistics gathered in the M-step (the authors' code, `G.eval()`).
    Running,
}

/// How the E-net's BatchNorm layers normalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnetBatchNorm {
    /// Trained on batch statistics; real images are assigned with each batch's own
    /// statistics too, since the running ones were gathered on generated images.
    Batch,
    /// Trained on batch statistics, real images assigned with the running statistics
    /// (PyTorch's usual train/eval split).
    Running,
    /// Trained on batch statistics, but only the labelled real images of a semi-supervised
    /// run (the E-step's labelled batch, the labelled fitting) update the running statistics
    /// every image is assigned with: generated batches leave them alone, so that test images
    /// are not normalised by the statistics of a generator's images. Needs
    /// `semi.e_step_labelled_batch`.
    Labelled,
    /// Always the initial running statistics (mean 0, variance 1), never updated, so each
    /// BatchNorm is a learned per-channel scale and shift: the authors' code puts the E-net in
    /// eval mode before its first update and never back. Generated and real images then go
    /// through the same function.
    Frozen,
}

/// Which terms of L_D the extra unit's weight multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraUnitTerms {
    /// Both the real and the generated images' terms.
    Both,
    /// Only the real images' term; the generated images' term keeps weight 1 (the authors'
    /// code and the reference probe).
    Real,
}

/// Which generated batch G's update trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorBatch {
    /// The c and z of D's last batch (the reference probe); G runs once per update.
    Reuse,
    /// A fresh draw of c and z (the authors' code).
    Fresh,
}

/// Settings of the EM loop. Defaults are the paper's (Sec. 5.1 and App. B.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmSpec {
    /// EM iterations (n of Algorithm 1).
    pub iterations: usize,
    /// Real and generated images per M-step batch.
    pub batch_size: usize,
    /// Passes over the training images per M-step (p of Algorithm 1; may be fractional).
    pub m_step_epochs: f64,
    /// When above 0, the M-step's batches instead, whatever the number of training images, so
    /// that experiments on sets of different sizes (CelebA's attributes) get the same
    /// training.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub m_step_batches: usize,
    /// E-net updates per E-step (q of Algorithm 1).
    pub e_step_iterations: usize,
    /// Generated images per E-net update.
    pub e_step_batch_size: usize,
    pub e_step_classes: ClassSampling,
    pub generator_loss: GeneratorLoss,
    /// Weight of the extra real-vs-fake unit's loss in L_D (0 disables the unit's loss).
    pub extra_unit_weight: f64,
    /// Which of the extra unit's terms `extra_unit_weight` multiplies.
    pub extra_unit_terms: ExtraUnitTerms,
    /// Which generated batch G's update uses.
    pub generator_batch: GeneratorBatch,
    /// Learning rates are multiplied by `lr_decay^(iteration - 1)`.
    pub lr_decay: f64,
    /// Re-create the optimisers (dropping their moments) at every EM iteration, as the
    /// authors' code; this also makes a resumed run identical to an uninterrupted one.
    pub reset_optimizers: bool,
    /// Clip the generator's weights into [-c, c] after each update (Sec. 4.4); 0 = off.
    pub generator_weight_clip: f64,
    /// D updates per G update.
    pub discriminator_steps: usize,
    pub noise: Noise,
    /// Images per forward pass when assigning real images.
    pub eval_batch_size: usize,
    pub enet_batch_norm: EnetBatchNorm,
    pub e_step_generator_statistics: GeneratorStatistics,
    /// A loss whose magnitude exceeds this (or that is not finite) ends the run as diverged.
    pub max_loss: f64,
    /// When above 0, the decay of an exponential moving average of the E-net's weights and
    /// running statistics, updated after every E-net update (beyond the paper): the averaged
    /// E-net classifies the test images and gives the reduced representation, while the E-net
    /// itself still assigns the training images and is judged by the labelled stopping rule,
    /// so training runs as without it. In its first updates the average follows faster
    /// (decay at most (1 + t) / (10 + t) after t updates), so that it forgets the initial
    /// weights.
    #[serde(skip_serializing_if = "crate::config::is_zero_f64")]
    pub enet_average: f64,
    /// Mirrors each real image of the M-step left to right with probability 1/2, a fresh draw
    /// per image and batch, its soft assignment unchanged (beyond the paper; for faces, not
    /// digits): D then cannot tie a cluster to a side (the head's turn, the light's side),
    /// which no face attribute is about, and sees twice as many distinct faces. false, the
    /// paper.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub real_flip: bool,
    /// When above 1, the images that are scored (test and held-out images) are classified by
    /// the mean posterior of the E-net as it stood after each of the last `score_snapshots`
    /// E-steps, each snapshot's classes matched to the newest one's (beyond the paper: a
    /// snapshot ensemble). Training, the assignments w and the reduced representation are
    /// the E-net's own, so a run scores differently but trains as without it. 0, the paper:
    /// the E-net of the last E-step alone.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub score_snapshots: usize,
}

impl Default for EmSpec {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 64,
            m_step_epochs: 5.0,
            m_step_batches: 0,
            e_step_iterations: 1000,
            e_step_batch_size: 256,
            e_step_classes: ClassSampling::Prior,
            generator_loss: GeneratorLoss::PaperKl,
            extra_unit_weight: 1.0,
            extra_unit_terms: ExtraUnitTerms::Both,
            generator_batch: GeneratorBatch::Reuse,
            lr_decay: 0.98,
            reset_optimizers: false,
            generator_weight_clip: 0.0,
            discriminator_steps: 1,
            noise: Noise::Uniform,
            eval_batch_size: 1000,
            enet_batch_norm: EnetBatchNorm::Batch,
            e_step_generator_statistics: GeneratorStatistics::Batch,
            max_loss: 1e6,
            enet_average: 0.0,
            real_flip: false,
            score_snapshots: 0,
        }
    }
}

impl EmSpec {
    /// The weights of the extra unit's (real, generated) terms of L_D.
    pub fn extra_unit_weights(&self) -> (f64, f64) {
        let w = self.extra_unit_weight;
        match self.extra_unit_terms {
            ExtraUnitTerms::Both => (w, w),
            ExtraUnitTerms::Real if w == 0.0 => (0.0, 0.0),
            ExtraUnitTerms::Real => (w, 1.0),
        }
    }

    /// Checks every setting's range; the first violation is returned.
    pub fn validate(&self) -> Result<(), Violation> {
        validate::count("em.iterations", self.iterations)?;
        validate::count("em.batch_size", self.batch_size)?;
        validate::positive("em.m_step_epochs", self.m_step_epochs)?;
        validate::count("em.e_step_iterations", self.e_step_iterations)?;
        validate::count("em.e_step_batch_size", self.e_step_batch_size)?;
        validate::non_negative("em.extra_unit_weight", self.extra_unit_weight)?;
        validate::decay("em.lr_decay", self.lr_decay)?;
        validate::non_negative("em.generator_weight_clip", self.generator_weight_clip)?;
        validate::count("em.discriminator_steps", self.discriminator_steps)?;
        validate::count("em.eval_batch_size", self.eval_batch_size)?;
        validate::positive("em.max_loss", self.max_loss)?;
        validate::unit_interval_open("em.enet_average", self.enet_average)?;
        if self.score_snapshots > 1 && self.enet_average > 0.0 {
            return Err(format!(
                "em.score_snapshots = {} and em.enet_average = {} both choose the E-net that is \
                 scored: set one of them",
                self.score_snapshots, self.enet_average
            ));
        }
        Ok(())
    }
}

/// Semi-supervision (Sec. 5.3, App. B.1): at the end of every E-step the E-net is trained on
/// the labelled real images (cross-entropy) until its error on them is at most
/// `labelled_error_target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemiSpec {
    /// epsilon of Sec. 5.3 (it suggests 5-10 %, to avoid over-fitting); 0 trains until the
    /// labelled accuracy is 100 %, as App. B.1 says.
    pub labelled_error_target: f64,
    /// Labelled images per E-net update.
    pub labelled_batch_size: usize,
    /// E-net updates between two measurements of the labelled error.
    pub check_every: usize,
    /// At most this many labelled updates per E-step, in case the target is out of reach.
    pub max_labelled_updates: usize,
    /// Labelled images added to every E-step update, their cross-entropy summed with L_E, so
    /// that learning from generated images does not pull the E-net away from the labels
    /// between two fittings. 0, the paper: labels enter only through the fitting above.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub e_step_labelled_batch: usize,
    /// Labelled images added to every M-step real batch with their one-hot class as the soft
    /// assignment, so that D (and through it G) sees the labels directly. 0, the paper:
    /// labelled images enter the M-step like any other, through the E-net's assignment.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub m_step_labelled_batch: usize,
    /// Passes of the E-net over the labelled images before the first EM iteration, whose
    /// M-step then starts from the assignments of that classifier rather than from uniform
    /// ones. 0, the paper: the first M-step has no class information.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub warm_start_epochs: usize,
    /// Each labelled image the E-net learns from is shifted by up to this many pixels in
    /// each direction (the uncovered border repeats the image's edge), a fresh draw every
    /// time, so that a few labels do not teach the E-net their exact pixels. 0, the paper:
    /// labelled images as they are.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub labelled_shift: usize,
    /// Mirrors each labelled image the E-net learns from left to right with probability 1/2
    /// (for faces, not for digits). false, the paper.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub labelled_flip: bool,
    /// Weight of the generated images' cross-entropy L_E in every E-step update beside the
    /// labelled batch (`e_step_labelled_batch`), so that a generator whose classes are not
    /// yet the digits teaches the E-net less; 0 leaves only the labels. 1, the paper: L_E as
    /// it is.
    #[serde(skip_serializing_if = "crate::config::is_one")]
    pub generated_weight: f64,
    /// The E-step learns only from the generated images whose class the E-net already
    /// predicts, so that the images a generator drew for the wrong class do not teach it
    /// that class. false, the paper: every generated image counts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub generated_agreeing_only: bool,
}

impl Default for SemiSpec {
    fn default() -> Self {
        Self {
            labelled_error_target: 0.0,
            labelled_batch_size: 64,
            check_every: 10,
            max_labelled_updates: 1000,
            e_step_labelled_batch: 0,
            m_step_labelled_batch: 0,
            warm_start_epochs: 0,
            labelled_shift: 0,
            labelled_flip: false,
            generated_weight: 1.0,
            generated_agreeing_only: false,
        }
    }
}

impl SemiSpec {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), Violation> {
        let target = self.labelled_error_target;
        if !(0.0..1.0).contains(&target) {
            return Err(format!(
                "semi.labelled_error_target = {target} is out of range: it must be in [0, 1)"
            ));
        }
        validate::count("semi.labelled_batch_size", self.labelled_batch_size)?;
        validate::count("semi.check_every", self.check_every)?;
        validate::count("semi.max_labelled_updates", self.max_labelled_updates)?;
        let weight = self.generated_weight;
        if !(0.0..=1.0).contains(&weight) {
            return Err(format!(
                "semi.generated_weight = {weight} is out of range: it must be in [0, 1]"
            ));
        }
        if weight < 1.0 && self.e_step_labelled_batch == 0 {
            return Err(format!(
                "semi.generated_weight = {weight} weighs L_E against the E-step's labelled \
                 batch, but semi.e_step_labelled_batch is 0: set it too"
            ));
        }
        Ok(())
    }
}
