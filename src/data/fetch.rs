//! `visionnet data fetch`: download an official CIFAR archive, check its MD5, unpack it safely.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use md5::{Digest, Md5};

use crate::error::{Error, IoContext, Result};

/// An official dataset archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archive {
    /// Name on the command line.
    pub name: &'static str,
    /// Where the dataset's authors publish it.
    pub url: &'static str,
    /// MD5 the authors publish for it (hex).
    pub md5: &'static str,
    /// The folder the archive unpacks to.
    pub folder: &'static str,
}

/// CIFAR-10, binary version (162 MB).
pub const CIFAR10: Archive = Archive {
    name: "cifar10",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    folder: super::cifar_binary::CIFAR10_DIR,
};

/// CIFAR-100, binary version (161 MB).
pub const CIFAR100: Archive = Archive {
    name: "cifar100",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    folder: super::cifar_binary::CIFAR100_DIR,
};

/// The archive called `name` (`cifar10` or `cifar100`).
pub fn archive(name: &str) -> Result<Archive> {
    [CIFAR10, CIFAR100]
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            Error::invalid(
                "dataset",
                format!("unknown dataset '{name}' (cifar10, cifar100)"),
            )
        })
}

/// Downloads `url` to `dest`, returning the MD5 of what was written.
fn download(url: &str, dest: &Path) -> Result<String> {
    let response = ureq::get(url).call().map_err(|e| Error::Download {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    let mut reader = response.into_body().into_reader();
    let mut file = File::create(dest).at(dest)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buffer).map_err(|e| Error::Download {
            url: url.to_string(),
            message: format!("download broke off: {e}"),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).at(dest)?;
    }
    file.sync_all().at(dest)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The path `entry` names inside `dir`, or an error if it would land outside `dir`.
fn contained_path(dir: &Path, archive: &Path, entry: &Path) -> Result<PathBuf> {
    let mut out = dir.to_path_buf();
    for component in entry.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => {
                return Err(Error::data(
                    archive,
                    format!(
                        "refusing to unpack '{}': it would land outside {}",
                        entry.display(),
                        dir.display()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Unpacks the `.tar.gz` `archive` into `dir`. Only regular files and folders are written; an
/// entry whose path is absolute or climbs out with `..`, or a link, is refused before anything
/// of the archive is written.
pub fn unpack(archive: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let open = || -> Result<tar::Archive<flate2::read::GzDecoder<BufReader<File>>>> {
        let file = File::open(archive).at(archive)?;
        Ok(tar::Archive::new(flate2::read::GzDecoder::new(
            BufReader::new(file),
        )))
    };
    let bad = |e: std::io::Error| Error::data(archive, format!("not a readable .tar.gz: {e}"));
    // First pass: check every entry, so a bad archive writes nothing.
    let mut tar = open()?;
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        contained_path(dir, archive, &path)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(Error::data(
                archive,
                format!(
                    "refusing to unpack '{}': only files and folders are allowed",
                    path.display()
                ),
            ));
        }
    }
    // Second pass: write.
    let mut written = Vec::new();
    let mut tar = open()?;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let target = contained_path(dir, archive, &path)?;
        if entry.header().entry_type().is_dir() {
            fs::create_dir_all(&target).at(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        let mut out = File::create(&target).at(&target)?;
        std::io::copy(&mut entry, &mut out).map_err(bad)?;
        written.push(target);
    }
    Ok(written)
}

/// Downloads `archive` into `dir`, checks its MD5, and unpacks it there. `url` and `md5`
/// replace the official address and checksum (a mirror). Returns the dataset folder. Nothing is
/// unpacked if the checksum does not match; the download itself is removed either way.
pub fn fetch(
    archive: Archive,
    dir: &Path,
    url: Option<&str>,
    md5: Option<&str>,
) -> Result<PathBuf> {
    fs::create_dir_all(dir).at(dir)?;
    let url = url.unwrap_or(archive.url);
    let expected = md5.unwrap_or(archive.md5).to_ascii_lowercase();
    let file_name = url
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("archive.tar.gz");
    let partial = dir.join(format!(".{file_name}.part"));
    let result = (|| {
        let md5 = download(url, &partial)?;
        if md5 != expected {
            return Err(Error::Download {
                url: url.to_string(),
                message: format!(
                    "MD5 is {md5}, expected {expected}: corrupt or not the archive asked for"
                ),
            });
        }
        unpack(&partial, dir)
    })();
    let _ = fs::remove_file(&partial);
    result?;
    Ok(dir.join(archive.folder))
}
