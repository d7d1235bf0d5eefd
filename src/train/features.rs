//! Cached backbone features for head-only training (`--finetune head --cache-features true`).
//!
//! With the backbone frozen and augmentation off, the backbone maps each image to the same
//! pooled feature vector in every epoch, so it runs once per image: afterwards an epoch costs
//! only the head (for a linear head, a few milliseconds per batch), which is what makes a linear
//! probe of an ImageNet backbone on CPU a matter of minutes.

use burn::prelude::*;

use crate::data::{Augment, EpochPlan, ImageSet, Normalize};
use crate::error::{Error, Result};
use crate::model::{ImageClassifier, Network};

/// Pooled backbone features of every image of a set, row-major `[images, dim]`, on the host.
#[derive(Clone, Debug)]
pub struct Features {
    /// Values per image.
    pub dim: usize,
    /// `[images, dim]`, row-major.
    pub values: Vec<f32>,
}

impl Features {
    /// Runs the backbone and the head's pooling of `model` (an inference copy) over `set`.
    pub fn compute(
        model: &Network,
        set: &ImageSet,
        norm: &Normalize,
        batch_size: usize,
        device: &Device,
    ) -> Result<Self> {
        let plan = EpochPlan {
            order: (0..set.len()).collect(),
            batch_size,
            drop_last: false,
            augment: Augment::NONE,
            seed: 0,
        };
        let mut values = Vec::new();
        let mut dim = 0;
        plan.for_each(set, norm, |_, batch| -> Result<()> {
            let (images, _) = batch.into_tensors(device);
            let pooled = model.pool_features(model.forward_features(images)); // [n, dim]
            dim = pooled.dims()[1];
            let data = pooled.into_data().try_into_vec::<f32>().map_err(|e| {
                Error::invalid("--cache-features", format!("features are not f32: {e:?}"))
            })?;
            values.extend(data);
            Ok(())
        })?;
        Ok(Self { dim, values })
    }

    /// The rows of `indices` as a `[indices.len(), dim]` tensor on `device`.
    pub fn rows(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let mut out = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            out.extend_from_slice(&self.values[i * self.dim..(i + 1) * self.dim]);
        }
        Tensor::from_data(TensorData::new(out, [indices.len(), self.dim]), device)
    }
}

/// Cached features of the three splits.
#[derive(Clone, Debug)]
pub struct FeatureCache {
    /// Training images.
    pub train: Features,
    /// Validation images.
    pub val: Features,
    /// Test images.
    pub test: Features,
}
