//! Files a run, a grid, a report or an explanation writes and reads back: CSV and JSON records,
//! every write atomic (a temp file in the same folder, then a rename), so that a reader (or a
//! run killed mid-write) sees the old content or the new, never a mix. The bottom floor beside
//! `error` and `stats`: every layer uses it, it uses nothing of the crate but `error`.

use std::fs;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Reads a CSV file of `T` rows.
pub fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::data(path, e.to_string()))?;
    reader
        .deserialize()
        .map(|row| row.map_err(|e| Error::data(path, format!("bad row: {e}"))))
        .collect()
}

/// Writes `rows` as CSV to `path` atomically (temp file, then rename).
pub fn write_csv<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .serialize(row)
            .map_err(|e| Error::data(path, e.to_string()))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::data(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes a CSV file atomically: `header`, then one record per row (a struct, or a list of
/// fields), so that a file with no rows still names its columns.
pub fn write_rows<H, R>(path: &Path, header: H, rows: impl IntoIterator<Item = R>) -> Result<()>
where
    H: IntoIterator,
    H::Item: AsRef<[u8]>,
    R: serde::Serialize,
{
    let bad = |e: csv::Error| Error::data(path, e.to_string());
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.write_record(header).map_err(bad)?;
    for row in rows {
        writer.serialize(row).map_err(bad)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::data(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::data(path, e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Reads JSON from `path`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).at(path)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::data(path, format!("not the expected JSON: {e}")))
}

/// Writes `bytes` to `path` through a temp file in the same folder and a rename, so readers
/// see the old content or the new, never a mix, even if the process dies mid-write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        use std::io::Write;
        let mut file = fs::File::create(&tmp).at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)
}
