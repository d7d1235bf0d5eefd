//! The gradient pass: one forward through a network with the explained layer captured as a
//! gradient leaf, one backward from the chosen class scores, and the maps of a [`CamMethod`].

use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::cam::{self, CamMethod};
use crate::error::{Error, Result};
use crate::model::{Capture, Network, NetworkConfig};

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
                        Err(bad(format!("class index {index} is out of range: the model has {} classes (0..{})", classes.len(), classes.len() - 1)))
                    };
                }
                classes
                    .iter()
                    .position(|c| c == text)
                    .map(ClassTarget::Class)
                    .ok_or_else(|| bad(format!("'{text}' is not top, label, a class index or a class of the model: {}", classes.join(", "))))
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
}

impl Explainer {
    /// Explains `model` (any registered network, configured by `config`) at `layer` with
    /// `method`. The model is used as its inference copy (BatchNorm on running statistics, no
    /// dropout), so each image's map depends on that image alone.
    pub fn new(model: &Network, config: &NetworkConfig, model_name: &str, layer: &str, method: CamMethod) -> Result<Self> {
        config.check_layer(model_name, layer)?;
        Ok(Self {
            model: model.valid(),
            layer: layer.to_string(),
            method,
        })
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
    pub fn explain(&self, images: Tensor<4>, labels: &[Option<usize>], target: &ClassTarget) -> Result<Vec<CamMap>> {
        let [n, ..] = images.dims();
        let mut capture = Capture::new(&self.layer);
        let logits = self.model.forward_tapped(images, &mut capture); // [n, classes], recorded from the leaf on
        let activations = capture.activation().cloned().ok_or_else(|| {
            Error::invalid("--layer", format!("the forward pass never reached layer '{}'", self.layer))
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
            TensorData::new(targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), [n, 1]),
            &device,
        );
        // Images are independent in inference mode, so the gradient of the summed scores with
        // respect to image i's activation is that of image i's own score.
        let scores = logits.clone().gather(1, index); // [n, 1]
        let target_logits = floats(scores.clone().inner());
        let gradients = scores.sum().backward();
        let grad = activations.grad(&gradients).ok_or_else(|| {
            Error::invalid("--layer", format!("no gradient reached layer '{}'", self.layer))
        })?; // [n, k, h, w]
        let [_, _, h, w] = grad.dims();
        let raw = floats(cam::raw_maps(self.method, activations.inner(), grad)); // [n * h * w]
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
}

/// A tensor's values, row-major.
fn floats<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data_as::<f32>().iter::<f32>().collect()
}
