//! Real training: the shared CIFAR-10 copy is learnt far above chance; a resumed run equals an
//! uninterrupted one; a diverging run stops cleanly and keeps its last good checkpoint.

mod common;

use std::fs;

use burn::prelude::*;
use common::*;
use visionnet::io::{read_csv, read_json};
use visionnet::train::checkpoint;
use visionnet::train::manifest::RunManifest;
use visionnet::train::metrics::{EpochMetrics, Prediction, Summary};
use visionnet::train::tensorboard::{EventKind, read_events};
use visionnet::train::{RunEnd, RunOptions, resume, train};

#[test]
fn learns_the_shared_cifar10_far_above_chance() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let data = shared_cifar10();
    let cfg = train_config(&[
        "--data",
        data.to_str().unwrap(),
        "--train-limit",
        "3000",
        "--val-size",
        "500",
        "--widths",
        "16,32,64,64",
        "--hidden",
        "128,64,32",
        "--epochs",
        "4",
        "--batch-size",
        "64",
        "--seed",
        "3",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    let outcome = train(cfg, &quiet_run()).unwrap();
    let RunEnd::Finished(summary) = outcome.end else {
        panic!("not finished")
    };
    // Chance is 10%; 3,000 images and 4 epochs of this small CNN reach about 45%.
    assert!(
        summary.test.accuracy > 0.35,
        "test accuracy {}",
        summary.test.accuracy
    );
    assert_eq!(summary.test.images, 10_000);
    assert_eq!(
        summary.test.confusion.iter().flatten().sum::<usize>(),
        10_000
    );
    assert_eq!(
        summary
            .test
            .per_class
            .iter()
            .map(|c| c.count)
            .sum::<usize>(),
        10_000
    );

    // Files of the run directory.
    let rows: Vec<EpochMetrics> = read_csv(&run_dir.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows[3].train_loss < rows[0].train_loss);
    assert!(
        rows.iter()
            .all(|r| r.val_accuracy.is_some() && r.images_per_second > 0.0)
    );
    let predictions: Vec<Prediction> = read_csv(&run_dir.join("predictions.csv")).unwrap();
    assert_eq!(predictions.len(), 10_000);
    let correct = predictions
        .iter()
        .filter(|p| p.label == p.prediction)
        .count();
    assert_eq!(correct as f64 / 10_000.0, summary.test.accuracy);
    let written: Summary = read_json(&run_dir.join("summary.json")).unwrap();
    assert_eq!(written.test, summary.test);
    let manifest: RunManifest = read_json(&run_dir.join("run.json")).unwrap();
    assert_eq!(manifest.config.epochs, 4);
    assert_eq!(manifest.data.train_images, 3000);
    assert_eq!(manifest.data.val_images, 500);
    assert_eq!(manifest.data.fingerprints[0].len(), 64);
    assert_eq!(manifest.backend, "flex");

    // TensorBoard scalars, one summary per epoch.
    let tb = fs::read_dir(run_dir.join("tensorboard"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        tb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("events.out.tfevents.")
    );
    let events = read_events(&tb).unwrap();
    let accs: Vec<(i64, f32)> = events
        .iter()
        .filter_map(|e| match &e.what {
            Some(EventKind::Summary(s)) => s
                .value
                .iter()
                .find(|v| v.tag == "val/accuracy")
                .map(|v| (e.step, v.simple_value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        accs.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(accs[3].1, rows[3].val_accuracy.unwrap() as f32);
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 4, 40, 16);
    let args = |run: &str| {
        train_config(&[
            "--data",
            data.to_str().unwrap(),
            "--val-size",
            "16",
            "--widths",
            "8,8,16,16",
            "--hidden",
            "16,16,16",
            "--dropout",
            "0.2",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--seed",
            "11",
            "--run-dir",
            tmp.path().join(run).to_str().unwrap(),
        ])
    };
    let straight = train(args("straight"), &quiet_run()).unwrap();
    let stopped = train(
        args("resumed"),
        &RunOptions {
            stop_after: Some(1),
            ..quiet_run()
        },
    )
    .unwrap();
    assert!(matches!(stopped.end, RunEnd::Stopped(1)));
    assert_eq!(stopped.metrics.len(), 1);
    assert!(!tmp.path().join("resumed/summary.json").exists());
    let resumed = resume(&tmp.path().join("resumed"), &quiet_run()).unwrap();

    assert_eq!(
        without_timing(&straight.metrics),
        without_timing(&resumed.metrics)
    );
    let p1: Vec<Prediction> = read_csv(&tmp.path().join("straight/predictions.csv")).unwrap();
    let p2: Vec<Prediction> = read_csv(&tmp.path().join("resumed/predictions.csv")).unwrap();
    assert_eq!(p1, p2);
    assert_eq!(
        final_logits(&tmp.path().join("straight")),
        final_logits(&tmp.path().join("resumed"))
    );
    // The checkpoints written: only the newest is kept.
    let kept = checkpoint::list(&tmp.path().join("resumed")).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, 3);

    // A different seed gives a different run (the comparison above can fail).
    let mut other = args("other");
    other.seed = 12;
    let other = train(other, &quiet_run()).unwrap();
    assert_ne!(
        without_timing(&other.metrics),
        without_timing(&straight.metrics)
    );
}

#[test]
fn a_diverging_run_names_epoch_and_step_and_keeps_its_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 30, 16);
    let run_dir = tmp.path().join("run");
    let cfg = train_config(&[
        "--data",
        data.to_str().unwrap(),
        "--val-size",
        "9",
        "--widths",
        "8,8,8,8",
        "--hidden",
        "8,8,8",
        "--optimizer",
        "sgd",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    train(
        cfg,
        &RunOptions {
            stop_after: Some(1),
            ..quiet_run()
        },
    )
    .unwrap();
    let checkpoint_before = snapshot(&run_dir.join("checkpoints"));
    // The user raises the learning rate absurdly and resumes: the loss overflows in epoch 2.
    let manifest_path = run_dir.join("run.json");
    let text = fs::read_to_string(&manifest_path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["config"]["lr"] = serde_json::json!(1e30);
    manifest["config"]["schedule"] = serde_json::json!("constant");
    fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();

    let err = resume(&run_dir, &quiet_run()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("epoch 2, step"), "{message}");
    assert!(message.contains("epoch-0001"), "{message}");
    assert!(matches!(err, visionnet::Error::Diverged { epoch: 2, .. }));
    // The last good checkpoint is untouched and still loads; the metrics keep epoch 1 only.
    assert_eq!(snapshot(&run_dir.join("checkpoints")), checkpoint_before);
    checkpoint::load_model(&run_dir, &Device::flex()).unwrap();
    let rows: Vec<EpochMetrics> = read_csv(&run_dir.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 1);
}
