//! The grid file: named datasets, models and recipes (each a set of train flags), seeds, and
//! the runs they expand to.
//!
//! ```toml
//! description = "what this grid is for"
//! out = "../runs/my-grid"          # output folder (default: runs/<file stem>; --out overrides)
//! seeds = [0, 1, 2]
//!
//! [defaults]                       # flags for every run
//! val-size = 5000
//!
//! [datasets.cifar10]               # a dataset: its flags (data is required)
//! data = "../../shared/data/cifar10-jpeg"
//! [datasets.cifar100]
//! data = "../data/cifar-100-binary"
//! labels = "fine"
//!
//! [models.cnn]                     # a model: its flags; `model` defaults to the label
//! [models.cnn-wide]
//! model = "cnn"
//! widths = [64, 128, 256, 512]
//! twin = "cnn"                     # the plain twin the report compares it with
//! match = "flops"                  # also a plain cnn of the same FLOPs ("params": parameters)
//!
//! [recipes.study]                  # a recipe: a config file and/or flags
//! config = "../configs/study.toml"
//! [recipes.study-5ep]
//! config = "../configs/study.toml"
//! epochs = 5
//!
//! [[product]]                      # optional: runs = union of products (default: one
//! models = ["cnn", "cnn-wide"]     # product of everything); each list defaults to all
//! recipes = ["study"]
//! ```
//!
//! A run's flags are, later overriding earlier: `[defaults]`, the recipe's config file, the
//! recipe's flags, the dataset's, the model's; then `--seed` and `--run-dir`, which the grid
//! owns. Relative paths (the grid's `out`, a recipe's `config`, and every path-valued flag such
//! as `data`) are resolved against the grid file's folder, so a grid works from any directory.
//! A run lives in `OUT/<dataset>/<recipe>/<model>/seed-<seed>`.
//!
//! `match` adds the model `<label>-twin-<params|flops>`: the plain cnn whose widths, scaled by
//! one factor ([`crate::model::matched`]), cost what the model costs for 10 classes of 32x32
//! images (a grid is planned without reading its data); it runs wherever the model runs, with
//! the same recipe, dataset and seeds, and the report compares the model with it too.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::super::config::TrainConfig;
use super::super::flags::{self, FlagProblem, resolve};
use crate::error::{Error, IoContext, Result};
use crate::model::matched::{self, MatchBy};
use crate::model::table;

/// The grid file as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    description: Option<String>,
    out: Option<PathBuf>,
    seeds: Vec<u64>,
    #[serde(default)]
    defaults: toml::Table,
    datasets: toml::Table,
    models: toml::Table,
    recipes: toml::Table,
    #[serde(default, rename = "product")]
    products: Vec<Product>,
}

/// One `[[product]]`: the cartesian product of its lists (each defaulting to all).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Product {
    models: Option<Vec<String>>,
    datasets: Option<Vec<String>>,
    recipes: Option<Vec<String>>,
    seeds: Option<Vec<u64>>,
}

/// A named set of train flags from the grid (`[models.cnn]`, ...).
#[derive(Clone, Debug)]
pub struct FlagSet {
    /// Its label (the table key).
    pub label: String,
    /// Where it is in the file, for messages: `[models.cnn]`.
    pub section: String,
    /// Flag name (without `--`) and value, in file order.
    pub flags: Vec<(String, String)>,
    /// What this build cannot run in it (an unknown flag or model, a missing data folder):
    /// reported when a selected run uses it, so a grid that names models of a later build
    /// still runs its other part.
    problems: Problems,
}

/// A model of the grid.
#[derive(Clone, Debug)]
pub struct GridModel {
    /// Its flags (always including `model`).
    pub set: FlagSet,
    /// The label of the model it is compared with in the report.
    pub twin: Option<String>,
    /// The label of its compute-matched twin (`match`), if it has one.
    pub matched: Option<String>,
    /// For a compute-matched twin: the label of the model it matches, and by what.
    pub matches: Option<(String, MatchBy)>,
}

/// A parsed, resolved grid file.
#[derive(Clone, Debug)]
pub struct Grid {
    /// The file.
    pub path: PathBuf,
    /// Its text (recorded with the runs).
    pub text: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its output folder, resolved, if it names one.
    pub out: Option<PathBuf>,
    /// Flags of every run.
    pub defaults: FlagSet,
    /// Datasets in file order.
    pub datasets: Vec<FlagSet>,
    /// Models in file order.
    pub models: Vec<GridModel>,
    /// Recipes in file order: each its config file's flags followed by its own.
    pub recipes: Vec<FlagSet>,
    seeds: Vec<u64>,
    products: Vec<Product>,
    /// The train flags of this build, for messages.
    known: Vec<String>,
}

/// Which runs of a grid to consider (command-line filters); `None` keeps all.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Model labels.
    pub models: Option<Vec<String>>,
    /// Dataset labels.
    pub datasets: Option<Vec<String>>,
    /// Recipe labels.
    pub recipes: Option<Vec<String>>,
    /// Seeds.
    pub seeds: Option<Vec<u64>>,
}

/// One run of the grid, fully configured.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// `<dataset>/<recipe>/<model>/seed-<seed>`, also its folder below the output folder.
    pub id: String,
    /// Dataset label.
    pub dataset: String,
    /// Recipe label.
    pub recipe: String,
    /// Model label.
    pub model: String,
    /// The model label it is compared with.
    pub twin: Option<String>,
    /// Its seed.
    pub seed: u64,
    /// Its run directory.
    pub dir: PathBuf,
    /// Its train flags as tokens (`--lr`, `0.001`, ...), `--seed` and `--run-dir` included.
    pub flags: Vec<String>,
    /// Those flags parsed.
    pub config: TrainConfig,
}

/// Problems found in a grid, gathered so that all are reported at once; unknown flags and
/// models are listed once each with the sections that use them.
#[derive(Clone, Debug, Default)]
struct Problems {
    /// Mistakes in the file itself: reported as soon as it is read.
    list: Vec<String>,
    /// What this build or machine lacks (reported when a selected run needs it): flags and
    /// models of another build, each with the sections naming it ...
    unknown_flags: Vec<(String, Vec<String>)>,
    unknown_models: Vec<(String, Vec<String>)>,
    /// ... and files or folders not there.
    missing: Vec<String>,
}

impl Problems {
    fn push(&mut self, message: String) {
        self.list.push(message);
    }

    fn add(to: &mut Vec<(String, Vec<String>)>, name: &str, section: &str) {
        match to.iter_mut().find(|(n, _)| n == name) {
            Some((_, sections)) => sections.push(section.to_string()),
            None => to.push((name.to_string(), vec![section.to_string()])),
        }
    }

    fn unknown_flag(&mut self, key: &str, section: &str) {
        Self::add(&mut self.unknown_flags, key, section);
    }

    fn unknown_model(&mut self, name: &str, section: &str) {
        Self::add(&mut self.unknown_models, name, section);
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
            && self.unknown_flags.is_empty()
            && self.unknown_models.is_empty()
            && self.missing.is_empty()
    }

    /// Adds `other`'s problems (each once).
    fn merge(&mut self, other: &Problems) {
        for (to, from) in [
            (&mut self.list, &other.list),
            (&mut self.missing, &other.missing),
        ] {
            for p in from {
                if !to.contains(p) {
                    to.push(p.clone());
                }
            }
        }
        for (to, from) in [
            (&mut self.unknown_flags, &other.unknown_flags),
            (&mut self.unknown_models, &other.unknown_models),
        ] {
            for (name, sections) in from {
                for section in sections {
                    if !to.iter().any(|(n, s)| n == name && s.contains(section)) {
                        Self::add(to, name, section);
                    }
                }
            }
        }
    }

    /// One error listing every problem, naming the grid file.
    fn into_error(self, path: &Path, known: &[String]) -> Error {
        let where_ = |sections: &[String]| {
            if sections.len() <= 4 {
                sections.join(", ")
            } else {
                format!(
                    "{} and {} more",
                    sections[..3].join(", "),
                    sections.len() - 3
                )
            }
        };
        let mut lines = self.list;
        lines.extend(self.missing);
        for (name, sections) in &self.unknown_models {
            lines.push(format!(
                "model '{name}' is not in this visionnet (its models: {}), in {}",
                table::names().join(", "),
                where_(sections)
            ));
        }
        for (key, sections) in &self.unknown_flags {
            lines.push(format!("'{key}' is not a train flag of this visionnet (one a later version adds, or a typo), in {}", where_(sections)));
        }
        let mut message = format!(
            "{} problem{} in the grid:",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        );
        for e in &lines {
            message.push_str("\n  - ");
            message.push_str(e);
        }
        if !self.unknown_flags.is_empty() {
            message.push_str(&format!("\n  the train flags are: {}", known.join(", ")));
        }
        if !self.unknown_models.is_empty() {
            message.push_str("\n  (`visionnet models` lists the models of this build; --models selects part of a grid)");
        }
        Error::data(path, message)
    }
}

/// Keys a grid's flag sets may not set: the grid owns them.
const OWNED: [&str; 2] = ["seed", "run-dir"];

/// Labels become folder names: keep them plain.
fn check_label(label: &str) -> std::result::Result<(), String> {
    let ok = !label.is_empty()
        && label != "."
        && label != ".."
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label '{label}' must be letters, digits, '.', '_' or '-' (it names a folder)"
        ))
    }
}

/// Reads a set of flags from a TOML table, skipping `reserved` keys (returned separately).
/// Problems go to the set's own list.
fn flag_set(
    label: &str,
    section: &str,
    table: &toml::Table,
    reserved: &[&str],
    base: &Path,
    known: &[String],
    paths: &HashSet<String>,
) -> (FlagSet, BTreeMap<String, toml::Value>) {
    let mut set = FlagSet {
        label: label.to_string(),
        section: section.to_string(),
        flags: Vec::new(),
        problems: Problems::default(),
    };
    let errors = &mut set.problems;
    let mut extra = BTreeMap::new();
    for (key, value) in table {
        if reserved.contains(&key.as_str()) {
            extra.insert(key.clone(), value.clone());
            continue;
        }
        if OWNED.contains(&key.as_str()) {
            errors.push(format!(
                "{section}: '{key}' is set by the grid itself (seeds = [...], the output folder)"
            ));
            continue;
        }
        match flags::table_entry(key, value, known, paths, base) {
            Ok(flag) => set.flags.push(flag),
            Err(FlagProblem::Unknown) => errors.unknown_flag(key, section),
            Err(problem) => errors.push(problem.describe(section, key)),
        }
    }
    (set, extra)
}

/// Reads a recipe's config file: a TOML table of train flags, like `train --config`.
/// Problems go to `errors`.
fn config_file(
    path: &Path,
    section: &str,
    known: &[String],
    paths: &HashSet<String>,
    errors: &mut Problems,
) -> Vec<(String, String)> {
    let table = match flags::read_table(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("{section}: config {e}"));
            return Vec::new();
        }
    };
    let base = flags::folder_of(path);
    let where_ = format!("{section} (config {})", path.display());
    let set = flag_set("", &where_, &table, &[], &base, known, paths).0;
    errors.merge(&set.problems);
    set.flags
}

impl Grid {
    /// Reads and checks a grid file: its structure and labels. Whether this build has its
    /// models and flags and this machine its data folders is checked for the runs selected, by
    /// [`Grid::plan`] (unless the file has mistakes, which are reported with all of those);
    /// flag values too.
    pub fn load(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path).at(path)?;
        let file: GridFile = toml::from_str(&text)
            .map_err(|e| Error::data(path, format!("not a valid grid file: {e}")))?;
        let base = flags::folder_of(path);
        let known = flags::known_flags();
        let paths: HashSet<String> = flags::path_flags().into_iter().collect();
        let mut errors = Problems::default();

        let tables = |kind: &str,
                      table: &toml::Table,
                      errors: &mut Problems|
         -> Vec<(String, toml::Table)> {
            if table.is_empty() {
                errors.push(format!("[{kind}] names none; a grid needs at least one"));
            }
            let mut out = Vec::new();
            for (label, value) in table {
                if let Err(e) = check_label(label) {
                    errors.push(format!("[{kind}.{label}]: {e}"));
                }
                match value {
                    toml::Value::Table(t) => out.push((label.clone(), t.clone())),
                    other => errors.push(format!(
                        "[{kind}] '{label}' must be a table of flags, not a {}",
                        other.type_str()
                    )),
                }
            }
            out
        };

        // Every run uses the defaults: all their problems count now.
        let (mut defaults, _) = flag_set(
            "defaults",
            "[defaults]",
            &file.defaults,
            &[],
            &base,
            &known,
            &paths,
        );
        errors.merge(&std::mem::take(&mut defaults.problems));
        // Mistakes in a section count now; what it needs that is not here, once a run uses it.
        let structural =
            |set: &mut FlagSet, errors: &mut Problems| errors.list.append(&mut set.problems.list);

        let mut datasets = Vec::new();
        for (label, table) in tables("datasets", &file.datasets, &mut errors) {
            let section = format!("[datasets.{label}]");
            let (mut set, _) = flag_set(&label, &section, &table, &[], &base, &known, &paths);
            match set.flags.iter().find(|(k, _)| k == "data") {
                None => errors.push(format!(
                    "{section}: 'data' (the dataset folder) is required"
                )),
                Some((_, dir)) if !Path::new(dir).is_dir() => set.problems.missing.push(format!(
                    "{section}: data folder {dir} does not exist (see `visionnet data fetch`)"
                )),
                Some(_) => {}
            }
            structural(&mut set, &mut errors);
            datasets.push(set);
        }

        let mut models = Vec::new();
        for (label, table) in tables("models", &file.models, &mut errors) {
            let section = format!("[models.{label}]");
            let (mut set, extra) = flag_set(
                &label,
                &section,
                &table,
                &["twin", "match"],
                &base,
                &known,
                &paths,
            );
            if !set.flags.iter().any(|(k, _)| k == "model") {
                set.flags.insert(0, ("model".to_string(), label.clone()));
            }
            let name = set
                .flags
                .iter()
                .find(|(k, _)| k == "model")
                .expect("inserted above")
                .1
                .clone();
            if table::entry(&name).is_err() {
                set.problems.unknown_model(&name, &section);
            }
            structural(&mut set, &mut errors);
            let twin = match extra.get("twin") {
                None => None,
                Some(toml::Value::String(t)) => Some(t.clone()),
                Some(other) => {
                    errors.push(format!(
                        "{section}: 'twin' must be a model label, not a {}",
                        other.type_str()
                    ));
                    None
                }
            };
            let by = match extra.get("match") {
                None => None,
                Some(toml::Value::String(m)) => MatchBy::parse(m)
                    .map_err(|e| errors.push(format!("{section}: match: {e}")))
                    .ok(),
                Some(other) => {
                    errors.push(format!(
                        "{section}: 'match' must be \"params\" or \"flops\", not a {}",
                        other.type_str()
                    ));
                    None
                }
            };
            let twin_label = by.map(|by| format!("{label}-twin-{}", by.as_str()));
            models.push(GridModel {
                set,
                twin,
                matched: twin_label.clone(),
                matches: None,
            });
            if let (Some(by), Some(twin_label)) = (by, twin_label) {
                // The matched twin: its flags are made per run from the model's (`configure`).
                let set = FlagSet {
                    label: twin_label.clone(),
                    section: format!("{section} (match = \"{}\")", by.as_str()),
                    flags: vec![("model".to_string(), "cnn".to_string())],
                    problems: Problems::default(),
                };
                models.push(GridModel {
                    set,
                    twin: None,
                    matched: None,
                    matches: Some((label.clone(), by)),
                });
            }
        }
        let labels: Vec<&str> = models.iter().map(|m| m.set.label.as_str()).collect();
        for m in &models {
            if let Some(t) = &m.twin {
                if !labels.contains(&t.as_str()) {
                    errors.push(format!(
                        "[models.{}]: twin '{t}' is not a model of this grid ({})",
                        m.set.label,
                        labels.join(", ")
                    ));
                } else if t == &m.set.label {
                    errors.push(format!(
                        "[models.{}]: a model cannot be its own twin",
                        m.set.label
                    ));
                }
            }
        }

        let mut recipes = Vec::new();
        for (label, table) in tables("recipes", &file.recipes, &mut errors) {
            let section = format!("[recipes.{label}]");
            let (mut set, extra) =
                flag_set(&label, &section, &table, &["config"], &base, &known, &paths);
            let mut flags = match extra.get("config") {
                None => Vec::new(),
                Some(toml::Value::String(file)) => config_file(
                    &resolve(&base, Path::new(file)),
                    &section,
                    &known,
                    &paths,
                    &mut set.problems,
                ),
                Some(other) => {
                    errors.push(format!(
                        "{section}: 'config' must be a file path, not a {}",
                        other.type_str()
                    ));
                    Vec::new()
                }
            };
            // The config file's flags first: the recipe's own override them.
            flags.append(&mut set.flags);
            set.flags = flags;
            structural(&mut set, &mut errors);
            recipes.push(set);
        }

        if file.seeds.is_empty() {
            errors.push("seeds: the list is empty".to_string());
        }
        let mut seen = HashSet::new();
        for s in &file.seeds {
            if !seen.insert(s) {
                errors.push(format!("seeds: {s} is listed twice"));
            }
        }
        for (i, p) in file.products.iter().enumerate() {
            let at = format!("[[product]] #{}", i + 1);
            let check = |kind: &str,
                         names: &Option<Vec<String>>,
                         have: Vec<&str>,
                         errors: &mut Problems| {
                for n in names.iter().flatten() {
                    if !have.contains(&n.as_str()) {
                        errors.push(format!(
                            "{at}: {kind} '{n}' is not in [{kind}s] ({})",
                            have.join(", ")
                        ));
                    }
                }
            };
            check(
                "model",
                &p.models,
                models.iter().map(|m| m.set.label.as_str()).collect(),
                &mut errors,
            );
            check(
                "dataset",
                &p.datasets,
                datasets.iter().map(|d| d.label.as_str()).collect(),
                &mut errors,
            );
            check(
                "recipe",
                &p.recipes,
                recipes.iter().map(|r| r.label.as_str()).collect(),
                &mut errors,
            );
        }

        if !errors.is_empty() {
            // The file needs fixing: name everything else it asks for that is not here too.
            for set in datasets
                .iter()
                .chain(models.iter().map(|m| &m.set))
                .chain(&recipes)
            {
                errors.merge(&set.problems);
            }
            return Err(errors.into_error(path, &known));
        }
        Ok(Grid {
            path: path.to_path_buf(),
            text,
            description: file.description,
            out: file.out.map(|o| resolve(&base, &o)),
            defaults,
            datasets,
            models,
            recipes,
            seeds: file.seeds,
            products: file.products,
            known,
        })
    }

    /// The runs of the grid that `selection` keeps, each configured and checked (flag values,
    /// model options), in order: products in file order; within one, seed, dataset, recipe,
    /// model. Every problem is reported at once, among them the models, flags and data folders
    /// that the selected runs need and this build or machine lacks (unselected runs may need
    /// them: a grid can name the models of a later build).
    pub fn plan(&self, out: &Path, selection: &Selection) -> Result<Vec<PlannedRun>> {
        let mut errors = Problems::default();
        let select =
            |kind: &str, names: &Option<Vec<String>>, have: Vec<&str>, errors: &mut Problems| {
                for n in names.iter().flatten() {
                    if !have.contains(&n.as_str()) {
                        errors.push(format!(
                            "--{kind}s: '{n}' is not a {kind} of this grid ({})",
                            have.join(", ")
                        ));
                    }
                }
            };
        select(
            "model",
            &selection.models,
            self.models.iter().map(|m| m.set.label.as_str()).collect(),
            &mut errors,
        );
        select(
            "dataset",
            &selection.datasets,
            self.datasets.iter().map(|d| d.label.as_str()).collect(),
            &mut errors,
        );
        select(
            "recipe",
            &selection.recipes,
            self.recipes.iter().map(|r| r.label.as_str()).collect(),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors.into_error(&self.path, &[]));
        }
        let keep = |names: &Option<Vec<String>>, label: &str| {
            names.as_ref().is_none_or(|n| n.iter().any(|x| x == label))
        };

        let everything = [Product::default()];
        let products: &[Product] = if self.products.is_empty() {
            &everything
        } else {
            &self.products
        };
        let mut runs = Vec::new();
        let mut ids = HashSet::new();
        // One message per (dataset, recipe, model) combination, not per seed.
        let mut reported = HashSet::new();
        for product in products {
            let pick = |names: &Option<Vec<String>>, label: &str| {
                names.as_ref().is_none_or(|n| n.iter().any(|x| x == label))
            };
            let seeds = product.seeds.clone().unwrap_or_else(|| self.seeds.clone());
            for &seed in &seeds {
                if selection.seeds.as_ref().is_some_and(|s| !s.contains(&seed)) {
                    continue;
                }
                for dataset in self.datasets.iter().filter(|d| {
                    pick(&product.datasets, &d.label) && keep(&selection.datasets, &d.label)
                }) {
                    for recipe in self.recipes.iter().filter(|r| {
                        pick(&product.recipes, &r.label) && keep(&selection.recipes, &r.label)
                    }) {
                        // A matched twin goes wherever its model goes.
                        let source = |m: &GridModel| {
                            m.matches
                                .as_ref()
                                .map_or(m.set.label.clone(), |(s, _)| s.clone())
                        };
                        let chosen = |m: &GridModel| {
                            let (own, from) = (&m.set.label, source(m));
                            (pick(&product.models, own) || pick(&product.models, &from))
                                && (keep(&selection.models, own) || keep(&selection.models, &from))
                        };
                        for model in self.models.iter().filter(|m| chosen(m)) {
                            let id = format!(
                                "{}/{}/{}/seed-{seed}",
                                dataset.label, recipe.label, model.set.label
                            );
                            if !ids.insert(id.clone()) {
                                continue;
                            }
                            // A section this build or machine cannot run: named below, not parsed.
                            let of = |m: &GridModel| {
                                self.models.iter().find(|x| {
                                    Some(&x.set.label) == m.matches.as_ref().map(|(s, _)| s)
                                })
                            };
                            let problems =
                                of(model).map_or(&model.set.problems, |m| &m.set.problems);
                            let sections = [&dataset.problems, &recipe.problems, problems];
                            if sections.iter().any(|p| !p.is_empty()) {
                                sections.iter().for_each(|p| errors.merge(p));
                                continue;
                            }
                            let combination =
                                format!("{}/{}/{}", dataset.label, recipe.label, model.set.label);
                            match self.configure(&id, out, seed, dataset, recipe, model) {
                                Ok(run) => runs.push(run),
                                Err(e) => {
                                    if reported.insert(combination.clone()) {
                                        errors.push(format!("{combination}: {e}"));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.into_error(&self.path, &self.known));
        }
        Ok(runs)
    }

    /// The flags of one run, later ones overriding earlier ones.
    fn merged(
        &self,
        dataset: &FlagSet,
        recipe: &FlagSet,
        model: &FlagSet,
    ) -> Vec<(String, String)> {
        let mut merged: Vec<(String, String)> = Vec::new();
        for (key, value) in self
            .defaults
            .flags
            .iter()
            .chain(&recipe.flags)
            .chain(&dataset.flags)
            .chain(&model.flags)
        {
            match merged.iter_mut().find(|(k, _)| *k == *key) {
                Some(slot) => slot.1 = value.clone(),
                None => merged.push((key.clone(), value.clone())),
            }
        }
        merged
    }

    /// A matched twin's flags: the model's, with the plain cnn's model options and the
    /// matched widths.
    fn matched_flags(
        &self,
        source: &str,
        by: MatchBy,
        dataset: &FlagSet,
        recipe: &FlagSet,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let model = self
            .models
            .iter()
            .find(|m| m.set.label == source)
            .ok_or_else(|| format!("no model '{source}' to match"))?;
        let merged = self.merged(dataset, recipe, &model.set);
        let mut tokens: Vec<String> = merged
            .iter()
            .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
            .collect();
        tokens.extend(["--run-dir".to_string(), "unused".to_string()]);
        let spec = flags::parse(&tokens)?.model_spec();
        let found = matched::match_twin(&spec, by, 10, [3, 32, 32], &burn::tensor::Device::flex())
            .map_err(|e| format!("match = \"{}\" of {source}: {e}", by.as_str()))?;
        let options = matched::twin_options(&spec.options, found.widths.clone());
        let mut out: Vec<(String, String)> = merged
            .into_iter()
            .filter(|(k, _)| !matched::DROPPED_FLAGS.contains(&k.as_str()))
            .collect();
        out.push(("model".to_string(), "cnn".to_string()));
        out.push((
            "widths".to_string(),
            options
                .widths
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ));
        Ok(out)
    }

    /// Merges the flags of one run and parses them.
    fn configure(
        &self,
        id: &str,
        out: &Path,
        seed: u64,
        dataset: &FlagSet,
        recipe: &FlagSet,
        model: &GridModel,
    ) -> std::result::Result<PlannedRun, String> {
        let merged = match &model.matches {
            Some((source, by)) => self.matched_flags(source, *by, dataset, recipe)?,
            None => self.merged(dataset, recipe, &model.set),
        };
        let dir = out.join(id);
        let mut tokens = Vec::new();
        for (key, value) in merged {
            tokens.push(format!("--{key}"));
            tokens.push(value);
        }
        tokens.extend([
            "--seed".to_string(),
            seed.to_string(),
            "--run-dir".to_string(),
            dir.display().to_string(),
        ]);
        let config = flags::parse(&tokens)?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(PlannedRun {
            id: id.to_string(),
            dataset: dataset.label.clone(),
            recipe: recipe.label.clone(),
            model: model.set.label.clone(),
            twin: model.twin.clone(),
            seed,
            dir,
            flags: tokens,
            config,
        })
    }
}
