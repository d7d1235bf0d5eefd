//! 2D max-pooling with its own CPU kernels, as a burn backend extension.
//!
//! # Why
//!
//! burn 0.22's `flex` backend pools through its generic 3D kernel with `i64` indices: the
//! forward pass writes an index per output value (twice the output's bytes) that autodiff keeps
//! until the backward pass, which scatters through them. A profile of the plain CNN's training
//! step put pooling at about a tenth of the time. Here the forward pass writes only the output,
//! and the backward pass finds each window's maximum again in the input (which the graph keeps
//! anyway: the ReLU before the pool holds it), so nothing extra is kept; the common 2x2, stride-2
//! window has a loop of its own.
//!
//! # What it computes
//!
//! Exactly burn's (and PyTorch's) `max_pool2d` with symmetric padding (padded positions never win)
//! and `ceil_mode` off: `y[b, c, oy, ox] = max over the window`, and the gradient of each window
//! goes to its first maximum in row-major order (a NaN counts as the maximum, as in PyTorch).
//! [`forward`] takes burn's own op for asymmetric or `Same` padding and `ceil_mode`.
//!
//! # Shapes
//! - `x`: `[batch, channels, h, w]`
//! - output: `[batch, channels, (h + 2 pad - dilation (k - 1) - 1) / stride + 1, ...]`

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{DType, Dispatch, IntDType, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use rayon::prelude::*;

use super::cpu::{contiguous, tensor, values};
use super::simd::Simd;

/// The window of one max-pool: kernel, stride, symmetric padding and dilation, per axis
/// (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl PoolWindow {
    /// Output `[ho, wo]` for an input of `[h, w]` (floor mode).
    pub fn output(&self, h: usize, w: usize) -> [usize; 2] {
        let side = |n: usize, a: usize| {
            (n + 2 * self.padding[a] - self.dilation[a] * (self.kernel[a] - 1) - 1) / self.stride[a]
                + 1
        };
        [side(h, 0), side(w, 1)]
    }

    /// The plain 2x2, stride-2 window without padding (the study's CNN and VGG).
    fn is_2x2(&self) -> bool {
        *self
            == PoolWindow {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                dilation: [1, 1],
            }
    }
}

/// Max-pooling whose kernels a backend may implement itself; the default bodies are burn's
/// `max_pool2d` and its backward through indices.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait MaxPoolOps: burn::backend::Backend {
    /// The differentiable max-pool.
    fn max_pool2d_lean(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        burns_forward::<Self>(x, window)
    }

    /// The gradient of the input `x` for the output gradient `dy`.
    fn max_pool2d_input_grad(
        x: FloatTensor<Self>,
        window: PoolWindow,
        dy: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burns_input_grad::<Self>(x, window, dy)
    }
}

/// burn's own max-pool: the trait's default, and flex's path for what its kernels do not take.
fn burns_forward<B: burn::backend::Backend>(x: FloatTensor<B>, w: PoolWindow) -> FloatTensor<B> {
    B::max_pool2d(x, w.kernel, w.stride, w.padding, w.dilation, false)
}

/// burn's own max-pool backward, through the indices of a second forward pass.
fn burns_input_grad<B: burn::backend::Backend>(
    x: FloatTensor<B>,
    w: PoolWindow,
    dy: FloatTensor<B>,
) -> FloatTensor<B> {
    let (k, s, p, d) = (w.kernel, w.stride, w.padding, w.dilation);
    let indices = B::max_pool2d_with_indices(x.clone(), k, s, p, d, false, IntDType::I64).indices;
    B::max_pool2d_with_indices_backward(x, k, s, p, d, false, dy, indices).x_grad
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

/// A key whose integer order is the pool's order of values: numbers by value (`-0.0` equal to
/// `0.0`), any NaN above all of them (ties keep the earlier value).
fn order_key(v: f32) -> i32 {
    // `+ 0.0` turns -0.0 into 0.0; flipping a negative float's magnitude bits makes the integer
    // order of the bits the float order.
    let bits = (v + 0.0).to_bits() as i32;
    let key = bits ^ ((bits >> 31) as u32 >> 1) as i32;
    if v.is_nan() { i32::MAX } else { key }
}

/// Whether `value` beats the window's maximum so far `best`, by [`order_key`]: larger, or a NaN
/// over a number.
fn beats(value: f32, best: f32) -> bool {
    order_key(value) > order_key(best)
}

/// Which of a 2x2 window's values (row-major) is its maximum, by [`order_key`], without
/// branches: a pooled map's maxima sit at random places, and a mispredicted branch per window
/// cost more than the rest of the pooling.
fn argmax4(v: [f32; 4]) -> usize {
    let (mut best, mut best_key) = (0, order_key(v[0]));
    for (i, &x) in v.iter().enumerate().skip(1) {
        let key = order_key(x);
        let wins = key > best_key;
        best_key = if wins { key } else { best_key };
        best = if wins { i } else { best };
    }
    best
}

/// The 2x2, stride-2 pool of one plane `x` `[h, w]` into `y` `[ho, wo]`: the hot case (every
/// pool of the study's CNN), as straight loops over row pairs without per-window closures or
/// bounds checks.
fn pool_2x2(x: &[f32], w: usize, wo: usize, y: &mut [f32], simd: Simd) {
    for (oy, y_row) in y.chunks_exact_mut(wo).enumerate() {
        let top = &x[2 * oy * w..][..2 * wo];
        let bottom = &x[(2 * oy + 1) * w..][..2 * wo];
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        {
            if simd == Simd::Avx512 {
                // SAFETY: `Simd::Avx512` is only chosen where the CPU has AVX-512 F.
                done = unsafe { avx512::pool_row(top, bottom, y_row) };
            }
            if simd.avx2() {
                // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2.
                done += unsafe {
                    avx2::pool_row(&top[2 * done..], &bottom[2 * done..], &mut y_row[done..])
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = simd;
        let (top, bottom) = (&top[2 * done..], &bottom[2 * done..]);
        for ((y, t), b) in y_row[done..]
            .iter_mut()
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
        {
            let v = [t[0], t[1], b[0], b[1]];
            *y = v[argmax4(v)];
        }
    }
}

/// The input gradient of [`pool_2x2`] for one plane: each window's output gradient goes to its
/// maximum, 0 to the other three; `dx` must hold zeros where no window reaches (an odd last
/// row or column).
fn pool_2x2_grad(x: &[f32], dy: &[f32], w: usize, wo: usize, dx: &mut [f32], simd: Simd) {
    for (oy, dy_row) in dy.chunks_exact(wo).enumerate() {
        let top = &x[2 * oy * w..][..2 * wo];
        let bottom = &x[(2 * oy + 1) * w..][..2 * wo];
        let (dtop, dbottom) = dx[2 * oy * w..(2 * oy + 2) * w].split_at_mut(w);
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        {
            if simd == Simd::Avx512 {
                // SAFETY: `Simd::Avx512` is only chosen where the CPU has AVX-512 F.
                done = unsafe {
                    avx512::pool_grad_row(
                        top,
                        bottom,
                        dy_row,
                        &mut dtop[..2 * wo],
                        &mut dbottom[..2 * wo],
                    )
                };
            }
            if simd.avx2() {
                let (t, b, g) = (&top[2 * done..], &bottom[2 * done..], &dy_row[done..]);
                // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2.
                done += unsafe {
                    avx2::pool_grad_row(
                        t,
                        b,
                        g,
                        &mut dtop[2 * done..2 * wo],
                        &mut dbottom[2 * done..2 * wo],
                    )
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = simd;
        let (top, bottom, dy_row) = (&top[2 * done..], &bottom[2 * done..], &dy_row[done..]);
        let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        let grads = dtop[2 * done..2 * wo]
            .chunks_exact_mut(2)
            .zip(dbottom[2 * done..2 * wo].chunks_exact_mut(2));
        for ((&g, (t, b)), (dt, db)) in dy_row.iter().zip(windows).zip(grads) {
            let best = argmax4([t[0], t[1], b[0], b[1]]);
            dt[0] = if best == 0 { g } else { 0.0 };
            dt[1] = if best == 1 { g } else { 0.0 };
            db[0] = if best == 2 { g } else { 0.0 };
            db[1] = if best == 3 { g } else { 0.0 };
        }
    }
}

/// [`pool_2x2`] and [`pool_2x2_grad`] on AVX registers, 8 windows of a row pair at a time: the
/// same choice of maximum as [`argmax4`] ([`order_key`]'s integer order, the first maximum on
/// ties), on keys computed 8 at a time. Callers must check [`Simd::avx2`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::order_key`] of 8 values.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn keys(v: __m256) -> __m256i {
        let bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_setzero_ps()));
        let flip = _mm256_srli_epi32::<1>(_mm256_srai_epi32::<31>(bits));
        let key = _mm256_xor_si256(bits, flip);
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        _mm256_blendv_epi8(key, _mm256_set1_epi32(i32::MAX), nan)
    }

    /// The 8 windows' left and right values of one row from `at[..16]`, in the lane order
    /// `[0, 1, 4, 5, 2, 3, 6, 7]` of windows (the shuffle's); see [`unshuffle`].
    ///
    /// # Safety
    /// `at` must point to 16 readable floats.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn split(at: *const f32) -> (__m256, __m256) {
        // SAFETY: the caller guarantees 16 floats at `at`.
        let (a, b) = unsafe { (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))) };
        (
            _mm256_shuffle_ps::<0x88>(a, b),
            _mm256_shuffle_ps::<0xDD>(a, b),
        )
    }

    /// Windows `[0, 1, 4, 5, 2, 3, 6, 7]` back to `[0..8]` (and, being its own inverse, the
    /// other way): swaps the middle two pairs of lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn unshuffle(v: __m256) -> __m256 {
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)))
    }

    /// The windows' maximum key so far, and which of the window's values (0..4) holds it.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn argmax(values: [__m256; 4]) -> (__m256, __m256i) {
        let (mut best, mut best_key, mut index) =
            (values[0], keys(values[0]), _mm256_setzero_si256());
        for (i, &v) in values.iter().enumerate().skip(1) {
            let key = keys(v);
            let wins = _mm256_cmpgt_epi32(key, best_key);
            best_key = _mm256_blendv_epi8(best_key, key, wins);
            best = _mm256_blendv_ps(best, v, _mm256_castsi256_ps(wins));
            index = _mm256_blendv_epi8(index, _mm256_set1_epi32(i as i32), wins);
        }
        (best, index)
    }

    /// [`super::pool_2x2`] of one row pair for the outputs that fill whole registers; returns
    /// how many outputs it wrote (the caller does the rest).
    #[target_feature(enable = "avx2")]
    pub fn pool_row(top: &[f32], bottom: &[f32], y: &mut [f32]) -> usize {
        let body = y.len() - y.len() % 8;
        assert!(
            top.len() >= 2 * body && bottom.len() >= 2 * body,
            "pool row: rows too short"
        );
        for o in (0..body).step_by(8) {
            // SAFETY: `2 * o + 16 <= 2 * body` floats of each row, `o + 8 <= body` outputs.
            unsafe {
                let (t0, t1) = split(top.as_ptr().add(2 * o));
                let (b0, b1) = split(bottom.as_ptr().add(2 * o));
                let (best, _) = argmax([t0, t1, b0, b1]);
                _mm256_storeu_ps(y.as_mut_ptr().add(o), unshuffle(best));
            }
        }
        body
    }

    /// [`super::pool_2x2_grad`] of one row pair for the outputs that fill whole registers:
    /// writes `dtop` and `dbottom` (the rows' gradients) for those windows; returns how many
    /// windows it did.
    #[target_feature(enable = "avx2")]
    pub fn pool_grad_row(
        top: &[f32],
        bottom: &[f32],
        dy: &[f32],
        dtop: &mut [f32],
        dbottom: &mut [f32],
    ) -> usize {
        let body = dy.len() - dy.len() % 8;
        assert!(
            top.len()
                .min(bottom.len())
                .min(dtop.len())
                .min(dbottom.len())
                >= 2 * body,
            "pool grad row: rows too short"
        );
        for o in (0..body).step_by(8) {
            // SAFETY: `2 * o + 16 <= 2 * body` floats of each row, `o + 8 <= body` gradients.
            unsafe {
                let (t0, t1) = split(top.as_ptr().add(2 * o));
                let (b0, b1) = split(bottom.as_ptr().add(2 * o));
                let (_, index) = argmax([t0, t1, b0, b1]);
                let g = unshuffle(_mm256_loadu_ps(dy.as_ptr().add(o)));
                let to = |i: i32| {
                    _mm256_and_ps(
                        g,
                        _mm256_castsi256_ps(_mm256_cmpeq_epi32(index, _mm256_set1_epi32(i))),
                    )
                };
                let (g0, g1, g2, g3) = (to(0), to(1), to(2), to(3));
                // unpacking a pair of shuffled registers gives the row's own order back
                _mm256_storeu_ps(dtop.as_mut_ptr().add(2 * o), _mm256_unpacklo_ps(g0, g1));
                _mm256_storeu_ps(dtop.as_mut_ptr().add(2 * o + 8), _mm256_unpackhi_ps(g0, g1));
                _mm256_storeu_ps(dbottom.as_mut_ptr().add(2 * o), _mm256_unpacklo_ps(g2, g3));
                _mm256_storeu_ps(
                    dbottom.as_mut_ptr().add(2 * o + 8),
                    _mm256_unpackhi_ps(g2, g3),
                );
            }
        }
        body
    }
}

/// [`pool_2x2`] and [`pool_2x2_grad`] on AVX-512 registers, 16 windows of a row pair at a time,
/// as [`avx2`] does on 8 (the same keys; a two-register permute splits a row into the windows'
/// left and right values in order, and interleaves the gradients back). Callers must check
/// that the CPU has AVX-512 F ([`Simd::Avx512`]).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// [`super::order_key`] of 16 values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn keys(v: __m512) -> __m512i {
        let bits = _mm512_castps_si512(_mm512_add_ps(v, _mm512_setzero_ps()));
        let flip = _mm512_srli_epi32::<1>(_mm512_srai_epi32::<31>(bits));
        let key = _mm512_xor_si512(bits, flip);
        _mm512_mask_blend_epi32(
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v),
            key,
            _mm512_set1_epi32(i32::MAX),
        )
    }

    /// Lane indices into a pair of registers: the even floats, the odd ones.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn halves() -> (__m512i, __m512i) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        (even, _mm512_add_epi32(even, _mm512_set1_epi32(1)))
    }

    /// The 16 windows' left and right values of one row from `at[..32]`, in window order.
    ///
    /// # Safety
    /// `at` must point to 32 readable floats.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split(at: *const f32) -> (__m512, __m512) {
        // SAFETY: the caller guarantees 32 floats at `at`.
        let (a, b) = unsafe { (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16))) };
        let (even, odd) = halves();
        (
            _mm512_permutex2var_ps(a, even, b),
            _mm512_permutex2var_ps(a, odd, b),
        )
    }

    /// The windows' maximum so far, and which of the window's values (0..4) holds it.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn argmax(values: [__m512; 4]) -> (__m512, __m512i) {
        let (mut best, mut best_key, mut index) =
            (values[0], keys(values[0]), _mm512_setzero_si512());
        for (i, &v) in values.iter().enumerate().skip(1) {
            let key = keys(v);
            let wins = _mm512_cmpgt_epi32_mask(key, best_key);
            best_key = _mm512_mask_blend_epi32(wins, best_key, key);
            best = _mm512_mask_blend_ps(wins, best, v);
            index = _mm512_mask_blend_epi32(wins, index, _mm512_set1_epi32(i as i32));
        }
        (best, index)
    }

    /// [`super::pool_2x2`] of one row pair for the outputs that fill whole registers; returns
    /// how many outputs it wrote (the caller does the rest).
    #[target_feature(enable = "avx512f")]
    pub fn pool_row(top: &[f32], bottom: &[f32], y: &mut [f32]) -> usize {
        let body = y.len() - y.len() % 16;
        assert!(
            top.len() >= 2 * body && bottom.len() >= 2 * body,
            "pool row: rows too short"
        );
        for o in (0..body).step_by(16) {
            // SAFETY: `2 * o + 32 <= 2 * body` floats of each row, `o + 16 <= body` outputs.
            unsafe {
                let (t0, t1) = split(top.as_ptr().add(2 * o));
                let (b0, b1) = split(bottom.as_ptr().add(2 * o));
                let (best, _) = argmax([t0, t1, b0, b1]);
                _mm512_storeu_ps(y.as_mut_ptr().add(o), best);
            }
        }
        body
    }

    /// [`super::pool_2x2_grad`] of one row pair for the outputs that fill whole registers:
    /// writes `dtop` and `dbottom` for those windows; returns how many windows it did.
    #[target_feature(enable = "avx512f")]
    pub fn pool_grad_row(
        top: &[f32],
        bottom: &[f32],
        dy: &[f32],
        dtop: &mut [f32],
        dbottom: &mut [f32],
    ) -> usize {
        let body = dy.len() - dy.len() % 16;
        assert!(
            top.len()
                .min(bottom.len())
                .min(dtop.len())
                .min(dbottom.len())
                >= 2 * body,
            "pool grad row: rows too short"
        );
        // lanes 0..8 of the left values interleaved with the right ones, then lanes 8..16
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
        for o in (0..body).step_by(16) {
            // SAFETY: `2 * o + 32 <= 2 * body` floats of each row, `o + 16 <= body` gradients.
            unsafe {
                let (t0, t1) = split(top.as_ptr().add(2 * o));
                let (b0, b1) = split(bottom.as_ptr().add(2 * o));
                let (_, index) = argmax([t0, t1, b0, b1]);
                let g = _mm512_loadu_ps(dy.as_ptr().add(o));
                let to = |i: i32| {
                    _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(index, _mm512_set1_epi32(i)), g)
                };
                let (g0, g1, g2, g3) = (to(0), to(1), to(2), to(3));
                _mm512_storeu_ps(
                    dtop.as_mut_ptr().add(2 * o),
                    _mm512_permutex2var_ps(g0, low, g1),
                );
                _mm512_storeu_ps(
                    dtop.as_mut_ptr().add(2 * o + 16),
                    _mm512_permutex2var_ps(g0, high, g1),
                );
                _mm512_storeu_ps(
                    dbottom.as_mut_ptr().add(2 * o),
                    _mm512_permutex2var_ps(g2, low, g3),
                );
                _mm512_storeu_ps(
                    dbottom.as_mut_ptr().add(2 * o + 16),
                    _mm512_permutex2var_ps(g2, high, g3),
                );
            }
        }
        body
    }
}

/// Where each output value's window has its maximum: `f(oy, ox, index into the plane)`, in
/// row-major order of outputs, for any window ([`pool_2x2`] takes the plain 2x2 one). The first
/// maximum wins; a NaN wins over any number.
fn for_each_argmax(
    x: &[f32],
    [h, w]: [usize; 2],
    [ho, wo]: [usize; 2],
    win: &PoolWindow,
    mut f: impl FnMut(usize, usize, usize),
) {
    for oy in 0..ho {
        for ox in 0..wo {
            let mut best: Option<usize> = None;
            for i in 0..win.kernel[0] {
                let y = (oy * win.stride[0] + i * win.dilation[0])
                    .checked_sub(win.padding[0])
                    .filter(|&y| y < h);
                let Some(y) = y else { continue };
                for j in 0..win.kernel[1] {
                    let xx = (ox * win.stride[1] + j * win.dilation[1])
                        .checked_sub(win.padding[1])
                        .filter(|&xx| xx < w);
                    let Some(xx) = xx else { continue };
                    let at = y * w + xx;
                    if best.is_none_or(|b| beats(x[at], x[b])) {
                        best = Some(at);
                    }
                }
            }
            // Padding of at most half the kernel (as burn and PyTorch require) leaves every
            // window at least one input value.
            f(
                oy,
                ox,
                best.expect(
                    "a pooling window with no input value (padding larger than half the kernel)",
                ),
            );
        }
    }
}

/// Whether the CPU kernels take this pool: an `f32` 4D input, padding at most half the kernel.
fn cpu_takes(tensors: &[&FlexTensor], window: &PoolWindow) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape().num_dims() == 4)
        && (0..2).all(|a| window.padding[a] <= window.kernel[a] / 2)
}

impl MaxPoolOps for burn::backend::Flex {
    fn max_pool2d_lean(x: FlexTensor, window: PoolWindow) -> FlexTensor {
        if !cpu_takes(&[&x], &window) {
            return burns_forward::<Self>(x, window);
        }
        let [b, c, h, w] = dims4(&x);
        let [ho, wo] = window.output(h, w);
        let x = contiguous(x);
        let xs = values(&x);
        let mut y = vec![0f32; b * c * ho * wo];
        let simd = Simd::detect();
        y.par_chunks_mut((ho * wo).max(1))
            .zip(xs.par_chunks((h * w).max(1)))
            .for_each(|(y, x)| {
                if window.is_2x2() && wo > 0 {
                    pool_2x2(x, w, wo, y, simd);
                } else {
                    for_each_argmax(x, [h, w], [ho, wo], &window, |oy, ox, at| {
                        y[oy * wo + ox] = x[at]
                    });
                }
            });
        tensor(y, vec![b, c, ho, wo])
    }

    fn max_pool2d_input_grad(x: FlexTensor, window: PoolWindow, dy: FlexTensor) -> FlexTensor {
        if !cpu_takes(&[&x, &dy], &window) {
            return burns_input_grad::<Self>(x, window, dy);
        }
        let [b, c, h, w] = dims4(&x);
        let [ho, wo] = window.output(h, w);
        let (x, dy) = (contiguous(x), contiguous(dy));
        let (xs, dys) = (values(&x), values(&dy));
        let mut dx = vec![0f32; xs.len()];
        let simd = Simd::detect();
        dx.par_chunks_mut((h * w).max(1))
            .zip(
                xs.par_chunks((h * w).max(1))
                    .zip(dys.par_chunks((ho * wo).max(1))),
            )
            .for_each(|(dx, (x, dy))| {
                if window.is_2x2() && wo > 0 {
                    pool_2x2_grad(x, dy, w, wo, dx, simd);
                } else {
                    // Overlapping windows may share a maximum: accumulate.
                    for_each_argmax(x, [h, w], [ho, wo], &window, |oy, ox, at| {
                        dx[at] += dy[oy * wo + ox]
                    });
                }
            });
        tensor(dx, vec![b, c, h, w])
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl MaxPoolOps for burn::backend::Cube {}
#[cfg(feature = "tch")]
impl MaxPoolOps for burn::backend::LibTorch {}

/// The backward step of [`MaxPoolOps::max_pool2d_lean`]: keeps the input, not indices.
#[derive(Debug)]
struct MaxPoolBackward;

impl<B: MaxPoolOps> Backward<B, 1> for MaxPoolBackward {
    type State = (FloatTensor<B>, PoolWindow);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, window) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::max_pool2d_input_grad(x, window, dy));
        }
    }
}

impl<B: MaxPoolOps, C: CheckpointStrategy> MaxPoolOps for Autodiff<B, C> {
    fn max_pool2d_lean(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let y = B::max_pool2d_lean(x.clone(), window);
                prep.finish((x, window), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_lean(x.into_primitive(), window)),
        }
    }
}

/// Max-pooling of `x` with `window`, with [`MaxPoolOps`]' kernels.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output: `[batch, channels, ho, wo]` (`PoolWindow::output`)
pub fn max_pool2d(x: Tensor<4>, window: PoolWindow) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as MaxPoolOps>::max_pool2d_lean(
        x.into_dispatch(),
        window,
    ))
}

/// `pool.forward(x)` through [`max_pool2d`] where the module's padding is symmetric (or none) and
/// `ceil_mode` is off; burn's own op otherwise.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output: `[batch, channels, ho, wo]`
pub fn forward(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return pool.forward(x),
    };
    if pool.ceil_mode {
        return pool.forward(x);
    }
    let window = PoolWindow {
        kernel: pool.kernel_size,
        stride: pool.stride,
        padding,
        dilation: pool.dilation,
    };
    max_pool2d(x, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row pair with ties, signed zeros, NaN and infinities among random values.
    fn tricky(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                match state >> 28 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 0.25,
                    3 => f32::NAN,
                    4 => f32::NEG_INFINITY,
                    5 => -f32::NAN,
                    _ => (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0,
                }
            })
            .collect()
    }

    #[test]
    fn the_vector_2x2_pools_choose_as_the_scalar_one() {
        for simd in crate::model::ops::simd::report_paths("2x2 max-pool") {
            // widths around the 8- and 16-window registers: an AVX2 tail after AVX-512, scalar
            // tails after both
            for (wo, seed) in [
                (8, 1),
                (19, 2),
                (32, 3),
                (7, 4),
                (64, 5),
                (16, 6),
                (24, 7),
                (31, 8),
                (47, 9),
            ] {
                let (h, w) = (4, 2 * wo + 1); // an odd last column the pool drops
                let x = tricky(h * w, seed);
                let dy: Vec<f32> = (0..2 * wo).map(|i| i as f32 + 1.0).collect();
                let (mut y, mut y_ref) = (vec![0f32; 2 * wo], vec![0f32; 2 * wo]);
                pool_2x2(&x, w, wo, &mut y, simd);
                pool_2x2(&x, w, wo, &mut y_ref, Simd::Portable);
                let same =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(
                    same(&y, &y_ref),
                    "{simd:?} wo {wo}: outputs differ: {y:?} vs {y_ref:?}"
                );
                let (mut dx, mut dx_ref) = (vec![0f32; h * w], vec![0f32; h * w]);
                pool_2x2_grad(&x, &dy, w, wo, &mut dx, simd);
                pool_2x2_grad(&x, &dy, w, wo, &mut dx_ref, Simd::Portable);
                assert!(
                    same(&dx, &dx_ref),
                    "{simd:?} wo {wo}: gradients differ: {dx:?} vs {dx_ref:?}"
                );
            }
        }
    }
}
