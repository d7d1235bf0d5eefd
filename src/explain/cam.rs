//! The class activation maps of the Grad-CAM family, from a layer's activations and the
//! gradient of a class score with respect to them.
//!
//! With `A` the activation of the explained layer, `[K, h, w]` per image, and `G = dy_c / dA`
//! the gradient of class `c`'s logit (before softmax):
//!
//! | method | map before ReLU |
//! |---|---|
//! | Grad-CAM (Selvaraju et al., 2017) | `sum_k a_k A_k` with `a_k = mean_ij G_kij` |
//! | Grad-CAM++ (Chattopadhyay et al., 2018) | `sum_k w_k A_k` with `w_k = sum_ij alpha_kij relu(G_kij)`, `alpha_kij = G_kij^2 / (2 G_kij^2 + sum_ab A_kab G_kij^3)` |
//! | HiResCAM (Draelos & Carin, 2020) | `sum_k G_k * A_k` (element-wise: no averaging of the gradient) |
//!
//! Grad-CAM++'s `alpha` is the paper's closed form for an exponential of the score, which turns
//! its second and third derivatives into powers of the first; where its denominator is zero, or
//! the gradient is not positive (so `relu(G)` drops the term anyway), `alpha` is 0.
//!
//! Every method ends with a ReLU: only evidence *for* the class is shown. The raw map (kept and
//! saved) is the signed sum before that ReLU, in the units of the logit; the normalised map is
//! `relu(raw) / max(relu(raw))`, or all zeros when nothing is positive (a model whose score does
//! not depend on the layer gets a zero map, never NaN).

use burn::prelude::*;

/// A method of the Grad-CAM family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum CamMethod {
    /// Grad-CAM: channels weighted by their spatially averaged gradient.
    #[value(name = "gradcam")]
    #[serde(rename = "gradcam")]
    GradCam,
    /// Grad-CAM++: channels weighted by positive gradients with pixel-wise coefficients.
    #[value(name = "gradcam++")]
    #[serde(rename = "gradcam++")]
    GradCamPlusPlus,
    /// HiResCAM: gradient times activation, element-wise, summed over channels.
    #[value(name = "hirescam")]
    #[serde(rename = "hirescam")]
    HiResCam,
}

impl CamMethod {
    /// The method's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            CamMethod::GradCam => "gradcam",
            CamMethod::GradCamPlusPlus => "gradcam++",
            CamMethod::HiResCam => "hirescam",
        }
    }

    /// The name to print on figures.
    pub fn title(self) -> &'static str {
        match self {
            CamMethod::GradCam => "Grad-CAM",
            CamMethod::GradCamPlusPlus => "Grad-CAM++",
            CamMethod::HiResCam => "HiResCAM",
        }
    }
}

/// Raw class activation maps (before the ReLU) from activations and gradients.
///
/// # Shapes
/// - activations, gradients: `[batch, channels, h, w]`
/// - output: `[batch, h, w]`
pub fn raw_maps(method: CamMethod, activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<3> {
    let map = match method {
        CamMethod::GradCam => {
            let weights = gradients.mean_dim(3).mean_dim(2); // [batch, channels, 1, 1]
            (activations * weights).sum_dim(1) // [batch, 1, h, w]
        }
        CamMethod::GradCamPlusPlus => {
            let g2 = gradients.clone().powi_scalar(2); // [batch, channels, h, w]
            let g3 = g2.clone() * gradients.clone();
            let activation_sums = activations.clone().sum_dim(3).sum_dim(2); // [batch, channels, 1, 1]
            let denominator = g2.clone().mul_scalar(2.0) + g3 * activation_sums;
            // Where alpha is not defined or does not count, divide by 1 and zero it after.
            let dropped = denominator.clone().equal_elem(0.0).bool_or(gradients.clone().lower_equal_elem(0.0));
            let alpha = (g2 / denominator.mask_fill(dropped.clone(), 1.0)).mask_fill(dropped, 0.0);
            let weights = (alpha * gradients.clamp_min(0.0)).sum_dim(3).sum_dim(2); // [batch, channels, 1, 1]
            (activations * weights).sum_dim(1) // [batch, 1, h, w]
        }
        CamMethod::HiResCam => (gradients * activations).sum_dim(1), // [batch, 1, h, w]
    };
    map.squeeze_dim::<3>(1) // [batch, h, w]
}

/// The shown map: `relu(raw) / max(relu(raw))`, all zeros if no value is positive.
pub fn normalise(raw: &[f32]) -> Vec<f32> {
    let max = raw.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 && max.is_finite() {
        raw.iter().map(|&v| v.max(0.0) / max).collect()
    } else {
        vec![0.0; raw.len()]
    }
}
