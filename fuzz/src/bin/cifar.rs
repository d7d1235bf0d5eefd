//! The CIFAR-10 binary format as `load_cifar10` reads a `cifar-10-batches-bin` folder: the input
//! is every batch file (the five training batches and the test batch link to it), beside a
//! valid `batches.meta.txt`.

use visionnet::data::cifar_binary;

fn main() {
    let dir = visionnet_fuzz::scratch().join("cifar");
    std::fs::create_dir_all(&dir).expect("the CIFAR folder");
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join(cifar_binary::CIFAR10_META_FILE), names).expect("batches.meta.txt");
    let batch = dir.join("input.bin");
    for file in cifar_binary::CIFAR10_TRAIN_FILES
        .iter()
        .copied()
        .chain(["test_batch.bin"])
    {
        let link = dir.join(file);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&batch, &link).expect("a link to the input");
    }
    afl::fuzz!(|data: &[u8]| {
        if std::fs::write(&batch, data).is_ok() {
            let _ = cifar_binary::load_cifar10(&dir);
        }
    });
}
