//! [`AttentionOps`] on `flex`: `f32` tensors as slices for `visionnet_kernels::attention`; other
//! float types take the [`tiled`](super::tiled) path.

use burn::backend::tensor::FloatTensor;
use visionnet_kernels::attention as kernels;

use super::{AttentionOps, tiled};
use crate::model::ops::flex::{all_f32, contiguous, dims, tensor, values};

impl AttentionOps for burn::backend::Flex {
    fn pixel_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        tiled: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if tiled || !all_f32(&[&q, &k, &v]) {
            return tiled::forward::<Self>(q, k, v, scale);
        }
        let ([g, dk, n], dv) = (dims::<3>(&q), dims::<3>(&v)[1]);
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let (y, lse) = kernels::forward(values(&q), values(&k), values(&v), [g, dk, n], dv, scale);
        (tensor(y, vec![g, dv, n]), tensor(lse, vec![g, n]))
    }

    fn pixel_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        y: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        scale: f32,
        tiled: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if tiled || !all_f32(&[&q, &k, &v, &y, &lse, &dy]) {
            return tiled::backward::<Self>(q, k, v, y, lse, dy, scale);
        }
        let ([g, dk, n], dv) = (dims::<3>(&q), dims::<3>(&v)[1]);
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let (y, lse, dy) = (contiguous(y), contiguous(lse), contiguous(dy));
        let (dq, dk_, dv_) = kernels::backward(
            values(&q),
            values(&k),
            values(&v),
            values(&y),
            values(&lse),
            values(&dy),
            [g, dk, n],
            dv,
            scale,
        );
        (
            tensor(dq, vec![g, dk, n]),
            tensor(dk_, vec![g, dk, n]),
            tensor(dv_, vec![g, dv, n]),
        )
    }
}
