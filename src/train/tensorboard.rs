//! TensorBoard event files: scalars written as TensorFlow `Event` protocol buffers in TFRecord
//! framing, the format TensorBoard reads (`events.out.tfevents.*`).
//!
//! The messages below are the subset of `tensorflow/core/util/event.proto` and
//! `tensorflow/core/framework/summary.proto` that scalars need, with the same field numbers;
//! prost encodes them.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, IoContext, Result};

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "EventKind", tags = "3, 5")]
    pub what: Option<EventKind>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EventKind {
    /// The first event of a file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// A summary of values.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// Tagged values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a `simple_value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The series name, e.g. `train/loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar.
    #[prost(float, tag = "2")]
    pub simple_value: f32,
}

/// TFRecord's masked CRC-32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Appends scalar events to one `events.out.tfevents.*` file in a folder.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Starts a new event file in `dir` (TensorBoard reads every event file in a folder).
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).at(dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let path = dir.join(format!(
            "events.out.tfevents.{}.visionnet.{}.{}",
            now.as_secs(),
            std::process::id(),
            now.subsec_nanos()
        ));
        let out = BufWriter::new(File::create(&path).at(&path)?);
        let mut writer = Self { path, out };
        writer.write_event(&Event {
            wall_time: now.as_secs_f64(),
            step: 0,
            what: Some(EventKind::FileVersion("brain.Event:2".to_string())),
        })?;
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: &Event) -> Result<()> {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        let path = self.path.clone();
        self.out.write_all(&len).at(&path)?;
        self.out
            .write_all(&masked_crc(&len).to_le_bytes())
            .at(&path)?;
        self.out.write_all(&data).at(&path)?;
        self.out
            .write_all(&masked_crc(&data).to_le_bytes())
            .at(&path)?;
        Ok(())
    }

    /// Writes the scalars `(tag, value)` at `step` and flushes them to disk.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let wall_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let summary = Summary {
            value: values
                .iter()
                .map(|(tag, v)| SummaryValue {
                    tag: tag.to_string(),
                    simple_value: *v as f32,
                })
                .collect(),
        };
        self.write_event(&Event {
            wall_time,
            step,
            what: Some(EventKind::Summary(summary)),
        })?;
        let path = self.path.clone();
        self.out.flush().at(&path)
    }
}

/// Reads every event of an event file, checking both CRCs of every record.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = fs::read(path).at(path)?;
    let mut events = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let bad = |what: &str| Error::data(path, format!("corrupt TFRecord: {what}"));
        if rest.len() < 12 {
            return Err(bad("truncated header"));
        }
        let len_bytes = &rest[..8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
        if len_crc != masked_crc(len_bytes) {
            return Err(bad("length CRC mismatch"));
        }
        if rest.len() < 12 + len + 4 {
            return Err(bad("truncated record"));
        }
        let data = &rest[12..12 + len];
        let data_crc = u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap());
        if data_crc != masked_crc(data) {
            return Err(bad("data CRC mismatch"));
        }
        events.push(Event::decode(data).map_err(|e| bad(&e.to_string()))?);
        rest = &rest[16 + len..];
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow() {
        // TensorFlow's crc32c_test: Mask(Value("foo")) != Value("foo"), and the known value of
        // crc32c("123456789") = 0xe3069283 (the CRC-32C check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let crc: u32 = 0xe306_9283;
        assert_eq!(
            masked_crc(b"123456789"),
            crc.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn scalars_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        writer
            .scalars(1, &[("train/loss", 2.5), ("val/accuracy", 0.25)])
            .unwrap();
        writer.scalars(2, &[("train/loss", 1.5)]).unwrap();
        let events = read_events(writer.path()).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].what,
            Some(EventKind::FileVersion("brain.Event:2".into()))
        );
        let Some(EventKind::Summary(s)) = &events[1].what else {
            panic!("not a summary")
        };
        assert_eq!(events[1].step, 1);
        assert_eq!(s.value[1].tag, "val/accuracy");
        assert_eq!(s.value[1].simple_value, 0.25);
        // A flipped byte is detected.
        let mut bytes = fs::read(writer.path()).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        fs::write(writer.path(), bytes).unwrap();
        assert!(read_events(writer.path()).is_err());
    }
}
