//! Experiment grids: validation up front, skipping finished runs, resuming interrupted ones (a
//! stopped grid and a killed one), parallel processes equal to sequential runs, and a changed
//! grid refused.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use visionnet::io::read_csv;
use visionnet::train::experiment::{ExperimentOptions, RunOutcome, Selection, run_grid};
use visionnet::train::metrics::{EpochMetrics, Prediction};

/// The tiny grid (two CNNs x one synthetic dataset x one recipe x two seeds, 2 epochs each) at
/// learning rate `lr`.
fn write_grid(dir: &Path, lr: f64) -> PathBuf {
    TinyGrid {
        lr,
        ..Default::default()
    }
    .write(dir)
}

fn ids(outcome: &visionnet::train::experiment::ExperimentOutcome) -> Vec<String> {
    outcome.runs.iter().map(|(r, _)| r.id.clone()).collect()
}

fn metrics(run_dir: &Path) -> Vec<EpochMetrics> {
    read_csv(&run_dir.join("metrics.csv")).unwrap()
}

#[test]
fn a_grid_is_checked_up_front_and_every_problem_named() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("bad.toml"),
        r#"
seeds = [0, 0]
[datasets.here]
data = "no-such-folder"
[models.cnn]
[models.attn9]
twin = "nobody"
[models.cnn-lateral]
model = "cnn"
warp-drive = "on"
learning_rate = 0.1
[models.cnn-dense]
model = "cnn"
warp-drive = "off"
[recipes.r]
weight_decay = 0.0
seed = 3
"#,
    )
    .unwrap();
    let out = visionnet(&[
        "experiment",
        "--grid",
        tmp.path().join("bad.toml").to_str().unwrap(),
    ]);
    assert_clean_failure(
        &out,
        &[
            "bad.toml",
            "seeds: 0 is listed twice",
            "[datasets.here]: data folder",
            "no-such-folder does not exist",
            "model 'attn9' is not in this visionnet (its models: cnn, attn1, ",
            "), in [models.attn9]",
            "twin 'nobody' is not a model of this grid",
            "'warp-drive' is not a train flag of this visionnet (one a later version adds, or a typo), in [models.cnn-lateral], [models.cnn-dense]",
            "'learning_rate' is not a train flag",
            "[recipes.r]: 'weight_decay' is not a train flag; write it 'weight-decay'",
            "[recipes.r]: 'seed' is set by the grid itself",
            "the train flags are:",
        ],
    );
    // Nothing was written.
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);

    // A bad value is caught per run before any run starts, naming the combination and flag.
    let grid = write_grid(tmp.path(), -1.0);
    let out = visionnet(&["experiment", "--grid", grid.to_str().unwrap()]);
    assert_clean_failure(&out, &["synth/adam/cnn:", "--lr", "synth/adam/cnn-b:"]);
    assert!(!tmp.path().join("out").exists());
    // An unknown label in a selection.
    let grid = write_grid(tmp.path(), 0.01);
    let out = visionnet(&[
        "experiment",
        "--grid",
        grid.to_str().unwrap(),
        "--models",
        "cnn,attn1",
    ]);
    assert_clean_failure(
        &out,
        &["--models: 'attn1' is not a model of this grid (cnn, cnn-b)"],
    );
}

#[test]
fn a_grid_naming_models_of_another_build_runs_the_part_this_build_has() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_folder(&tmp.path().join("data"), 3, 8, 16);
    let grid = tmp.path().join("grid.toml");
    fs::write(
        &grid,
        r#"
seeds = [0, 1]
[defaults]
val-size = 3
batch-size = 8
hidden = [8, 8, 8]
widths = [4, 4, 4, 4]
[datasets.synth]
data = "data"
[datasets.cifar100]
data = "cifar-100-binary"
[models.cnn]
[models.attn9]
twin = "cnn"
[models.cnn-warp]
model = "cnn"
warp-drive = "on"
twin = "cnn"
[recipes.short]
epochs = 1
"#,
    )
    .unwrap();
    let g = grid.to_str().unwrap();
    let runs = tmp.path().join("runs");
    let o = runs.to_str().unwrap();
    // The whole grid: each missing model, flag and folder named, with where the grid uses it.
    let out = visionnet(&["experiment", "--grid", g, "--out", o]);
    assert_clean_failure(
        &out,
        &[
            "grid.toml: 3 problems in the grid",
            "[datasets.cifar100]: data folder",
            "cifar-100-binary does not exist",
            "model 'attn9' is not in this visionnet (its models: cnn, attn1, ",
            "), in [models.attn9]",
            "'warp-drive' is not a train flag of this visionnet (one a later version adds, or a typo), in [models.cnn-warp]",
            "--models selects part of a grid",
        ],
    );
    assert!(!runs.exists(), "nothing written");
    // Part of it selected: an unknown model still named if selected ...
    let out = visionnet(&[
        "experiment",
        "--grid",
        g,
        "--out",
        o,
        "--datasets",
        "synth",
        "--models",
        "cnn,attn9",
    ]);
    let stderr = assert_clean_failure(
        &out,
        &[
            "1 problem in the grid",
            "model 'attn9' is not in this visionnet",
        ],
    );
    assert!(
        !stderr.contains("warp-drive") && !stderr.contains("cifar100"),
        "{stderr}"
    );
    // ... and the part this build and machine have runs.
    let out = assert_success(&visionnet(&[
        "experiment",
        "--grid",
        g,
        "--out",
        o,
        "--datasets",
        "synth",
        "--models",
        "cnn",
        "--quiet",
    ]));
    assert!(
        out.contains("2 runs in") && out.contains("2 trained now"),
        "{out}"
    );
    for seed in [0, 1] {
        assert!(
            runs.join(format!("synth/short/cnn/seed-{seed}/summary.json"))
                .is_file()
        );
    }
}

#[test]
fn an_interrupted_grid_resumes_without_redoing_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01);
    let out = tmp.path().join("out");

    // Seed 0 of both models, to the end.
    let first = run_grid(
        &grid,
        &ExperimentOptions {
            selection: Selection {
                seeds: Some(vec![0]),
                ..Default::default()
            },
            ..quiet_grid()
        },
    )
    .unwrap();
    assert_eq!(
        ids(&first),
        ["synth/adam/cnn/seed-0", "synth/adam/cnn-b/seed-0"]
    );
    assert!(
        first
            .runs
            .iter()
            .all(|(_, o)| matches!(o, RunOutcome::Finished { from: 0, .. })),
        "{:?}",
        first.runs
    );
    let done_before = snapshot(&out.join("synth/adam/cnn/seed-0"));
    let done_before_b = snapshot(&out.join("synth/adam/cnn-b/seed-0"));

    // The whole grid, interrupted after epoch 1 of each remaining run.
    let stopped = run_grid(
        &grid,
        &ExperimentOptions {
            stop_after: Some(1),
            ..quiet_grid()
        },
    )
    .unwrap();
    let outcomes: Vec<&RunOutcome> = stopped.runs.iter().map(|(_, o)| o).collect();
    assert_eq!(outcomes[0], &RunOutcome::AlreadyFinished);
    assert_eq!(outcomes[1], &RunOutcome::AlreadyFinished);
    assert_eq!(outcomes[2], &RunOutcome::Stopped { epoch: 1 });
    assert_eq!(outcomes[3], &RunOutcome::Stopped { epoch: 1 });
    let seed1 = out.join("synth/adam/cnn/seed-1");
    assert!(!seed1.join("summary.json").exists());
    let epoch1 = metrics(&seed1);
    assert_eq!(epoch1.len(), 1);

    // Again: finished runs untouched, the stopped ones resumed after epoch 1.
    let resumed = run_grid(&grid, &quiet_grid()).unwrap();
    let outcomes: Vec<&RunOutcome> = resumed.runs.iter().map(|(_, o)| o).collect();
    assert_eq!(outcomes[0], &RunOutcome::AlreadyFinished);
    assert!(
        matches!(outcomes[2], RunOutcome::Finished { from: 1, .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[3], RunOutcome::Finished { from: 1, .. }),
        "{outcomes:?}"
    );
    assert_eq!(snapshot(&out.join("synth/adam/cnn/seed-0")), done_before);
    assert_eq!(
        snapshot(&out.join("synth/adam/cnn-b/seed-0")),
        done_before_b
    );
    let rows = metrics(&seed1);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], epoch1[0], "epoch 1 was not trained again");
    assert!(seed1.join("summary.json").is_file() && seed1.join("predictions.csv").is_file());

    // Nothing left to do; the dry run says so.
    let again = run_grid(
        &grid,
        &ExperimentOptions {
            dry_run: true,
            ..quiet_grid()
        },
    )
    .unwrap();
    assert!(
        again
            .runs
            .iter()
            .all(|(_, o)| *o == RunOutcome::AlreadyFinished)
    );
    let listing = assert_success(&visionnet(&[
        "experiment",
        "--grid",
        grid.to_str().unwrap(),
        "--dry-run",
    ]));
    assert_eq!(
        listing.lines().filter(|l| l.ends_with("finished")).count(),
        4,
        "{listing}"
    );

    // The manifest names every run with its labels and the twin.
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("experiment.json")).unwrap()).unwrap();
    assert_eq!(manifest["runs"].as_array().unwrap().len(), 4);
    assert_eq!(manifest["models"][1]["twin"], "cnn");
    assert_eq!(manifest["models"][1]["model"], "cnn");
}

#[test]
fn a_killed_grid_continues_where_it_died() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01);
    let out = tmp.path().join("out");
    let first_run = out.join("synth/adam/cnn/seed-0");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_visionnet"))
        .args(["experiment", "--grid", grid.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !first_run.join("summary.json").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the first run never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Killed (SIGKILL) while the second run starts.
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let first_before = snapshot(&first_run);

    let outcome = run_grid(&grid, &quiet_grid()).unwrap();
    assert_eq!(outcome.runs[0].1, RunOutcome::AlreadyFinished);
    assert!(
        outcome.runs[1..]
            .iter()
            .all(|(_, o)| matches!(o, RunOutcome::Finished { .. })),
        "{:?}",
        outcome.runs
    );
    assert_eq!(snapshot(&first_run), first_before);
    for (run, _) in &outcome.runs {
        assert_eq!(metrics(&run.dir).len(), 2, "{}", run.id);
    }
}

#[test]
fn parallel_processes_give_the_runs_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01);
    let serial = tmp.path().join("serial");
    let parallel = tmp.path().join("parallel");
    // One thread per run both ways, so the float reductions are the same.
    assert_success(&visionnet(&[
        "--threads",
        "1",
        "experiment",
        "--grid",
        grid.to_str().unwrap(),
        "--out",
        serial.to_str().unwrap(),
        "--quiet",
    ]));
    let out = assert_success(&visionnet(&[
        "experiment",
        "--grid",
        grid.to_str().unwrap(),
        "--out",
        parallel.to_str().unwrap(),
        "--quiet",
        "--jobs",
        "2",
        "--threads-per-job",
        "1",
    ]));
    assert!(out.contains("4 trained now, 0 already finished"), "{out}");
    for id in [
        "synth/adam/cnn/seed-0",
        "synth/adam/cnn-b/seed-0",
        "synth/adam/cnn/seed-1",
        "synth/adam/cnn-b/seed-1",
    ] {
        let a: Vec<Prediction> = read_csv(&serial.join(id).join("predictions.csv")).unwrap();
        let b: Vec<Prediction> = read_csv(&parallel.join(id).join("predictions.csv")).unwrap();
        assert_eq!(a, b, "{id}");
        let strip = |rows: Vec<EpochMetrics>| {
            rows.into_iter()
                .map(|r| (r.train_loss, r.val_loss))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(metrics(&serial.join(id))),
            strip(metrics(&parallel.join(id))),
            "{id}"
        );
        // Each child process logged to its own file.
        let log = parallel
            .join("logs")
            .join(format!("{}.log", id.replace('/', "__")));
        assert!(
            fs::read_to_string(&log).unwrap().contains("train --quiet"),
            "{}",
            log.display()
        );
    }
    // Seeds differ: the comparison above could fail.
    let s0: Vec<Prediction> =
        read_csv(&serial.join("synth/adam/cnn/seed-0/predictions.csv")).unwrap();
    let s1: Vec<Prediction> =
        read_csv(&serial.join("synth/adam/cnn/seed-1/predictions.csv")).unwrap();
    assert_ne!(s0, s1);
}

#[test]
fn a_changed_grid_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01);
    run_grid(
        &grid,
        &ExperimentOptions {
            selection: Selection {
                models: Some(vec!["cnn".into()]),
                seeds: Some(vec![0]),
                ..Default::default()
            },
            ..quiet_grid()
        },
    )
    .unwrap();
    let before = snapshot(&tmp.path().join("out"));
    let grid = write_grid(tmp.path(), 0.02);
    let out = visionnet(&["experiment", "--grid", grid.to_str().unwrap(), "--quiet"]);
    assert_clean_failure(
        &out,
        &[
            "seed-0",
            "lr: 0.01 there, 0.02 in the grid",
            "move the run away",
        ],
    );
    assert_eq!(snapshot(&tmp.path().join("out")), before);
}

#[test]
fn the_shipped_grids_are_well_formed() {
    use visionnet::train::experiment::Grid;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grids");
    let load = |name: &str| Grid::load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let labels = |g: &Grid| {
        g.models
            .iter()
            .map(|m| m.set.label.clone())
            .collect::<Vec<_>>()
    };

    // Table 1: the CNN family against the plain CNN; each head-only baseline against its full
    // fine-tune; both datasets; the study's recipe at 20, 5 and 10 epochs.
    let table1 = load("study-table1.toml");
    assert_eq!(
        table1
            .datasets
            .iter()
            .map(|d| d.label.as_str())
            .collect::<Vec<_>>(),
        ["cifar10", "cifar100"]
    );
    for m in &table1.models {
        let expected = match m.set.label.as_str() {
            "cnn" => None,
            "attn1" | "attn2" | "attn3" => Some("cnn".to_string()),
            l if l.ends_with("-head") => Some(l.replace("-head", "-full")),
            l => {
                assert!(l.ends_with("-full"), "{l}");
                None
            }
        };
        assert_eq!(m.twin, expected, "{}", m.set.label);
    }
    let epochs = |g: &Grid, recipe: &str| {
        let r = g.recipes.iter().find(|r| r.label == recipe).unwrap();
        r.flags
            .iter()
            .rev()
            .find(|(k, _)| k == "epochs")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(epochs(&table1, "study").as_deref(), Some("20"));
    assert_eq!(epochs(&table1, "study-5ep").as_deref(), Some("5"));
    assert_eq!(epochs(&table1, "study-10ep").as_deref(), Some("10"));

    // The ablation: 4 attention x 3 lateral x 3 conv choices, each against the plain CNN.
    let ablation = load("ablation.toml");
    let models = labels(&ablation);
    assert_eq!(models.len(), 36);
    assert_eq!(
        models
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        36
    );
    assert!(
        ablation
            .models
            .iter()
            .all(|m| (m.set.label == "cnn") == m.twin.is_none())
    );

    // Optimisers: every setting against Adam 1e-3.
    let optimizers = load("optimizers.toml");
    assert!(
        optimizers
            .models
            .iter()
            .skip(1)
            .all(|m| m.twin.as_deref() == Some("adam-1e-3"))
    );
    load("smoke.toml");
}
