//! The EM loop of Algorithm 1: the M-step updates phi and trains G and D on the soft
//! assignments; the E-step trains the E-net on generated images and re-assigns the real ones.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::losses::{discriminator_loss, enet_loss, generator_loss, GeneratorLoss};
use crate::nets::{layers::softmax, Classifier, Generator, ImageShape, Mode, NetSpec, Weights};
use crate::optim::{Net, NetOptimizer, OptimizerSpec};

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
    /// Always the initial running statistics (mean 0, variance 1), never updated, so each
    /// BatchNorm is a learned per-channel scale and shift: the authors' code puts the E-net in
    /// eval mode before its first update and never back. Generated and real images then go
    /// through the same function.
    Frozen,
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
    /// E-net updates per E-step (q of Algorithm 1).
    pub e_step_iterations: usize,
    /// Generated images per E-net update.
    pub e_step_batch_size: usize,
    pub e_step_classes: ClassSampling,
    pub generator_loss: GeneratorLoss,
    /// Weight of the extra real-vs-fake unit's loss in L_D (0 disables the unit's loss).
    pub extra_unit_weight: f64,
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
}

impl Default for EmSpec {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 64,
            m_step_epochs: 5.0,
            e_step_iterations: 1000,
            e_step_batch_size: 256,
            e_step_classes: ClassSampling::Prior,
            generator_loss: GeneratorLoss::PaperKl,
            extra_unit_weight: 1.0,
            lr_decay: 0.98,
            reset_optimizers: false,
            generator_weight_clip: 0.0,
            discriminator_steps: 1,
            noise: Noise::Uniform,
            eval_batch_size: 1000,
            enet_batch_norm: EnetBatchNorm::Batch,
            e_step_generator_statistics: GeneratorStatistics::Batch,
        }
    }
}

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
    pub seconds: f64,
}

/// The state of a GAN-EM run: the three networks, the prior phi and the soft assignments w.
pub struct GanEm {
    spec: EmSpec,
    optimizer: OptimizerSpec,
    nets: NetSpec,
    pub generator: Generator,
    pub discriminator: Classifier,
    pub enet: Classifier,
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
        let discriminator = Classifier::new(nets, image, clusters + 1, "d", device, &mut rng)?;
        let enet = Classifier::new(nets, image, clusters, "e", device, &mut rng)?;
        let soft_assignments = Tensor::full(1.0 / clusters as f32, (train_len, clusters), device)?;
        Ok(Self {
            spec: profile.em.clone(),
            optimizer: profile.optimizer.clone(),
            nets: profile.nets.clone(),
            generator,
            discriminator,
            enet,
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

    pub fn clusters(&self) -> usize {
        self.clusters
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

    /// One M-step update on a real batch with its soft assignments `(B, K)`: D (as many
    /// times as `discriminator_steps`) then G. Returns the mean L_D and L_G.
    pub fn gan_update(&mut self, real: &Tensor, soft_assignments: &Tensor) -> Result<(f64, f64)> {
        let batch = real.dim(0)?;
        let d_steps = self.spec.discriminator_steps.max(1);
        let mut loss_d = 0.0;
        let mut fake = None;
        for _ in 0..d_steps {
            let classes: Vec<u32> = (0..batch)
                .map(|_| self.rng.gen_range(0..self.clusters as u32))
                .collect();
            let input = self.generator_input(&classes)?;
            let images = self
                .generator
                .forward(&input, Mode::Train, Weights::Train)?;
            let real_logits = self
                .discriminator
                .forward(real, Mode::Train, Weights::Train)?;
            let detached = images.detach();
            let fake_logits = self
                .discriminator
                .forward(&detached, Mode::Train, Weights::Train)?;
            let weight = self.spec.extra_unit_weight;
            let loss = discriminator_loss(&real_logits, soft_assignments, &fake_logits, weight)?;
            self.optimizers()?.discriminator.backward_step(&loss)?;
            loss_d += loss.to_scalar::<f32>()? as f64;
            fake = Some((images, classes));
        }
        // G reuses the last generated batch: its graph is still valid since G is unchanged.
        let (images, classes) = fake.expect("at least one D step");
        // D's weights are constants of G's update: their gradients would go unused.
        let logits = self
            .discriminator
            .forward(&images, Mode::Train, Weights::Fixed)?;
        let loss = generator_loss(&logits, &self.one_hot(&classes)?, self.spec.generator_loss)?;
        self.optimizers()?.generator.backward_step(&loss)?;
        if self.spec.generator_weight_clip > 0.0 {
            self.generator
                .params
                .clip(self.spec.generator_weight_clip)?;
        }
        Ok((loss_d / d_steps as f64, loss.to_scalar::<f32>()? as f64))
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
        let enet_mode = match self.spec.enet_batch_norm {
            EnetBatchNorm::Frozen => Mode::Eval,
            EnetBatchNorm::Batch | EnetBatchNorm::Running => Mode::Train,
        };
        let logits = self.enet.forward(&images, enet_mode, Weights::Train)?;
        let targets = Tensor::from_vec(classes, batch, &self.device)?;
        let loss = enet_loss(&logits, &targets)?;
        self.optimizers()?.enet.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()? as f64)
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
        self.rng = rng_for(self.seed, 1 + self.iteration as u64);
        self.prepare_optimizers()?;

        // M-step, phi: N_i / N with soft counts.
        let counts: Vec<f32> = self.soft_assignments.sum(0)?.to_vec1()?;
        let total: f64 = counts.iter().map(|&c| c as f64).sum();
        self.phi = counts.iter().map(|&c| c as f64 / total).collect();

        // M-step, psi: G and D on real batches weighted by w, generated classes c ~ U.
        let batch = self.spec.batch_size.min(n);
        let batches = ((self.spec.m_step_epochs * n as f64) / batch as f64).ceil() as usize;
        progress.start(&format!("EM {} M-step", self.iteration + 1), batches as u64);
        let mut order: Vec<u32> = Vec::new();
        let (mut sum_d, mut sum_g) = (0.0, 0.0);
        for _ in 0..batches {
            if order.len() < batch {
                let mut epoch: Vec<u32> = (0..n as u32).collect();
                epoch.shuffle(&mut self.rng);
                order.extend(epoch);
            }
            let idx = Tensor::from_vec(
                order.drain(..batch).collect::<Vec<u32>>(),
                batch,
                &self.device,
            )?;
            let real = train.images.index_select(&idx, 0)?;
            let w = self.soft_assignments.index_select(&idx, 0)?;
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

        // w = E(x_real) (Algorithm 1, line 14).
        self.soft_assignments = self.assign(&train.images)?;
        self.iteration += 1;
        let phi_min = self.phi.iter().copied().fold(f64::INFINITY, f64::min);
        let phi_max = self.phi.iter().copied().fold(0.0, f64::max);
        Ok(IterationStats {
            iteration: self.iteration,
            loss_d: sum_d / batches as f64,
            loss_g: sum_g / batches as f64,
            loss_e: sum_e / steps as f64,
            phi_min,
            phi_max,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Soft assignments P(c | x) `(N, K)` of `images` by the E-net.
    pub fn assign(&self, images: &Tensor) -> Result<Tensor> {
        let mode = match self.spec.enet_batch_norm {
            EnetBatchNorm::Batch => Mode::BatchStats,
            EnetBatchNorm::Running | EnetBatchNorm::Frozen => Mode::Eval,
        };
        let logits = self
            .enet
            .predict_logits(images, self.spec.eval_batch_size, mode)?;
        Ok(softmax(&logits)?)
    }

    /// The most likely cluster of each of `images`.
    pub fn predict(&self, images: &Tensor) -> Result<Vec<usize>> {
        let hard: Vec<u32> = self.assign(images)?.argmax(1)?.to_vec1()?;
        Ok(hard.into_iter().map(|c| c as usize).collect())
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

    /// Saves G, D, the E-net (with running statistics), phi and the iteration into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let nets = [
            ("generator", &self.generator.params),
            ("discriminator", &self.discriminator.params),
            ("enet", &self.enet.params),
        ];
        for (name, params) in nets {
            params.save(&dir.join(format!("{name}.safetensors")))?;
        }
        let state = CheckpointState {
            iteration: self.iteration,
            clusters: self.clusters,
            seed: self.seed,
            phi: self.phi.clone(),
            nets: self.nets.clone(),
        };
        let path = dir.join("state.json");
        let json =
            serde_json::to_string_pretty(&state).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
    }

    /// Restores a run saved by [`GanEm::save`]; `train` re-derives w = E(x_real).
    pub fn resume(&mut self, dir: &Path, train: &ImageSet) -> Result<()> {
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e.to_string()))?;
        if state.clusters != self.clusters || state.nets != self.nets {
            return Err(Error::bad_file(
                &path,
                format!(
                    "checkpoint is for K = {} with other networks; this run has K = {}",
                    state.clusters, self.clusters
                ),
            ));
        }
        let nets = [
            ("generator", &mut self.generator.params),
            ("discriminator", &mut self.discriminator.params),
            ("enet", &mut self.enet.params),
        ];
        for (name, params) in nets {
            params.load(&dir.join(format!("{name}.safetensors")))?;
        }
        self.phi = state.phi;
        self.iteration = state.iteration;
        self.optimizers = None;
        if self.iteration > 0 {
            self.soft_assignments = self.assign(&train.images)?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    iteration: usize,
    clusters: usize,
    seed: u64,
    phi: Vec<f64>,
    nets: NetSpec,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;

    fn tiny(enet_batch_norm: EnetBatchNorm) -> GanEm {
        let text = "description = 'tiny'\n[nets]\nwidth = 0.125\n[em]";
        let mut profile = Profile::from_toml(text, Path::new("tiny.toml")).unwrap();
        profile.em.enet_batch_norm = enet_batch_norm;
        let shape = crate::data::mnist::SHAPE;
        GanEm::new(&profile, 3, shape, 10, 1, &Device::Cpu).unwrap()
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
