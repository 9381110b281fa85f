//! The losses of GAN-EM on logits: L_G (Eq. 1), L_D (Eq. 2 with the extra real-vs-fake unit of
//! Sec. 4.3.2) and L_E (Eq. 5).
//!
//! The discriminator's outputs are logits `(B, K + 1)`: units `0..K` are the per-cluster
//! "real" probabilities D_i through a sigmoid, unit `K` is real-vs-fake over all data.

use candle_core::{Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Which generator loss to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorLoss {
    /// Eq. 1: `-1/2 E exp(logit D_c(G(z, c)))`, which makes the GAN minimise KL(P_r || P_g).
    /// It saturates once D is confident (see `docs/deviations.md`).
    PaperKl,
    /// The authors' code: binary cross-entropy of D(G(z, c)) against one-hot(c) on the K class
    /// units and "real" on the extra unit (non-saturating).
    Bce,
}

/// log(1 + exp(x)), stable for large |x|.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Splits D's logits into the K class units and the extra unit `(B, 1)`.
fn split_units(logits: &Tensor) -> Result<(Tensor, Tensor)> {
    let k = logits.dim(D::Minus1)? - 1;
    Ok((logits.narrow(1, 0, k)?, logits.narrow(1, k, 1)?))
}

/// L_D of Eq. 2, written as the quantity D minimises (the paper prints the log-likelihood
/// that D maximises): for real images, `-sum_i w_i log D_i(x)`; for generated images,
/// `-sum_i log(1 - D_i(G(z, c)))`; plus the binary cross-entropy of the extra unit (real = 1,
/// fake = 0), its real images' term weighted by `real_extra_weight` and its generated
/// images' term by `fake_extra_weight`. Averaged over each batch.
pub fn discriminator_loss(
    real_logits: &Tensor,
    soft_assignments: &Tensor,
    fake_logits: &Tensor,
    real_extra_weight: f64,
    fake_extra_weight: f64,
) -> Result<Tensor> {
    let (real_classes, real_extra) = split_units(real_logits)?;
    let (fake_classes, fake_extra) = split_units(fake_logits)?;
    // -log sigmoid(l) = softplus(-l); -log(1 - sigmoid(l)) = softplus(l).
    let real = (softplus(&real_classes.neg()?)? * soft_assignments)?.sum(1)?;
    let fake = softplus(&fake_classes)?.sum(1)?;
    let mut loss = (real.mean(0)? + fake.mean(0)?)?;
    if real_extra_weight != 0.0 {
        loss = (loss + (softplus(&real_extra.neg()?)?.mean_all()? * real_extra_weight)?)?;
    }
    if fake_extra_weight != 0.0 {
        loss = (loss + (softplus(&fake_extra)?.mean_all()? * fake_extra_weight)?)?;
    }
    Ok(loss)
}

/// L_G on D's logits for generated images of classes `one_hot` `(B, K)`.
pub fn generator_loss(
    fake_logits: &Tensor,
    one_hot: &Tensor,
    kind: GeneratorLoss,
) -> Result<Tensor> {
    let (classes, extra) = split_units(fake_logits)?;
    match kind {
        GeneratorLoss::PaperKl => {
            // sigma^{-1}(D_c) is the logit of unit c.
            let logit_c = (classes * one_hot)?.sum(1)?;
            logit_c.exp()?.mean(0)? * -0.5
        }
        GeneratorLoss::Bce => {
            // BCE(l, t) = softplus(l) - l t.
            let class_term = (softplus(&classes)? - (&classes * one_hot)?)?.sum(1)?;
            let extra_term = softplus(&extra.neg()?)?.squeeze(1)?;
            (class_term + extra_term)?.mean(0)
        }
    }
}

/// L_E of Eq. 5: cross-entropy of the E-net's logits against the classes that generated the
/// images (also used on labelled real images in the semi-supervised setting).
pub fn enet_loss(logits: &Tensor, classes: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, classes)
}

/// [`enet_loss`] over the images whose class the E-net already predicts (its arg max), 0
/// when there is none: a generated image the E-net takes for another class is more often a
/// generator's miss than a lesson.
pub fn enet_loss_where_agreeing(logits: &Tensor, classes: &Tensor) -> Result<Tensor> {
    let agreeing = logits
        .argmax(D::Minus1)?
        .eq(classes)?
        .to_dtype(candle_core::DType::F32)?;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_p.gather(&classes.unsqueeze(1)?, 1)?.squeeze(1)?;
    let count = agreeing.sum_all()?.maximum(1.0)?;
    (picked * &agreeing)?
        .sum_all()?
        .neg()?
        .broadcast_div(&count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    fn scalar(x: Tensor) -> f32 {
        x.to_scalar::<f32>().unwrap()
    }

    fn ln_sigmoid(x: f32) -> f32 {
        -(1.0 + (-x).exp()).ln()
    }

    #[test]
    fn discriminator_loss_by_hand() {
        // K = 2; one real image with w = (0.25, 0.75), one fake image.
        let real = t(&[0.0, 2.0, 1.0], (1, 3));
        let w = t(&[0.25, 0.75], (1, 2));
        let fake = t(&[-1.0, 0.5, -2.0], (1, 3));
        let expected_real = -(0.25 * ln_sigmoid(0.0) + 0.75 * ln_sigmoid(2.0));
        let expected_fake = -(ln_sigmoid(1.0) + ln_sigmoid(-0.5));
        let (extra_real, extra_fake) = (-ln_sigmoid(1.0), -ln_sigmoid(2.0));
        let expected = expected_real + expected_fake;
        let got = scalar(discriminator_loss(&real, &w, &fake, 0.0, 0.0).unwrap());
        assert!((got - expected).abs() < 1e-5, "{got}");
        let got = scalar(discriminator_loss(&real, &w, &fake, 2.0, 2.0).unwrap());
        assert!((got - (expected + 2.0 * (extra_real + extra_fake))).abs() < 1e-5);
        // The authors' code: weight 2 on the real images' term only.
        let got = scalar(discriminator_loss(&real, &w, &fake, 2.0, 1.0).unwrap());
        assert!((got - (expected + 2.0 * extra_real + extra_fake)).abs() < 1e-5);
    }

    #[test]
    fn paper_generator_loss_is_minus_half_exp_of_the_class_logit() {
        let fake = t(&[0.5, -1.0, 3.0, 1.0, 0.0, -3.0], (2, 3));
        let one_hot = t(&[1.0, 0.0, 0.0, 1.0], (2, 2));
        let got = scalar(generator_loss(&fake, &one_hot, GeneratorLoss::PaperKl).unwrap());
        let expected = -0.5 * (0.5f32.exp() + 0.0f32.exp()) / 2.0;
        assert!((got - expected).abs() < 1e-6);
    }

    #[test]
    fn bce_generator_loss_by_hand() {
        let fake = t(&[0.5, -1.0, 3.0], (1, 3));
        let one_hot = t(&[0.0, 1.0], (1, 2));
        let got = scalar(generator_loss(&fake, &one_hot, GeneratorLoss::Bce).unwrap());
        // unit 0 target 0, unit 1 target 1, extra unit target 1.
        let expected = -(ln_sigmoid(-0.5) + ln_sigmoid(-1.0) + ln_sigmoid(3.0));
        assert!((got - expected).abs() < 1e-5);
    }

    #[test]
    fn enet_loss_is_cross_entropy() {
        let logits = t(&[0.0, 0.0, (3f32).ln(), 0.0], (2, 2));
        let classes = Tensor::from_slice(&[1u32, 0], 2, &Device::Cpu).unwrap();
        // -ln(1/2) and -ln(3/4), averaged.
        let expected = (2f32.ln() + (4.0f32 / 3.0).ln()) / 2.0;
        assert!((scalar(enet_loss(&logits, &classes).unwrap()) - expected).abs() < 1e-6);
    }

    #[test]
    fn agreeing_enet_loss_leaves_out_the_images_taken_for_another_class() {
        // The first image is predicted as class 1 (its class), the second as class 0 (not
        // its class 1): only the first counts.
        let logits = t(&[0.0, (3f32).ln(), 0.0, -1.0], (2, 2));
        let classes = Tensor::from_slice(&[1u32, 1], 2, &Device::Cpu).unwrap();
        let got = scalar(enet_loss_where_agreeing(&logits, &classes).unwrap());
        assert!((got - (4.0f32 / 3.0).ln()).abs() < 1e-6, "{got}");
        let none = Tensor::from_slice(&[0u32, 1], 2, &Device::Cpu).unwrap();
        assert_eq!(
            scalar(enet_loss_where_agreeing(&logits, &none).unwrap()),
            0.0
        );
    }
}
