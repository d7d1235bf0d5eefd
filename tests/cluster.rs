//! Grids on a cluster: one run per task (`--task-index`, from the scheduler's variables), the
//! SLURM array script and the Kubernetes manifest, `--status`, per-run locks (two processes,
//! stale locks, another host), `--devices`, and every bad input refused with nothing touched.
//! The real-SLURM test is `scripts/slurm_test.sh`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use visionnet::device::{DeviceKind, DeviceSlot};
use visionnet::train::experiment::cluster::task_index;
use visionnet::train::experiment::status::{RunStatus, grid_status};
use visionnet::train::experiment::{ExperimentOptions, RunOutcome, run_grid};
use visionnet::train::run_lock::{self, Acquired, Holder};

/// Four tiny runs: two CNNs x two seeds, `epochs` each, on a synthetic image folder.
fn write_grid(dir: &Path, lr: f64, epochs: usize) -> PathBuf {
    TinyGrid {
        lr,
        epochs,
        ..Default::default()
    }
    .write(dir)
}

const IDS: [&str; 4] = [
    "synth/adam/cnn/seed-0",
    "synth/adam/cnn-b/seed-0",
    "synth/adam/cnn/seed-1",
    "synth/adam/cnn-b/seed-1",
];

/// `visionnet ARGS` with the scheduler variables given (and the others removed, whatever the
/// environment of the test run).
fn visionnet_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_visionnet"));
    command.args(args);
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_JOB_ID",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What a folder holds (empty when it does not exist), to show nothing was touched.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    if dir.exists() {
        snapshot(dir)
    } else {
        Vec::new()
    }
}

#[test]
fn the_task_index_comes_from_the_flag_then_slurm_then_kubernetes() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        task_index(Some(3), env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap(),
        3
    );
    assert_eq!(
        task_index(
            None,
            env(&[("SLURM_ARRAY_TASK_ID", "1"), ("JOB_COMPLETION_INDEX", "2")])
        )
        .unwrap(),
        1
    );
    assert_eq!(
        task_index(None, env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap(),
        2
    );
    let none = task_index(None, env(&[])).unwrap_err().to_string();
    assert!(
        none.contains("SLURM_ARRAY_TASK_ID") && none.contains("JOB_COMPLETION_INDEX"),
        "{none}"
    );
    let bad = task_index(None, env(&[("SLURM_ARRAY_TASK_ID", "x")]))
        .unwrap_err()
        .to_string();
    assert!(bad.contains("SLURM_ARRAY_TASK_ID=x"), "{bad}");
}

#[test]
fn a_task_trains_exactly_its_run_and_a_second_time_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01, 1);
    let out = tmp.path().join("out");

    // The listing shows the indices.
    let listing = assert_success(&visionnet(&["experiment", "--grid", s(&grid), "--dry-run"]));
    for (i, id) in IDS.iter().enumerate() {
        assert!(
            listing
                .lines()
                .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>()
                    == [i.to_string().as_str(), *id]),
            "{listing}"
        );
    }

    // Index 1 from SLURM's variable, index 2 from Kubernetes'.
    let one = visionnet_env(
        &["experiment", "--grid", s(&grid), "--task-index", "--quiet"],
        &[("SLURM_ARRAY_TASK_ID", "1")],
    );
    let stderr = String::from_utf8_lossy(&one.stderr).into_owned();
    assert!(one.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "task 1 of 4 runs in {}: {}",
            out.display(),
            IDS[1]
        )),
        "{stderr}"
    );
    let done: Vec<bool> = IDS
        .iter()
        .map(|id| out.join(id).join("summary.json").is_file())
        .collect();
    assert_eq!(done, [false, true, false, false]);
    assert!(
        !out.join(IDS[0]).exists() && !out.join(IDS[2]).exists(),
        "other runs' folders were made"
    );
    assert!(
        !out.join(IDS[1]).join(".lock").exists(),
        "the lock outlived the task"
    );
    // The manifest names every run of the grid, not only the task's.
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("experiment.json")).unwrap()).unwrap();
    assert_eq!(manifest["runs"].as_array().unwrap().len(), 4);

    assert_success(&visionnet_env(
        &["experiment", "--grid", s(&grid), "--task-index", "--quiet"],
        &[("JOB_COMPLETION_INDEX", "2")],
    ));
    assert!(out.join(IDS[2]).join("summary.json").is_file());

    // The same task again: already finished, nothing retrained.
    let before = snapshot(&out.join(IDS[1]));
    let again = visionnet_env(
        &[
            "experiment",
            "--grid",
            s(&grid),
            "--task-index",
            "1",
            "--quiet",
        ],
        &[],
    );
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    assert_eq!(snapshot(&out.join(IDS[1])), before);

    // Neither variable: said so, nothing run.
    let before = snapshot(&out);
    let neither = visionnet_env(&["experiment", "--grid", s(&grid), "--task-index"], &[]);
    assert_clean_failure(&neither, &["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]);
    // Past the end: names how many runs there are.
    let past = visionnet_env(
        &["experiment", "--grid", s(&grid), "--task-index", "4"],
        &[],
    );
    assert_clean_failure(&past, &["4 is past the end", "has 4 runs", "0 to 3"]);
    let past = visionnet_env(
        &[
            "experiment",
            "--grid",
            s(&grid),
            "--seeds",
            "0",
            "--task-index",
            "2",
        ],
        &[],
    );
    assert_clean_failure(&past, &["has 2 runs"]);
    assert_eq!(snapshot(&out), before);
}

#[test]
fn the_sbatch_script_lists_the_unfinished_runs_and_without_sbatch_is_left_written() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01, 1);
    let out = tmp.path().join("out");
    assert_success(&visionnet_env(
        &[
            "experiment",
            "--grid",
            s(&grid),
            "--task-index",
            "1",
            "--quiet",
        ],
        &[],
    ));

    let printed = assert_success(&visionnet(&[
        "experiment",
        "--grid",
        s(&grid),
        "--submit",
        "slurm",
        "--dry-run",
        "--partition",
        "gpu",
        "--time",
        "1-02:00:00",
        "--cpus-per-task",
        "4",
        "--gpus-per-task",
        "1",
        "--max-parallel",
        "2",
        "--sbatch-arg=--mem=8G",
        "--sbatch-arg",
        "--qos=low",
    ]));
    assert!(
        printed.contains("3 of 4 runs to do (indices 0,2,3)"),
        "{printed}"
    );
    let script = fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[0], "#!/bin/bash");
    for want in [
        "#SBATCH --array=0,2,3%2".to_string(),
        format!(
            "#SBATCH --output={}",
            out.join("slurm/logs/%A_%a.log").display()
        ),
        "#SBATCH --partition=gpu".to_string(),
        "#SBATCH --time=1-02:00:00".to_string(),
        "#SBATCH --cpus-per-task=4".to_string(),
        "#SBATCH --gpus-per-task=1".to_string(),
        "#SBATCH --mem=8G".to_string(),
        "#SBATCH --qos=low".to_string(),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "no line {want} in\n{script}"
        );
    }
    assert!(out.join("slurm/logs").is_dir());
    // Every #SBATCH line comes before the first command (sbatch stops reading them there).
    let first_command = lines.iter().position(|l| !l.starts_with('#')).unwrap();
    assert!(
        lines[first_command..]
            .iter()
            .all(|l| !l.starts_with("#SBATCH")),
        "{script}"
    );
    let command = lines.iter().find(|l| l.starts_with("exec ")).unwrap();
    let grid_abs = std::path::absolute(&grid).unwrap();
    for part in [
        "--threads 4 experiment",
        &format!("--grid {}", grid_abs.display()),
        &format!("--out {}", out.display()),
        "--task-index",
    ] {
        assert!(command.contains(part), "{command}");
    }
    assert!(command.ends_with("--task-index"), "{command}");
    // The runs of the listing, for the eye.
    for (i, id) in IDS.iter().enumerate() {
        assert!(script.contains(&format!("#{i:>5}  {id}")), "{script}");
    }
    // The selection travels with the task, so an index means the same run.
    assert_success(&visionnet(&[
        "experiment",
        "--grid",
        s(&grid),
        "--submit",
        "slurm",
        "--dry-run",
        "--seeds",
        "1",
    ]));
    let script = fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0,1\n"), "{script}");
    assert!(script.contains("--seeds 1 "), "{script}");

    // No sbatch on the PATH: said so, the script stays.
    fs::remove_file(out.join("slurm/array.sbatch")).unwrap();
    let empty = tmp.path().join("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_visionnet"));
    command
        .args(["experiment", "--grid", s(&grid), "--submit", "slurm"])
        .env("PATH", &empty);
    let output = command.output().unwrap();
    assert_clean_failure(&output, &["sbatch", "not on the PATH", "array.sbatch"]);
    assert!(out.join("slurm/array.sbatch").is_file());
}

#[test]
fn the_kubernetes_manifest_is_an_indexed_job_naming_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01, 1);
    let out = tmp.path().join("out");
    let printed = assert_success(&visionnet(&[
        "experiment",
        "--grid",
        s(&grid),
        "--submit",
        "k8s",
        "--image",
        "registry.example/visionnet:1",
        "--volume",
        "runs:/work",
        "--max-parallel",
        "3",
        "--cpus-per-task",
        "2",
        "--gpus-per-task",
        "1",
        "--time",
        "02:00:00",
    ]));
    assert!(printed.contains("not applied"), "{printed}");
    let text = fs::read_to_string(out.join("k8s/job.yaml")).unwrap();
    let job: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"));
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], "visionnet-grid");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 3);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["activeDeadlineSeconds"], 7200);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example/visionnet:1");
    let command: Vec<String> = container["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(command[0], "visionnet");
    assert_eq!(command.last().unwrap(), "--task-index");
    assert!(
        command.windows(2).any(|w| w[0] == "--grid"
            && w[1] == std::path::absolute(&grid).unwrap().display().to_string()),
        "{command:?}"
    );
    assert!(
        command.windows(2).any(|w| w == ["--threads", "2"]),
        "{command:?}"
    );
    assert_eq!(container["resources"]["requests"]["cpu"], "2");
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/work");
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "runs"
    );
    // Every run, by its index.
    let annotations = job["metadata"]["annotations"].as_mapping().unwrap();
    assert_eq!(annotations.len(), 4);
    for (i, id) in IDS.iter().enumerate() {
        assert_eq!(
            job["metadata"]["annotations"][format!("visionnet/run-{i}").as_str()],
            *id,
            "{text}"
        );
    }
    // No run folder made.
    assert!(!out.join("synth").exists());
}

/// A `visionnet train` of a run that takes a while (many epochs), started in the background.
fn long_train(run_dir: &Path, data: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_visionnet"))
        .args([
            "--threads",
            "1",
            "train",
            "--quiet",
            "--data",
            s(data),
            "--val-size",
            "6",
            "--batch-size",
            "8",
            "--epochs",
            "400",
        ])
        .args([
            "--widths",
            "4,4,4,4",
            "--hidden",
            "4,4,4",
            "--run-dir",
            s(run_dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_trains_of_one_run_folder_refuse_and_a_dead_ones_lock_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_image_folder(&data, 3, 16, 16);
    let run = tmp.path().join("run");
    let mut first = long_train(&run, &data);
    // Any complete checkpoint: only the newest is kept, and an epoch of this tiny run can be
    // shorter than the polling interval, so `epoch-0001` itself may come and go unseen.
    wait_for("the first train's first checkpoint", || {
        visionnet::train::checkpoint::latest(&run)
            .ok()
            .flatten()
            .is_some()
    });
    let holder: Holder =
        serde_json::from_str(&fs::read_to_string(run.join(".lock")).unwrap()).unwrap();
    assert_eq!(holder.pid, first.id());
    assert_eq!(holder.host, run_lock::host_name());

    // A second train, fresh or resuming, refuses, naming the first's pid and host.
    let pid = format!("pid {} on host {}", first.id(), run_lock::host_name());
    let resume = visionnet(&["train", "--resume", s(&run), "--quiet"]);
    assert_clean_failure(&resume, &["is being trained by", &pid, ".lock"]);
    let fresh = visionnet(&[
        "train",
        "--quiet",
        "--data",
        s(&data),
        "--val-size",
        "6",
        "--batch-size",
        "8",
        "--run-dir",
        s(&run),
    ]);
    assert_clean_failure(&fresh, &[&pid]);
    // ... and so does a grid task on it (in-process library use too).
    match run_lock::try_acquire(&run).unwrap() {
        Acquired::Busy(found) => assert_eq!(found.holder.unwrap().pid, first.id()),
        Acquired::Held(_) => panic!("took a live process's lock"),
    }

    // Killed (as by scancel's SIGKILL): the lock stays, stale; the next train takes it over.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(run.join(".lock").is_file());
    let found = run_lock::inspect(&run).unwrap().unwrap();
    assert!(
        matches!(found.verdict, run_lock::Verdict::Stale(ref why) if why.contains("no longer running")),
        "{:?}",
        found.verdict
    );
    let epochs_before = visionnet::train::checkpoint::read_meta(
        &visionnet::train::checkpoint::latest(&run).unwrap().unwrap(),
    )
    .unwrap()
    .epoch;
    let resumed = visionnet(&[
        "train",
        "--resume",
        s(&run),
        "--quiet",
        "--stop-after",
        &(epochs_before + 1).to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&resumed.stderr).into_owned();
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("took over the stale lock")
            && stderr.contains(&format!("pid {}", holder.pid)),
        "{stderr}"
    );
    assert!(!run.join(".lock").exists(), "the lock outlived the run");
}

/// A lock file as another process would have left it, touched `age` ago.
fn plant_lock(run: &Path, holder: &Holder, age: Duration) {
    fs::create_dir_all(run).unwrap();
    let path = run.join(".lock");
    fs::write(&path, serde_json::to_string(holder).unwrap()).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn locks_of_other_hosts_and_dead_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let other = Holder {
        host: "node-b".into(),
        pid: 4242,
        start: Some(1),
        since: "then".into(),
        job: Some("SLURM job 7_3".into()),
    };

    // Another host, touched recently: live (this host cannot see its processes).
    plant_lock(&run, &other, Duration::from_secs(5));
    match run_lock::try_acquire(&run).unwrap() {
        Acquired::Busy(found) => {
            let message = run_lock::busy_error(&run, &found).to_string();
            assert!(
                message.contains("pid 4242 on host node-b") && message.contains("SLURM job 7_3"),
                "{message}"
            );
        }
        Acquired::Held(_) => panic!("took another host's live lock"),
    }
    // Untouched for longer than STALE_AFTER: a lost node; taken over.
    plant_lock(
        &run,
        &other,
        run_lock::STALE_AFTER + Duration::from_secs(60),
    );
    let lock = match run_lock::try_acquire(&run).unwrap() {
        Acquired::Held(lock) => lock,
        Acquired::Busy(found) => panic!("a stale lock was not taken over: {found:?}"),
    };
    assert!(
        lock.took_over.as_ref().unwrap().contains("node-b"),
        "{:?}",
        lock.took_over
    );
    let now: Holder =
        serde_json::from_str(&fs::read_to_string(run.join(".lock")).unwrap()).unwrap();
    assert_eq!(
        (now.pid, now.host.as_str()),
        (std::process::id(), run_lock::host_name().as_str())
    );
    // The same process asking again: nested, and dropping that keeps the lock.
    let nested = match run_lock::try_acquire(&run).unwrap() {
        Acquired::Held(l) => l,
        Acquired::Busy(_) => panic!("a process refused its own lock"),
    };
    assert!(nested.is_nested());
    drop(nested);
    assert!(run.join(".lock").is_file());
    drop(lock);
    assert!(!run.join(".lock").exists());

    // This host, a pid that has exited: stale at once, however recent.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    plant_lock(
        &run,
        &Holder {
            host: run_lock::host_name(),
            pid,
            start: Some(1),
            since: "now".into(),
            job: None,
        },
        Duration::ZERO,
    );
    assert!(
        matches!(run_lock::try_acquire(&run).unwrap(), Acquired::Held(l) if l.took_over.is_some())
    );
    // This host, a live pid whose start time differs (a reused pid): stale too.
    plant_lock(
        &run,
        &Holder {
            host: run_lock::host_name(),
            pid: 1,
            start: Some(u64::MAX),
            since: "now".into(),
            job: None,
        },
        Duration::ZERO,
    );
    assert!(
        matches!(run_lock::try_acquire(&run).unwrap(), Acquired::Held(l) if l.took_over.is_some())
    );
}

#[test]
fn status_tells_finished_running_interrupted_and_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01, 2);
    let out = tmp.path().join("out");
    // 0: finished. 1: stopped after an epoch (run.json, no summary). 2: a live lock of another
    // process. 3: nothing.
    assert_success(&visionnet(&[
        "experiment",
        "--grid",
        s(&grid),
        "--task-index",
        "0",
        "--quiet",
    ]));
    assert_success(&visionnet(&[
        "experiment",
        "--grid",
        s(&grid),
        "--task-index",
        "1",
        "--quiet",
        "--stop-after",
        "1",
    ]));
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let live = Holder {
        host: run_lock::host_name(),
        pid: sleeper.id(),
        start: None,
        since: "now".into(),
        job: Some("SLURM job 9_2".into()),
    };
    plant_lock(&out.join(IDS[2]), &live, Duration::ZERO);

    let status = grid_status(&grid, &ExperimentOptions::default()).unwrap();
    let classes: Vec<&str> = status.runs.iter().map(|(_, s)| s.class()).collect();
    assert_eq!(classes, ["finished", "interrupted", "running", "pending"]);
    assert!(
        matches!(&status.runs[1].1, RunStatus::Interrupted { epoch: 1, why } if why.contains("without summary")),
        "{:?}",
        status.runs[1]
    );
    assert!(
        matches!(&status.runs[2].1, RunStatus::Running { holder, .. } if holder.contains("SLURM job 9_2"))
    );

    let before = snapshot(&out);
    let printed = assert_success(&visionnet(&["experiment", "--grid", s(&grid), "--status"]));
    assert!(
        printed.contains("4 runs in")
            && printed.contains("1 finished, 1 running, 1 interrupted, 1 pending"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("pid {}", sleeper.id())),
        "{printed}"
    );

    // A grid run in the same folder leaves the running one to its holder.
    let outcome = run_grid(
        &grid,
        &ExperimentOptions {
            quiet: true,
            stop_after: Some(1),
            selection: visionnet::train::experiment::Selection {
                seeds: Some(vec![1]),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        matches!(&outcome.runs[0].1, RunOutcome::Busy { holder } if holder.contains(&sleeper.id().to_string())),
        "{:?}",
        outcome.runs
    );
    assert!(
        matches!(outcome.runs[1].1, RunOutcome::Stopped { epoch: 1 }),
        "{:?}",
        outcome.runs
    );
    assert!(!out.join(IDS[2]).join("run.json").exists());

    // The holder dies: its run is interrupted (a stale lock).
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let status = grid_status(&grid, &ExperimentOptions::default()).unwrap();
    assert!(
        matches!(&status.runs[2].1, RunStatus::Interrupted { why, .. } if why.contains("stale lock")),
        "{:?}",
        status.runs[2]
    );
    let _ = before;
}

#[test]
fn bad_input_is_refused_and_no_run_folder_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01, 1);
    let out = tmp.path().join("out");
    assert_success(&visionnet(&[
        "experiment",
        "--grid",
        s(&grid),
        "--task-index",
        "0",
        "--quiet",
    ]));
    let before = contents(&out);
    let g = s(&grid);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--submit", "pbs"], vec!["'pbs'", "slurm", "k8s"]),
        (
            vec!["--submit", "slurm", "--max-parallel", "0"],
            vec!["--max-parallel", "0 tasks at a time"],
        ),
        (
            vec!["--submit", "slurm", "--time", "90:00"],
            vec!["--time", "'90:00' is not a time limit", "HH:MM:SS"],
        ),
        (
            vec!["--submit", "slurm", "--time", "01:60:00"],
            vec!["'01:60:00' is not a time limit"],
        ),
        (
            vec!["--submit", "slurm", "--time", "x-01:00:00"],
            vec!["is not a time limit"],
        ),
        (
            vec!["--submit", "slurm", "--seeds", "7"],
            vec!["the selection keeps no run"],
        ),
        (
            vec!["--task-index", "0", "--seeds", "7"],
            vec!["the selection keeps no run"],
        ),
        (
            vec!["--status", "--seeds", "7"],
            vec!["the selection keeps no run"],
        ),
        (vec!["--submit", "k8s"], vec!["--image"]),
        (
            vec!["--submit", "k8s", "--image", "x", "--partition", "p"],
            vec!["--partition", "SLURM flag"],
        ),
        (
            vec!["--submit", "slurm", "--image", "x"],
            vec!["--image", "Kubernetes flag"],
        ),
        (
            vec!["--jobs", "2", "--devices", "wgpu:0,wgpu:1"],
            vec!["wgpu:0", "computes on Flex", r#"device = "wgpu""#],
        ),
        (
            vec!["--jobs", "3", "--devices", "cuda:0,cuda:1"],
            vec!["2 devices for 3 jobs"],
        ),
        (vec!["--devices", "flex:0"], vec!["flex is the CPU"]),
        (vec!["--devices", "wgpu:x"], vec!["'x' is not a number"]),
        (
            vec!["--jobs", "2", "--devices", "cuda:1,cuda:1"],
            vec!["cuda:1 is listed twice"],
        ),
    ];
    for (args, needles) in &cases {
        let mut all = vec!["experiment", "--grid", g];
        all.extend(args);
        let output = visionnet(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: stderr lacks {n}: {stderr}");
        }
        assert_eq!(contents(&out), before, "{args:?} touched the output folder");
    }

    // The grid changed since submission: the task's run.json differs, the keys are named.
    let grid = write_grid(tmp.path(), 0.02, 1);
    let changed = visionnet_env(
        &["experiment", "--grid", s(&grid), "--task-index"],
        &[("SLURM_ARRAY_TASK_ID", "0")],
    );
    assert_clean_failure(&changed, &[IDS[0], "lr: 0.01 there, 0.02 in the grid"]);
    assert_eq!(contents(&out), before);
}

#[test]
fn each_job_gets_its_own_device() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = write_grid(tmp.path(), 0.01, 1);
    // The runs compute on wgpu (which this build need not have: the children are stand-ins
    // that record the device they were given and when).
    let text = fs::read_to_string(&grid)
        .unwrap()
        .replace("[defaults]\n", "[defaults]\ndevice = \"wgpu\"\n");
    fs::write(&grid, text).unwrap();
    let record = tmp.path().join("record.txt");
    let fake = tmp.path().join("fake-visionnet");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --device-index ] && d=$2; shift; done\n\
             echo \"start $d\" >> {0}\nsleep 0.4\necho \"end $d\" >> {0}\n",
            record.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let devices = vec![
        DeviceSlot {
            kind: DeviceKind::Wgpu,
            index: 0,
        },
        DeviceSlot {
            kind: DeviceKind::Wgpu,
            index: 1,
        },
    ];
    let outcome = run_grid(
        &grid,
        &ExperimentOptions {
            quiet: true,
            jobs: 2,
            devices,
            executable: Some(fake),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        outcome
            .runs
            .iter()
            .all(|(_, o)| matches!(o, RunOutcome::Stopped { epoch: 0 })),
        "{:?}",
        outcome.runs
    );
    let lines = fs::read_to_string(&record).unwrap();
    let mut active: Vec<String> = Vec::new();
    let mut most = 0;
    for line in lines.lines() {
        let (what, device) = line.split_once(' ').unwrap();
        assert!(device == "0" || device == "1", "{lines}");
        if what == "start" {
            assert!(
                !active.contains(&device.to_string()),
                "two jobs on device {device} at once:\n{lines}"
            );
            active.push(device.to_string());
            most = most.max(active.len());
        } else {
            active.retain(|d| d != device);
        }
    }
    assert_eq!(lines.lines().filter(|l| l.starts_with("start")).count(), 4);
    assert_eq!(most, 2, "the two jobs never ran at once:\n{lines}");
}
