//! The three networks of GAN-EM: generator G, discriminator D (K + 1 outputs) and E-net
//! (K outputs), built from one [`NetSpec`] so that every data set is a configuration.

pub mod layers;

use candle_core::{Device, Result, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use layers::{Activation, Init, Mode, Params, Weights};
use layers::{BatchNorm, Conv2d, ConvTranspose2d, Linear};

/// Shape of the networks. Defaults are the paper's MNIST networks (Table 4, App. B.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSpec {
    /// Dimension of the generator's noise input (62 in the paper).
    pub noise_dim: usize,
    /// Multiplier on every channel count and hidden width (1.0 = as printed).
    pub width: f64,
    /// Output channels of the 4x4 stride-2 convolutions of D and the E-net.
    pub conv_channels: Vec<usize>,
    /// Hidden fully connected layer of D and the E-net.
    pub fc_hidden: usize,
    /// BatchNorm after the first convolution of D and the E-net (Table 4: yes; DCGAN: no).
    pub first_conv_batch_norm: bool,
    /// An extra FC layer at the generator's input (the authors' code: 1024; the paper: none, 0).
    pub generator_fc_hidden: usize,
    /// Channels of the generator's first feature map (128 for 128 x 7 x 7).
    pub generator_base_channels: usize,
    /// Output channels of the generator's hidden 4x4 stride-2 transposed convolutions; a last
    /// one to the image's channels follows.
    pub generator_deconv_channels: Vec<usize>,
    /// Hidden activation of the generator (the paper: lReLU(0.2); the authors' code: ReLU).
    pub generator_activation: Activation,
    /// The generator's output activation: `sigmoid` for images in [0, 1] (MNIST), `tanh` for
    /// images in [-1, 1] (SVHN, CelebA).
    pub generator_output: Activation,
    /// How weights are first drawn (not stated by the paper; DCGAN's N(0, 0.02) by default).
    pub init: Init,
    /// Units of the E-net's layer r (Sec. 5.4), between its hidden FC layer and its output
    /// layer, whose output is the reduced representation of an image; 0: no such layer.
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub enet_bottleneck: usize,
}

impl Default for NetSpec {
    fn default() -> Self {
        Self {
            noise_dim: 62,
            width: 1.0,
            conv_channels: vec![64, 128, 256],
            fc_hidden: 1024,
            first_conv_batch_norm: true,
            generator_fc_hidden: 0,
            generator_base_channels: 128,
            generator_deconv_channels: vec![64],
            generator_activation: Activation::LeakyRelu,
            generator_output: Activation::Sigmoid,
            init: Init::Dcgan,
            enet_bottleneck: 0,
        }
    }
}

impl NetSpec {
    /// Checks every setting's range (0 for `generator_fc_hidden` means no such layer).
    pub fn validate(&self) -> std::result::Result<(), crate::config::validate::Violation> {
        use crate::config::validate;
        validate::count("nets.noise_dim", self.noise_dim)?;
        validate::positive("nets.width", self.width)?;
        validate::sizes("nets.conv_channels", &self.conv_channels)?;
        validate::count("nets.fc_hidden", self.fc_hidden)?;
        validate::count("nets.generator_base_channels", self.generator_base_channels)?;
        if !matches!(
            self.generator_output,
            Activation::Sigmoid | Activation::Tanh
        ) {
            return Err(format!(
                "nets.generator_output = {:?} is out of range: it must be sigmoid or tanh",
                self.generator_output
            ));
        }
        if self.generator_deconv_channels.contains(&0) {
            return Err(format!(
                "nets.generator_deconv_channels = {:?} is out of range: each size must be at \
                 least 1",
                self.generator_deconv_channels
            ));
        }
        Ok(())
    }

    /// How many times the generator doubles its first feature map's side (its hidden
    /// transposed convolutions and the output one): image sides must be a multiple of
    /// `1 << generator_upsamplings()`.
    pub fn generator_upsamplings(&self) -> usize {
        self.generator_deconv_channels.len() + 1
    }

    fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.width).round() as usize).max(1)
    }
}

/// Shape of one image, NHWC without the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

const KERNEL: usize = 4;
const STRIDE: usize = 2;
const PADDING: usize = 1;

fn conv_out(side: usize) -> usize {
    (side + 2 * PADDING - KERNEL) / STRIDE + 1
}

/// Numbers (f32) a network holds: trainable parameters, and activations per image in one
/// forward pass (what the memory estimate before a run counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetSize {
    pub params: usize,
    pub activations_per_image: usize,
}

/// [`NetSize`] of a [`Classifier`] with `outputs` logits.
pub fn classifier_size(spec: &NetSpec, image: ImageShape, outputs: usize) -> NetSize {
    let (mut channels, mut h, mut w) = (image.channels, image.height, image.width);
    let mut size = NetSize::default();
    for &c in &spec.conv_channels {
        let c = spec.scaled(c);
        (h, w) = (conv_out(h), conv_out(w));
        size.params += KERNEL * KERNEL * channels * c;
        // The im2col patches and the output.
        size.activations_per_image += h * w * (KERNEL * KERNEL * channels + c);
        channels = c;
    }
    let hidden = spec.scaled(spec.fc_hidden);
    size.params += channels * h * w * hidden + hidden * outputs;
    size.activations_per_image += hidden + outputs;
    size
}

/// [`NetSize`] of a [`Generator`] for `classes` classes.
pub fn generator_size(spec: &NetSpec, image: ImageShape, classes: usize) -> NetSize {
    let factor = 1usize << (spec.generator_deconv_channels.len() + 1);
    let (mut h, mut w) = (image.height / factor, image.width / factor);
    let mut channels = spec.scaled(spec.generator_base_channels);
    let mut inputs = spec.noise_dim + classes;
    let mut size = NetSize::default();
    if spec.generator_fc_hidden > 0 {
        let hidden = spec.scaled(spec.generator_fc_hidden);
        size.params += inputs * hidden;
        size.activations_per_image += hidden;
        inputs = hidden;
    }
    size.params += inputs * channels * h * w;
    size.activations_per_image += channels * h * w;
    let outs = spec
        .generator_deconv_channels
        .iter()
        .map(|&c| spec.scaled(c));
    for c in outs.chain(std::iter::once(image.channels)) {
        size.params += channels * KERNEL * KERNEL * c;
        // The column buffer and the output.
        size.activations_per_image += h * w * KERNEL * KERNEL * c + 4 * h * w * c;
        (h, w, channels) = (h * STRIDE, w * STRIDE, c);
    }
    size
}

/// Multiply-adds x 2 of one forward pass of one image through [`Classifier`].
pub fn classifier_flops(spec: &NetSpec, image: ImageShape, outputs: usize) -> f64 {
    let (mut channels, mut h, mut w) = (image.channels, image.height, image.width);
    let mut flops = 0.0;
    for &c in &spec.conv_channels {
        let c = spec.scaled(c);
        (h, w) = (conv_out(h), conv_out(w));
        flops += 2.0 * (h * w * c * KERNEL * KERNEL * channels) as f64;
        channels = c;
    }
    let hidden = spec.scaled(spec.fc_hidden);
    flops + 2.0 * (channels * h * w * hidden + hidden * outputs) as f64
}

/// Multiply-adds x 2 of one forward pass of one image through [`Generator`].
pub fn generator_flops(spec: &NetSpec, image: ImageShape, classes: usize) -> f64 {
    let factor = 1usize << (spec.generator_deconv_channels.len() + 1);
    let (mut h, mut w) = (image.height / factor, image.width / factor);
    let mut channels = spec.scaled(spec.generator_base_channels);
    let mut inputs = spec.noise_dim + classes;
    let mut flops = 0.0;
    if spec.generator_fc_hidden > 0 {
        let hidden = spec.scaled(spec.generator_fc_hidden);
        flops += 2.0 * (inputs * hidden) as f64;
        inputs = hidden;
    }
    flops += 2.0 * (inputs * channels * h * w) as f64;
    let outs = spec
        .generator_deconv_channels
        .iter()
        .map(|&c| spec.scaled(c));
    for c in outs.chain(std::iter::once(image.channels)) {
        flops += 2.0 * (h * w * channels * KERNEL * KERNEL * c) as f64;
        (h, w, channels) = (h * STRIDE, w * STRIDE, c);
    }
    flops
}

/// Conditional generator G(z, c): noise and a one-hot class to an image (in [0, 1] or
/// [-1, 1], by its output activation).
pub struct Generator {
    pub params: Params,
    input_fc: Option<(Linear, BatchNorm)>,
    base_fc: Linear,
    base_bn: BatchNorm,
    hidden: Vec<(ConvTranspose2d, BatchNorm)>,
    output: ConvTranspose2d,
    base_side: (usize, usize),
    base_channels: usize,
    activation: Activation,
    output_activation: Activation,
    /// Noise dimension followed by the number of classes.
    pub input_dims: (usize, usize),
}

impl Generator {
    pub fn new(
        spec: &NetSpec,
        image: ImageShape,
        classes: usize,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut params = Params::with_init(device, spec.init);
        let upsamplings = spec.generator_upsamplings();
        let factor = 1usize << upsamplings;
        if !image.height.is_multiple_of(factor) || !image.width.is_multiple_of(factor) {
            candle_core::bail!(
                "generator: {} transposed convolutions cannot produce {}x{} images",
                upsamplings,
                image.height,
                image.width
            );
        }
        let base_side = (image.height / factor, image.width / factor);
        let base_channels = spec.scaled(spec.generator_base_channels);
        let mut inputs = spec.noise_dim + classes;
        let input_fc = if spec.generator_fc_hidden > 0 {
            let hidden = spec.scaled(spec.generator_fc_hidden);
            let fc = Linear::new(&mut params, "g.fc_in", inputs, hidden, false, rng)?;
            let bn = BatchNorm::new(&mut params, "g.fc_in.bn", hidden)?;
            inputs = hidden;
            Some((fc, bn))
        } else {
            None
        };
        let base_len = base_channels * base_side.0 * base_side.1;
        let base_fc = Linear::new(&mut params, "g.fc_base", inputs, base_len, false, rng)?;
        // BatchNorm1d over the FC's features, as after any FC layer (not per channel).
        let base_bn = BatchNorm::new(&mut params, "g.fc_base.bn", base_len)?;
        let mut hidden = Vec::new();
        let mut channels = base_channels;
        for (i, &c) in spec.generator_deconv_channels.iter().enumerate() {
            let c = spec.scaled(c);
            let name = format!("g.deconv{i}");
            let deconv = ConvTranspose2d::new(
                &mut params,
                &name,
                channels,
                c,
                KERNEL,
                STRIDE,
                PADDING,
                false,
                rng,
            )?;
            hidden.push((
                deconv,
                BatchNorm::new(&mut params, &format!("{name}.bn"), c)?,
            ));
            channels = c;
        }
        let output = ConvTranspose2d::new(
            &mut params,
            "g.deconv_out",
            channels,
            image.channels,
            KERNEL,
            STRIDE,
            PADDING,
            true,
            rng,
        )?;
        Ok(Self {
            params,
            input_fc,
            base_fc,
            base_bn,
            hidden,
            output,
            base_side,
            base_channels,
            activation: spec.generator_activation,
            output_activation: spec.generator_output,
            input_dims: (spec.noise_dim, classes),
        })
    }

    /// Width of the range of G's pixel values (1 where unbounded, which validation forbids).
    pub fn output_range(&self) -> f64 {
        self.output_activation.output_range().unwrap_or(1.0)
    }

    /// `input`: `(B, noise_dim + K)`, noise then one-hot class. Returns `(B, H, W, C)`.
    pub fn forward(&self, input: &Tensor, mode: Mode, weights: Weights) -> Result<Tensor> {
        let act = self.activation;
        let mut x = input.clone();
        if let Some((fc, bn)) = &self.input_fc {
            x = bn.forward(&fc.forward(&x, weights)?, mode, act, weights)?;
        }
        let batch = x.dim(0)?;
        let (h, w) = self.base_side;
        x = self
            .base_bn
            .forward(&self.base_fc.forward(&x, weights)?, mode, act, weights)?
            .reshape((batch, h, w, self.base_channels))?;
        for (deconv, bn) in &self.hidden {
            x = bn.forward(&deconv.forward(&x, weights)?, mode, act, weights)?;
        }
        self.output_activation
            .apply(&self.output.forward(&x, weights)?)
    }
}

/// Convolutional classifier: the discriminator (K + 1 logits, the last one real-vs-fake) and
/// the E-net (K logits) share this shape (Table 4).
pub struct Classifier {
    pub params: Params,
    convs: Vec<(Conv2d, Option<BatchNorm>)>,
    fc: Linear,
    fc_bn: BatchNorm,
    /// Layer r of Sec. 5.4 (the E-net's only): linear, so that its k numbers can spread out
    /// as far as the output layer needs (with BatchNorm on 2 units, the E-net could not fit
    /// the generated images: L_E stayed at 1.8 against 0.01 without layer r).
    bottleneck: Option<Linear>,
    head: Linear,
}

impl Classifier {
    /// `bottleneck`: units of a hidden layer before the output layer (0: none).
    pub fn new(
        spec: &NetSpec,
        image: ImageShape,
        outputs: usize,
        bottleneck: usize,
        name: &str,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut params = Params::with_init(device, spec.init);
        let mut convs = Vec::new();
        let (mut channels, mut h, mut w) = (image.channels, image.height, image.width);
        for (i, &c) in spec.conv_channels.iter().enumerate() {
            let c = spec.scaled(c);
            let layer = format!("{name}.conv{i}");
            let conv = Conv2d::new(
                &mut params,
                &layer,
                channels,
                c,
                KERNEL,
                STRIDE,
                PADDING,
                rng,
            )?;
            let bn = if i > 0 || spec.first_conv_batch_norm {
                Some(BatchNorm::new(&mut params, &format!("{layer}.bn"), c)?)
            } else {
                None
            };
            convs.push((conv, bn));
            channels = c;
            (h, w) = (conv_out(h), conv_out(w));
        }
        let hidden = spec.scaled(spec.fc_hidden);
        let fc = Linear::new(
            &mut params,
            &format!("{name}.fc"),
            channels * h * w,
            hidden,
            false,
            rng,
        )?;
        let fc_bn = BatchNorm::new(&mut params, &format!("{name}.fc.bn"), hidden)?;
        let (bottleneck, head_inputs) = if bottleneck > 0 {
            let r = Linear::new(
                &mut params,
                &format!("{name}.r"),
                hidden,
                bottleneck,
                true,
                rng,
            )?;
            (Some(r), bottleneck)
        } else {
            (None, hidden)
        };
        let head = Linear::new(
            &mut params,
            &format!("{name}.head"),
            head_inputs,
            outputs,
            true,
            rng,
        )?;
        Ok(Self {
            params,
            convs,
            fc,
            fc_bn,
            bottleneck,
            head,
        })
    }

    /// `images`: `(B, H, W, C)` in [0, 1]. Returns logits `(B, outputs)`.
    pub fn forward(&self, images: &Tensor, mode: Mode, weights: Weights) -> Result<Tensor> {
        self.head
            .forward(&self.features(images, mode, weights)?, weights)
    }

    /// The output of the last hidden layer (layer r when there is one): what the output layer
    /// reads, and the reduced representation of Sec. 5.4.
    pub fn features(&self, images: &Tensor, mode: Mode, weights: Weights) -> Result<Tensor> {
        let mut x = images.clone();
        for (conv, bn) in &self.convs {
            x = conv.forward(&x, weights)?;
            x = match bn {
                Some(bn) => bn.forward(&x, mode, Activation::LeakyRelu, weights)?,
                None => Activation::LeakyRelu.apply(&x)?,
            };
        }
        let x = x.flatten_from(1)?;
        let x = self.fc_bn.forward(
            &self.fc.forward(&x, weights)?,
            mode,
            Activation::LeakyRelu,
            weights,
        )?;
        match &self.bottleneck {
            Some(r) => r.forward(&x, weights),
            None => Ok(x),
        }
    }

    /// Logits for many images, in batches, without building a graph; `mode` is `Eval` or
    /// `BatchStats`.
    pub fn predict_logits(&self, images: &Tensor, batch: usize, mode: Mode) -> Result<Tensor> {
        self.in_batches(images, batch, |x| self.forward(x, mode, Weights::Fixed))
    }

    /// [`Classifier::features`] of many images, in batches, without building a graph.
    pub fn predict_features(&self, images: &Tensor, batch: usize, mode: Mode) -> Result<Tensor> {
        self.in_batches(images, batch, |x| self.features(x, mode, Weights::Fixed))
    }

    fn in_batches(
        &self,
        images: &Tensor,
        batch: usize,
        f: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let n = images.dim(0)?;
        let mut out = Vec::with_capacity(n.div_ceil(batch));
        for start in (0..n).step_by(batch) {
            let len = batch.min(n - start);
            out.push(f(&images.narrow(0, start, len)?)?.detach());
        }
        Tensor::cat(&out, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{max_rel_diff, random};
    use candle_core::Var;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(7)
    }

    /// Forward and all gradients of a layer on the custom CPU path against candle's reference.
    fn check_against_reference(
        fast: impl Fn(&Tensor) -> Tensor,
        reference: impl Fn(&Tensor) -> Tensor,
        input: &Tensor,
        weight: &Var,
    ) {
        let x = Var::from_tensor(input).unwrap();
        let y1 = fast(x.as_tensor());
        let y2 = reference(x.as_tensor());
        assert!(max_rel_diff(&y1, &y2) < 1e-4, "forward differs");
        let probe = random(y1.dims(), 99);
        let g1 = (y1 * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (y2 * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, weight] {
            let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }

    #[test]
    fn conv2d_matches_candle() {
        for (h, c_in, c_out) in [(28, 1, 8), (14, 8, 16), (7, 16, 32)] {
            let mut p = Params::new(&Device::Cpu);
            let conv = Conv2d::new(&mut p, "c", c_in, c_out, 4, 2, 1, &mut rng()).unwrap();
            let w = p.trainable()[0].clone();
            check_against_reference(
                |x| conv.forward(x, Weights::Train).unwrap(),
                |x| conv.forward_reference(x, Weights::Train).unwrap(),
                &random(&[3, h, h, c_in], 1),
                &w,
            );
        }
    }

    #[test]
    fn conv_transpose2d_matches_candle() {
        for (h, c_in, c_out) in [(7, 16, 8), (14, 8, 1)] {
            let mut p = Params::new(&Device::Cpu);
            let deconv =
                ConvTranspose2d::new(&mut p, "d", c_in, c_out, 4, 2, 1, false, &mut rng()).unwrap();
            let w = p.trainable()[0].clone();
            check_against_reference(
                |x| deconv.forward(x, Weights::Train).unwrap(),
                |x| {
                    deconv
                        .forward_reference_unbiased(x, Weights::Train)
                        .unwrap()
                },
                &random(&[3, h, h, c_in], 2),
                &w,
            );
        }
    }

    /// Table 4's networks at a quarter of their width: quick, every layer kind present.
    fn quarter_width() -> NetSpec {
        NetSpec {
            width: 0.25,
            ..NetSpec::default()
        }
    }

    #[test]
    fn layer_r_has_k_units_and_is_what_the_output_layer_reads() {
        let (spec, image) = (quarter_width(), crate::data::mnist::SHAPE);
        let e = Classifier::new(&spec, image, 10, 7, "e", &Device::Cpu, &mut rng()).unwrap();
        assert!(e.params.get("e.r.weight").is_some());
        let x = random(&[5, 28, 28, 1], 4);
        let features = e.features(&x, Mode::Eval, Weights::Fixed).unwrap();
        assert_eq!(features.dims(), &[5, 7]);
        let logits = e.forward(&x, Mode::Eval, Weights::Fixed).unwrap();
        let from_features = e.head.forward(&features, Weights::Fixed).unwrap();
        assert!(max_rel_diff(&logits, &from_features) < 1e-6);
        let batched = e.predict_features(&x, 2, Mode::Eval).unwrap();
        assert!(max_rel_diff(&features, &batched) < 1e-6);
        // Without layer r the features are the hidden FC layer's.
        let plain = Classifier::new(&spec, image, 10, 0, "e", &Device::Cpu, &mut rng()).unwrap();
        let hidden = spec.scaled(spec.fc_hidden);
        let features = plain.features(&x, Mode::Eval, Weights::Fixed).unwrap();
        assert_eq!(features.dims(), &[5, hidden]);
    }

    #[test]
    fn fixed_weights_give_the_same_input_gradient_and_no_weight_gradients() {
        let (spec, image) = (quarter_width(), crate::data::mnist::SHAPE);
        let d = Classifier::new(&spec, image, 11, 0, "d", &Device::Cpu, &mut rng()).unwrap();
        let x = Var::from_tensor(&random(&[6, 28, 28, 1], 4)).unwrap();
        let probe = random(&[6, 11], 5);
        let run = |weights| {
            let y = d.forward(x.as_tensor(), Mode::BatchStats, weights).unwrap();
            let grads = (&y * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let dx = grads.get(x.as_tensor()).unwrap().clone();
            let weight_grads = d
                .params
                .trainable()
                .iter()
                .filter(|v| grads.get(v.as_tensor()).is_some())
                .count();
            (y, dx, weight_grads)
        };
        let (y_train, dx_train, n_train) = run(Weights::Train);
        let (y_fixed, dx_fixed, n_fixed) = run(Weights::Fixed);
        assert!(max_rel_diff(&y_fixed, &y_train) < 1e-6);
        assert!(max_rel_diff(&dx_fixed, &dx_train) < 1e-5);
        assert_eq!(n_train, d.params.trainable().len());
        assert_eq!(n_fixed, 0);
    }

    #[test]
    fn networks_on_the_custom_kernels_match_candles_own_ops() {
        // A D update (real and generated batch) and a G update through D with D's weights
        // fixed, as the EM loop runs them: every parameter's gradient on this module's
        // kernels against candle's own ops (and D's weights kept in the graph).
        let (spec, image) = (quarter_width(), crate::data::mnist::SHAPE);
        let g = Generator::new(&spec, image, 10, &Device::Cpu, &mut rng()).unwrap();
        let d = Classifier::new(&spec, image, 11, 0, "d", &Device::Cpu, &mut rng()).unwrap();
        let (z, real) = (random(&[8, 72], 6), random(&[8, 28, 28, 1], 7));
        let (probe_real, probe_fake) = (random(&[8, 11], 8), random(&[8, 11], 9));
        let weighted_sum = |t: &Tensor, p: &Tensor| (t * p).unwrap().sum_all().unwrap();
        let gradients = |reference: bool| {
            crate::ops::use_reference_ops(reference);
            let fixed = if reference {
                Weights::Train
            } else {
                Weights::Fixed
            };
            let fake = g.forward(&z, Mode::Train, Weights::Train).unwrap();
            let real_logits = d.forward(&real, Mode::Train, Weights::Train).unwrap();
            let fake_logits = d
                .forward(&fake.detach(), Mode::Train, Weights::Train)
                .unwrap();
            let loss_d = (weighted_sum(&real_logits, &probe_real)
                + weighted_sum(&fake_logits, &probe_fake))
            .unwrap();
            let loss_g = weighted_sum(&d.forward(&fake, Mode::Train, fixed).unwrap(), &probe_real);
            let (grads_d, grads_g) = (loss_d.backward().unwrap(), loss_g.backward().unwrap());
            crate::ops::use_reference_ops(false);
            let of = |params: &Params, grads: &candle_core::backprop::GradStore| {
                params
                    .trainable()
                    .iter()
                    .map(|v| grads.get(v.as_tensor()).unwrap().clone())
                    .collect::<Vec<_>>()
            };
            (of(&d.params, &grads_d), of(&g.params, &grads_g))
        };
        let (ours, reference) = (gradients(false), gradients(true));
        for (a, b) in ours
            .0
            .iter()
            .chain(&ours.1)
            .zip(reference.0.iter().chain(&reference.1))
        {
            let diff = max_rel_diff(a, b);
            assert!(
                diff < 1e-3,
                "gradient of a {:?} parameter differs by {diff}",
                a.dims()
            );
        }
    }

    #[test]
    fn pytorch_initialisation_draws_within_one_over_root_fan_in() {
        let spec = NetSpec {
            init: Init::Pytorch,
            ..quarter_width()
        };
        let image = crate::data::mnist::SHAPE;
        let d = Classifier::new(&spec, image, 11, 0, "d", &Device::Cpu, &mut rng()).unwrap();
        let head: Vec<f32> = d
            .params
            .get("d.head.weight")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let bound = 1.0 / (256f32).sqrt(); // the head reads the 256 hidden units
        assert!(head.iter().all(|w| w.abs() <= bound));
        // U(-b, b) has standard deviation b / sqrt(3); N(0, 0.02) would give 0.02.
        let std = (head.iter().map(|w| w * w).sum::<f32>() / head.len() as f32).sqrt();
        assert!((std - bound / 3f32.sqrt()).abs() < 0.1 * bound, "{std}");
        let bias: Vec<f32> = d.params.get("d.head.bias").unwrap().to_vec1().unwrap();
        assert!(bias.iter().any(|&b| b != 0.0) && bias.iter().all(|b| b.abs() <= bound));
        let dcgan = Classifier::new(
            &quarter_width(),
            image,
            11,
            0,
            "d",
            &Device::Cpu,
            &mut rng(),
        )
        .unwrap();
        let bias: Vec<f32> = dcgan.params.get("d.head.bias").unwrap().to_vec1().unwrap();
        assert!(bias.iter().all(|&b| b == 0.0));
    }

    #[test]
    fn mnist_networks_have_the_papers_shapes() {
        let (spec, image) = (NetSpec::default(), crate::data::mnist::SHAPE);
        let g = Generator::new(&spec, image, 10, &Device::Cpu, &mut rng()).unwrap();
        let d = Classifier::new(&spec, image, 11, 0, "d", &Device::Cpu, &mut rng()).unwrap();
        let z = random(&[5, 72], 3);
        let x = g.forward(&z, Mode::Train, Weights::Train).unwrap();
        assert_eq!(x.dims(), &[5, 28, 28, 1]);
        assert_eq!(
            d.forward(&x, Mode::Train, Weights::Train).unwrap().dims(),
            &[5, 11]
        );
        // FC 72 -> 6272 is the generator's first layer; D's FC reads 256 x 3 x 3.
        let has_weight =
            |params: &Params, dims: &[usize]| params.trainable().iter().any(|v| v.dims() == dims);
        assert!(has_weight(&d.params, &[2304, 1024]));
        assert!(has_weight(&g.params, &[72, 6272]));
    }
}
