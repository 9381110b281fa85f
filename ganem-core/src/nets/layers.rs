//! Layers in NHWC layout with seeded initialisation, backed by `crate::ops` on the CPU.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::VarMap;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::ops::{
    custom_kernels, BatchNormOp, BatchStatistics, Conv2dOp, ConvTranspose2dOp, LeakyRelu, MatMulOp,
    PatchGeometry,
};

/// The trainable and running-statistic tensors of one network, by name.
///
/// Initialisation draws from the caller's seeded generator, never from a global one, so the
/// same seed builds the same network.
pub struct Params {
    map: VarMap,
    trainable: Vec<Var>,
    device: Device,
    init: Init,
}

/// How a network's weights and biases are first drawn (the paper does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Weights from N(0, 0.02^2), biases 0: the DCGAN initialisation.
    #[default]
    Dcgan,
    /// PyTorch's defaults for its layers (the authors' code and the reference probe): weights
    /// and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with PyTorch's fan-in.
    Pytorch,
}

impl Params {
    /// An empty parameter set whose layers are initialised the DCGAN way.
    pub fn new(device: &Device) -> Self {
        Self::with_init(device, Init::Dcgan)
    }

    pub fn with_init(device: &Device, init: Init) -> Self {
        Self {
            map: VarMap::new(),
            trainable: Vec::new(),
            device: device.clone(),
            init,
        }
    }

    /// A layer's weight, drawn by the set's [`Init`]; `fan_in` as PyTorch counts it.
    fn weight(
        &mut self,
        name: &str,
        shape: &[usize],
        fan_in: usize,
        rng: &mut impl Rng,
    ) -> Result<Var> {
        match self.init {
            Init::Dcgan => self.normal(name, shape, INIT_STD, rng),
            Init::Pytorch => self.uniform(name, shape, fan_in, rng),
        }
    }

    /// A layer's bias, drawn by the set's [`Init`].
    fn bias(&mut self, name: &str, len: usize, fan_in: usize, rng: &mut impl Rng) -> Result<Var> {
        match self.init {
            Init::Dcgan => self.constant(name, len, 0.0, true),
            Init::Pytorch => self.uniform(name, &[len], fan_in, rng),
        }
    }

    fn uniform(
        &mut self,
        name: &str,
        shape: &[usize],
        fan_in: usize,
        rng: &mut impl Rng,
    ) -> Result<Var> {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.gen_range(-bound..bound)).collect();
        let t = Tensor::from_vec(values, shape, &self.device)?;
        self.insert(name, t, true)
    }

    fn insert(&mut self, name: &str, tensor: Tensor, trainable: bool) -> Result<Var> {
        let var = Var::from_tensor(&tensor)?;
        let mut data = self.map.data().lock().expect("parameter map poisoned");
        if data.insert(name.to_string(), var.clone()).is_some() {
            candle_core::bail!("parameter {name} defined twice");
        }
        if trainable {
            self.trainable.push(var.clone());
        }
        Ok(var)
    }

    /// Weights drawn from N(0, std^2), the DCGAN initialisation.
    pub fn normal(
        &mut self,
        name: &str,
        shape: &[usize],
        std: f32,
        rng: &mut impl Rng,
    ) -> Result<Var> {
        let normal = Normal::new(0f32, std).map_err(candle_core::Error::wrap)?;
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| normal.sample(rng)).collect();
        let t = Tensor::from_vec(values, shape, &self.device)?;
        self.insert(name, t, true)
    }

    pub fn constant(&mut self, name: &str, len: usize, value: f32, trainable: bool) -> Result<Var> {
        let t = Tensor::full(value, len, &self.device)?;
        self.insert(name, t, trainable)
    }

    /// The tensor named `name` (e.g. `e.fc.bn.running_mean`), if the network has one.
    pub fn get(&self, name: &str) -> Option<Tensor> {
        let data = self.map.data().lock().expect("parameter map poisoned");
        data.get(name).map(|v| v.as_tensor().clone())
    }

    /// Moves every tensor (weights and running statistics) toward `other`'s tensor of the same
    /// name: `self = decay * self + (1 - decay) * other`. With `decay = 0`, a copy. Both sets
    /// must belong to networks built alike.
    pub fn move_toward(&self, other: &Params, decay: f64) -> Result<()> {
        let ours = self.map.data().lock().expect("parameter map poisoned");
        let theirs = other.map.data().lock().expect("parameter map poisoned");
        for (name, var) in ours.iter() {
            let target = theirs.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("no tensor {name} in the network to follow"))
            })?;
            let next = if decay == 0.0 {
                target.as_tensor().copy()?
            } else {
                (var.as_tensor().affine(decay, 0.0)?
                    + target.as_tensor().affine(1.0 - decay, 0.0)?)?
            };
            var.set(&next)?;
        }
        Ok(())
    }

    /// The tensors an optimiser updates (running statistics excluded).
    pub fn trainable(&self) -> &[Var] {
        &self.trainable
    }

    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        self.map.save(path)
    }

    /// Loads every tensor by name; shapes must match the network as built.
    pub fn load(&mut self, path: &std::path::Path) -> Result<()> {
        self.map.load(path)
    }

    /// Clamps every trainable weight into `[-limit, limit]` (Sec. 4.4's Lipschitz constraint).
    pub fn clip(&self, limit: f64) -> Result<()> {
        for var in &self.trainable {
            var.set(&var.as_tensor().clamp(-limit, limit)?)?;
        }
        Ok(())
    }
}

/// Activation that follows a layer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Leaky ReLU with slope 0.2 (the paper's lReLU(0.2)).
    LeakyRelu,
    Relu,
    Sigmoid,
    /// For images in [-1, 1] (SVHN, CelebA).
    Tanh,
    Identity,
}

/// The paper's lReLU slope.
const LEAKY_SLOPE: f32 = 0.2;

impl Activation {
    /// Width of the range of values this activation outputs, where bounded.
    pub fn output_range(self) -> Option<f64> {
        match self {
            Activation::Sigmoid => Some(1.0),
            Activation::Tanh => Some(2.0),
            Activation::LeakyRelu | Activation::Relu | Activation::Identity => None,
        }
    }

    /// The leaky-ReLU slope this activation is (ReLU: 0), if it is one.
    fn leaky_slope(self) -> Option<f32> {
        match self {
            Activation::LeakyRelu => Some(LEAKY_SLOPE),
            Activation::Relu => Some(0.0),
            Activation::Sigmoid | Activation::Tanh | Activation::Identity => None,
        }
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::LeakyRelu if custom_kernels(x.device()) => {
                x.contiguous()?.apply_op1(LeakyRelu(LEAKY_SLOPE))
            }
            Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, LEAKY_SLOPE as f64),
            Activation::Relu => x.relu(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Identity => Ok(x.clone()),
        }
    }
}

const INIT_STD: f32 = 0.02;

/// Whether a forward pass makes the layers' weights part of the gradient graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Gradients reach the weights: the network is being trained.
    Train,
    /// The weights are constants of this pass and gradients reach only its input, as in G's
    /// update through D: D's weight gradients, a third of D's backward pass, are not computed.
    Fixed,
}

impl Weights {
    fn of(self, var: &Var) -> Tensor {
        match self {
            Weights::Train => var.as_tensor().clone(),
            Weights::Fixed => var.as_detached_tensor(),
        }
    }
}

/// Square-kernel convolution on NHWC input. No bias: every convolution here feeds BatchNorm.
pub struct Conv2d {
    /// `(kernel * kernel * in_channels, out_channels)`, rows ordered (ky, kx, channel).
    weight: Var,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let shape = [kernel * kernel * in_channels, out_channels];
        let fan_in = kernel * kernel * in_channels;
        let weight = params.weight(&format!("{name}.weight"), &shape, fan_in, rng)?;
        Ok(Self {
            weight,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor, weights: Weights) -> Result<Tensor> {
        let (batch, height, width, channels) = x.dims4()?;
        if channels != self.in_channels {
            candle_core::bail!(
                "conv: {channels} input channels, expected {}",
                self.in_channels
            );
        }
        if !custom_kernels(x.device()) {
            return self.forward_reference(x, weights);
        }
        let geometry = PatchGeometry {
            batch,
            height,
            width,
            channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        x.contiguous()?
            .apply_op2(&weights.of(&self.weight), Conv2dOp(geometry))
    }

    /// candle's own convolution (NCHW), for other devices and as the tests' reference.
    pub fn forward_reference(&self, x: &Tensor, weights: Weights) -> Result<Tensor> {
        let k = self.kernel;
        let kernel = weights
            .of(&self.weight)
            .reshape((k, k, self.in_channels, self.out_channels))?
            .permute((3, 2, 0, 1))?
            .contiguous()?;
        x.permute((0, 3, 1, 2))?
            .contiguous()?
            .conv2d(&kernel, self.padding, self.stride, 1, 1)?
            .permute((0, 2, 3, 1))?
            .contiguous()
    }
}

/// Square-kernel transposed convolution on NHWC input, without output padding.
pub struct ConvTranspose2d {
    /// `(in_channels, kernel * kernel * out_channels)`, columns ordered (ky, kx, channel).
    weight: Var,
    bias: Option<Var>,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl ConvTranspose2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        with_bias: bool,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let shape = [in_channels, kernel * kernel * out_channels];
        // PyTorch's fan-in of a transposed convolution counts its output channels.
        let fan_in = kernel * kernel * out_channels;
        let weight = params.weight(&format!("{name}.weight"), &shape, fan_in, rng)?;
        let bias = if with_bias {
            Some(params.bias(&format!("{name}.bias"), out_channels, fan_in, rng)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor, weights: Weights) -> Result<Tensor> {
        let out = if custom_kernels(x.device()) {
            let (batch, height, width, _) = x.dims4()?;
            let geometry = PatchGeometry {
                batch,
                height: (height - 1) * self.stride + self.kernel - 2 * self.padding,
                width: (width - 1) * self.stride + self.kernel - 2 * self.padding,
                channels: self.out_channels,
                kernel: self.kernel,
                stride: self.stride,
                padding: self.padding,
            };
            x.contiguous()?
                .apply_op2(&weights.of(&self.weight), ConvTranspose2dOp(geometry))?
        } else {
            self.forward_reference_unbiased(x, weights)?
        };
        match &self.bias {
            Some(b) => out.broadcast_add(&weights.of(b)),
            None => Ok(out),
        }
    }

    /// candle's own transposed convolution (NCHW), without the bias.
    pub fn forward_reference_unbiased(&self, x: &Tensor, weights: Weights) -> Result<Tensor> {
        let k = self.kernel;
        let kernel = weights
            .of(&self.weight)
            .reshape((self.in_channels, k, k, self.out_channels))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        x.permute((0, 3, 1, 2))?
            .contiguous()?
            .conv_transpose2d(&kernel, self.padding, 0, self.stride, 1)?
            .permute((0, 2, 3, 1))?
            .contiguous()
    }
}

/// Fully connected layer; the weight is stored `(in, out)` so the forward pass needs no transpose.
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
}

impl Linear {
    pub fn new(
        params: &mut Params,
        name: &str,
        inputs: usize,
        outputs: usize,
        with_bias: bool,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let weight = params.weight(&format!("{name}.weight"), &[inputs, outputs], inputs, rng)?;
        let bias = if with_bias {
            Some(params.bias(&format!("{name}.bias"), outputs, inputs, rng)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn forward(&self, x: &Tensor, weights: Weights) -> Result<Tensor> {
        let weight = weights.of(&self.weight);
        let y = if custom_kernels(x.device()) {
            x.contiguous()?.apply_op2(&weight, MatMulOp)?
        } else {
            x.matmul(&weight)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&weights.of(b)),
            None => Ok(y),
        }
    }
}

/// How BatchNorm layers normalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, and the running statistics are updated (training).
    Train,
    /// Batch statistics of the batch at hand; running statistics untouched.
    BatchStats,
    /// Running statistics (PyTorch's eval mode).
    Eval,
}

/// Batch normalisation over the last (channel) dimension, PyTorch's defaults
/// (momentum 0.1, eps 1e-5, unbiased running variance).
pub struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm {
    pub fn new(params: &mut Params, name: &str, channels: usize) -> Result<Self> {
        Ok(Self {
            gamma: params.constant(&format!("{name}.gamma"), channels, 1.0, true)?,
            beta: params.constant(&format!("{name}.beta"), channels, 0.0, true)?,
            running_mean: params.constant(&format!("{name}.running_mean"), channels, 0.0, false)?,
            running_var: params.constant(&format!("{name}.running_var"), channels, 1.0, false)?,
        })
    }

    /// Normalises `x` over all but its last dimension, then applies `activation` (in the same
    /// kernel where the CPU kernels serve it).
    pub fn forward(
        &self,
        x: &Tensor,
        mode: Mode,
        activation: Activation,
        weights: Weights,
    ) -> Result<Tensor> {
        let fusable = activation == Activation::Identity || activation.leaky_slope().is_some();
        if !(custom_kernels(x.device()) && fusable) {
            return activation.apply(&self.normalise(x, mode, weights)?);
        }
        let (eps, slope) = (BN_EPS as f32, activation.leaky_slope());
        let op = match mode {
            Mode::Train | Mode::BatchStats => BatchNormOp::batch(eps, slope),
            Mode::Eval => BatchNormOp::fixed(
                eps,
                slope,
                BatchStatistics {
                    mean: self.running_mean.as_tensor().to_vec1()?,
                    var: self.running_var.as_tensor().to_vec1()?,
                },
            ),
        };
        let (gamma, beta) = (weights.of(&self.gamma), weights.of(&self.beta));
        let y = x.contiguous()?.apply_op3(&gamma, &beta, op.clone())?;
        if mode == Mode::Train {
            let stats = op
                .statistics()
                .ok_or_else(|| candle_core::Error::Msg("batch norm ran no forward pass".into()))?;
            let channels = stats.mean.len();
            let count = x.elem_count() / channels.max(1);
            let tensor = |v: Vec<f32>| Tensor::from_vec(v, channels, x.device());
            self.update_running(&tensor(stats.mean)?, &tensor(stats.var)?, count)?;
        }
        Ok(y)
    }

    /// Batch normalisation with candle's own ops.
    fn normalise(&self, x: &Tensor, mode: Mode, weights: Weights) -> Result<Tensor> {
        let shape = x.shape().clone();
        let channels = x.dim(D::Minus1)?;
        let rows = x.reshape(((), channels))?;
        let count = rows.dim(0)?;
        let (gamma, beta) = (&weights.of(&self.gamma), &weights.of(&self.beta));
        let (mean, var) = if mode != Mode::Eval {
            let mean = rows.mean_keepdim(0)?;
            let var = rows.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
            if mode == Mode::Train {
                self.update_running(&mean.detach().squeeze(0)?, &var.detach().squeeze(0)?, count)?;
            }
            (mean, var)
        } else {
            let mean = self.running_mean.as_tensor().unsqueeze(0)?;
            (mean, self.running_var.as_tensor().unsqueeze(0)?)
        };
        let scale = (var + BN_EPS)?
            .sqrt()?
            .recip()?
            .broadcast_mul(&gamma.unsqueeze(0)?)?;
        rows.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&beta.unsqueeze(0)?)?
            .reshape(shape)
    }

    fn update_running(&self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let unbiased = (var * (count as f64 / (count.max(2) - 1) as f64))?;
        let blend = |old: &Var, new: &Tensor| -> Result<()> {
            old.set(&((old.as_tensor() * (1.0 - BN_MOMENTUM))? + (new * BN_MOMENTUM)?)?)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, &unbiased)
    }
}

/// Softmax over the last dimension, detached from the graph.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?.detach())
}
