//! Dataset readers on files the tests write themselves: happy paths with distinct constant
//! values per channel (a swapped plane order would show), and every error with its file and
//! byte offset.

use std::io::Write;
use std::path::{Path, PathBuf};

use kd_core::data::{self, DataError, DataFormat, Split, cifar, folder, idx};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    bytes
}

/// Three 2x3 images whose pixels are `10·image + position`.
fn idx_fixture(dir: &Path, compress: bool) -> (PathBuf, PathBuf) {
    let pixels: Vec<u8> = (0..3)
        .flat_map(|i| (0..6).map(move |p| 10 * i + p))
        .collect();
    let (images, labels) = (idx_images(3, 2, 3, &pixels), idx_labels(&[7, 0, 9]));
    let suffix = if compress { ".gz" } else { "" };
    let image_path = dir.join(format!("train-images-idx3-ubyte{suffix}"));
    let label_path = dir.join(format!("train-labels-idx1-ubyte{suffix}"));
    if compress {
        write(&image_path, &gzip(&images));
        write(&label_path, &gzip(&labels));
    } else {
        write(&image_path, &images);
        write(&label_path, &labels);
    }
    (image_path, label_path)
}

#[test]
fn idx_raw_and_gzip_read_the_same() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        idx_fixture(dir.path(), compress);
        let set = data::load_path(dir.path(), DataFormat::Idx, Split::Train).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (3, 1, 2, 3)
        );
        assert_eq!(set.labels, vec![7, 0, 9]);
        assert_eq!(set.image(1), &[10, 11, 12, 13, 14, 15]);
        assert_eq!(set.class_histogram(), vec![1, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
    }
}

#[test]
fn idx_single_image_file_finds_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = idx_fixture(dir.path(), true);
    let set = data::load_path(&images, DataFormat::Idx, Split::Train).unwrap();
    assert_eq!(set.labels, vec![7, 0, 9]);
}

#[test]
fn idx_bad_magic_names_file_and_offset_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-images-idx3-ubyte");
    write(&path, &[0, 0, 9, 3, 0, 0, 0, 0]);
    let err = idx::read_idx(&path, 3).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 0x0000_0903,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("x-images-idx3-ubyte") && text.contains("at byte 0"),
        "{text}"
    );
}

#[test]
fn idx_dimensions_whose_product_overflows_are_truncation_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-images-idx3-ubyte");
    write(&path, &idx_images(u32::MAX, u32::MAX, u32::MAX, &[1; 8]));
    match idx::read_idx(&path, 3).unwrap_err() {
        DataError::Truncated {
            offset,
            expected,
            found,
            ..
        } => assert_eq!((offset, expected, found), (24, u64::MAX, 24)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn idx_truncated_names_the_offset_where_data_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-images-idx3-ubyte");
    let mut bytes = idx_images(2, 2, 2, &[1; 8]);
    bytes.truncate(16 + 5);
    write(&path, &bytes);
    match idx::read_idx(&path, 3).unwrap_err() {
        DataError::Truncated {
            offset,
            expected,
            found,
            ..
        } => {
            assert_eq!((offset, expected, found), (21, 24, 21));
        }
        other => panic!("{other:?}"),
    }
    // A header cut short is truncation too.
    write(&path, &[0, 0, 8, 3, 0, 0]);
    assert!(matches!(
        idx::read_idx(&path, 3).unwrap_err(),
        DataError::Truncated { offset: 6, .. }
    ));
}

#[test]
fn idx_trailing_bytes_are_rejected_with_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o-labels-idx1-ubyte");
    let mut bytes = idx_labels(&[1, 2]);
    bytes.push(3);
    write(&path, &bytes);
    assert!(matches!(
        idx::read_idx(&path, 1).unwrap_err(),
        DataError::Oversized {
            offset: 10,
            expected: 10,
            found: 11,
            ..
        }
    ));
}

#[test]
fn idx_label_out_of_range_names_its_byte() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("train-images-idx3-ubyte");
    let labels = dir.path().join("train-labels-idx1-ubyte");
    write(&images, &idx_images(3, 1, 1, &[0, 0, 0]));
    write(&labels, &idx_labels(&[1, 2, 10]));
    let err = idx::read_pair(&images, &labels, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                offset: 10,
                label: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("train-labels-idx1-ubyte"));
}

#[test]
fn idx_count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("train-images-idx3-ubyte");
    let labels = dir.path().join("train-labels-idx1-ubyte");
    write(&images, &idx_images(2, 1, 1, &[0, 0]));
    write(&labels, &idx_labels(&[1, 2, 3]));
    let err = idx::read_pair(&images, &labels, 10).unwrap_err();
    assert!(matches!(
        err,
        DataError::CountMismatch {
            n_images: 2,
            n_labels: 3,
            ..
        }
    ));
}

#[test]
fn idx_corrupt_gzip_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-images-idx3-ubyte.gz");
    let mut bytes = gzip(&idx_images(2, 2, 2, &[1; 8]));
    bytes.truncate(bytes.len() / 2);
    write(&path, &bytes);
    let err = idx::read_idx(&path, 3).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("c-images-idx3-ubyte.gz"));
}

/// A CIFAR record whose R, G and B planes are constant and distinct.
fn cifar_record(labels: &[u8], rgb: [u8; 3]) -> Vec<u8> {
    let mut record = labels.to_vec();
    for value in rgb {
        record.extend(std::iter::repeat_n(value, 1024));
    }
    record
}

#[test]
fn cifar10_planes_are_r_then_g_then_b() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    let mut bytes = cifar_record(&[3], [10, 20, 30]);
    bytes.extend(cifar_record(&[9], [200, 100, 50]));
    write(&path, &bytes);
    let set = cifar::read_file(&path, cifar::CifarKind::Cifar10).unwrap();
    assert_eq!(set.labels, vec![3, 9]);
    assert_eq!((set.channels, set.height, set.width), (3, 32, 32));
    let image = set.image(1);
    assert_eq!(
        (image[0], image[1024], image[2048], image[3071]),
        (200, 100, 50, 50)
    );
    let stats = data::stats(&set);
    let expected = [105.0 / 255.0, 60.0 / 255.0, 40.0 / 255.0];
    for (mean, expected) in stats.mean.iter().zip(expected) {
        assert!((mean - expected).abs() < 1e-12, "{stats:?}");
    }
    // Each channel holds two values, 95, 40 and 10 away from its mean.
    let expected_std = [95.0 / 255.0, 40.0 / 255.0, 10.0 / 255.0];
    for (std, expected) in stats.std.iter().zip(expected_std) {
        assert!((std - expected).abs() < 1e-9, "{stats:?}");
    }
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.bin");
    write(&path, &cifar_record(&[19, 99], [1, 2, 3]));
    let set = cifar::read_file(&path, cifar::CifarKind::Cifar100).unwrap();
    assert_eq!((set.labels.clone(), set.num_classes), (vec![99], 100));
    assert_eq!(set.image(0)[2048], 3);
}

#[test]
fn cifar_split_files_are_found_in_the_archive_folder() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&inner).unwrap();
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ] {
        write(&inner.join(name), &cifar_record(&[1], [5, 6, 7]));
    }
    write(
        &inner.join("test_batch.bin"),
        &cifar_record(&[2], [5, 6, 7]),
    );
    let train = data::load_path(dir.path(), DataFormat::Cifar10, Split::Train).unwrap();
    let test = data::load_path(dir.path(), DataFormat::Cifar10, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (5, 1));
    let missing = data::load_path(&inner.join("nope"), DataFormat::Cifar10, Split::Train);
    assert!(matches!(missing.unwrap_err(), DataError::Missing { .. }));
}

#[test]
fn cifar_size_not_a_multiple_of_the_record_names_the_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test_batch.bin");
    let mut bytes = cifar_record(&[1], [0, 0, 0]);
    bytes.extend([1, 2, 3]);
    write(&path, &bytes);
    match cifar::read_file(&path, cifar::CifarKind::Cifar10).unwrap_err() {
        DataError::RecordSize {
            size,
            record,
            offset,
            ..
        } => assert_eq!((size, record, offset), (3076, 3073, 3073)),
        other => panic!("{other:?}"),
    }
    // The same bytes are not a whole number of CIFAR-100 records either.
    assert!(matches!(
        cifar::read_file(&path, cifar::CifarKind::Cifar100).unwrap_err(),
        DataError::RecordSize {
            record: 3074,
            offset: 3074,
            ..
        }
    ));
}

#[test]
fn cifar_label_out_of_range_names_its_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    let mut bytes = cifar_record(&[1], [0, 0, 0]);
    bytes.extend(cifar_record(&[12], [0, 0, 0]));
    write(&path, &bytes);
    assert!(matches!(
        cifar::read_file(&path, cifar::CifarKind::Cifar10).unwrap_err(),
        DataError::LabelOutOfRange {
            offset: 3073,
            label: 12,
            num_classes: 10,
            ..
        }
    ));
    let path100 = dir.path().join("train.bin");
    let mut bytes = cifar_record(&[0, 5], [0, 0, 0]);
    bytes.extend(cifar_record(&[3, 100], [0, 0, 0]));
    write(&path100, &bytes);
    assert!(matches!(
        cifar::read_file(&path100, cifar::CifarKind::Cifar100).unwrap_err(),
        DataError::LabelOutOfRange {
            offset: 3075,
            label: 100,
            num_classes: 100,
            ..
        }
    ));
    let mut bytes = cifar_record(&[20, 5], [0, 0, 0]);
    bytes.extend(cifar_record(&[3, 1], [0, 0, 0]));
    write(&path100, &bytes);
    assert!(matches!(
        cifar::read_file(&path100, cifar::CifarKind::Cifar100).unwrap_err(),
        DataError::LabelOutOfRange {
            offset: 0,
            label: 20,
            num_classes: 20,
            ..
        }
    ));
}

fn png(path: &Path, width: u32, height: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(width, height, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

#[test]
fn folder_reads_classes_in_sorted_order_with_planar_channels() {
    let dir = tempfile::tempdir().unwrap();
    for (class, rgb) in [("b_cat", [200, 100, 50]), ("a_dog", [1, 2, 3])] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        png(&dir.path().join(class).join("0.png"), 4, 2, rgb);
    }
    png(&dir.path().join("a_dog").join("1.PNG"), 4, 2, [9, 8, 7]);
    std::fs::write(dir.path().join("a_dog").join("notes.txt"), "ignored").unwrap();
    let set = folder::read_folder(dir.path()).unwrap();
    assert_eq!(set.class_names, vec!["a_dog", "b_cat"]);
    assert_eq!(set.labels, vec![0, 0, 1]);
    assert_eq!((set.channels, set.height, set.width), (3, 2, 4));
    let cat = set.image(2);
    assert_eq!((cat[0], cat[8], cat[16]), (200, 100, 50));
    assert_eq!(set.image(1)[8], 8);
}

#[test]
fn folder_of_grey_images_has_one_channel_and_train_test_splits() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        let class = dir.path().join(split).join("only");
        std::fs::create_dir_all(&class).unwrap();
        image::GrayImage::from_pixel(3, 3, image::Luma([77]))
            .save(class.join("x.png"))
            .unwrap();
    }
    let set = data::load_path(dir.path(), DataFormat::Folder, Split::Test).unwrap();
    assert_eq!((set.channels, set.len(), set.image(0)[4]), (1, 1, 77));
}

#[test]
fn folder_jpeg_decodes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([128, 128, 128]))
        .save(dir.path().join("c").join("x.jpg"))
        .unwrap();
    let set = folder::read_folder(dir.path()).unwrap();
    assert_eq!((set.channels, set.height, set.width), (3, 8, 8));
    assert!(
        set.pixels.iter().all(|&v| v.abs_diff(128) <= 2),
        "lossy, but close"
    );
}

#[test]
fn folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("c");
    std::fs::create_dir(&class).unwrap();
    png(&class.join("a.png"), 4, 4, [1, 1, 1]);
    png(&class.join("b.png"), 5, 4, [1, 1, 1]);
    let err = folder::read_folder(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::SizeMismatch {
                found_w: 5,
                width: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("b.png"));
    std::fs::write(class.join("b.png"), b"not a png").unwrap();
    let err = folder::read_folder(dir.path()).unwrap_err();
    assert!(
        matches!(err, DataError::Decode { .. }) && err.to_string().contains("b.png"),
        "{err:?}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        folder::read_folder(empty.path()).unwrap_err(),
        DataError::Missing { .. }
    ));
}

#[test]
fn shipped_subset_is_balanced_and_real() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist-subset");
    let train = data::load_path(&root, DataFormat::Idx, Split::Train).unwrap();
    let test = data::load_path(&root, DataFormat::Idx, Split::Test).unwrap();
    assert_eq!(train.class_histogram(), vec![1000; 10]);
    assert_eq!(test.class_histogram(), vec![200; 10]);
    assert_eq!((train.height, train.width), (28, 28));
    // Close to the full set's well-known statistics (mean 0.2860, std 0.3530).
    let stats = data::stats(&train);
    assert!(
        (stats.mean[0] - 0.2860).abs() < 0.005 && (stats.std[0] - 0.3530).abs() < 0.005,
        "{stats:?}"
    );
}

/// A grey 2x2 PNG at `root/name`, its folders created.
fn grey(root: &Path, name: &str, value: u8) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(2, 2, image::Luma([value]))
        .save(path)
        .unwrap();
}

fn folder_source(root: &Path) -> data::DataSource {
    data::DataSource {
        format: DataFormat::Folder,
        root: root.into(),
    }
}

#[test]
fn folder_test_split_is_labelled_by_the_training_class_list() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("train/ant/0.png", 1),
        ("train/bee/0.png", 2),
        ("train/cat/0.png", 3),
        ("test/ant/0.png", 11),
        ("test/cat/0.png", 13),
    ] {
        grey(dir.path(), name, value);
    }
    // `bee` is absent from the test split: `cat` keeps label 2, not 1.
    let test = folder_source(dir.path()).load(Split::Test).unwrap();
    assert_eq!(test.class_names, ["ant", "bee", "cat"]);
    assert_eq!((test.labels.clone(), test.num_classes), (vec![0, 2], 3));
    assert_eq!(test.image(1)[0], 13);
    assert_eq!(test.class_histogram(), [1, 0, 1]);
    // The same through `kd eval`'s path, and the counts and geometry the plan reads.
    let via_path = data::load_path(dir.path(), DataFormat::Folder, Split::Test).unwrap();
    assert_eq!(via_path.labels, vec![0, 2]);
    let source = folder_source(dir.path());
    assert_eq!(source.class_counts(Split::Test).unwrap(), [1, 0, 1]);
    assert_eq!(source.class_counts(Split::Train).unwrap(), [1, 1, 1]);
    let geometry = source.geometry(Split::Test).unwrap();
    assert_eq!((geometry.count, geometry.num_classes), (2, 3));
}

#[test]
fn folder_class_missing_from_training_is_an_error_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train/ant/0.png",
        "train/bee/0.png",
        "test/ant/0.png",
        "test/dog/0.png",
    ] {
        grey(dir.path(), name, 5);
    }
    let source = folder_source(dir.path());
    let dog = dir.path().join("test").join("dog");
    let train = dir.path().join("train");
    let expected = format!(
        "{}: class folder `dog` is not a class of the training split {} (its classes: ant, \
         bee); remove or rename it",
        dog.display(),
        train.display()
    );
    for err in [
        source.load(Split::Test).unwrap_err(),
        source.geometry(Split::Test).unwrap_err(),
        source.class_counts(Split::Test).unwrap_err(),
    ] {
        assert!(matches!(err, DataError::UnknownClass { .. }), "{err:?}");
        assert_eq!(err.to_string(), expected);
    }
    // The training split itself reads fine.
    assert_eq!(source.load(Split::Train).unwrap().len(), 2);
}

#[test]
fn folder_hidden_entries_are_neither_classes_nor_images() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train/ant/0.png",
        "train/ant/.1.png",
        "train/.ipynb_checkpoints/0.png",
        "train/bee/0.png",
        "test/.ipynb_checkpoints/0.png",
        "test/bee/0.png",
    ] {
        grey(dir.path(), name, 5);
    }
    std::fs::write(dir.path().join("train/.DS_Store"), b"junk").unwrap();
    std::fs::write(dir.path().join("train/ant/.DS_Store"), b"junk").unwrap();
    let source = folder_source(dir.path());
    let train = source.load(Split::Train).unwrap();
    assert_eq!(train.class_names, ["ant", "bee"]);
    assert_eq!(train.labels, vec![0, 1]);
    let test = source.load(Split::Test).unwrap();
    assert_eq!(test.labels, vec![1]);
    assert_eq!(source.class_counts(Split::Train).unwrap(), [1, 1]);
    let geometry = source.geometry(Split::Train).unwrap();
    assert_eq!((geometry.count, geometry.num_classes), (2, 2));
    // A bare folder of class folders (`kd data stats`) skips them too.
    let set = folder::read_folder(&dir.path().join("train")).unwrap();
    assert_eq!(set.class_names, ["ant", "bee"]);
}

#[test]
fn class_counts_come_from_labels_without_pixels() {
    // IDX: the fixture's labels are 7, 0 and 9.
    let dir = tempfile::tempdir().unwrap();
    idx_fixture(dir.path(), true);
    write(
        &dir.path().join("t10k-images-idx3-ubyte"),
        &idx_images(1, 2, 3, &[0; 6]),
    );
    write(
        &dir.path().join("t10k-labels-idx1-ubyte"),
        &idx_labels(&[4, 4]),
    );
    let source = data::DataSource {
        format: DataFormat::Idx,
        root: dir.path().into(),
    };
    let mut expected = vec![0; 10];
    (expected[0], expected[7], expected[9]) = (1, 1, 1);
    assert_eq!(source.class_counts(Split::Train).unwrap(), expected);
    // One image but two labels: the plan sees the mismatch without reading pixels.
    let err = source.class_counts(Split::Test).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                n_images: 1,
                n_labels: 2,
                ..
            }
        ),
        "{err:?}"
    );

    // CIFAR-100, plain and gzip: the fine label counts, and a bad one is named by its byte.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = cifar_record(&[0, 5], [1, 2, 3]);
    bytes.extend(cifar_record(&[1, 99], [1, 2, 3]));
    bytes.extend(cifar_record(&[2, 5], [1, 2, 3]));
    write(&dir.path().join("train.bin"), &bytes);
    write(
        &dir.path().join("test.bin"),
        &gzip(&cifar_record(&[0, 7], [0, 0, 0])),
    );
    let kind = cifar::CifarKind::Cifar100;
    let path = dir.path().join("train.bin");
    assert_eq!(cifar::read_labels(&path, kind).unwrap(), vec![5, 99, 5]);
    assert_eq!(
        cifar::read_labels(&path, kind).unwrap(),
        cifar::read_file(&path, kind).unwrap().labels
    );
    let source = data::DataSource {
        format: DataFormat::Cifar100,
        root: dir.path().into(),
    };
    let counts = source.class_counts(Split::Train).unwrap();
    assert_eq!(
        (counts.len(), counts[5], counts[99], counts.iter().sum()),
        (100, 2, 1, 3)
    );
    assert_eq!(source.class_counts(Split::Test).unwrap()[7], 1);
    bytes[3074 + 1] = 100;
    bytes.extend([1, 2]);
    write(&path, &bytes);
    assert!(matches!(
        cifar::read_labels(&path, kind).unwrap_err(),
        DataError::RecordSize { offset: 9222, .. }
    ));
    bytes.truncate(3 * 3074);
    write(&path, &bytes);
    assert!(matches!(
        cifar::read_labels(&path, kind).unwrap_err(),
        DataError::LabelOutOfRange {
            offset: 3075,
            label: 100,
            ..
        }
    ));
}
