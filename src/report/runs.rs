//! Finding and reading the runs of a folder, with their labels: from the grid's
//! `experiment.json` when there is one, else derived from each run's `run.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::{read_csv, read_json};
use crate::model::ModelOptions;
use crate::train::experiment::{ExperimentManifest, MANIFEST, ModelLabel};
use crate::train::manifest::RunManifest;
use crate::train::metrics::{EpochMetrics, MetricsCsv, Prediction, Summary};

/// One run directory and what it holds.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// Its path relative to the runs folder.
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// Model label.
    pub model: String,
    /// Seed.
    pub seed: u64,
    /// `run.json`.
    pub manifest: RunManifest,
    /// `metrics.csv`, one row per completed epoch.
    pub metrics: Vec<EpochMetrics>,
    /// `summary.json`, once finished.
    pub summary: Option<Summary>,
}

impl RunRecord {
    /// Whether the run finished (test set evaluated).
    pub fn finished(&self) -> bool {
        self.summary.is_some()
    }

    /// `predictions.csv`, sorted by test-image index.
    pub fn predictions(&self) -> Result<Vec<Prediction>> {
        let path = self.dir.join("predictions.csv");
        if !path.is_file() {
            return Err(Error::data(
                &path,
                "missing: the run finished without per-image predictions",
            ));
        }
        let mut rows: Vec<Prediction> = read_csv(&path)?;
        rows.sort_by_key(|p| p.index);
        Ok(rows)
    }
}

/// The runs of a folder, labelled and ordered.
#[derive(Clone, Debug)]
pub struct Collection {
    /// The folder.
    pub root: PathBuf,
    /// The grid's description, if the runs come from a grid.
    pub description: Option<String>,
    /// The grid file, if any.
    pub grid: Option<String>,
    /// Dataset labels in display order.
    pub datasets: Vec<String>,
    /// Recipe labels in display order.
    pub recipes: Vec<String>,
    /// Models in display order, with their twins.
    pub models: Vec<ModelLabel>,
    /// Every run found, in plan order.
    pub runs: Vec<RunRecord>,
    /// Runs the grid planned that have no directory yet.
    pub missing: Vec<String>,
    /// Run directories that could not be read, and why.
    pub unreadable: Vec<String>,
}

/// Reads a run directory's files.
fn read_run(dir: &Path) -> Result<(RunManifest, Vec<EpochMetrics>, Option<Summary>)> {
    let manifest: RunManifest = read_json(&dir.join("run.json"))?;
    let metrics = MetricsCsv::new(dir).read()?;
    let summary_path = dir.join("summary.json");
    let summary = if summary_path.is_file() {
        Some(read_json(&summary_path)?)
    } else {
        None
    };
    Ok((manifest, metrics, summary))
}

/// Every folder below `root` holding a `run.json` (not looking inside runs), sorted.
fn find_run_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("run.json").is_file() {
            found.push(dir);
            continue;
        }
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn relative(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root).unwrap_or(dir).display().to_string()
}

/// Reads the runs in `root`.
pub fn collect(root: &Path) -> Result<Collection> {
    if !root.is_dir() {
        return Err(Error::data(root, "no such runs folder"));
    }
    let manifest_path = root.join(MANIFEST);
    if manifest_path.is_file() {
        from_grid(root, read_json(&manifest_path)?)
    } else {
        from_run_files(root)
    }
}

/// Labels from the grid's manifest.
fn from_grid(root: &Path, grid: ExperimentManifest) -> Result<Collection> {
    let mut runs = Vec::new();
    let (mut missing, mut unreadable) = (Vec::new(), Vec::new());
    for label in &grid.runs {
        let dir = root.join(&label.id);
        if !dir.join("run.json").is_file() {
            missing.push(label.id.clone());
            continue;
        }
        match read_run(&dir) {
            Ok((manifest, metrics, summary)) => runs.push(RunRecord {
                id: label.id.clone(),
                dir,
                dataset: label.dataset.clone(),
                recipe: label.recipe.clone(),
                model: label.model.clone(),
                seed: label.seed,
                manifest,
                metrics,
                summary,
            }),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    // Keep the grid's order, sorted by (dataset, recipe, model, seed) for stable tables.
    let pos = |list: &[String], x: &str| list.iter().position(|y| y == x).unwrap_or(usize::MAX);
    let model_names: Vec<String> = grid.models.iter().map(|m| m.label.clone()).collect();
    runs.sort_by_key(|r| {
        (
            pos(&grid.datasets, &r.dataset),
            pos(&grid.recipes, &r.recipe),
            pos(&model_names, &r.model),
            r.seed,
        )
    });
    // Columns and figures only for datasets and recipes that have runs so far.
    let mut datasets = grid.datasets;
    datasets.retain(|d| runs.iter().any(|r| &r.dataset == d));
    let mut recipes = grid.recipes;
    recipes.retain(|x| runs.iter().any(|r| &r.recipe == x));
    Ok(Collection {
        root: root.to_path_buf(),
        description: grid.description,
        grid: Some(grid.grid),
        datasets,
        recipes,
        models: grid.models,
        runs,
        missing,
        unreadable,
    })
}

/// Config keys that are not part of a recipe: what the data, the model and the run are.
fn model_keys() -> Vec<String> {
    match serde_json::to_value(ModelOptions::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

const NOT_RECIPE: [&str; 7] = [
    "data",
    "labels",
    "model",
    "seed",
    "run-dir",
    "device",
    "eval-batch-size",
];

/// `key=value` for each key whose value is not the same in all `configs`.
fn differing(configs: &[serde_json::Map<String, serde_json::Value>]) -> Vec<Vec<String>> {
    let keys: Vec<&String> = configs
        .first()
        .map(|c| c.keys().collect())
        .unwrap_or_default();
    let varying: Vec<&String> = keys
        .into_iter()
        .filter(|k| configs.iter().any(|c| c.get(*k) != configs[0].get(*k)))
        .collect();
    configs
        .iter()
        .map(|c| {
            varying
                .iter()
                .map(|k| {
                    let v = c.get(*k).map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Array(a) => a
                            .iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        other => other.to_string(),
                    });
                    format!("{k}={}", v.unwrap_or_default())
                })
                .collect()
        })
        .collect()
}

/// Labels derived from `run.json` for runs not made by a grid: the dataset folder's name, the
/// model name (plus its options where one name has several), the recipe by the settings that
/// differ between recipes; twins are the plain `cnn`.
fn from_run_files(root: &Path) -> Result<Collection> {
    let mut loaded = Vec::new();
    let mut unreadable = Vec::new();
    for dir in find_run_dirs(root)? {
        match read_run(&dir) {
            Ok(parts) => loaded.push((dir, parts)),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    let config_map = |m: &RunManifest| match serde_json::to_value(&m.config) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let model_keys = model_keys();

    // Datasets: folder name, plus the label set where it is not the default.
    let dataset_of = |m: &RunManifest| {
        let root = Path::new(&m.data.root);
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| m.data.root.clone());
        if m.data.format == crate::data::Format::Cifar100Binary {
            format!("{name}-{}", format!("{:?}", m.config.labels).to_lowercase())
        } else {
            name
        }
    };

    // Models: distinct (name, options); name alone where it is unambiguous.
    let model_part = |m: &RunManifest| {
        let c = config_map(m);
        let mut part = serde_json::Map::new();
        part.insert("model".into(), c.get("model").cloned().unwrap_or_default());
        for k in &model_keys {
            part.insert(k.clone(), c.get(k).cloned().unwrap_or_default());
        }
        part
    };
    let mut model_parts: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    for (_, (m, _, _)) in &loaded {
        let p = model_part(m);
        if !model_parts.contains(&p) {
            model_parts.push(p);
        }
    }
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in model_parts.iter().enumerate() {
        by_name
            .entry(p["model"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(i);
    }
    let mut model_labels = vec![String::new(); model_parts.len()];
    for (name, indices) in &by_name {
        if indices.len() == 1 {
            model_labels[indices[0]] = name.clone();
        } else {
            let group: Vec<_> = indices.iter().map(|&i| model_parts[i].clone()).collect();
            for (&i, diffs) in indices.iter().zip(differing(&group)) {
                model_labels[i] = format!("{name}({})", diffs.join(" "));
            }
        }
    }

    // Recipes: the rest of the configuration.
    let recipe_part = |m: &RunManifest| {
        let mut c = config_map(m);
        c.retain(|k, _| !NOT_RECIPE.contains(&k.as_str()) && !model_keys.contains(k));
        c
    };
    let mut recipe_parts: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    for (_, (m, _, _)) in &loaded {
        let p = recipe_part(m);
        if !recipe_parts.contains(&p) {
            recipe_parts.push(p);
        }
    }
    let recipe_labels: Vec<String> = if recipe_parts.len() == 1 {
        vec!["recipe".to_string()]
    } else {
        differing(&recipe_parts)
            .into_iter()
            .map(|d| d.join(" "))
            .collect()
    };

    let mut runs = Vec::new();
    let (mut datasets, mut recipes, mut models): (Vec<String>, Vec<String>, Vec<String>) =
        Default::default();
    for (dir, (manifest, metrics, summary)) in loaded {
        let dataset = dataset_of(&manifest);
        let model = model_labels[model_parts
            .iter()
            .position(|p| *p == model_part(&manifest))
            .expect("collected above")]
        .clone();
        let recipe = recipe_labels[recipe_parts
            .iter()
            .position(|p| *p == recipe_part(&manifest))
            .expect("collected above")]
        .clone();
        for (list, x) in [
            (&mut datasets, &dataset),
            (&mut recipes, &recipe),
            (&mut models, &model),
        ] {
            if !list.contains(x) {
                list.push(x.clone());
            }
        }
        runs.push(RunRecord {
            id: relative(root, &dir),
            dir,
            dataset,
            recipe,
            model,
            seed: manifest.seed,
            manifest,
            metrics,
            summary,
        });
    }
    // The plain twin: the model labelled `cnn`, for every other model.
    let plain = models.iter().any(|m| m == "cnn");
    let models = models
        .into_iter()
        .map(|label| {
            let model = label.split('(').next().unwrap_or(&label).to_string();
            let twin = (plain && label != "cnn").then(|| "cnn".to_string());
            ModelLabel {
                label,
                model,
                twin,
                matched: None,
            }
        })
        .collect();
    runs.sort_by(|a, b| {
        (&a.dataset, &a.recipe, &a.model, a.seed).cmp(&(&b.dataset, &b.recipe, &b.model, b.seed))
    });
    Ok(Collection {
        root: root.to_path_buf(),
        description: None,
        grid: None,
        datasets,
        recipes,
        models,
        runs,
        missing: Vec::new(),
        unreadable,
    })
}
