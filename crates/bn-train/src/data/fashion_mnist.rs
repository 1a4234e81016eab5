//! Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 60,000 training and 10,000 test grayscale
//! 28×28 images of 10 clothing classes, read from the original IDX `.gz` files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Tensor;

use super::examples::{Examples, TrainTest};
use super::idx::read_idx;
use super::{DataError, ImageBatcher};

/// Image side length.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
/// The class names, by label.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The environment variable naming a data directory.
pub const ENV_VAR: &str = "FASHION_MNIST_DIR";

/// The train or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 images.
    Train,
    /// 10,000 images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// The image and label file names (`.gz` form).
    pub fn file_names(self) -> [String; 2] {
        let p = self.prefix();
        [
            format!("{p}-images-idx3-ubyte.gz"),
            format!("{p}-labels-idx1-ubyte.gz"),
        ]
    }
}

/// One image and its label.
#[derive(Debug, Clone)]
pub struct FashionItem {
    /// Row-major 28×28 pixels, 0 (black) to 255.
    pub pixels: Vec<u8>,
    /// The class, 0 to 9.
    pub label: u8,
}

impl TrainTest<FashionMnist> {
    /// Loads both splits from `dir`, see [`FashionMnist::load`].
    ///
    /// # Errors
    /// A [`DataError`] naming the file and the problem.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        Ok(Self {
            train: FashionMnist::load(dir, Split::Train)?,
            test: FashionMnist::load(dir, Split::Test)?,
        })
    }
}

/// One split of Fashion-MNIST, held in memory.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    pixels: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
}

/// The directories searched, in order: `data_dir` if given, else `$FASHION_MNIST_DIR` if set,
/// else `./data/fashion-mnist` and then [`DEBIAN_DIR`].
pub fn candidate_dirs(data_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = data_dir {
        return vec![dir.to_path_buf()];
    }
    if let Some(dir) = std::env::var_os(ENV_VAR) {
        return vec![PathBuf::from(dir)];
    }
    vec![
        PathBuf::from("data/fashion-mnist"),
        PathBuf::from(DEBIAN_DIR),
    ]
}

/// Finds the directory holding all four files. An explicit `data_dir` (or
/// `$FASHION_MNIST_DIR`) is the only place searched, so a typo is an error rather than a
/// silent fall-back to another copy.
///
/// # Errors
/// [`DataError::NotFound`], listing every directory searched and how to get the data;
/// [`DataError::MissingFiles`] when the one directory searched holds only some of the files.
pub fn locate(data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
    let searched = candidate_dirs(data_dir);
    let missing = |dir: &Path| -> Vec<String> {
        [Split::Train, Split::Test]
            .iter()
            .flat_map(|s| s.file_names())
            .filter(|name| resolve(dir, name).is_none())
            .collect()
    };
    if let Some(dir) = searched.iter().find(|dir| missing(dir).is_empty()) {
        return Ok(dir.clone());
    }
    // One place searched, holding some of the files: name the ones that are not there.
    if let [dir] = searched.as_slice() {
        let missing = missing(dir);
        if missing.len() < 4 {
            return Err(DataError::MissingFiles {
                dir: dir.clone(),
                missing,
            });
        }
    }
    Err(DataError::NotFound { searched })
}

/// `dir/name`, or `dir/name` without `.gz` if only the decompressed file is there.
fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    let gz = dir.join(name);
    if gz.is_file() {
        return Some(gz);
    }
    let plain = dir.join(name.trim_end_matches(".gz"));
    plain.is_file().then_some(plain)
}

impl FashionMnist {
    /// Loads one split from `dir` and validates it: IDX magic numbers and ranks, 28×28
    /// images, file lengths, equal image and label counts, labels below 10.
    ///
    /// # Errors
    /// A [`DataError`] naming the file and the problem.
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        let [images_name, labels_name] = split.file_names();
        let missing = |name: &str| DataError::NotFound {
            searched: vec![dir.join(name)],
        };
        let images_path = resolve(dir, &images_name).ok_or_else(|| missing(&images_name))?;
        let labels_path = resolve(dir, &labels_name).ok_or_else(|| missing(&labels_name))?;
        let images = read_idx(&images_path, 3)?;
        let labels = read_idx(&labels_path, 1)?;
        if images.dims[1..] != [SIDE, SIDE] {
            return Err(DataError::Corrupt {
                path: images_path,
                reason: format!("images are {:?}, expected 28×28", &images.dims[1..]),
            });
        }
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::CountMismatch {
                images: images.dims[0],
                labels: labels.dims[0],
                images_path,
                labels_path,
            });
        }
        if let Some(bad) = labels.data.iter().position(|&l| l >= 10) {
            return Err(DataError::Corrupt {
                path: labels_path,
                reason: format!(
                    "label {} at index {bad} is not a class 0-9",
                    labels.data[bad]
                ),
            });
        }
        Ok(Self {
            pixels: Arc::new(images.data),
            labels: Arc::new(labels.data),
        })
    }

    /// The first `n` items (all of them if `n` is larger).
    pub fn take(self, n: usize) -> Self {
        let n = n.min(self.labels.len());
        Self {
            pixels: Arc::new(self.pixels[..n * PIXELS].to_vec()),
            labels: Arc::new(self.labels[..n].to_vec()),
        }
    }
}

impl Examples for FashionMnist {
    type Item = FashionItem;
    type Input = Tensor<4>;
    type Batcher = ImageBatcher;

    fn take(self, n: usize) -> Self {
        FashionMnist::take(self, n)
    }
}

impl Dataset<FashionItem> for FashionMnist {
    /// # Panics
    /// If `index >= len()`, as every Burn dataset does.
    fn get(&self, index: usize) -> Result<FashionItem, DatasetError> {
        let len = self.labels.len();
        assert!(
            index < len,
            "Index out of bounds for FashionMnist: {index} >= {len}"
        );
        let pixels = self.pixels[index * PIXELS..(index + 1) * PIXELS].to_vec();
        Ok(FashionItem {
            pixels,
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}
