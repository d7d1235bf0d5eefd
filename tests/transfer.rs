//! Transfer and the brain-inspired CNN variants from the command line: a frozen backbone really is
//! frozen (weights and BatchNorm statistics) while the head learns, a head-only run on cached
//! features of the real EfficientNet-Lite0 weights, and short trainings of combined CNN variants.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::store::ModuleSnapshot;
use common::*;
use visionnet::io::read_json;
use visionnet::model::import::{self, Scope};
use visionnet::model::nets::{Form, ResNetConfig};
use visionnet::model::{ImageClassifier, ImageClassifierConfig, Network, NetworkConfig};
use visionnet::train::checkpoint;
use visionnet::train::metrics::Summary;

fn lite0_weights() -> PathBuf {
    shared_dir().join("weights/efficientnet-lite0/efficientnet-lite0-57934424.pth")
}

/// Every tensor of `model` (parameters and BatchNorm statistics) by path. Read from the
/// inference copy, which first folds pending running-statistic updates in.
fn tensors(model: &Network) -> BTreeMap<String, Vec<f32>> {
    model
        .valid()
        .collect(None, None, true)
        .into_iter()
        .map(|t| {
            let data = burn::store::bridge::to_data(&t).unwrap();
            (
                t.name.clone(),
                data.convert::<f32>().try_into_vec::<f32>().unwrap(),
            )
        })
        .collect()
}

/// One SGD step of `model` on a random batch; returns the updated model.
fn one_step(model: Network, device: &Device) -> Network {
    let x = Tensor::<4>::random(
        [8, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..8i64).map(|i| i % 5).collect::<Vec<_>>(), [8]),
        device,
    );
    let loss = CrossEntropyLossConfig::new()
        .init(device)
        .forward(model.forward(x), y);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = SgdConfig::new().init();
    optim.step(0.5, model, grads)
}

#[test]
fn a_frozen_backbone_keeps_its_weights_and_batchnorm_statistics() {
    let device = Device::flex().autodiff();
    let config = NetworkConfig::ResNet(
        ResNetConfig::new(5)
            .with_input([3, 32, 32])
            .with_form(Form::Cifar)
            .with_stem_width(8)
            .with_widths(vec![4, 4, 8, 8])
            .with_depths(vec![1, 1, 1, 1]),
    );
    let fresh = config.init(&device).unwrap();
    let before = tensors(&fresh);
    assert!(
        before.keys().any(|k| k.ends_with("running_var")),
        "{:?}",
        before.keys()
    );

    let after = tensors(&one_step(fresh.clone().freeze_backbone(), &device));
    for (name, value) in &before {
        if name.starts_with("head.") {
            assert_ne!(&after[name], value, "{name}: the head must learn");
        } else {
            assert_eq!(&after[name], value, "{name}: the backbone must stay frozen");
        }
    }
    // Without freezing, the same step moves the backbone's weights and statistics.
    let after = tensors(&one_step(fresh, &device));
    for name in [
        "stem.conv.weight",
        "stem.norm.running_mean",
        "stages.3.0.conv3.norm.running_var",
    ] {
        assert_ne!(after[name], before[name], "{name}");
    }
}

#[test]
fn head_only_transfer_of_efficientnet_lite0_on_cached_features() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 4, 60, 32);
    let run = tmp.path().join("run");
    let weights = lite0_weights();
    let out = visionnet(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "efficientnet_lite0",
        "--form",
        "cifar",
        "--pretrained",
        weights.to_str().unwrap(),
        "--finetune",
        "head",
        "--cache-features",
        "true",
        "--crop-padding",
        "0",
        "--flip",
        "false",
        "--val-size",
        "40",
        "--epochs",
        "4",
        "--batch-size",
        "25",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--weight-decay",
        "0",
        "--schedule",
        "constant",
        "--run-dir",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = assert_success(&out);
    let _ = stdout;
    let summary: Summary = read_json(&run.join("summary.json")).unwrap();
    // 4 classes (chance 25%): ImageNet features separate the synthetic classes well.
    assert!(
        summary.test.accuracy > 0.6,
        "test accuracy {}",
        summary.test.accuracy
    );

    // The backbone in the checkpoint is exactly the pretrained one, BatchNorm statistics too.
    let device = Device::flex();
    let (_, meta, trained) = checkpoint::load_model(&run, &device).unwrap();
    assert_eq!(meta.classes.len(), 4);
    let config = visionnet::model::table::network_config(&meta.model, 4, [3, 32, 32]).unwrap();
    let (pretrained, _) = import::load(
        config.init(&device).unwrap(),
        &config,
        &weights,
        Scope::Backbone,
    )
    .unwrap();
    let (a, b) = (tensors(&trained), tensors(&pretrained));
    assert_eq!(a.len(), b.len());
    for (name, value) in &a {
        if !name.starts_with("head.") {
            assert_eq!(value, &b[name], "{name}");
        }
    }
}

#[test]
fn transfer_flags_that_cannot_work_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 10, 32);
    let d = data.to_str().unwrap();
    let out = visionnet(&[
        "train",
        "--data",
        d,
        "--model",
        "efficientnet_lite0",
        "--finetune",
        "head",
        "--cache-features",
        "true",
    ]);
    assert_clean_failure(&out, &["--cache-features", "--crop-padding 0 --flip false"]);
    let out = visionnet(&[
        "train",
        "--data",
        d,
        "--model",
        "efficientnet_lite0",
        "--cache-features",
        "true",
        "--crop-padding",
        "0",
        "--flip",
        "false",
    ]);
    assert_clean_failure(&out, &["--cache-features", "--finetune head"]);
    let out = visionnet(&[
        "train",
        "--data",
        d,
        "--model",
        "efficientnet_lite0",
        "--pretrained",
        "/nonexistent/w.pth",
    ]);
    assert_clean_failure(&out, &["--pretrained", "/nonexistent/w.pth"]);
    // ImageNet EfficientNet weights are not a ResNet.
    let weights = lite0_weights();
    let run = tmp.path().join("run");
    let out = visionnet(&[
        "train",
        "--data",
        d,
        "--model",
        "resnet50",
        "--form",
        "cifar",
        "--pretrained",
        weights.to_str().unwrap(),
        "--val-size",
        "3",
        "--batch-size",
        "4",
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert_clean_failure(
        &out,
        &[
            "efficientnet-lite0-57934424.pth",
            "torchvision resnet50",
            "missing from the file: conv1.weight",
        ],
    );
    assert!(
        !run.exists(),
        "nothing is written before the weights are checked"
    );
}

#[test]
fn combined_cnn_variants_train_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 40, 32);
    for (lateral, conv) in [("dense", "inception"), ("residual", "separable")] {
        let run = tmp.path().join(format!("run-{lateral}-{conv}"));
        let out = visionnet(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--lateral",
            lateral,
            "--conv",
            conv,
            "--stage-depth",
            "2",
            "--widths",
            "8,8,16,16",
            "--hidden",
            "16,16,16",
            "--val-size",
            "15",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--run-dir",
            run.to_str().unwrap(),
            "--quiet",
        ]);
        assert_success(&out);
        let summary: Summary = read_json(&run.join("summary.json")).unwrap();
        assert_eq!(summary.test.images, 60);
        let (_, meta, _) = checkpoint::load_model(&run, &Device::flex()).unwrap();
        assert_eq!(
            format!("{:?}", meta.model.options.lateral).to_lowercase(),
            lateral
        );
    }
}
