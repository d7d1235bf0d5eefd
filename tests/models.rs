//! The study's CNN: shapes, the backbone/head split, parameter and FLOP counts, bad options.

use burn::prelude::*;
use visionnet::model::blocks::{ConvKind, LateralKind};
use visionnet::model::table::network_config;

mod common;
use common::{rel_err, to_vec, uniform};
use visionnet::model::{
    ImageClassifier, ImageClassifierConfig, ModelCost, ModelOptions, ModelSpec, Network, Recorder,
};

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
    let cost = ModelCost::of(&spec(options), 10, [3, 32, 32], &device).unwrap();
    let convs = [(3, 32, 32), (32, 64, 16), (64, 128, 8), (128, 256, 4)];
    let conv_params: usize = convs.iter().map(|(i, o, _)| i * o * 9 + 2 * o).sum();
    let fcs = [(256 * 2 * 2, 512), (512, 256), (256, 128), (128, 10)];
    let fc_params: usize = fcs.iter().map(|(i, o)| i * o + o).sum();
    assert_eq!(cost.params, conv_params + fc_params);
    let conv_flops: u64 = convs
        .iter()
        .map(|&(i, o, s)| 2 * (i * o * 9 * s * s) as u64)
        .sum();
    let fc_flops: u64 = fcs.iter().map(|&(i, o)| 2 * (i * o) as u64).sum();
    assert_eq!(cost.flops, conv_flops + fc_flops);
}

#[test]
fn bad_options_are_refused_with_the_flag_named() {
    let cases: [(ModelOptions, &str); 4] = [
        (
            ModelOptions {
                pool: vec![true; 3],
                ..Default::default()
            },
            "--pool",
        ),
        (
            ModelOptions {
                widths: vec![],
                pool: vec![],
                ..Default::default()
            },
            "--widths",
        ),
        (
            ModelOptions {
                widths: vec![8; 6],
                pool: vec![true; 6],
                ..Default::default()
            },
            "--pool",
        ),
        (
            ModelOptions {
                dropout: 1.0,
                ..Default::default()
            },
            "--dropout",
        ),
    ];
    for (options, flag) in cases {
        let err = network_config(&spec(options), 10, [3, 32, 32])
            .unwrap_err()
            .to_string();
        assert!(err.contains(flag), "{err}");
    }
    let err = network_config(
        &ModelSpec {
            name: "resnet9000".into(),
            options: ModelOptions::default(),
        },
        10,
        [3, 32, 32],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown model 'resnet9000'") && err.contains("cnn"),
        "{err}"
    );
}

#[test]
fn batchnorm_uses_batch_statistics_in_training_and_running_ones_in_inference() {
    let device = Device::flex().autodiff();
    let config = network_config(
        &spec(ModelOptions {
            widths: vec![4, 4, 4, 4],
            hidden: vec![8, 8, 8],
            ..Default::default()
        }),
        3,
        [3, 32, 32],
    )
    .unwrap();
    let model: Network = config.init(&device).unwrap();
    let x = Tensor::<4>::random([4, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let train_out = model.forward(x.clone()).into_data();
    let eval_out = model.valid().forward(x.inner()).into_data();
    // Fresh running statistics (mean 0, var 1) differ from the batch's: outputs differ.
    assert_ne!(
        train_out.as_slice::<f32>().unwrap(),
        eval_out.as_slice::<f32>().unwrap()
    );
}

#[test]
fn the_untapped_pass_pools_in_one_op_and_equals_the_tapped_pass() {
    // `forward` (no tap looks: each stage's last BatchNorm -> ReLU -> pool is one op) against
    // `forward_tapped` with a Recorder (it sees every layer: the activation before the pool is
    // built, then pooled apart), in training (logits and the input's gradient, through every
    // fused backward) and in inference; chains of one and two units, and attention (arch 3's
    // concatenation doubles the channels the fused BatchNorm sees); a residual and a dense stage
    // pool after their connections instead. Equal up to rounding: the fused op sums the batch
    // statistics in another order.
    let (none, residual, dense) = (LateralKind::None, LateralKind::Residual, LateralKind::Dense);
    let cases = [
        ("cnn", 1, vec![true, true, true, true], none),
        ("cnn", 2, vec![true, false, true, true], none),
        ("attn3", 1, vec![true, true, true, true], none),
        ("cnn", 2, vec![true, true, false, true], residual),
        ("cnn", 2, vec![true, true, true, true], dense),
    ];
    for (case, (name, stage_depth, pool, lateral)) in cases.into_iter().enumerate() {
        let options = ModelOptions {
            widths: vec![6, 8, 8, 12],
            pool,
            hidden: vec![10, 8, 6],
            stage_depth,
            lateral,
            ..Default::default()
        };
        let what = format!("{name}, stage depth {stage_depth}, lateral {lateral:?}");
        let spec = ModelSpec {
            name: name.into(),
            options,
        };
        let device = Device::flex().autodiff();
        let model: Network = network_config(&spec, 5, [3, 17, 16])
            .unwrap()
            .init(&device)
            .unwrap();
        let seed = 10 * case as u64;
        let x = Tensor::<4>::from_data(
            TensorData::new(uniform(3 * 3 * 17 * 16, seed), [3, 3, 17, 16]),
            &device,
        );
        let weights =
            Tensor::<2>::from_data(TensorData::new(uniform(15, seed + 1), [3, 5]), &device);
        let train = |tapped: bool| {
            let x = x.clone().require_grad();
            let logits = if tapped {
                model.forward_tapped(x.clone(), &mut Recorder::default())
            } else {
                model.forward(x.clone())
            };
            let grads = (logits.clone() * weights.clone()).sum().backward();
            (logits, x.grad(&grads).unwrap())
        };
        let ((logits, dx), (logits_apart, dx_apart)) = (train(false), train(true));
        assert!(
            rel_err(logits, logits_apart) < 1e-5,
            "{what}: training logits"
        );
        assert!(rel_err(dx, dx_apart) < 1e-4, "{what}: input gradient");
        let valid = model.valid();
        let x = x.inner();
        let (fused, apart) = (
            valid.forward(x.clone()),
            valid.forward_tapped(x, &mut Recorder::default()),
        );
        assert_eq!(
            to_vec(fused),
            to_vec(apart),
            "{what}: inference logits, bit for bit"
        );
    }
}

fn variant(lateral: LateralKind, conv: ConvKind, stage_depth: u64) -> ModelOptions {
    ModelOptions {
        widths: vec![8, 16, 16, 24],
        hidden: vec![20, 15, 12],
        stage_depth,
        lateral,
        conv,
        ..Default::default()
    }
}

#[test]
fn every_lateral_and_conv_combination_keeps_the_cnn_shapes() {
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    for lateral in [LateralKind::None, LateralKind::Residual, LateralKind::Dense] {
        for conv in [ConvKind::Plain, ConvKind::Inception, ConvKind::Separable] {
            for depth in [1, 2] {
                let config =
                    network_config(&spec(variant(lateral, conv, depth)), 7, [3, 32, 32]).unwrap();
                let model = config.init(&device).unwrap();
                assert_eq!(
                    model.forward_features(x.clone()).dims(),
                    [2, 24, 2, 2],
                    "{lateral:?} {conv:?} {depth}"
                );
                assert_eq!(model.forward(x.clone()).dims(), [2, 7]);
            }
        }
    }
}

#[test]
fn lateral_connections_add_exactly_their_shortcut_and_transition_weights() {
    let device = Device::flex();
    let count = |o: ModelOptions| ModelCost::of(&spec(o), 10, [3, 32, 32], &device).unwrap();
    let plain = count(variant(LateralKind::None, ConvKind::Plain, 2));
    // Residual: a 1x1 projection (+ BatchNorm) wherever a unit's width changes: the first unit
    // of stages 1 (3 -> 8), 2 (8 -> 16) and 4 (16 -> 24); stage 3 (16 -> 16) is all identity.
    let residual = count(variant(LateralKind::Residual, ConvKind::Plain, 2));
    let projections: usize = [(3, 8), (8, 16), (16, 24)]
        .iter()
        .map(|(i, o)| i * o + 2 * o)
        .sum();
    assert_eq!(residual.params, plain.params + projections);
    // Dense: unit 2 of a stage sees c_in + w channels instead of w, and a 1x1 transition
    // (+ BatchNorm) maps c_in + 2w back to w.
    let dense = count(variant(LateralKind::Dense, ConvKind::Plain, 2));
    let stages = [(3, 8), (8, 16), (16, 16), (16, 24)];
    let extra: usize = stages
        .iter()
        .map(|&(c, w)| 9 * c * w + (c + 2 * w) * w + 2 * w)
        .sum();
    assert_eq!(dense.params, plain.params + extra);
    assert!(dense.flops > residual.flops && residual.flops > plain.flops);
}

#[test]
fn multi_feature_convs_have_their_branch_weights() {
    let device = Device::flex();
    let count = |o: ModelOptions| {
        ModelCost::of(&spec(o), 10, [3, 32, 32], &device)
            .unwrap()
            .params
    };
    let one = |c| ModelOptions {
        widths: vec![16],
        pool: vec![true],
        hidden: vec![4, 4, 4],
        conv: c,
        ..Default::default()
    };
    // Flattened 16 x 16 x 16 -> 4 -> 4 -> 4 -> 10.
    let head = (4096 * 4 + 4) + 2 * (4 * 4 + 4) + (4 * 10 + 10);
    // Plain: 3x3 conv 3 -> 16 and its BatchNorm.
    assert_eq!(count(one(ConvKind::Plain)), 3 * 16 * 9 + 2 * 16 + head);
    // Separable: depthwise 3x3 (3 filters) + pointwise 3 -> 16.
    assert_eq!(
        count(one(ConvKind::Separable)),
        3 * 9 + 3 * 16 + 2 * 16 + head
    );
    // Inception, 4 x 4 channels: 1x1 (3->4); 1x1 reduce 3->2 (+BN), 3x3 2->4; 1x1 reduce 3->2
    // (+BN), 3x3 2->4 (+BN), 3x3 4->4; pool, 1x1 3->4; then the unit's BatchNorm.
    let inception = 3 * 4
        + (3 * 2 + 4)
        + 2 * 4 * 9
        + (3 * 2 + 4)
        + (2 * 4 * 9 + 8)
        + 4 * 4 * 9
        + 3 * 4
        + 2 * 16;
    assert_eq!(count(one(ConvKind::Inception)), inception + head);
}
