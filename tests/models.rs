//! The study's CNN: shapes, the backbone/head split, parameter and FLOP counts, bad options.

use burn::prelude::*;
use visionnet::model::registry::{self, network_config};
use visionnet::model::{ModelOptions, ModelSpec, Network};

fn spec(options: ModelOptions) -> ModelSpec {
    ModelSpec {
        name: "cnn".into(),
        options,
    }
}

#[test]
fn cnn_shapes_follow_the_pooling() {
    let device = Device::flex();
    let options = ModelOptions {
        widths: vec![8, 16, 24, 32],
        pool: vec![true, true, false, true],
        hidden: vec![20, 15, 12],
        dropout: 0.1,
        ..Default::default()
    };
    let config = network_config(&spec(options), 7, [3, 32, 32]).unwrap();
    let model = config.init(&device).unwrap();
    let x = Tensor::<4>::random([5, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let features = model.forward_features(x.clone());
    // 32 -> 16 -> 8 -> 8 (no pool) -> 4
    assert_eq!(features.dims(), [5, 32, 4, 4]);
    assert_eq!(model.forward_head(features).dims(), [5, 7]);
    assert_eq!(model.valid().forward(x).dims(), [5, 7]);
    assert_eq!(config.layer_names(), ["conv1", "conv2", "conv3", "conv4"]);
}

#[test]
fn parameters_and_flops_match_the_formulas() {
    let device = Device::flex();
    let options = ModelOptions::default(); // 32, 64, 128, 256; pool after each; 512, 256, 128
    let cost = registry::cost(&spec(options), 10, [3, 32, 32], &device).unwrap();
    let convs = [(3, 32, 32), (32, 64, 16), (64, 128, 8), (128, 256, 4)];
    let conv_params: usize = convs.iter().map(|(i, o, _)| i * o * 9 + 2 * o).sum();
    let fcs = [(256 * 2 * 2, 512), (512, 256), (256, 128), (128, 10)];
    let fc_params: usize = fcs.iter().map(|(i, o)| i * o + o).sum();
    assert_eq!(cost.params, conv_params + fc_params);
    let conv_flops: u64 = convs.iter().map(|&(i, o, s)| 2 * (i * o * 9 * s * s) as u64).sum();
    let fc_flops: u64 = fcs.iter().map(|&(i, o)| 2 * (i * o) as u64).sum();
    assert_eq!(cost.flops, conv_flops + fc_flops);
}

#[test]
fn bad_options_are_refused_with_the_flag_named() {
    let cases: [(ModelOptions, &str); 4] = [
        (ModelOptions { pool: vec![true; 3], ..Default::default() }, "--pool"),
        (ModelOptions { widths: vec![], pool: vec![], ..Default::default() }, "--widths"),
        (ModelOptions { widths: vec![8; 6], pool: vec![true; 6], ..Default::default() }, "--pool"),
        (ModelOptions { dropout: 1.0, ..Default::default() }, "--dropout"),
    ];
    for (options, flag) in cases {
        let err = network_config(&spec(options), 10, [3, 32, 32]).unwrap_err().to_string();
        assert!(err.contains(flag), "{err}");
    }
    let err = network_config(&ModelSpec { name: "resnet9000".into(), options: ModelOptions::default() }, 10, [3, 32, 32])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown model 'resnet9000'") && err.contains("cnn"), "{err}");
}

#[test]
fn batchnorm_uses_batch_statistics_in_training_and_running_ones_in_inference() {
    let device = Device::flex().autodiff();
    let config = network_config(&spec(ModelOptions { widths: vec![4, 4, 4, 4], hidden: vec![8, 8, 8], ..Default::default() }), 3, [3, 32, 32]).unwrap();
    let model: Network = config.init(&device).unwrap();
    let x = Tensor::<4>::random([4, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let train_out = model.forward(x.clone()).into_data();
    let eval_out = model.valid().forward(x.inner()).into_data();
    // Fresh running statistics (mean 0, var 1) differ from the batch's: outputs differ.
    assert_ne!(train_out.as_slice::<f32>().unwrap(), eval_out.as_slice::<f32>().unwrap());
}
