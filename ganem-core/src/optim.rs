//! Optimisers: RMSprop as the paper uses (candle-nn has none) and Adam as the authors' code.

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

/// RMSprop with PyTorch's update rule: `v = alpha v + (1 - alpha) g^2`,
/// `theta -= lr g / (sqrt(v) + eps)`.
pub struct Rmsprop {
    vars: Vec<(Var, Tensor)>,
    config: RmspropConfig,
}

/// Hyper-parameters of [`Rmsprop`] (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmspropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
}

impl Optimizer for Rmsprop {
    type Config = RmspropConfig;

    fn new(vars: Vec<Var>, config: RmspropConfig) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|v| {
                let square_avg = v.as_tensor().zeros_like()?;
                Ok((v, square_avg))
            })
            .collect::<Result<_>>()?;
        Ok(Self { vars, config })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let RmspropConfig { lr, alpha, eps } = self.config;
        for (var, square_avg) in &mut self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                *square_avg = ((&*square_avg * alpha)? + (g.sqr()? * (1.0 - alpha))?)?;
                let update = (g / (square_avg.sqrt()? + eps)?)?;
                var.set(&(var.as_tensor() - (update * lr)?)?)?;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}

/// Which optimiser trains G, D and the E-net, and at what base learning rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// The paper (Sec. 5.1): RMSprop, learning rate 2e-4 for every net.
    Rmsprop {
        lr: f64,
        #[serde(default = "default_alpha")]
        alpha: f64,
    },
    /// The authors' code: Adam(0.5, 0.999) with base rate `lr` for D, `lr * generator_scale` for
    /// G and `lr * enet_scale` for the E-net.
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        generator_scale: f64,
        enet_scale: f64,
    },
}

fn default_alpha() -> f64 {
    0.99
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Rmsprop { lr: 2e-4, alpha: 0.99 }
    }
}

/// The network an optimiser belongs to (the authors' code gives each its own rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Generator,
    Discriminator,
    Enet,
}

/// An optimiser for one network, whichever kind the spec names.
pub enum NetOptimizer {
    Rmsprop(Rmsprop),
    Adam(AdamW),
}

impl NetOptimizer {
    /// `decay` multiplies the base rate (0.98^iteration in the paper).
    pub fn new(spec: &OptimizerSpec, net: Net, vars: Vec<Var>, decay: f64) -> Result<Self> {
        Ok(match *spec {
            OptimizerSpec::Rmsprop { lr, alpha } => NetOptimizer::Rmsprop(Rmsprop::new(
                vars,
                RmspropConfig {
                    lr: lr * decay,
                    alpha,
                    eps: 1e-8,
                },
            )?),
            OptimizerSpec::Adam {
                lr,
                beta1,
                beta2,
                generator_scale,
                enet_scale,
            } => {
                let scale = match net {
                    Net::Generator => generator_scale,
                    Net::Discriminator => 1.0,
                    Net::Enet => enet_scale,
                };
                let params = ParamsAdamW {
                    lr: lr * scale * decay,
                    beta1,
                    beta2,
                    eps: 1e-8,
                    weight_decay: 0.0,
                };
                NetOptimizer::Adam(AdamW::new(vars, params)?)
            }
        })
    }

    /// Multiplies the learning rate by `factor` (the per-iteration decay), keeping the moments.
    pub fn scale_learning_rate(&mut self, factor: f64) {
        match self {
            NetOptimizer::Rmsprop(o) => o.set_learning_rate(o.learning_rate() * factor),
            NetOptimizer::Adam(o) => o.set_learning_rate(o.learning_rate() * factor),
        }
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        match self {
            NetOptimizer::Rmsprop(o) => o.step(&grads),
            NetOptimizer::Adam(o) => o.step(&grads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rmsprop_first_steps_by_hand() {
        // f(x) = x^2 at x = 1: g = 2, v = 0.01 * 4 = 0.04, step = lr * 2 / 0.2 = 10 lr.
        let x = Var::new(&[1f32], &Device::Cpu).unwrap();
        let config = RmspropConfig { lr: 0.01, alpha: 0.99, eps: 0.0 };
        let mut opt = Rmsprop::new(vec![x.clone()], config).unwrap();
        opt.backward_step(&x.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!((v[0] - 0.9).abs() < 1e-6, "{v:?}");
        // g = 1.8, v = 0.99 * 0.04 + 0.01 * 3.24 = 0.072, step = 0.01 * 1.8 / sqrt(0.072).
        opt.backward_step(&x.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        let expected = 0.9 - 0.01 * 1.8 / 0.072f32.sqrt();
        assert!((v[0] - expected).abs() < 1e-5, "{v:?}");
    }
}
