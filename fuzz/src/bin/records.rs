//! A run's records as `report`, `--resume` and the grid runner read them: `metrics.csv`,
//! `predictions.csv`, `summary.json` and a checkpoint's `meta.json`.

use visionnet::io::{read_csv, read_json};
use visionnet::train::checkpoint::CheckpointMeta;
use visionnet::train::metrics::{EpochMetrics, Prediction, Summary};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some(csv) = visionnet_fuzz::stage("records.csv", data) {
            let _ = read_csv::<EpochMetrics>(&csv);
            let _ = read_csv::<Prediction>(&csv);
        }
        if let Some(json) = visionnet_fuzz::stage("records.json", data) {
            let _ = read_json::<Summary>(&json);
            let _ = read_json::<CheckpointMeta>(&json);
        }
    });
}
