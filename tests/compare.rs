//! The comparisons of issue 19: the standard attention modules (`--channel-attn`) against timm's
//! (parameter counts and outputs with the same weights), compute-matched twins (the widths
//! found, a grid's `match`, refusals), and the bad input of both.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param, RunningState};
use burn::prelude::*;
use burn::store::{ModuleStore, SafetensorsStore};
use common::*;
use visionnet::model::blocks::{ChannelAttn, ChannelAttnKind};
use visionnet::model::matched::{self, MatchBy};
use visionnet::model::{
    ImageClassifier, ImageClassifierConfig, ModelCost, ModelOptions, ModelSpec, table,
};
use visionnet::train::experiment::{Grid, Selection};

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/fixtures/import/channel-attn-{kind}.safetensors"
    ))
}

/// A tensor of the fixture: its shape and values.
fn read(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let mut store = SafetensorsStore::from_file(path);
    let t = store
        .get_tensor(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} in {}", path.display()))
        .clone();
    let shape = t.shape.to_vec();
    let data = burn::store::bridge::to_data(&t).unwrap();
    (shape, data.convert::<f32>().try_into_vec::<f32>().unwrap())
}

fn tensor<const D: usize>(path: &Path, name: &str, device: &Device) -> Tensor<D> {
    let (shape, values) = read(path, name);
    let dims: [usize; D] = shape.try_into().unwrap();
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// PyTorch's 1x1 conv weight `[out, in, 1, 1]` as burn's linear weight `[in, out]`.
fn linear_weight(path: &Path, name: &str, device: &Device) -> Param<Tensor<2>> {
    let (shape, values) = read(path, name);
    let w: Tensor<2> = Tensor::from_data(TensorData::new(values, [shape[0], shape[1]]), device);
    Param::from_tensor(w.transpose())
}

fn vector(path: &Path, name: &str, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(tensor::<1>(path, name, device))
}

/// The module of `kind` for 128 channels with the fixture's weights.
fn with_fixture_weights(kind: ChannelAttnKind, path: &Path, device: &Device) -> ChannelAttn {
    let mut module = kind.config(128).init(device);
    match &mut module {
        ChannelAttn::Se(m) => {
            m.fc1.weight = linear_weight(path, "fc1.weight", device);
            m.fc1.bias = Some(vector(path, "fc1.bias", device));
            m.fc2.weight = linear_weight(path, "fc2.weight", device);
            m.fc2.bias = Some(vector(path, "fc2.bias", device));
        }
        ChannelAttn::Eca(m) => {
            m.conv.weight = Param::from_tensor(tensor::<3>(path, "conv.weight", device))
        }
        ChannelAttn::Cbam(m) => {
            m.fc1.weight = linear_weight(path, "channel.fc1.weight", device);
            m.fc2.weight = linear_weight(path, "channel.fc2.weight", device);
            m.spatial.weight =
                Param::from_tensor(tensor::<4>(path, "spatial.conv.conv.weight", device));
            m.norm.gamma = vector(path, "spatial.conv.bn.weight", device);
            m.norm.beta = vector(path, "spatial.conv.bn.bias", device);
            m.norm.running_mean =
                RunningState::new(tensor::<1>(path, "spatial.conv.bn.running_mean", device));
            m.norm.running_var =
                RunningState::new(tensor::<1>(path, "spatial.conv.bn.running_var", device));
        }
        ChannelAttn::Gc(m) => {
            m.attn.weight = linear_weight(path, "conv_attn.weight", device);
            m.attn.bias = Some(vector(path, "conv_attn.bias", device));
            m.fc1.weight = linear_weight(path, "mlp_scale.fc1.weight", device);
            m.fc1.bias = Some(vector(path, "mlp_scale.fc1.bias", device));
            m.norm.gamma = vector(path, "mlp_scale.norm.weight", device);
            m.norm.beta = Some(vector(path, "mlp_scale.norm.bias", device));
            m.fc2.weight = linear_weight(path, "mlp_scale.fc2.weight", device);
            m.fc2.bias = Some(vector(path, "mlp_scale.fc2.bias", device));
        }
    }
    module
}

/// Parameter values as PyTorch's `sum(p.numel() for p in m.parameters())` counts them: not
/// BatchNorm's running statistics (burn's `num_params` counts those too).
struct Parameters(usize);

impl burn::module::ModuleVisitor for Parameters {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // A fresh parameter is lazy (and trains); an initialised tensor that needs no gradient
        // is a running statistic.
        if !param.is_initialized() {
            self.0 += param.lazy_shape().num_elements();
        } else if param.val().is_require_grad() {
            self.0 += param.val().shape().num_elements();
        }
    }
}

fn parameters(module: &ChannelAttn) -> usize {
    let mut count = Parameters(0);
    module.visit(&mut count);
    count.0
}

#[test]
fn channel_attention_modules_equal_timm() {
    let device = Device::flex();
    for (name, kind) in [
        ("se", ChannelAttnKind::Se),
        ("eca", ChannelAttnKind::Eca),
        ("cbam", ChannelAttnKind::Cbam),
        ("gc", ChannelAttnKind::Gc),
    ] {
        let path = fixture(name);
        // Parameter count: a fresh module against PyTorch's sum(p.numel()).
        let (_, params) = read(&path, "params");
        assert_eq!(
            parameters(&kind.config(128).init(&device)),
            params[0] as usize,
            "{name} parameters"
        );
        // Output with timm's weights, eval mode.
        let module = with_fixture_weights(kind, &path, &device);
        let input = tensor::<4>(&path, "input", &device);
        let (shape, want) = read(&path, "output");
        let got = module.forward(input);
        assert_eq!(got.dims().to_vec(), shape, "{name} shape");
        let got = got.into_data().try_into_vec::<f32>().unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert!(
            diff < 1e-5 * scale,
            "{name}: output differs from timm's by {diff} (scale {scale})"
        );
    }
}

#[test]
fn channel_attention_goes_after_every_conv_and_combines_with_every_option() {
    let device = Device::flex();
    let plain = |o: ModelOptions| {
        ModelCost::of(
            &ModelSpec {
                name: "cnn".into(),
                options: o,
            },
            10,
            [3, 32, 32],
            &device,
        )
        .unwrap()
        .params
    };
    let base = plain(ModelOptions::default());
    // SE on the four layers of 32, 64, 128, 256 channels: r = 8, 8, 8, 16.
    let se: usize = [(32, 8), (64, 8), (128, 8), (256, 16)]
        .iter()
        .map(|&(c, r)| 2 * c * r + r + c)
        .sum();
    assert_eq!(
        plain(ModelOptions {
            channel_attn: Some(ChannelAttnKind::Se),
            ..Default::default()
        }),
        base + se
    );
    // ECA: kernels 3, 3, 5, 5, no bias.
    assert_eq!(
        plain(ModelOptions {
            channel_attn: Some(ChannelAttnKind::Eca),
            ..Default::default()
        }),
        base + 16
    );
    // With the study's attention, lateral connections and another conv: it builds and runs.
    for (name, o) in [
        (
            "attn3",
            ModelOptions {
                channel_attn: Some(ChannelAttnKind::Cbam),
                widths: vec![8, 16],
                pool: vec![true, true],
                hidden: vec![8],
                ..Default::default()
            },
        ),
        (
            "attn2",
            ModelOptions {
                channel_attn: Some(ChannelAttnKind::Gc),
                widths: vec![8, 16],
                pool: vec![true, true],
                hidden: vec![8],
                ..Default::default()
            },
        ),
        (
            "cnn",
            ModelOptions {
                channel_attn: Some(ChannelAttnKind::Eca),
                lateral: visionnet::model::blocks::LateralKind::Dense,
                conv: visionnet::model::blocks::ConvKind::Inception,
                stage_depth: 2,
                widths: vec![8, 16],
                pool: vec![true, true],
                hidden: vec![8],
                ..Default::default()
            },
        ),
    ] {
        let spec = ModelSpec {
            name: name.into(),
            options: o,
        };
        let network = table::network_config(&spec, 10, [3, 16, 16])
            .unwrap()
            .init(&device)
            .unwrap();
        let logits = network.forward(Tensor::ones([2, 3, 16, 16], &device));
        assert_eq!(logits.dims(), [2, 10], "{name}");
    }
}

#[test]
fn channel_attention_outside_the_cnn_family_and_unknown_values_are_refused() {
    let spec = ModelSpec {
        name: "vgg16".into(),
        options: ModelOptions {
            channel_attn: Some(ChannelAttnKind::Se),
            ..Default::default()
        },
    };
    let e = table::network_config(&spec, 10, [3, 32, 32])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--channel-attn") && e.contains("vgg16"), "{e}");
    let out = visionnet(&["models", "--channel-attn", "sk"]);
    assert_clean_failure(&out, &["sk", "se", "eca", "cbam", "gc"]);
}

#[test]
fn matched_twins_land_within_three_percent_with_widths_of_eight() {
    let device = Device::flex();
    for model in ["attn1", "attn2", "attn3"] {
        for by in [MatchBy::Params, MatchBy::Flops] {
            let spec = ModelSpec {
                name: model.into(),
                options: ModelOptions::default(),
            };
            let m = matched::match_twin(&spec, by, 10, [3, 32, 32], &device).unwrap();
            assert!(
                m.widths.iter().all(|w| w % 8 == 0),
                "{model} {by:?}: {:?}",
                m.widths
            );
            // The costs reported are ModelCost's.
            let twin = ModelSpec {
                name: "cnn".into(),
                options: matched::twin_options(&spec.options, m.widths.clone()),
            };
            let cost = ModelCost::of(&twin, 10, [3, 32, 32], &device).unwrap();
            assert_eq!((cost.params, cost.flops), (m.twin_params, m.twin_flops));
            let (got, want) = match by {
                MatchBy::Params => (cost.params as f64, m.model_params as f64),
                MatchBy::Flops => (cost.flops as f64, m.model_flops as f64),
            };
            assert!(
                ((got - want) / want).abs() <= matched::TOLERANCE,
                "{model} {by:?}: {got} vs {want}"
            );
            // One factor: the widths keep their ratios up to rounding to 8.
            assert_eq!(m.widths, matched::scale_widths(&m.model_widths, m.factor));
        }
    }
    // attn2 costs 4x the plain CNN's FLOPs: its FLOP twin is about twice as wide.
    let spec = ModelSpec {
        name: "attn2".into(),
        options: ModelOptions::default(),
    };
    let m = matched::match_twin(&spec, MatchBy::Flops, 10, [3, 32, 32], &device).unwrap();
    assert!(m.factor > 1.8 && m.factor < 2.3, "{}", m.factor);
}

#[test]
fn a_model_no_factor_can_match_is_refused_with_the_closest() {
    let device = Device::flex();
    // 8-channel layers cannot shrink: SE's 576 parameters are 26% of this CNN.
    let options = ModelOptions {
        widths: vec![8, 8, 8, 8],
        hidden: vec![4],
        channel_attn: Some(ChannelAttnKind::Se),
        ..Default::default()
    };
    let spec = ModelSpec {
        name: "cnn".into(),
        options,
    };
    let e = matched::match_twin(&spec, MatchBy::Params, 10, [3, 32, 32], &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("within 3%") && e.contains("closest") && e.contains("[8, 8, 8, 8]"),
        "{e}"
    );
    let baseline = ModelSpec {
        name: "resnet50".into(),
        options: ModelOptions::default(),
    };
    let e = matched::match_twin(&baseline, MatchBy::Flops, 10, [3, 32, 32], &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CNN family") && e.contains("resnet50"), "{e}");
    // The command line: both costs, or the refusal.
    let out = visionnet(&["models", "--match", "attn3", "--by", "params"]);
    let text = assert_success(&out);
    assert!(
        text.contains("cnn --widths 56,112,216,432") && text.contains("matched by params"),
        "{text}"
    );
    assert_clean_failure(
        &visionnet(&["models", "--match", "attn3", "--by", "macs"]),
        &["macs", "params", "flops"],
    );
}

fn grid(dir: &Path, model_section: &str) -> PathBuf {
    let data = dir.join("data");
    if !data.exists() {
        write_image_folder(&data, 3, 4, 16);
    }
    let path = dir.join("grid.toml");
    let text = format!(
        "seeds = [0, 1]\n[datasets.synth]\ndata = \"data\"\n[recipes.adam]\nepochs = 1\n[models.cnn]\n{model_section}\n[models.vgg16]\nform = \"cifar\"\n[[product]]\nmodels = [\"cnn\", \"attn3\"]\n"
    );
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_grid_match_adds_the_matched_twin_with_the_models_recipe_and_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = grid(
        dir.path(),
        "[models.attn3]\ntwin = \"cnn\"\nmatch = \"params\"\nlr = 0.002",
    );
    let g = Grid::load(&path).unwrap();
    let labels: Vec<&str> = g.models.iter().map(|m| m.set.label.as_str()).collect();
    assert_eq!(labels, ["cnn", "attn3", "attn3-twin-params", "vgg16"]);
    assert_eq!(g.models[1].matched.as_deref(), Some("attn3-twin-params"));
    let runs = g
        .plan(&dir.path().join("out"), &Selection::default())
        .unwrap();
    let twins: Vec<_> = runs
        .iter()
        .filter(|r| r.model == "attn3-twin-params")
        .collect();
    // The product names attn3 only; its twin goes with it, for both seeds.
    assert_eq!(twins.iter().map(|r| r.seed).collect::<Vec<_>>(), [0, 1]);
    for t in &twins {
        assert_eq!(t.config.model, "cnn");
        assert_eq!(t.config.model_options.widths, vec![56, 112, 216, 432]);
        assert_eq!(t.config.lr, 0.002, "the model's own flags come along");
    }
    // Selecting the model selects its twin.
    let only = Selection {
        models: Some(vec!["attn3".into()]),
        ..Default::default()
    };
    let runs = g.plan(&dir.path().join("out"), &only).unwrap();
    assert_eq!(
        runs.iter()
            .filter(|r| r.model == "attn3-twin-params")
            .count(),
        2
    );
}

#[test]
fn a_grid_with_an_unknown_or_impossible_match_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = grid(dir.path(), "[models.attn3]\nmatch = \"macs\"");
    let e = Grid::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("'macs' is not a match; valid: params, flops") && e.contains("grid.toml"),
        "{e}"
    );
    let path = grid(dir.path(), "[models.attn3]\nmatch = 3");
    assert!(
        Grid::load(&path)
            .unwrap_err()
            .to_string()
            .contains("'match' must be")
    );
    // A match no factor reaches: refused when planned, naming the closest.
    let path = grid(
        dir.path(),
        "[models.attn3]\nmodel = \"cnn\"\nwidths = [8, 8, 8, 8]\nhidden = [4]\nchannel-attn = \"se\"\nmatch = \"params\"",
    );
    let e = Grid::load(&path)
        .unwrap()
        .plan(&dir.path().join("out"), &Selection::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("closest") && e.contains("attn3"), "{e}");
}
