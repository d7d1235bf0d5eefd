//! CIFAR binary files in the exact official layout, image folders, and the shared CIFAR-10 copy.

mod common;

use std::fs;

use common::*;
use visionnet::data::cifar_binary::{self, Cifar100Labels};
use visionnet::data::{Dataset, Format, ImageSet, Splits};

#[test]
fn cifar10_binary_round_trips_and_is_found_in_its_official_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    let (train, test) = write_cifar10(&dir);
    // Byte layout: record i of data_batch_1.bin is [label, 1024 R, 1024 G, 1024 B].
    let bytes = fs::read(dir.join("data_batch_1.bin")).unwrap();
    assert_eq!(bytes.len(), 10_000 * 3073);
    assert_eq!(bytes[3073 * 7] as u16, train.labels[7]);
    assert_eq!(&bytes[3073 * 7 + 1..3073 * 8], train.image(7));
    // Loaded from the parent folder (the official sub-folder is found).
    let data = Dataset::load(tmp.path(), Cifar100Labels::Fine).unwrap();
    assert_eq!(data.format, Format::Cifar10Binary);
    assert_eq!(data.train, train);
    assert_eq!(data.test, test);
    assert_eq!(data.classes()[9], "truck");
}

#[test]
fn cifar10_bad_files_are_refused_with_their_names() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10(tmp.path());
    let batch3 = tmp.path().join("data_batch_3.bin");
    let good = fs::read(&batch3).unwrap();

    // Truncated mid-record.
    fs::write(&batch3, &good[..good.len() - 100]).unwrap();
    let err = Dataset::load(tmp.path(), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("not a whole number"),
        "{err}"
    );

    // Whole records, but not 10,000 of them.
    fs::write(&batch3, &good[..3073 * 9_999]).unwrap();
    let err = Dataset::load(tmp.path(), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("9999 images"),
        "{err}"
    );

    // A label byte out of range.
    let mut bad = good.clone();
    bad[3073 * 42] = 10;
    fs::write(&batch3, &bad).unwrap();
    let err = Dataset::load(tmp.path(), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("record 42 has label 10"),
        "{err}"
    );

    // A missing batch file.
    fs::remove_file(&batch3).unwrap();
    let err = Dataset::load(tmp.path(), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data_batch_3.bin"), "{err}");
}

/// Writes a CIFAR-100 binary copy with `n_train` / `n_test` images; returns (train, test,
/// coarse labels of train).
fn write_cifar100(
    dir: &std::path::Path,
    n_train: usize,
    n_test: usize,
) -> (ImageSet, ImageSet, Vec<u8>) {
    fs::create_dir_all(dir).unwrap();
    let fine: Vec<String> = (0..100).map(|i| format!("fine{i}")).collect();
    let coarse: Vec<String> = (0..20).map(|i| format!("coarse{i}")).collect();
    fs::write(dir.join("fine_label_names.txt"), fine.join("\n")).unwrap();
    fs::write(dir.join("coarse_label_names.txt"), coarse.join("\n")).unwrap();
    let mut train = synthetic_set(n_train, 100, 32, 5);
    train.classes = fine.clone();
    let mut test = synthetic_set(n_test, 100, 32, 6);
    test.classes = fine;
    // The official mapping groups 5 fine classes per superclass; any fixed map will do here.
    let coarse_of = |fine: u16| ((fine as usize * 7) % 20) as u8;
    let train_coarse: Vec<u8> = train.labels.iter().map(|&l| coarse_of(l)).collect();
    let test_coarse: Vec<u8> = test.labels.iter().map(|&l| coarse_of(l)).collect();
    cifar_binary::write_cifar100_records(&dir.join("train.bin"), &train, &train_coarse).unwrap();
    cifar_binary::write_cifar100_records(&dir.join("test.bin"), &test, &test_coarse).unwrap();
    (train, test, train_coarse)
}

#[test]
fn cifar100_binary_gives_fine_and_coarse_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    let (train, test, coarse) = write_cifar100(&dir, 600, 200);
    // Byte layout: [coarse, fine, pixels].
    let bytes = fs::read(dir.join("train.bin")).unwrap();
    assert_eq!(bytes.len(), 600 * 3074);
    assert_eq!(
        (bytes[3074 * 5], bytes[3074 * 5 + 1] as u16),
        (coarse[5], train.labels[5])
    );

    let fine = Dataset::load(tmp.path(), Cifar100Labels::Fine).unwrap();
    assert_eq!(fine.format, Format::Cifar100Binary);
    assert_eq!(fine.train, train);
    assert_eq!(fine.test, test);
    assert_eq!(fine.classes().len(), 100);

    let by_coarse = Dataset::load(&dir, Cifar100Labels::Coarse).unwrap();
    assert_eq!(by_coarse.classes().len(), 20);
    assert_eq!(by_coarse.classes()[3], "coarse3");
    assert_eq!(
        by_coarse.train.labels,
        coarse.iter().map(|&c| c as u16).collect::<Vec<_>>()
    );
    assert_eq!(by_coarse.train.pixels, train.pixels);
}

#[test]
fn cifar100_bad_label_and_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar100(tmp.path(), 50, 20);
    let test_bin = tmp.path().join("test.bin");
    let mut bytes = fs::read(&test_bin).unwrap();
    bytes[3074 * 3 + 1] = 100; // fine label 100 of 0..99
    fs::write(&test_bin, &bytes).unwrap();
    let err = Dataset::load(tmp.path(), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test.bin") && err.contains("record 3 has label 100"),
        "{err}"
    );
    // The coarse labels of that file are still fine.
    Dataset::load(tmp.path(), Cifar100Labels::Coarse).unwrap();
    fs::write(tmp.path().join("coarse_label_names.txt"), "a\nb\n").unwrap();
    let err = Dataset::load(tmp.path(), Cifar100Labels::Coarse)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("coarse_label_names.txt") && err.contains("expected 20"),
        "{err}"
    );
}

#[test]
fn image_folders_load_every_format_losslessly() {
    let tmp = tempfile::tempdir().unwrap();
    let set = synthetic_set(8, 2, 12, 3);
    // Write the same images as PNG, BMP and PPM (lossless) and one JPEG (lossy).
    for split in ["train", "test"] {
        for (i, ext) in ["png", "bmp", "ppm", "png"].iter().enumerate() {
            for c in 0..2 {
                let dir = tmp.path().join(split).join(format!("class{c}"));
                fs::create_dir_all(&dir).unwrap();
                let index = i * 2 + c;
                let chw = set.image(index);
                let rgb: Vec<u8> = (0..144)
                    .flat_map(|p| [chw[p], chw[144 + p], chw[288 + p]])
                    .collect();
                image::save_buffer(
                    dir.join(format!("img{i}.{ext}")),
                    &rgb,
                    12,
                    12,
                    image::ExtendedColorType::Rgb8,
                )
                .unwrap();
            }
        }
    }
    let jpeg = tmp.path().join("train/class0/zz.JPG");
    image::save_buffer(
        &jpeg,
        &[128u8; 12 * 12 * 3],
        12,
        12,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    fs::write(tmp.path().join("train/class0/notes.txt"), "not an image").unwrap();

    let data = Dataset::load(tmp.path(), Cifar100Labels::Fine).unwrap();
    assert_eq!(data.format, Format::ImageFolder);
    assert_eq!(data.train.shape, [3, 12, 12]);
    assert_eq!(data.classes(), ["class0", "class1"]);
    assert_eq!(data.train.class_counts(), vec![5, 4]);
    assert_eq!(data.test.class_counts(), vec![4, 4]);
    // Sorted file order in class0: img0.png, img1.bmp, img2.ppm, img3.png, zz.JPG.
    for (k, i) in [0usize, 1, 2, 3].iter().enumerate() {
        assert_eq!(data.train.image(k), set.image(i * 2), "image {k} of class0");
    }
    // The JPEG decodes to about its flat grey.
    assert!(
        data.train
            .image(4)
            .iter()
            .all(|&v| (v as i32 - 128).abs() <= 3)
    );
}

#[test]
fn image_folder_errors_name_the_file_or_class() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_folder(tmp.path(), 3, 4, 8);
    let load = || {
        Dataset::load(tmp.path(), Cifar100Labels::Fine)
            .unwrap_err()
            .to_string()
    };

    // An image that does not decode.
    let broken = tmp.path().join("train/class1/broken.png");
    fs::write(&broken, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let err = load();
    assert!(
        err.contains("broken.png") && err.contains("cannot decode"),
        "{err}"
    );
    fs::remove_file(&broken).unwrap();

    // An image of another size.
    let odd = tmp.path().join("test/class2/odd.png");
    image::save_buffer(
        &odd,
        &[0u8; 8 * 7 * 3],
        8,
        7,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let err = load();
    assert!(err.contains("odd.png") && err.contains("8x7"), "{err}");
    fs::remove_file(&odd).unwrap();

    // A class that train has and test lacks.
    fs::remove_dir_all(tmp.path().join("test/class1")).unwrap();
    let err = load();
    assert!(
        err.contains("class1") && err.contains("missing from test"),
        "{err}"
    );

    // An empty class folder.
    fs::create_dir_all(tmp.path().join("test/class1")).unwrap();
    let err = load();
    assert!(err.contains("class1") && err.contains("no images"), "{err}");
}

#[test]
fn missing_and_empty_folders_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Dataset::load(&tmp.path().join("nope"), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("no such directory"),
        "{err}"
    );
    let err = Dataset::load(tmp.path(), Cifar100Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no dataset"), "{err}");
}

#[test]
fn validation_split_is_stratified_seeded_and_disjoint() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_folder(tmp.path(), 4, 50, 8);
    let data = Dataset::load(tmp.path(), Cifar100Labels::Fine).unwrap();
    let a = Splits::carve(&data, 40, None, 1).unwrap();
    assert_eq!(a.val.len(), 40);
    assert_eq!(a.val.class_counts(), vec![10; 4]);
    assert_eq!(a.train.class_counts(), vec![40; 4]);
    assert_eq!(a.test.len(), 100);
    let b = Splits::carve(&data, 40, None, 1).unwrap();
    assert_eq!(a.val, b.val);
    let c = Splits::carve(&data, 40, None, 2).unwrap();
    assert_ne!(a.val, c.val);
    // A stratified training subset.
    let d = Splits::carve(&data, 40, Some(20), 1).unwrap();
    assert_eq!(d.train.class_counts(), vec![5; 4]);
    assert!(Splits::carve(&data, 200, None, 1).is_err());
    assert!(Splits::carve(&data, 40, Some(161), 1).is_err());
}

#[test]
fn the_shared_cifar10_copy_loads_whole() {
    let data = Dataset::load(&shared_cifar10(), Cifar100Labels::Fine).unwrap();
    assert_eq!(data.format, Format::ImageFolder);
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.train.shape, [3, 32, 32]);
    assert_eq!(data.train.class_counts(), vec![5_000; 10]);
    assert_eq!(data.test.class_counts(), vec![1_000; 10]);
    assert_eq!(data.classes()[0], "airplane");
    // Real photographs: per-channel means near CIFAR-10's published 0.49, 0.48, 0.45.
    let (mean, std) = data.train.channel_stats();
    for (m, expected) in mean.iter().zip([0.491, 0.482, 0.447]) {
        assert!((m - expected).abs() < 0.01, "mean {mean:?}");
    }
    assert!(std.iter().all(|s| (0.2..0.3).contains(s)), "std {std:?}");
    eprintln!(
        "shared CIFAR-10 copy: 60,000 images in {:.2} s",
        data.load_seconds
    );
}
