//! `metrics.csv`, `predictions.csv` (CSV with headers) and `summary.json`, `meta.json` (JSON).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = serde_json::from_slice::<serde_json::Value>(data);
        let mut reader = csv::ReaderBuilder::new().from_reader(data);
        let _ = reader.headers().map(|h| h.len());
        for record in reader.records() {
            if record.is_err() {
                break;
            }
        }
    });
}
