//! Replays the fuzz corpus (`fuzz/corpus/TARGET/`: the seeds, the inputs the fuzzers kept, and
//! every crash they found, made a regression input) through visionnet's own parsers: each file
//! must give a value or a clean error, never a panic or a hang. Quick (a few hundred small
//! files); the fuzzing itself is `fuzz/run.sh`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use visionnet::data::cifar_binary::Cifar100Labels;
use visionnet::data::image_file::{SizePolicy, read_rgb};
use visionnet::data::{cifar_binary, fetch};
use visionnet::io::{read_csv, read_json};
use visionnet::model::import::{pickle_scan, read_tensors};
use visionnet::train::checkpoint::CheckpointMeta;
use visionnet::train::experiment::Grid;
use visionnet::train::metrics::{EpochMetrics, Prediction, Summary};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs `parse` on every file of `target`'s corpus, each within 10 s.
fn replay(target: &str, mut parse: impl FnMut(&Path)) -> usize {
    let files = corpus(target);
    for file in &files {
        let started = Instant::now();
        parse(file);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: took {:?}",
            file.display(),
            started.elapsed()
        );
    }
    files.len()
}

/// `file` copied to `dir/name` (the parsers pick formats by file name).
fn staged(dir: &Path, file: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(file, &path).unwrap();
    path
}

#[test]
fn weight_files() {
    let tmp = tempfile::tempdir().unwrap();
    let n = replay("pickle", |f| {
        let bytes = std::fs::read(f).unwrap();
        let _ = pickle_scan::check_stream(&bytes, 5);
        let _ = read_tensors(&staged(tmp.path(), f, "weights.pth"));
    });
    let m = replay("safetensors", |f| {
        let _ = read_tensors(&staged(tmp.path(), f, "weights.safetensors"));
    });
    eprintln!("{n} pickle and {m} safetensors inputs");
}

#[test]
fn image_files() {
    let n = replay("image", |f| {
        let _ = read_rgb(f, [3, 32, 32], SizePolicy::Resize);
        let _ = read_rgb(f, [3, 32, 32], SizePolicy::Refuse);
    });
    eprintln!("{n} image inputs");
}

#[test]
fn configs_and_grids() {
    let tmp = tempfile::tempdir().unwrap();
    let n = replay("toml", |f| {
        let _ = Grid::load(&staged(tmp.path(), f, "grid.toml"));
    });
    eprintln!("{n} toml inputs");
}

#[test]
fn run_records() {
    let tmp = tempfile::tempdir().unwrap();
    let n = replay("records", |f| {
        let csv = staged(tmp.path(), f, "records.csv");
        let _ = read_csv::<EpochMetrics>(&csv);
        let _ = read_csv::<Prediction>(&csv);
        let json = staged(tmp.path(), f, "records.json");
        let _ = read_json::<Summary>(&json);
        let _ = read_json::<CheckpointMeta>(&json);
    });
    eprintln!("{n} record inputs");
}

#[test]
fn archives_and_cifar_batches() {
    let n = replay("targz", |f| {
        let out = tempfile::tempdir().unwrap();
        if let Ok(files) = fetch::unpack(f, out.path()) {
            // Nothing is written outside the folder it unpacks to.
            for file in files {
                assert!(
                    file.starts_with(out.path()),
                    "{} escaped to {}",
                    f.display(),
                    file.display()
                );
            }
        }
    });
    let m = replay("cifar", |f| {
        let dir = tempfile::tempdir().unwrap();
        let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
        std::fs::write(dir.path().join(cifar_binary::CIFAR10_META_FILE), names).unwrap();
        for file in cifar_binary::CIFAR10_TRAIN_FILES {
            staged(dir.path(), f, file);
        }
        staged(dir.path(), f, "test_batch.bin");
        let _ = cifar_binary::load_cifar10(dir.path());
        // The same bytes as CIFAR-100's two files (any record count: the records are parsed).
        let hundred = tempfile::tempdir().unwrap();
        for (file, count) in [
            ("fine_label_names.txt", 100),
            ("coarse_label_names.txt", 20),
        ] {
            let text: String = (0..count).map(|i| format!("class{i}\n")).collect();
            std::fs::write(hundred.path().join(file), text).unwrap();
        }
        staged(hundred.path(), f, "train.bin");
        staged(hundred.path(), f, "test.bin");
        for labels in [Cifar100Labels::Fine, Cifar100Labels::Coarse] {
            let _ = cifar_binary::load_cifar100(hundred.path(), labels);
        }
    });
    eprintln!("{n} archive and {m} CIFAR inputs");
}
