//! The CIFAR binary formats as the loaders read them. The input is every batch file of a
//! `cifar-10-batches-bin` folder (the five training batches and the test batch link to it:
//! `load_cifar10`, which holds each file to 10,000 records of 3,073 bytes) and both files of a
//! `cifar-100-binary` folder (`load_cifar100` with the fine and the coarse labels: 3,074-byte
//! records, any count, so the records themselves are parsed), beside valid class-name files.

use std::path::{Path, PathBuf};

use visionnet::data::cifar_binary::{self, Cifar100Labels};

/// A folder of `names` (file name, class count) and of links named `links` to `target`.
fn folder(dir: &Path, names: &[(&str, usize)], links: &[&str], target: &Path) {
    std::fs::create_dir_all(dir).expect("a CIFAR folder");
    for (file, count) in names {
        let text: String = (0..*count).map(|i| format!("class{i}\n")).collect();
        std::fs::write(dir.join(file), text).expect("a class-name file");
    }
    for link in links {
        let path = dir.join(link);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path).expect("a link to the input");
    }
}

fn main() {
    let scratch = visionnet_fuzz::scratch();
    let batch: PathBuf = scratch.join("input.bin");
    let ten = scratch.join("cifar-10-batches-bin");
    let train10: Vec<&str> = cifar_binary::CIFAR10_TRAIN_FILES.to_vec();
    let links10: Vec<&str> = train10.into_iter().chain(["test_batch.bin"]).collect();
    folder(
        &ten,
        &[(cifar_binary::CIFAR10_META_FILE, 10)],
        &links10,
        &batch,
    );
    let hundred = scratch.join("cifar-100-binary");
    folder(
        &hundred,
        &[
            ("fine_label_names.txt", 100),
            ("coarse_label_names.txt", 20),
        ],
        &["train.bin", "test.bin"],
        &batch,
    );
    afl::fuzz!(|data: &[u8]| {
        if std::fs::write(&batch, data).is_ok() {
            let _ = cifar_binary::load_cifar10(&ten);
            let _ = cifar_binary::load_cifar100(&hundred, Cifar100Labels::Fine);
            let _ = cifar_binary::load_cifar100(&hundred, Cifar100Labels::Coarse);
        }
    });
}
