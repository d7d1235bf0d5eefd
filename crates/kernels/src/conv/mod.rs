//! CPU kernels of the conv for the `flex` backend, forward and backward: im2col / col2im and one
//! matrix product per pass, images in parallel.
//!
//! With `x` `[b, ci, h, w]`, `weight` `[co, ci, kh, kw]`, the output gradient `dy`
//! `[b, co, ho, wo]`, `K = ci * kh * kw` and `P = ho * wo`, for each image:
//!
//! ```text
//! col  = im2col(x_b)            // [K, P]: col[(c, i, j), (oy, ox)] = x_b[c, oy*s + i*d - pad, ...]
//! y_b  = W col                  // [co, P] = [co, K] x [K, P]
//! dW  += dy_b col^T             // [co, K] = [co, P] x [P, K]
//! dcol = W^T dy_b               // [K, P]  = [K, co] x [co, P]
//! dx_b = col2im(dcol)           // scatter-add back onto [ci, h, w]
//! ```
//!
//! The products take a block of images side by side (`[K, n * P]`), so the late layers, with few
//! output positions, still make wide matrix products; an image with many output positions (the
//! first layers) makes a wide product alone and goes one per product, without block copies.
//!
//! burn 0.22's generic fallback (which `flex` uses) computes the weight gradient as a conv of
//! the batch-and-channel-swapped input with the swapped output gradient as its kernel (a matrix
//! product only 9 columns wide for a 3x3 kernel, after two layout copies), and the input gradient
//! as a transposed conv; these are the two products above with no layout change.
//!
//! Only `f32` and `groups == 1` run here; the caller falls back to burn's ops otherwise.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::matmul::{View, matmul, matmul_uninit};
use crate::output::{par_filled, par_written};
use crate::scratch::with_scratch;
use crate::simd::Simd;

pub mod winograd;

/// The shapes of one conv: input `[b, ci, h, w]`, kernel `[co, ci, kh, kw]`, output `[ho, wo]`.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Padding before the first row and column (padding after only bounds `ho`, `wo`).
    pub pad: [usize; 2],
}

impl ConvShape {
    /// The shape of `x` `[b, ci, h, w]` convolved with `weight` `[co, ci, kh, kw]` under
    /// `stride`, `padding` (before, after) and `dilation`, per axis (height, width).
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
    ) -> Self {
        let [batch, c_in, h, w] = x;
        let [c_out, _, kh, kw] = weight;
        let out = |side: usize, k: usize, dim: usize| {
            let (before, after) = padding[dim];
            (side + before + after - dilation[dim] * (k - 1) - 1) / stride[dim] + 1
        };
        Self {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            ho: out(h, kh, 0),
            wo: out(w, kw, 1),
            stride,
            dilation,
            pad: padding.map(|(before, _)| before),
        }
    }

    /// A 1x1, stride-1, unpadded conv (attention's q, k, v projections): its im2col matrix is
    /// the image itself (`[ci, h * w]`), so the products read the image in place.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.ho == self.h
            && self.wo == self.w
    }

    /// Rows of the im2col matrix: `ci * kh * kw`.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output positions per image: `ho * wo`.
    fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// For kernel offset `j` along a row, the output columns `ox` whose input column
    /// `ox * s + j * d - pad` lies inside the image, as a range.
    fn valid_cols(&self, j: usize) -> std::ops::Range<usize> {
        valid_range(
            self.wo,
            self.w,
            self.stride[1],
            j * self.dilation[1],
            self.pad[1],
        )
    }

    fn valid_rows(&self, i: usize) -> std::ops::Range<usize> {
        valid_range(
            self.ho,
            self.h,
            self.stride[0],
            i * self.dilation[0],
            self.pad[0],
        )
    }
}

/// The outputs `o < n_out` with `0 <= o * s + offset - pad < n_in`.
fn valid_range(
    n_out: usize,
    n_in: usize,
    s: usize,
    offset: usize,
    pad: usize,
) -> std::ops::Range<usize> {
    // o * s + offset >= pad  <=>  o >= ceil((pad - offset) / s)
    let start = pad.saturating_sub(offset).div_ceil(s);
    // o * s + offset - pad <= n_in - 1  <=>  o <= (n_in - 1 + pad - offset) / s
    let end = if n_in + pad > offset {
        ((n_in - 1 + pad - offset) / s + 1).min(n_out)
    } else {
        0
    };
    start.min(end)..end
}

/// One image `x` `[ci, h, w]` as im2col columns: row `r` of the `[K, P]` result starts at
/// `col[r * ld]` (`ld >= P`, so several images can sit side by side); positions outside the
/// image are 0. Inlined into [`Simd::run`] by its callers, so that its copies and gathers are
/// compiled for the CPU's vector path.
#[inline(always)]
fn im2col(x: &[f32], s: &ConvShape, col: &mut [f32], ld: usize) {
    let p = s.p();
    for c in 0..s.c_in {
        let plane = &x[c * s.h * s.w..(c + 1) * s.h * s.w];
        for i in 0..s.kh {
            let rows = s.valid_rows(i);
            for j in 0..s.kw {
                let row = &mut col[((c * s.kh + i) * s.kw + j) * ld..][..p];
                let cols = s.valid_cols(j);
                for oy in 0..s.ho {
                    let out = &mut row[oy * s.wo..(oy + 1) * s.wo];
                    if !rows.contains(&oy) || cols.is_empty() {
                        out.fill(0.0);
                        continue;
                    }
                    let y = oy * s.stride[0] + i * s.dilation[0] - s.pad[0];
                    let src = &plane[y * s.w..(y + 1) * s.w];
                    out[..cols.start].fill(0.0);
                    out[cols.end..].fill(0.0);
                    let x0 = cols.start * s.stride[1] + j * s.dilation[1] - s.pad[1];
                    if s.stride[1] == 1 {
                        out[cols.clone()].copy_from_slice(&src[x0..x0 + cols.len()]);
                    } else {
                        for (k, o) in out[cols.clone()].iter_mut().enumerate() {
                            *o = src[x0 + k * s.stride[1]];
                        }
                    }
                }
            }
        }
    }
}

/// Adds one image's im2col-shaped gradient (`[K, P]`, row `r` at `dcol[r * ld]`) onto its input
/// gradient `dx` `[ci, h, w]`, which the caller allocated zeroed (zeroing it again here cost 3%
/// of a training step). Inlined into [`Simd::run`] as [`im2col`] is: the adds run 16 lanes at
/// a time on AVX-512.
#[inline(always)]
fn col2im(dcol: &[f32], s: &ConvShape, dx: &mut [f32], ld: usize) {
    let p = s.p();
    for c in 0..s.c_in {
        let plane = &mut dx[c * s.h * s.w..(c + 1) * s.h * s.w];
        for i in 0..s.kh {
            let rows = s.valid_rows(i);
            for j in 0..s.kw {
                let row = &dcol[((c * s.kh + i) * s.kw + j) * ld..][..p];
                let cols = s.valid_cols(j);
                if cols.is_empty() {
                    continue;
                }
                let x0 = cols.start * s.stride[1] + j * s.dilation[1] - s.pad[1];
                for oy in rows.clone() {
                    let y = oy * s.stride[0] + i * s.dilation[0] - s.pad[0];
                    let dst = &mut plane[y * s.w..(y + 1) * s.w];
                    let src = &row[oy * s.wo + cols.start..oy * s.wo + cols.end];
                    if s.stride[1] == 1 {
                        for (d, &g) in dst[x0..x0 + src.len()].iter_mut().zip(src) {
                            *d += g;
                        }
                    } else {
                        for (k, &g) in src.iter().enumerate() {
                            dst[x0 + k * s.stride[1]] += g;
                        }
                    }
                }
            }
        }
    }
}

/// Lays `n` images' `[rows, p]` matrices (image `j` at `images[j * rows * p..]`) side by side
/// into one `[rows, n * p]` block whose row `r` starts at `block[r * ld]`.
fn images_to_block(images: &[f32], n: usize, rows: usize, p: usize, block: &mut [f32], ld: usize) {
    for j in 0..n {
        for r in 0..rows {
            block[r * ld + j * p..r * ld + (j + 1) * p]
                .copy_from_slice(&images[(j * rows + r) * p..(j * rows + r + 1) * p]);
        }
    }
}

/// The inverse of [`images_to_block`]: the block's `n` images back to their own `[rows, p]`
/// matrices.
/// Every value of `images` is written.
fn block_to_images(
    block: &[f32],
    ld: usize,
    n: usize,
    rows: usize,
    p: usize,
    images: &mut [MaybeUninit<f32>],
) {
    for j in 0..n {
        for r in 0..rows {
            let to = &mut images[(j * rows + r) * p..(j * rows + r + 1) * p];
            for (to, &value) in to.iter_mut().zip(&block[r * ld + j * p..][..p]) {
                to.write(value);
            }
        }
    }
}

/// Images per rayon task: the batch split evenly over the threads, so each task keeps one
/// scratch matrix (and, for the weight gradient, one partial sum).
pub(super) fn images_per_task(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Most floats in one im2col block of several images (16 MB in f32); Winograd's blocks of
/// transformed tiles keep to it too.
pub(super) const BLOCK_ELEMENTS: usize = 1 << 22;

/// Output positions from which one image alone makes a wide enough matrix product (the first
/// layers at 32x32 and 16x16): those images go one per product, straight between their own
/// `[rows, P]` matrices and the product, without the block copies that cost about as much as
/// the products' packing.
const WIDE_IMAGE: usize = 256;

/// Images side by side per matrix product: one where the image is wide enough alone, else as
/// many as fit in [`BLOCK_ELEMENTS`] (at most a task's `chunk`).
fn images_per_block(k: usize, p: usize, chunk: usize) -> usize {
    if p >= WIDE_IMAGE {
        1
    } else {
        (BLOCK_ELEMENTS / (k * p).max(1)).clamp(1, chunk)
    }
}

/// The conv's output `[b, co, ho, wo]` (flat): `y_block [co, n P] = W [co, K] x col_block`, a
/// block of images side by side per matrix product as in [`weight_grad`].
pub fn forward(x: &[f32], weight: &[f32], s: &ConvShape) -> Vec<f32> {
    let simd = Simd::detect();
    let (k, p) = (s.k(), s.p());
    let (x_len, y_len) = (s.c_in * s.h * s.w, s.c_out * p);
    assert_eq!(
        x.len(),
        s.batch * x_len,
        "conv forward: x has the wrong size"
    );
    assert_eq!(
        weight.len(),
        s.c_out * k,
        "conv forward: weight has the wrong size"
    );
    let chunk = images_per_task(s.batch);
    let block = images_per_block(k, p, chunk);
    // SAFETY: each image block of a task's piece is written whole, by a matrix product over
    // its full `[co, n P]` view or by `block_to_images`.
    unsafe {
        par_written(s.batch * y_len, chunk * y_len, |task, ys| {
            let xs = &x[task * chunk * x_len..][..ys.len() / y_len * x_len];
            let ld = block * p;
            with_scratch(k * ld, s.c_out * ld, |col, yc| {
                for (yb, xb) in ys.chunks_mut(block * y_len).zip(xs.chunks(block * x_len)) {
                    let n = xb.len() / x_len;
                    let w = View::new(0, s.c_out, k, k, 1);
                    if n == 1 && s.is_pointwise() {
                        // the image is its own im2col matrix
                        matmul_uninit(
                            yb,
                            View::new(0, s.c_out, p, p, 1),
                            weight,
                            w,
                            xb,
                            View::new(0, k, p, p, 1),
                            1.0,
                        );
                        continue;
                    }
                    for j in 0..n {
                        simd.run(|| {
                            im2col(&xb[j * x_len..(j + 1) * x_len], s, &mut col[j * p..], ld)
                        });
                    }
                    // y_block [co, n P] = W [co, K] x col_block [K, n P]; one image: straight into y
                    let cols = View::new(0, k, n * p, ld, 1);
                    if n == 1 {
                        matmul_uninit(
                            yb,
                            View::new(0, s.c_out, p, p, 1),
                            weight,
                            w,
                            col,
                            cols,
                            1.0,
                        );
                    } else {
                        matmul(
                            yc,
                            View::new(0, s.c_out, n * p, ld, 1),
                            false,
                            weight,
                            w,
                            col,
                            cols,
                            1.0,
                        );
                        block_to_images(yc, ld, n, s.c_out, p, yb);
                    }
                }
            });
        })
    }
}

/// The weight gradient `[co, ci, kh, kw]` (flat) of a conv with input `x` and output gradient `dy`.
///
/// Images are taken a block at a time, side by side (`col` `[K, n * P]`, `dy` `[co, n * P]`), so
/// that late layers with few output positions still make one wide matrix product instead of a
/// rank-`P` update of `dW` per image.
pub fn weight_grad(x: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    let simd = Simd::detect();
    let (k, p) = (s.k(), s.p());
    let (x_len, dy_len) = (s.c_in * s.h * s.w, s.c_out * p);
    assert_eq!(
        x.len(),
        s.batch * x_len,
        "conv weight grad: x has the wrong size"
    );
    assert_eq!(
        dy.len(),
        s.batch * dy_len,
        "conv weight grad: dy has the wrong size"
    );
    let chunk = images_per_task(s.batch);
    let block = images_per_block(k, p, chunk);
    // One partial [co, K] per task, summed in task order: the result does not depend on which
    // thread ran which task.
    let partials: Vec<Vec<f32>> = x
        .par_chunks(chunk * x_len)
        .zip(dy.par_chunks(chunk * dy_len))
        .map(|(xs, dys)| {
            let mut dw = vec![0f32; s.c_out * k];
            let ld = block * p;
            with_scratch(k * ld, s.c_out * ld, |col, dyc| {
                for (b, (xb, dyb)) in xs
                    .chunks(block * x_len)
                    .zip(dys.chunks(block * dy_len))
                    .enumerate()
                {
                    let n = xb.len() / x_len;
                    if n == 1 && s.is_pointwise() {
                        // dW [co, ci] += dy_b [co, P] x x_b^T [P, ci]: the image is its own im2col matrix
                        matmul(
                            &mut dw,
                            View::new(0, s.c_out, k, k, 1),
                            b > 0,
                            dyb,
                            View::new(0, s.c_out, p, p, 1),
                            xb,
                            View::new(0, p, k, 1, p),
                            1.0,
                        );
                        continue;
                    }
                    for j in 0..n {
                        simd.run(|| {
                            im2col(&xb[j * x_len..(j + 1) * x_len], s, &mut col[j * p..], ld)
                        });
                    }
                    // dW [co, K] += dy_block [co, n P] x col_block^T [n P, K]; one image: its own dy
                    let (dy_block, dy_ld) = if n == 1 {
                        (dyb, p)
                    } else {
                        images_to_block(dyb, n, s.c_out, p, dyc, ld);
                        (&dyc[..], ld)
                    };
                    matmul(
                        &mut dw,
                        View::new(0, s.c_out, k, k, 1),
                        b > 0,
                        dy_block,
                        View::new(0, s.c_out, n * p, dy_ld, 1),
                        col,
                        View::new(0, n * p, k, 1, ld),
                        1.0,
                    );
                }
            });
            dw
        })
        .collect();
    sum_in_task_order(partials, s.c_out * k)
}

/// The tasks' partial sums (each `len` floats) added in task order, so that a result does not
/// depend on which thread ran which task; zeros when there were no tasks.
pub(super) fn sum_in_task_order(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut parts = partials.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for part in parts {
        for (a, b) in sum.iter_mut().zip(&part) {
            *a += b;
        }
    }
    sum
}

/// The input gradient `[b, ci, h, w]` (flat) of a conv with kernel `weight` and output gradient
/// `dy`, a block of images side by side per matrix product as in [`weight_grad`].
pub fn input_grad(weight: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    let simd = Simd::detect();
    let (k, p) = (s.k(), s.p());
    let (x_len, dy_len) = (s.c_in * s.h * s.w, s.c_out * p);
    assert_eq!(
        weight.len(),
        s.c_out * k,
        "conv input grad: weight has the wrong size"
    );
    assert_eq!(
        dy.len(),
        s.batch * dy_len,
        "conv input grad: dy has the wrong size"
    );
    let chunk = images_per_task(s.batch);
    let block = images_per_block(k, p, chunk);
    // Each task's images zeroed first: col2im adds onto them.
    par_filled(s.batch * x_len, chunk * x_len, |task, dxs| {
        let dys = &dy[task * chunk * dy_len..][..dxs.len() / x_len * dy_len];
        let ld = block * p;
        with_scratch(k * ld, s.c_out * ld, |dcol, dyc| {
            for (dxb, dyb) in dxs
                .chunks_mut(block * x_len)
                .zip(dys.chunks(block * dy_len))
            {
                let n = dyb.len() / dy_len;
                if n == 1 && s.is_pointwise() {
                    // dx_b [ci, P] = W^T [ci, co] x dy_b [co, P]: col2im of a 1x1 conv is the identity
                    matmul(
                        dxb,
                        View::new(0, k, p, p, 1),
                        false,
                        weight,
                        View::new(0, k, s.c_out, 1, k),
                        dyb,
                        View::new(0, s.c_out, p, p, 1),
                        1.0,
                    );
                    continue;
                }
                // dcol [K, n P] = W^T [K, co] x dy_block [co, n P]; one image: its own dy
                let (dy_block, dy_ld) = if n == 1 {
                    (dyb, p)
                } else {
                    images_to_block(dyb, n, s.c_out, p, dyc, ld);
                    (&dyc[..], ld)
                };
                matmul(
                    dcol,
                    View::new(0, k, n * p, ld, 1),
                    false,
                    weight,
                    View::new(0, k, s.c_out, 1, k),
                    dy_block,
                    View::new(0, s.c_out, n * p, dy_ld, 1),
                    1.0,
                );
                for j in 0..n {
                    simd.run(|| {
                        col2im(&dcol[j * p..], s, &mut dxb[j * x_len..(j + 1) * x_len], ld)
                    });
                }
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_a_brute_force_count() {
        for n_in in 1usize..9 {
            for s in 1..4 {
                for pad in 0..3 {
                    for offset in 0..5 {
                        let n_out = (n_in + 2 * pad).saturating_sub(offset) / s + 2_usize;
                        let want: Vec<usize> = (0..n_out)
                            .filter(|&o| {
                                let y = (o * s + offset) as isize - pad as isize;
                                y >= 0 && y < n_in as isize
                            })
                            .collect();
                        let got: Vec<usize> = valid_range(n_out, n_in, s, offset, pad).collect();
                        assert_eq!(got, want, "n_in {n_in} s {s} pad {pad} offset {offset}");
                    }
                }
            }
        }
    }

    #[test]
    fn im2col_and_col2im_compute_the_portable_bits_on_every_path() {
        // (c_in, h, w, kernel, stride, padding): 3x3 and 1x1, strides 1 and 2, widths that
        // leave tails after 16- and 8-lane registers
        let cases = [
            (3, 9, 17, 3, 1, 1),
            (5, 8, 8, 3, 2, 1),
            (2, 5, 33, 1, 1, 0),
            (4, 7, 19, 5, 1, 2),
        ];
        for simd in crate::simd::report_paths("im2col / col2im") {
            for (i, &(c_in, h, w, k, stride, pad)) in cases.iter().enumerate() {
                let s = ConvShape::new(
                    [1, c_in, h, w],
                    [4, c_in, k, k],
                    [stride; 2],
                    [(pad, pad); 2],
                    [1, 1],
                );
                let (rows, p) = (s.k(), s.p());
                let x: Vec<f32> = (0..c_in * h * w)
                    .map(|v| (v * 37 % 101) as f32 * 0.013 - 0.6)
                    .collect();
                let (mut col, mut want) = (vec![f32::NAN; rows * p], vec![f32::NAN; rows * p]);
                simd.run(|| im2col(&x, &s, &mut col, p));
                im2col(&x, &s, &mut want, p);
                let same =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same(&col, &want), "{simd:?} case {i}: im2col");
                let (mut dx, mut dx_want) = (vec![0f32; x.len()], vec![0f32; x.len()]);
                simd.run(|| col2im(&col, &s, &mut dx, p));
                col2im(&want, &s, &mut dx_want, p);
                assert!(same(&dx, &dx_want), "{simd:?} case {i}: col2im");
            }
        }
    }
}
