//! Semi-supervision (Sec. 5.3): labelled real images train the E-net at the end of every
//! E-step, so that class c of the generator becomes class c of the labels.

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{GanEm, Progress};
use crate::error::{Error, Result};
use crate::losses::enet_loss;
use crate::nets::Weights;

impl GanEm {
    /// Makes this a semi-supervised run: `images` with their `classes` (each below K) train
    /// the E-net at the end of every E-step, and class c of the generator becomes class c.
    pub fn set_labelled(&mut self, images: Tensor, classes: &[usize]) -> Result<()> {
        if images.dim(0)? != classes.len() || classes.is_empty() {
            return Err(Error::Invalid(format!(
                "{} labelled images with {} labels",
                images.dim(0)?,
                classes.len()
            )));
        }
        if let Some(&c) = classes.iter().find(|&&c| c >= self.clusters) {
            return Err(Error::Invalid(format!(
                "label {c} of a labelled image is not below K = {}",
                self.clusters
            )));
        }
        let (_, height, width, _) = images.dims4()?;
        let shift = self.semi.labelled_shift;
        if 2 * shift >= height.min(width) {
            return Err(Error::Invalid(format!(
                "semi.labelled_shift = {shift} is out of range for {height}x{width} images: it \
                 must be below half the image's side"
            )));
        }
        self.labelled = Some((images, classes.iter().map(|&c| c as u32).collect()));
        Ok(())
    }

    /// `images` (labelled, `(N, H, W, C)`) as the E-net learns from them: each shifted by up
    /// to `semi.labelled_shift` pixels and mirrored when `semi.labelled_flip` asks, a fresh
    /// draw for every image; unchanged, with no draw from the seed's stream, when neither is
    /// set, so that runs without augmentation reproduce.
    pub(super) fn augment_labelled(&mut self, images: &Tensor) -> Result<Tensor> {
        let (shift, flip) = (self.semi.labelled_shift, self.semi.labelled_flip);
        if shift == 0 && !flip {
            return Ok(images.clone());
        }
        let (n, height, width, _) = images.dims4()?;
        let padded = images
            .pad_with_same(1, shift, shift)?
            .pad_with_same(2, shift, shift)?;
        let mirror = super::mirror_columns(width, &self.device)?;
        let mut changed = Vec::with_capacity(n);
        for i in 0..n {
            let (dy, dx) = (
                self.rng.gen_range(0..=2 * shift),
                self.rng.gen_range(0..=2 * shift),
            );
            let mut image = padded
                .narrow(0, i, 1)?
                .narrow(1, dy, height)?
                .narrow(2, dx, width)?;
            if flip && self.rng.gen_bool(0.5) {
                image = image.contiguous()?.index_select(&mirror, 2)?;
            }
            changed.push(image);
        }
        Ok(Tensor::cat(&changed, 0)?)
    }

    /// The E-net's error on the labelled images (evaluation mode), if there are any.
    pub fn labelled_error(&self) -> Result<Option<f64>> {
        let Some((images, classes)) = &self.labelled else {
            return Ok(None);
        };
        // The E-net itself, not its average: the stopping rule is part of its training.
        let predicted = self.classify(&self.enet, images)?;
        let wrong = predicted
            .iter()
            .zip(classes)
            .filter(|(&p, &c)| p != c as usize)
            .count();
        Ok(Some(wrong as f64 / classes.len() as f64))
    }

    /// Fully supervised training of the E-net alone on the labelled images (cross-entropy,
    /// `epochs` passes in shuffled batches of `semi.labelled_batch_size`): the supervised
    /// reference of Fig. 4(a). Returns the mean loss of each epoch.
    pub fn fit_supervised(
        &mut self,
        epochs: usize,
        progress: &mut dyn Progress,
    ) -> Result<Vec<f64>> {
        let Some((images, classes)) = self.labelled.clone() else {
            return Err(Error::Invalid(
                "supervised training needs labelled images (set_labelled)".into(),
            ));
        };
        let n = classes.len();
        let batch = self.semi.labelled_batch_size.min(n);
        let batches = n / batch;
        let mut losses = Vec::with_capacity(epochs);
        for epoch in 0..epochs {
            self.rng = super::rng_for(self.seed, 1 + epoch as u64);
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(&mut self.rng);
            progress.start(&format!("epoch {}", epoch + 1), batches as u64);
            let mut sum = 0.0;
            for pick in order.chunks_exact(batch) {
                let targets: Vec<u32> = pick.iter().map(|&i| classes[i as usize]).collect();
                let idx = Tensor::from_vec(pick.to_vec(), batch, &self.device)?;
                let x = self.augment_labelled(&images.index_select(&idx, 0)?)?;
                let logits = self
                    .enet
                    .forward(&x, self.enet_training_mode(), Weights::Train)?;
                let loss = enet_loss(&logits, &Tensor::from_vec(targets, batch, &self.device)?)?;
                sum += self.checked("L_E (supervised)", &loss)?;
                self.enet_backward_step(&loss)?;
                progress.advance(1);
            }
            progress.finish();
            losses.push(sum / batches as f64);
        }
        Ok(losses)
    }

    /// `size` labelled images drawn at random with their classes, or `None` when this run has
    /// no labels or `size` is 0.
    pub(super) fn labelled_batch(&mut self, size: usize) -> Result<Option<(Tensor, Vec<u32>)>> {
        let Some((images, classes)) = &self.labelled else {
            return Ok(None);
        };
        if size == 0 {
            return Ok(None);
        }
        let pick: Vec<u32> = (0..size)
            .map(|_| self.rng.gen_range(0..classes.len() as u32))
            .collect();
        let targets = pick.iter().map(|&i| classes[i as usize]).collect();
        let idx = Tensor::from_vec(pick, size, &self.device)?;
        Ok(Some((images.index_select(&idx, 0)?, targets)))
    }

    /// Sec. 5.3: trains the E-net on the labelled images until its error on them is at most
    /// epsilon (checked every `check_every` updates, at most `max_labelled_updates`).
    /// Returns the final labelled error and the number of updates.
    pub(super) fn fit_labelled(&mut self) -> Result<(Option<f64>, usize)> {
        let Some((images, classes)) = self.labelled.clone() else {
            return Ok((None, 0));
        };
        let n = classes.len();
        let batch = self.semi.labelled_batch_size.min(n);
        let mut order: Vec<u32> = Vec::new();
        let mut updates = 0;
        let mut error = self.labelled_error()?.expect("labelled images");
        while error > self.semi.labelled_error_target && updates < self.semi.max_labelled_updates {
            for _ in 0..self.semi.check_every {
                if order.len() < batch {
                    let mut epoch: Vec<u32> = (0..n as u32).collect();
                    epoch.shuffle(&mut self.rng);
                    order.extend(epoch);
                }
                let pick: Vec<u32> = order.drain(..batch).collect();
                let targets: Vec<u32> = pick.iter().map(|&i| classes[i as usize]).collect();
                let idx = Tensor::from_vec(pick, batch, &self.device)?;
                let x = self.augment_labelled(&images.index_select(&idx, 0)?)?;
                let logits = self
                    .enet
                    .forward(&x, self.enet_training_mode(), Weights::Train)?;
                let targets = Tensor::from_vec(targets, batch, &self.device)?;
                let loss = enet_loss(&logits, &targets)?;
                self.checked("L_E (labelled)", &loss)?;
                self.enet_backward_step(&loss)?;
                updates += 1;
            }
            error = self.labelled_error()?.expect("labelled images");
        }
        Ok((Some(error), updates))
    }
}
