//! The EM loop of Algorithm 1: the M-step updates phi and trains G and D on the soft
//! assignments; the E-step trains the E-net on generated images and re-assigns the real ones.

mod average;
mod checkpoint;
pub mod health;
mod options;
mod semi;
mod snapshots;

use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use checkpoint::RunIdentity;
pub use health::{RunStatus, Vitals};
pub use options::{
    ClassSampling, EmSpec, EnetBatchNorm, ExtraUnitTerms, GeneratorBatch, GeneratorStatistics,
    Noise, SemiSpec,
};

use crate::config::Profile;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::losses::{discriminator_loss, enet_loss, enet_loss_where_agreeing, generator_loss};
use crate::nets::{layers::softmax, Classifier, Generator, ImageShape, Mode, Weights};
use crate::optim::{Net, NetOptimizer, OptimizerSpec};

/// Receives progress of long phases; binaries draw bars, tests ignore it.
pub trait Progress {
    fn start(&mut self, phase: &str, total: u64);
    fn advance(&mut self, n: u64);
    fn finish(&mut self);
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// What one EM iteration did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IterationStats {
    /// 1-based EM iteration.
    pub iteration: usize,
    pub loss_d: f64,
    pub loss_g: f64,
    pub loss_e: f64,
    pub phi_min: f64,
    pub phi_max: f64,
    /// Spread of G's samples (see [`health::sample_spread`]).
    pub sample_spread: f64,
    /// `Ok` or `Collapsed` by [`health::status_of`].
    pub status: RunStatus,
    /// With labelled images: the E-net's error on them after the E-step, and how many
    /// labelled updates it took.
    pub labelled_error: Option<f64>,
    pub labelled_updates: usize,
    pub seconds: f64,
}

/// The state of a GAN-EM run: the three networks, the prior phi and the soft assignments w.
pub struct GanEm {
    spec: EmSpec,
    semi: SemiSpec,
    /// The labelled real images of a semi-supervised run and their classes.
    labelled: Option<(Tensor, Vec<u32>)>,
    optimizer: OptimizerSpec,
    pub generator: Generator,
    pub discriminator: Classifier,
    pub enet: Classifier,
    /// The average of `em.enet_average`, when set: the E-net that is scored.
    averaged_enet: Option<average::AveragedEnet>,
    /// The E-nets of the last E-steps, when `em.score_snapshots` asks for them: they are scored.
    snapshots: Option<snapshots::SnapshotEnsemble>,
    /// P(c = i), from the last M-step.
    pub phi: Vec<f64>,
    /// `(N, K)` soft assignments w of the training images, from the last E-step.
    pub soft_assignments: Tensor,
    /// EM iterations completed.
    pub iteration: usize,
    clusters: usize,
    seed: u64,
    device: Device,
    optimizers: Option<Optimizers>,
    rng: ChaCha8Rng,
}

struct Optimizers {
    generator: NetOptimizer,
    discriminator: NetOptimizer,
    enet: NetOptimizer,
}

/// Generated images per class that the collapse rule looks at.
const SPREAD_SAMPLES_PER_CLASS: usize = 10;

/// `images` `(N, H, W, C)` followed by each of them mirrored left to right: image i's mirror
/// image is row N + i.
fn with_mirror_images(images: &Tensor) -> Result<Tensor> {
    let mirrored = images.index_select(&mirror_columns(images.dim(2)?, images.device())?, 2)?;
    Ok(Tensor::cat(&[images, &mirrored], 0)?)
}

/// Column indices that mirror an image `width` wide when selected along its width.
fn mirror_columns(width: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        (0..width as u32).rev().collect(),
        width,
        device,
    )?)
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl GanEm {
    /// Builds fresh networks for `clusters` clusters of images shaped `image`, with w uniform
    /// over `train_len` training images (Algorithm 1, line 1).
    pub fn new(
        profile: &Profile,
        clusters: usize,
        image: ImageShape,
        train_len: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if clusters < 2 {
            return Err(Error::Invalid(format!(
                "K must be at least 2, got {clusters}"
            )));
        }
        let mut rng = rng_for(seed, 0);
        let nets = &profile.nets;
        let generator = Generator::new(nets, image, clusters, device, &mut rng)?;
        let discriminator = Classifier::new(nets, image, clusters + 1, 0, "d", device, &mut rng)?;
        let build_enet = |rng: &mut ChaCha8Rng| {
            Classifier::new(
                nets,
                image,
                clusters,
                nets.enet_bottleneck,
                "e",
                device,
                rng,
            )
        };
        let enet = build_enet(&mut rng)?;
        let averaged_enet = match profile.em.enet_average {
            0.0 => None,
            decay => {
                // Built like the E-net, then overwritten with its values: the draw is discarded.
                let copy = build_enet(&mut rng_for(seed, u64::MAX - 1))?;
                Some(average::AveragedEnet::new(copy, &enet, decay)?)
            }
        };
        let snapshots = match profile.em.score_snapshots {
            0 | 1 => None,
            kept => {
                // Built like the E-net and overwritten with its values: the draws are discarded.
                let networks = (0..kept)
                    .map(|i| build_enet(&mut rng_for(seed, u64::MAX - 2 - i as u64)))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Some(snapshots::SnapshotEnsemble::new(networks))
            }
        };
        let soft_assignments = Tensor::full(1.0 / clusters as f32, (train_len, clusters), device)?;
        Ok(Self {
            spec: profile.em.clone(),
            semi: profile.semi.clone(),
            labelled: None,
            optimizer: profile.optimizer.clone(),
            generator,
            discriminator,
            enet,
            averaged_enet,
            snapshots,
            phi: vec![1.0 / clusters as f64; clusters],
            soft_assignments,
            iteration: 0,
            clusters,
            seed,
            device: device.clone(),
            optimizers: None,
            rng: rng_for(seed, 1),
        })
    }

    /// Bytes a run of `profile` with `clusters` clusters on `train_len` training images of
    /// shape `image` will hold at its peak, roughly: the soft assignments and their
    /// temporaries, the three networks with gradients and optimiser moments, and the
    /// activations of the largest batch. Checked before any allocation.
    pub fn memory_estimate(
        profile: &Profile,
        clusters: usize,
        image: ImageShape,
        train_len: usize,
    ) -> u64 {
        use crate::nets::{classifier_size, generator_size};
        let nets = &profile.nets;
        let sizes = [
            generator_size(nets, image, clusters),
            classifier_size(nets, image, clusters + 1),
            classifier_size(nets, image, clusters),
        ];
        let em = &profile.em;
        let batch = (2 * em.batch_size)
            .max(em.e_step_batch_size)
            .max(em.eval_batch_size) as u64;
        // The averaged E-net and the kept snapshots: copies of the E-net's weights.
        let enet_copies =
            ((em.enet_average > 0.0) as u64 + em.score_snapshots as u64) * sizes[2].params as u64;
        let params: u64 = sizes.iter().map(|s| s.params as u64).sum();
        let activations: u64 = sizes
            .iter()
            .map(|s| s.activations_per_image as u64)
            .max()
            .unwrap_or(0);
        let floats = 4 * (train_len * clusters) as u64 // w, logits, softmax, its temporaries
            + 4 * params // weights, gradients, two moments
            + enet_copies
            + 3 * batch * activations; // forward, backward and the gradient buffers
        4 * floats
    }

    pub fn clusters(&self) -> usize {
        self.clusters
    }

    fn params(&self) -> [&crate::nets::Params; 3] {
        [
            &self.generator.params,
            &self.discriminator.params,
            &self.enet.params,
        ]
    }

    fn params_mut(&mut self) -> [&mut crate::nets::Params; 3] {
        [
            &mut self.generator.params,
            &mut self.discriminator.params,
            &mut self.enet.params,
        ]
    }

    /// Generator input `(B, noise + K)` for the given classes.
    fn generator_input(&mut self, classes: &[u32]) -> Result<Tensor> {
        let rng = &mut self.rng;
        let noise_dim = self.generator.input_dims.0;
        let n = classes.len();
        let noise: Vec<f32> = match self.spec.noise {
            Noise::Uniform => (0..n * noise_dim).map(|_| rng.gen::<f32>()).collect(),
            Noise::Normal => (0..n * noise_dim)
                .map(|_| rand_distr::StandardNormal.sample(rng))
                .collect(),
        };
        let noise = Tensor::from_vec(noise, (n, noise_dim), &self.device)?;
        Ok(Tensor::cat(&[noise, self.one_hot(classes)?], 1)?)
    }

    fn one_hot(&self, classes: &[u32]) -> Result<Tensor> {
        let mut v = vec![0f32; classes.len() * self.clusters];
        for (row, &c) in classes.iter().enumerate() {
            v[row * self.clusters + c as usize] = 1.0;
        }
        Ok(Tensor::from_vec(
            v,
            (classes.len(), self.clusters),
            &self.device,
        )?)
    }

    /// Creates the optimisers for the coming iteration, or decays the existing ones' rates.
    fn prepare_optimizers(&mut self) -> Result<()> {
        if let (false, Some(opts)) = (self.spec.reset_optimizers, &mut self.optimizers) {
            for o in [&mut opts.generator, &mut opts.discriminator, &mut opts.enet] {
                o.scale_learning_rate(self.spec.lr_decay);
            }
            return Ok(());
        }
        let decay = self.spec.lr_decay.powi(self.iteration as i32);
        let make = |net, params: &crate::nets::Params| {
            NetOptimizer::new(&self.optimizer, net, params.trainable().to_vec(), decay)
        };
        self.optimizers = Some(Optimizers {
            generator: make(Net::Generator, &self.generator.params)?,
            discriminator: make(Net::Discriminator, &self.discriminator.params)?,
            enet: make(Net::Enet, &self.enet.params)?,
        });
        Ok(())
    }

    fn optimizers(&mut self) -> Result<&mut Optimizers> {
        if self.optimizers.is_none() {
            self.prepare_optimizers()?;
        }
        Ok(self.optimizers.as_mut().expect("optimizers prepared"))
    }

    /// Generated images of uniformly drawn classes (c ~ U in Eq. 1 and 2), with the graph
    /// through G.
    fn generate_for_m_step(&mut self, batch: usize) -> Result<(Tensor, Vec<u32>)> {
        let classes: Vec<u32> = (0..batch)
            .map(|_| self.rng.gen_range(0..self.clusters as u32))
            .collect();
        let input = self.generator_input(&classes)?;
        let images = self
            .generator
            .forward(&input, Mode::Train, Weights::Train)?;
        Ok((images, classes))
    }

    /// One M-step update on a real batch with its soft assignments `(B, K)`: D (as many
    /// times as `discriminator_steps`) then G. Returns the mean L_D and L_G.
    pub fn gan_update(&mut self, real: &Tensor, soft_assignments: &Tensor) -> Result<(f64, f64)> {
        let batch = real.dim(0)?;
        let d_steps = self.spec.discriminator_steps.max(1);
        let (real_extra, fake_extra) = self.spec.extra_unit_weights();
        let mut loss_d = 0.0;
        let mut fake = None;
        for _ in 0..d_steps {
            let (images, classes) = self.generate_for_m_step(batch)?;
            let real_logits = self
                .discriminator
                .forward(real, Mode::Train, Weights::Train)?;
            let fake_logits =
                self.discriminator
                    .forward(&images.detach(), Mode::Train, Weights::Train)?;
            let loss = discriminator_loss(
                &real_logits,
                soft_assignments,
                &fake_logits,
                real_extra,
                fake_extra,
            )?;
            let value = self.checked("L_D", &loss)?;
            self.optimizers()?.discriminator.backward_step(&loss)?;
            loss_d += value;
            fake = Some((images, classes));
        }
        // Reusing D's last batch needs no second pass through G: its graph is still valid
        // since G is unchanged.
        let (images, classes) = match self.spec.generator_batch {
            GeneratorBatch::Reuse => fake.expect("at least one D step"),
            GeneratorBatch::Fresh => self.generate_for_m_step(batch)?,
        };
        // D's weights are constants of G's update: their gradients would go unused.
        let logits = self
            .discriminator
            .forward(&images, Mode::Train, Weights::Fixed)?;
        let loss = generator_loss(&logits, &self.one_hot(&classes)?, self.spec.generator_loss)?;
        let loss_g = self.checked("L_G", &loss)?;
        self.optimizers()?.generator.backward_step(&loss)?;
        if self.spec.generator_weight_clip > 0.0 {
            self.generator
                .params
                .clip(self.spec.generator_weight_clip)?;
        }
        Ok((loss_d / d_steps as f64, loss_g))
    }

    /// The value of a scalar loss, or [`Error::Diverged`] when it is not finite or its
    /// magnitude passed `max_loss`.
    fn checked(&self, name: &'static str, loss: &Tensor) -> Result<f64> {
        let value = loss.to_scalar::<f32>()? as f64;
        if value.is_finite() && value.abs() <= self.spec.max_loss {
            Ok(value)
        } else {
            Err(Error::Diverged {
                iteration: self.iteration + 1,
                loss: name,
                value,
                limit: self.spec.max_loss,
            })
        }
    }

    /// One E-step update of the E-net on `batch` generated images (Eq. 5). Returns L_E.
    pub fn enet_update(&mut self, batch: usize) -> Result<f64> {
        let classes: Vec<u32> = match self.spec.e_step_classes {
            ClassSampling::Prior => {
                let prior = WeightedIndex::new(self.phi.iter().map(|p| p.max(1e-12)))
                    .map_err(|e| Error::Invalid(format!("phi is not a distribution: {e}")))?;
                (0..batch)
                    .map(|_| prior.sample(&mut self.rng) as u32)
                    .collect()
            }
            ClassSampling::Even => {
                let mut c: Vec<u32> = (0..batch).map(|i| (i % self.clusters) as u32).collect();
                c.shuffle(&mut self.rng);
                c
            }
        };
        let input = self.generator_input(&classes)?;
        let images = self
            .generator
            .forward(&input, self.e_step_generator_mode(), Weights::Fixed)?
            .detach();
        let generated_mode = match self.spec.enet_batch_norm {
            EnetBatchNorm::Labelled => Mode::BatchStats,
            _ => self.enet_training_mode(),
        };
        let logits = self.enet.forward(&images, generated_mode, Weights::Train)?;
        let targets = Tensor::from_vec(classes, batch, &self.device)?;
        let mut loss = enet_loss(&logits, &targets)?;
        let value = self.checked("L_E", &loss)?;
        if self.semi.generated_agreeing_only {
            loss = enet_loss_where_agreeing(&logits, &targets)?;
        }
        if let Some((images, classes)) = self.labelled_batch(self.semi.e_step_labelled_batch)? {
            let images = self.augment_labelled(&images)?;
            let logits = self
                .enet
                .forward(&images, self.enet_training_mode(), Weights::Train)?;
            let targets = Tensor::from_vec(classes, images.dim(0)?, &self.device)?;
            if self.semi.generated_weight != 1.0 {
                loss = loss.affine(self.semi.generated_weight, 0.0)?;
            }
            loss = (loss + enet_loss(&logits, &targets)?)?;
        }
        self.enet_backward_step(&loss)?;
        Ok(value)
    }

    /// Updates the E-net from `loss`, and its average when there is one.
    fn enet_backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.optimizers()?.enet.backward_step(loss)?;
        if let Some(average) = &mut self.averaged_enet {
            average.follow(&self.enet)?;
        }
        Ok(())
    }

    /// The E-net whose predictions are scored: the average of `em.enet_average` when set.
    fn scored_enet(&self) -> &Classifier {
        self.averaged_enet
            .as_ref()
            .map_or(&self.enet, |average| &average.net)
    }

    /// The E-net's BatchNorm mode while it trains.
    fn enet_training_mode(&self) -> Mode {
        match self.spec.enet_batch_norm {
            EnetBatchNorm::Frozen => Mode::Eval,
            EnetBatchNorm::Batch | EnetBatchNorm::Running | EnetBatchNorm::Labelled => Mode::Train,
        }
    }

    /// Runs one EM iteration (M-step then E-step) on `train`, whose order must match the one
    /// the soft assignments were made for.
    pub fn step(
        &mut self,
        train: &ImageSet,
        progress: &mut dyn Progress,
    ) -> Result<IterationStats> {
        let start = Instant::now();
        let n = train.len();
        if n != self.soft_assignments.dim(0)? {
            return Err(Error::Invalid(format!(
                "{} training images but {} soft assignments",
                n,
                self.soft_assignments.dim(0)?
            )));
        }
        if self.spec.enet_batch_norm == EnetBatchNorm::Labelled && self.labelled.is_none() {
            return Err(Error::Invalid(
                "em.enet_batch_norm = \"labelled\" needs labelled images (a semi-supervised run)"
                    .into(),
            ));
        }
        self.prepare_optimizers()?;
        if self.iteration == 0 && self.semi.warm_start_epochs > 0 && self.labelled.is_some() {
            self.fit_supervised(self.semi.warm_start_epochs, progress)?;
            self.soft_assignments = self.assign(&train.images)?;
        }
        self.rng = rng_for(self.seed, 1 + self.iteration as u64);

        // M-step, phi: N_i / N with soft counts.
        let counts: Vec<f32> = self.soft_assignments.sum(0)?.to_vec1()?;
        let total: f64 = counts.iter().map(|&c| c as f64).sum();
        self.phi = counts.iter().map(|&c| c as f64 / total).collect();

        // M-step, psi: G and D on real batches weighted by w, generated classes c ~ U.
        let batch = self.spec.batch_size.min(n);
        let batches = match self.spec.m_step_batches {
            0 => ((self.spec.m_step_epochs * n as f64) / batch as f64).ceil() as usize,
            batches => batches,
        };
        progress.start(&format!("EM {} M-step", self.iteration + 1), batches as u64);
        let mut order: Vec<u32> = Vec::new();
        let real_pool = match self.spec.real_flip {
            true => Some(with_mirror_images(&train.images)?),
            false => None,
        };
        let (mut sum_d, mut sum_g) = (0.0, 0.0);
        for _ in 0..batches {
            if order.len() < batch {
                let mut epoch: Vec<u32> = (0..n as u32).collect();
                epoch.shuffle(&mut self.rng);
                order.extend(epoch);
            }
            let picked: Vec<u32> = order.drain(..batch).collect();
            let mut real = self.real_batch(&train.images, real_pool.as_ref(), &picked)?;
            let idx = Tensor::from_vec(picked, batch, &self.device)?;
            let mut w = self.soft_assignments.index_select(&idx, 0)?;
            if let Some((images, classes)) = self.labelled_batch(self.semi.m_step_labelled_batch)? {
                real = Tensor::cat(&[real, images], 0)?;
                w = Tensor::cat(&[w, self.one_hot(&classes)?], 0)?;
            }
            let (loss_d, loss_g) = self.gan_update(&real, &w)?;
            sum_d += loss_d;
            sum_g += loss_g;
            progress.advance(1);
        }
        progress.finish();

        // E-step: the E-net learns P(c | x) from generated images.
        let steps = self.spec.e_step_iterations;
        progress.start(&format!("EM {} E-step", self.iteration + 1), steps as u64);
        let mut sum_e = 0.0;
        for _ in 0..steps {
            sum_e += self.enet_update(self.spec.e_step_batch_size)?;
            progress.advance(1);
        }
        progress.finish();
        let (labelled_error, labelled_updates) = self.fit_labelled()?;
        if let Some(snapshots) = &mut self.snapshots {
            snapshots.keep(&self.enet)?;
        }

        // w = E(x_real) (Algorithm 1, line 14).
        self.soft_assignments = self.assign(&train.images)?;
        self.iteration += 1;
        let phi_min = self.phi.iter().copied().fold(f64::INFINITY, f64::min);
        let phi_max = self.phi.iter().copied().fold(0.0, f64::max);
        let spread = health::sample_spread(&self.samples(SPREAD_SAMPLES_PER_CLASS, self.seed)?)?;
        let loss_d = sum_d / batches as f64;
        let loss_g = sum_g / batches as f64;
        Ok(IterationStats {
            iteration: self.iteration,
            sample_spread: spread,
            status: health::status_of(health::Vitals {
                loss_d,
                loss_g,
                sample_spread: spread,
                output_range: self.generator.output_range(),
            }),
            labelled_error,
            labelled_updates,
            loss_d,
            loss_g,
            loss_e: sum_e / steps as f64,
            phi_min,
            phi_max,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The real images `picked` of `images` for one M-step batch; with `mirror_pool` (the
    /// images then their mirror images, [`with_mirror_images`]) each one mirrored with
    /// probability 1/2 (`em.real_flip`), without a draw from the seed's stream otherwise.
    fn real_batch(
        &mut self,
        images: &Tensor,
        mirror_pool: Option<&Tensor>,
        picked: &[u32],
    ) -> Result<Tensor> {
        let n = images.dim(0)? as u32;
        let (source, rows): (&Tensor, Vec<u32>) = match mirror_pool {
            Some(pool) => (
                pool,
                picked
                    .iter()
                    .map(|&i| if self.rng.gen_bool(0.5) { i + n } else { i })
                    .collect(),
            ),
            None => (images, picked.to_vec()),
        };
        let rows = Tensor::from_vec(rows, picked.len(), &self.device)?;
        Ok(source.index_select(&rows, 0)?)
    }

    /// Soft assignments w = P(c | x) `(N, K)` of the training images for the next M-step, with
    /// the BatchNorm statistics `enet_batch_norm` names (with `batch`, an image's assignment
    /// depends on the other images of its batch).
    pub fn assign(&self, images: &Tensor) -> Result<Tensor> {
        let mode = match self.spec.enet_batch_norm {
            EnetBatchNorm::Batch => Mode::BatchStats,
            EnetBatchNorm::Running | EnetBatchNorm::Labelled | EnetBatchNorm::Frozen => Mode::Eval,
        };
        self.posterior(&self.enet, images, mode)
    }

    fn posterior(&self, net: &Classifier, images: &Tensor, mode: Mode) -> Result<Tensor> {
        let logits = net.predict_logits(images, self.spec.eval_batch_size, mode)?;
        Ok(softmax(&logits)?)
    }

    /// The most likely cluster of each of `images` by `net` in evaluation mode, so one
    /// image's cluster does not depend on the images that share its batch.
    fn classify(&self, net: &Classifier, images: &Tensor) -> Result<Vec<usize>> {
        let hard: Vec<u32> = self
            .posterior(net, images, Mode::Eval)?
            .argmax(1)?
            .to_vec1()?;
        Ok(hard.into_iter().map(|c| c as usize).collect())
    }

    /// The most likely cluster of each of `images`, for evaluation: the scored E-net (the
    /// average of `em.enet_average` when set; the snapshots of `em.score_snapshots` once one
    /// is kept) in evaluation mode.
    pub fn predict(&self, images: &Tensor) -> Result<Vec<usize>> {
        let ensemble = match &self.snapshots {
            Some(snapshots) => snapshots.posterior(images, self.spec.eval_batch_size)?,
            None => None,
        };
        match ensemble {
            Some(posterior) => {
                let hard: Vec<u32> = posterior.argmax(1)?.to_vec1()?;
                Ok(hard.into_iter().map(|c| c as usize).collect())
            }
            None => self.classify(self.scored_enet(), images),
        }
    }

    /// The E-net's reduced representation of `images` (Sec. 5.4): the output of its layer r
    /// (`nets.enet_bottleneck`), or of its last hidden layer without one, in evaluation mode,
    /// by the scored E-net.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self
            .scored_enet()
            .predict_features(images, self.spec.eval_batch_size, Mode::Eval)?)
    }

    /// The most likely cluster of each training image, from the last E-step.
    pub fn predict_from_assignments(&self) -> Result<Vec<usize>> {
        let hard: Vec<u32> = self.soft_assignments.argmax(1)?.to_vec1()?;
        Ok(hard.into_iter().map(|c| c as usize).collect())
    }

    /// `per_class` generated images of every cluster, `(K * per_class, H, W, C)`, class-major.
    pub fn samples(&mut self, per_class: usize, seed: u64) -> Result<Tensor> {
        let saved = std::mem::replace(&mut self.rng, rng_for(seed, u64::MAX));
        let classes: Vec<u32> = (0..self.clusters as u32)
            .flat_map(|c| std::iter::repeat_n(c, per_class))
            .collect();
        let input = self.generator_input(&classes);
        self.rng = saved;
        let input = input?;
        Ok(self
            .generator
            .forward(&input, self.e_step_generator_mode(), Weights::Fixed)?
            .detach())
    }

    /// G's mode when it generates outside the M-step: the E-step's images and the samples.
    fn e_step_generator_mode(&self) -> Mode {
        match self.spec.e_step_generator_statistics {
            GeneratorStatistics::Batch => Mode::BatchStats,
            GeneratorStatistics::Running => Mode::Eval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;

    fn tiny_profile() -> Profile {
        let text = "description = 'tiny'\n[nets]\nwidth = 0.125\n[em]";
        Profile::from_toml(text, std::path::Path::new("tiny.toml")).unwrap()
    }

    /// A tiny model (K = 3, 8 training images, seed 1) of the tiny profile as `edit` leaves it.
    fn tiny_with(edit: impl FnOnce(&mut Profile)) -> GanEm {
        let mut profile = tiny_profile();
        edit(&mut profile);
        GanEm::new(&profile, 3, crate::data::mnist::SHAPE, 8, 1, &Device::Cpu).unwrap()
    }

    fn tiny(enet_batch_norm: EnetBatchNorm) -> GanEm {
        let mut profile = tiny_profile();
        profile.em.enet_batch_norm = enet_batch_norm;
        let shape = crate::data::mnist::SHAPE;
        GanEm::new(&profile, 3, shape, 10, 1, &Device::Cpu).unwrap()
    }

    fn images(n: usize, seed: u64) -> Tensor {
        let mut rng = rng_for(seed, 0);
        let v: Vec<f32> = (0..n * 784).map(|_| rng.gen()).collect();
        Tensor::from_vec(v, (n, 28, 28, 1), &Device::Cpu).unwrap()
    }

    /// The identity a tiny model's checkpoint is saved under in the tests.
    fn tiny_identity() -> RunIdentity {
        RunIdentity {
            dataset: "tiny".into(),
            clusters: 3,
            labels: 0,
            profile: "tiny".into(),
            profile_hash: "h".into(),
            seed: 1,
        }
    }

    /// 8 training images for [`tiny_with`]'s model, to resume a checkpoint with.
    fn tiny_train() -> crate::data::ImageSet {
        crate::data::ImageSet {
            images: images(8, 5),
            labels: vec![0; 8],
            shape: crate::data::mnist::SHAPE,
            classes: 3,
        }
    }

    fn values(params: &crate::nets::Params) -> Vec<Vec<f32>> {
        let flat = |v: &candle_core::Var| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        params.trainable().iter().map(flat).collect()
    }

    #[test]
    fn evaluation_does_not_depend_on_the_batch_even_with_batch_statistics_assignment() {
        let mut model = tiny(EnetBatchNorm::Batch);
        for _ in 0..3 {
            model.enet_update(20).unwrap();
        }
        let x = images(6, 3);
        let probabilities = |model: &GanEm| -> Vec<f32> {
            model
                .posterior(&model.enet, &x, Mode::Eval)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        model.spec.eval_batch_size = 6;
        let whole = (probabilities(&model), model.predict(&x).unwrap());
        model.spec.eval_batch_size = 2;
        let pairs = (probabilities(&model), model.predict(&x).unwrap());
        assert_eq!(whole.1, pairs.1);
        let diff = whole.0.iter().zip(&pairs.0).map(|(a, b)| (a - b).abs());
        assert!(diff.fold(0f32, f32::max) < 1e-6);
        // The training-time assignment with batch statistics does depend on the batch.
        let w6 = model.assign(&x).unwrap();
        model.spec.eval_batch_size = 6;
        let w2 = model.assign(&x).unwrap();
        let d = (w6 - w2).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() > 1e-4);
    }

    #[test]
    fn m_step_batches_fix_the_m_steps_length_whatever_the_set_size() {
        struct Totals(Vec<(String, u64)>);
        impl Progress for Totals {
            fn start(&mut self, phase: &str, total: u64) {
                self.0.push((phase.to_string(), total));
            }
            fn advance(&mut self, _: u64) {}
            fn finish(&mut self) {}
        }
        let m_step_length = |m_step_batches: usize| {
            let mut profile = tiny_profile();
            profile.em.batch_size = 8;
            profile.em.m_step_epochs = 1.0;
            profile.em.m_step_batches = m_step_batches;
            profile.em.e_step_iterations = 1;
            profile.em.e_step_batch_size = 4;
            let shape = crate::data::mnist::SHAPE;
            let pixels: Vec<u8> = (0..16 * 784).map(|i| (i * 7 % 256) as u8).collect();
            let train =
                crate::data::ImageSet::from_bytes(pixels, vec![0; 16], shape, 3, &Device::Cpu)
                    .unwrap();
            let mut model = GanEm::new(&profile, 3, shape, 16, 1, &Device::Cpu).unwrap();
            let mut totals = Totals(Vec::new());
            model.step(&train, &mut totals).unwrap();
            totals
                .0
                .into_iter()
                .find(|(phase, _)| phase.contains("M-step"))
                .unwrap()
                .1
        };
        assert_eq!(
            m_step_length(0),
            2,
            "one pass over 16 images in batches of 8"
        );
        assert_eq!(m_step_length(5), 5);
    }

    #[test]
    fn labelled_batches_join_the_e_step_only_when_asked_for_and_there_are_labels() {
        let enet_after_update = |e_step: usize, labelled: bool| {
            let mut model = tiny_with(|p| p.semi.e_step_labelled_batch = e_step);
            if labelled {
                model.set_labelled(images(4, 9), &[0, 1, 2, 0]).unwrap();
            }
            model.enet_update(6).unwrap();
            values(&model.enet.params)
        };
        let paper = enet_after_update(0, true);
        assert!(
            paper != enet_after_update(4, true),
            "labels change the E-net's update"
        );
        assert!(
            paper == enet_after_update(0, false),
            "off: as without labels"
        );
        assert!(
            paper == enet_after_update(4, false),
            "no labels: nothing to add"
        );
    }

    #[test]
    fn a_warm_start_teaches_the_enet_the_labels_before_the_first_m_step() {
        let shape = crate::data::mnist::SHAPE;
        // Three classes of constant images, two labelled per class.
        let levels = [0.1f32, 0.5, 0.9];
        let class_of = |i: usize| i % 3;
        let data: Vec<f32> = (0..12)
            .flat_map(|i| std::iter::repeat_n(levels[class_of(i)], 28 * 28))
            .collect();
        let all = Tensor::from_vec(data, (12, 28, 28, 1), &Device::Cpu).unwrap();
        let train = ImageSet {
            images: all.clone(),
            labels: (0..12).map(class_of).collect(),
            shape,
            classes: 3,
        };
        // One EM iteration with the labelled fitting and the E-step all but off: what the
        // E-net knows of the classes afterwards came from the warm start.
        let right_after_one_iteration = |warm_start_epochs: usize| {
            let mut profile = tiny_profile();
            profile.semi.warm_start_epochs = warm_start_epochs;
            profile.semi.labelled_batch_size = 6;
            profile.semi.labelled_error_target = 0.99;
            profile.em.e_step_iterations = 1;
            let mut model = GanEm::new(&profile, 3, shape, 12, 1, &Device::Cpu).unwrap();
            model
                .set_labelled(all.narrow(0, 0, 6).unwrap(), &[0, 1, 2, 0, 1, 2])
                .unwrap();
            model.step(&train, &mut Silent).unwrap();
            let predicted = model.predict(&train.images).unwrap();
            (0..12).filter(|&i| predicted[i] == class_of(i)).count()
        };
        let (cold, warm) = (right_after_one_iteration(0), right_after_one_iteration(200));
        assert!(
            warm == 12 && cold < 12,
            "cold {cold}, warm {warm} of 12 right"
        );
    }

    /// (row, column) of the first bright pixel of each 28x28 image of `images`.
    fn bright_pixels(images: &Tensor) -> Vec<(usize, usize)> {
        let v: Vec<f32> = images.flatten_all().unwrap().to_vec1().unwrap();
        v.chunks(784)
            .map(|image| {
                let at = image.iter().position(|&p| p > 0.5).unwrap();
                (at / 28, at % 28)
            })
            .collect()
    }

    #[test]
    fn real_flip_mirrors_about_half_the_m_steps_real_images_and_draws_nothing_when_off() {
        // Image i: one bright pixel at row i, column 3.
        let mut pixels = vec![0f32; 8 * 784];
        for i in 0..8 {
            pixels[i * 784 + i * 28 + 3] = 1.0;
        }
        let x = Tensor::from_vec(pixels, (8, 28, 28, 1), &Device::Cpu).unwrap();
        let picked: Vec<u32> = (0..64).map(|j| j % 8).collect();
        let mut off = tiny_with(|_| ());
        let stream_before = off.rng.clone();
        let plain = bright_pixels(&off.real_batch(&x, None, &picked).unwrap());
        assert_eq!(off.rng, stream_before, "no draw when real_flip is off");
        assert!(plain.iter().enumerate().all(|(j, &p)| p == (j % 8, 3)));

        let mut on = tiny_with(|p| p.em.real_flip = true);
        let pool = with_mirror_images(&x).unwrap();
        let flipped = bright_pixels(&on.real_batch(&x, Some(&pool), &picked).unwrap());
        assert!(flipped
            .iter()
            .enumerate()
            .all(|(j, &p)| p == (j % 8, 3) || p == (j % 8, 24)));
        let mirrored = flipped.iter().filter(|&&(_, c)| c == 24).count();
        assert!((16..=48).contains(&mirrored), "{mirrored} of 64 mirrored");
    }

    #[test]
    fn labelled_augmentation_shifts_and_mirrors_within_its_range_and_is_off_by_default() {
        let model_with = |shift: usize, flip: bool| {
            tiny_with(|p| {
                p.semi.labelled_shift = shift;
                p.semi.labelled_flip = flip;
            })
        };
        // One bright pixel at row 10, column 5 of an otherwise dark image.
        let mut pixels = vec![0f32; 784];
        pixels[10 * 28 + 5] = 1.0;
        let x = Tensor::from_vec(pixels, (1, 28, 28, 1), &Device::Cpu).unwrap();
        let x = Tensor::cat(&vec![x; 64], 0).unwrap();
        let mut off = model_with(0, false);
        let stream_before = off.rng.clone();
        assert_eq!(
            bright_pixels(&off.augment_labelled(&x).unwrap()),
            vec![(10, 5); 64]
        );
        assert_eq!(off.rng, stream_before, "no draw when augmentation is off");

        let shifted = bright_pixels(&model_with(2, false).augment_labelled(&x).unwrap());
        assert!(shifted
            .iter()
            .all(|&(r, c)| (8..=12).contains(&r) && (3..=7).contains(&c)));
        assert!(shifted.iter().any(|&p| p != (10, 5)), "some image moved");

        let flipped = bright_pixels(&model_with(0, true).augment_labelled(&x).unwrap());
        assert!(flipped.iter().all(|&p| p == (10, 5) || p == (10, 22)));
        assert!(flipped.contains(&(10, 5)) && flipped.contains(&(10, 22)));

        let both = bright_pixels(&model_with(2, true).augment_labelled(&x).unwrap());
        assert!(both.iter().all(
            |&(r, c)| (8..=12).contains(&r) && ((3..=7).contains(&c) || (20..=24).contains(&c))
        ));
        assert!(both.iter().any(|&(_, c)| c > 14), "some image mirrored");

        let error = model_with(14, false)
            .set_labelled(images(2, 1), &[0, 1])
            .unwrap_err();
        assert!(
            error.to_string().contains("semi.labelled_shift = 14"),
            "{error}"
        );
    }

    /// The tiny model, `edit`ed and with an E-step labelled batch of 4, after one E-step
    /// update, its generator zeroed before it when `zero_generator`.
    fn after_one_labelled_e_step_update(
        edit: impl FnOnce(&mut Profile),
        zero_generator: bool,
    ) -> GanEm {
        let mut model = tiny_with(|p| {
            p.semi.e_step_labelled_batch = 4;
            edit(p);
        });
        model
            .set_labelled(images(6, 2), &[0, 1, 2, 0, 1, 2])
            .unwrap();
        if zero_generator {
            for var in model.generator.params.trainable() {
                var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
            }
        }
        model.enet_update(8).unwrap();
        model
    }

    #[test]
    fn generated_weight_scales_what_the_generated_images_teach_the_enet() {
        let enet_after_update = |generated_weight: f64, zero_generator: bool| {
            let edit = |p: &mut Profile| p.semi.generated_weight = generated_weight;
            values(
                &after_one_labelled_e_step_update(edit, zero_generator)
                    .enet
                    .params,
            )
        };
        assert_eq!(
            enet_after_update(0.0, false),
            enet_after_update(0.0, true),
            "with weight 0 only the labels teach the E-net"
        );
        assert_ne!(enet_after_update(1.0, false), enet_after_update(1.0, true));
        assert_ne!(enet_after_update(0.5, false), enet_after_update(1.0, false));

        let mut profile = tiny_profile();
        profile.semi.generated_weight = 0.5;
        let error = profile.semi.validate().unwrap_err();
        assert!(error.contains("semi.e_step_labelled_batch"), "{error}");
        profile.semi.e_step_labelled_batch = 4;
        profile.semi.validate().unwrap();
        profile.semi.generated_weight = 1.5;
        assert!(profile.semi.validate().is_err());
    }

    #[test]
    fn the_averaged_enet_follows_the_enet_is_scored_and_resumes_without_changing_training() {
        let mut plain = tiny_with(|_| ());
        let mut averaged = tiny_with(|p| p.em.enet_average = 0.5);
        let mut expected = values(&plain.enet.params);
        // The decay after t updates is min(0.5, (1 + t) / (10 + t)).
        for decay in [0.1f32, 2.0 / 11.0, 0.25, 4.0 / 13.0] {
            plain.enet_update(8).unwrap();
            averaged.enet_update(8).unwrap();
            for (e, w) in expected.iter_mut().zip(values(&plain.enet.params)) {
                for (e, w) in e.iter_mut().zip(w) {
                    *e = decay * *e + (1.0 - decay) * w;
                }
            }
        }
        assert_eq!(
            values(&plain.enet.params),
            values(&averaged.enet.params),
            "the average leaves the E-net's training alone"
        );
        let average = averaged.averaged_enet.as_ref().unwrap();
        assert_eq!(average.updates, 4);
        let got = values(&average.net.params);
        let worst = got
            .iter()
            .flatten()
            .zip(expected.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "average off by {worst}");

        let x = images(5, 4);
        let features = |net: &Classifier| -> Vec<f32> {
            net.predict_features(&x, 5, Mode::Eval)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let scored: Vec<f32> = averaged
            .features(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(scored, features(&average.net));
        assert_ne!(scored, features(&averaged.enet));

        let dir = std::env::temp_dir().join(format!("ganem-average-{}", std::process::id()));
        let identity = tiny_identity();
        averaged.save(&dir, &identity).unwrap();
        let mut resumed = tiny_with(|p| p.em.enet_average = 0.5);
        let train = tiny_train();
        resumed.resume(&dir, &identity, &train).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let back = resumed.averaged_enet.as_ref().unwrap();
        assert_eq!(back.updates, 4);
        assert_eq!(values(&back.net.params), got);

        let mut profile = tiny_profile();
        profile.em.enet_average = 1.0;
        let error = profile.em.validate().unwrap_err();
        assert!(error.contains("em.enet_average"), "{error}");
    }

    #[test]
    fn snapshots_score_the_mean_of_the_last_e_nets_and_resume_without_changing_training() {
        let mut plain = tiny_with(|_| ());
        let mut ensemble = tiny_with(|p| p.em.score_snapshots = 2);
        let x = images(20, 4);
        let posterior = |net: &Classifier| softmax(&net.predict_logits(&x, 7, Mode::Eval).unwrap());
        let keep = |model: &mut GanEm| {
            let enet = &model.enet;
            model.snapshots.as_mut().unwrap().keep(enet).unwrap();
        };
        plain.enet_update(8).unwrap();
        ensemble.enet_update(8).unwrap();
        assert_eq!(ensemble.predict(&x).unwrap(), plain.predict(&x).unwrap());
        keep(&mut ensemble);
        assert_eq!(
            ensemble.predict(&x).unwrap(),
            plain.predict(&x).unwrap(),
            "one snapshot is the E-net itself"
        );
        let first = posterior(&plain.enet).unwrap();
        for _ in 0..3 {
            plain.enet_update(8).unwrap();
            ensemble.enet_update(8).unwrap();
        }
        keep(&mut ensemble);
        assert_eq!(
            values(&plain.enet.params),
            values(&ensemble.enet.params),
            "snapshots leave the E-net's training alone"
        );
        let newest = posterior(&plain.enet).unwrap();
        let hard = |p: &Tensor| -> Vec<u32> { p.argmax(1).unwrap().to_vec1().unwrap() };
        let order = snapshots::matching_classes(&hard(&first), &hard(&newest), 3).unwrap();
        let aligned = first
            .index_select(&Tensor::from_vec(order, 3, &Device::Cpu).unwrap(), 1)
            .unwrap();
        let expected: Vec<usize> = hard(&(newest + aligned).unwrap())
            .into_iter()
            .map(|c| c as usize)
            .collect();
        let scored = ensemble.predict(&x).unwrap();
        assert_eq!(scored, expected);

        // A third snapshot takes the oldest one's place.
        ensemble.enet_update(8).unwrap();
        keep(&mut ensemble);
        assert_eq!(ensemble.snapshots.as_ref().unwrap().kept.len(), 2);
        let scored = ensemble.predict(&x).unwrap();

        let dir = std::env::temp_dir().join(format!("ganem-snapshots-{}", std::process::id()));
        let identity = tiny_identity();
        ensemble.save(&dir, &identity).unwrap();
        let mut resumed = tiny_with(|p| p.em.score_snapshots = 2);
        let train = tiny_train();
        resumed.resume(&dir, &identity, &train).unwrap();
        let mut too_small = tiny_with(|p| p.em.score_snapshots = 3);
        too_small.snapshots = Some(snapshots::SnapshotEnsemble::new(Vec::new()));
        let refused = too_small.resume(&dir, &identity, &train).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(resumed.predict(&x).unwrap(), scored);
        assert!(
            refused.to_string().contains("2 E-net snapshots"),
            "{refused}"
        );

        let mut profile = tiny_profile();
        profile.em.score_snapshots = 3;
        profile.em.validate().unwrap();
        profile.em.enet_average = 0.9;
        let error = profile.em.validate().unwrap_err();
        assert!(error.contains("em.score_snapshots"), "{error}");
    }

    #[test]
    fn a_fresh_generator_batch_trains_g_on_other_images_than_ds() {
        let run = |batch: GeneratorBatch| {
            let mut model = tiny_with(|p| p.em.generator_batch = batch);
            let w = Tensor::full(1.0f32 / 3.0, (8, 3), &Device::Cpu).unwrap();
            model.gan_update(&images(8, 5), &w).unwrap();
            (
                values(&model.discriminator.params),
                values(&model.generator.params),
            )
        };
        let (reuse, fresh) = (run(GeneratorBatch::Reuse), run(GeneratorBatch::Fresh));
        assert_eq!(reuse.0, fresh.0, "D's update is the same");
        assert_ne!(reuse.1, fresh.1, "G's update differs");
    }

    #[test]
    fn exploding_losses_stop_the_run_as_diverged() {
        let mut profile = tiny_profile();
        profile.optimizer = OptimizerSpec::Adam {
            lr: 1e4,
            beta1: 0.5,
            beta2: 0.999,
            generator_scale: 1.0,
            enet_scale: 1.0,
        };
        let shape = crate::data::mnist::SHAPE;
        let mut model = GanEm::new(&profile, 3, shape, 8, 1, &Device::Cpu).unwrap();
        let w = Tensor::full(1.0f32 / 3.0, (8, 3), &Device::Cpu).unwrap();
        let real = images(8, 5);
        let error = (0..50)
            .find_map(|_| model.gan_update(&real, &w).err())
            .expect("the losses explode within 50 updates");
        let message = error.to_string();
        assert!(
            matches!(error, Error::Diverged { iteration: 1, .. }),
            "{message}"
        );
        assert!(
            message.contains("EM iteration 1") && message.contains("L_"),
            "{message}"
        );
    }

    #[test]
    fn labelled_statistics_ignore_the_generated_images() {
        let running_mean_after_update = |batch_norm: EnetBatchNorm, zero_generator: bool| {
            let edit = |p: &mut Profile| p.em.enet_batch_norm = batch_norm;
            running_mean(&after_one_labelled_e_step_update(edit, zero_generator))
        };
        let labelled = running_mean_after_update(EnetBatchNorm::Labelled, false);
        assert!(
            labelled.iter().any(|&m| m != 0.0),
            "the labelled batch counts"
        );
        assert_eq!(
            labelled,
            running_mean_after_update(EnetBatchNorm::Labelled, true)
        );
        assert_ne!(
            running_mean_after_update(EnetBatchNorm::Running, false),
            running_mean_after_update(EnetBatchNorm::Running, true)
        );

        let mut profile = tiny_profile();
        profile.em.enet_batch_norm = EnetBatchNorm::Labelled;
        assert!(profile
            .validate()
            .unwrap_err()
            .contains("e_step_labelled_batch"));
        profile.semi.e_step_labelled_batch = 4;
        profile.validate().unwrap();
        let mut unlabelled =
            GanEm::new(&profile, 3, crate::data::mnist::SHAPE, 8, 1, &Device::Cpu).unwrap();
        let train = ImageSet {
            images: images(8, 4),
            labels: vec![0; 8],
            shape: crate::data::mnist::SHAPE,
            classes: 3,
        };
        let error = unlabelled.step(&train, &mut Silent).unwrap_err();
        assert!(
            error.to_string().contains("needs labelled images"),
            "{error}"
        );
    }

    #[test]
    fn memory_estimate_grows_with_k_and_refuses_absurd_runs() {
        let profile = tiny_profile();
        let shape = crate::data::mnist::SHAPE;
        let small = GanEm::memory_estimate(&profile, 10, shape, 60_000);
        let huge = GanEm::memory_estimate(&profile, 100_000, shape, 60_000);
        assert!(small < 2 << 30, "{small}");
        // The soft assignments alone are 60,000 x 100,000 floats.
        assert!(huge > 24 << 30, "{huge}");
    }

    fn running_mean(model: &GanEm) -> Vec<f32> {
        let t = model.enet.params.get("e.fc.bn.running_mean").unwrap();
        t.to_vec1().unwrap()
    }

    #[test]
    fn frozen_enet_keeps_its_initial_statistics_and_assigns_with_them() {
        let mut frozen = tiny(EnetBatchNorm::Frozen);
        frozen.enet_update(20).unwrap();
        assert!(running_mean(&frozen).iter().all(|&m| m == 0.0));

        let mut batch = tiny(EnetBatchNorm::Batch);
        batch.enet_update(20).unwrap();
        assert!(running_mean(&batch).iter().any(|&m| m != 0.0));

        // Batch-statistics assignment of an image depends on the rest of its batch; running
        // statistics do not.
        let images = Tensor::rand(0f32, 1.0, (4, 28, 28, 1), &Device::Cpu).unwrap();
        let first = |model: &GanEm, n: usize| -> Vec<f32> {
            let w = model.assign(&images.narrow(0, 0, n).unwrap()).unwrap();
            w.get(0).unwrap().to_vec1().unwrap()
        };
        assert_eq!(first(&frozen, 2), first(&frozen, 4));
        assert_ne!(first(&batch, 2), first(&batch, 4));
    }
}
