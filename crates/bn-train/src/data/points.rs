//! The two moons as labelled examples for [`train`](crate::train): one point per item,
//! batched as `[N, 2]` coordinates.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};

use super::examples::{Batch, Examples};
use super::moons::Moons;

/// One point of a [`Moons`] data set and its class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelledPoint {
    /// `[x, y]`.
    pub point: [f64; 2],
    /// 0 for the upper (outer) moon, 1 for the lower (inner) one.
    pub label: u8,
}

/// Stacks points into a `[N, 2]` f32 tensor and their labels into `[N]` class indices.
#[derive(Debug, Clone, Default)]
pub struct PointBatcher;

impl Batcher<LabelledPoint, Batch<Tensor<2>>> for PointBatcher {
    fn batch(&self, items: Vec<LabelledPoint>, device: &Device) -> Batch<Tensor<2>> {
        let n = items.len();
        let coordinates: Vec<f32> = items
            .iter()
            .flat_map(|item| item.point.map(|c| c as f32))
            .collect();
        let labels: Vec<i64> = items.iter().map(|item| i64::from(item.label)).collect();
        Batch {
            inputs: Tensor::from_data(TensorData::new(coordinates, [n, 2]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

impl Dataset<LabelledPoint> for Moons {
    /// # Panics
    /// If `index >= len()`, as every Burn dataset does.
    fn get(&self, index: usize) -> Result<LabelledPoint, DatasetError> {
        let len = self.labels.len();
        assert!(
            index < len,
            "Index out of bounds for Moons: {index} >= {len}"
        );
        Ok(LabelledPoint {
            point: self.points[index],
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

impl Examples for Moons {
    type Item = LabelledPoint;
    type Input = Tensor<2>;
    type Batcher = PointBatcher;

    fn take(mut self, n: usize) -> Self {
        self.points.truncate(n);
        self.labels.truncate(n);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_batch_as_rows_of_coordinates_with_their_labels() {
        let moons = Moons {
            points: vec![[0.5, -1.25], [2.0, 0.0], [-3.0, 4.0]],
            labels: vec![1, 0, 1],
        }
        .take(2);
        assert_eq!(moons.len(), 2);
        let items = (0..2).map(|i| moons.get(i).unwrap()).collect();
        let batch = PointBatcher.batch(items, &Device::flex());
        assert_eq!(batch.inputs.dims(), [2, 2]);
        let coordinates: Vec<f32> = batch.inputs.into_data().iter::<f32>().collect();
        assert_eq!(coordinates, [0.5, -1.25, 2.0, 0.0]);
        let labels: Vec<i64> = batch.targets.into_data().iter::<i64>().collect();
        assert_eq!(labels, [1, 0]);
    }
}
