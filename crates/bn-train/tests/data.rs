//! The Fashion-MNIST reader on small synthetic IDX files: a round trip, and one clear error for
//! each way the files can be wrong. No real data needed.

use std::io::Write;
use std::path::{Path, PathBuf};

use bn_train::data::{
    DataError, FashionMnist, ImageBatcher, PIXELS, Split, encode_idx, locate, normalize_pixel,
};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use flate2::Compression;
use flate2::write::GzEncoder;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-train-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_gz(path: &Path, bytes: &[u8]) {
    let mut encoder = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap();
}

/// Writes `n` train and `n` test images whose pixels encode their index.
fn write_split_files(dir: &Path, n: usize) {
    for split in [Split::Train, Split::Test] {
        let pixels: Vec<u8> = (0..n * PIXELS)
            .map(|i| (i / PIXELS * 10 + i % 7) as u8)
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let [images_name, labels_name] = split.file_names();
        write_gz(&dir.join(images_name), &encode_idx(&[n, 28, 28], &pixels));
        write_gz(&dir.join(labels_name), &encode_idx(&[n], &labels));
    }
}

#[test]
fn synthetic_files_round_trip() {
    let dir = temp_dir("roundtrip");
    write_split_files(&dir, 5);
    assert_eq!(locate(Some(&dir)).unwrap(), dir);
    let train = FashionMnist::load(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 5);
    let item = train.get(3).unwrap();
    assert_eq!(item.label, 3);
    assert_eq!(item.pixels[..3], [30, 31, 32]);
    assert_eq!(train.take(2).len(), 2);

    let batch = ImageBatcher.batch(vec![item], &Device::flex());
    assert_eq!(batch.inputs.dims(), [1, 1, 28, 28]);
    let first: Vec<f32> = batch.inputs.into_data().iter::<f32>().take(2).collect();
    // (30 / 255 - 0.5) / 0.5
    assert!((first[0] - (30.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
    assert_eq!(normalize_pixel(0), -1.0);
    assert_eq!(normalize_pixel(255), 1.0);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_data_lists_where_it_looked_and_how_to_get_it() {
    let dir = temp_dir("missing");
    let err = locate(Some(&dir)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }));
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(
        message.contains("apt-get install dataset-fashion-mnist"),
        "{message}"
    );
    assert!(message.contains("--data-dir"), "{message}");

    // Some of the files: the ones not there are named.
    write_split_files(&dir, 3);
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = locate(Some(&dir)).unwrap_err();
    let DataError::MissingFiles { missing, .. } = &err else {
        panic!("expected MissingFiles, got {err}");
    };
    assert_eq!(missing, &["t10k-labels-idx1-ubyte.gz"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn corrupt_truncated_and_mismatched_files_each_get_their_error() {
    let dir = temp_dir("corrupt");
    write_split_files(&dir, 4);
    let [images, labels] = Split::Train.file_names();

    // Not gzip at all.
    std::fs::write(dir.join(&images), b"definitely not gzip").unwrap();
    let message = FashionMnist::load(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("not a valid gzip stream") && message.contains(&images),
        "{message}"
    );

    // A label file where an image file belongs: wrong magic number.
    write_gz(&dir.join(&images), &encode_idx(&[4], &[0; 4]));
    let message = FashionMnist::load(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(message.contains("magic number 00000801"), "{message}");

    // Truncated data.
    let mut short = encode_idx(&[4, 28, 28], &vec![0; 4 * PIXELS]);
    short.truncate(short.len() - 10);
    write_gz(&dir.join(&images), &short);
    let message = FashionMnist::load(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(message.contains("truncated"), "{message}");

    // Images that are not 28×28.
    write_gz(
        &dir.join(&images),
        &encode_idx(&[4, 14, 56], &vec![0; 4 * PIXELS]),
    );
    let message = FashionMnist::load(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(message.contains("expected 28×28"), "{message}");

    // 4 images, 3 labels.
    write_gz(
        &dir.join(&images),
        &encode_idx(&[4, 28, 28], &vec![0; 4 * PIXELS]),
    );
    write_gz(&dir.join(&labels), &encode_idx(&[3], &[0, 1, 2]));
    let err = FashionMnist::load(&dir, Split::Train).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 4,
                labels: 3,
                ..
            }
        ),
        "{err}"
    );

    // A label outside 0-9.
    write_gz(&dir.join(&labels), &encode_idx(&[4], &[0, 1, 12, 2]));
    let message = FashionMnist::load(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(message.contains("label 12 at index 2"), "{message}");
    std::fs::remove_dir_all(dir).ok();
}
