//! The command line end to end: train with a config file, eval, predict, models, data inspect,
//! data fetch against a local HTTP server, and every bad input of the foundation issue.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::*;
use visionnet::io::read_json;
use visionnet::train::manifest::RunManifest;

/// Flags of a small, fast training run on `data` into `run_dir`.
fn tiny_run<'a>(data: &'a str, run_dir: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--run-dir",
        run_dir,
        "--val-size",
        "12",
        "--widths",
        "8,8,8,8",
        "--hidden",
        "8,8,8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--quiet",
    ]
}

#[test]
fn config_file_keys_are_flags_and_the_command_line_overrides_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let config = tmp.path().join("recipe.toml");
    fs::write(
        &config,
        "optimizer = \"adam\"\nlr = 0.002\nepochs = 5\nwidths = [8, 8, 8, 8]\nhidden = [8, 8, 8]\n\
         crop-padding = 0\nflip = false\npool = [true, true, true, true]\ndata = \"data\"\n",
    )
    .unwrap();
    let run_dir = tmp.path().join("run");
    // `data` is relative to the file's folder (as in a grid recipe), not the working directory.
    let out = visionnet(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "1",
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--val-size",
        "6",
        "--batch-size",
        "8",
        "--quiet",
    ]);
    assert_success(&out);
    let manifest: RunManifest = read_json(&run_dir.join("run.json")).unwrap();
    let c = &manifest.config;
    assert_eq!(
        (c.epochs, c.lr, c.crop_padding, c.flip),
        (1, 0.002, 0, false)
    );
    assert_eq!(format!("{:?}", c.optimizer), "Adam");
    assert_eq!(c.model_options.widths, vec![8, 8, 8, 8]);
    assert_eq!(
        c.data.as_deref(),
        Some(data.canonicalize().unwrap().as_path())
    );

    // A key that is no flag, and a bad value, are blamed on the file.
    fs::write(&config, "learning_rate = 0.1\n").unwrap();
    let out = visionnet(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, &["recipe.toml", "unknown key 'learning_rate'"]);
    fs::write(&config, "epochs = 0\n").unwrap();
    let out = visionnet(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, &["recipe.toml", "--epochs"]);
}

#[test]
fn eval_predict_models_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let run_dir = tmp.path().join("run");
    assert_success(&visionnet(&tiny_run(
        data.to_str().unwrap(),
        run_dir.to_str().unwrap(),
    )));

    let out = assert_success(&visionnet(&[
        "eval",
        "--checkpoint",
        run_dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]));
    assert!(
        out.contains("test accuracy") && out.contains("class2"),
        "{out}"
    );
    let json = assert_success(&visionnet(&[
        "eval",
        "--checkpoint",
        run_dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]));
    let evaluation: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(evaluation["images"], 30);

    // Predict on one image at the model's size and one that must be resized.
    let small = first_test_image(&data, "class1");
    let big = tmp.path().join("big.png");
    write_flat_png(&big, 40, 30, 200);
    let out = visionnet(&[
        "predict",
        "--checkpoint",
        run_dir.to_str().unwrap(),
        small.to_str().unwrap(),
        big.to_str().unwrap(),
    ]);
    let stdout = assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("big.png resized to 16x16"));
    // Three classes: three ranked lines per image, each with a class name.
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("%")).collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(lines.iter().all(|l| l.contains("class")));

    let out = assert_success(&visionnet(&["models"]));
    assert!(out.contains("cnn") && out.contains("FLOPs"), "{out}");
    let out = assert_success(&visionnet(&["data", "inspect", data.to_str().unwrap()]));
    assert!(
        out.contains("train      60 images") || out.contains("train     60"),
        "{out}"
    );
    assert!(out.contains("class0") && out.contains("16x16"), "{out}");
}

#[test]
fn bad_numbers_and_names_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let d = data.to_str().unwrap();
    let run_dir = tmp.path().join("run");
    let r = run_dir.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--epochs", "0"], &["--epochs"]),
        (&["--epochs", "-3"], &["--epochs"]),
        (&["--epochs", "many"], &["--epochs", "many"]),
        (&["--batch-size", "0"], &["--batch-size"]),
        (&["--batch-size", "x"], &["--batch-size"]),
        (&["--lr", "0"], &["--lr"]),
        (&["--lr", "-0.1"], &["--lr"]),
        (&["--lr", "fast"], &["--lr", "fast"]),
        (&["--lr", "NaN"], &["--lr"]),
        (&["--optimizer", "adagrad"], &["--optimizer", "adagrad"]),
        (&["--model", "resnet9000"], &["unknown model 'resnet9000'"]),
        (&["--batch-size", "1000"], &["--batch-size", "1000"]),
        (&["--pool", "true,true"], &["--pool"]),
    ];
    for (extra, needles) in cases {
        let mut args = vec![
            "train",
            "--data",
            d,
            "--run-dir",
            r,
            "--val-size",
            "6",
            "--batch-size",
            "16",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        assert_clean_failure(&visionnet(&args), needles);
        assert!(!run_dir.exists(), "{extra:?} created the run directory");
    }
    let out = visionnet(&[
        "train",
        "--data",
        tmp.path().join("missing").to_str().unwrap(),
        "--run-dir",
        r,
    ]);
    assert_clean_failure(&out, &["missing", "no such directory"]);
    fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let out = visionnet(&[
        "train",
        "--data",
        tmp.path().join("empty").to_str().unwrap(),
        "--run-dir",
        r,
    ]);
    assert_clean_failure(&out, &["empty", "holds no dataset"]);
    assert!(!run_dir.exists());
}

#[test]
fn an_existing_run_is_never_overwritten_and_resume_keeps_its_config() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let run_dir = tmp.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run_dir.to_str().unwrap());
    assert_success(&visionnet(&tiny_run(d, r)));
    let before = snapshot(&run_dir);

    // Training into it again is refused.
    assert_clean_failure(
        &visionnet(&tiny_run(d, r)),
        &["already holds files", "--resume"],
    );
    // Resume with a flag that would change the run is refused.
    assert_clean_failure(
        &visionnet(&["train", "--resume", r, "--lr", "0.5"]),
        &["--resume", "--lr"],
    );
    assert_clean_failure(
        &visionnet(&[
            "train",
            "--resume",
            tmp.path().join("nothing").to_str().unwrap(),
        ]),
        &["nothing"],
    );
    assert_eq!(snapshot(&run_dir), before);
}

#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let d = data.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_success(&visionnet(&tiny_run(d, a.to_str().unwrap())));
    let mut args = tiny_run(d, b.to_str().unwrap());
    let w = args.iter().position(|x| *x == "8,8,8,8").unwrap();
    args[w] = "8,16,8,16";
    assert_success(&visionnet(&args));
    // Put b's weights in a's checkpoint: a's meta.json says widths 8,8,8,8.
    let ckpt_a = a.join("checkpoints/epoch-0001");
    fs::copy(
        b.join("checkpoints/epoch-0001/model.bpk"),
        ckpt_a.join("model.bpk"),
    )
    .unwrap();
    let out = visionnet(&["eval", "--checkpoint", a.to_str().unwrap(), "--data", d]);
    assert_clean_failure(&out, &["model.bpk", "do not fit"]);
    // A meta.json naming a model that does not exist.
    let meta = ckpt_a.join("meta.json");
    let text = fs::read_to_string(&meta)
        .unwrap()
        .replace("\"cnn\"", "\"mystery\"");
    fs::write(&meta, text).unwrap();
    let out = visionnet(&["predict", "--checkpoint", ckpt_a.to_str().unwrap(), "x.png"]);
    assert_clean_failure(&out, &["epoch-0001", "unknown model 'mystery'"]);
    // Resuming a run whose newest checkpoint is of another model.
    let out = visionnet(&["train", "--resume", a.to_str().unwrap(), "--quiet"]);
    assert_clean_failure(&out, &["epoch-0001", "mystery"]);
}

/// Serves `body` at `/archive.tar.gz` on 127.0.0.1 for `requests` requests; returns the URL.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    std::thread::spawn(move || {
        for request in server.incoming_requests().take(requests) {
            let response = if request.url() == "/archive.tar.gz" {
                tiny_http::Response::from_data(body.clone())
            } else {
                tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404)
            };
            let _ = request.respond(response);
        }
    });
    format!("http://127.0.0.1:{port}/archive.tar.gz")
}

/// A .tar.gz of every file below `dir`, stored under `prefix/`.
fn tar_gz(dir: &Path, prefix: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(prefix, dir).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    format!("{:x}", Md5::digest(bytes))
}

#[test]
fn fetch_downloads_checks_and_unpacks_a_cifar_archive() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10(&tmp.path().join("src"));
    let archive = tar_gz(&tmp.path().join("src"), "cifar-10-batches-bin");
    let url = serve(archive.clone(), 3);
    let to = tmp.path().join("datasets");
    let out = visionnet(&[
        "data",
        "fetch",
        "cifar10",
        "--to",
        to.to_str().unwrap(),
        "--url",
        &url,
        "--md5",
        &md5_hex(&archive),
    ]);
    let stdout = assert_success(&out);
    assert!(stdout.contains("cifar-10-batches-bin"), "{stdout}");
    assert_eq!(
        fs::read(to.join("cifar-10-batches-bin/test_batch.bin")).unwrap(),
        fs::read(tmp.path().join("src/test_batch.bin")).unwrap()
    );
    let out = assert_success(&visionnet(&["data", "inspect", to.to_str().unwrap()]));
    assert!(
        out.contains("Cifar10Binary") && out.contains("50000"),
        "{out}"
    );

    // The official checksum does not match this archive: refused, nothing unpacked.
    let elsewhere = tmp.path().join("elsewhere");
    let out = visionnet(&[
        "data",
        "fetch",
        "cifar10",
        "--to",
        elsewhere.to_str().unwrap(),
        "--url",
        &url,
    ]);
    assert_clean_failure(&out, &["MD5", "c32a1d4ab5d03f1284b67883e8d87530"]);
    assert!(!elsewhere.join("cifar-10-batches-bin").exists());
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "the partial download is removed"
    );

    // A server error is reported with the address.
    let bad_url = url.replace("archive.tar.gz", "missing.tar.gz");
    let out = visionnet(&[
        "data",
        "fetch",
        "cifar100",
        "--to",
        elsewhere.to_str().unwrap(),
        "--url",
        &bad_url,
    ]);
    assert_clean_failure(&out, &["missing.tar.gz", "404"]);
}

#[test]
fn fetch_refuses_archive_paths_that_escape_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // Hand-made entry named "../evil.txt" (the tar crate's builder itself refuses such names).
    let mut header = tar::Header::new_gnu();
    let name = b"../evil.txt";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut raw = Vec::new();
    raw.extend_from_slice(header.as_bytes());
    raw.extend_from_slice(b"evil");
    raw.resize(raw.len() + 508, 0);
    raw.resize(raw.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let archive = gz.finish().unwrap();
    let url = serve(archive.clone(), 1);
    let to = tmp.path().join("inside");
    let out = visionnet(&[
        "data",
        "fetch",
        "cifar10",
        "--to",
        to.to_str().unwrap(),
        "--url",
        &url,
        "--md5",
        &md5_hex(&archive),
    ]);
    assert_clean_failure(&out, &["../evil.txt", "outside"]);
    assert!(!tmp.path().join("evil.txt").exists());
}

/// The Python that has TensorBoard: `VISIONNET_TENSORBOARD_PYTHON` (scripts/test.sh sets it up),
/// else `python3` if it can import tensorboard.
fn tensorboard_python() -> Option<String> {
    if let Ok(python) = std::env::var("VISIONNET_TENSORBOARD_PYTHON") {
        return Some(python);
    }
    let probe = std::process::Command::new("python3")
        .args(["-c", "import tensorboard"])
        .output();
    probe
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3".to_string())
}

#[test]
fn tensorboard_itself_reads_the_event_files() {
    let Some(python) = tensorboard_python() else {
        assert!(
            std::env::var("VISIONNET_REQUIRE_TENSORBOARD").is_err(),
            "VISIONNET_REQUIRE_TENSORBOARD is set but no Python with tensorboard was found"
        );
        eprintln!(
            "NOTE: not checked with TensorBoard: no Python with tensorboard (scripts/test.sh installs one)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let run_dir = tmp.path().join("run");
    let mut args = tiny_run(data.to_str().unwrap(), run_dir.to_str().unwrap());
    let e = args.iter().position(|x| *x == "--epochs").unwrap();
    args[e + 1] = "3";
    assert_success(&visionnet(&args));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_tensorboard.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&run_dir)
        .output()
        .unwrap();
    let stdout = assert_success(&out);
    assert!(stdout.contains("TensorBoard reads 3 epochs"), "{stdout}");
}

/// `bench --json` names the vector path the kernels took, and `VISIONNET_SIMD` caps it, so a
/// speed figure can say which code it measured.
#[test]
fn bench_names_the_kernels_path_it_ran() {
    let bench = |cap: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_visionnet"));
        command.args([
            "bench",
            "--model",
            "cnn",
            "--widths",
            "4,4,4,4",
            "--hidden",
            "8,8,8",
            "--mode",
            "train",
            "--batch-size",
            "2",
            "--warmup",
            "0",
            "--steps",
            "1",
            "--json",
        ]);
        if let Some(cap) = cap {
            command.env("VISIONNET_SIMD", cap);
        }
        let out = assert_success(&command.output().expect("the visionnet binary runs"));
        let json: serde_json::Value =
            serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
        json["kernels"]
            .as_str()
            .expect("a kernels field")
            .to_string()
    };
    let best = visionnet_kernels::simd::Simd::best_supported().name();
    assert_eq!(bench(None), best);
    assert_eq!(bench(Some("portable")), "portable");
}
