//! A small, learnable stand-in for Fashion-MNIST in the same four IDX `.gz` files: for tests
//! and demos that must not depend on the real data.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::fashion_mnist::{PIXELS, SIDE, Split};
use super::idx_format::encode_idx;

/// Writes `train` training and `test` test images to `dir`, under Fashion-MNIST's file names.
/// Image `i` has class `(7i + i/10) mod 10`, drawn as a bright band at rows `2k..2k+4` over a
/// dim, patterned background, so a small network learns it within an epoch or two.
///
/// # Errors
/// When a file cannot be written.
pub fn write_synthetic(dir: &Path, train: usize, test: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (split, n) in [(Split::Train, train), (Split::Test, test)] {
        let mut pixels = Vec::with_capacity(n * PIXELS);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = (i * 7 + i / 10) % 10;
            labels.push(class as u8);
            for p in 0..PIXELS {
                let band = (2 * class..2 * class + 4).contains(&(p / SIDE));
                pixels.push(if band {
                    230
                } else {
                    ((i * 31 + p * 17) % 40) as u8
                });
            }
        }
        let [images_name, labels_name] = split.file_names();
        for (name, bytes) in [
            (images_name, encode_idx(&[n, SIDE, SIDE], &pixels)),
            (labels_name, encode_idx(&[n], &labels)),
        ] {
            let mut gz =
                GzEncoder::new(std::fs::File::create(dir.join(name))?, Compression::fast());
            gz.write_all(&bytes)?;
            gz.finish()?;
        }
    }
    Ok(())
}
