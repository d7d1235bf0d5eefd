//! The `wgpu` device (build with `--features wgpu`; on a CPU it needs a Vulkan driver such as
//! Mesa's lavapipe, `apt-get install mesa-vulkan-drivers`): the same network gives the same
//! outputs and gradients as on `flex` (the plain CNN, and the attention CNNs, whose lean pixel
//! attention runs its portable tiled path there), and a CLI run trains on it.
#![cfg(feature = "wgpu")]

mod common;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::*;
use visionnet::device::DeviceKind;
use visionnet::model::table::network_config;
use visionnet::model::{ModelOptions, ModelSpec};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `model` (small widths) gives the same logits on `wgpu` as on `flex`, before and after one SGD
/// step with each device's own gradients.
fn wgpu_matches_flex(model: &str) {
    let flex = DeviceKind::Flex.device().unwrap().autodiff();
    let wgpu = DeviceKind::Wgpu.device().unwrap().autodiff();
    let spec = ModelSpec {
        name: model.into(),
        options: ModelOptions {
            widths: vec![8, 16, 16, 32],
            hidden: vec![32, 16, 16],
            ..Default::default()
        },
    };
    let config = network_config(&spec, 10, [3, 32, 32]).unwrap();
    let on_flex = config.init(&flex).unwrap();
    let on_wgpu = config
        .init(&wgpu)
        .unwrap()
        .load_record(on_flex.clone().into_record());

    let set = synthetic_set(16, 10, 32, 4);
    let x: Vec<f32> = set.pixels.iter().map(|&v| v as f32 / 255.0 - 0.5).collect();
    let labels: Vec<i64> = set.labels.iter().map(|&l| l as i64).collect();
    let run = |model: &visionnet::model::Network, device: &Device| {
        let images = Tensor::<4>::from_data(TensorData::new(x.clone(), [16, 3, 32, 32]), device);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [16]), device);
        let logits = model.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .init(device)
            .forward(logits.clone(), targets);
        let grads = loss.backward();
        let logits = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let grads = GradientsParams::from_grads(grads, model);
        (logits, grads)
    };
    let close = |a: &[f32], b: &[f32], what: &str| {
        let scale = a.iter().map(|v| v.abs()).fold(0.0, f32::max);
        let diff = max_abs_diff(a, b);
        assert!(
            diff <= 1e-3 * scale.max(1.0),
            "{model}: {what} differ by {diff} (scale {scale})"
        );
    };
    let (logits_flex, grads_flex) = run(&on_flex, &flex);
    let (logits_wgpu, grads_wgpu) = run(&on_wgpu, &wgpu);
    close(&logits_flex, &logits_wgpu, "logits");
    // One SGD step with each device's gradients: equal gradients give equal updated networks.
    let step = |model, grads| burn::optim::SgdConfig::new().init().step(0.5, model, grads);
    let on_flex = step(on_flex, grads_flex);
    let on_wgpu = step(on_wgpu, grads_wgpu);
    let (after_flex, _) = run(&on_flex, &flex);
    let (after_wgpu, _) = run(&on_wgpu, &wgpu);
    assert!(
        max_abs_diff(&after_flex, &logits_flex) > 1e-3,
        "{model}: the step changed nothing"
    );
    close(&after_flex, &after_wgpu, "logits after one step");
}

#[test]
fn wgpu_matches_flex_forward_and_backward() {
    wgpu_matches_flex("cnn");
}

#[test]
fn attention_cnns_match_flex_on_wgpu() {
    // attn1 and attn2: the lean op's tiled path on wgpu against flex's CPU kernels.
    for model in ["attn1", "attn2", "attn3"] {
        wgpu_matches_flex(model);
    }
}

#[test]
fn the_cli_trains_on_wgpu() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let run_dir = tmp.path().join("run");
    let out = visionnet(&[
        "train",
        "--device",
        "wgpu",
        "--data",
        data.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--val-size",
        "12",
        "--widths",
        "8,8,8,8",
        "--hidden",
        "8,8,8",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--quiet",
    ]);
    assert_success(&out);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["backend"], "wgpu");
    assert!(run_dir.join("summary.json").exists());
}
