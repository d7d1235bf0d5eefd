//! Winograd's minimal filtering F(2x2, 3x3) for the 3x3, stride-1 convs of the study's CNN: the
//! forward pass and the input gradient, on `flex` (CPU, `f32`).
//!
//! # Why
//!
//! A 3x3 conv as one im2col matrix product does 9 multiply-adds per input channel and output
//! value. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016) computes each 2x2 output tile from a 4x4 input tile with 16 products per
//! channel pair instead of 36: the conv becomes 16 matrix products of a quarter of the size
//! (2.25x fewer multiply-adds), between cheap linear transforms of the input tiles and the
//! kernels. The input gradient of a stride-1 3x3 conv is itself a 3x3 conv (of the output
//! gradient with the kernel flipped and its channels swapped), so it takes the same path. The
//! weight gradient is the transpose of the forward's algebra: the gradient of each `U` is the sum
//! over tiles of `Z ⊙ V` (16 products `[c_out, tiles] x [tiles, c_in]`, the 2x2 output-gradient
//! tiles transformed by `A`), and the kernel's gradient `G^T dU G`.
//!
//! # What it computes
//!
//! With `B^T`, `G`, `A^T` the F(2, 3) matrices below, for each 4x4 input tile `d` (stride 2,
//! zero outside the image) and kernel `g`:
//!
//! ```text
//! V = B^T d B          U = G g G^T          (both 4x4; element xi = 4 * row + col)
//! M[xi] = U[xi] V[xi]  // [c_out, tiles] = [c_out, c_in] x [c_in, tiles], one product per xi
//! y tile = A^T M A     // 2x2
//! Z = A dy A^T         // 4x4, from a 2x2 output-gradient tile
//! dU[xi] = sum over tiles Z[xi] V[xi]^T   // [c_out, c_in]
//! dg = G^T dU G        // 3x3
//!
//! B^T = [1  0 -1  0]    G = [1    0    0  ]    A^T = [1 1  1  0]
//!       [0  1  1  0]        [1/2  1/2  1/2]          [0 1 -1 -1]
//!       [0 -1  1  0]        [1/2 -1/2  1/2]
//!       [0  1  0 -1]        [0    0    1  ]
//! ```
//!
//! Each image is first copied channels-last (`[h * w, c]`), so a tile's 16 pixels are 16
//! contiguous channel vectors and the transforms run 8 channels at a time on AVX2 registers
//! (portable per-lane arrays elsewhere); `V` and `M` are stored tile-major (`[tiles, c]`). Rounding differs from im2col's by a few ulp of the
//! inputs' scale; tests hold both paths to burn's conv.
//!
//! # Shapes
//! - `x`: `[b, ci, h, w]`; `weight`: `[co, ci, 3, 3]`
//! - output `[b, co, ho, wo]`; input gradient `[b, ci, h, w]` and weight gradient
//!   `[co, ci, 3, 3]` from `dy` `[b, co, ho, wo]`

use rayon::prelude::*;

use super::conv_cpu::{BLOCK_ELEMENTS, ConvShape, images_per_task, with_scratch};
use super::cpu::{View, has_avx2, matmul};

/// Products per tile: the 4x4 transformed tile.
const XI: usize = 16;

/// Fewest channels (each side) for which Winograd pays: the products are `c_in` deep, and a
/// first layer of 3 input channels makes products too thin to win back the transforms.
pub const MIN_CHANNELS: usize = 16;


/// Whether this conv takes the Winograd path: a 3x3 kernel, stride 1, no dilation, padding at
/// most 2 before each side (the input gradient's conv pads `2 - pad`), and at least
/// [`MIN_CHANNELS`] input and output channels.
pub fn applies(s: &ConvShape) -> bool {
    s.kh == 3
        && s.kw == 3
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.pad[0] <= 2
        && s.pad[1] <= 2
        && s.c_in >= MIN_CHANNELS
        && s.c_out >= MIN_CHANNELS
        && s.ho > 0
        && s.wo > 0
}

/// The conv's output `[b, co, ho, wo]` (flat). The caller checks [`applies`].
pub fn forward(x: &[f32], weight: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w, "winograd forward: x has the wrong size");
    assert_eq!(weight.len(), s.c_out * s.c_in * 9, "winograd forward: weight has the wrong size");
    let u = transform_kernels(weight, s.c_out, s.c_in, false);
    let plan = Plan { batch: s.batch, c_in: s.c_in, h: s.h, w: s.w, c_out: s.c_out, ho: s.ho, wo: s.wo, pad: s.pad };
    plan.run(x, &u)
}

/// The input gradient `[b, ci, h, w]` (flat) for the output gradient `dy`: the 3x3 conv of `dy`
/// with the flipped, channel-swapped kernel, padded `2 - pad`. The caller checks [`applies`].
pub fn input_grad(weight: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(dy.len(), s.batch * s.c_out * s.ho * s.wo, "winograd input grad: dy has the wrong size");
    assert_eq!(weight.len(), s.c_out * s.c_in * 9, "winograd input grad: weight has the wrong size");
    let u = transform_kernels(weight, s.c_out, s.c_in, true);
    // dx[c, y, x] = sum_{o, i, j} dy[o, y + i' - (2 - pad), x + j' - (2 - pad)] W[o, c, 2 - i', 2 - j']
    let plan = Plan {
        batch: s.batch,
        c_in: s.c_out,
        h: s.ho,
        w: s.wo,
        c_out: s.c_in,
        ho: s.h,
        wo: s.w,
        pad: [2 - s.pad[0], 2 - s.pad[1]],
    };
    plan.run(dy, &u)
}

/// The weight gradient `[co, ci, 3, 3]` (flat) for the input `x` and the output gradient `dy`:
/// `dg = G^T (sum over tiles Z ⊙ V) G`, the transpose of the forward's kernel transform applied to
/// the gradient of `U`. The caller checks [`applies`].
pub fn weight_grad(x: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w, "winograd weight grad: x has the wrong size");
    assert_eq!(dy.len(), s.batch * s.c_out * s.ho * s.wo, "winograd weight grad: dy has the wrong size");
    let plan = Plan { batch: s.batch, c_in: s.c_in, h: s.h, w: s.w, c_out: s.c_out, ho: s.ho, wo: s.wo, pad: s.pad };
    let dm = plan.kernel_grad(x, dy);
    let pairs = s.c_out * s.c_in;
    let mut dw = vec![0f32; pairs * 9];
    dw.par_chunks_mut(9 * 64).enumerate().for_each(|(chunk, out)| {
        for (q, dg) in out.chunks_exact_mut(9).enumerate() {
            let pair = chunk * 64 + q;
            let m: [f32; XI] = std::array::from_fn(|xi| dm[xi * pairs + pair]);
            // G^T M: [3, 4]; G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]
            let mut gm = [[0f32; 4]; 3];
            for col in 0..4 {
                let (m0, m1, m2, m3) = (m[col], m[4 + col], m[8 + col], m[12 + col]);
                gm[0][col] = m0 + 0.5 * (m1 + m2);
                gm[1][col] = 0.5 * (m1 - m2);
                gm[2][col] = 0.5 * (m1 + m2) + m3;
            }
            // (G^T M) G: [3, 3]
            for (i, [m0, m1, m2, m3]) in gm.into_iter().enumerate() {
                dg[3 * i] = m0 + 0.5 * (m1 + m2);
                dg[3 * i + 1] = 0.5 * (m1 - m2);
                dg[3 * i + 2] = 0.5 * (m1 + m2) + m3;
            }
        }
    });
    dw
}

/// `U = G g G^T` of every kernel, as 16 matrices `[XI, rows, cols]`: `[co, ci]` each for the
/// forward conv, or (`flip`) `[ci, co]` each of the flipped kernels `W[o, c, 2 - i, 2 - j]` for
/// the input gradient.
fn transform_kernels(weight: &[f32], c_out: usize, c_in: usize, flip: bool) -> Vec<f32> {
    let (rows, cols) = if flip { (c_in, c_out) } else { (c_out, c_in) };
    let mut u = vec![0f32; XI * rows * cols];
    // Rows split over the threads: each task writes its rows of all 16 matrices.
    let per_task = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..rows.div_ceil(per_task)).map(|_| Vec::with_capacity(XI)).collect();
    for matrix in u.chunks_mut(rows * cols) {
        for (task, part) in matrix.chunks_mut(per_task * cols).enumerate() {
            tasks[task].push(part);
        }
    }
    tasks.into_par_iter().enumerate().for_each(|(task, mut matrices)| {
        for r in 0..matrices[0].len() / cols {
            for cl in 0..cols {
                let (o, c) = if flip { (cl, task * per_task + r) } else { (task * per_task + r, cl) };
                let k = &weight[(o * c_in + c) * 9..][..9];
                let g = |i: usize, j: usize| if flip { k[(2 - i) * 3 + (2 - j)] } else { k[i * 3 + j] };
                // G g: [4, 3]
                let mut gg = [[0f32; 3]; 4];
                for j in 0..3 {
                    let (g0, g1, g2) = (g(0, j), g(1, j), g(2, j));
                    gg[0][j] = g0;
                    gg[1][j] = 0.5 * (g0 + g1 + g2);
                    gg[2][j] = 0.5 * (g0 - g1 + g2);
                    gg[3][j] = g2;
                }
                // (G g) G^T: [4, 4]
                for (b, row) in gg.iter().enumerate() {
                    let [g0, g1, g2] = *row;
                    let values = [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2];
                    for (a, &value) in values.iter().enumerate() {
                        matrices[4 * b + a][r * cols + cl] = value;
                    }
                }
            }
        }
    });
    u
}

/// One 3x3 stride-1 conv, in the shapes it is run with (the forward conv's, or the input
/// gradient's with channels and sizes swapped): `y[o, oy, ox] = sum x[c, oy + i - pad, ox + j - pad]
/// g[o, c, i, j]`, zero outside `x`.
struct Plan {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    ho: usize,
    wo: usize,
    pad: [usize; 2],
}

impl Plan {
    /// Tile rows and columns: 2x2 output tiles covering `[ho, wo]`.
    fn tiles(&self) -> (usize, usize) {
        (self.ho.div_ceil(2), self.wo.div_ceil(2))
    }

    /// `V[xi]` `[n, c_in]` (tile-major: tile `j * t + ty * tw + tx` of image `j`) of a block of
    /// whole images `xb` `[images, c_in, h, w]`; `image` is scratch of one image's size.
    fn input_tiles(&self, xb: &[f32], v: &mut [f32], image: &mut [f32], simd: bool) {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let c_in = self.c_in;
        let x_len = c_in * self.h * self.w;
        let n = xb.len() / x_len * t;
        let zeros = vec![0f32; c_in];
        for (j, xj) in xb.chunks(x_len).enumerate() {
            transpose(xj, c_in, self.h * self.w, image);
            for ty in 0..th {
                for tx in 0..tw {
                    let pixel = |i: usize, k: usize| -> &[f32] {
                        let r = (2 * ty + i).checked_sub(self.pad[0]).filter(|&r| r < self.h);
                        let c = (2 * tx + k).checked_sub(self.pad[1]).filter(|&c| c < self.w);
                        match (r, c) {
                            (Some(r), Some(c)) => &image[(r * self.w + c) * c_in..][..c_in],
                            _ => &zeros,
                        }
                    };
                    let d: [&[f32]; XI] = std::array::from_fn(|e| pixel(e / 4, e % 4));
                    input_tile(&d, v, n * c_in, (j * t + ty * tw + tx) * c_in, simd);
                }
            }
        }
    }

    /// `Z[xi] = A dy A^T` `[n, c_out]` (tile-major, as [`Plan::input_tiles`]) of the output
    /// gradients `dyb` `[images, c_out, ho, wo]`: the factor that multiplies `V` in the
    /// gradient of `U`; `image` is scratch of one output's size.
    fn grad_tiles(&self, dyb: &[f32], z: &mut [f32], image: &mut [f32], simd: bool) {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let c_out = self.c_out;
        let y_len = c_out * self.ho * self.wo;
        let n = dyb.len() / y_len * t;
        let zeros = vec![0f32; c_out];
        for (j, dyj) in dyb.chunks(y_len).enumerate() {
            transpose(dyj, c_out, self.ho * self.wo, image);
            for ty in 0..th {
                for tx in 0..tw {
                    let pixel = |r: usize, c: usize| -> &[f32] {
                        let (r, c) = (2 * ty + r, 2 * tx + c);
                        if r < self.ho && c < self.wo { &image[(r * self.wo + c) * c_out..][..c_out] } else { &zeros }
                    };
                    let d = [pixel(0, 0), pixel(0, 1), pixel(1, 0), pixel(1, 1)];
                    grad_tile(&d, z, n * c_out, (j * t + ty * tw + tx) * c_out, simd);
                }
            }
        }
    }

    /// The gradient of every transformed kernel, `sum over tiles Z[xi] * V[xi]` as 16 matrices
    /// `[XI, c_out, c_in]`, for the input `x` and the output gradient `dy`.
    fn kernel_grad(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let (c_in, c_out) = (self.c_in, self.c_out);
        let (x_len, y_len) = (c_in * self.h * self.w, c_out * self.ho * self.wo);
        let chunk = images_per_task(self.batch);
        let simd = has_avx2();
        let block = (BLOCK_ELEMENTS / (XI * (c_in + c_out) * t)).clamp(1, chunk);
        // One partial per task, summed in task order: the result does not depend on which
        // thread ran which task.
        let partials: Vec<Vec<f32>> = x
            .par_chunks(chunk * x_len)
            .zip(dy.par_chunks(chunk * y_len))
            .map(|(xs, dys)| {
                let mut dm = vec![0f32; XI * c_out * c_in];
                let n_max = block * t;
                with_scratch(XI * c_in * n_max, XI * c_out * n_max, |v, z| {
                    let mut image = vec![0f32; x_len.max(y_len)];
                    for (b, (xb, dyb)) in xs.chunks(block * x_len).zip(dys.chunks(block * y_len)).enumerate() {
                        let n = xb.len() / x_len * t;
                        self.input_tiles(xb, v, &mut image, simd);
                        self.grad_tiles(dyb, z, &mut image, simd);
                        // dM[xi] [c_out, c_in] += Z[xi]^T [c_out, n] x V[xi] [n, c_in]
                        for xi in 0..XI {
                            matmul(
                                &mut dm,
                                View::new(xi * c_out * c_in, c_out, c_in, c_in, 1),
                                b > 0,
                                z,
                                View::new(xi * n * c_out, c_out, n, 1, c_out),
                                v,
                                View::new(xi * n * c_in, n, c_in, c_in, 1),
                                1.0,
                            );
                        }
                    }
                });
                dm
            })
            .collect();
        let mut parts = partials.into_iter();
        let mut dm = parts.next().unwrap_or_else(|| vec![0f32; XI * c_out * c_in]);
        for part in parts {
            for (a, b) in dm.iter_mut().zip(&part) {
                *a += b;
            }
        }
        dm
    }

    fn run(&self, x: &[f32], u: &[f32]) -> Vec<f32> {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let (c_in, c_out) = (self.c_in, self.c_out);
        let (x_len, y_len) = (c_in * self.h * self.w, c_out * self.ho * self.wo);
        let mut y = vec![0f32; self.batch * y_len];
        let chunk = images_per_task(self.batch);
        let simd = has_avx2();
        // as many images as keep `V` and `M` within the im2col blocks' bound
        let block = (BLOCK_ELEMENTS / (XI * (c_in + c_out) * t)).clamp(1, chunk);
        y.par_chunks_mut(chunk * y_len).zip(x.par_chunks(chunk * x_len)).for_each(|(ys, xs)| {
            let n_max = block * t; // tiles of a full block
            with_scratch(XI * c_in * n_max, XI * c_out * n_max, |v, m| {
                // one image channels-last, [h * w, c_in]
                let mut image = vec![0f32; x_len];
                for (yb, xb) in ys.chunks_mut(block * y_len).zip(xs.chunks(block * x_len)) {
                    let images = xb.len() / x_len;
                    let n = images * t; // tiles of this block
                    self.input_tiles(xb, v, &mut image, simd);
                    // M[xi] [c_out, n] (stored [n, c_out]) = U[xi] [c_out, c_in] x V[xi] [c_in, n]
                    for xi in 0..XI {
                        matmul(
                            m,
                            View::new(xi * n * c_out, c_out, n, 1, c_out),
                            false,
                            u,
                            View::new(xi * c_out * c_in, c_out, c_in, c_in, 1),
                            v,
                            View::new(xi * n * c_in, c_in, n, 1, c_in),
                            1.0,
                        );
                    }
                    let mut out = [[0f32; LANES]; 4];
                    for j in 0..images {
                        let planes = &mut yb[j * y_len..(j + 1) * y_len];
                        for ty in 0..th {
                            for tx in 0..tw {
                                let tile = j * t + ty * tw + tx;
                                // the tile's 2x2 outputs that lie inside [ho, wo]
                                let rows = (self.ho - 2 * ty).min(2);
                                let cols = (self.wo - 2 * tx).min(2);
                                for o in (0..c_out).step_by(LANES) {
                                    let lanes = LANES.min(c_out - o);
                                    output_tile(m, n * c_out, tile * c_out + o, lanes, &mut out, simd);
                                    for (e, values) in out.iter().enumerate() {
                                        let (r, c) = (e / 2, e % 2);
                                        if r >= rows || c >= cols {
                                            continue;
                                        }
                                        let at = (2 * ty + r) * self.wo + 2 * tx + c;
                                        for (l, &value) in values[..lanes].iter().enumerate() {
                                            planes[(o + l) * self.ho * self.wo + at] = value;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            });
        });
        y
    }
}

/// Channels per step of the tile transforms: one AVX register of `f32`.
const LANES: usize = 8;

/// `dst [p, c] = src [c, p]` (one image, channels-first to channels-last).
fn transpose(src: &[f32], c: usize, p: usize, dst: &mut [f32]) {
    // blocks of 8 channels x 8 pixels keep both sides' cache lines in use
    for c0 in (0..c).step_by(8) {
        for p0 in (0..p).step_by(8) {
            for ch in c0..(c0 + 8).min(c) {
                for px in p0..(p0 + 8).min(p) {
                    dst[px * c + ch] = src[ch * p + px];
                }
            }
        }
    }
}

/// Up to [`LANES`] floats, zero-filled (a full register's copy is a plain vector load).
#[inline(always)]
fn load(src: &[f32]) -> [f32; LANES] {
    let mut a = [0f32; LANES];
    if src.len() == LANES {
        a.copy_from_slice(src);
    } else {
        a[..src.len()].copy_from_slice(src);
    }
    a
}

/// The first `dst.len()` (at most [`LANES`]) floats of `a`.
#[inline(always)]
fn store(dst: &mut [f32], a: &[f32; LANES]) {
    if dst.len() == LANES {
        dst.copy_from_slice(a);
    } else {
        let n = dst.len();
        dst.copy_from_slice(&a[..n]);
    }
}

/// `B^T d B` of one tile, a channel at a time (`LANES` channels per step): `d[4 * i + k]` is
/// the tile's pixel (row `i`, column `k`) over the channels; element `xi` goes to
/// `v[xi * stride + at..]`.
#[inline]
fn input_tile(d: &[&[f32]; XI], v: &mut [f32], stride: usize, at: usize, simd: bool) {
    let c = d[0].len();
    let mut from = 0;
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only set where the CPU has AVX2 (`has_avx2`).
        from = unsafe { avx2::input_tile(d, v, stride, at) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for c0 in (from..c).step_by(LANES) {
        let lanes = LANES.min(c - c0);
        let x: [[f32; LANES]; XI] = std::array::from_fn(|e| load(&d[e][c0..c0 + lanes]));
        // d B along each row: [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
        let mut h = [[0f32; LANES]; XI];
        for i in 0..4 {
            let [d0, d1, d2, d3] = [x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]];
            for l in 0..LANES {
                h[4 * i][l] = d0[l] - d2[l];
                h[4 * i + 1][l] = d1[l] + d2[l];
                h[4 * i + 2][l] = d2[l] - d1[l];
                h[4 * i + 3][l] = d1[l] - d3[l];
            }
        }
        // B^T (d B) down each column, straight into V
        for a in 0..4 {
            let [r0, r1, r2, r3] = [h[a], h[4 + a], h[8 + a], h[12 + a]];
            let mut b = [[0f32; LANES]; 4];
            for l in 0..LANES {
                b[0][l] = r0[l] - r2[l];
                b[1][l] = r1[l] + r2[l];
                b[2][l] = r2[l] - r1[l];
                b[3][l] = r1[l] - r3[l];
            }
            for (row, b) in b.iter().enumerate() {
                store(&mut v[(4 * row + a) * stride + at + c0..][..lanes], b);
            }
        }
    }
}

/// `A dy A^T` of one 2x2 output-gradient tile, `LANES` channels per step: `d[2 * r + c]` is the
/// tile's pixel (row `r`, column `c`) over the channels; element `xi` goes to
/// `z[xi * stride + at..]`. With `A = [1 0; 1 1; 1 -1; 0 -1]`, a pair `[a, b]` becomes
/// `[a, a + b, a - b, -b]`, down the columns and then along the rows.
#[inline]
fn grad_tile(d: &[&[f32]; 4], z: &mut [f32], stride: usize, at: usize, simd: bool) {
    let c = d[0].len();
    let mut from = 0;
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only set where the CPU has AVX2 (`has_avx2`).
        from = unsafe { avx2::grad_tile(d, z, stride, at) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for c0 in from..c {
        let [a, b, cc, dd] = [d[0][c0], d[1][c0], d[2][c0], d[3][c0]];
        // A dy: [4, 2]
        let rows = [[a, b], [a + cc, b + dd], [a - cc, b - dd], [-cc, -dd]];
        for (r, [p, q]) in rows.into_iter().enumerate() {
            for (col, value) in [p, p + q, p - q, -q].into_iter().enumerate() {
                z[(4 * r + col) * stride + at + c0] = value;
            }
        }
    }
}

/// `A^T M A` of one tile for `lanes` output channels: element `xi` of the tile is
/// `m[xi * stride + at..][..lanes]`; `out[2 * r + c]` is output pixel (row `r`, column `c`).
#[inline]
fn output_tile(m: &[f32], stride: usize, at: usize, lanes: usize, out: &mut [[f32; LANES]; 4], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd && lanes == LANES {
        // SAFETY: `simd` is only set where the CPU has AVX2 (`has_avx2`).
        return unsafe { avx2::output_tile(m, stride, at, out) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    let x: [[f32; LANES]; XI] = std::array::from_fn(|xi| load(&m[xi * stride + at..][..lanes]));
    // A^T M: rows [m0 + m1 + m2, m1 - m2 - m3] of each column a
    let mut s = [[0f32; LANES]; 8];
    for a in 0..4 {
        for l in 0..LANES {
            s[a][l] = x[a][l] + x[4 + a][l] + x[8 + a][l];
            s[4 + a][l] = x[4 + a][l] - x[8 + a][l] - x[12 + a][l];
        }
    }
    // (A^T M) A along each row
    for r in 0..2 {
        for l in 0..LANES {
            out[2 * r][l] = s[4 * r][l] + s[4 * r + 1][l] + s[4 * r + 2][l];
            out[2 * r + 1][l] = s[4 * r + 1][l] - s[4 * r + 2][l] - s[4 * r + 3][l];
        }
    }
}

/// The tile transforms on AVX registers, 8 channels at a time: the same arithmetic as
/// [`input_tile`] and [`output_tile`], without their per-lane arrays (which the compiler moves
/// through memory). Callers must check [`has_avx2`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, XI};

    /// [`super::input_tile`] for the channels that fill whole registers; returns how many
    /// channels it did (the caller does the rest).
    #[target_feature(enable = "avx2")]
    pub fn input_tile(d: &[&[f32]; XI], v: &mut [f32], stride: usize, at: usize) -> usize {
        let c = d[0].len();
        let body = c - c % LANES;
        if body == 0 {
            return 0;
        }
        assert!(d.iter().all(|d| d.len() == c), "input tile: pixels of different widths");
        assert!((XI - 1) * stride + at + body <= v.len(), "input tile: V too short");
        let out = v.as_mut_ptr();
        for c0 in (0..body).step_by(LANES) {
            // SAFETY: every pixel holds `c >= body` floats; the stores stay below
            // `(XI - 1) * stride + at + body <= v.len()`.
            unsafe {
                let mut h = [_mm256_setzero_ps(); XI];
                for i in 0..4 {
                    let x0 = _mm256_loadu_ps(d[4 * i].as_ptr().add(c0));
                    let x1 = _mm256_loadu_ps(d[4 * i + 1].as_ptr().add(c0));
                    let x2 = _mm256_loadu_ps(d[4 * i + 2].as_ptr().add(c0));
                    let x3 = _mm256_loadu_ps(d[4 * i + 3].as_ptr().add(c0));
                    h[4 * i] = _mm256_sub_ps(x0, x2);
                    h[4 * i + 1] = _mm256_add_ps(x1, x2);
                    h[4 * i + 2] = _mm256_sub_ps(x2, x1);
                    h[4 * i + 3] = _mm256_sub_ps(x1, x3);
                }
                for a in 0..4 {
                    let (r0, r1, r2, r3) = (h[a], h[4 + a], h[8 + a], h[12 + a]);
                    _mm256_storeu_ps(out.add(a * stride + at + c0), _mm256_sub_ps(r0, r2));
                    _mm256_storeu_ps(out.add((4 + a) * stride + at + c0), _mm256_add_ps(r1, r2));
                    _mm256_storeu_ps(out.add((8 + a) * stride + at + c0), _mm256_sub_ps(r2, r1));
                    _mm256_storeu_ps(out.add((12 + a) * stride + at + c0), _mm256_sub_ps(r1, r3));
                }
            }
        }
        body
    }

    /// [`super::grad_tile`] for the channels that fill whole registers; returns how many
    /// channels it did (the caller does the rest).
    #[target_feature(enable = "avx2")]
    pub fn grad_tile(d: &[&[f32]; 4], z: &mut [f32], stride: usize, at: usize) -> usize {
        let c = d[0].len();
        let body = c - c % LANES;
        if body == 0 {
            return 0;
        }
        assert!(d.iter().all(|d| d.len() == c), "grad tile: pixels of different widths");
        assert!((XI - 1) * stride + at + body <= z.len(), "grad tile: Z too short");
        let out = z.as_mut_ptr();
        for c0 in (0..body).step_by(LANES) {
            // SAFETY: every pixel holds `c >= body` floats; the stores stay below
            // `(XI - 1) * stride + at + body <= z.len()`.
            unsafe {
                let zero = _mm256_setzero_ps();
                let a = _mm256_loadu_ps(d[0].as_ptr().add(c0));
                let b = _mm256_loadu_ps(d[1].as_ptr().add(c0));
                let c = _mm256_loadu_ps(d[2].as_ptr().add(c0));
                let e = _mm256_loadu_ps(d[3].as_ptr().add(c0));
                let rows = [
                    (a, b),
                    (_mm256_add_ps(a, c), _mm256_add_ps(b, e)),
                    (_mm256_sub_ps(a, c), _mm256_sub_ps(b, e)),
                    (_mm256_sub_ps(zero, c), _mm256_sub_ps(zero, e)),
                ];
                for (r, (p, q)) in rows.into_iter().enumerate() {
                    _mm256_storeu_ps(out.add(4 * r * stride + at + c0), p);
                    _mm256_storeu_ps(out.add((4 * r + 1) * stride + at + c0), _mm256_add_ps(p, q));
                    _mm256_storeu_ps(out.add((4 * r + 2) * stride + at + c0), _mm256_sub_ps(p, q));
                    _mm256_storeu_ps(out.add((4 * r + 3) * stride + at + c0), _mm256_sub_ps(zero, q));
                }
            }
        }
        body
    }

    /// [`super::output_tile`] for a whole register of output channels.
    #[target_feature(enable = "avx2")]
    pub fn output_tile(m: &[f32], stride: usize, at: usize, out: &mut [[f32; LANES]; 4]) {
        assert!((XI - 1) * stride + at + LANES <= m.len(), "output tile: M too short");
        // SAFETY: the loads stay below `(XI - 1) * stride + at + LANES <= m.len()`; each store
        // writes one `[f32; 8]`.
        unsafe {
            let x = |xi: usize| _mm256_loadu_ps(m.as_ptr().add(xi * stride + at));
            let mut s = [_mm256_setzero_ps(); 8];
            for a in 0..4 {
                let (m0, m1, m2, m3) = (x(a), x(4 + a), x(8 + a), x(12 + a));
                s[a] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                s[4 + a] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
            }
            for r in 0..2 {
                let (s0, s1, s2, s3) = (s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]);
                _mm256_storeu_ps(out[2 * r].as_mut_ptr(), _mm256_add_ps(_mm256_add_ps(s0, s1), s2));
                _mm256_storeu_ps(out[2 * r + 1].as_mut_ptr(), _mm256_sub_ps(_mm256_sub_ps(s1, s2), s3));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::conv_cpu;
    use burn::backend::ops::ConvOptions;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // a small LCG: deterministic values in [-1, 1)
        let mut state = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn forward_and_gradients_equal_im2col() {
        // (batch, c_in, h, w, c_out, padding (before, after) per dim)
        let cases = [
            (2, 16, 8, 8, 16, [(1, 1), (1, 1)]),   // the CNN's late layers, even sizes
            (3, 17, 7, 5, 20, [(1, 1), (1, 1)]),   // odd sizes: a half tile at the edges
            (1, 16, 9, 6, 16, [(0, 0), (0, 0)]),   // no padding
            (2, 16, 6, 7, 18, [(2, 2), (2, 2)]),   // padding 2 (the input gradient pads 0)
            (2, 16, 8, 9, 16, [(1, 0), (2, 1)]),   // asymmetric
            (1, 16, 1, 1, 16, [(1, 1), (1, 1)]),   // a single pixel
            (5, 32, 16, 16, 64, [(1, 1), (1, 1)]), // the CNN's second conv, batch over threads
        ];
        for (i, &(batch, c_in, h, w, c_out, padding)) in cases.iter().enumerate() {
            let options = ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1);
            let s = ConvShape::new([batch, c_in, h, w], [c_out, c_in, 3, 3], &options);
            assert!(applies(&s), "case {i}");
            let x = values(batch * c_in * h * w, 3 * i as u32);
            let weight = values(c_out * c_in * 9, 3 * i as u32 + 1);
            let dy = values(batch * c_out * s.ho * s.wo, 3 * i as u32 + 2);
            let err = max_rel_err(&forward(&x, &weight, &s), &conv_cpu::forward(&x, &weight, &s));
            assert!(err < 1e-5, "case {i}: forward differs from im2col by {err}");
            let err = max_rel_err(&input_grad(&weight, &dy, &s), &conv_cpu::input_grad(&weight, &dy, &s));
            assert!(err < 1e-5, "case {i}: input gradient differs from im2col by {err}");
            let err = max_rel_err(&weight_grad(&x, &dy, &s), &conv_cpu::weight_grad(&x, &dy, &s));
            assert!(err < 1e-5, "case {i}: weight gradient differs from im2col by {err}");
        }
    }

    #[test]
    fn only_3x3_stride_1_convs_with_enough_channels_apply() {
        let shape = |c_in, c_out, k, stride, pad| {
            let options = ConvOptions::new_with_padding([stride; 2], [(pad, pad); 2], [1, 1], 1);
            ConvShape::new([1, c_in, 8, 8], [c_out, c_in, k, k], &options)
        };
        assert!(applies(&shape(32, 64, 3, 1, 1)));
        assert!(!applies(&shape(3, 32, 3, 1, 1)), "a first layer's 3 channels");
        assert!(!applies(&shape(32, 8, 3, 1, 1)), "8 output channels");
        assert!(!applies(&shape(32, 64, 3, 2, 1)), "stride 2");
        assert!(!applies(&shape(32, 64, 5, 1, 2)), "5x5");
        assert!(!applies(&shape(32, 64, 3, 1, 3)), "padding 3");
    }
}
