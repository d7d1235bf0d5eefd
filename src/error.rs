//! The crate's error type: every variant names the file, flag or value at fault.

use std::path::{Path, PathBuf};

/// Errors of the data, model and training layers. Each message names what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}{}", disk_full_hint(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A dataset file or directory does not hold what its format promises.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    /// A value given by the user (flag, config key) is out of range or unknown.
    #[error("invalid value for {name}: {message}")]
    Invalid { name: String, message: String },
    /// A checkpoint is missing, corrupt, or from another model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// Training diverged: the loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, step {step}; \
         the last good checkpoint is {last_good}"
    )]
    Diverged {
        value: String,
        epoch: usize,
        step: usize,
        last_good: String,
    },
    /// A download failed or its content did not match the expected checksum.
    #[error("{url}: {message}")]
    Download { url: String, message: String },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A data error: `path` does not hold what it should.
    pub fn data(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// An invalid user-supplied value for the flag or key `name`.
    pub fn invalid(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            name: name.into(),
            message: message.into(),
        }
    }

    /// A checkpoint error on `path`.
    pub fn checkpoint(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

/// What a full disk adds to its error: what happened and what to do, in words.
const DISK_FULL: &str = ": the disk is full; files written before are intact (a run keeps its \
     previous checkpoint): free some space, then continue (`visionnet train --resume RUN`)";

fn disk_full_hint(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::StorageFull {
        DISK_FULL
    } else {
        ""
    }
}

/// Adds the path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Map an I/O error to [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// Checks, before any work, that the output folder `path` (given by `flag`) can be made and
/// written: its nearest existing ancestor must be a folder a file can be created in (missing
/// folders below it are created later). A read-only folder or file system, or a file where a
/// folder should be, is an error naming it.
pub fn check_output_dir(path: &Path, flag: &str) -> Result<()> {
    let mut at = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    if !at.is_dir() {
        return Err(Error::invalid(
            flag,
            format!(
                "{} is not a folder, so {} cannot be made",
                at.display(),
                path.display()
            ),
        ));
    }
    let probe = at.join(format!(".visionnet-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::invalid(
            flag,
            format!(
                "{} cannot be written ({e}), so nothing was started in {}",
                at.display(),
                path.display()
            ),
        )),
    }
}
