//! Grad-CAM and its relatives: maps equal hand-computed ones on a model with known weights,
//! gradients agree with finite differences, maps follow the evidence after training, a
//! constant-output model gives zero maps, every model shows its layers to a tap; McNemar's test,
//! upsampling and the figure's text.

#![allow(clippy::needless_range_loop)] // hand computations index as their formulas do

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use visionnet::explain::cam::{CamMethod, normalise};
use visionnet::explain::figure::{self, Figure, Line, Tile};
use visionnet::explain::overlay::{Colormap, upsample};
use visionnet::explain::{ClassTarget, Explainer};
use visionnet::model::table::{MODELS, network_config};
use visionnet::model::{
    Capture, ImageClassifier, ImageClassifierConfig, LayerTap, ModelOptions, ModelSpec, Network,
    NetworkConfig,
};

fn cnn(options: ModelOptions, classes: usize, input: [usize; 3]) -> (NetworkConfig, Network) {
    let config = network_config(
        &ModelSpec {
            name: "cnn".into(),
            options,
        },
        classes,
        input,
    )
    .unwrap();
    let model = config.init(&Device::flex()).unwrap();
    (config, model)
}

/// burn's device RNG is global: tests of this file that initialise models in parallel would
/// interleave their draws, so a seeded test (the evidence test) would see a different
/// initialisation from run to run. Every test holds this lock.
fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Replaces parameters whose path ends with a given key (`conv.weight`, `output.bias`) with
/// given values.
#[derive(Default)]
struct SetParams {
    path: Vec<String>,
    values: HashMap<String, Vec<f32>>,
    seen: Vec<String>,
    applied: Vec<String>,
}

impl ModuleMapper for SetParams {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        self.seen.push(path.clone());
        let found = self
            .values
            .iter()
            .find(|(k, _)| path == **k || path.ends_with(&format!(".{k}")));
        match found.map(|(k, v)| (k.clone(), v.clone())) {
            Some((key, values)) => param.map(|t| {
                self.applied.push(key.clone());
                let shape = t.shape();
                assert_eq!(shape.num_elements(), values.len(), "{key}");
                Tensor::from_data(TensorData::new(values, shape), &t.device())
            }),
            None => param,
        }
    }
}

/// Sets the parameters named in `values`, checking each exists.
fn set_params(model: Network, values: &[(&str, Vec<f32>)]) -> Network {
    let mut mapper = SetParams {
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    };
    let model = model.map(&mut mapper);
    for (key, _) in values {
        let times = mapper.applied.iter().filter(|a| a == key).count();
        assert_eq!(
            times, 1,
            "{key} set {times} times; parameters: {:?}",
            mapper.seen
        );
    }
    model
}

const BN_EPS: f32 = 1e-5;

/// A tiny CNN with known weights: one 1->2 conv (no pool), BatchNorm at its initial identity
/// statistics, ReLU, and a linear output layer 2*4*4 -> 2.
///
/// - channel 0's kernel is the identity (centre 1): conv = x;
/// - channel 1's kernel picks the upper-left neighbour: conv[i][j] = x[i-1][j-1] (zero padded);
/// - class c's output weight for activation (k, i, j) is `w(c, k, i, j)` below.
fn known_model() -> (NetworkConfig, Network) {
    let options = ModelOptions {
        widths: vec![2],
        pool: vec![false],
        hidden: vec![],
        dropout: 0.0,
        ..ModelOptions::default()
    };
    let (config, model) = cnn(options, 2, [1, 4, 4]);
    let mut kernel = vec![0.0f32; 2 * 9];
    kernel[4] = 1.0; // channel 0, centre
    kernel[9] = 1.0; // channel 1, top-left
    // burn's Linear weight is [d_in, d_out]; d_in flattens [c, h, w].
    let mut weight = vec![0.0f32; 32 * 2];
    for k in 0..2 {
        for i in 0..4 {
            for j in 0..4 {
                for c in 0..2 {
                    weight[(k * 16 + i * 4 + j) * 2 + c] = w(c, k, i, j);
                }
            }
        }
    }
    let model = set_params(
        model,
        &[
            ("conv.Plain.weight", kernel),
            ("output.weight", weight),
            ("output.bias", vec![0.1, -0.2]),
        ],
    );
    (config, model)
}

/// The output weights of the known model.
fn w(c: usize, k: usize, i: usize, j: usize) -> f32 {
    let (k, i, j) = (k as f32, i as f32, j as f32);
    if c == 0 {
        0.5 - 0.75 * k + 0.1 * (i - j)
    } else {
        0.05 * (i + j) - 0.2 * k - 0.1
    }
}

const X: [[f32; 4]; 4] = [
    [1.0, -2.0, 3.0, 0.0],
    [0.5, 2.0, -1.0, 1.0],
    [-3.0, 1.0, 2.0, 0.5],
    [1.0, 0.0, -0.5, 2.0],
];

/// The known model's activation `A[k][i][j]`, by hand: ReLU(conv / sqrt(1 + eps)).
fn known_activation() -> [[[f32; 4]; 4]; 2] {
    activation_of(&X)
}

/// The known model's conv1 activation for the input `x`.
fn activation_of(x: &[[f32; 4]; 4]) -> [[[f32; 4]; 4]; 2] {
    let s = (1.0 + BN_EPS).sqrt();
    let mut a = [[[0.0; 4]; 4]; 2];
    for i in 0..4 {
        for j in 0..4 {
            a[0][i][j] = (x[i][j] / s).max(0.0);
            a[1][i][j] = if i > 0 && j > 0 {
                (x[i - 1][j - 1] / s).max(0.0)
            } else {
                0.0
            };
        }
    }
    a
}

#[test]
fn maps_of_a_model_with_known_weights_equal_the_hand_computed_ones() {
    let _rng = rng_lock();
    let (config, model) = known_model();
    let device = Device::flex();
    let image = Tensor::<4>::from_data(
        TensorData::new(
            X.iter().flatten().copied().collect::<Vec<_>>(),
            [1, 1, 4, 4],
        ),
        &device,
    );
    let a = known_activation();
    // The head is linear in the activation, so d logit_c / d A[k][i][j] = w(c, k, i, j).
    let logit = |c: usize| -> f32 {
        let mut sum = if c == 0 { 0.1 } else { -0.2 };
        for k in 0..2 {
            for i in 0..4 {
                for j in 0..4 {
                    sum += w(c, k, i, j) * a[k][i][j];
                }
            }
        }
        sum
    };
    for c in 0..2 {
        // Grad-CAM: channel weight = mean gradient.
        let alpha: Vec<f32> = (0..2)
            .map(|k| (0..16).map(|p| w(c, k, p / 4, p % 4)).sum::<f32>() / 16.0)
            .collect();
        let gradcam: Vec<f32> = (0..16)
            .map(|p| (0..2).map(|k| alpha[k] * a[k][p / 4][p % 4]).sum())
            .collect();
        // HiResCAM: gradient times activation, summed over channels.
        let hires: Vec<f32> = (0..16)
            .map(|p| {
                (0..2)
                    .map(|k| w(c, k, p / 4, p % 4) * a[k][p / 4][p % 4])
                    .sum()
            })
            .collect();
        // Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3) where g > 0, weight = sum(alpha relu(g)).
        let plus_weights: Vec<f32> = (0..2)
            .map(|k| {
                let sum_a: f32 = a[k].iter().flatten().sum();
                (0..16)
                    .map(|p| {
                        let g = w(c, k, p / 4, p % 4);
                        if g <= 0.0 {
                            0.0
                        } else {
                            g * g / (2.0 * g * g + sum_a * g * g * g) * g
                        }
                    })
                    .sum()
            })
            .collect();
        let plus: Vec<f32> = (0..16)
            .map(|p| (0..2).map(|k| plus_weights[k] * a[k][p / 4][p % 4]).sum())
            .collect();

        // XGradCAM: weight = sum(g A) / (sum(A) + 1e-7).
        let combine = |weights: &[f32]| -> Vec<f32> {
            (0..16)
                .map(|p| (0..2).map(|k| weights[k] * a[k][p / 4][p % 4]).sum())
                .collect()
        };
        let xgrad = combine(
            &(0..2)
                .map(|k| {
                    let ga: f32 = (0..16)
                        .map(|p| w(c, k, p / 4, p % 4) * a[k][p / 4][p % 4])
                        .sum();
                    ga / (a[k].iter().flatten().sum::<f32>() + 1e-7)
                })
                .collect::<Vec<_>>(),
        );
        // LayerCAM: relu(gradient) times activation, summed over channels.
        let layer: Vec<f32> = (0..16)
            .map(|p| {
                (0..2)
                    .map(|k| w(c, k, p / 4, p % 4).max(0.0) * a[k][p / 4][p % 4])
                    .sum()
            })
            .collect();
        // AblationCAM: with the head linear, ablating channel k (to 0 where the layer's minimum
        // is 0, a ReLU output; else to that minimum less 1e7) lowers the logit by
        // sum w (A_k - ablated); weight = that drop over the logit.
        let min = a
            .iter()
            .flatten()
            .flatten()
            .copied()
            .fold(f32::INFINITY, f32::min);
        let ablated = if min == 0.0 { 0.0 } else { min - 1e7 };
        let ablation = combine(
            &(0..2)
                .map(|k| {
                    let drop: f32 = (0..16)
                        .map(|p| w(c, k, p / 4, p % 4) * (a[k][p / 4][p % 4] - ablated))
                        .sum();
                    drop / logit(c)
                })
                .collect::<Vec<_>>(),
        );

        // ScoreCAM: each channel, scaled to [0, 1] (4x4 maps on a 4x4 input: no upsampling),
        // masks the input; the masked inputs' logits, softmaxed over channels, weight them.
        let head = |a: &[[[f32; 4]; 4]; 2]| -> f32 {
            let mut sum = if c == 0 { 0.1 } else { -0.2 };
            for p in 0..32 {
                sum += w(c, p / 16, p % 16 / 4, p % 4) * a[p / 16][p % 16 / 4][p % 4];
            }
            sum
        };
        let scores: Vec<f32> = (0..2)
            .map(|k| {
                let lo = a[k].iter().flatten().copied().fold(f32::INFINITY, f32::min);
                let hi = a[k]
                    .iter()
                    .flatten()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut masked = X;
                for p in 0..16 {
                    masked[p / 4][p % 4] *= (a[k][p / 4][p % 4] - lo) / (hi - lo);
                }
                head(&activation_of(&masked))
            })
            .collect();
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = scores.iter().map(|v| (v - top).exp()).sum();
        let score = combine(
            &scores
                .iter()
                .map(|v| (v - top).exp() / total)
                .collect::<Vec<_>>(),
        );

        for (method, expected) in [
            (CamMethod::ScoreCam, &score),
            (CamMethod::GradCam, &gradcam),
            (CamMethod::HiResCam, &hires),
            (CamMethod::GradCamPlusPlus, &plus),
            (CamMethod::XGradCam, &xgrad),
            (CamMethod::LayerCam, &layer),
            (CamMethod::AblationCam, &ablation),
        ] {
            let explainer = Explainer::new(&model, &config, "cnn", "conv1", method).unwrap();
            let maps = explainer
                .explain(image.clone(), &[None], &ClassTarget::Class(c))
                .unwrap();
            let map = &maps[0];
            assert_eq!(map.shape, [4, 4]);
            assert_eq!(map.target, c);
            assert!(
                (map.target_logit - logit(c)).abs() < 1e-5,
                "logit {} vs {}",
                map.target_logit,
                logit(c)
            );
            for p in 0..16 {
                assert!(
                    (map.raw[p] - expected[p]).abs() < 1e-5,
                    "{method:?} class {c} cell {p}: {} vs {}",
                    map.raw[p],
                    expected[p]
                );
            }
            let normalised = normalise(expected);
            for p in 0..16 {
                assert!(
                    (map.normalised[p] - normalised[p]).abs() < 1e-6,
                    "{method:?} class {c} cell {p}: {:?} vs {normalised:?}",
                    map.normalised
                );
            }
        }
    }
    // EigenCAM (no class): the pixels' channel vectors, centred, projected on the first
    // principal direction of their 2 x 2 covariance, its sign making the loadings sum positive.
    let mean: Vec<f32> = (0..2)
        .map(|k| a[k].iter().flatten().sum::<f32>() / 16.0)
        .collect();
    let centred = |k: usize, p: usize| a[k][p / 4][p % 4] - mean[k];
    let cov = |k: usize, l: usize| (0..16).map(|p| centred(k, p) * centred(l, p)).sum::<f32>();
    let (sxx, sxy, syy) = (cov(0, 0), cov(0, 1), cov(1, 1));
    let top = 0.5 * (sxx + syy) + (0.25 * (sxx - syy).powi(2) + sxy * sxy).sqrt();
    let (mut v0, mut v1) = if sxy.abs() > 1e-12 {
        (sxy, top - sxx)
    } else if sxx >= syy {
        (1.0, 0.0)
    } else {
        (0.0, 1.0)
    };
    let norm = (v0 * v0 + v1 * v1).sqrt();
    (v0, v1) = (v0 / norm, v1 / norm);
    if v0 + v1 < 0.0 {
        (v0, v1) = (-v0, -v1);
    }
    let eigen: Vec<f32> = (0..16)
        .map(|p| centred(0, p) * v0 + centred(1, p) * v1)
        .collect();
    let explainer = Explainer::new(&model, &config, "cnn", "conv1", CamMethod::EigenCam).unwrap();
    let map = &explainer
        .explain(image.clone(), &[None], &ClassTarget::Class(0))
        .unwrap()[0];
    for p in 0..16 {
        assert!(
            (map.raw[p] - eigen[p]).abs() < 1e-4,
            "EigenCAM cell {p}: {:?} vs {eigen:?}",
            map.raw
        );
    }
    // RandomCAM: some combination of the two channels with weights in [-1, 1] (solved back
    // from two cells), the same map again for the same image, and not the Grad-CAM one.
    let explainer = Explainer::new(&model, &config, "cnn", "conv1", CamMethod::RandomCam).unwrap();
    let random = |explainer: &Explainer| {
        explainer
            .explain(image.clone(), &[None], &ClassTarget::Class(0))
            .unwrap()[0]
            .raw
            .clone()
    };
    let (r1, r2) = (random(&explainer), random(&explainer));
    assert_eq!(r1, r2, "RandomCAM is seeded by the image");
    let (mut best, mut weights) = (f32::INFINITY, [0f32; 2]);
    for p in 0..16 {
        for q in p + 1..16 {
            let det =
                a[0][p / 4][p % 4] * a[1][q / 4][q % 4] - a[1][p / 4][p % 4] * a[0][q / 4][q % 4];
            if det.abs() > 1e-3 && det.abs().recip() < best {
                best = det.abs().recip();
                weights = [
                    (r1[p] * a[1][q / 4][q % 4] - a[1][p / 4][p % 4] * r1[q]) / det,
                    (a[0][p / 4][p % 4] * r1[q] - r1[p] * a[0][q / 4][q % 4]) / det,
                ];
            }
        }
    }
    assert!(weights.iter().all(|w| w.abs() <= 1.0), "{weights:?}");
    for p in 0..16 {
        let combined = weights[0] * a[0][p / 4][p % 4] + weights[1] * a[1][p / 4][p % 4];
        assert!((r1[p] - combined).abs() < 1e-4, "RandomCAM cell {p}");
    }

    // One value worked out on paper: class 0's Grad-CAM weights are 0.5 and -0.25 (the i - j
    // term averages out), so cell (0, 2) is 0.5 * 3 / s - 0.25 * relu(x[-1][1]) = 1.5 / s.
    let explainer = Explainer::new(&model, &config, "cnn", "conv1", CamMethod::GradCam).unwrap();
    let map = &explainer
        .explain(image, &[None], &ClassTarget::Class(0))
        .unwrap()[0];
    assert!(
        (map.raw[2] - 1.5 / (1.0 + BN_EPS).sqrt()).abs() < 1e-5,
        "{}",
        map.raw[2]
    );
}

/// Adds `delta` to one value of a named layer's activation.
struct Nudge {
    layer: String,
    index: [usize; 4],
    delta: f32,
}

impl LayerTap for Nudge {
    fn layer(&mut self, name: &str, activation: Tensor<4>) -> Tensor<4> {
        if name != self.layer {
            return activation;
        }
        let mut bump = vec![0.0f32; activation.shape().num_elements()];
        let [_, c, h, w] = activation.dims();
        let [n, k, i, j] = self.index;
        bump[((n * c + k) * h + i) * w + j] = self.delta;
        let bump = Tensor::<4>::from_data(
            TensorData::new(bump, activation.shape()),
            &activation.device(),
        );
        activation + bump
    }
}

#[test]
fn captured_gradients_agree_with_finite_differences_through_a_deeper_head() {
    let _rng = rng_lock();
    // conv2's activation goes through two more conv layers, pooling and a hidden layer.
    let options = ModelOptions {
        widths: vec![4, 6, 6, 8],
        pool: vec![true, false, true, true],
        hidden: vec![12],
        dropout: 0.0,
        ..ModelOptions::default()
    };
    let (_, model) = cnn(options, 3, [3, 16, 16]);
    let model = model.valid();
    let device = Device::flex();
    let images = Tensor::<4>::random(
        [2, 3, 16, 16],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let target = 1;

    let mut capture = Capture::new("conv2");
    let logits = model.forward_tapped(images.clone(), &mut capture);
    let plain = model.forward(images.clone());
    let same = logits
        .clone()
        .inner()
        .into_data()
        .iter::<f32>()
        .zip(plain.into_data().iter::<f32>())
        .all(|(a, b)| a == b);
    assert!(same, "capturing a layer changes the logits");
    let leaf = capture.activation().unwrap().clone();
    let grads = logits.narrow(1, target, 1).sum().backward();
    let grad: Vec<f32> = leaf
        .grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    let [_, c, h, w] = leaf.dims();
    assert_eq!([c, h, w], [6, 8, 8]);

    let score = |index: [usize; 4], delta: f32| -> f64 {
        let mut nudge = Nudge {
            layer: "conv2".into(),
            index,
            delta,
        };
        let logits = model.forward_tapped(images.clone(), &mut nudge);
        logits.narrow(1, target, 1).sum().into_scalar::<f64>()
    };
    let mut checked = 0;
    for index in [
        [0, 0, 0, 0],
        [0, 3, 4, 5],
        [1, 5, 7, 7],
        [1, 2, 3, 1],
        [0, 1, 6, 2],
    ] {
        let [n, k, i, j] = index;
        let analytic = grad[((n * c + k) * h + i) * w + j] as f64;
        let delta = 2e-3;
        let numeric = (score(index, delta) - score(index, -delta)) / (2.0 * delta as f64);
        assert!(
            (analytic - numeric).abs() < 2e-3 + 2e-2 * numeric.abs(),
            "{index:?}: {analytic} vs {numeric}"
        );
        checked += (analytic != 0.0) as usize;
    }
    assert!(checked >= 2, "too few non-zero gradients were checked");
}

#[test]
fn a_constant_output_model_gives_zero_maps_not_nan() {
    let _rng = rng_lock();
    let options = ModelOptions {
        widths: vec![4, 8],
        pool: vec![true, false],
        hidden: vec![],
        dropout: 0.0,
        ..ModelOptions::default()
    };
    let (config, model) = cnn(options, 3, [3, 16, 16]);
    // The output layer ignores its input: logits are the bias, whatever the image.
    let model = set_params(
        model,
        &[
            ("output.weight", vec![0.0; 8 * 8 * 8 * 3]),
            ("output.bias", vec![0.3, -0.1, 0.2]),
        ],
    );
    let images = Tensor::<4>::random(
        [3, 3, 16, 16],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    );
    for method in [
        CamMethod::GradCam,
        CamMethod::GradCamPlusPlus,
        CamMethod::HiResCam,
    ] {
        for layer in ["conv1", "conv2"] {
            let explainer = Explainer::new(&model, &config, "cnn", layer, method).unwrap();
            for target in [ClassTarget::Predicted, ClassTarget::Class(2)] {
                for map in explainer
                    .explain(images.clone(), &[None; 3], &target)
                    .unwrap()
                {
                    assert_eq!(map.predicted, 0);
                    assert!(
                        map.raw.iter().all(|&v| v == 0.0),
                        "{method:?} {layer}: {:?}",
                        map.raw
                    );
                    assert!(
                        map.normalised.iter().all(|&v| v == 0.0),
                        "{method:?} {layer}: {:?}",
                        map.normalised
                    );
                }
            }
        }
    }
}

/// `n` 16x16 images: noise everywhere, and in one random quadrant (the evidence) horizontal
/// stripes for class 0 or vertical stripes for class 1. Returns images, labels, quadrants.
fn striped(n: usize, seed: u64) -> (Vec<f32>, Vec<i64>, Vec<usize>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let (mut images, mut labels, mut quadrants) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let label = (next() % 2) as usize;
        let quadrant = (next() % 4) as usize;
        let (qy, qx) = (quadrant / 2 * 8, quadrant % 2 * 8);
        for _c in 0..3 {
            for y in 0..16 {
                for x in 0..16 {
                    let inside = (qy..qy + 8).contains(&y) && (qx..qx + 8).contains(&x);
                    let v = if inside {
                        let stripe = if label == 0 { y % 2 } else { x % 2 };
                        if stripe == 0 { 1.5 } else { -1.5 }
                    } else {
                        (next() % 1000) as f32 / 1000.0 - 0.5
                    };
                    images.push(v);
                }
            }
        }
        labels.push(label as i64);
        quadrants.push(quadrant);
    }
    (images, labels, quadrants)
}

#[test]
fn the_map_peaks_where_the_evidence_is_after_a_short_training() {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(7);
    let options = ModelOptions {
        widths: vec![8, 16],
        pool: vec![true, true],
        hidden: vec![16],
        dropout: 0.0,
        ..ModelOptions::default()
    };
    let config = network_config(
        &ModelSpec {
            name: "cnn".into(),
            options,
        },
        2,
        [3, 16, 16],
    )
    .unwrap();
    let mut model = config.init(&device).unwrap();
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let batch = 32;
    for step in 0..150 {
        let (images, labels, _) = striped(batch, step);
        let images = Tensor::<4>::from_data(TensorData::new(images, [batch, 3, 16, 16]), &device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
        let loss = loss_fn.forward(model.forward(images), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(3e-3, model, grads);
    }

    let n = 48;
    let (images, labels, quadrants) = striped(n, 10_000);
    let inference = Device::flex();
    let images = Tensor::<4>::from_data(TensorData::new(images, [n, 3, 16, 16]), &inference);
    let model = model.valid();
    let labelled: Vec<Option<usize>> = labels.iter().map(|&l| Some(l as usize)).collect();
    for method in [
        CamMethod::GradCam,
        CamMethod::GradCamPlusPlus,
        CamMethod::HiResCam,
    ] {
        let explainer = Explainer::new(&model, &config, "cnn", "conv2", method).unwrap();
        let maps = explainer
            .explain(images.clone(), &labelled, &ClassTarget::Label)
            .unwrap();
        let correct = maps
            .iter()
            .zip(&labels)
            .filter(|(m, l)| m.predicted == **l as usize)
            .count();
        assert!(
            correct >= n * 9 / 10,
            "the model did not learn the stripes: {correct}/{n}"
        );
        // conv2's map is 8x8: a quadrant of the image is a 4x4 block of it.
        let hits = maps
            .iter()
            .zip(&quadrants)
            .filter(|(m, q)| {
                assert_eq!(m.shape, [8, 8]);
                let best = (0..64).fold(0, |b, i| {
                    if m.normalised[i] > m.normalised[b] {
                        i
                    } else {
                        b
                    }
                });
                (best / 8 / 4) * 2 + (best % 8 / 4) == **q
            })
            .count();
        assert!(
            hits >= n * 8 / 10,
            "{method:?}: the peak is in the evidence's quadrant for only {hits} of {n} images"
        );
    }
}

#[test]
fn every_registered_model_shows_exactly_its_layer_names_to_a_tap() {
    let _rng = rng_lock();
    let device = Device::flex();
    for entry in MODELS {
        let config = network_config(
            &ModelSpec {
                name: entry.name.into(),
                options: ModelOptions::default(),
            },
            10,
            [3, 32, 32],
        )
        .unwrap();
        let shapes = config.layer_shapes([3, 32, 32], &device).unwrap();
        let seen: Vec<String> = shapes.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(seen, config.layer_names(), "{}", entry.name);
        assert!(
            seen.contains(&config.cam_layer()),
            "{}: default layer {} not tapped",
            entry.name,
            config.cam_layer()
        );
    }
    let config = network_config(
        &ModelSpec {
            name: "cnn".into(),
            options: ModelOptions::default(),
        },
        10,
        [3, 32, 32],
    )
    .unwrap();
    let shapes = config.layer_shapes([3, 32, 32], &device).unwrap();
    let expected = [
        ("conv1", [32, 32, 32]),
        ("conv2", [64, 16, 16]),
        ("conv3", [128, 8, 8]),
        ("conv4", [256, 4, 4]),
    ];
    assert_eq!(shapes, expected.map(|(n, s)| (n.to_string(), s)).to_vec());
    assert_eq!(config.cam_layer(), "conv4");
    let err = config.check_layer("cnn", "conv9").unwrap_err().to_string();
    assert!(
        err.contains("--layer")
            && err.contains("conv9")
            && err.contains("conv1, conv2, conv3, conv4"),
        "{err}"
    );
}

#[test]
fn class_targets_parse_names_indices_and_refuse_others() {
    let _rng = rng_lock();
    let classes: Vec<String> = ["cat", "dog", "ship"].map(String::from).to_vec();
    assert_eq!(
        ClassTarget::parse("top", &classes).unwrap(),
        ClassTarget::Predicted
    );
    assert_eq!(
        ClassTarget::parse("label", &classes).unwrap(),
        ClassTarget::Label
    );
    assert_eq!(
        ClassTarget::parse("2", &classes).unwrap(),
        ClassTarget::Class(2)
    );
    assert_eq!(
        ClassTarget::parse("dog", &classes).unwrap(),
        ClassTarget::Class(1)
    );
    let err = ClassTarget::parse("3", &classes).unwrap_err().to_string();
    assert!(
        err.contains("--class") && err.contains("3 classes"),
        "{err}"
    );
    let err = ClassTarget::parse("horse", &classes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'horse'") && err.contains("cat, dog, ship"),
        "{err}"
    );
}

#[test]
fn normalised_maps_are_relu_over_max_and_never_nan() {
    let _rng = rng_lock();
    assert_eq!(normalise(&[-1.0, 2.0, 1.0, 0.0]), vec![0.0, 1.0, 0.5, 0.0]);
    assert_eq!(normalise(&[-1.0, -2.0]), vec![0.0, 0.0]);
    assert_eq!(normalise(&[0.0; 4]), vec![0.0; 4]);
    assert_eq!(normalise(&[f32::NAN, 1.0]), vec![0.0, 1.0]);
}

#[test]
fn small_maps_upsample_smoothly_with_the_peak_in_place() {
    let _rng = rng_lock();
    // A 2x2 map whose top-right cell is hot, shown at 64x64.
    let up = upsample(&[0.0, 1.0, 0.0, 0.0], [2, 2], 64, 64);
    assert_eq!(up.len(), 64 * 64);
    let at = |x: usize, y: usize| up[y * 64 + x];
    assert!(
        (at(63, 0) - 1.0).abs() < 1e-6 && at(0, 63).abs() < 1e-6,
        "corners keep the cell values"
    );
    assert!(up.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)));
    // Bilinear between the cell centres (16 and 48): strictly increasing along the top row.
    for x in 17..48 {
        assert!(at(x, 0) > at(x - 1, 0), "not smooth at x = {x}");
    }
    let distinct: std::collections::BTreeSet<u32> =
        up.iter().map(|v| (v * 1000.0) as u32).collect();
    assert!(
        distinct.len() > 20,
        "the picture is blocky: {} levels",
        distinct.len()
    );
    // Colours run from the map's low to high end.
    assert_ne!(Colormap::Turbo.color(0.0), Colormap::Turbo.color(1.0));
}

#[test]
fn figures_print_their_captions() {
    let _rng = rng_lock();
    let panel = image::RgbImage::from_pixel(64, 64, image::Rgb([200, 200, 200]));
    let tile = |text: &str| Tile {
        panels: vec![panel.clone(), panel.clone()],
        caption: vec![Line::new(text, figure::RED)],
    };
    let figure = Figure {
        title: vec![Line::new("a title", figure::BLACK)],
        headers: vec!["input".into(), "map".into()],
        tiles: vec![tile("true: cat"), tile("pred: dog (87%)"), tile("x")],
        columns: 2,
        colormap: Colormap::Turbo,
    };
    let image = figure.render();
    // Two tiles per row, two rows.
    assert!(image.width() >= 2 * (2 * 64) && image.height() >= 2 * 64);
    let red = image
        .pixels()
        .filter(|p| p[0] > 150 && p[1] < 80 && p[2] < 80)
        .count();
    assert!(
        red > 50,
        "the red captions were not drawn ({red} red pixels)"
    );
    assert!(figure::text_width(14.0, "pred: dog (87%)") > figure::text_width(14.0, "x"));
    assert!(figure::fit(14.0, "a very long caption that cannot fit", 60).ends_with('…'));
}
