//! Grids on a cluster's scheduler: one run per task. A task is `visionnet experiment --grid G
//! --task-index I`, which trains (or resumes) the I-th run of the grid's listing and exits; this
//! module writes what a scheduler needs to start one task per run: a SLURM job array script
//! (submitted with `sbatch`) or a Kubernetes Indexed Job manifest (written, not applied).
//!
//! The runs' folders take care of concurrency themselves ([`run_lock`](crate::train::run_lock)),
//! so any number of tasks may share one output folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::grid::{Grid, PlannedRun, Selection};
use super::{ExperimentOptions, RunState, output_folder, write_manifest};
use crate::error::{Error, IoContext, Result};
use crate::io::write_atomic;

/// The scheduler to submit to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// SLURM: a job array, submitted with `sbatch`.
    Slurm,
    /// Kubernetes: an Indexed Job manifest, written for `kubectl apply`.
    K8s,
}

/// How to submit a grid.
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// The scheduler.
    pub scheduler: Scheduler,
    /// SLURM partition.
    pub partition: Option<String>,
    /// Time limit of a task (`HH:MM:SS` or `D-HH:MM:SS`).
    pub time: Option<String>,
    /// CPUs of a task (also its training threads).
    pub cpus_per_task: Option<usize>,
    /// GPUs of a task.
    pub gpus_per_task: Option<usize>,
    /// Tasks running at once (`%K` of the array; the Job's `parallelism`).
    pub max_parallel: Option<usize>,
    /// More `#SBATCH` lines, each one argument (`--mem=8G`).
    pub sbatch_args: Vec<String>,
    /// Kubernetes: the container image (with `visionnet` on its PATH).
    pub image: Option<String>,
    /// Kubernetes: `CLAIM[:PATH]`, a PersistentVolumeClaim mounted at PATH (default: the
    /// current folder) that holds the grid, its data and the output folder.
    pub volume: Option<String>,
    /// SLURM: after the array, a job that builds the report (`visionnet report OUT`).
    pub report: bool,
    /// Write the script or manifest; submit nothing.
    pub dry_run: bool,
    /// The `visionnet` of SLURM's tasks (absolute; a shared file system has it at the same path).
    pub executable: PathBuf,
}

/// What [`submit`] did.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The output folder.
    pub out: PathBuf,
    /// Runs in the grid's listing.
    pub runs: usize,
    /// Indices of the runs not finished: the tasks submitted.
    pub indices: Vec<usize>,
    /// The script or manifest written (`None` when every run was finished).
    pub file: Option<PathBuf>,
    /// SLURM's job id of the array (`None`: not submitted).
    pub job: Option<String>,
    /// SLURM's job id of the report job.
    pub report_job: Option<String>,
}

/// The index of this task: `explicit`, else `SLURM_ARRAY_TASK_ID`, else `JOB_COMPLETION_INDEX`
/// (a Kubernetes Indexed Job), read through `env`.
pub fn task_index(explicit: Option<usize>, env: impl Fn(&str) -> Option<String>) -> Result<usize> {
    if let Some(i) = explicit {
        return Ok(i);
    }
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
            return value.trim().parse().map_err(|_| {
                Error::invalid(
                    "--task-index",
                    format!("{var}={value} is not a task index (a number from 0)"),
                )
            });
        }
    }
    Err(Error::invalid(
        "--task-index",
        "no index given, and neither SLURM_ARRAY_TASK_ID (a SLURM job array) nor \
         JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set",
    ))
}

/// Checks a time limit: `HH:MM:SS` or `D-HH:MM:SS` (minutes and seconds below 60).
pub fn check_time(time: &str) -> Result<()> {
    let bad = || {
        Error::invalid(
            "--time",
            format!(
                "'{time}' is not a time limit: write HH:MM:SS or D-HH:MM:SS (e.g. 02:30:00, 1-12:00:00)"
            ),
        )
    };
    let (days, clock) = match time.split_once('-') {
        Some((d, c)) => (Some(d), c),
        None => (None, time),
    };
    let number = |s: &str| {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    if days.is_some_and(|d| number(d).is_none()) {
        return Err(bad());
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = parts[..] else {
        return Err(bad());
    };
    match (number(h), number(m), number(s)) {
        (Some(_), Some(m), Some(s))
            if m < 60 && s < 60 && parts[1].len() == 2 && parts[2].len() == 2 =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// Seconds of a time limit checked by [`check_time`].
fn seconds(time: &str) -> u64 {
    let (days, clock) = time
        .split_once('-')
        .map_or((0, time), |(d, c)| (d.parse().unwrap_or(0), c));
    let v: Vec<u64> = clock.split(':').map(|p| p.parse().unwrap_or(0)).collect();
    days * 86_400 + v[0] * 3600 + v[1] * 60 + v[2]
}

/// Checks the submission's flags against its scheduler, before anything is written.
fn check(options: &SubmitOptions) -> Result<()> {
    if options.max_parallel == Some(0) {
        return Err(Error::invalid(
            "--max-parallel",
            "0 tasks at a time would never start one; give 1 or more",
        ));
    }
    if options.cpus_per_task == Some(0) {
        return Err(Error::invalid(
            "--cpus-per-task",
            "a task needs at least 1 CPU",
        ));
    }
    if let Some(t) = &options.time {
        check_time(t)?;
    }
    match options.scheduler {
        Scheduler::Slurm => {
            for (name, given) in [
                ("--image", options.image.is_some()),
                ("--volume", options.volume.is_some()),
            ] {
                if given {
                    return Err(Error::invalid(
                        name,
                        "is a Kubernetes flag (--submit k8s); SLURM tasks run on the cluster's own file system",
                    ));
                }
            }
        }
        Scheduler::K8s => {
            if options.image.is_none() {
                return Err(Error::invalid(
                    "--image",
                    "--submit k8s needs the container image that has visionnet on its PATH",
                ));
            }
            let slurm_only = [
                ("--partition", options.partition.is_some()),
                ("--sbatch-arg", !options.sbatch_args.is_empty()),
                ("--report", options.report),
            ];
            for (name, given) in slurm_only {
                if given {
                    return Err(Error::invalid(
                        name,
                        "is a SLURM flag (--submit slurm); with Kubernetes run `visionnet report OUT` once the Job is complete",
                    ));
                }
            }
            if let Some(v) = &options.volume {
                let claim = v.split(':').next().unwrap_or_default();
                if claim.is_empty() || !dns_name(claim) {
                    return Err(Error::invalid(
                        "--volume",
                        format!(
                            "'{v}' is not CLAIM[:PATH] with CLAIM a PersistentVolumeClaim name"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A Kubernetes object name: lowercase letters, digits and '-', at most 63.
fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The job's name from the grid file's: `visionnet-<stem>`, made a valid Kubernetes name.
fn job_name(grid: &Grid) -> String {
    let stem = grid
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("visionnet-{}", clean.trim_matches('-'));
    name[..name.len().min(63)].trim_end_matches('-').to_string()
}

/// The `visionnet experiment` arguments of a task, after the executable and before
/// `--task-index`: the grid, the output folder and the selection, so that the index means the
/// same run as in the listing the submission saw.
fn task_args(
    grid: &Path,
    out: &Path,
    selection: &Selection,
    options: &ExperimentOptions,
    threads: Option<usize>,
) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(t) = threads {
        args.extend(["--threads".to_string(), t.to_string()]);
    }
    args.extend([
        "experiment".to_string(),
        "--grid".to_string(),
        grid.display().to_string(),
    ]);
    args.extend(["--out".to_string(), out.display().to_string()]);
    let list = |v: &[String]| v.join(",");
    for (flag, values) in [
        ("--models", &selection.models),
        ("--datasets", &selection.datasets),
        ("--recipes", &selection.recipes),
    ] {
        if let Some(v) = values {
            args.extend([flag.to_string(), list(v)]);
        }
    }
    if let Some(seeds) = &selection.seeds {
        args.extend([
            "--seeds".to_string(),
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    args.extend([
        "--keep-checkpoints".to_string(),
        options.keep_checkpoints.to_string(),
    ]);
    if let Some(e) = options.stop_after {
        args.extend(["--stop-after".to_string(), e.to_string()]);
    }
    args
}

/// `s` quoted for bash (single quotes, which keep everything literal).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-,:=+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as a YAML scalar: a JSON string, which YAML reads as the same string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The listing of the runs, as comment lines after `prefix`.
fn run_listing(prefix: &str, runs: &[PlannedRun], states: &[RunState]) -> String {
    let mut text = String::new();
    for (i, (run, s)) in runs.iter().zip(states).enumerate() {
        let note = if *s == RunState::Finished {
            " (finished)"
        } else {
            ""
        };
        text.push_str(&format!("{prefix}{i:>5}  {}{note}\n", run.id));
    }
    text
}

/// The job array script: one task per index in `indices`, each running the task command.
#[allow(clippy::too_many_arguments)]
pub fn sbatch_script(
    name: &str,
    command: &[String],
    indices: &[usize],
    out: &Path,
    options: &SubmitOptions,
    runs: &[PlannedRun],
    states: &[RunState],
) -> String {
    let array = indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let throttle = options
        .max_parallel
        .map(|k| format!("%{k}"))
        .unwrap_or_default();
    let logs = out.join("slurm").join("logs");
    let mut s = String::from("#!/bin/bash\n");
    s.push_str("# Written by `visionnet experiment --submit slurm`: one array task per unfinished run of\n");
    s.push_str("# the grid; task I trains (or resumes) run I of this listing and exits.\n");
    s.push_str(&run_listing("#", runs, states));
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    s.push_str(&format!("#SBATCH --array={array}{throttle}\n"));
    s.push_str(&format!(
        "#SBATCH --output={}\n",
        logs.join("%A_%a.log").display()
    ));
    if let Some(p) = &options.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &options.time {
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(n) = options.cpus_per_task {
        s.push_str(&format!("#SBATCH --cpus-per-task={n}\n"));
    }
    if let Some(n) = options.gpus_per_task {
        s.push_str(&format!("#SBATCH --gpus-per-task={n}\n"));
    }
    for a in &options.sbatch_args {
        s.push_str(&format!("#SBATCH {a}\n"));
    }
    s.push_str("set -euo pipefail\n");
    // The task's index comes from SLURM_ARRAY_TASK_ID (a bare --task-index reads it).
    let line: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
    s.push_str(&format!("exec {} --task-index\n", line.join(" ")));
    s
}

/// The Kubernetes Indexed Job: `runs.len()` completions, index I training run I.
pub fn k8s_manifest(
    name: &str,
    command: &[String],
    options: &SubmitOptions,
    runs: &[PlannedRun],
    states: &[RunState],
) -> Result<String> {
    let image = options.image.as_deref().expect("checked: --image is given");
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let (claim, mount) = match &options.volume {
        Some(v) => match v.split_once(':') {
            Some((c, p)) => (Some(c.to_string()), PathBuf::from(p)),
            None => (Some(v.clone()), cwd.clone()),
        },
        None => (None, cwd.clone()),
    };
    let parallelism = options.max_parallel.unwrap_or(runs.len());
    let mut y = String::new();
    y.push_str(
        "# Written by `visionnet experiment --submit k8s` (not applied): an Indexed Job whose\n",
    );
    y.push_str(
        "# index I trains (or resumes) run I of this listing. Apply: kubectl apply -f FILE\n",
    );
    y.push_str(&run_listing("#", runs, states));
    y.push_str("apiVersion: batch/v1\nkind: Job\nmetadata:\n");
    y.push_str(&format!("  name: {name}\n"));
    y.push_str("  labels:\n    app.kubernetes.io/name: visionnet\n");
    y.push_str("  annotations:\n");
    for (i, run) in runs.iter().enumerate() {
        y.push_str(&format!(
            "    visionnet/run-{i}: {}\n",
            yaml_string(&run.id)
        ));
    }
    y.push_str("spec:\n  completionMode: Indexed\n");
    y.push_str(&format!(
        "  completions: {}\n  parallelism: {parallelism}\n",
        runs.len()
    ));
    // A failed pod is retried (a new pod resumes the run); a few tries per run in all.
    y.push_str(&format!("  backoffLimit: {}\n", 2 * runs.len()));
    y.push_str(
        "  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: visionnet\n",
    );
    y.push_str("    spec:\n      restartPolicy: Never\n");
    if let Some(t) = &options.time {
        y.push_str(&format!("      activeDeadlineSeconds: {}\n", seconds(t)));
    }
    y.push_str("      containers:\n        - name: train\n");
    y.push_str(&format!("          image: {}\n", yaml_string(image)));
    y.push_str(&format!(
        "          workingDir: {}\n",
        yaml_string(&cwd.display().to_string())
    ));
    let mut args: Vec<String> = vec!["visionnet".to_string()];
    args.extend(command.iter().skip(1).cloned());
    // A bare --task-index reads JOB_COMPLETION_INDEX, which Kubernetes sets in each pod.
    args.push("--task-index".to_string());
    y.push_str("          command:\n");
    for a in &args {
        y.push_str(&format!("            - {}\n", yaml_string(a)));
    }
    if options.cpus_per_task.is_some() || options.gpus_per_task.is_some() {
        y.push_str("          resources:\n");
        if let Some(c) = options.cpus_per_task {
            y.push_str(&format!(
                "            requests:\n              cpu: \"{c}\"\n"
            ));
        }
        if let Some(g) = options.gpus_per_task {
            y.push_str(&format!(
                "            limits:\n              nvidia.com/gpu: {g}\n"
            ));
        }
    }
    if let Some(claim) = &claim {
        y.push_str("          volumeMounts:\n            - name: work\n");
        y.push_str(&format!(
            "              mountPath: {}\n",
            yaml_string(&mount.display().to_string())
        ));
        y.push_str("      volumes:\n        - name: work\n          persistentVolumeClaim:\n");
        y.push_str(&format!("            claimName: {}\n", yaml_string(claim)));
    }
    Ok(y)
}

/// Runs `sbatch --parsable ARGS`, returning the job id.
fn sbatch(args: &[&std::ffi::OsStr], script: &Path) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::data(
                script,
                "written, but `sbatch` is not on the PATH (is this a SLURM login node?); submit it \
                 where SLURM is with `sbatch` and this file",
            ));
        }
        Err(e) => return Err(Error::io("sbatch", e)),
    };
    if !output.status.success() {
        return Err(Error::data(
            script,
            format!(
                "sbatch refused it ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // --parsable prints `JOBID` or `JOBID;CLUSTER`.
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(Error::data(script, "sbatch printed no job id"));
    }
    Ok(id)
}

/// Writes the grid's job array script or Indexed Job manifest for the runs not finished, and
/// with SLURM submits it (unless `dry_run`). Every flag and every run folder is checked before
/// anything is written; no run folder is written.
pub fn submit(
    grid_path: &Path,
    options: &ExperimentOptions,
    submit: &SubmitOptions,
) -> Result<Submission> {
    check(submit)?;
    let grid = Grid::load(grid_path)?;
    let out = std::path::absolute(output_folder(&grid, options.out.as_deref()))
        .map_err(|e| Error::io(".", e))?;
    let planned = grid.plan(&out, &options.selection)?;
    if planned.is_empty() {
        return Err(Error::invalid(
            "--models/--datasets/--recipes/--seeds",
            "the selection keeps no run of the grid",
        ));
    }
    let states = super::inspect_all(&planned, &out)?;
    let indices: Vec<usize> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != RunState::Finished)
        .map(|(i, _)| i)
        .collect();
    let mut submission = Submission {
        out: out.clone(),
        runs: planned.len(),
        indices,
        file: None,
        job: None,
        report_job: None,
    };
    if submission.indices.is_empty() {
        return Ok(submission);
    }
    let grid_abs = std::path::absolute(grid_path).map_err(|e| Error::io(grid_path, e))?;
    let name = job_name(&grid);
    let threads = submit.cpus_per_task;
    let mut command = vec![submit.executable.display().to_string()];
    command.extend(task_args(
        &grid_abs,
        &out,
        &options.selection,
        options,
        threads,
    ));

    std::fs::create_dir_all(&out).at(&out)?;
    write_manifest(&out, &grid, &planned)?;
    match submit.scheduler {
        Scheduler::Slurm => {
            let dir = out.join("slurm");
            let logs = dir.join("logs");
            std::fs::create_dir_all(&logs).at(&logs)?;
            let script = dir.join("array.sbatch");
            let text = sbatch_script(
                &name,
                &command,
                &submission.indices,
                &out,
                submit,
                &planned,
                &states,
            );
            write_atomic(&script, text.as_bytes())?;
            let report_script = dir.join("report.sbatch");
            if submit.report {
                let mut r = String::from(
                    "#!/bin/bash\n# The grid's report, after its array (submitted with --dependency=afterany).\n",
                );
                r.push_str(&format!("#SBATCH --job-name={name}-report\n"));
                r.push_str(&format!(
                    "#SBATCH --output={}\n",
                    logs.join("%j-report.log").display()
                ));
                if let Some(p) = &submit.partition {
                    r.push_str(&format!("#SBATCH --partition={p}\n"));
                }
                r.push_str("set -euo pipefail\n");
                r.push_str(&format!(
                    "exec {} report {}\n",
                    shell_quote(&command[0]),
                    shell_quote(&out.display().to_string())
                ));
                write_atomic(&report_script, r.as_bytes())?;
            }
            submission.file = Some(script.clone());
            if !submit.dry_run {
                let job = sbatch(&[], &script)?;
                if submit.report {
                    let dependency = format!("--dependency=afterany:{job}");
                    submission.report_job = Some(sbatch(
                        &[std::ffi::OsStr::new(&dependency)],
                        &report_script,
                    )?);
                }
                submission.job = Some(job);
            }
        }
        Scheduler::K8s => {
            let dir = out.join("k8s");
            std::fs::create_dir_all(&dir).at(&dir)?;
            let file = dir.join("job.yaml");
            let text = k8s_manifest(&name, &command, submit, &planned, &states)?;
            write_atomic(&file, text.as_bytes())?;
            submission.file = Some(file);
        }
    }
    Ok(submission)
}
