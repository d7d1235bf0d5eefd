//! Epoch order and host-side batches, produced on a background thread while the model trains.
//!
//! Everything random here is a pure function of `(seed, epoch, batch)`, so a resumed run sees
//! exactly the batches an uninterrupted one would have seen.

use std::sync::mpsc::sync_channel;

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::{Augment, Normalize, augment_into};
use super::image_set::ImageSet;

/// One batch on the host: normalised images and their labels.
#[derive(Clone, Debug)]
pub struct HostBatch {
    /// `[n, c, h, w]` row-major.
    pub images: Vec<f32>,
    /// `n` labels.
    pub labels: Vec<i64>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// Index of each image in its set.
    pub indices: Vec<usize>,
}

impl HostBatch {
    /// The host-to-tensor boundary: `(images [n, c, h, w], labels [n])` on `device`, what the
    /// model and the loss take.
    pub fn into_tensors(self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let n = self.labels.len();
        let images = Tensor::<4>::from_data(TensorData::new(self.images, self.shape), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(self.labels, [n]), device);
        (images, labels)
    }
}

/// Mixes several numbers into one well-spread 64-bit seed (splitmix64 steps).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for &p in parts {
        state ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        state = z ^ (z >> 31);
    }
    state
}

/// The order in which an epoch visits `n` images: shuffled by `(seed, epoch)`, or `0..n`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[
            seed,
            epoch as u64,
            1,
        ])));
    }
    order
}

/// Builds the batch of `set` holding `indices`, augmented with randomness from `rng_seed`.
pub fn host_batch(
    set: &ImageSet,
    indices: &[usize],
    augment: Augment,
    norm: &Normalize,
    rng_seed: u64,
) -> HostBatch {
    let image_len = set.image_len();
    let mut images = vec![0f32; indices.len() * image_len];
    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    for (dst, &i) in images.chunks_exact_mut(image_len).zip(indices) {
        augment_into(set.image(i), set.shape, augment, norm, &mut rng, dst);
    }
    let [c, h, w] = set.shape;
    HostBatch {
        images,
        labels: indices.iter().map(|&i| set.labels[i] as i64).collect(),
        shape: [indices.len(), c, h, w],
        indices: indices.to_vec(),
    }
}

/// How one pass over a set is cut into batches.
#[derive(Clone, Debug)]
pub struct EpochPlan {
    /// Image indices in visiting order.
    pub order: Vec<usize>,
    /// Images per batch.
    pub batch_size: usize,
    /// Drop a last batch smaller than `batch_size` (training: BatchNorm needs full batches).
    pub drop_last: bool,
    /// Augmentation of each image.
    pub augment: Augment,
    /// Seed of the augmentation; batch `b` uses `mix_seed([seed, b])`.
    pub seed: u64,
}

impl EpochPlan {
    /// Number of batches the plan yields.
    pub fn num_batches(&self) -> usize {
        if self.drop_last {
            self.order.len() / self.batch_size
        } else {
            self.order.len().div_ceil(self.batch_size)
        }
    }

    /// Calls `consume` on each batch in order. Batches are built on a background thread, up to
    /// two ahead. Stops at the first error `consume` returns and returns it.
    pub fn for_each<E>(
        &self,
        set: &ImageSet,
        norm: &Normalize,
        consume: impl FnMut(usize, HostBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_from(0, set, norm, consume)
    }

    /// [`Self::for_each`] from batch `first` on (a resumed epoch): batch `b` is the same batch
    /// with the same augmentation as in a whole pass, and is passed to `consume` as `b`.
    pub fn for_each_from<E>(
        &self,
        first: usize,
        set: &ImageSet,
        norm: &Normalize,
        mut consume: impl FnMut(usize, HostBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        let num_batches = self.num_batches();
        std::thread::scope(|scope| {
            let (sender, receiver) = sync_channel::<HostBatch>(2);
            scope.spawn(move || {
                for b in first..num_batches {
                    let end = ((b + 1) * self.batch_size).min(self.order.len());
                    let indices = &self.order[b * self.batch_size..end];
                    let batch = host_batch(
                        set,
                        indices,
                        self.augment,
                        norm,
                        mix_seed(&[self.seed, b as u64]),
                    );
                    if sender.send(batch).is_err() {
                        return; // the consumer stopped early
                    }
                }
            });
            for (b, batch) in (first..).zip(receiver.iter()) {
                consume(b, batch)?;
            }
            Ok(())
        })
    }
}
