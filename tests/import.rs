//! Weight import: PyTorch's own outputs reproduced from weights it saved (torchvision VGG-16 with
//! and without BatchNorm, ResNet-50, timm Xception; safetensors, ZIP and legacy `.pth`, a nested
//! training checkpoint), the EfficientNet-Lite0 ImageNet weights against PyTorch's logits for a
//! photo, transfer (backbone only), a PyTorch < 0.4 TAR file, and clear errors for files that do
//! not fit, are no weights, or hold pickles naming globals other than the tensor rebuilds.
//!
//! Fixtures: `tests/fixtures/import/`, made by `scripts/make_import_fixtures.py` (reduced widths,
//! the reference layer structure and names).

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use visionnet::model::import::{self, FileFormat, Scope};
use visionnet::model::nets::{EfficientNetLiteConfig, ResNetConfig, VggConfig, XceptionConfig};
use visionnet::model::{ImageClassifier, ImageClassifierConfig, Network, NetworkConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn shared_weights(name: &str) -> PathBuf {
    common::shared_dir()
        .join("weights/efficientnet-lite0")
        .join(name)
}

/// Reads float tensors from a safetensors file as `(shape, values)`.
fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let mut store = SafetensorsStore::from_file(path);
    use burn::store::ModuleStore;
    let t = store
        .get_tensor(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} in {}", path.display()))
        .clone();
    let shape = t.shape.to_vec();
    let data = burn::store::bridge::to_data(&t).unwrap();
    (shape, data.convert::<f32>().try_into_vec::<f32>().unwrap())
}

fn tensor4(path: &Path, name: &str, device: &Device) -> Tensor<4> {
    let (shape, values) = read_tensor(path, name);
    Tensor::from_data(
        TensorData::new(values, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The reduced-width configurations of `scripts/make_import_fixtures.py`.
fn vgg(batch_norm: bool) -> NetworkConfig {
    NetworkConfig::Vgg(
        VggConfig::new(10)
            .with_input([3, 48, 48])
            .with_widths(vec![4, 8, 8, 16, 16])
            .with_hidden(Some(32))
            .with_batch_norm(batch_norm),
    )
}

fn resnet(num_classes: usize) -> NetworkConfig {
    NetworkConfig::ResNet(
        ResNetConfig::new(num_classes)
            .with_input([3, 48, 48])
            .with_stem_width(8)
            .with_widths(vec![4, 8, 8, 16]),
    )
}

fn xception() -> NetworkConfig {
    NetworkConfig::Xception(
        XceptionConfig::new(10)
            .with_input([3, 48, 48])
            .with_widths(vec![8, 16, 16, 24, 32, 32, 48, 64, 96]),
    )
}

/// Loads `file` into the network of `config` (whole network) and returns it.
fn load(config: &NetworkConfig, file: &Path) -> Network {
    let device = Device::flex();
    let (network, report) =
        import::load(config.init(&device).unwrap(), config, file, Scope::Full).unwrap();
    assert!(report.loaded > 0 && report.head_skipped.is_empty());
    network
}

/// PyTorch's logits for the fixture input, and ours after loading `file`.
fn logits(config: &NetworkConfig, file: &str, io: &str) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex();
    let network = load(config, &fixture(file));
    let input = tensor4(&fixture(io), "input", &device);
    let (_, expected) = read_tensor(&fixture(io), "logits");
    (values(network.forward(input)), expected)
}

#[track_caller]
fn assert_reproduces(config: NetworkConfig, file: &str, io: &str) {
    let (ours, theirs) = logits(&config, file, io);
    let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&ours, &theirs);
    assert!(
        diff < 1e-4 * scale,
        "{file}: logits differ from PyTorch's by {diff} (scale {scale}): {ours:?} vs {theirs:?}"
    );
}

#[test]
fn torchvision_vgg16_zip_checkpoint_reproduces_pytorch() {
    assert_reproduces(vgg(false), "vgg16.pth", "vgg16-io.safetensors");
}

#[test]
fn torchvision_vgg16_bn_legacy_checkpoint_reproduces_pytorch() {
    assert_reproduces(vgg(true), "vgg16_bn-legacy.pth", "vgg16_bn-io.safetensors");
}

#[test]
fn torchvision_resnet50_in_every_format_reproduces_pytorch() {
    for file in [
        "resnet50.safetensors",
        "resnet50-legacy.pth",
        "resnet50-checkpoint.pt",
    ] {
        assert_reproduces(resnet(10), file, "resnet50-io.safetensors");
    }
    assert_eq!(
        import::reader::detect(&fixture("resnet50.safetensors")).unwrap(),
        FileFormat::Safetensors
    );
    assert_eq!(
        import::reader::detect(&fixture("resnet50-legacy.pth")).unwrap(),
        FileFormat::PytorchLegacy
    );
    assert_eq!(
        import::reader::detect(&fixture("resnet50-checkpoint.pt")).unwrap(),
        FileFormat::PytorchZip
    );
}

#[test]
fn timm_legacy_xception_and_xception_reproduce_pytorch() {
    assert_reproduces(
        xception(),
        "legacy_xception.pth",
        "legacy_xception-io.safetensors",
    );
    assert_reproduces(
        xception(),
        "legacy_xception.safetensors",
        "legacy_xception-io.safetensors",
    );
    assert_reproduces(xception(), "xception-legacy.pth", "xception-io.safetensors");
}

#[test]
fn backbone_scope_transfers_to_a_new_class_count() {
    let device = Device::flex();
    let config = resnet(7);
    let file = fixture("resnet50.safetensors");
    let (network, report) = import::load(
        config.init(&device).unwrap(),
        &config,
        &file,
        Scope::Backbone,
    )
    .unwrap();
    assert_eq!(report.head_skipped, ["fc.weight", "fc.bias"]);
    // The backbone is PyTorch's: its features equal those of the fully loaded 10-class network.
    let full = load(&resnet(10), &file);
    let input = tensor4(&fixture("resnet50-io.safetensors"), "input", &device);
    let a = values(network.pool_features(network.forward_features(input.clone())));
    let b = values(full.pool_features(full.forward_features(input.clone())));
    assert!(max_abs_diff(&a, &b) < 1e-6);
    assert_eq!(network.forward(input).dims(), [2, 7]);
    // The whole network with 7 classes does not fit a 10-class file.
    let err = import::load(config.init(&device).unwrap(), &config, &file, Scope::Full)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wrong shape") && err.contains("fc.weight (file [10, 64], model [7, 64])"),
        "{err}"
    );
}

#[test]
fn a_file_of_another_network_is_refused_with_every_mismatch_listed() {
    let device = Device::flex();
    // vgg16 weights into vgg16_bn: BatchNorm tensors are missing and the conv indices shift.
    let config = vgg(true);
    let err = import::load(
        config.init(&device).unwrap(),
        &config,
        &fixture("vgg16.pth"),
        Scope::Full,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("vgg16.pth") && err.contains("torchvision vgg16_bn"),
        "{err}"
    );
    assert!(
        err.contains("missing from the file: features.1.weight"),
        "{err}"
    );
    assert!(
        err.contains("have no place in the model: features.12.bias"),
        "{err}"
    );
    assert!(
        err.contains("features.7.weight (file [8, 8, 3, 3], model [8, 4, 3, 3])"),
        "{err}"
    );
    // Wider ResNet than the file: shapes named with both sides.
    let config = NetworkConfig::ResNet(
        ResNetConfig::new(10)
            .with_input([3, 48, 48])
            .with_stem_width(16)
            .with_widths(vec![4, 8, 8, 16]),
    );
    let err = import::load(
        config.init(&device).unwrap(),
        &config,
        &fixture("resnet50.safetensors"),
        Scope::Full,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conv1.weight (file [8, 3, 7, 7], model [16, 3, 7, 7])"),
        "{err}"
    );
    // The cnn has no reference naming.
    let cnn = visionnet::model::table::network_config(
        &visionnet::model::ModelSpec {
            name: "cnn".into(),
            options: Default::default(),
        },
        10,
        [3, 32, 32],
    )
    .unwrap();
    // The cnn has bench/pytorch_reference.py's names (what `visionnet export` writes).
    let err = import::load(
        cnn.init(&device).unwrap(),
        &cnn,
        &fixture("vgg16.pth"),
        Scope::Full,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("vgg16.pth") && err.contains("bench/pytorch_reference.py Net"),
        "{err}"
    );
    assert!(
        err.contains("missing from the file: units.0.conv.weight"),
        "{err}"
    );
    // ... but not for what that module cannot express.
    let lateral = visionnet::model::table::network_config(
        &visionnet::model::ModelSpec {
            name: "cnn".into(),
            options: visionnet::model::ModelOptions {
                lateral: visionnet::model::blocks::LateralKind::Residual,
                ..Default::default()
            },
        },
        10,
        [3, 32, 32],
    )
    .unwrap();
    let err = import::load(
        lateral.init(&device).unwrap(),
        &lateral,
        &fixture("vgg16.pth"),
        Scope::Full,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no module for lateral connections"), "{err}");
}

#[test]
fn files_that_are_not_weights_are_refused() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let config = resnet(10);
    let text = tmp.path().join("notes.pth");
    std::fs::write(&text, "not a checkpoint").unwrap();
    let err = import::load(config.init(&device).unwrap(), &config, &text, Scope::Full)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("notes.pth")
            && err.contains("neither a safetensors file nor a PyTorch checkpoint"),
        "{err}"
    );
    let missing = tmp.path().join("absent.pth");
    let err = import::load(
        config.init(&device).unwrap(),
        &config,
        &missing,
        Scope::Full,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("absent.pth"), "{err}");
}

#[test]
fn torch_before_0_4_tar_checkpoint_reproduces_pytorch() {
    // Written by scripts/make_import_fixtures.py's save_tar in legacy_load's layout, and read
    // back there by torch.load.
    assert_eq!(
        import::reader::detect(&fixture("resnet50-tar.pth")).unwrap(),
        FileFormat::PytorchTar
    );
    assert_reproduces(resnet(10), "resnet50-tar.pth", "resnet50-io.safetensors");
}

/// Loads the pickle `bytes` (written to `name`) as weights and returns the error.
fn refusal(name: &str, bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let config = resnet(10);
    let device = Device::flex();
    let err = import::load(config.init(&device).unwrap(), &config, &path, Scope::Full)
        .unwrap_err()
        .to_string();
    assert!(err.contains(name), "{err}");
    err
}

/// `GLOBAL module name`, called with one string argument, as protocol 2 writes it.
fn global_call(module: &str, name: &str, arg: &str) -> Vec<u8> {
    let mut out = vec![0x80, 0x02, b'c'];
    out.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    out.push(b'X');
    out.extend_from_slice(&(arg.len() as u32).to_le_bytes());
    out.extend_from_slice(arg.as_bytes());
    out.extend_from_slice(b"\x85R.");
    out
}

/// A protocol-4 short unicode string.
fn short_str(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

#[test]
fn pickles_naming_globals_other_than_tensor_rebuilds_are_refused_naming_them() {
    for (module, name) in [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("torch", "load"),
    ] {
        let err = refusal(
            "evil.pth",
            &global_call(module, name, "touch /tmp/visionnet-pwned"),
        );
        assert!(
            err.contains(&format!("'{module}.{name}'")) && err.contains("refused"),
            "{err}"
        );
    }
    // Protocol 4's STACK_GLOBAL takes the names from the stack: resolved from what is really
    // there, not from the last strings seen (two decoy strings are pushed and popped).
    let mut p = vec![0x80, 0x04];
    p.extend(short_str("builtins"));
    p.extend(short_str("eval"));
    p.extend(short_str("torch._utils"));
    p.extend(short_str("_rebuild_tensor_v2"));
    p.extend_from_slice(b"00\x93");
    p.extend(short_str("1+1"));
    p.extend_from_slice(b"\x85R.");
    let err = refusal("stack.pth", &p);
    assert!(err.contains("'builtins.eval'"), "{err}");
    // The names come out of the memo.
    let mut p = vec![0x80, 0x04];
    p.extend(short_str("subprocess"));
    p.push(0x94);
    p.extend(short_str("Popen"));
    p.push(0x94);
    p.extend_from_slice(b"00h\x00h\x01\x93)R.");
    let err = refusal("memo.pth", &p);
    assert!(err.contains("'subprocess.Popen'"), "{err}");
    // INST names its class inline.
    let err = refusal("inst.pth", b"\x80\x02(S'ls'\nios\nsystem\n.");
    assert!(err.contains("'os.system'"), "{err}");
    // The same in a torch.save ZIP archive's data.pkl.
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("evil-zip.pth");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", options).unwrap();
        zip.write_all(&global_call("os", "system", "id")).unwrap();
        zip.start_file("archive/version", options).unwrap();
        zip.write_all(b"3\n").unwrap();
        zip.finish().unwrap();
    }
    let config = resnet(10);
    let device = Device::flex();
    let err = import::load(
        config.init(&device).unwrap(),
        &config,
        &zip_path,
        Scope::Full,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("evil-zip.pth") && err.contains("data.pkl") && err.contains("'os.system'"),
        "{err}"
    );
}

#[test]
fn self_referencing_and_deeply_nested_pickles_are_refused() {
    // A list appended to itself (through the memo).
    let err = refusal("loop.pth", b"\x80\x02]q\x00h\x00a.");
    assert!(err.contains("self-referencing"), "{err}");
    // A cycle through a tuple: A = []; T = (A,); A.append(T).
    let err = refusal("cycle.pth", b"\x80\x02]q\x00\x85q\x010h\x00h\x01a.");
    assert!(err.contains("self-referencing"), "{err}");
    // A dict whose value is itself.
    let err = refusal("dict.pth", b"\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s.");
    assert!(err.contains("self-referencing"), "{err}");
    // 5,000 nested lists.
    let mut p = vec![0x80, 0x02];
    p.extend(std::iter::repeat_n(b'(', 5000));
    p.push(b']');
    p.extend(std::iter::repeat_n(b'l', 5000));
    p.push(b'.');
    let err = refusal("deep.pth", &p);
    assert!(err.contains("deeper than 1000"), "{err}");
    // A well-formed pickle of allowed globals and no tensors still fails, for that reason.
    let err = refusal("empty.pth", b"\x80\x02ccollections\nOrderedDict\n)R.");
    assert!(
        err.contains("no tensors") || err.contains("cannot read"),
        "{err}"
    );
}

fn efficientnet_lite0() -> (NetworkConfig, Network) {
    let config = NetworkConfig::EfficientNetLite(EfficientNetLiteConfig::new(1000));
    let network = load(&config, &shared_weights("efficientnet-lite0-57934424.pth"));
    (config, network)
}

#[test]
fn efficientnet_lite0_reproduces_pytorch_logits_and_recognises_the_cat() {
    let device = Device::flex();
    let (_, network) = efficientnet_lite0();
    let reference = shared_weights("reference_cat_bmp.safetensors");
    let input = tensor4(&reference, "input_nchw", &device);
    let (_, expected) = read_tensor(&reference, "logits");
    let ours = values(network.forward(input));
    let diff = max_abs_diff(&ours, &expected);
    assert!(diff < 1e-3, "logits differ from PyTorch's by {diff}");
    let top = ours
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(top, 285, "Egyptian cat");

    // The photo itself, preprocessed here: short side 256, centre crop 224, (x - 127) / 128.
    let photo = image::open(shared_weights("cat.bmp")).unwrap().to_rgb8();
    let chw = visionnet::data::preprocess::resize_center_crop(&photo, 256, 224);
    let x: Vec<f32> = chw.iter().map(|&v| (v as f32 - 127.0) / 128.0).collect();
    let image = Tensor::<4>::from_data(TensorData::new(x, [1, 3, 224, 224]), &device);
    let ours = values(network.forward(image));
    let top = ours
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(top, 285, "Egyptian cat from our own preprocessing");
}

#[test]
fn efficientnet_lite0_same_padding_is_asymmetric_on_stride_2() {
    // The stem pads right/bottom by one on 224x224 and the feature map is 7x7.
    let (config, network) = efficientnet_lite0();
    assert_eq!(config.feature_shape(), [1280, 7, 7]);
    let Network::EfficientNetLite(net) = &network else {
        unreachable!()
    };
    let names: Vec<String> = net
        .stem
        .collect(None, None, true)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"conv.weight".to_string()), "{names:?}");
    assert_eq!(
        format!("{:?}", net.stem.conv.padding),
        "Explicit(0, 0, 1, 1)"
    );
}
