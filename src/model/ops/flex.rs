//! Between burn's `flex` tensors and the slices the `visionnet_kernels` kernels take: every
//! operation's flex implementation makes its inputs contiguous, reads them as `f32` slices, and
//! wraps the kernel's output `Vec` as a tensor again.

use burn::backend::flex::FlexTensor;
use burn::backend::{DType, TensorMetadata};
use burn::tensor::TensorData;

/// A contiguous copy (or the tensor itself when already contiguous).
pub fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a contiguous `f32` tensor.
///
/// # Panics
/// If the tensor is not contiguous or not `f32` (callers check [`all_f32`] and call
/// [`contiguous`] first).
pub fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// An `f32` tensor of `shape` holding `data`.
pub fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// Whether every tensor is `f32`, the only type the CPU kernels run.
pub fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// The dimensions of a tensor of rank `D`.
///
/// # Panics
/// If the tensor's rank is not `D`.
pub fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    let s = t.shape();
    assert_eq!(s.num_dims(), D, "a rank-{D} tensor");
    std::array::from_fn(|d| s[d])
}
