//! The recipe options end to end (EMA, lookahead, cutout, flip TTA, no decay on BatchNorm and
//! bias parameters): a run with all of them resumed after its first epoch ends exactly as an
//! uninterrupted one, its checkpoints carry the averaged and slow weights, and the TTA figures
//! are reported beside the plain ones.

mod common;

use common::*;
use visionnet::io::{read_csv, read_json};
use visionnet::train::checkpoint;
use visionnet::train::metrics::{Prediction, Summary};
use visionnet::train::{RunEnd, RunOptions, resume, train};

#[test]
fn a_run_with_every_recipe_option_resumes_exactly_and_reports_tta() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 4, 40, 16);
    // 144 training images, 9 steps an epoch: lookahead's 4-step cycle straddles the
    // checkpoints, so its slow weights must come back from them.
    let recipe = [
        "--ema",
        "0.9",
        "--lookahead-k",
        "4",
        "--cutout",
        "6",
        "--tta-flip",
        "true",
        "--no-decay-bn-bias",
        "true",
    ];
    let args = |run: &str, extra: &[&str]| {
        let dir = tmp.path().join(run);
        let mut a = vec![
            "--data",
            data.to_str().unwrap(),
            "--val-size",
            "16",
            "--widths",
            "8,8,16,16",
            "--hidden",
            "16,16,16",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--seed",
            "4",
        ];
        a.extend_from_slice(extra);
        let dir = dir.to_str().unwrap().to_string();
        let mut c = train_config(&a);
        c.run_dir = Some(dir.into());
        c
    };
    let straight = train(args("straight", &recipe), &quiet_run()).unwrap();
    let stopped = train(
        args("resumed", &recipe),
        &RunOptions {
            stop_after: Some(1),
            ..quiet_run()
        },
    )
    .unwrap();
    assert!(matches!(stopped.end, RunEnd::Stopped(1)));
    let ckpt = checkpoint::latest(&tmp.path().join("resumed"))
        .unwrap()
        .unwrap();
    assert!(
        ckpt.join(checkpoint::EMA_FILE).is_file()
            && ckpt.join(checkpoint::LOOKAHEAD_FILE).is_file()
    );
    let resumed = resume(&tmp.path().join("resumed"), &quiet_run()).unwrap();
    assert_eq!(
        without_timing(&straight.metrics),
        without_timing(&resumed.metrics)
    );
    for file in ["predictions.csv", "predictions-tta.csv"] {
        let p1: Vec<Prediction> = read_csv(&tmp.path().join("straight").join(file)).unwrap();
        let p2: Vec<Prediction> = read_csv(&tmp.path().join("resumed").join(file)).unwrap();
        assert_eq!(p1, p2, "{file}");
        assert_eq!(p1.len(), 80);
    }
    // The run's model (what predict and explain load) is the moving average.
    assert_eq!(
        final_logits(&tmp.path().join("straight")),
        final_logits(&tmp.path().join("resumed"))
    );

    // TTA beside the plain figures: every epoch's validation and the test set.
    assert!(
        straight
            .metrics
            .iter()
            .all(|m| m.val_accuracy_tta.is_some() && m.val_accuracy.is_some())
    );
    let summary: Summary = read_json(&tmp.path().join("straight/summary.json")).unwrap();
    assert_eq!(summary.weights, "ema");
    let tta = summary.test_tta.as_ref().expect("test_tta");
    assert_eq!(tta.images, summary.test.images);
    let p: Vec<Prediction> = read_csv(&tmp.path().join("straight/predictions-tta.csv")).unwrap();
    let correct = p.iter().filter(|p| p.label == p.prediction).count();
    assert_eq!(correct as f64 / p.len() as f64, tta.accuracy);

    // The options change the run (the comparisons above could fail), and without them the
    // summary says so.
    let plain = train(args("plain", &[]), &quiet_run()).unwrap();
    assert_ne!(
        without_timing(&plain.metrics),
        without_timing(&straight.metrics)
    );
    let RunEnd::Finished(s) = plain.end else {
        panic!("not finished")
    };
    assert!(s.test_tta.is_none() && s.weights == "last");
    assert!(plain.metrics.iter().all(|m| m.val_accuracy_tta.is_none()));
    let ckpt = checkpoint::latest(&tmp.path().join("plain"))
        .unwrap()
        .unwrap();
    assert!(
        !ckpt.join(checkpoint::EMA_FILE).exists()
            && !ckpt.join(checkpoint::LOOKAHEAD_FILE).exists()
    );
}

#[test]
fn a_cutout_larger_than_the_images_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 2, 10, 16);
    let run_dir = tmp.path().join("run");
    let cfg = train_config(&[
        "--data",
        data.to_str().unwrap(),
        "--val-size",
        "4",
        "--batch-size",
        "4",
        "--cutout",
        "17",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    let err = train(cfg, &quiet_run()).unwrap_err().to_string();
    assert!(err.contains("--cutout") && err.contains("16x16"), "{err}");
    assert!(!run_dir.exists());
}
