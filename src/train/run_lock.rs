//! The lock of a run folder: one process trains a run at a time, on whichever host it runs.
//!
//! `RUN_DIR/.lock` holds its holder ([`Holder`]: host, pid, the process's start time, the
//! scheduler's job) as JSON. It is created atomically: written under a temporary name, then
//! hard-linked into place, which fails when a lock is already there (also on NFS, where the
//! link is the classic atomic create). While it holds the lock, a process keeps an advisory
//! `flock` on the file and touches it every [`HEARTBEAT`]; it removes the file when done.
//!
//! A process that dies (killed by `scancel`, a node that fails) leaves the file behind, and the
//! lock is then stale. The next process to want the run takes it over:
//! - on the same host as soon as the holder is gone (its pid is not running, or is another
//!   process: the start time differs), read from `/proc`;
//! - from any host when the file has not been touched for [`STALE_AFTER`] (a dead node).
//!
//! Taking over rewrites the file in place under its `flock`, so of two processes taking over
//! the same stale lock one wins and the other sees the winner as the holder. A process that
//! takes a lock its own process or its parent holds (`visionnet experiment` holds a run's lock
//! while the `visionnet train` it started trains it) gets a nested lock, released with nothing
//! removed.

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::error::{Error, IoContext, Result};

/// The lock's file name in a run folder.
pub const FILE: &str = ".lock";

/// How often a holder touches its lock.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

/// A lock not touched for this long is stale whichever host holds it (a lost node). Long
/// against [`HEARTBEAT`] so that NFS attribute caching and clock skew between hosts do not
/// make a live lock look stale.
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// A lock file being written (or left unreadable by a crash while writing) counts as live for
/// this long.
const UNREADABLE_GRACE: Duration = Duration::from_secs(10);

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// The host name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`), which tells a
    /// reused pid from the holder; absent where there is no `/proc`.
    pub start: Option<u64>,
    /// When it took the lock (RFC 3339).
    pub since: String,
    /// The scheduler's job, when there is one: `SLURM job 12_3`.
    pub job: Option<String>,
}

impl Holder {
    /// This process.
    pub fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            host: host_name(),
            pid,
            start: start_time(pid),
            since: chrono::Local::now().to_rfc3339(),
            job: scheduler_job(),
        }
    }

    /// `pid 123 on host node1 (SLURM job 12_3, since 2026-12-01T20:00:00+00:00)`.
    pub fn describe(&self) -> String {
        let job = self
            .job
            .as_ref()
            .map(|j| format!("{j}, "))
            .unwrap_or_default();
        format!(
            "pid {} on host {} ({job}since {})",
            self.pid, self.host, self.since
        )
    }

    /// Whether this process is running, as far as this host can tell: `None` when it is on
    /// another host or this one has no `/proc`.
    pub fn alive(&self) -> Option<bool> {
        if self.host != host_name() || !Path::new("/proc/self/stat").is_file() {
            return None;
        }
        let now = start_time(self.pid);
        Some(match (now, self.start) {
            (None, _) => false,
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
        })
    }
}

/// The host name: the kernel's, else `$HOSTNAME`.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Field 22 of `/proc/PID/stat`: the process's start time after boot, in clock ticks.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The SLURM array task or job this process runs in, if any.
fn scheduler_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("SLURM_ARRAY_JOB_ID"),
        var("SLURM_ARRAY_TASK_ID"),
        var("SLURM_JOB_ID"),
    ) {
        (Some(array), Some(task), _) => Some(format!("SLURM job {array}_{task}")),
        (_, _, Some(job)) => Some(format!("SLURM job {job}")),
        _ => var("JOB_COMPLETION_INDEX").map(|i| format!("Kubernetes job index {i}")),
    }
}

/// What a lock found on disk is worth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its holder is (or may be) at work.
    Live,
    /// Its holder is gone; the reason, for messages.
    Stale(String),
}

/// A lock file found in a run folder.
#[derive(Clone, Debug)]
pub struct Found {
    /// The lock file.
    pub path: PathBuf,
    /// Its holder (`None`: the file is unreadable).
    pub holder: Option<Holder>,
    /// Time since its holder last touched it.
    pub age: Duration,
    /// Live or stale.
    pub verdict: Verdict,
}

/// Judges a lock from what it says and when it was last touched.
fn judge(holder: Option<&Holder>, age: Duration) -> Verdict {
    let Some(holder) = holder else {
        return if age > UNREADABLE_GRACE {
            Verdict::Stale("the lock file is unreadable".to_string())
        } else {
            Verdict::Live
        };
    };
    match holder.alive() {
        Some(true) => Verdict::Live,
        Some(false) => Verdict::Stale(format!(
            "pid {} is no longer running on {}",
            holder.pid, holder.host
        )),
        None if age > STALE_AFTER => Verdict::Stale(format!("not touched for {} s", age.as_secs())),
        None => Verdict::Live,
    }
}

fn read_holder(file: &mut fs::File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn age_of(file: &fs::File) -> Duration {
    file.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// The lock of `run_dir`, if there is one, and whether it is live. Reads only: what `--status`
/// uses.
pub fn inspect(run_dir: &Path) -> Result<Option<Found>> {
    let path = run_dir.join(FILE);
    let mut file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let holder = read_holder(&mut file);
    let age = age_of(&file);
    let verdict = judge(holder.as_ref(), age);
    Ok(Some(Found {
        path,
        holder,
        age,
        verdict,
    }))
}

/// Whether `a` and `b` are the same file (so a lock opened earlier is still the one at the
/// path, not one removed and created anew meanwhile).
fn same_file(file: &fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.is_file()
    }
}

/// Writes `holder` as the lock's content and touches it.
fn write_holder(file: &mut fs::File, holder: &Holder) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(holder).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    file.set_modified(SystemTime::now())
}

/// Creates the lock file holding `me` atomically. `Ok(None)`: one is there already.
fn create(path: &Path, me: &Holder) -> Result<Option<fs::File>> {
    let tmp = path.with_file_name(format!("{FILE}.{}.{}.tmp", me.host, me.pid));
    {
        let mut file = fs::File::create(&tmp).at(&tmp)?;
        write_holder(&mut file, me).at(&tmp)?;
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        // A file system without hard links: an exclusive create, then the content (a reader in
        // between sees an unreadable lock, which counts as live for a while).
        Err(_) => match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut file) => {
                write_holder(&mut file, me).at(path)?;
                return Ok(Some(file));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        },
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    Ok(Some(file))
}

/// What [`try_acquire`] got.
#[derive(Debug)]
pub enum Acquired {
    /// The lock, held until dropped.
    Held(RunLock),
    /// Another live process holds it.
    Busy(Found),
}

/// A held run lock; released (its file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// The open lock file with its `flock`; `None` for a nested lock.
    file: Option<fs::File>,
    heartbeat: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// Set when a stale lock was taken over: whose it was and why it was stale.
    pub took_over: Option<String>,
}

impl RunLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this process (or its parent) held the lock already.
    pub fn is_nested(&self) -> bool {
        self.file.is_none()
    }

    fn held(path: PathBuf, file: fs::File, took_over: Option<String>) -> RunLock {
        let heartbeat = file.try_clone().ok().map(|touch| {
            let (tx, rx) = mpsc::channel::<()>();
            let handle = std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                    let _ = touch.set_modified(SystemTime::now());
                }
            });
            (tx, handle)
        });
        RunLock {
            path,
            file: Some(file),
            heartbeat,
            took_over,
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.heartbeat.take() {
            drop(tx);
            let _ = handle.join();
        }
        if let Some(file) = self.file.take() {
            // Only our own file: one removed by hand and taken by another process stays.
            if same_file(&file, &self.path) {
                let _ = fs::remove_file(&self.path);
            }
            drop(file);
        }
    }
}

/// Whether `holder` is this process or the one that started it, on this host.
fn is_mine(holder: &Holder) -> bool {
    let me = std::process::id();
    #[cfg(unix)]
    let parent = Some(std::os::unix::process::parent_id());
    #[cfg(not(unix))]
    let parent: Option<u32> = None;
    holder.host == host_name()
        && (holder.pid == me || Some(holder.pid) == parent)
        && holder.alive() != Some(false)
}

/// Takes the lock of `run_dir` (creating the folder), taking over a stale one; `Busy` when a
/// live process holds it.
pub fn try_acquire(run_dir: &Path) -> Result<Acquired> {
    fs::create_dir_all(run_dir).at(run_dir)?;
    let path = run_dir.join(FILE);
    let me = Holder::me();
    let mut last: Option<Found> = None;
    // Each pass either ends or sees the lock change (released, taken over, being written):
    // a bounded number of passes, a tenth of a second apart.
    for _ in 0..100 {
        if let Some(file) = create(&path, &me)? {
            // Nobody contends for the flock of a live holder's file (only stale locks are taken
            // over), so this succeeds unless the file system has no flock; the lock then rests
            // on the atomic create alone.
            let _ = file.try_lock();
            return Ok(Acquired::Held(RunLock::held(path, file, None)));
        }
        let mut file = match fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            // Released meanwhile: create it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let holder = read_holder(&mut file);
        let age = age_of(&file);
        let verdict = judge(holder.as_ref(), age);
        if let Some(h) = &holder
            && is_mine(h)
        {
            return Ok(Acquired::Held(RunLock {
                path,
                file: None,
                heartbeat: None,
                took_over: None,
            }));
        }
        let found = Found {
            path: path.clone(),
            holder: holder.clone(),
            age,
            verdict: verdict.clone(),
        };
        let why = match verdict {
            Verdict::Live if holder.is_some() => return Ok(Acquired::Busy(found)),
            Verdict::Live => {
                // Being written: look again shortly.
                last = Some(found);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Verdict::Stale(why) => why,
        };
        match file.try_lock() {
            Ok(()) | Err(fs::TryLockError::Error(_)) => {}
            Err(fs::TryLockError::WouldBlock) => {
                // Another process is taking it over, or an NFS client still holds it: look
                // again shortly (the winner's content will show).
                last = Some(found);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        if !same_file(&file, &path) {
            // Released and created anew since it was opened.
            continue;
        }
        write_holder(&mut file, &me).at(&path)?;
        let was = holder.map_or("an unreadable lock".to_string(), |h| h.describe());
        return Ok(Acquired::Held(RunLock::held(
            path,
            file,
            Some(format!("{was}: {why}")),
        )));
    }
    match last {
        Some(found) => Ok(Acquired::Busy(found)),
        None => Err(Error::data(
            &path,
            "the lock kept changing for 10 s; try again",
        )),
    }
}

/// The error for a run another process holds.
pub fn busy_error(run_dir: &Path, found: &Found) -> Error {
    let who = found.holder.as_ref().map_or_else(
        || "a process whose lock file is being written".to_string(),
        |h| h.describe(),
    );
    let stale = match &found.verdict {
        Verdict::Stale(why) => format!(" (stale: {why}, but it is being taken over)"),
        Verdict::Live => String::new(),
    };
    Error::data(
        run_dir,
        format!(
            "is being trained by {who}{stale}; its lock is {} (a lock from another host is taken \
             over once untouched for {} s)",
            found.path.display(),
            STALE_AFTER.as_secs()
        ),
    )
}

/// An error naming the process that holds `run_dir`'s lock, if a live one does (a quick check
/// before slow work; [`acquire`] is what decides).
pub fn check_free(run_dir: &Path) -> Result<()> {
    match inspect(run_dir)? {
        Some(found)
            if found.verdict == Verdict::Live && !found.holder.as_ref().is_some_and(is_mine) =>
        {
            Err(busy_error(run_dir, &found))
        }
        _ => Ok(()),
    }
}

/// Takes the lock of `run_dir`, or an error naming the process that holds it.
pub fn acquire(run_dir: &Path) -> Result<RunLock> {
    match try_acquire(run_dir)? {
        Acquired::Held(lock) => Ok(lock),
        Acquired::Busy(found) => Err(busy_error(run_dir, &found)),
    }
}

/// Files of a run folder that say nothing about the run: its lock, and the temporary files of
/// atomic writes a killed process left (`.run.json.tmp`).
pub fn is_bookkeeping(name: &str) -> bool {
    name == FILE || (name.starts_with('.') && name.ends_with(".tmp"))
}
