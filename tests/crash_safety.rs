//! Crash safety of `train`: SIGINT / SIGTERM stop after the step with a checkpoint that
//! `--resume` continues from exactly; a second signal exits at once keeping the last good
//! checkpoint; a signal stops a grid (its runs in this process and in `--jobs` children) with
//! their checkpoints and no lock left behind; a full disk during a checkpoint write is a clear error that keeps the previous
//! checkpoint; read-only output folders are refused before any work.
//!
//! The disk tests mount small tmpfs file systems, which needs root (CI runs as root); without
//! it they say so and return.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Epochs of the signal tests' runs: the signal lands in the second, well before the end.
const SIGNAL_EPOCHS: &str = "6";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_visionnet"))
}

/// Train flags of a run of a few seconds on `data` into `run_dir` (2 threads: the CI machine's).
fn run_args(data: &Path, run_dir: &Path, epochs: &str) -> Vec<String> {
    [
        "--threads",
        "2",
        "train",
        "--data",
        data.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--val-size",
        "48",
        "--widths",
        "8,8,8,8",
        "--hidden",
        "16,16,16",
        "--epochs",
        epochs,
        "--batch-size",
        "16",
        "--seed",
        "7",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn dataset(root: &Path) -> PathBuf {
    let data = root.join("data");
    write_image_folder(&data, 3, 160, 16);
    data
}

/// `summary.json` without its wall-clock fields (which differ between any two runs).
fn summary_without_timing(run_dir: &Path) -> serde_json::Value {
    let text = fs::read_to_string(run_dir.join("summary.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("train_seconds");
    o.remove("images_per_second");
    v
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Starts a run and returns once it is `fraction` of the way through its second epoch: the first
/// epoch's checkpoint exists, and that fraction of the first epoch's time has passed since. A
/// signal then usually lands between two steps of an epoch (the case a mid-epoch checkpoint has
/// to get exactly right), however fast the machine is; on a loaded machine it can still land at
/// the epoch's end, which is why the caller retries with a smaller fraction.
fn start(args: &[String], run_dir: &Path, fraction: f64) -> Child {
    let child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let first_epoch = loop {
        assert!(
            Instant::now() < deadline,
            "the run did not finish its first epoch"
        );
        if run_dir.join("checkpoints/epoch-0001/meta.json").is_file() {
            let csv = fs::read_to_string(run_dir.join("metrics.csv")).unwrap_or_default();
            let seconds = csv.lines().nth(1).and_then(|row| {
                let header: Vec<&str> = csv.lines().next()?.split(',').collect();
                let at = header.iter().position(|h| *h == "seconds")?;
                row.split(',').nth(at)?.parse::<f64>().ok()
            });
            if let Some(s) = seconds {
                break s;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    std::thread::sleep(Duration::from_secs_f64(first_epoch * fraction));
    child
}

/// `visionnet train --resume RUN` (2 threads, quiet), its output.
fn resume(run: &Path) -> Output {
    bin()
        .args([
            "--threads",
            "2",
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap()
}

/// Asserts `run` ended as `whole` did: the same predictions, byte for byte.
fn assert_same_predictions(run: &Path, whole: &Path, what: &str) {
    assert_eq!(
        fs::read(run.join("predictions.csv")).unwrap(),
        fs::read(whole.join("predictions.csv")).unwrap(),
        "{what}: predictions differ from the uninterrupted run's"
    );
}

#[test]
fn sigint_and_sigterm_stop_after_the_step_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let whole = tmp.path().join("whole");
    assert_success(
        &bin()
            .args(run_args(&data, &whole, SIGNAL_EPOCHS))
            .output()
            .unwrap(),
    );

    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        // The signal must land mid-epoch at least once. Where the machine's timing makes it
        // land at an epoch's end instead (seen in CI with another job on the CPU), that stop
        // is checked just the same and the next try signals earlier.
        let mut mid_epoch = false;
        let mut fraction = 0.5;
        for attempt in 0..5 {
            let run = tmp.path().join(format!("stopped-{sig}-{attempt}"));
            let child = start(&run_args(&data, &run, SIGNAL_EPOCHS), &run, fraction);
            signal(&child, sig);
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "SIG{sig}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "SIG{sig}: stopped after the current step; checkpoint"
                )),
                "{stderr}"
            );
            assert!(
                stderr.contains(&format!(
                    "continue with: visionnet train --resume {}",
                    run.display()
                )),
                "{stderr}"
            );
            assert!(!run.join("summary.json").exists());
            assert_success(&resume(&run));
            assert_same_predictions(&run, &whole, &format!("SIG{sig}"));
            assert_eq!(
                summary_without_timing(&run),
                summary_without_timing(&whole),
                "SIG{sig}"
            );
            // Between two steps of the second epoch: the mid-epoch checkpoint.
            if stderr.contains("checkpoints/epoch-0001+") {
                mid_epoch = true;
                break;
            }
            eprintln!("SIG{sig} try {attempt} landed at an epoch's end: {stderr}");
            fraction /= 2.0;
        }
        assert!(mid_epoch, "SIG{sig} never landed mid-epoch in five tries");
    }

    // Two signals: the second exits at once; the newest complete checkpoint stays usable.
    let run = tmp.path().join("twice");
    let child = start(&run_args(&data, &run, SIGNAL_EPOCHS), &run, 0.5);
    signal(&child, "INT");
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leftovers: Vec<_> = fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_success(&resume(&run));
    assert_same_predictions(
        &run,
        &whole,
        &format!("after two signals (checkpoints then: {leftovers:?})"),
    );
}

/// The tiny grid's four runs below `out`.
fn grid_runs(out: &Path) -> Vec<PathBuf> {
    let mut runs = Vec::new();
    for model in ["cnn", "cnn-b"] {
        for seed in 0..2 {
            runs.push(out.join(format!("synth/adam/{model}/seed-{seed}")));
        }
    }
    runs
}

/// Whether any run below `out` has a checkpoint.
fn any_checkpoint(out: &Path) -> bool {
    grid_runs(out).iter().any(|run| {
        fs::read_dir(run.join("checkpoints"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("epoch-"))
            })
            .unwrap_or(false)
    })
}

#[test]
fn a_signal_stops_a_grid_with_its_checkpoints_and_running_it_again_finishes_it() {
    // In this process (`--jobs 1`, as a SLURM task runs) and in `visionnet train` children
    // (`--jobs 2`), which only the grid's forwarding reaches (their own process groups).
    for (jobs, sig, code) in [("1", "TERM", 143), ("2", "TERM", 143), ("1", "INT", 130)] {
        let tmp = tempfile::tempdir().unwrap();
        let grid = TinyGrid {
            epochs: 40,
            per_class: 40,
            ..Default::default()
        }
        .write(tmp.path());
        let out = tmp.path().join("out");
        let args = [
            "--threads",
            "2",
            "experiment",
            "--grid",
            grid.to_str().unwrap(),
            "--quiet",
        ];
        let child = bin()
            .args(args)
            .args(["--jobs", jobs])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !any_checkpoint(&out) {
            assert!(Instant::now() < deadline, "no checkpoint after 120 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        signal(&child, sig);
        let stopped = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&stopped.stderr);
        let case = format!("--jobs {jobs}, SIG{sig}");
        assert_eq!(stopped.status.code(), Some(code), "{case}: {stderr}");
        assert!(
            stderr.contains(&format!("SIG{sig}: the grid stopped")),
            "{case}: {stderr}"
        );
        let runs = grid_runs(&out);
        let finished = runs
            .iter()
            .filter(|r| r.join("summary.json").is_file())
            .count();
        assert!(finished < runs.len(), "{case}: the grid ran to its end");
        for run in &runs {
            assert!(
                !run.join(".lock").exists(),
                "{case}: {} kept its lock",
                run.display()
            );
        }
        if jobs == "2" {
            // The children checkpointed on the forwarded signal, they were not killed.
            let logs = fs::read_dir(out.join("logs")).unwrap();
            let said: String = logs
                .flatten()
                .map(|e| fs::read_to_string(e.path()).unwrap())
                .collect();
            assert!(
                said.contains(&format!("SIG{sig}: stopped after the current step")),
                "{case}: {said}"
            );
        }
        let again = bin().args(args).output().unwrap();
        assert_success(&again);
        assert!(
            runs.iter().all(|r| r.join("summary.json").is_file()),
            "{case}: not finished after running the grid again"
        );
    }
}

/// Mounts a tmpfs of `size` (e.g. "2m") on `dir`, with `options`; false without root.
fn mount_tmpfs(dir: &Path, size: &str, options: &str) -> bool {
    fs::create_dir_all(dir).unwrap();
    let o = format!("size={size}{options}");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &o, "tmpfs", dir.to_str().unwrap()])
        .status();
    if !matches!(ok, Ok(s) if s.success()) {
        // CI (root) sets VISIONNET_REQUIRE_TMPFS=1: there an unmountable tmpfs is a failure,
        // never a silent pass.
        assert!(
            std::env::var_os("VISIONNET_REQUIRE_TMPFS").is_none(),
            "cannot mount a tmpfs on {} and VISIONNET_REQUIRE_TMPFS is set",
            dir.display()
        );
        eprintln!(
            "skipped: cannot mount a tmpfs on {} (needs root)",
            dir.display()
        );
        return false;
    }
    true
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Bytes free on the file system of `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail", dir.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn a_full_disk_during_a_checkpoint_write_is_a_clear_error_and_resume_works_after() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let mnt = tmp.path().join("small");
    if !mount_tmpfs(&mnt, "4m", "") {
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let run = mnt.join("run");
    let mut args = run_args(&data, &run, "3");
    args.extend(["--stop-after".to_string(), "1".to_string()]);
    assert_success(&bin().args(&args).output().unwrap());
    let first = run.join("checkpoints/epoch-0001");
    let checkpoint_size = dir_bytes(&first);
    // Leave half a checkpoint free.
    let filler = mnt.join("filler");
    let fill = free_bytes(&mnt).saturating_sub(checkpoint_size / 2);
    fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    let out = resume(&run);
    let stderr = assert_clean_failure(
        &out,
        &[
            "No space left on device",
            "the disk is full",
            run.join("checkpoints").to_str().unwrap(),
        ],
    );
    eprintln!("disk full: {stderr}");
    // The previous checkpoint is intact and usable.
    let eval = bin()
        .args([
            "eval",
            "--checkpoint",
            first.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&eval);
    fs::remove_file(&filler).unwrap();
    assert_success(&resume(&run));
    assert!(run.join("summary.json").is_file());
    // Equal to an uninterrupted run.
    let whole = tmp.path().join("whole");
    assert_success(&bin().args(run_args(&data, &whole, "3")).output().unwrap());
    assert_same_predictions(&run, &whole, "after a full disk");
}

#[test]
fn read_only_output_folders_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 20, 16);
    let ro = tmp.path().join("ro");
    if !mount_tmpfs(&ro, "1m", ",ro") {
        return;
    }
    let _unmount = Unmount(ro.clone());
    let run = ro.join("runs/a");
    let out = bin().args(run_args(&data, &run, "1")).output().unwrap();
    let stderr = assert_clean_failure(
        &out,
        &[
            "--run-dir",
            ro.to_str().unwrap(),
            "cannot be written",
            "Read-only file system",
        ],
    );
    eprintln!("read-only: {stderr}");
    let out = bin()
        .args([
            "report",
            tmp.path().to_str().unwrap(),
            "--out",
            ro.join("report").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_clean_failure(&out, &["--out", "cannot be written"]);
    // A file where a folder should be.
    let file = tmp.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let out = bin()
        .args(run_args(&data, &file.join("run"), "1"))
        .output()
        .unwrap();
    assert_clean_failure(&out, &["--run-dir", "is not a folder"]);
}
