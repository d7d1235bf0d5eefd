//! Throughput measurement: training steps (forward, backward, optimizer) and inference on
//! synthetic batches, timed after warm-up, reported as medians.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use crate::error::Result;
use crate::model::ModelSpec;
use crate::model::registry::network_config;

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// The model.
    pub model: ModelSpec,
    /// Images per training step.
    pub batch_size: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Classes of the output layer.
    pub num_classes: usize,
    /// `[c, h, w]` of the input.
    pub input: [usize; 3],
}

/// Median seconds per step and images per second.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timing {
    /// Median seconds of one step.
    pub median_seconds: f64,
    /// Images per second at the median.
    pub images_per_second: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Times training steps of `spec.model` with Adam on random images.
pub fn train_steps(spec: &BenchSpec, device: &Device) -> Result<Timing> {
    let ad = device.clone().autodiff();
    let config = network_config(&spec.model, spec.num_classes, spec.input)?;
    let mut model = config.init(&ad)?;
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let [c, h, w] = spec.input;
    let b = spec.batch_size;
    let images = Tensor::<4>::random([b, c, h, w], burn::tensor::Distribution::Normal(0.0, 1.0), &ad);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..b as i64).map(|i| i % spec.num_classes as i64).collect::<Vec<_>>(), [b]),
        &ad,
    );
    let mut times = Vec::new();
    for i in 0..spec.warmup + spec.steps {
        let start = Instant::now();
        let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        let _ = ad.sync();
        if i >= spec.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let m = median(times);
    Ok(Timing {
        median_seconds: m,
        images_per_second: b as f64 / m,
    })
}
