//! `visionnet gradcam`, `visionnet compare` and `visionnet models --layers` end to end, with
//! their bad inputs.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Trains a small model (16x16 images: conv4's map is 2x2) into `run_dir`.
fn train(data: &Path, run_dir: &Path, seed: &str) {
    assert_success(&visionnet(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--val-size",
        "6",
        "--widths",
        "8,8,8,8",
        "--hidden",
        "8,8,8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--seed",
        seed,
        "--quiet",
    ]));
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

#[test]
fn gradcam_writes_maps_overlays_a_labelled_grid_and_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let run = tmp.path().join("run");
    train(&data, &run, "0");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());

    let out = tmp.path().join("maps");
    let stdout = assert_success(&visionnet(&[
        "gradcam",
        "--checkpoint",
        r,
        "--data",
        d,
        "--samples",
        "5",
        "--method",
        "gradcam++",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        stdout.contains("layer conv4") && stdout.contains("2x2 maps"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("gradcam.json")).unwrap()).unwrap();
    assert_eq!(summary["layer"], "conv4");
    assert_eq!(summary["method"], "gradcam++");
    let samples = summary["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 5);
    for s in samples {
        let id = s["id"].as_str().unwrap();
        assert!(s["label"].as_str().unwrap().starts_with("class"));
        let (shape, raw) = read_npy(&out.join(format!("{id}.raw.npy")));
        let (shape2, map) = read_npy(&out.join(format!("{id}.map.npy")));
        assert_eq!(
            (shape.as_slice(), shape2.as_slice()),
            (&[2u64, 2][..], &[2u64, 2][..])
        );
        assert_eq!(map, visionnet::explain::cam::normalise(&raw));
        assert_eq!(
            s["raw_range"][1].as_f64().unwrap() as f32,
            raw.iter().copied().fold(f32::MIN, f32::max)
        );
        let overlay = image::open(out.join(format!("{id}.overlay.png"))).unwrap();
        assert_eq!(
            (overlay.width(), overlay.height()),
            (64, 64),
            "16x16 shown 4x"
        );
    }
    let grid = image::open(out.join("grid.png")).unwrap().to_rgb8();
    assert!(
        grid.width() > 4 * 2 * 64,
        "four samples per row, input and overlay each"
    );
    let coloured = grid
        .pixels()
        .filter(|p| (p[0] > 150 && p[1] < 80) || (p[1] > 100 && p[0] < 60 && p[2] < 60))
        .count();
    assert!(coloured > 30, "no red or green captions on the grid");

    // Files: one at the model's size in a class folder (labelled), one to be resized.
    let small = first_test_image(&data, "class1");
    let big = tmp.path().join("big.png");
    write_flat_png(&big, 40, 30, 90);
    let out2 = tmp.path().join("files");
    let output = visionnet(&[
        "gradcam",
        "--checkpoint",
        r,
        "--layer",
        "conv2",
        "--class",
        "class2",
        "--method",
        "hirescam",
        "--out",
        out2.to_str().unwrap(),
        small.to_str().unwrap(),
        big.to_str().unwrap(),
    ]);
    assert_success(&output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("big.png resized"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(out2.join("gradcam.json")).unwrap()).unwrap();
    assert_eq!(summary["map_shape"], serde_json::json!([8, 8]));
    assert_eq!(summary["samples"][0]["label"], "class1");
    assert_eq!(summary["samples"][1]["label"], serde_json::Value::Null);
    assert!(
        summary["samples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["target"] == "class2")
    );

    // Bad input: each refused with the problem named, and nothing written.
    let out3 = tmp.path().join("bad");
    let o3 = out3.to_str().unwrap();
    let missing = tmp.path().join("missing.png");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--layer", "fc1", small.to_str().unwrap()],
            vec!["--layer", "no layer 'fc1'", "conv1, conv2, conv3, conv4"],
        ),
        (
            vec!["--no-resize", big.to_str().unwrap()],
            vec!["big.png", "40x30", "16x16", "--no-resize"],
        ),
        (
            vec!["--class", "horse", small.to_str().unwrap()],
            vec!["--class", "'horse'", "class0, class1, class2"],
        ),
        (
            vec!["--class", "label", big.to_str().unwrap()],
            vec!["--class", "known label"],
        ),
        (vec![missing.to_str().unwrap()], vec!["missing.png"]),
        (vec!["--data", d, "--samples", "0"], vec!["--samples"]),
        (
            vec!["--method", "gradcam,deepcam", small.to_str().unwrap()],
            vec!["deepcam", "scorecam", "ablationcam", "randomcam"],
        ),
    ];
    for (args, needles) in cases {
        let mut full = vec!["gradcam", "--checkpoint", r, "--out", o3];
        full.extend(args.iter());
        assert_clean_failure(&visionnet(&full), &needles);
        assert!(!out3.exists(), "{args:?} wrote its output folder");
    }
    // Metrics on one image: the means come without an interval, and the output says why.
    let one = tmp.path().join("one");
    let stdout = assert_success(&visionnet(&[
        "gradcam",
        "--checkpoint",
        r,
        "--data",
        d,
        "--samples",
        "1",
        "--method",
        "gradcam",
        "--metrics",
        "--out",
        one.to_str().unwrap(),
    ]));
    let all = format!(
        "{stdout}{}",
        std::fs::read_to_string(one.join("gradcam.json")).unwrap()
    );
    assert!(all.contains("an interval needs at least 2 images"), "{all}");
    // A used output folder is refused and left as it was.
    let before = snapshot(&out);
    let output = visionnet(&[
        "gradcam",
        "--checkpoint",
        r,
        "--out",
        out.to_str().unwrap(),
        small.to_str().unwrap(),
    ]);
    assert_clean_failure(&output, &["--out", "not empty"]);
    assert_eq!(snapshot(&out), before);
}

#[test]
fn compare_counts_disagreements_tests_them_and_draws_both_galleries() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let (run_a, run_b) = (tmp.path().join("plain"), tmp.path().join("other"));
    train(&data, &run_a, "1");
    train(&data, &run_b, "2");
    let out = tmp.path().join("cmp");
    let stdout = assert_success(&visionnet(&[
        "compare",
        "--checkpoint",
        run_a.to_str().unwrap(),
        "--checkpoint",
        run_b.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--samples",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--layer",
        "conv3",
        "--layer",
        "conv4",
    ]));
    assert!(stdout.contains("McNemar"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("compare.json")).unwrap()).unwrap();
    let t = &report["agreement"];
    let count = |k: &str| t[k].as_u64().unwrap() as usize;
    assert_eq!(
        count("both_right") + count("a_only") + count("b_only") + count("both_wrong"),
        30
    );
    assert_eq!(report["models"][0]["name"], "plain");
    assert_eq!(
        (
            report["models"][0]["layer"].as_str(),
            report["models"][1]["layer"].as_str()
        ),
        (Some("conv3"), Some("conv4"))
    );
    let expected = visionnet::stats::mcnemar(count("a_only") as u64, count("b_only") as u64);
    assert_eq!(
        report["mcnemar"]["p_value"].as_f64().unwrap(),
        expected.p_value
    );
    let csv = fs::read_to_string(out.join("disagreements.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + count("a_only") + count("b_only"));
    for (g, kind) in ["a-right-b-wrong", "b-right-a-wrong"].iter().enumerate() {
        let gallery = &report["galleries"][g];
        assert_eq!(gallery["kind"], *kind);
        let n = gallery["count"].as_u64().unwrap() as usize;
        let shown = gallery["shown"].as_array().unwrap();
        assert_eq!(shown.len(), n.min(3));
        for s in shown {
            let (a_right, b_right) = (
                s["predicted"][0] == s["label"],
                s["predicted"][1] == s["label"],
            );
            assert_eq!((a_right, b_right), (g == 0, g == 1), "{s}");
            for m in 0..2 {
                assert!(Path::new(s["files"][m]["raw"].as_str().unwrap()).is_file());
            }
        }
        let png = image::open(out.join(format!("{kind}.png"))).unwrap();
        assert!(png.width() > 100 && png.height() > 50);
    }

    // One checkpoint, three layers, unknown layer, and an old output folder are refused.
    let (a, b, d) = (
        run_a.to_str().unwrap(),
        run_b.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    let fresh = tmp.path().join("fresh");
    let f = fresh.to_str().unwrap();
    assert_clean_failure(
        &visionnet(&["compare", "--checkpoint", a, "--data", d, "--out", f]),
        &["--checkpoint", "exactly two"],
    );
    assert_clean_failure(
        &visionnet(&[
            "compare",
            "--checkpoint",
            a,
            "--checkpoint",
            b,
            "--data",
            d,
            "--out",
            f,
            "--layer",
            "conv1",
            "--layer",
            "conv2",
            "--layer",
            "conv3",
        ]),
        &["--layer", "3 layers"],
    );
    assert_clean_failure(
        &visionnet(&[
            "compare",
            "--checkpoint",
            a,
            "--checkpoint",
            b,
            "--data",
            d,
            "--out",
            f,
            "--layer",
            "attn",
        ]),
        &["--layer", "'attn'", "conv1"],
    );
    // A model of other classes and input size (4 classes of 24x24 images) is refused, naming
    // both checkpoints.
    let other_data = tmp.path().join("other-data");
    write_image_folder(&other_data, 4, 10, 24);
    let run_c = tmp.path().join("other-size");
    train(&other_data, &run_c, "3");
    let c = run_c.to_str().unwrap();
    let output = visionnet(&[
        "compare",
        "--checkpoint-a",
        a,
        "--checkpoint-b",
        b,
        c,
        "--data",
        d,
        "--out",
        f,
    ]);
    assert_clean_failure(&output, &["other-size", "plain", "compare models of one"]);
    assert!(!fresh.exists());
    let before = snapshot(&out);
    assert_clean_failure(
        &visionnet(&[
            "compare",
            "--checkpoint",
            a,
            "--checkpoint",
            b,
            "--data",
            d,
            "--out",
            out.to_str().unwrap(),
        ]),
        &["not empty"],
    );
    assert_eq!(snapshot(&out), before);
}

#[test]
fn models_lists_the_layers_gradcam_can_explain() {
    let stdout = assert_success(&visionnet(&["models", "--layers", "cnn"]));
    for line in ["conv1", "32 x 32 x 32", "conv3", "128 x 8 x 8"] {
        assert!(stdout.contains(line), "{stdout}");
    }
    let default_line = stdout.lines().find(|l| l.contains("default")).unwrap();
    assert!(
        default_line.starts_with("conv4") && default_line.contains("256 x 4 x 4"),
        "{stdout}"
    );
    let stdout = assert_success(&visionnet(&[
        "models",
        "--layers",
        "cnn",
        "--widths",
        "8,16",
        "--pool",
        "true,false",
        "--json",
    ]));
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([
            {"layer": "conv1", "shape": [8, 32, 32], "default": false},
            {"layer": "conv2", "shape": [16, 16, 16], "default": true},
        ])
    );
    assert_clean_failure(
        &visionnet(&["models", "--layers", "nosuch"]),
        &["unknown model 'nosuch'", "cnn"],
    );
}
