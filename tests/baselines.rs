//! The baselines: both forms' shapes on 32x32 inputs, parameter and FLOP counts equal to the
//! reference implementations' (measured with PyTorch's FlopCounterMode on torchvision / timm),
//! the backbone / head split, and model-table errors.

use burn::prelude::*;
use visionnet::model::nets::Form;
use visionnet::model::table::{self, network_config};
use visionnet::model::{
    ImageClassifier, ImageClassifierConfig, ModelCost, ModelOptions, ModelSpec,
};

fn spec(name: &str, form: Form) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        options: ModelOptions {
            form,
            ..Default::default()
        },
    }
}

#[test]
fn every_baseline_runs_in_both_forms_on_cifar_images() {
    let device = Device::flex();
    // (model, form, backbone output on 32x32, pooled width)
    let cases = [
        ("vgg16", Form::Imagenet, [512, 1, 1], 512 * 7 * 7),
        ("vgg16", Form::Cifar, [512, 1, 1], 512),
        ("vgg16_bn", Form::Cifar, [512, 1, 1], 512),
        ("resnet50", Form::Imagenet, [2048, 1, 1], 2048),
        ("resnet50", Form::Cifar, [2048, 4, 4], 2048),
        ("xception", Form::Imagenet, [2048, 1, 1], 2048),
        ("xception", Form::Cifar, [2048, 2, 2], 2048),
        ("efficientnet_lite0", Form::Imagenet, [1280, 1, 1], 1280),
        ("efficientnet_lite0", Form::Cifar, [1280, 2, 2], 1280),
    ];
    for (name, form, features, pooled) in cases {
        let config = network_config(&spec(name, form), 10, [3, 32, 32]).unwrap();
        assert_eq!(config.feature_shape(), features, "{name} {form:?}");
        let model = config.init(&device).unwrap();
        let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        let f = model.forward_features(x.clone());
        assert_eq!(
            f.dims(),
            [2, features[0], features[1], features[2]],
            "{name} {form:?}"
        );
        let p = model.pool_features(f.clone());
        assert_eq!(p.dims(), [2, pooled], "{name} {form:?}");
        let logits = model.forward(x.clone());
        assert_eq!(logits.dims(), [2, 10]);
        // forward == classify(pool(features)), the split a cached linear probe relies on.
        let split = model.classify(p).into_data();
        logits
            .into_data()
            .assert_approx_eq::<f32>(&split, burn::tensor::Tolerance::default());
    }
}

#[test]
fn parameters_and_flops_equal_the_reference_implementations() {
    let device = Device::flex();
    // PyTorch: sum(p.numel() for p in model.parameters()) and FlopCounterMode's total, 1000
    // classes (torchvision 0.29, timm 1.0.31).
    let cases = [
        ("vgg16", 224, 138_357_544, 30_940_528_640u64),
        ("vgg16", 32, 138_357_544, 873_660_416),
        ("vgg16_bn", 224, 138_365_992, 30_940_528_640),
        ("resnet50", 224, 25_557_032, 8_178_368_512),
        ("resnet50", 32, 25_557_032, 170_917_888),
        ("xception", 299, 22_855_952, 16_714_806_992),
        ("xception", 32, 22_855_952, 180_424_640),
    ];
    for (name, side, params, flops) in cases {
        let config = network_config(&spec(name, Form::Imagenet), 1000, [3, side, side]).unwrap();
        assert_eq!(config.flops(), flops, "{name} at {side}");
        let spec = spec(name, Form::Imagenet);
        assert_eq!(
            ModelCost::of(&spec, 1000, [3, side, side], &device)
                .unwrap()
                .params,
            params,
            "{name}"
        );
    }
    // EfficientNet-Lite0: the 4,652,008 parameters of the shared ImageNet weights.
    let cost = ModelCost::of(
        &spec("efficientnet_lite0", Form::Imagenet),
        1000,
        [3, 224, 224],
        &device,
    )
    .unwrap();
    assert_eq!(cost.params, 4_652_008);
}

#[test]
fn resize_runs_the_backbone_at_the_asked_size_and_costs_accordingly() {
    let device = Device::flex();
    let mut s = spec("efficientnet_lite0", Form::Imagenet);
    let small = network_config(&s, 10, [3, 32, 32]).unwrap();
    s.options.resize = Some(64);
    let resized = network_config(&s, 10, [3, 32, 32]).unwrap();
    assert_eq!(resized.feature_shape(), [1280, 2, 2]);
    // Conv work grows with the pixel count: 4x here.
    let (a, b) = (small.flops() as f64, resized.flops() as f64);
    assert!((b / a - 4.0).abs() < 0.2, "{b} / {a}");
    let model = resized.init(&device).unwrap();
    let x = Tensor::<4>::random([1, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    assert_eq!(model.forward_features(x).dims(), [1, 1280, 2, 2]);
}

#[test]
fn options_that_do_not_apply_are_refused_with_the_flag_named() {
    let mut s = spec("cnn", Form::Imagenet);
    s.options.resize = Some(224);
    let err = network_config(&s, 10, [3, 32, 32]).unwrap_err().to_string();
    assert!(
        err.contains("--resize") && err.contains("baselines"),
        "{err}"
    );
    let mut s = spec("resnet50", Form::Cifar);
    s.options.lateral = visionnet::model::blocks::LateralKind::Dense;
    let err = network_config(&s, 10, [3, 32, 32]).unwrap_err().to_string();
    assert!(
        err.contains("--lateral") && err.contains("resnet50"),
        "{err}"
    );
    // Too small for the ImageNet stem.
    let err = network_config(&spec("xception", Form::Imagenet), 10, [3, 4, 4])
        .unwrap_err()
        .to_string();
    assert!(err.contains("too small"), "{err}");
    assert!(table::names().contains(&"efficientnet_lite0"));
}
