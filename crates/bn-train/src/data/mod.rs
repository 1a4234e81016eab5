//! Data sets: Fashion-MNIST from its IDX files and batching, and scikit-learn's make_moons;
//! [`Examples`], what training needs of either.

mod batcher;
#[cfg(feature = "download")]
mod download;
mod examples;
mod fashion_mnist;
mod idx;
mod idx_format;
mod loader;
mod moons;
mod points;
mod synthetic;

pub use batcher::{ImageBatcher, normalize_pixel};
#[cfg(feature = "download")]
pub use download::{CANONICAL_URL, DownloadError, RemoteFile, Source, download, part_path};
pub use examples::{Batch, BatchInput, Examples, ImageBatch, TrainTest};
pub use fashion_mnist::{
    CLASSES, DEBIAN_DIR, ENV_VAR, FashionItem, FashionMnist, PIXELS, SIDE, Split, candidate_dirs,
    locate,
};
pub use idx::read_idx;
pub use idx_format::{IdxArray, encode_idx, parse_idx};
pub use loader::EpochLoader;
pub use moons::{Moons, NumpyRandomState, make_moons};
pub use points::{LabelledPoint, PointBatcher};
pub use synthetic::write_synthetic;

use std::path::PathBuf;

/// Why a data set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No directory held the files.
    #[error(
        "Fashion-MNIST not found; looked in: {}.\nGet it with `apt-get install dataset-fashion-mnist` \
         (installs to {DEBIAN_DIR}), or put the four IDX .gz files (train-images-idx3-ubyte.gz, \
         train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a \
         folder and pass --data-dir DIR or set {ENV_VAR}=DIR, or pass --download to fetch \
         them from Zalando Research's server (into --data-dir, default ./data/fashion-mnist)",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The places searched.
        searched: Vec<PathBuf>,
    },
    /// The data directory holds some of the four files, not all.
    #[error(
        "{} lacks {}: Fashion-MNIST needs all four IDX files (train-images-idx3-ubyte.gz, \
         train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, \
         or the same without .gz)",
        dir.display(),
        missing.join(", ")
    )]
    MissingFiles {
        /// The directory.
        dir: PathBuf,
        /// The files not found there.
        missing: Vec<String>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a valid IDX file of the expected kind.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The image and label files disagree on the number of items.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
    },
}
