//! What every target shares: the parsers read files, so a fuzz input is written to a file of
//! the name the parser expects, in a folder of this process's own under /dev/shm (memory, so
//! that a write costs microseconds; /tmp where there is no /dev/shm).

use std::path::{Path, PathBuf};

/// This process's scratch folder, created once.
pub fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("visionnet-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

/// `data` written to `scratch()/name`; None if the write failed (the input is then skipped).
pub fn stage(name: &str, data: &[u8]) -> Option<PathBuf> {
    let path = scratch().join(name);
    std::fs::write(&path, data).ok().map(|()| path)
}
