//! Winograd's minimal filtering F(4x4, 3x3) for the 3x3, stride-1 convs of the study's CNN: the
//! forward pass and both gradients, on `flex` (CPU, `f32`).
//!
//! # Why
//!
//! A 3x3 conv as one im2col matrix product does 9 multiply-adds per input channel and output
//! value. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016) computes each 4x4 output tile from a 6x6 input tile with 36 products per
//! channel pair instead of 144: the conv becomes 36 matrix products of a sixteenth of the
//! outputs each (4x fewer multiply-adds), between cheap linear transforms of the input tiles and
//! the kernels. The input gradient of a stride-1 3x3 conv is itself a 3x3 conv (of the output
//! gradient with the kernel flipped and its channels swapped), so it takes the same path. The
//! weight gradient is the transpose of the forward's algebra: the gradient of each `U` is the sum
//! over tiles of `Z ⊙ V` (36 products `[c_out, tiles] x [tiles, c_in]`, the 4x4 output-gradient
//! tiles transformed by `A`), and the kernel's gradient `G^T dU G`. F(2x2, 3x3) (16 products
//! per 2x2 tile, 2.25x fewer) ran here first; the larger tile took the plain CNN's training
//! step from 437 to (see the README) images/s.
//!
//! # What it computes
//!
//! With `B^T`, `G`, `A^T` the F(4, 3) matrices below (points 0, 1, -1, 2, -2, infinity), for each
//! 6x6 input tile `d` (stride 4, zero outside the image) and kernel `g`:
//!
//! ```text
//! V = B^T d B          U = G g G^T          (both 6x6; element xi = 6 * row + col)
//! M[xi] = U[xi] V[xi]  // [c_out, tiles] = [c_out, c_in] x [c_in, tiles], one product per xi
//! y tile = A^T M A     // 4x4
//! Z = A dy A^T         // 6x6, from a 4x4 output-gradient tile
//! dU[xi] = sum over tiles Z[xi] V[xi]^T   // [c_out, c_in]
//! dg = G^T dU G        // 3x3
//!
//! B^T = [4  0 -5  0  1  0]    G = [ 1/4     0     0 ]    A^T = [1  1  1  1  1  0]
//!       [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0  1 -1  2 -2  0]
//!       [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0  1  1  4  4  0]
//!       [0 -2 -1  2  1  0]        [ 1/24  1/12  1/6 ]          [0  1 -1  8 -8  1]
//!       [0  2 -1 -2  1  0]        [ 1/24 -1/12  1/6 ]
//!       [0  4  0 -5  0  1]        [ 0     0     1   ]
//! ```
//!
//! Each image is first copied channels-last (`[h * w, c]`), so a tile's 36 pixels are 36
//! contiguous channel vectors and the transforms run 8 channels at a time on AVX2 registers (a
//! channel at a time elsewhere), with the same formulas ([`Lanes`]); `V`, `M` and `Z` are stored
//! tile-major (`[tiles, c]`). The larger tile rounds more than F(2x2, 3x3): outputs differ from
//! im2col's by about 1e-6 of their scale (measured in the tests), well inside what training
//! notices; tests hold both paths to burn's conv.
//!
//! # Shapes
//! - `x`: `[b, ci, h, w]`; `weight`: `[co, ci, 3, 3]`
//! - output `[b, co, ho, wo]`; input gradient `[b, ci, h, w]` and weight gradient
//!   `[co, ci, 3, 3]` from `dy` `[b, co, ho, wo]`

use rayon::prelude::*;

use super::conv_cpu::{BLOCK_ELEMENTS, ConvShape, images_per_task, with_scratch};
use super::cpu::{View, has_avx2, matmul};

/// Outputs per tile side.
const TILE: usize = 4;
/// Input values per tile side: `TILE + 3 - 1`.
const ALPHA: usize = 6;
/// Products per tile: the 6x6 transformed tile.
const XI: usize = ALPHA * ALPHA;

/// Fewest channels (each side) for which Winograd pays: the products are `c_in` deep, and a
/// first layer of 3 input channels makes products too thin to win back the transforms.
pub const MIN_CHANNELS: usize = 16;

/// Whether this conv takes the Winograd path: a 3x3 kernel, stride 1, no dilation, padding at
/// most 2 before each side (the input gradient's conv pads `2 - pad`), at least
/// [`MIN_CHANNELS`] input and output channels, and an output of at least one whole tile each
/// way (smaller maps, such as VGG's last 2x2 ones, would compute mostly discarded outputs).
pub fn applies(s: &ConvShape) -> bool {
    s.kh == 3
        && s.kw == 3
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.pad[0] <= 2
        && s.pad[1] <= 2
        && s.c_in >= MIN_CHANNELS
        && s.c_out >= MIN_CHANNELS
        && s.ho >= TILE
        && s.wo >= TILE
        && s.h >= TILE
        && s.w >= TILE
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
    let du = plan.kernel_grad(x, dy);
    let pairs = s.c_out * s.c_in;
    let mut dw = vec![0f32; pairs * 9];
    dw.par_chunks_mut(9 * 64).enumerate().for_each(|(chunk, out)| {
        for (q, dg) in out.chunks_exact_mut(9).enumerate() {
            let pair = chunk * 64 + q;
            // G^T dU: [3, 6], a column at a time
            let mut gu = [[0f32; ALPHA]; 3];
            for col in 0..ALPHA {
                let v: [f32; ALPHA] = std::array::from_fn(|row| du[(ALPHA * row + col) * pairs + pair]);
                for (i, value) in kernel_transpose(v).into_iter().enumerate() {
                    gu[i][col] = value;
                }
            }
            // (G^T dU) G: [3, 3]
            for (i, row) in gu.into_iter().enumerate() {
                dg[3 * i..3 * i + 3].copy_from_slice(&kernel_transpose(row));
            }
        }
    });
    dw
}

/// `U = G g G^T` of every kernel, as 36 matrices `[XI, rows, cols]`: `[co, ci]` each for the
/// forward conv, or (`flip`) `[ci, co]` each of the flipped kernels `W[o, c, 2 - i, 2 - j]` for
/// the input gradient.
fn transform_kernels(weight: &[f32], c_out: usize, c_in: usize, flip: bool) -> Vec<f32> {
    let (rows, cols) = if flip { (c_in, c_out) } else { (c_out, c_in) };
    let mut u = vec![0f32; XI * rows * cols];
    // Rows split over the threads: each task writes its rows of all 36 matrices.
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
                // G g: [6, 3], a column at a time
                let mut gg = [[0f32; 3]; ALPHA];
                for j in 0..3 {
                    for (row, value) in kernel_transform([g(0, j), g(1, j), g(2, j)]).into_iter().enumerate() {
                        gg[row][j] = value;
                    }
                }
                // (G g) G^T: [6, 6], a row at a time
                for (row, g_row) in gg.into_iter().enumerate() {
                    for (col, value) in kernel_transform(g_row).into_iter().enumerate() {
                        matrices[ALPHA * row + col][r * cols + cl] = value;
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
    /// Tile rows and columns: 4x4 output tiles covering `[ho, wo]`.
    fn tiles(&self) -> (usize, usize) {
        (self.ho.div_ceil(TILE), self.wo.div_ceil(TILE))
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
                        let r = (TILE * ty + i).checked_sub(self.pad[0]).filter(|&r| r < self.h);
                        let c = (TILE * tx + k).checked_sub(self.pad[1]).filter(|&c| c < self.w);
                        match (r, c) {
                            (Some(r), Some(c)) => &image[(r * self.w + c) * c_in..][..c_in],
                            _ => &zeros,
                        }
                    };
                    let d: [&[f32]; XI] = std::array::from_fn(|e| pixel(e / ALPHA, e % ALPHA));
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
                        let (r, c) = (TILE * ty + r, TILE * tx + c);
                        if r < self.ho && c < self.wo { &image[(r * self.wo + c) * c_out..][..c_out] } else { &zeros }
                    };
                    let d: [&[f32]; TILE * TILE] = std::array::from_fn(|e| pixel(e / TILE, e % TILE));
                    grad_tile(&d, z, n * c_out, (j * t + ty * tw + tx) * c_out, simd);
                }
            }
        }
    }

    /// The gradient of every transformed kernel, `sum over tiles Z[xi] * V[xi]` as 36 matrices
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
                    let mut out = [[0f32; LANES]; TILE * TILE];
                    for j in 0..images {
                        let planes = &mut yb[j * y_len..(j + 1) * y_len];
                        for ty in 0..th {
                            for tx in 0..tw {
                                let tile = j * t + ty * tw + tx;
                                // the tile's 4x4 outputs that lie inside [ho, wo]
                                let rows = (self.ho - TILE * ty).min(TILE);
                                let cols = (self.wo - TILE * tx).min(TILE);
                                for o in (0..c_out).step_by(LANES) {
                                    let lanes = LANES.min(c_out - o);
                                    output_tile(m, n * c_out, tile * c_out + o, lanes, &mut out, simd);
                                    for (e, values) in out.iter().enumerate() {
                                        let (r, c) = (e / TILE, e % TILE);
                                        if r >= rows || c >= cols {
                                            continue;
                                        }
                                        let at = (TILE * ty + r) * self.wo + TILE * tx + c;
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

/// What the tile transforms compute with: one channel (`f32`) or eight (an AVX register). The
/// formulas below are written once over it.
trait Lanes: Copy {
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn scale(self, k: f32) -> Self;
}

impl Lanes for f32 {
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self - other
    }
    #[inline(always)]
    fn scale(self, k: f32) -> Self {
        self * k
    }
}

/// `B^T d` of six values along a tile's row or column.
#[inline(always)]
fn input_transform<T: Lanes>([d0, d1, d2, d3, d4, d5]: [T; ALPHA]) -> [T; ALPHA] {
    let (t1, t2) = (d4.sub(d2.scale(4.0)), d3.sub(d1.scale(4.0)));
    let (t3, t4) = (d4.sub(d2), d3.sub(d1).scale(2.0));
    [
        d0.scale(4.0).add(d4).sub(d2.scale(5.0)),
        t1.add(t2),
        t1.sub(t2),
        t3.add(t4),
        t3.sub(t4),
        d1.scale(4.0).add(d5).sub(d3.scale(5.0)),
    ]
}

/// `A^T m`: four outputs from six transformed products.
#[inline(always)]
fn output_transform<T: Lanes>([m0, m1, m2, m3, m4, m5]: [T; ALPHA]) -> [T; TILE] {
    let (s12, d12, s34, d34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
    [m0.add(s12).add(s34), d12.add(d34.scale(2.0)), s12.add(s34.scale(4.0)), d12.add(d34.scale(8.0)).add(m5)]
}

/// `A y`: six values from four output gradients (the transpose of [`output_transform`]).
#[inline(always)]
fn grad_transform<T: Lanes>([y0, y1, y2, y3]: [T; TILE]) -> [T; ALPHA] {
    let (e, f) = (y0.add(y2), y1.add(y3));
    let (g, h) = (y0.add(y2.scale(4.0)), y1.scale(2.0).add(y3.scale(8.0)));
    [y0, e.add(f), e.sub(f), g.add(h), g.sub(h), y3]
}

/// `G g`: six values from three kernel taps.
#[inline(always)]
fn kernel_transform([g0, g1, g2]: [f32; 3]) -> [f32; ALPHA] {
    let (a, b) = (g0 + g2, g0 / 24.0 + g2 / 6.0);
    [g0 / 4.0, -(a + g1) / 6.0, -(a - g1) / 6.0, b + g1 / 12.0, b - g1 / 12.0, g2]
}

/// `G^T v`: three kernel taps' gradients from six (the transpose of [`kernel_transform`]).
#[inline(always)]
fn kernel_transpose([v0, v1, v2, v3, v4, v5]: [f32; ALPHA]) -> [f32; 3] {
    let (s12, s34) = (v1 + v2, v3 + v4);
    [v0 / 4.0 - s12 / 6.0 + s34 / 24.0, (v2 - v1) / 6.0 + (v3 - v4) / 12.0, (s34 - s12) / 6.0 + v5]
}

/// `B^T d B` of one tile: `d(e)` is the tile's pixel `e = 6 * row + col`; `out(xi, value)`
/// takes the 36 transformed values.
#[inline(always)]
fn input_tile_with<T: Lanes>(d: impl Fn(usize) -> T, mut out: impl FnMut(usize, T)) {
    // d B along each row
    let rows: [[T; ALPHA]; ALPHA] = std::array::from_fn(|i| input_transform(std::array::from_fn(|k| d(ALPHA * i + k))));
    // B^T (d B) down each column
    for col in 0..ALPHA {
        let v = input_transform(std::array::from_fn(|i| rows[i][col]));
        for (row, value) in v.into_iter().enumerate() {
            out(ALPHA * row + col, value);
        }
    }
}

/// `A^T M A` of one tile: `m(xi)` is its transformed product `xi`; returns the 4x4 outputs
/// (row-major).
#[inline(always)]
fn output_tile_with<T: Lanes>(m: impl Fn(usize) -> T) -> [T; TILE * TILE] {
    // A^T M down each column: [4, 6]
    let cols: [[T; TILE]; ALPHA] = std::array::from_fn(|col| output_transform(std::array::from_fn(|i| m(ALPHA * i + col))));
    // (A^T M) A along each row
    let rows: [[T; TILE]; TILE] = std::array::from_fn(|r| output_transform(std::array::from_fn(|col| cols[col][r])));
    std::array::from_fn(|e| rows[e / TILE][e % TILE])
}

/// `A dy A^T` of one 4x4 output-gradient tile: `d(e)` is pixel `e = 4 * row + col`;
/// `out(xi, value)` takes the 36 values.
#[inline(always)]
fn grad_tile_with<T: Lanes>(d: impl Fn(usize) -> T, mut out: impl FnMut(usize, T)) {
    // A dy down each column: [6, 4]
    let cols: [[T; ALPHA]; TILE] = std::array::from_fn(|c| grad_transform(std::array::from_fn(|r| d(TILE * r + c))));
    // (A dy) A^T along each row
    for row in 0..ALPHA {
        let z = grad_transform(std::array::from_fn(|c| cols[c][row]));
        for (col, value) in z.into_iter().enumerate() {
            out(ALPHA * row + col, value);
        }
    }
}

/// `B^T d B` of one tile for all channels: `d[e]` is the tile's pixel `e` over the channels;
/// element `xi` goes to `v[xi * stride + at..]`.
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
    for ch in from..c {
        input_tile_with(|e| d[e][ch], |xi, value| v[xi * stride + at + ch] = value);
    }
}

/// `A^T M A` of one tile for `lanes` output channels: element `xi` of the tile is
/// `m[xi * stride + at..][..lanes]`; `out[4 * r + c]` is output pixel (row `r`, column `c`).
#[inline]
fn output_tile(m: &[f32], stride: usize, at: usize, lanes: usize, out: &mut [[f32; LANES]; TILE * TILE], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd && lanes == LANES {
        // SAFETY: `simd` is only set where the CPU has AVX2 (`has_avx2`).
        return unsafe { avx2::output_tile(m, stride, at, out) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for l in 0..lanes {
        let y = output_tile_with(|xi| m[xi * stride + at + l]);
        for (o, value) in out.iter_mut().zip(y) {
            o[l] = value;
        }
    }
}

/// `A dy A^T` of one 4x4 output-gradient tile for all channels: `d[e]` is the tile's pixel `e`
/// over the channels; element `xi` goes to `z[xi * stride + at..]`.
#[inline]
fn grad_tile(d: &[&[f32]; TILE * TILE], z: &mut [f32], stride: usize, at: usize, simd: bool) {
    let c = d[0].len();
    let mut from = 0;
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only set where the CPU has AVX2 (`has_avx2`).
        from = unsafe { avx2::grad_tile(d, z, stride, at) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for ch in from..c {
        grad_tile_with(|e| d[e][ch], |xi, value| z[xi * stride + at + ch] = value);
    }
}

/// The tile transforms on AVX registers, 8 channels at a time: the formulas above on `__m256`.
/// Callers must check [`has_avx2`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, Lanes, TILE, XI, grad_tile_with, input_tile_with, output_tile_with};

    // The methods inline into the `avx2` functions below, which enable the instructions.
    impl Lanes for __m256 {
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            // SAFETY: only reached from the `avx2` functions below.
            unsafe { _mm256_add_ps(self, other) }
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            // SAFETY: as above.
            unsafe { _mm256_sub_ps(self, other) }
        }
        #[inline(always)]
        fn scale(self, k: f32) -> Self {
            // SAFETY: as above.
            unsafe { _mm256_mul_ps(self, _mm256_set1_ps(k)) }
        }
    }

    /// [`super::input_tile`] for the channels that fill whole registers; returns how many
    /// channels it did (the caller does the rest).
    #[target_feature(enable = "avx2")]
    pub fn input_tile(d: &[&[f32]; XI], v: &mut [f32], stride: usize, at: usize) -> usize {
        let c = d[0].len();
        let body = c - c % LANES;
        assert!(d.iter().all(|d| d.len() == c), "input tile: pixels of different widths");
        assert!(body == 0 || (XI - 1) * stride + at + body <= v.len(), "input tile: V too short");
        let out = v.as_mut_ptr();
        for c0 in (0..body).step_by(LANES) {
            // SAFETY: every pixel holds `c >= body` floats; the stores stay below
            // `(XI - 1) * stride + at + body <= v.len()`.
            input_tile_with(
                |e| unsafe { _mm256_loadu_ps(d[e].as_ptr().add(c0)) },
                |xi, value| unsafe { _mm256_storeu_ps(out.add(xi * stride + at + c0), value) },
            );
        }
        body
    }

    /// [`super::output_tile`] for a whole register of output channels.
    #[target_feature(enable = "avx2")]
    pub fn output_tile(m: &[f32], stride: usize, at: usize, out: &mut [[f32; LANES]; TILE * TILE]) {
        assert!((XI - 1) * stride + at + LANES <= m.len(), "output tile: M too short");
        // SAFETY: the loads stay below `(XI - 1) * stride + at + LANES <= m.len()`; each store
        // writes one `[f32; 8]`.
        let y = output_tile_with(|xi| unsafe { _mm256_loadu_ps(m.as_ptr().add(xi * stride + at)) });
        for (o, value) in out.iter_mut().zip(y) {
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), value) };
        }
    }

    /// [`super::grad_tile`] for the channels that fill whole registers; returns how many
    /// channels it did (the caller does the rest).
    #[target_feature(enable = "avx2")]
    pub fn grad_tile(d: &[&[f32]; TILE * TILE], z: &mut [f32], stride: usize, at: usize) -> usize {
        let c = d[0].len();
        let body = c - c % LANES;
        assert!(d.iter().all(|d| d.len() == c), "grad tile: pixels of different widths");
        assert!(body == 0 || (XI - 1) * stride + at + body <= z.len(), "grad tile: Z too short");
        let out = z.as_mut_ptr();
        for c0 in (0..body).step_by(LANES) {
            // SAFETY: every pixel holds `c >= body` floats; the stores stay below
            // `(XI - 1) * stride + at + body <= z.len()`.
            grad_tile_with(
                |e| unsafe { _mm256_loadu_ps(d[e].as_ptr().add(c0)) },
                |xi, value| unsafe { _mm256_storeu_ps(out.add(xi * stride + at + c0), value) },
            );
        }
        body
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
            (1, 16, 4, 4, 16, [(1, 1), (1, 1)]),   // a single tile (the CNN's fourth conv)
            (2, 16, 5, 5, 16, [(1, 1), (1, 1)]),   // one whole tile and a 1-wide edge
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
        let small = ConvShape::new([1, 32, 2, 2], [64, 32, 3, 3], &ConvOptions::new_with_padding([1, 1], [(1, 1); 2], [1, 1], 1));
        assert!(!applies(&small), "a 2x2 map: smaller than a tile");
    }
}
