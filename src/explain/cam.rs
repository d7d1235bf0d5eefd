//! The class activation maps of the Grad-CAM family, from a layer's activations and the
//! gradient of a class score with respect to them, or the scores of perturbed inputs.
//!
//! With `A` the activation of the explained layer, `[K, h, w]` per image, `G = dy_c / dA`
//! the gradient of class `c`'s logit (before softmax) and `y_c(x)` that logit for input `x`,
//! each method is defined as pytorch-grad-cam (jacobgil/pytorch-grad-cam) defines it:
//!
//! | method | map before ReLU |
//! |---|---|
//! | Grad-CAM (Selvaraju et al., 2017) | `sum_k a_k A_k` with `a_k = mean_ij G_kij` |
//! | Grad-CAM++ (Chattopadhyay et al., 2018) | `sum_k w_k A_k` with `w_k = sum_ij alpha_kij relu(G_kij)`, `alpha_kij = G_kij^2 / (2 G_kij^2 + sum_ab A_kab G_kij^3)` |
//! | HiResCAM (Draelos & Carin, 2020) | `sum_k G_k * A_k` (element-wise: no averaging of the gradient) |
//! | XGradCAM (Fu et al., 2020) | `sum_k w_k A_k` with `w_k = sum_ij G_kij A_kij / (sum_ab A_kab + 1e-7)` |
//! | LayerCAM (Jiang et al., 2021) | `sum_k relu(G_k) * A_k` (element-wise) |
//! | EigenCAM (Muhammad & Yeasin, 2020) | the activations' projection on their first principal component (no gradient, no class) |
//! | ScoreCAM (Wang et al., 2020) | `sum_k w_k A_k` with `w = softmax_k y_c(x * M_k)`, `M_k` channel `k` upsampled to the input and scaled to [0, 1] |
//! | AblationCAM (Desai & Ramaswamy, 2020) | `sum_k w_k A_k` with `w_k = (y_c - y_c(A with channel k ablated)) / y_c` |
//! | RandomCAM (baseline) | `sum_k w_k A_k` with `w_k ~ Uniform(-1, 1)`, seeded by the image's activation |
//!
//! Grad-CAM++'s `alpha` is the paper's closed form for an exponential of the score, which turns
//! its second and third derivatives into powers of the first; where its denominator is zero, or
//! the gradient is not positive (so `relu(G)` drops the term anyway), `alpha` is 0.
//!
//! ScoreCAM and AblationCAM need one forward pass per channel and image (they are computed by
//! [`super::gradcam::Explainer`], which holds the model); the others are functions of `A` and `G`
//! here. EigenCAM's principal direction has no sign of its own (an SVD's is arbitrary);
//! pytorch-grad-cam keeps whatever LAPACK returns, here the direction is chosen whose channel
//! loadings sum to a positive number, so that the map is high where the channels are active.
//! An ablated channel is set to 0 when the layer's smallest value is 0 (a ReLU output, as all
//! named layers here), else to that minimum less 1e7, as pytorch-grad-cam's `AblationLayer`.
//!
//! Every method ends with a ReLU: only evidence *for* the class is shown. The raw map (kept and
//! saved) is the signed sum before that ReLU; the normalised map is `relu(raw) / max(relu(raw))`,
//! or all zeros when nothing is positive (a model whose score does not depend on the layer gets
//! a zero map, never NaN).

use burn::prelude::*;

/// A method of the Grad-CAM family.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
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
    /// XGradCAM: channels weighted by their activation-weighted gradient.
    #[value(name = "xgradcam")]
    #[serde(rename = "xgradcam")]
    XGradCam,
    /// LayerCAM: positive gradient times activation, element-wise, summed over channels.
    #[value(name = "layercam")]
    #[serde(rename = "layercam")]
    LayerCam,
    /// EigenCAM: the activations' first principal component (class-agnostic, no gradient).
    #[value(name = "eigencam")]
    #[serde(rename = "eigencam")]
    EigenCam,
    /// ScoreCAM: channels weighted by the softmax of the class score of the input masked by each.
    #[value(name = "scorecam")]
    #[serde(rename = "scorecam")]
    ScoreCam,
    /// AblationCAM: channels weighted by the relative drop of the class score without each.
    #[value(name = "ablationcam")]
    #[serde(rename = "ablationcam")]
    AblationCam,
    /// RandomCAM: channels weighted at random (uniform in [-1, 1]): the chance baseline.
    #[value(name = "randomcam")]
    #[serde(rename = "randomcam")]
    RandomCam,
}

/// What a method needs beyond the layer's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// The gradient of the class score (one backward pass).
    Gradients,
    /// The activation alone.
    Activations,
    /// The class score of one perturbed input per channel (forward passes).
    Forwards,
}

impl CamMethod {
    /// Every method, in the order of tables and figures.
    pub const ALL: [CamMethod; 9] = [
        CamMethod::GradCam,
        CamMethod::GradCamPlusPlus,
        CamMethod::HiResCam,
        CamMethod::XGradCam,
        CamMethod::LayerCam,
        CamMethod::EigenCam,
        CamMethod::ScoreCam,
        CamMethod::AblationCam,
        CamMethod::RandomCam,
    ];

    /// What the method needs to be computed.
    pub fn needs(self) -> Needs {
        match self {
            CamMethod::GradCam
            | CamMethod::GradCamPlusPlus
            | CamMethod::HiResCam
            | CamMethod::XGradCam
            | CamMethod::LayerCam => Needs::Gradients,
            CamMethod::EigenCam | CamMethod::RandomCam => Needs::Activations,
            CamMethod::ScoreCam | CamMethod::AblationCam => Needs::Forwards,
        }
    }

    /// The method's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            CamMethod::GradCam => "gradcam",
            CamMethod::GradCamPlusPlus => "gradcam++",
            CamMethod::HiResCam => "hirescam",
            CamMethod::XGradCam => "xgradcam",
            CamMethod::LayerCam => "layercam",
            CamMethod::EigenCam => "eigencam",
            CamMethod::ScoreCam => "scorecam",
            CamMethod::AblationCam => "ablationcam",
            CamMethod::RandomCam => "randomcam",
        }
    }

    /// The name to print on figures.
    pub fn title(self) -> &'static str {
        match self {
            CamMethod::GradCam => "Grad-CAM",
            CamMethod::GradCamPlusPlus => "Grad-CAM++",
            CamMethod::HiResCam => "HiResCAM",
            CamMethod::XGradCam => "XGradCAM",
            CamMethod::LayerCam => "LayerCAM",
            CamMethod::EigenCam => "EigenCAM",
            CamMethod::ScoreCam => "ScoreCAM",
            CamMethod::AblationCam => "AblationCAM",
            CamMethod::RandomCam => "RandomCAM",
        }
    }
}

/// Raw maps of the methods that need gradients, from activations and gradients.
///
/// # Shapes
/// - activations, gradients: `[batch, channels, h, w]`
/// - output: `[batch, h, w]`
///
/// # Panics
/// For a method that needs no gradient ([`CamMethod::needs`] is not `Gradients`): those are
/// [`eigen_maps`] and [`weighted_sum`] of their own weights.
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
            let dropped = denominator
                .clone()
                .equal_elem(0.0)
                .bool_or(gradients.clone().lower_equal_elem(0.0));
            let alpha = (g2 / denominator.mask_fill(dropped.clone(), 1.0)).mask_fill(dropped, 0.0);
            let weights = (alpha * gradients.clamp_min(0.0)).sum_dim(3).sum_dim(2); // [batch, channels, 1, 1]
            (activations * weights).sum_dim(1) // [batch, 1, h, w]
        }
        CamMethod::HiResCam => (gradients * activations).sum_dim(1), // [batch, 1, h, w]
        CamMethod::XGradCam => {
            let activation_sums = activations.clone().sum_dim(3).sum_dim(2).add_scalar(1e-7); // [batch, channels, 1, 1]
            let weights = (gradients * activations.clone() / activation_sums)
                .sum_dim(3)
                .sum_dim(2); // [batch, channels, 1, 1]
            (activations * weights).sum_dim(1) // [batch, 1, h, w]
        }
        CamMethod::LayerCam => (gradients.clamp_min(0.0) * activations).sum_dim(1), // [batch, 1, h, w]
        other => panic!(
            "{} needs no gradient: it is not a raw_maps method",
            other.name()
        ),
    };
    map.squeeze_dim::<3>(1) // [batch, h, w]
}

/// `sum_k w_k A_k`: the map of channel weights (ScoreCAM, AblationCAM, RandomCAM).
///
/// # Shapes
/// - activations: `[batch, channels, h, w]`
/// - weights: `[batch, channels]`
/// - output: `[batch, h, w]`
pub fn weighted_sum(activations: Tensor<4>, weights: Tensor<2>) -> Tensor<3> {
    let weights = weights.unsqueeze_dim::<3>(2).unsqueeze_dim::<4>(3); // [batch, channels, 1, 1]
    (activations * weights).sum_dim(1).squeeze_dim::<3>(1) // [batch, h, w]
}

/// EigenCAM: each image's activation `[K, h, w]`, as `h w` points in `K` dimensions centred on
/// their mean, projected on its first principal direction `v` (`X v`, with `X` the centred
/// `[h w, K]` matrix), the sign chosen so that `sum_k v_k > 0`.
///
/// # Shapes
/// - activations: `[batch * channels * h * w]` row-major, of `dims = [batch, channels, h, w]`
/// - output: `[batch * h * w]`
pub fn eigen_maps(activations: &[f32], [n, k, h, w]: [usize; 4]) -> Vec<f32> {
    let hw = h * w;
    let mut out = Vec::with_capacity(n * hw);
    for image in activations.chunks_exact(k * hw) {
        // x[p][c]: pixel p's value in channel c, centred over pixels; NaN counts as 0 as in
        // pytorch-grad-cam.
        let mut x = vec![0.0f64; hw * k];
        for c in 0..k {
            let plane = &image[c * hw..(c + 1) * hw];
            let clean = |v: f32| if v.is_nan() { 0.0 } else { v as f64 };
            let mean = plane.iter().map(|&v| clean(v)).sum::<f64>() / hw as f64;
            for p in 0..hw {
                x[p * k + c] = clean(plane[p]) - mean;
            }
        }
        // The top right singular vector of X is the top eigenvector of X^T X ([K, K]); when
        // there are fewer pixels than channels, X X^T ([hw, hw]) is smaller: its top eigenvector
        // u gives X v = sigma u, sigma = sqrt(lambda), and v = X^T u / sigma fixes the sign.
        let projection: Vec<f64> = if hw < k {
            let gram: Vec<f64> = (0..hw * hw)
                .map(|ij| {
                    (0..k)
                        .map(|c| x[(ij / hw) * k + c] * x[(ij % hw) * k + c])
                        .sum()
                })
                .collect();
            let (lambda, u) = crate::stats::eigen::top_eigenpair(&gram, hw);
            let sigma = lambda.max(0.0).sqrt();
            let loading: f64 = (0..k)
                .map(|c| (0..hw).map(|p| x[p * k + c] * u[p]).sum::<f64>())
                .sum();
            let sign = if loading < 0.0 { -1.0 } else { 1.0 };
            u.iter().map(|&v| sign * sigma * v).collect()
        } else {
            let gram: Vec<f64> = (0..k * k)
                .map(|ij| (0..hw).map(|p| x[p * k + ij / k] * x[p * k + ij % k]).sum())
                .collect();
            let (_, v) = crate::stats::eigen::top_eigenpair(&gram, k);
            let sign = if v.iter().sum::<f64>() < 0.0 {
                -1.0
            } else {
                1.0
            };
            (0..hw)
                .map(|p| sign * (0..k).map(|c| x[p * k + c] * v[c]).sum::<f64>())
                .collect()
        };
        out.extend(projection.iter().map(|&v| v as f32));
    }
    out
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
