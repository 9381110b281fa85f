//! Leaky ReLU for layers without BatchNorm (BatchNorm fuses its own activation).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{contiguous_f32, cpu_tensor, with_values};

/// Leaky ReLU with its own backward pass: one pass over memory each way instead of candle-nn's
/// five element-wise ops (zeros, max, min, mul, add) and their gradients.
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu(pub f32);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "ganem-leaky-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        let slope = self.0;
        let out: Vec<f32> = src
            .iter()
            .map(|&v| if v > 0.0 { v } else { v * slope })
            .collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let slope = self.0;
        with_values(arg, self.name(), |x| {
            with_values(grad, self.name(), |g| {
                let dx: Vec<f32> = x
                    .iter()
                    .zip(g)
                    .map(|(&x, &g)| if x > 0.0 { g } else { g * slope })
                    .collect();
                cpu_tensor(dx, arg.shape()).map(Some)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gradients, max_rel_diff, random};
    use super::*;
    use candle_core::Var;

    #[test]
    fn leaky_relu_matches_candle_forward_and_backward() {
        let x = Var::from_tensor(&random(&[4, 33], 3)).unwrap();
        let ours = x.as_tensor().apply_op1(LeakyRelu(0.2)).unwrap();
        let reference = candle_nn::ops::leaky_relu(x.as_tensor(), 0.2).unwrap();
        assert!(max_rel_diff(&ours, &reference) < 1e-6);
        let probe = random(&[4, 33], 4);
        let g1 = gradients(&ours, &probe, &[&x]);
        let g2 = gradients(&reference, &probe, &[&x]);
        assert!(max_rel_diff(g1[0].as_ref().unwrap(), g2[0].as_ref().unwrap()) < 1e-6);
    }
}
