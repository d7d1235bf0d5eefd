//! A graceful stop on SIGINT / SIGTERM: the first signal asks training to stop after the
//! current step (the trainer then writes a checkpoint and says how to resume); a second signal
//! of either kind ends the process at once with 130 / 143. Checkpoints are written to a
//! temporary folder and renamed into place, so an exit at any moment keeps the last complete
//! one.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

struct Flags {
    /// Any stop was asked for (the second signal exits when this is set).
    any: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

static FLAGS: OnceLock<Option<Flags>> = OnceLock::new();

/// Installs the handlers (once per process; later calls do nothing). Without handlers (a
/// platform that refuses them) signals keep their default effect.
pub fn install() {
    FLAGS.get_or_init(|| {
        let flags = Flags {
            any: Arc::new(AtomicBool::new(false)),
            int: Arc::new(AtomicBool::new(false)),
            term: Arc::new(AtomicBool::new(false)),
        };
        let register = || -> std::io::Result<()> {
            // Order matters: the conditional exit runs first, so it sees `any` as it was
            // before this signal; set, the process exits at once.
            signal_hook::flag::register_conditional_shutdown(SIGINT, 130, flags.any.clone())?;
            signal_hook::flag::register_conditional_shutdown(SIGTERM, 143, flags.any.clone())?;
            signal_hook::flag::register(SIGINT, flags.int.clone())?;
            signal_hook::flag::register(SIGTERM, flags.term.clone())?;
            signal_hook::flag::register(SIGINT, flags.any.clone())?;
            signal_hook::flag::register(SIGTERM, flags.any.clone())?;
            Ok(())
        };
        register().ok().map(|_| flags)
    });
}

/// The signal a stop was asked for with (`SIGINT` or `SIGTERM`), if one was.
pub fn requested() -> Option<i32> {
    let flags = FLAGS.get()?.as_ref()?;
    if !flags.any.load(Ordering::SeqCst) {
        return None;
    }
    if flags.term.load(Ordering::SeqCst) {
        Some(SIGTERM)
    } else if flags.int.load(Ordering::SeqCst) {
        Some(SIGINT)
    } else {
        None
    }
}

/// The exit status for a stop by `signal`: 128 + its number (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// The name of `signal`.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Sends `signal` to the process `pid` (a child this process started); a process already gone
/// is no error.
pub fn send(pid: u32, signal: i32) {
    #[cfg(unix)]
    // SAFETY: kill(2) with a pid this process spawned and a valid signal number has no
    // memory-safety effect.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}
