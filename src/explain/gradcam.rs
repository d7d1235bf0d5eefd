//! The explaining pass: one forward through a network with the explained layer captured as a
//! gradient leaf, then what the [`CamMethod`] needs: one backward from the chosen class scores
//! (the gradient methods), nothing more (EigenCAM, RandomCAM), or one forward per channel of
//! perturbed inputs (ScoreCAM: the input masked by each channel; AblationCAM: the layer with
//! each channel ablated, fed to the rest of the network through a [`LayerTap`]).

use burn::prelude::*;
use burn::tensor::activation::softmax;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cam::{self, CamMethod, Needs};
use super::overlay::upsample_aligned;
use crate::error::{Error, Result};
use crate::model::{Capture, ImageClassifier, LayerTap, Network, NetworkConfig};

/// Perturbed inputs per forward pass of ScoreCAM and AblationCAM.
pub const PERTURBATION_BATCH: usize = 128;

/// Which class a map explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassTarget {
    /// The class the model predicts (`top`).
    Predicted,
    /// The image's true label (`label`; only for images with a known label).
    Label,
    /// A fixed class, by index.
    Class(usize),
}

impl ClassTarget {
    /// Parses `top`, `label`, a class index or a class name of `classes`.
    pub fn parse(text: &str, classes: &[String]) -> Result<Self> {
        let bad = |why: String| Error::invalid("--class", why);
        match text {
            "top" => Ok(ClassTarget::Predicted),
            "label" => Ok(ClassTarget::Label),
            _ => {
                if let Ok(index) = text.parse::<usize>() {
                    return if index < classes.len() {
                        Ok(ClassTarget::Class(index))
                    } else {
                        Err(bad(format!(
                            "class index {index} is out of range: the model has {} classes (0..{})",
                            classes.len(),
                            classes.len() - 1
                        )))
                    };
                }
                classes
                    .iter()
                    .position(|c| c == text)
                    .map(ClassTarget::Class)
                    .ok_or_else(|| {
                        bad(format!(
                            "'{text}' is not top, label, a class index or a class of the model: {}",
                            classes.join(", ")
                        ))
                    })
            }
        }
    }

    /// How the target reads on figures and in summaries.
    pub fn describe(&self, classes: &[String]) -> String {
        match self {
            ClassTarget::Predicted => "predicted class".to_string(),
            ClassTarget::Label => "true class".to_string(),
            ClassTarget::Class(c) => format!("class {}", classes[*c]),
        }
    }
}

/// One image's map and the model's verdict on it.
#[derive(Clone, Debug, PartialEq)]
pub struct CamMap {
    /// The class the model predicts.
    pub predicted: usize,
    /// Softmax probability of the predicted class.
    pub confidence: f32,
    /// The class the map explains.
    pub target: usize,
    /// Softmax probability of the explained class.
    pub target_probability: f32,
    /// The explained class's logit (the score differentiated).
    pub target_logit: f32,
    /// `[height, width]` of the map (the layer's activation).
    pub shape: [usize; 2],
    /// The map before ReLU and normalisation, row-major (see [`cam`]).
    pub raw: Vec<f32>,
    /// `relu(raw) / max`, in [0, 1].
    pub normalised: Vec<f32>,
}

impl CamMap {
    /// Whether no cell of the map is positive (the normalised map is all zeros).
    pub fn is_blank(&self) -> bool {
        self.normalised.iter().all(|&v| v == 0.0)
    }
}

/// A network ready to be explained at one of its layers.
pub struct Explainer {
    model: Network,
    layer: String,
    method: CamMethod,
    /// Seed of RandomCAM's weights (mixed with each image's activation).
    seed: u64,
}

impl Explainer {
    /// Explains `model` (any registered network, configured by `config`) at `layer` with
    /// `method`. The model is used as its inference copy (BatchNorm on running statistics, no
    /// dropout), so each image's map depends on that image alone.
    pub fn new(
        model: &Network,
        config: &NetworkConfig,
        model_name: &str,
        layer: &str,
        method: CamMethod,
    ) -> Result<Self> {
        config.check_layer(model_name, layer)?;
        Ok(Self {
            model: model.valid(),
            layer: layer.to_string(),
            method,
            seed: 0,
        })
    }

    /// The same explainer with RandomCAM's weights drawn from `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same model and layer with another method.
    pub fn with_method(&self, method: CamMethod) -> Self {
        Self {
            model: self.model.clone(),
            layer: self.layer.clone(),
            method,
            seed: self.seed,
        }
    }

    /// The inference copy of the model that is explained.
    pub fn model(&self) -> &Network {
        &self.model
    }

    /// The explained layer.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// The method.
    pub fn method(&self) -> CamMethod {
        self.method
    }

    /// Maps for a batch of normalised images `[batch, c, h, w]`. `labels` gives each image's
    /// true label where known (needed by [`ClassTarget::Label`]).
    pub fn explain(
        &self,
        images: Tensor<4>,
        labels: &[Option<usize>],
        target: &ClassTarget,
    ) -> Result<Vec<CamMap>> {
        let [n, ..] = images.dims();
        let mut capture = Capture::new(&self.layer);
        let logits = self.model.forward_tapped(images.clone(), &mut capture); // [n, classes], recorded from the leaf on
        let activations = capture.activation().cloned().ok_or_else(|| {
            Error::invalid(
                "--layer",
                format!("the forward pass never reached layer '{}'", self.layer),
            )
        })?; // [n, k, h, w]
        let probabilities = floats(softmax(logits.clone().inner(), 1)); // [n * classes]
        let classes = probabilities.len() / n.max(1);
        let predicted: Vec<usize> = probabilities
            .chunks_exact(classes)
            .map(|row| (0..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best }))
            .collect();
        let targets = (0..n)
            .map(|i| match target {
                ClassTarget::Predicted => Ok(predicted[i]),
                ClassTarget::Class(c) => Ok(*c),
                ClassTarget::Label => labels.get(i).copied().flatten().ok_or_else(|| {
                    Error::invalid("--class", "'label' needs images with a known label (from --data, or a file in a folder named after its class)")
                }),
            })
            .collect::<Result<Vec<usize>>>()?;
        let device = logits.device();
        let index = Tensor::<2, Int>::from_data(
            TensorData::new(
                targets.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [n, 1],
            ),
            &device,
        );
        // Images are independent in inference mode, so the gradient of the summed scores with
        // respect to image i's activation is that of image i's own score.
        let scores = logits.clone().gather(1, index); // [n, 1]
        let target_logits = floats(scores.clone().inner());
        let dims = activations.dims();
        let [_, k, h, w] = dims;
        let raw = match self.method.needs() {
            Needs::Gradients => {
                let gradients = scores.sum().backward();
                let grad = activations.grad(&gradients).ok_or_else(|| {
                    Error::invalid(
                        "--layer",
                        format!("no gradient reached layer '{}'", self.layer),
                    )
                })?; // [n, k, h, w]
                floats(cam::raw_maps(self.method, activations.inner(), grad)) // [n * h * w]
            }
            Needs::Activations if self.method == CamMethod::EigenCam => {
                cam::eigen_maps(&floats(activations.inner()), dims)
            }
            Needs::Activations => {
                let a = activations.inner();
                let values = floats(a.clone());
                let weights: Vec<f32> = values
                    .chunks_exact(k * h * w)
                    .flat_map(|image| random_weights(image, k, self.seed))
                    .collect();
                floats(cam::weighted_sum(
                    a,
                    Tensor::from_data(TensorData::new(weights, [n, k]), &device),
                ))
            }
            Needs::Forwards => {
                let a = activations.inner();
                let weights = if self.method == CamMethod::ScoreCam {
                    self.score_weights(images, &a, &targets)?
                } else {
                    self.ablation_weights(images, &a, &targets, &target_logits)?
                }; // [n * k]
                floats(cam::weighted_sum(
                    a,
                    Tensor::from_data(TensorData::new(weights, [n, k]), &device),
                ))
            }
        };
        Ok(raw
            .chunks_exact(h * w)
            .enumerate()
            .map(|(i, raw)| CamMap {
                predicted: predicted[i],
                confidence: probabilities[i * classes + predicted[i]],
                target: targets[i],
                target_probability: probabilities[i * classes + targets[i]],
                target_logit: target_logits[i],
                shape: [h, w],
                raw: raw.to_vec(),
                normalised: cam::normalise(raw),
            })
            .collect())
    }

    /// ScoreCAM's weights `[n * k]`: for each image, the softmax over channels of the target
    /// logit of the input times each channel's mask (the channel upsampled to the input, corners
    /// aligned as torch's `UpsamplingBilinear2d`, and scaled to [0, 1]).
    fn score_weights(
        &self,
        images: Tensor<4>,
        activations: &Tensor<4>,
        targets: &[usize],
    ) -> Result<Vec<f32>> {
        let [n, c, ih, iw] = images.dims();
        let [_, k, h, w] = activations.dims();
        let device = images.device();
        let pixels = floats(images); // [n * c * ih * iw]
        let values = floats(activations.clone()); // [n * k * h * w]
        let mut weights = Vec::with_capacity(n * k);
        for i in 0..n {
            let image = &pixels[i * c * ih * iw..(i + 1) * c * ih * iw];
            let masks: Vec<Vec<f32>> = (0..k)
                .map(|ch| {
                    let plane = &values[(i * k + ch) * h * w..(i * k + ch + 1) * h * w];
                    let up = upsample_aligned(plane, [h, w], [ih, iw]);
                    let (lo, hi) = up
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                            (lo.min(v), hi.max(v))
                        });
                    up.iter().map(|&v| (v - lo) / (hi - lo + 1e-8)).collect()
                })
                .collect();
            let mut scores = Vec::with_capacity(k);
            for chunk in masks.chunks(PERTURBATION_BATCH) {
                let mut batch = Vec::with_capacity(chunk.len() * c * ih * iw);
                for mask in chunk {
                    for ch in 0..c {
                        batch.extend(
                            image[ch * ih * iw..(ch + 1) * ih * iw]
                                .iter()
                                .zip(mask)
                                .map(|(x, m)| x * m),
                        );
                    }
                }
                let input = Tensor::<4>::from_data(
                    TensorData::new(batch, [chunk.len(), c, ih, iw]),
                    &device,
                );
                scores.extend(target_scores(&self.model.forward(input), targets[i]));
            }
            weights.extend(softmax_row(&scores));
        }
        Ok(weights)
    }

    /// AblationCAM's weights `[n * k]`: `(y - y_k) / y` with `y` the target logit and `y_k` the
    /// logit when channel `k` of the layer is ablated (the rest of the network sees the ablated
    /// activation through a [`LayerTap`]).
    fn ablation_weights(
        &self,
        images: Tensor<4>,
        activations: &Tensor<4>,
        targets: &[usize],
        logits: &[f32],
    ) -> Result<Vec<f32>> {
        let [n, k, h, w] = activations.dims();
        let device = images.device();
        let values = floats(activations.clone());
        let mut weights = Vec::with_capacity(n * k);
        for i in 0..n {
            let own = &values[i * k * h * w..(i + 1) * k * h * w];
            let min = own.iter().copied().fold(f32::INFINITY, f32::min);
            let ablated_value = if min == 0.0 { 0.0 } else { min - 1e7 };
            let image = images.clone().narrow(0, i, 1); // [1, c, ih, iw]
            let mut scores = Vec::with_capacity(k);
            let channels: Vec<usize> = (0..k).collect();
            for chunk in channels.chunks(PERTURBATION_BATCH) {
                let mut batch = Vec::with_capacity(chunk.len() * k * h * w);
                for &ch in chunk {
                    let start = batch.len();
                    batch.extend_from_slice(own);
                    batch[start + ch * h * w..start + (ch + 1) * h * w].fill(ablated_value);
                }
                let mut tap = Replace {
                    layer: &self.layer,
                    with: Some(Tensor::from_data(
                        TensorData::new(batch, [chunk.len(), k, h, w]),
                        &device,
                    )),
                };
                let input = image.clone().repeat_dim(0, chunk.len());
                scores.extend(target_scores(
                    &self.model.forward_tapped(input, &mut tap),
                    targets[i],
                ));
                if tap.with.is_some() {
                    return Err(Error::invalid(
                        "--layer",
                        format!("the forward pass never reached layer '{}'", self.layer),
                    ));
                }
            }
            let y = logits[i];
            weights.extend(scores.iter().map(|&s| (y - s) / y));
        }
        Ok(weights)
    }
}

/// Replaces one layer's activation with a given tensor (AblationCAM's ablated copies).
struct Replace<'a> {
    layer: &'a str,
    with: Option<Tensor<4>>,
}

impl LayerTap for Replace<'_> {
    fn layer(&mut self, name: &str, activation: Tensor<4>) -> Tensor<4> {
        match (name == self.layer, self.with.take()) {
            (true, Some(replacement)) => replacement,
            (_, other) => {
                self.with = other;
                activation
            }
        }
    }

    fn sees(&self, name: &str) -> bool {
        name == self.layer
    }
}

/// Column `target` of a batch of logits.
fn target_scores(logits: &Tensor<2>, target: usize) -> Vec<f32> {
    floats(logits.clone().narrow(1, target, 1))
}

/// Softmax of a row, with its maximum subtracted first.
fn softmax_row(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// RandomCAM's `k` weights for one image, uniform in [-1, 1], from `seed` and the image's
/// activation (so an image gets the same map in any batch, and two images different ones).
pub fn random_weights(activation: &[f32], k: usize, seed: u64) -> Vec<f32> {
    // FNV-1a over the activation's bits.
    let hash = activation.iter().fold(0xcbf29ce484222325u64, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x100000001b3)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(hash ^ seed.wrapping_mul(0x9e3779b97f4a7c15));
    (0..k).map(|_| rng.random_range(-1.0f32..=1.0)).collect()
}

/// A tensor's values, row-major.
fn floats<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data_as::<f32>().iter::<f32>().collect()
}
