//! `visionnet export`: a checkpoint under the reference names, loaded by PyTorch into
//! `bench/pytorch_reference.py`'s module (the CNN family) or torchvision's `resnet50` and timm's
//! `legacy_xception` (baselines) with `strict=True`, giving visionnet's logits on a
//! fixed batch within 1e-4; and the export read back by the `--pretrained` importer giving the
//! checkpoint's logits exactly.
//!
//! The PyTorch half runs with the test environment's Python (`VISIONNET_TEST_PYTHON`, set by
//! `scripts/test.sh` to `target/test-venv/bin/python`, which has torch); without it the test
//! says so and checks only the round trip, unless `VISIONNET_REQUIRE_TORCH=1` (CI) makes that
//! a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use burn::store::{ModuleStore, SafetensorsStore};
use common::*;
use visionnet::io::read_json;
use visionnet::model::import::{self, Scope};
use visionnet::model::{ImageClassifier, ImageClassifierConfig};
use visionnet::train::checkpoint;
use visionnet::train::export::ExportSidecar;

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("VISIONNET_TEST_PYTHON").map(PathBuf::from)?;
    let ok = Command::new(&p)
        .args(["-c", "import torch, safetensors"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(p)
}

fn read_values(path: &Path, name: &str) -> Vec<f32> {
    let mut store = SafetensorsStore::from_file(path);
    let t = store.get_tensor(name).unwrap().unwrap().clone();
    burn::store::bridge::to_data(&t)
        .unwrap()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

#[test]
fn exports_load_strictly_into_pytorch_and_round_trip_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 8, 32);
    let python = python();
    if python.is_none() {
        assert!(
            std::env::var_os("VISIONNET_REQUIRE_TORCH").is_none(),
            "VISIONNET_REQUIRE_TORCH is set but VISIONNET_TEST_PYTHON has no torch"
        );
        eprintln!("no Python with torch (VISIONNET_TEST_PYTHON): checking the round trip only");
    }
    let device = Device::flex();
    // A fixed batch of 4 images.
    let x: Vec<f32> = uniform(4 * 3 * 32 * 32, 11)
        .iter()
        .map(|v| 2.0 * v - 1.0)
        .collect();
    let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [4, 3, 32, 32]), &device);
    let io = tmp.path().join("input.safetensors");
    {
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let header = format!(
            r#"{{"input":{{"dtype":"F32","shape":[4,3,32,32],"data_offsets":[0,{}]}}}}"#,
            bytes.len()
        );
        let mut header = header.into_bytes();
        while header.len() % 8 != 0 {
            header.push(b' ');
        }
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header);
        file.extend(bytes);
        std::fs::write(&io, file).unwrap();
    }
    // The CNN family against bench/pytorch_reference.py; two baselines (ImageNet form) against
    // torchvision's and timm's modules (VGG-16, torchvision-named too, is left out for its
    // 138 M parameters).
    for (model, naming) in [
        ("cnn", "bench/pytorch_reference.py Net"),
        ("attn1", "bench/pytorch_reference.py Net"),
        ("attn2", "bench/pytorch_reference.py Net"),
        ("attn3", "bench/pytorch_reference.py Net"),
        ("resnet50", "torchvision resnet50"),
        ("xception", "timm legacy_xception"),
    ] {
        let run = tmp.path().join(model);
        assert_success(&visionnet(&[
            "--threads",
            "2",
            "train",
            "--model",
            model,
            "--data",
            data.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--val-size",
            "6",
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--quiet",
        ]));
        let file = tmp.path().join(format!("{model}.safetensors"));
        let out = assert_success(&visionnet(&[
            "export",
            "--checkpoint",
            run.to_str().unwrap(),
            "--to",
            file.to_str().unwrap(),
        ]));
        assert!(out.contains(naming), "{out}");
        let sidecar: ExportSidecar =
            read_json(&PathBuf::from(format!("{}.json", file.display()))).unwrap();
        assert_eq!(sidecar.model.name, model);
        assert_eq!(sidecar.classes, class_names(3));
        assert_eq!(sidecar.input_shape, [3, 32, 32]);

        // The checkpoint's logits, and those of the export read back by the importer.
        let (_, meta, trained) = checkpoint::load_model(&run, &device).unwrap();
        let config = visionnet::model::table::network_config(&meta.model, 3, [3, 32, 32]).unwrap();
        let (imported, _) =
            import::load(config.init(&device).unwrap(), &config, &file, Scope::Full).unwrap();
        let ours = trained
            .forward(input.clone())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let back = imported
            .forward(input.clone())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(ours, back, "{model}: the round trip is not exact");

        if let Some(python) = &python {
            let logits = tmp.path().join(format!("{model}-torch.safetensors"));
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_export.py");
            let out = Command::new(python)
                .args([
                    script.as_os_str(),
                    model.as_ref(),
                    "3".as_ref(),
                    file.as_os_str(),
                    io.as_os_str(),
                    logits.as_os_str(),
                ])
                .output()
                .unwrap();
            let stdout = assert_success(&out);
            let theirs = read_values(&logits, "logits");
            let diff = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // Within 1e-4, relative to the largest logit where that exceeds 1: one epoch on 24
            // tiny images leaves a deep baseline's BatchNorm statistics far from the batches'
            // (ResNet-50's logits reach 1e14 here), and float32 keeps 7 digits of those.
            let scale = ours.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            eprintln!(
                "{} max |visionnet - PyTorch| = {diff:e} (largest logit {scale:e})",
                stdout.trim()
            );
            assert!(
                diff <= 1e-4 * scale,
                "{model}: logits differ from PyTorch's by {diff}: {ours:?} vs {theirs:?}"
            );
        }
    }
}
