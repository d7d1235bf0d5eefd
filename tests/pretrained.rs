//! `predict --pretrained` and `eval --pretrained`: imported weights with their own head and
//! their reference preprocessing, held to PyTorch's top-5 and probabilities for the shared
//! EfficientNet-Lite0 weights and cat photo (`reference_cat_bmp.safetensors`: PyTorch's input
//! and logits).

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleStore, SafetensorsStore};
use common::{assert_clean_failure, assert_success, visionnet};
use visionnet::model::import::pretrained::{self, rank};

fn shared(name: &str) -> PathBuf {
    common::shared_dir()
        .join("weights/efficientnet-lite0")
        .join(name)
}

fn weights() -> PathBuf {
    shared("efficientnet-lite0-57934424.pth")
}

fn reference(name: &str) -> Vec<f32> {
    let mut store = SafetensorsStore::from_file(shared("reference_cat_bmp.safetensors"));
    let t = store.get_tensor(name).unwrap().unwrap().clone();
    burn::store::bridge::to_data(&t)
        .unwrap()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

/// 1,000 labels `class0` ... with 281, 282 and 285 named as in ImageNet.
fn write_labels(path: &Path) {
    let names: Vec<String> = (0..1000)
        .map(|i| match i {
            281 => "tabby".to_string(),
            282 => "tiger cat".to_string(),
            285 => "Egyptian cat".to_string(),
            _ => format!("class{i}"),
        })
        .collect();
    std::fs::write(path, names.join("\n") + "\n").unwrap();
}

#[test]
fn predict_pretrained_gives_pytorchs_top5_and_probabilities_for_the_photo() {
    let device = Device::flex();
    let net = pretrained::load("efficientnet_lite0", &weights(), None, &device).unwrap();
    assert_eq!(net.labels.len(), 1000, "the weights' own head");
    assert_eq!(
        (net.preprocessing.resize, net.preprocessing.crop),
        (256, 224)
    );
    // Our preprocessing of the photo is PyTorch's input (PIL's bilinear resize, to the byte).
    let ours = net.input(&shared("cat.bmp")).unwrap();
    let theirs = reference("input_nchw");
    let input_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        input_diff < 1e-6,
        "preprocessed input differs from PyTorch's by {input_diff}"
    );
    // Top-5 classes and probabilities from the photo file.
    let ranked = net.predict(&[shared("cat.bmp")], 5, 1, &device).unwrap();
    let expected = rank(&softmax(&reference("logits")), 5);
    let got: Vec<(usize, f32)> = ranked[0].top.iter().map(|(c, _, p)| (*c, *p)).collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    assert_eq!(got[0].0, 285, "Egyptian cat");
    for ((c, p), (_, q)) in got.iter().zip(&expected) {
        assert!(
            (p - q).abs() < 1e-4,
            "class {c}: probability {p} vs PyTorch's {q}"
        );
    }
}

#[test]
fn predict_and_eval_pretrained_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("imagenet.txt");
    write_labels(&labels);
    let (w, cat) = (weights(), shared("cat.bmp"));
    let out = assert_success(&visionnet(&[
        "predict",
        "--model",
        "efficientnet_lite0",
        "--pretrained",
        w.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--top",
        "3",
        cat.to_str().unwrap(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].contains("Egyptian cat (285)"), "{out}");
    // Without labels: indices.
    let out = assert_success(&visionnet(&[
        "predict",
        "--model",
        "efficientnet_lite0",
        "--pretrained",
        w.to_str().unwrap(),
        cat.to_str().unwrap(),
    ]));
    assert!(
        out.lines().nth(1).unwrap().trim_end().ends_with("285"),
        "{out}"
    );

    // An image folder: the cat under its own class and under "tabby".
    let data = tmp.path().join("photos");
    for class in ["Egyptian cat", "tabby"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::copy(&cat, data.join(class).join("cat.bmp")).unwrap();
    }
    let out = assert_success(&visionnet(&[
        "eval",
        "--model",
        "efficientnet_lite0",
        "--pretrained",
        w.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]));
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["images"], 2);
    assert_eq!(e["top1"], 0.5, "{out}");
    assert_eq!(e["top5"], 1.0, "tabby (281) is in the top 5: {out}");

    // A class folder the labels do not name, and a labels file of the wrong length.
    std::fs::create_dir_all(data.join("dog")).unwrap();
    std::fs::copy(&cat, data.join("dog").join("cat.bmp")).unwrap();
    let out = visionnet(&[
        "eval",
        "--model",
        "efficientnet_lite0",
        "--pretrained",
        w.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, &["dog", "not in the labels file"]);
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "a\nb\n").unwrap();
    let out = visionnet(&[
        "predict",
        "--model",
        "efficientnet_lite0",
        "--pretrained",
        w.to_str().unwrap(),
        "--labels",
        short.to_str().unwrap(),
        cat.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, &["short.txt", "2 classes", "1000"]);
}
