//! CPU kernels of attention architecture 3 (attention between feature maps, output concatenated
//! to the input), forward and backward, on contiguous `f32` slices.
//!
//! # What it computes
//!
//! Per image, `X` is `[C, N]` (the `C` feature maps of `N = h * w` values each, as the conv layer
//! lays them out), `W_q`, `W_k` are `[N, D]`, and `D` splits into `H` heads of `d = D / H`:
//!
//! ```text
//! q = X W_q,  k = X W_k                                  // [C, D]
//! P_h = softmax_rows(q_h k_h^T / sqrt(d))                // [C, C] per head h
//! A = (1/H) sum_h P_h                                    // [C, C]
//! out = [X; A X]                                         // [2C, N]
//! ```
//!
//! Backward, with `G = [G_x; G_y]` the output gradient:
//!
//! ```text
//! dA = G_y X^T                 dX = G_x + A^T G_y + dq W_q^T + dk W_k^T
//! dS_h = P_h * (dA/H - rowsum(P_h * dA/H)) / sqrt(d)
//! dq_h = dS_h k_h              dk_h = dS_h^T q_h
//! dW_q = sum_images X^T dq     dW_k = sum_images X^T dk
//! ```
//!
//! # How
//!
//! The projections and the weight gradients are one matrix product over the whole batch each
//! (`[B C, N] x [N, D]`, `[N, B C] x [B C, D]`): the images' rows stack, so no layout changes
//! and the weights are packed once. The `C x C` parts run per image in parallel (rayon), each
//! product straight on strided views of `q`, `k`, `X` and the output (no transposed copies); the
//! softmax is the pixel-attention kernels' SIMD one ([`crate::attention::softmax_rows`]). The
//! forward pass keeps `q`, `k` and `P` (`[B, H, C, C]`: at most 256 x 256 per image and head
//! here) for the backward pass.

use crate::attention::softmax_rows;
use crate::matmul::{View, matmul, matmul_parallel, matmul_parallel_new};
use crate::output::par_filled_each;
use crate::simd::Simd;

/// The sizes of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Images (`B`).
    pub batch: usize,
    /// Feature maps per image (`C`), the tokens.
    pub channels: usize,
    /// Values per feature map (`N = h * w`).
    pub tokens: usize,
    /// Width of the queries and keys (`D`).
    pub dim: usize,
    /// Heads (`H`, dividing `D`).
    pub heads: usize,
}

impl Shape {
    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// `1 / sqrt(d)`, the scores' scale.
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    fn check(&self, x: &[f32], wq: &[f32], wk: &[f32]) {
        let Shape {
            batch,
            channels,
            tokens,
            dim,
            heads,
        } = *self;
        assert!(
            heads > 0 && dim % heads == 0,
            "channel attention: {heads} heads do not divide the width {dim}"
        );
        assert!(
            x.len() == batch * channels * tokens
                && wq.len() == tokens * dim
                && wk.len() == wq.len(),
            "channel attention: slices of other shapes than x [B, C, N] and W [N, D]"
        );
    }
}

/// What the forward pass returns: the output and what the backward pass needs.
#[derive(Debug)]
pub struct Forward {
    /// `[X; A X]` per image: `[B, 2C, N]`.
    pub out: Vec<f32>,
    /// `X W_q`: `[B, C, D]`.
    pub q: Vec<f32>,
    /// `X W_k`: `[B, C, D]`.
    pub k: Vec<f32>,
    /// Each head's attention weights `P_h`: `[B, H, C, C]`, rows summing to 1.
    pub probs: Vec<f32>,
}

/// `[rows, cols]` row-major at `offset`.
fn rows(offset: usize, rows: usize, cols: usize) -> View {
    View::new(offset, rows, cols, cols, 1)
}

/// The transpose of the row-major `[rows, cols]` at `offset`: a `[cols, rows]` view.
fn transposed(offset: usize, rows: usize, cols: usize) -> View {
    View::new(offset, cols, rows, 1, cols)
}

/// Columns `start..start + width` of the row-major `[rows, cols]` at `offset`.
fn columns(offset: usize, rows: usize, cols: usize, start: usize, width: usize) -> View {
    View::new(offset + start, rows, width, cols, 1)
}

/// `A` (`[C, C]`) of one image's `probs` (`[H, C, C]`): the single head's weights themselves, or
/// the heads' mean, computed into `scratch`.
fn attention_of<'a>(
    simd: Simd,
    probs: &'a [f32],
    heads: usize,
    scratch: &'a mut Vec<f32>,
) -> &'a [f32] {
    if heads == 1 {
        return probs;
    }
    scratch.resize(probs.len() / heads, 0.0);
    mean_of_heads(simd, probs, heads, scratch);
    scratch
}

/// `A`, the heads' mean of `probs` (`[H, C, C]`), into `a` (`[C, C]`).
fn mean_of_heads(simd: Simd, probs: &[f32], heads: usize, a: &mut [f32]) {
    simd.run(|| {
        a.copy_from_slice(&probs[..a.len()]);
        for head in probs.chunks_exact(a.len()).skip(1) {
            for (a, p) in a.iter_mut().zip(head) {
                *a += p;
            }
        }
        let inv = 1.0 / heads as f32;
        for a in a.iter_mut() {
            *a *= inv;
        }
    })
}

/// Forward of `shape.batch` images: see the [module documentation](self).
///
/// # Shapes
/// - `x`: `[B, C, N]`; `wq`, `wk`: `[N, D]`, all contiguous
///
/// # Panics
/// If a slice's length is not its shape's, or the heads do not divide `D`.
pub fn forward(x: &[f32], wq: &[f32], wk: &[f32], shape: Shape) -> Forward {
    forward_on(Simd::detect(), x, wq, wk, shape)
}

/// [`forward`] on the path `simd` (one the CPU supports).
pub fn forward_on(simd: Simd, x: &[f32], wq: &[f32], wk: &[f32], shape: Shape) -> Forward {
    shape.check(x, wq, wk);
    let Shape {
        batch: b,
        channels: c,
        tokens: n,
        dim: d,
        heads,
    } = shape;
    let dh = shape.head_dim();
    // The projections of every image at once: `[B C, N] x [N, D]`.
    let project = |w: &[f32]| matmul_parallel_new(x, rows(0, b * c, n), w, rows(0, n, d), 1.0);
    let (q, k) = (project(wq), project(wk));
    if b * c * n == 0 || heads == 0 {
        let (out, probs) = (vec![0f32; b * 2 * c * n], vec![0f32; b * heads * c * c]);
        return Forward { out, q, k, probs };
    }
    // Scores in base 2 (`log2 e` folded into the scale), as the softmax kernel takes them.
    let alpha = shape.scale() * std::f32::consts::LOG2_E;
    // Per image: its output `[2C, N]` and its heads' weights `[H, C, C]`.
    let [out, probs] = par_filled_each(b, [2 * c * n, heads * c * c], |i, [out, probs]| {
        let (xi, qi) = (i * c * n, i * c * d);
        let mut lse = vec![0f32; c];
        let mut inv_sum = vec![0f32; c];
        for (h, p) in probs.chunks_exact_mut(c * c).enumerate() {
            // P_h = softmax(alpha q_h k_h^T): [C, d] x [d, C].
            let q_h = columns(qi, c, d, h * dh, dh);
            let k_ht = View::new(qi + h * dh, dh, c, 1, d);
            matmul(p, rows(0, c, c), false, &q, q_h, &k, k_ht, alpha);
            softmax_rows(simd, p, c, &mut lse, &mut inv_sum);
            simd.run(|| {
                for (row, &inv) in p.chunks_exact_mut(c).zip(&inv_sum) {
                    row.iter_mut().for_each(|v| *v *= inv);
                }
            });
        }
        let mut scratch = Vec::new();
        let a = attention_of(simd, probs, heads, &mut scratch);
        out[..c * n].copy_from_slice(&x[xi..xi + c * n]);
        // A X: [C, C] x [C, N], into the second half.
        matmul(
            out,
            rows(c * n, c, n),
            false,
            a,
            rows(0, c, c),
            x,
            rows(xi, c, n),
            1.0,
        );
    });
    Forward { out, q, k, probs }
}

/// Backward: `(dx [B, C, N], dwq [N, D], dwk [N, D])` from the forward's inputs, its saved
/// `q`, `k`, `probs`, and the output gradient `dout` `[B, 2C, N]`.
///
/// # Panics
/// If a slice's length is not its shape's, or the heads do not divide `D`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    wq: &[f32],
    wk: &[f32],
    q: &[f32],
    k: &[f32],
    probs: &[f32],
    dout: &[f32],
    shape: Shape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    backward_on(Simd::detect(), x, wq, wk, q, k, probs, dout, shape)
}

/// [`backward`] on the path `simd` (one the CPU supports).
#[allow(clippy::too_many_arguments)]
pub fn backward_on(
    simd: Simd,
    x: &[f32],
    wq: &[f32],
    wk: &[f32],
    q: &[f32],
    k: &[f32],
    probs: &[f32],
    dout: &[f32],
    shape: Shape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    shape.check(x, wq, wk);
    let Shape {
        batch: b,
        channels: c,
        tokens: n,
        dim: d,
        heads,
    } = shape;
    assert!(
        q.len() == b * c * d
            && k.len() == q.len()
            && probs.len() == b * heads * c * c
            && dout.len() == b * 2 * c * n,
        "channel attention backward: saved tensors or gradient of other shapes than the forward's"
    );
    let dh = shape.head_dim();
    let scale = shape.scale();
    let inv_heads = 1.0 / heads as f32;
    if b * c == 0 {
        return (vec![0f32; b * c * n], vec![0f32; n * d], vec![0f32; n * d]);
    }
    // Per image: its input's gradient `[C, N]` (the projections' share is added for the batch
    // below) and its queries' and keys' `[C, D]`.
    let [mut dx, dq, dk] = par_filled_each(b, [c * n, c * d, c * d], |i, [dx, dq, dk]| {
        let (xi, qi, gi) = (i * c * n, i * c * d, i * 2 * c * n);
        let probs = &probs[i * heads * c * c..(i + 1) * heads * c * c];
        let mut scratch = Vec::new();
        let a = attention_of(simd, probs, heads, &mut scratch);
        // dA = G_y X^T: [C, N] x [N, C].
        let mut da = vec![0f32; c * c];
        let g_y = rows(gi + c * n, c, n);
        matmul(
            &mut da,
            rows(0, c, c),
            false,
            dout,
            g_y,
            x,
            transposed(xi, c, n),
            1.0,
        );
        // dX = G_x + A^T G_y (the projections' share is added for the batch below).
        dx.copy_from_slice(&dout[gi..gi + c * n]);
        matmul(
            dx,
            rows(0, c, n),
            true,
            a,
            transposed(0, c, c),
            dout,
            g_y,
            1.0,
        );
        let mut ds = vec![0f32; c * c];
        for (h, p) in probs.chunks_exact(c * c).enumerate() {
            // dS_h = scale P (dA/H - rowsum(P dA/H)).
            simd.run(|| {
                for ((ds, p), g) in ds
                    .chunks_exact_mut(c)
                    .zip(p.chunks_exact(c))
                    .zip(da.chunks_exact(c))
                {
                    let dot: f32 = p.iter().zip(g).map(|(p, g)| p * g).sum::<f32>();
                    let dot = dot * inv_heads;
                    for ((ds, &p), &g) in ds.iter_mut().zip(p).zip(g) {
                        *ds = scale * p * (g * inv_heads - dot);
                    }
                }
            });
            // dq_h = dS_h k_h, dk_h = dS_h^T q_h: [C, C] x [C, d].
            let head = |offset| columns(offset, c, d, h * dh, dh);
            let (ds_rows, ds_t) = (rows(0, c, c), transposed(0, c, c));
            matmul(dq, head(0), false, &ds, ds_rows, k, head(qi), 1.0);
            matmul(dk, head(0), false, &ds, ds_t, q, head(qi), 1.0);
        }
    });
    let (bc_d, bc_n) = (rows(0, b * c, d), rows(0, b * c, n));
    for (g, w) in [(&dq, wq), (&dk, wk)] {
        // The projections' share of dX for the whole batch: dq W_q^T, [B C, D] x [D, N].
        matmul_parallel(&mut dx, bc_n, true, g, bc_d, w, transposed(0, n, d), 1.0);
    }
    // Summed over the batch: X^T dq, [N, B C] x [B C, D].
    let weight_grad = |g: &[f32]| matmul_parallel_new(x, transposed(0, b * c, n), g, bc_d, 1.0);
    (dx, weight_grad(&dq), weight_grad(&dk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::report_paths;
    use crate::test_values::values;

    /// The forward in f64 by its definition, loop by loop: `[B, 2C, N]`.
    fn reference(x: &[f64], wq: &[f64], wk: &[f64], s: Shape) -> Vec<f64> {
        let Shape {
            batch: b,
            channels: c,
            tokens: n,
            dim: d,
            heads,
        } = s;
        let dh = d / heads;
        let mut out = vec![0f64; b * 2 * c * n];
        for i in 0..b {
            let xi = &x[i * c * n..(i + 1) * c * n];
            let proj = |w: &[f64]| {
                let mut p = vec![0f64; c * d];
                for r in 0..c {
                    for j in 0..d {
                        p[r * d + j] = (0..n).map(|t| xi[r * n + t] * w[t * d + j]).sum();
                    }
                }
                p
            };
            let (q, k) = (proj(wq), proj(wk));
            let mut a = vec![0f64; c * c];
            for h in 0..heads {
                for r in 0..c {
                    let s: Vec<f64> = (0..c)
                        .map(|j| {
                            (h * dh..(h + 1) * dh)
                                .map(|e| q[r * d + e] * k[j * d + e])
                                .sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                    for j in 0..c {
                        a[r * c + j] += (s[j] - m).exp() / z / heads as f64;
                    }
                }
            }
            let o = &mut out[i * 2 * c * n..(i + 1) * 2 * c * n];
            o[..c * n].copy_from_slice(xi);
            for r in 0..c {
                for t in 0..n {
                    o[c * n + r * n + t] = (0..c).map(|j| a[r * c + j] * xi[j * n + t]).sum();
                }
            }
        }
        out
    }

    fn f64s(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&v| v as f64).collect()
    }

    fn shapes() -> [Shape; 3] {
        let shape = |batch, channels, tokens, dim, heads| Shape {
            batch,
            channels,
            tokens,
            dim,
            heads,
        };
        [
            shape(2, 5, 7, 4, 1),
            shape(3, 6, 9, 6, 2),
            shape(1, 17, 4, 8, 4),
        ]
    }

    #[test]
    fn forward_matches_the_definition_on_every_path() {
        for simd in report_paths("channel attention forward") {
            for s in shapes() {
                let x = values(s.batch * s.channels * s.tokens, 1, 1.0);
                let wq = values(s.tokens * s.dim, 2, 0.6);
                let wk = values(s.tokens * s.dim, 3, 0.6);
                let expected = reference(&f64s(&x), &f64s(&wq), &f64s(&wk), s);
                let got = forward_on(simd, &x, &wq, &wk, s);
                for (g, e) in got.out.iter().zip(&expected) {
                    assert!(
                        (*g as f64 - e).abs() < 1e-5,
                        "{s:?} {}: {g} vs {e}",
                        simd.name()
                    );
                }
                // Rows of every head's weights sum to 1.
                for row in got.probs.chunks_exact(s.channels) {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                }
            }
        }
    }

    /// The backward against central differences of the f64 definition of `L = sum(G * out)`.
    #[test]
    fn backward_matches_finite_differences_on_every_path() {
        for simd in report_paths("channel attention backward") {
            for s in shapes() {
                let x = values(s.batch * s.channels * s.tokens, 4, 1.0);
                let wq = values(s.tokens * s.dim, 5, 0.6);
                let wk = values(s.tokens * s.dim, 6, 0.6);
                let g = values(s.batch * 2 * s.channels * s.tokens, 7, 1.0);
                let fwd = forward_on(simd, &x, &wq, &wk, s);
                let (dx, dwq, dwk) =
                    backward_on(simd, &x, &wq, &wk, &fwd.q, &fwd.k, &fwd.probs, &g, s);
                let (x, wq, wk, g) = (f64s(&x), f64s(&wq), f64s(&wk), f64s(&g));
                let loss = |x: &[f64], wq: &[f64], wk: &[f64]| -> f64 {
                    reference(x, wq, wk, s)
                        .iter()
                        .zip(&g)
                        .map(|(o, g)| o * g)
                        .sum()
                };
                let h = 1e-6;
                let numeric = |which: usize, at: usize| {
                    let mut inputs = [x.clone(), wq.clone(), wk.clone()];
                    inputs[which][at] += h;
                    let up = loss(&inputs[0], &inputs[1], &inputs[2]);
                    inputs[which][at] -= 2.0 * h;
                    let down = loss(&inputs[0], &inputs[1], &inputs[2]);
                    (up - down) / (2.0 * h)
                };
                for (which, grad) in [&dx, &dwq, &dwk].into_iter().enumerate() {
                    for (at, &got) in grad.iter().enumerate() {
                        let want = numeric(which, at);
                        assert!(
                            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{s:?} {}: gradient {which}[{at}] {got} vs {want}",
                            simd.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn heads_that_do_not_divide_the_width_are_refused() {
        let s = Shape {
            batch: 1,
            channels: 2,
            tokens: 3,
            dim: 5,
            heads: 2,
        };
        let err = std::panic::catch_unwind(|| forward(&[0.0; 6], &[0.0; 15], &[0.0; 15], s))
            .expect_err("5 is not a multiple of 2");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("2 heads do not divide the width 5"), "{msg}");
    }
}
