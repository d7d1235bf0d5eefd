//! The report, built from real (tiny) runs on synthetic data: its numbers recomputed here from
//! the run files, its figures decoded, its HTML self-contained.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use visionnet::io::{read_csv, read_json};
use visionnet::report::{ReportOptions, StatsOptions, build};
use visionnet::train::experiment::{ExperimentOptions, Selection, run_grid};
use visionnet::train::metrics::{EpochMetrics, Prediction, Summary};

fn accuracy(run: &Path) -> f64 {
    let s: Summary = read_json(&run.join("summary.json")).unwrap();
    100.0 * s.test.accuracy
}

fn correct(run: &Path) -> Vec<bool> {
    let mut p: Vec<Prediction> = read_csv(&run.join("predictions.csv")).unwrap();
    p.sort_by_key(|p| p.index);
    p.iter().map(|p| p.label == p.prediction).collect()
}

/// Fixture: seeds 0 and 1 of both models finished, seed 2 of cnn stopped after one epoch.
fn fixture(dir: &Path) -> std::path::PathBuf {
    let grid = TinyGrid {
        description: "report fixture",
        out: "runs",
        seeds: vec![0, 1, 2],
        epochs: 3,
        narrow: [4, 4, 8, 8],
        per_class: 20,
        ..Default::default()
    }
    .write(dir);
    let seeds = |s: Vec<u64>| Selection {
        seeds: Some(s),
        ..Default::default()
    };
    run_grid(
        &grid,
        &ExperimentOptions {
            selection: seeds(vec![0, 1]),
            ..quiet_grid()
        },
    )
    .unwrap();
    let partial = Selection {
        seeds: Some(vec![2]),
        models: Some(vec!["cnn".into()]),
        ..Default::default()
    };
    run_grid(
        &grid,
        &ExperimentOptions {
            selection: partial,
            stop_after: Some(1),
            ..quiet_grid()
        },
    )
    .unwrap();
    dir.join("runs")
}

#[test]
fn the_report_of_a_grid_shows_its_runs_numbers_curves_and_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = fixture(tmp.path());
    let options = ReportOptions {
        out: None,
        stats: StatsOptions {
            replicates: 2000,
            ..Default::default()
        },
    };
    let files = build(&runs, &options).unwrap();
    assert_eq!(files.dir, runs.join("report"));
    assert_eq!(files.runs, (5, 4));
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files.json).unwrap()).unwrap();

    // Table 1: mean and sample std over the finished seeds, the unfinished one counted apart.
    let run = |model: &str, seed: u64| runs.join(format!("synth/adam/{model}/seed-{seed}"));
    let (a0, a1) = (accuracy(&run("cnn", 0)), accuracy(&run("cnn", 1)));
    let rows = report["accuracy"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["model"], "cnn");
    assert_eq!(rows[1]["model"], "cnn-b");
    let cell = &rows[0]["cells"][0];
    assert!((cell["mean"].as_f64().unwrap() - (a0 + a1) / 2.0).abs() < 1e-9);
    assert!((cell["std"].as_f64().unwrap() - (a0 - a1).abs() / 2f64.sqrt()).abs() < 1e-9);
    assert_eq!(cell["n"], 2);
    assert_eq!(rows[0]["unfinished"][0], 1);
    assert_eq!(rows[1]["unfinished"][0], 0);
    assert_eq!(rows[0]["epochs"], 3);

    // cnn-b against cnn: discordant counts and difference recomputed from predictions.csv.
    let cmp = &report["comparisons"].as_array().unwrap()[0];
    assert_eq!(report["comparisons"].as_array().unwrap().len(), 1);
    assert_eq!(
        (cmp["model"].as_str(), cmp["twin"].as_str()),
        (Some("cnn-b"), Some("cnn"))
    );
    assert_eq!(cmp["seeds"], serde_json::json!([0, 1]));
    let (mut b, mut c, mut diff) = (0u64, 0u64, 0.0);
    for seed in [0, 1] {
        let (mine, theirs) = (correct(&run("cnn-b", seed)), correct(&run("cnn", seed)));
        b += mine
            .iter()
            .zip(&theirs)
            .filter(|(m, t)| **m && !**t)
            .count() as u64;
        c += mine
            .iter()
            .zip(&theirs)
            .filter(|(m, t)| !**m && **t)
            .count() as u64;
        diff += (accuracy(&run("cnn-b", seed)) - accuracy(&run("cnn", seed))) / 200.0;
    }
    assert_eq!(cmp["discordant"]["b"], b);
    assert_eq!(cmp["discordant"]["c"], c);
    let d = cmp["difference"]["difference"].as_f64().unwrap();
    assert!((d - diff).abs() < 1e-9, "{d} vs {diff}");
    let (low, high) = (
        cmp["difference"]["low"].as_f64().unwrap(),
        cmp["difference"]["high"].as_f64().unwrap(),
    );
    assert!(low <= d && d <= high);
    assert_eq!(cmp["difference"]["replicates"], 2000);

    // What the verdict is worth. One comparison: Holm leaves its p-value as it is.
    assert_eq!(cmp["twin_kind"], "plain");
    assert_eq!(cmp["holm_p"], cmp["difference"]["p_value"]);
    // The sign-flip test over the two seeds: 4 patterns, at best p = 2/4.
    let per_seed: Vec<f64> = [0, 1]
        .iter()
        .map(|&s| accuracy(&run("cnn-b", s)) - accuracy(&run("cnn", s)))
        .collect();
    let flip = visionnet::stats::seed_test::sign_flip(&per_seed);
    assert_eq!(cmp["seed_test"]["min_p_value"], 0.5);
    assert!((cmp["seed_test"]["p_value"].as_f64().unwrap() - flip.p_value).abs() < 1e-12);
    // Two seeds: a spread to plan with, and the seed std of each model beside its binomial SE.
    let std = (per_seed[0] - per_seed[1]).abs() / 2f64.sqrt();
    assert!((cmp["power"]["diff_std"].as_f64().unwrap() - std).abs() < 1e-9);
    assert!(
        cmp["variance"][0]["seed_std"].as_f64().is_some()
            && cmp["variance"][0]["binomial_se"].as_f64().unwrap() > 0.0
    );

    // Costs: parameters as the model table counts them; seconds per epoch, the median of all epochs.
    let costs = report["costs"].as_array().unwrap();
    let cnn_cost = costs.iter().find(|c| c["model"] == "cnn").unwrap();
    let spec = visionnet::model::ModelSpec {
        name: "cnn".into(),
        options: visionnet::model::ModelOptions {
            widths: vec![8, 8, 8, 8],
            hidden: vec![8, 8, 8],
            ..Default::default()
        },
    };
    let expected =
        visionnet::model::ModelCost::of(&spec, 3, [3, 16, 16], &burn::tensor::Device::flex())
            .unwrap();
    assert_eq!(cnn_cost["params"], expected.params);
    assert_eq!(cnn_cost["flops"], expected.flops);
    let mut secs: Vec<f64> = [0, 1, 2]
        .iter()
        .flat_map(|s| read_csv::<EpochMetrics>(&run("cnn", *s).join("metrics.csv")).unwrap())
        .map(|m| m.seconds)
        .collect();
    assert_eq!(secs.len(), 7);
    secs.sort_by(f64::total_cmp);
    let median = secs[3];
    assert!((cnn_cost["seconds_per_epoch"].as_f64().unwrap() - median).abs() < 1e-9);

    // Curves: one figure (one dataset, one recipe), both models, mean over seeds per epoch.
    let figs = report["figures"].as_array().unwrap();
    assert_eq!(figs.len(), 1);
    assert_eq!(figs[0]["stem"], "curves-synth-adam");
    assert_eq!(figs[0]["models"][0]["seeds"], 3);
    assert_eq!(
        figs[0]["models"][0]["val_accuracy"]["epochs"],
        serde_json::json!([1, 2, 3])
    );
    let epoch3: Vec<f64> = [0, 1]
        .iter()
        .map(|s| {
            100.0
                * read_csv::<EpochMetrics>(&run("cnn", *s).join("metrics.csv")).unwrap()[2]
                    .train_accuracy
        })
        .collect();
    let reported = figs[0]["models"][0]["train_accuracy"]["mean"][2]
        .as_f64()
        .unwrap();
    assert!(
        (reported - (epoch3[0] + epoch3[1]) / 2.0).abs() < 1e-9,
        "epoch 3 is the mean of the two seeds that reached it"
    );

    // The PNG: the right size, white background, the palette's first colour (a line) and dark
    // text pixels (the font works).
    let png = image::open(files.dir.join("curves-synth-adam.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(png.dimensions(), (1200, 860));
    let pixels: Vec<[u8; 3]> = png.pixels().map(|p| p.0).collect();
    assert_eq!(pixels[0], [255, 255, 255]);
    assert!(
        pixels.iter().filter(|p| **p == [31, 119, 180]).count() > 500,
        "no model-1 line"
    );
    assert!(
        pixels.iter().filter(|p| p.iter().all(|&v| v < 60)).count() > 2000,
        "no text"
    );
    let svg = fs::read_to_string(files.dir.join("curves-synth-adam.svg")).unwrap();
    assert!(
        svg.contains("<svg")
            && svg.contains("validation accuracy")
            && svg.contains("cnn-b (2 seeds)")
    );

    // HTML: self-contained (figures inline, nothing fetched), with the table and statistics.
    let html = fs::read_to_string(&files.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 1);
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_ns.contains("http")
            && !without_ns.contains(" src=")
            && !without_ns.contains("<link"),
        "external reference"
    );
    assert!(html.contains("report fixture"));
    assert!(html.contains(&format!("{:.2} ± ", (a0 + a1) / 2.0)));
    assert!(html.contains("(n=2) +1 running"));
    assert!(
        html.contains("Seed test p") && html.contains("Holm verdict") && html.contains("cnn-b")
    );

    // Markdown: the same table, the figures linked.
    let md = fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("| Model | Recipe | Epochs | synth |"), "{md}");
    assert!(md.contains("](curves-synth-adam.png)"));
    assert!(md.contains("synth/adam/cnn/seed-2 | 2 | 1/3 |"), "{md}");
    assert!(files.table.contains("| cnn-b | adam | 3 |"));

    // The command line prints the table and writes to --out.
    let elsewhere = tmp.path().join("elsewhere");
    let out = assert_success(&visionnet(&[
        "report",
        runs.to_str().unwrap(),
        "--out",
        elsewhere.to_str().unwrap(),
        "--bootstrap",
        "500",
    ]));
    assert!(
        out.contains("| cnn | adam | 3 |") && out.contains("report.html"),
        "{out}"
    );
    assert!(
        elsewhere.join("report.html").is_file()
            && elsewhere.join("curves-synth-adam.png").is_file()
    );
}

#[test]
fn runs_without_a_grid_are_labelled_from_their_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 16, 16);
    let runs = tmp.path().join("runs");
    for (name, widths, seed) in [
        ("a", "8,8,8,8", "0"),
        ("b", "8,8,8,8", "1"),
        ("c", "4,8,8,8", "0"),
    ] {
        assert_success(&visionnet(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--run-dir",
            runs.join(name).to_str().unwrap(),
            "--val-size",
            "6",
            "--widths",
            widths,
            "--hidden",
            "8,8,8",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--seed",
            seed,
            "--quiet",
        ]));
    }
    let files = build(
        &runs,
        &ReportOptions {
            out: None,
            stats: StatsOptions {
                replicates: 200,
                ..Default::default()
            },
        },
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files.json).unwrap()).unwrap();
    let models: Vec<&str> = report["accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["cnn(widths=8,8,8,8)", "cnn(widths=4,8,8,8)"]);
    assert_eq!(report["datasets"], serde_json::json!(["data"]));
    assert_eq!(report["accuracy"][0]["cells"][0]["n"], 2);
    assert_eq!(report["accuracy"][0]["recipe"], "recipe");
}

#[test]
fn a_missing_runs_folder_is_a_clear_error() {
    let out = visionnet(&["report", "/nonexistent/runs"]);
    assert_clean_failure(&out, &["/nonexistent/runs", "no such runs folder"]);
}
