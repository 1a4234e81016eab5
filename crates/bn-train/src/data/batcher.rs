//! Turns images into normalized tensors, as the reference PyTorch scripts do: `(x / 255 - 0.5) / 0.5`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor, TensorData};

use super::examples::ImageBatch;
use super::fashion_mnist::{FashionItem, SIDE};

/// Normalizes pixels to `[-1, 1]` and stacks them into an [`ImageBatch`].
#[derive(Debug, Clone, Default)]
pub struct ImageBatcher;

/// The reference scripts' pixel normalization: `(x / 255 - 0.5) / 0.5`.
pub fn normalize_pixel(x: u8) -> f32 {
    (x as f32 / 255.0 - 0.5) / 0.5
}

impl Batcher<FashionItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<FashionItem>, device: &Device) -> ImageBatch {
        let n = items.len();
        let pixels: Vec<f32> = items
            .iter()
            .flat_map(|item| item.pixels.iter().map(|&x| normalize_pixel(x)))
            .collect();
        let labels: Vec<i64> = items.iter().map(|item| item.label as i64).collect();
        ImageBatch {
            inputs: Tensor::from_data(TensorData::new(pixels, [n, 1, SIDE, SIDE]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}
