//! The portable lean path: pixel attention from the backend's own tensor operations, one block
//! of query rows at a time, for any burn backend.
//!
//! Each block of `t` query rows sees every key, so its softmax is exact without online
//! rescaling; the block's `[g, t, n]` scores are the only quadratic-in-`n` memory and are freed
//! before the next block. `t` is chosen so a block holds at most [`BLOCK_ELEMENTS`] floats.
//! The backward pass recomputes each block's attention weights from `lse`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Scalar, Shape, Slice, TensorMetadata};

/// Most floats in one block of scores (`g * t * n`): 32 MB in f32.
pub const BLOCK_ELEMENTS: usize = 1 << 23;

/// Query rows per block for `g` groups of `n` tokens.
pub fn block_rows(g: usize, n: usize) -> usize {
    (BLOCK_ELEMENTS / (g * n).max(1)).clamp(1, n.max(1))
}

fn dims3<B: Backend>(t: &FloatTensor<B>) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}

/// `t[:, :, start..end]`.
fn columns<B: Backend>(t: FloatTensor<B>, start: usize, end: usize) -> FloatTensor<B> {
    B::float_slice(
        t,
        &[Slice::from(..), Slice::from(..), Slice::from(start..end)],
    )
}

/// Scaled scores of the query block `q_t` against all keys: `[g, t, n]`.
fn scores<B: Backend>(q_t: FloatTensor<B>, k: FloatTensor<B>, scale: f32) -> FloatTensor<B> {
    let s = B::float_matmul(B::float_swap_dims(q_t, 1, 2), k); // [g, t, n]
    B::float_mul_scalar(s, Scalar::from(scale))
}

/// Forward: `(y [g, dv, n], lse [g, n])`.
pub fn forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    scale: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [g, _, n] = dims3::<B>(&q);
    forward_blocks::<B>(q, k, v, scale, block_rows(g, n))
}

/// [`forward`] with blocks of `t` query rows.
pub fn forward_blocks<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    scale: f32,
    t: usize,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [g, _, n] = dims3::<B>(&q);
    let t = t.max(1);
    let mut ys = Vec::new();
    let mut lses = Vec::new();
    for start in (0..n).step_by(t) {
        let end = (start + t).min(n);
        let s = scores::<B>(columns::<B>(q.clone(), start, end), k.clone(), scale); // [g, t, n]
        let m = B::float_max_dim(s.clone(), 2); // [g, t, 1]
        let p = B::float_exp(B::float_sub(s, m.clone())); // [g, t, n]
        let l = B::float_sum_dim(p.clone(), 2); // [g, t, 1]
        let p = B::float_div(p, l.clone()); // [g, t, n], rows sum to 1
        ys.push(B::float_matmul(v.clone(), B::float_swap_dims(p, 1, 2))); // [g, dv, t]
        lses.push(B::float_add(m, B::float_log(l))); // [g, t, 1]
    }
    let y = B::float_cat(ys, 2); // [g, dv, n]
    let lse = B::float_reshape(B::float_cat(lses, 1), Shape::new([g, n])); // [g, n]
    (y, lse)
}

/// Backward: `(dq, dk, dv)`.
#[allow(clippy::too_many_arguments)]
pub fn backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    y: FloatTensor<B>,
    lse: FloatTensor<B>,
    dy: FloatTensor<B>,
    scale: f32,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [g, _, n] = dims3::<B>(&q);
    backward_blocks::<B>(q, k, v, y, lse, dy, scale, block_rows(g, n))
}

/// [`backward`] with blocks of `t` query rows.
#[allow(clippy::too_many_arguments)]
pub fn backward_blocks<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    y: FloatTensor<B>,
    lse: FloatTensor<B>,
    dy: FloatTensor<B>,
    scale: f32,
    t: usize,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [g, dk, n] = dims3::<B>(&q);
    let dv_dim = dims3::<B>(&v)[1];
    let t = t.max(1);
    // D_i = sum_c dy[c, i] y[c, i], the row-wise correction of the softmax gradient.
    let d = B::float_sum_dim(B::float_mul(dy.clone(), y), 1); // [g, 1, n]
    let lse = B::float_reshape(lse, Shape::new([g, 1, n])); // [g, 1, n]
    let device = q.device();
    let dtype = q.dtype().into();
    let mut dq_blocks = Vec::new();
    let mut dk = B::float_zeros(Shape::new([g, dk, n]), &device, dtype);
    let mut dv = B::float_zeros(Shape::new([g, dv_dim, n]), &device, dtype);
    for start in (0..n).step_by(t) {
        let end = (start + t).min(n);
        let q_t = columns::<B>(q.clone(), start, end); // [g, dk, t]
        let dy_t = columns::<B>(dy.clone(), start, end); // [g, dv, t]
        let lse_t = B::float_swap_dims(columns::<B>(lse.clone(), start, end), 1, 2); // [g, t, 1]
        let d_t = B::float_swap_dims(columns::<B>(d.clone(), start, end), 1, 2); // [g, t, 1]
        let p = B::float_exp(B::float_sub(
            scores::<B>(q_t.clone(), k.clone(), scale),
            lse_t,
        )); // [g, t, n]
        let dp = B::float_matmul(B::float_swap_dims(dy_t.clone(), 1, 2), v.clone()); // [g, t, n]
        let ds = B::float_mul(p.clone(), B::float_sub(dp, d_t)); // [g, t, n]
        let ds = B::float_mul_scalar(ds, Scalar::from(scale)); // the score scale, folded in once
        dq_blocks.push(B::float_matmul(
            k.clone(),
            B::float_swap_dims(ds.clone(), 1, 2),
        )); // [g, dk, t]
        dk = B::float_add(dk, B::float_matmul(q_t, ds)); // [g, dk, n]
        dv = B::float_add(dv, B::float_matmul(dy_t, p)); // [g, dv, n]
    }
    (B::float_cat(dq_blocks, 2), dk, dv)
}
