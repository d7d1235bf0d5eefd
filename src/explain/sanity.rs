//! The model-randomisation sanity check of Adebayo et al. (2018), "Sanity Checks for Saliency
//! Maps": cascading randomisation from the top.
//!
//! The network's parameters are grouped into layers (a module path up to its first list
//! index, `convs.2`, `head.hidden.1`; else the module holding the parameter, `head.output`),
//! in declaration order, which for every registered network is forward order. From the last
//! group down, one group after another is re-initialised with the model's own initialiser (a
//! fresh network of the same configuration, seeded), keeping the layers already randomised:
//! after depth `d` the top `d` groups are random. (BatchNorm running statistics are not
//! parameters and stay.) At each depth every method draws its maps again, of the class the
//! trained model's map explained, and each is compared with the trained model's map by
//! Spearman's rank correlation and SSIM ([`super::similarity`]), averaged over images with a
//! bootstrap interval.
//!
//! A faithful method's maps change once the layers that make the class decision are random.
//! A method whose mean Spearman correlation is still at least [`UNCHANGED`] after every layer
//! above the explained one is randomised is flagged: its maps do not depend on the part of the
//! model that decides the class (EigenCAM does not by construction: it reads the activation
//! alone).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use super::cam::CamMethod;
use super::gradcam::{CamMap, ClassTarget, Explainer};
use super::samples::{self, LoadedModel, Sample};
use super::similarity::{input_sized, similarity};
use crate::data::batches::mix_seed;
use crate::error::{Error, Result};
use crate::model::{Capture, ImageClassifier, ImageClassifierConfig, Network};
use crate::stats::bootstrap::{MeanInterval, REPLICATES, mean_interval};

/// Mean Spearman correlation at or above which a method's maps count as unchanged.
pub const UNCHANGED: f64 = 0.5;

/// The layer group a parameter path belongs to (see the module docs), without the network's
/// enum variant.
pub fn group_of(path: &[String]) -> String {
    let parts = if path.len() > 1 { &path[1..] } else { path };
    match parts.iter().position(|p| p.parse::<usize>().is_ok()) {
        Some(i) => parts[..=i].join("."),
        None if parts.len() > 1 => parts[..parts.len() - 1].join("."),
        None => parts.join("."),
    }
}

/// Records the group of every float parameter, in visiting order.
#[derive(Default)]
struct Groups {
    path: Vec<String>,
    groups: Vec<String>,
    tensors: HashMap<String, TensorData>,
    keep: bool,
}

impl ModuleVisitor for Groups {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let group = group_of(&self.path);
        if self.groups.last() != Some(&group) && !self.groups.contains(&group) {
            self.groups.push(group);
        }
        if self.keep {
            self.tensors
                .insert(self.path.join("."), param.val().into_data());
        }
    }
}

/// The network's parameter groups, bottom to top.
pub fn parameter_groups(model: &Network) -> Vec<String> {
    let mut groups = Groups::default();
    model.visit(&mut groups);
    groups.groups
}

/// Replaces the parameters of some groups with those of another network.
struct Swap<'a> {
    path: Vec<String>,
    groups: &'a [String],
    from: &'a HashMap<String, TensorData>,
}

impl ModuleMapper for Swap<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.groups.contains(&group_of(&self.path)) {
            return param;
        }
        match self.from.get(&self.path.join(".")) {
            Some(data) => param.map(|t| Tensor::from_data(data.clone(), &t.device())),
            None => param,
        }
    }
}

/// `model` with the parameters of `groups` taken from a fresh initialisation of `loaded`'s
/// configuration (seeded by `seed`).
pub fn randomised(
    loaded: &LoadedModel,
    model: Network,
    groups: &[String],
    seed: u64,
    device: &Device,
) -> Result<Network> {
    device.seed(seed);
    let fresh = loaded.config.init(device)?;
    let mut record = Groups {
        keep: true,
        ..Default::default()
    };
    fresh.visit(&mut record);
    Ok(model.map(&mut Swap {
        path: Vec::new(),
        groups,
        from: &record.tensors,
    }))
}

/// One method at one depth.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DepthResult {
    /// Groups randomised (0: the trained model).
    pub depth: usize,
    /// The group randomised last.
    pub group: String,
    /// Whether every randomised group lies above the explained layer.
    pub above_layer: bool,
    /// Spearman correlation with the trained model's maps.
    pub spearman: Option<MeanInterval>,
    /// SSIM with the trained model's maps.
    pub ssim: Option<MeanInterval>,
    /// Pairs left out of the Spearman mean because a map was constant.
    pub constant_maps: usize,
}

/// One method's cascade.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodSanity {
    /// Method.
    pub method: CamMethod,
    /// Depth 1 (top group random) to the last.
    pub depths: Vec<DepthResult>,
    /// Whether its maps stay (mean Spearman >= `UNCHANGED`) with every layer above the explained
    /// one randomised.
    pub unchanged: bool,
}

/// The sanity check's report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SanityReport {
    /// Parameter groups, top first (the order of randomisation).
    pub groups: Vec<String>,
    /// How many of them lie above the explained layer.
    pub groups_above_layer: usize,
    /// Images.
    pub images: usize,
    /// Each method.
    pub methods: Vec<MethodSanity>,
    /// Methods flagged as unchanged.
    pub flagged: Vec<CamMethod>,
}

/// Per-image values at every depth, for the CSV and the figure.
pub struct SanityMaps {
    /// `maps[method][depth][image]`, depth 0 the trained model.
    pub maps: Vec<Vec<Vec<CamMap>>>,
    /// `[method][depth - 1][image]` similarities `(spearman, ssim)`.
    pub values: Vec<Vec<Vec<(f64, f64)>>>,
}

/// Runs the cascade for `methods` at `layer` on `samples` (test images or files).
#[allow(clippy::too_many_arguments)]
pub fn run(
    loaded: &LoadedModel,
    layer: &str,
    methods: &[CamMethod],
    samples: &[Sample],
    target: &ClassTarget,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<(SanityReport, SanityMaps)> {
    let shape = loaded.meta.input_shape;
    let norm = &loaded.meta.normalize;
    let mut groups = parameter_groups(&loaded.model);
    groups.reverse(); // top first
    // The trained model's maps fix each image's class for every depth.
    let first = loaded.explainer(layer, methods[0])?;
    let trained_first =
        samples::explain_samples(&first, samples, shape, norm, target, batch_size, device)?;
    let fixed: Vec<Sample> = samples
        .iter()
        .zip(&trained_first)
        .map(|(s, m)| Sample {
            label: Some(m.target),
            ..s.clone()
        })
        .collect();
    let by_class = ClassTarget::Label;

    // Models at each depth, and how many top groups leave the explained layer unchanged.
    let mut models = vec![loaded.model.clone()];
    let mut above = 0;
    let mut still_above = true;
    for d in 1..=groups.len() {
        let model = randomised(
            loaded,
            models[d - 1].clone(),
            &groups[d - 1..d],
            mix_seed(&[seed, 401, d as u64]),
            device,
        )?;
        if still_above {
            let same =
                layer_unchanged(&loaded.model, &model, layer, &fixed[0], shape, norm, device)?;
            if same { above = d } else { still_above = false }
        }
        models.push(model);
    }
    if above == 0 {
        return Err(Error::invalid(
            "--sanity",
            format!(
                "model '{}' has no randomisable layer above layer '{layer}' (its parameter groups from the top: {}); explain a lower layer",
                loaded.meta.model.name,
                groups.join(", ")
            ),
        ));
    }

    let mut report_methods = Vec::with_capacity(methods.len());
    let mut all_maps = Vec::with_capacity(methods.len());
    let mut all_values = Vec::with_capacity(methods.len());
    for (m, &method) in methods.iter().enumerate() {
        let mut per_depth: Vec<Vec<CamMap>> = Vec::with_capacity(models.len());
        for model in &models {
            let explainer = Explainer::new(
                model,
                &loaded.config,
                &loaded.meta.model.name,
                layer,
                method,
            )?;
            per_depth.push(samples::explain_samples(
                &explainer, &fixed, shape, norm, &by_class, batch_size, device,
            )?);
        }
        let [_, h, w] = shape;
        let originals: Vec<Vec<f64>> = per_depth[0]
            .iter()
            .map(|map| input_sized(&map.normalised, map.shape, [h, w]))
            .collect();
        let mut depths = Vec::with_capacity(groups.len());
        let mut values = Vec::with_capacity(groups.len());
        for d in 1..models.len() {
            let pairs: Vec<(f64, f64)> = per_depth[d]
                .iter()
                .zip(&originals)
                .map(|(map, original)| {
                    let s = similarity(
                        original,
                        &input_sized(&map.normalised, map.shape, [h, w]),
                        [h, w],
                    );
                    (s.spearman, s.ssim)
                })
                .collect();
            let rho: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let ssim: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            let s = mix_seed(&[seed, m as u64, d as u64]);
            depths.push(DepthResult {
                depth: d,
                group: groups[d - 1].clone(),
                above_layer: d <= above,
                spearman: mean_interval(&rho, REPLICATES, 0.95, s),
                ssim: mean_interval(&ssim, REPLICATES, 0.95, s ^ 1),
                constant_maps: rho.iter().filter(|r| !r.is_finite()).count(),
            });
            values.push(pairs);
        }
        let at_layer = &depths[above - 1];
        let unchanged = at_layer
            .spearman
            .as_ref()
            .is_some_and(|r| r.mean >= UNCHANGED);
        report_methods.push(MethodSanity {
            method,
            depths,
            unchanged,
        });
        all_maps.push(per_depth);
        all_values.push(values);
    }
    let flagged = report_methods
        .iter()
        .filter(|m| m.unchanged)
        .map(|m| m.method)
        .collect();
    Ok((
        SanityReport {
            groups,
            groups_above_layer: above,
            images: samples.len(),
            methods: report_methods,
            flagged,
        },
        SanityMaps {
            maps: all_maps,
            values: all_values,
        },
    ))
}

/// Whether `layer`'s activation for `sample` is the same in both models.
fn layer_unchanged(
    a: &Network,
    b: &Network,
    layer: &str,
    sample: &Sample,
    shape: [usize; 3],
    norm: &crate::data::Normalize,
    device: &Device,
) -> Result<bool> {
    let image = samples::normalised_tensor(std::slice::from_ref(sample), shape, norm, device);
    let mut values = Vec::with_capacity(2);
    for model in [a, b] {
        let mut capture = Capture::new(layer);
        let _ = model.valid().forward_tapped(image.clone(), &mut capture);
        let activation = capture.activation().cloned().ok_or_else(|| {
            Error::invalid(
                "--layer",
                format!("the forward pass never reached layer '{layer}'"),
            )
        })?;
        values.push(
            activation
                .inner()
                .into_data_as::<f32>()
                .iter::<f32>()
                .collect::<Vec<f32>>(),
        );
    }
    Ok(values[0] == values[1])
}
