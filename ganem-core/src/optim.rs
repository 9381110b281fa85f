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

impl OptimizerSpec {
    /// Checks every setting's range.
    pub fn validate(&self) -> std::result::Result<(), crate::config::validate::Violation> {
        use crate::config::validate;
        match *self {
            OptimizerSpec::Rmsprop { lr, alpha } => {
                validate::positive("optimizer.lr", lr)?;
                validate::unit_interval_open("optimizer.alpha", alpha)
            }
            OptimizerSpec::Adam {
                lr,
                beta1,
                beta2,
                generator_scale,
                enet_scale,
            } => {
                validate::positive("optimizer.lr", lr)?;
                validate::unit_interval_open("optimizer.beta1", beta1)?;
                validate::unit_interval_open("optimizer.beta2", beta2)?;
                validate::positive("optimizer.generator_scale", generator_scale)?;
                validate::positive("optimizer.enet_scale", enet_scale)
            }
        }
    }
}

fn default_alpha() -> f64 {
    0.99
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Rmsprop {
            lr: 2e-4,
            alpha: 0.99,
        }
    }
}

/// The network an optimiser belongs to (the authors' code gives each its own rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Generator,
    Discriminator,
    Enet,
}

/// The update rule of a [`NetOptimizer`].
#[derive(Debug, Clone, Copy)]
enum Rule {
    Rmsprop { alpha: f32 },
    Adam { beta1: f32, beta2: f32 },
}

/// An optimiser for one network, whichever kind the spec names.
///
/// On the CPU each parameter is updated in place by one fused loop (PyTorch's "foreach"
/// optimisers do the same); other devices use candle's tensor-op optimisers.
pub enum NetOptimizer {
    Fused(FusedOptimizer),
    Rmsprop(Rmsprop),
    Adam(AdamW),
}

/// In-place RMSprop or Adam on CPU parameters, with the moments in plain vectors.
pub struct FusedOptimizer {
    rule: Rule,
    lr: f64,
    steps: i32,
    slots: Vec<(Var, Vec<f32>, Vec<f32>)>,
}

impl NetOptimizer {
    /// `decay` multiplies the base rate (0.98^iteration in the paper).
    pub fn new(spec: &OptimizerSpec, net: Net, vars: Vec<Var>, decay: f64) -> Result<Self> {
        let (rule, lr) = match *spec {
            OptimizerSpec::Rmsprop { lr, alpha } => (
                Rule::Rmsprop {
                    alpha: alpha as f32,
                },
                lr,
            ),
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
                (
                    Rule::Adam {
                        beta1: beta1 as f32,
                        beta2: beta2 as f32,
                    },
                    lr * scale,
                )
            }
        };
        let lr = lr * decay;
        if vars
            .iter()
            .all(|v| crate::ops::custom_kernels(v.device()) && v.dtype() == candle_core::DType::F32)
        {
            let slots = vars
                .into_iter()
                .map(|v| {
                    let n = v.elem_count();
                    let first = if matches!(rule, Rule::Adam { .. }) {
                        vec![0f32; n]
                    } else {
                        Vec::new()
                    };
                    (v, first, vec![0f32; n])
                })
                .collect();
            return Ok(NetOptimizer::Fused(FusedOptimizer {
                rule,
                lr,
                steps: 0,
                slots,
            }));
        }
        Ok(match rule {
            Rule::Rmsprop { alpha } => NetOptimizer::Rmsprop(Rmsprop::new(
                vars,
                RmspropConfig {
                    lr,
                    alpha: alpha as f64,
                    eps: EPS as f64,
                },
            )?),
            Rule::Adam { beta1, beta2 } => NetOptimizer::Adam(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    beta1: beta1 as f64,
                    beta2: beta2 as f64,
                    eps: EPS as f64,
                    weight_decay: 0.0,
                },
            )?),
        })
    }

    /// Multiplies the learning rate by `factor` (the per-iteration decay), keeping the moments.
    pub fn scale_learning_rate(&mut self, factor: f64) {
        match self {
            NetOptimizer::Fused(o) => o.lr *= factor,
            NetOptimizer::Rmsprop(o) => o.set_learning_rate(o.learning_rate() * factor),
            NetOptimizer::Adam(o) => o.set_learning_rate(o.learning_rate() * factor),
        }
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        match self {
            NetOptimizer::Fused(o) => o.step(&grads),
            NetOptimizer::Rmsprop(o) => o.step(&grads),
            NetOptimizer::Adam(o) => o.step(&grads),
        }
    }
}

const EPS: f32 = 1e-8;

impl FusedOptimizer {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        for (var, first, second) in &mut self.slots {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let update = FusedUpdate {
                rule: self.rule,
                lr: self.lr as f32,
                steps: self.steps,
                first: std::sync::Mutex::new(first),
                second: std::sync::Mutex::new(second),
            };
            var.as_tensor().inplace_op2(&grad.contiguous()?, &update)?;
        }
        Ok(())
    }
}

/// One in-place update of a parameter from its gradient.
struct FusedUpdate<'a> {
    rule: Rule,
    lr: f32,
    steps: i32,
    first: std::sync::Mutex<&'a mut Vec<f32>>,
    second: std::sync::Mutex<&'a mut Vec<f32>>,
}

impl candle_core::InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "ganem-fused-optimizer"
    }

    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<()> {
        use candle_core::CpuStorage::F32;
        let (F32(param), F32(grad)) = (s1, s2) else {
            candle_core::bail!("fused optimizer: f32 only");
        };
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused optimizer: contiguous tensors only");
        };
        let (param, grad) = (&mut param[p0..p1], &grad[g0..g1]);
        let mut second = self.second.lock().expect("moments");
        let lr = self.lr;
        match self.rule {
            Rule::Rmsprop { alpha } => {
                for ((p, &g), v) in param.iter_mut().zip(grad).zip(second.iter_mut()) {
                    *v = alpha * *v + (1.0 - alpha) * g * g;
                    *p -= lr * g / (v.sqrt() + EPS);
                }
            }
            Rule::Adam { beta1, beta2 } => {
                let mut first = self.first.lock().expect("moments");
                let c1 = 1.0 - beta1.powi(self.steps);
                let c2 = 1.0 - beta2.powi(self.steps);
                let step = lr / c1;
                for (((p, &g), m), v) in param
                    .iter_mut()
                    .zip(grad)
                    .zip(first.iter_mut())
                    .zip(second.iter_mut())
                {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= step * *m / ((*v / c2).sqrt() + EPS);
                }
            }
        }
        Ok(())
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
        let config = RmspropConfig {
            lr: 0.01,
            alpha: 0.99,
            eps: 0.0,
        };
        let mut opt = Rmsprop::new(vec![x.clone()], config).unwrap();
        opt.backward_step(&x.as_tensor().sqr().unwrap().sum_all().unwrap())
            .unwrap();
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!((v[0] - 0.9).abs() < 1e-6, "{v:?}");
        // g = 1.8, v = 0.99 * 0.04 + 0.01 * 3.24 = 0.072, step = 0.01 * 1.8 / sqrt(0.072).
        opt.backward_step(&x.as_tensor().sqr().unwrap().sum_all().unwrap())
            .unwrap();
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        let expected = 0.9 - 0.01 * 1.8 / 0.072f32.sqrt();
        assert!((v[0] - expected).abs() < 1e-5, "{v:?}");
    }

    #[test]
    fn fused_optimizers_match_the_tensor_op_ones() {
        let specs = [
            OptimizerSpec::Rmsprop {
                lr: 0.01,
                alpha: 0.99,
            },
            OptimizerSpec::Adam {
                lr: 0.01,
                beta1: 0.5,
                beta2: 0.999,
                generator_scale: 3.0,
                enet_scale: 0.3,
            },
        ];
        for spec in specs {
            let start = Tensor::new(&[1f32, -2.0, 0.5], &Device::Cpu).unwrap();
            let a = Var::from_tensor(&start).unwrap();
            let b = Var::from_tensor(&start).unwrap();
            let mut fused = NetOptimizer::new(&spec, Net::Generator, vec![a.clone()], 0.5).unwrap();
            assert!(matches!(fused, NetOptimizer::Fused(_)));
            let mut reference = match spec {
                OptimizerSpec::Rmsprop { lr, alpha } => NetOptimizer::Rmsprop(
                    Rmsprop::new(
                        vec![b.clone()],
                        RmspropConfig {
                            lr: lr * 0.5,
                            alpha,
                            eps: 1e-8,
                        },
                    )
                    .unwrap(),
                ),
                OptimizerSpec::Adam {
                    lr,
                    beta1,
                    beta2,
                    generator_scale,
                    ..
                } => NetOptimizer::Adam(
                    AdamW::new(
                        vec![b.clone()],
                        ParamsAdamW {
                            lr: lr * generator_scale * 0.5,
                            beta1,
                            beta2,
                            eps: 1e-8,
                            weight_decay: 0.0,
                        },
                    )
                    .unwrap(),
                ),
            };
            for _ in 0..5 {
                let loss = |v: &Var| {
                    (v.as_tensor().sqr().unwrap() * 3.0)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                };
                fused.backward_step(&loss(&a)).unwrap();
                reference.backward_step(&loss(&b)).unwrap();
            }
            let (a, b): (Vec<f32>, Vec<f32>) = (
                a.as_tensor().to_vec1().unwrap(),
                b.as_tensor().to_vec1().unwrap(),
            );
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5 * y.abs().max(1.0), "{a:?} vs {b:?}");
            }
        }
    }
}
