//! `evaluate` on synthetic IDX files with a classifier whose answers are known in advance.

use std::io::Write;
use std::path::{Path, PathBuf};

use bn_models::{Classify, Norm};
use bn_train::data::{FashionMnist, PIXELS, Split, encode_idx};
use bn_train::evaluate;
use burn::tensor::{Device, Tensor, TensorData};
use flate2::Compression;
use flate2::write::GzEncoder;

/// Predicts class `mean pixel value of the image (as written below) % 10`: image `i` has every
/// pixel equal to `i`, so it predicts `i % 10`.
struct PixelClassifier;

impl Classify for PixelClassifier {
    type Input = Tensor<4>;

    fn classify(&self, images: Tensor<4>) -> Tensor<2> {
        // Pixels arrive normalized: (p/255 - 0.5)/0.5. Undo it and one-hot the class.
        let [n, ..] = images.dims();
        let pixel = images
            .flatten::<2>(1, 3)
            .mean_dim(1)
            .mul_scalar(0.5)
            .add_scalar(0.5)
            .mul_scalar(255.0);
        let values: Vec<f32> = pixel.into_data().iter::<f32>().collect();
        let logits: Vec<f32> = values
            .iter()
            .flat_map(|p| {
                let class = (p.round() as usize) % 10;
                (0..10).map(move |c| if c == class { 1.0 } else { 0.0 })
            })
            .collect();
        Tensor::from_data(TensorData::new(logits, [n, 10]), &Device::flex())
    }

    fn first_norm(&self) -> Option<&Norm> {
        None
    }
}

fn write_test_split(dir: &Path, labels: &[u8]) {
    let n = labels.len();
    let pixels: Vec<u8> = (0..n * PIXELS).map(|i| (i / PIXELS) as u8).collect();
    let [images, label_file] = Split::Test.file_names();
    for (name, bytes) in [
        (images, encode_idx(&[n, 28, 28], &pixels)),
        (label_file, encode_idx(&[n], labels)),
    ] {
        let mut gz = GzEncoder::new(
            std::fs::File::create(dir.join(name)).unwrap(),
            Compression::fast(),
        );
        gz.write_all(&bytes).unwrap();
        gz.finish().unwrap();
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-train-evaluate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn counts_correct_predictions_across_uneven_batches_and_keeps_first_logits() {
    // 23 images; image i is predicted as class i % 10. Labels agree for 0..10 and 20..23
    // and disagree for 10..20 (label (i + 1) % 10 there): 13 correct.
    let labels: Vec<u8> = (0..23u8)
        .map(|i| {
            if (10..20).contains(&i) {
                (i + 1) % 10
            } else {
                i % 10
            }
        })
        .collect();
    let dir = temp_dir();
    write_test_split(&dir, &labels);
    let test = FashionMnist::load(&dir, Split::Test).unwrap();

    let eval = evaluate(&PixelClassifier, &test, 5, 7, &Device::flex());

    assert_eq!((eval.correct, eval.total), (13, 23));
    assert!((eval.accuracy() - 13.0 / 23.0).abs() < 1e-12);
    assert_eq!(eval.first_logits.len(), 7);
    for (i, row) in eval.first_logits.iter().enumerate() {
        let hot: Vec<usize> = (0..10).filter(|&c| row[c] == 1.0).collect();
        assert_eq!(hot, vec![i % 10], "row {i}: {row:?}");
    }
}
