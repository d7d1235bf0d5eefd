//! Pretrained weights from PyTorch: safetensors and `.pth` / `.pt` checkpoints (ZIP, legacy
//! pickle, TAR) read through burn-store, renamed from the reference implementation's parameter
//! names to this crate's module paths, checked, and applied.
//!
//! Each baseline has the naming of its reference implementation:
//!
//! | model | names of |
//! |---|---|
//! | `vgg16`, `vgg16_bn` | torchvision `vgg16`, `vgg16_bn` (`features.N`, `classifier.N`) |
//! | `resnet50` | torchvision `resnet50` (`conv1`, `layerN.M.convK`, `downsample`, `fc`) |
//! | `xception` | timm `legacy_xception` = `xception` (`blockN.rep.M`, `skip`, `skipbn`, `fc`) |
//! | `efficientnet_lite0` | lukemelas EfficientNet (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`) |
//! | `cnn`, `attn1`-`attn3` | `bench/pytorch_reference.py`'s `Net` (`units.N.conv`, `units.N.attn.q`, `hidden.N`, `out`) |
//!
//! A file must fit exactly: every parameter and BatchNorm statistic of the model (of its
//! backbone, for [`Scope::Backbone`]) must be in the file with the right shape, and every tensor
//! in the file must have a place in the model (`num_batches_tracked` counters aside). Otherwise
//! the load fails with one error listing every missing, unexpected and mis-shaped tensor.

mod lukemelas;
pub mod pickle_scan;
pub mod pretrained;
pub mod reader;
mod reference;
mod timm;
mod torchvision;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::DType;

pub use reader::{FileFormat, read_tensors};

use super::{Network, NetworkConfig};
use crate::error::{Error, Result};

/// What a weight file is loaded into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every parameter, the classifier included: the file is the same network.
    Full,
    /// The backbone only; the head keeps its fresh initialisation (transfer to a new class
    /// count). Head tensors in the file are passed over.
    Backbone,
}

/// What kind of layer a name-table entry is: which tensors it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `weight`, and `bias` if it has one.
    Conv { bias: bool },
    /// `weight` -> `gamma`, `bias` -> `beta`, `running_mean`, `running_var`.
    BatchNorm,
    /// `weight` (`[out, in]` in PyTorch, `[in, out]` here), and `bias` if it has one.
    Linear { bias: bool },
    /// One tensor under its full name (a lone parameter such as arch 2's `gamma`).
    Tensor,
}

/// One layer of a name table: its name in the file and its path in the module.
#[derive(Clone, Debug)]
struct Layer {
    file: String,
    module: String,
    kind: Kind,
    head: bool,
}

impl Layer {
    fn conv(file: impl Into<String>, module: impl Into<String>, bias: bool) -> Self {
        Self {
            file: file.into(),
            module: module.into(),
            kind: Kind::Conv { bias },
            head: false,
        }
    }

    fn bn(file: impl Into<String>, module: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            module: module.into(),
            kind: Kind::BatchNorm,
            head: false,
        }
    }

    fn linear(file: impl Into<String>, module: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            module: module.into(),
            kind: Kind::Linear { bias: true },
            head: true,
        }
    }

    fn tensor(file: impl Into<String>, module: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            module: module.into(),
            kind: Kind::Tensor,
            head: false,
        }
    }

    /// `(file name, module path, is a Linear weight)` of each tensor.
    fn tensors(&self) -> Vec<(String, String, bool)> {
        let pair = |f: &str, m: &str, t: bool| {
            (
                format!("{}.{f}", self.file),
                format!("{}.{m}", self.module),
                t,
            )
        };
        match self.kind {
            Kind::Conv { bias } => {
                let mut v = vec![pair("weight", "weight", false)];
                if bias {
                    v.push(pair("bias", "bias", false));
                }
                v
            }
            Kind::BatchNorm => vec![
                pair("weight", "gamma", false),
                pair("bias", "beta", false),
                pair("running_mean", "running_mean", false),
                pair("running_var", "running_var", false),
            ],
            Kind::Linear { bias } => {
                let mut v = vec![pair("weight", "weight", true)];
                if bias {
                    v.push(pair("bias", "bias", false));
                }
                v
            }
            Kind::Tensor => vec![(self.file.clone(), self.module.clone(), false)],
        }
    }
}

/// The reference naming of a network: a description and its name table.
fn name_table(config: &NetworkConfig) -> Result<(&'static str, Vec<Layer>)> {
    Ok(match config {
        NetworkConfig::Vgg(c) => (
            if c.batch_norm {
                "torchvision vgg16_bn"
            } else {
                "torchvision vgg16"
            },
            torchvision::vgg(c),
        ),
        NetworkConfig::ResNet(c) => ("torchvision resnet50", torchvision::resnet(c)),
        NetworkConfig::Xception(c) => ("timm legacy_xception / xception", timm::xception(c)),
        NetworkConfig::EfficientNetLite(c) => (
            "lukemelas EfficientNet-Lite0",
            lukemelas::efficientnet_lite(c),
        ),
        NetworkConfig::Cnn(c) => ("bench/pytorch_reference.py Net", reference::cnn(c)?),
    })
}

/// The per-channel `(mean, std)` of pixel values scaled to [0, 1] that a network's reference
/// weights expect: ImageNet statistics for torchvision, 0.5 / 0.5 for timm's Xception (Inception
/// preprocessing), `(x - 127) / 128` for the EfficientNet-Lite weights. `None` for the cnn.
pub fn input_normalization(config: &NetworkConfig) -> Option<([f32; 3], [f32; 3])> {
    match config {
        NetworkConfig::Vgg(_) | NetworkConfig::ResNet(_) => {
            Some(([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
        }
        NetworkConfig::Xception(_) => Some(([0.5; 3], [0.5; 3])),
        NetworkConfig::EfficientNetLite(_) => Some(([127.0 / 255.0; 3], [128.0 / 255.0; 3])),
        NetworkConfig::Cnn(_) => None,
    }
}

/// What [`reference_names`] gives: the naming's description, each tensor as `(name in the file,
/// module path, is a Linear weight)`, and the BatchNorm layers' names.
pub type ReferenceNames = (&'static str, Vec<(String, String, bool)>, Vec<String>);

/// The tensors of `config`'s reference naming, as `(name in the file, module path, is a
/// Linear weight)`, with the naming's description and its BatchNorm layers' names (PyTorch
/// also keeps a `num_batches_tracked` counter for each): what an export writes.
pub fn reference_names(config: &NetworkConfig) -> Result<ReferenceNames> {
    let (naming, layers) = name_table(config)?;
    let norms = layers
        .iter()
        .filter(|l| l.kind == Kind::BatchNorm)
        .map(|l| l.file.clone())
        .collect();
    Ok((
        naming,
        layers.iter().flat_map(|l| l.tensors()).collect(),
        norms,
    ))
}

/// What a load did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportReport {
    /// The weight file.
    pub path: PathBuf,
    /// Its container.
    pub format: FileFormat,
    /// The naming it was read with.
    pub naming: String,
    /// Tensors loaded into the model.
    pub loaded: usize,
    /// Head tensors in the file that were not loaded ([`Scope::Backbone`]).
    pub head_skipped: Vec<String>,
}

/// At most this many names of each kind of problem are listed in an error.
const LISTED: usize = 12;

fn listing(title: &str, items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut s = format!(
        "{} {title}: {}",
        items.len(),
        items
            .iter()
            .take(LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if items.len() > LISTED {
        s.push_str(&format!(", ... ({} more)", items.len() - LISTED));
    }
    Some(s)
}

/// Shape in PyTorch's layout of a module tensor (Linear weights are stored transposed here).
fn torch_shape(shape: &[usize], linear_weight: bool) -> Vec<usize> {
    if linear_weight && shape.len() == 2 {
        vec![shape[1], shape[0]]
    } else {
        shape.to_vec()
    }
}

/// Loads the weight file `path` into `network` (built from `config`), renaming from the
/// reference implementation's names. Fails, listing every problem, unless the file fits.
pub fn load(
    network: Network,
    config: &NetworkConfig,
    path: &Path,
    scope: Scope,
) -> Result<(Network, ImportReport)> {
    let (naming, layers) = name_table(config)?;
    let (format, mut tensors) = read_tensors(path)?;

    // The module's own tensors: path -> shape.
    let module_shapes: BTreeMap<String, Vec<usize>> = network
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect();

    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let mut head_skipped = Vec::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let mut to_apply = Vec::new();
    for layer in &layers {
        for (file_name, module_path, linear_weight) in layer.tensors() {
            known.insert(file_name.clone());
            covered.insert(module_path.clone());
            if layer.head && scope == Scope::Backbone {
                if tensors.contains_key(&file_name) {
                    head_skipped.push(file_name);
                }
                continue;
            }
            let Some(tensor) = tensors.remove(&file_name) else {
                missing.push(file_name);
                continue;
            };
            let expected = module_shapes
                .get(&module_path)
                .map(|s| torch_shape(s, linear_weight))
                .ok_or_else(|| Error::invalid("--pretrained", format!("internal: the {naming} table names '{module_path}', which the model lacks")))?;
            let found = tensor.shape.to_vec();
            if found != expected {
                mismatched.push(format!("{file_name} (file {found:?}, model {expected:?})"));
                continue;
            }
            let mut tensor = tensor;
            tensor.name = module_path;
            to_apply.push(tensor);
        }
    }
    let unexpected: Vec<String> = tensors
        .keys()
        .filter(|k| !known.contains(*k) && !k.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    // A module tensor that no table entry covers would silently keep its initialisation.
    let uncovered: Vec<String> = module_shapes
        .keys()
        .filter(|p| !covered.contains(*p))
        .cloned()
        .collect();
    if !uncovered.is_empty() {
        return Err(Error::invalid(
            "--pretrained",
            format!(
                "internal: the {naming} table does not cover {}",
                uncovered.join(", ")
            ),
        ));
    }
    let problems: Vec<String> = [
        listing(
            "tensors the model needs are missing from the file",
            &missing,
        ),
        listing(
            "tensors in the file have no place in the model",
            &unexpected,
        ),
        listing("tensors have the wrong shape", &mismatched),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !problems.is_empty() {
        return Err(Error::data(
            path,
            format!(
                "does not fit this model with {naming} names: {}",
                problems.join("; ")
            ),
        ));
    }

    let loaded = to_apply.len();
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let mut network = network;
    let result = network.apply(to_apply, None, Some(adapter), true);
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(Error::data(
            path,
            format!("could not be applied: {}", errors.join("; ")),
        ));
    }
    Ok((
        network,
        ImportReport {
            path: path.to_path_buf(),
            format,
            naming: naming.to_string(),
            loaded,
            head_skipped,
        },
    ))
}
