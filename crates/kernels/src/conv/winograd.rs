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
//! from 438.3 to 483.0 images/s (`scripts/bench_ab.sh`, 5 rounds, batch 64, 2-core Zen 1).
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
//! contiguous channel vectors and the transforms run 16 channels at a time on AVX-512
//! registers, 8 on AVX2 ones (a channel at a time elsewhere; [`Simd`] picks at run time), with the same formulas (`tile_transforms!`); `V`, `M` and `Z` are stored
//! tile-major (`[tiles, c]`). The larger tile rounds more than F(2x2, 3x3): outputs differ from
//! im2col's by about 2e-6 of their largest value (1.8e-6 measured in the tests' first case), well inside what training
//! notices; tests hold both paths to burn's conv.
//!
//! # Shapes
//! - `x`: `[b, ci, h, w]`; `weight`: `[co, ci, 3, 3]`
//! - output `[b, co, ho, wo]`; input gradient `[b, ci, h, w]` and weight gradient
//!   `[co, ci, 3, 3]` from `dy` `[b, co, ho, wo]`

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{ConvShape, images_per_task, sum_in_task_order};
use crate::matmul::{View, matmul};
use crate::output::{par_filled, par_written, zeroed};
use crate::scratch::with_scratch;
use crate::simd::Simd;

/// Most floats of transformed tiles (`V` and `M`, or `V` and `Z`) in one block of images:
/// 1 MB, about a core's L2 cache (0.5-2 MB on the CPUs seen), so the products read the tiles
/// the transforms just wrote from the cache, and the output transform reads `M` from it. The
/// im2col bound these blocks kept to before (16 MB) sent them through memory. Against it,
/// `scripts/bench_ab.sh` (3 rounds, 2-core Zen 4) gave the plain CNN at 1 MB blocks 1.16x in
/// training (batch 64) and 1.18x in inference (batch 256), at 4 MB 1.11x and 1.12x. Smaller
/// blocks were no better: against 1 MB, 512 KB gave cnn 1.02x / 1.03x but `--lateral residual`
/// 1.04x, attn3 0.93x, `--conv inception` 0.95x (seed noise here is about 5%); 256 KB 0.95x /
/// 0.99x.
const TILE_BLOCK_ELEMENTS: usize = 1 << 18;

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
    forward_with(x, weight, s, Simd::detect())
}

/// [`forward`] on the kernel path `simd` (one the CPU supports).
fn forward_with(x: &[f32], weight: &[f32], s: &ConvShape, simd: Simd) -> Vec<f32> {
    assert_eq!(
        x.len(),
        s.batch * s.c_in * s.h * s.w,
        "winograd forward: x has the wrong size"
    );
    assert_eq!(
        weight.len(),
        s.c_out * s.c_in * 9,
        "winograd forward: weight has the wrong size"
    );
    let u = transform_kernels(weight, s.c_out, s.c_in, false, simd);
    Plan::of(s).run(x, &u, simd)
}

/// The input gradient `[b, ci, h, w]` (flat) for the output gradient `dy`: the 3x3 conv of `dy`
/// with the flipped, channel-swapped kernel, padded `2 - pad`. The caller checks [`applies`].
pub fn input_grad(weight: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    input_grad_with(weight, dy, s, Simd::detect())
}

/// [`input_grad`] on the kernel path `simd` (one the CPU supports).
fn input_grad_with(weight: &[f32], dy: &[f32], s: &ConvShape, simd: Simd) -> Vec<f32> {
    assert_eq!(
        dy.len(),
        s.batch * s.c_out * s.ho * s.wo,
        "winograd input grad: dy has the wrong size"
    );
    assert_eq!(
        weight.len(),
        s.c_out * s.c_in * 9,
        "winograd input grad: weight has the wrong size"
    );
    let u = transform_kernels(weight, s.c_out, s.c_in, true, simd);
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
    plan.run(dy, &u, simd)
}

/// The weight gradient `[co, ci, 3, 3]` (flat) for the input `x` and the output gradient `dy`:
/// `dg = G^T (sum over tiles Z ⊙ V) G`, the transpose of the forward's kernel transform applied to
/// the gradient of `U`. The caller checks [`applies`].
pub fn weight_grad(x: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    weight_grad_with(x, dy, s, Simd::detect())
}

/// [`weight_grad`] on the kernel path `simd` (one the CPU supports).
fn weight_grad_with(x: &[f32], dy: &[f32], s: &ConvShape, simd: Simd) -> Vec<f32> {
    assert_eq!(
        x.len(),
        s.batch * s.c_in * s.h * s.w,
        "winograd weight grad: x has the wrong size"
    );
    assert_eq!(
        dy.len(),
        s.batch * s.c_out * s.ho * s.wo,
        "winograd weight grad: dy has the wrong size"
    );
    let du = Plan::of(s).kernel_grad(x, dy, simd);
    let pairs = s.c_out * s.c_in;
    let mut dw = vec![0f32; pairs * 9];
    dw.par_chunks_mut(9 * 64)
        .enumerate()
        .for_each(|(chunk, out)| {
            for (q, dg) in out.chunks_exact_mut(9).enumerate() {
                let pair = chunk * 64 + q;
                // G^T dU: [3, 6], a column at a time
                let mut gu = [[0f32; ALPHA]; 3];
                for col in 0..ALPHA {
                    let v: [f32; ALPHA] =
                        std::array::from_fn(|row| du[(ALPHA * row + col) * pairs + pair]);
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

/// `U = G g G^T` of every kernel, as 36 column-major matrices (`rows` contiguous): `[co, ci]`
/// each for the forward conv, or (`flip`) `[ci, co]` each of the flipped kernels `W[o, c, 2 -
/// i, 2 - j]` for the input gradient. Column-major because `gemm` then reads `U` as it stands
/// as the left operand; row-major, it gathered `U` into its packed layout one float at a time
/// (7% of a cnn training step).
fn transform_kernels(
    weight: &[f32],
    c_out: usize,
    c_in: usize,
    flip: bool,
    simd: Simd,
) -> Vec<f32> {
    let (rows, cols) = if flip { (c_in, c_out) } else { (c_out, c_in) };
    let len = rows * cols;
    // The taps first, tap-major ([9, rows, cols]), so that 8 kernels side by side are 8
    // contiguous floats per tap.
    // (a tap's plane per task: on the main thread alone this copy was 3% of a training step)
    let taps = par_filled(9 * len, len, |tap, plane| {
        // flipped: g'(i, j) = g(2 - i, 2 - j), tap 3 i + j <- tap 8 - (3 i + j)
        let from = if flip { 8 - tap } else { tap };
        for (pair, k) in weight.chunks_exact(9).enumerate() {
            let (o, c) = (pair / c_in, pair % c_in);
            plane[if flip { pair } else { c * c_out + o }] = k[from];
        }
    });
    let mut u = Vec::<f32>::with_capacity(XI * len);
    // The kernels split over the threads (whole registers each): each task zeroes and writes
    // its part of all 36 matrices.
    let per_task = len
        .div_ceil(rayon::current_num_threads().max(1))
        .next_multiple_of(WIDE)
        .max(WIDE);
    let mut tasks: Vec<Vec<&mut [MaybeUninit<f32>]>> = (0..len.div_ceil(per_task))
        .map(|_| Vec::with_capacity(XI))
        .collect();
    for matrix in u.spare_capacity_mut()[..XI * len].chunks_mut(len) {
        for (task, part) in matrix.chunks_mut(per_task).enumerate() {
            tasks[task].push(part);
        }
    }
    tasks.into_par_iter().enumerate().for_each(|(task, parts)| {
        let mut matrices: Vec<&mut [f32]> = parts.into_iter().map(zeroed).collect();
        let start = task * per_task;
        let mut from = 0;
        #[cfg(target_arch = "x86_64")]
        {
            if simd == Simd::Avx512 {
                // SAFETY: `Simd::Avx512` is only chosen where the CPU has AVX-512 F.
                from = unsafe { avx512::kernel_tiles(&taps, len, start, &mut matrices, from) };
            }
            if simd.avx2() {
                // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2.
                from = unsafe { avx2::kernel_tiles(&taps, len, start, &mut matrices, from) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = simd;
        for q in from..matrices[0].len() {
            scalar::kernel_tile_with(
                |tap| taps[tap * len + start + q],
                |xi, value| matrices[xi][q] = value,
            );
        }
    });
    // SAFETY: the tasks' parts cover all `XI * len` values, and `zeroed` initialised each.
    unsafe { u.set_len(XI * len) };
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
    /// The forward conv of shape `s` (whose weight gradient runs on the same tiles).
    fn of(s: &ConvShape) -> Self {
        Plan {
            batch: s.batch,
            c_in: s.c_in,
            h: s.h,
            w: s.w,
            c_out: s.c_out,
            ho: s.ho,
            wo: s.wo,
            pad: s.pad,
        }
    }

    /// Tile rows and columns: 4x4 output tiles covering `[ho, wo]`.
    fn tiles(&self) -> (usize, usize) {
        (self.ho.div_ceil(TILE), self.wo.div_ceil(TILE))
    }

    /// `V[xi]` `[n, c_in]` (tile-major: tile `j * t + ty * tw + tx` of image `j`) of a block of
    /// whole images `xb` `[images, c_in, h, w]`; `image` is scratch of one image's size.
    fn input_tiles(&self, xb: &[f32], v: &mut [f32], image: &mut [f32], simd: Simd) {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let c_in = self.c_in;
        let x_len = c_in * self.h * self.w;
        let n = xb.len() / x_len * t;
        let zeros = vec![0f32; c_in];
        for (j, xj) in xb.chunks(x_len).enumerate() {
            transpose(xj, c_in, self.h * self.w, image, simd);
            for ty in 0..th {
                for tx in 0..tw {
                    let pixel = |i: usize, k: usize| -> &[f32] {
                        let r = (TILE * ty + i)
                            .checked_sub(self.pad[0])
                            .filter(|&r| r < self.h);
                        let c = (TILE * tx + k)
                            .checked_sub(self.pad[1])
                            .filter(|&c| c < self.w);
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
    fn grad_tiles(&self, dyb: &[f32], z: &mut [f32], image: &mut [f32], simd: Simd) {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let c_out = self.c_out;
        let y_len = c_out * self.ho * self.wo;
        let n = dyb.len() / y_len * t;
        let zeros = vec![0f32; c_out];
        for (j, dyj) in dyb.chunks(y_len).enumerate() {
            transpose(dyj, c_out, self.ho * self.wo, image, simd);
            for ty in 0..th {
                for tx in 0..tw {
                    let pixel = |r: usize, c: usize| -> &[f32] {
                        let (r, c) = (TILE * ty + r, TILE * tx + c);
                        if r < self.ho && c < self.wo {
                            &image[(r * self.wo + c) * c_out..][..c_out]
                        } else {
                            &zeros
                        }
                    };
                    let d: [&[f32]; TILE * TILE] =
                        std::array::from_fn(|e| pixel(e / TILE, e % TILE));
                    grad_tile(&d, z, n * c_out, (j * t + ty * tw + tx) * c_out, simd);
                }
            }
        }
    }

    /// The gradient of every transformed kernel, `sum over tiles Z[xi] * V[xi]` as 36 matrices
    /// `[XI, c_out, c_in]`, for the input `x` and the output gradient `dy`.
    fn kernel_grad(&self, x: &[f32], dy: &[f32], simd: Simd) -> Vec<f32> {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let (c_in, c_out) = (self.c_in, self.c_out);
        let (x_len, y_len) = (c_in * self.h * self.w, c_out * self.ho * self.wo);
        let chunk = images_per_task(self.batch);
        let block = (TILE_BLOCK_ELEMENTS / (XI * (c_in + c_out) * t)).clamp(1, chunk);
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
                    for (b, (xb, dyb)) in xs
                        .chunks(block * x_len)
                        .zip(dys.chunks(block * y_len))
                        .enumerate()
                    {
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
        sum_in_task_order(partials, XI * c_out * c_in)
    }

    fn run(&self, x: &[f32], u: &[f32], simd: Simd) -> Vec<f32> {
        let (th, tw) = self.tiles();
        let t = th * tw;
        let (c_in, c_out) = (self.c_in, self.c_out);
        let (x_len, y_len) = (c_in * self.h * self.w, c_out * self.ho * self.wo);
        let chunk = images_per_task(self.batch);
        // 16 output channels per tile transform on AVX-512, else 8
        let step = if simd == Simd::Avx512 { WIDE } else { 8 };
        // as many images as keep `V` and `M` within the im2col blocks' bound
        let block = (TILE_BLOCK_ELEMENTS / (XI * (c_in + c_out) * t)).clamp(1, chunk);
        // SAFETY: every tile writes its outputs inside `[ho, wo]` for every channel, and the
        // tiles cover `[ho, wo]`: each image of a piece is written whole.
        unsafe {
            par_written(self.batch * y_len, chunk * y_len, |task, ys| {
                let xs = &x[task * chunk * x_len..][..ys.len() / y_len * x_len];
                let n_max = block * t; // tiles of a full block
                with_scratch(XI * c_in * n_max, XI * c_out * n_max, |v, m| {
                    // one image channels-last, [h * w, c_in]
                    let mut image = vec![0f32; x_len];
                    // one output image channels-last, [ho * wo, c_out]: a tile's outputs go
                    // there as whole registers of channels, and one transpose then writes the
                    // image channels-first (written a float at a time, strided by a plane,
                    // the outputs took 13% of a cnn inference step on Zen 4)
                    let mut image_out = vec![0f32; y_len];
                    for (yb, xb) in ys.chunks_mut(block * y_len).zip(xs.chunks(block * x_len)) {
                        let images = xb.len() / x_len;
                        let n = images * t; // tiles of this block
                        self.input_tiles(xb, v, &mut image, simd);
                        // M[xi] [c_out, n] (stored [n, c_out]) = U[xi] [c_out, c_in] (stored [c_in, c_out]) x V[xi] [c_in, n]
                        for xi in 0..XI {
                            matmul(
                                m,
                                View::new(xi * n * c_out, c_out, n, 1, c_out),
                                false,
                                u,
                                View::new(xi * c_out * c_in, c_out, c_in, 1, c_out),
                                v,
                                View::new(xi * n * c_in, c_in, n, 1, c_in),
                                1.0,
                            );
                        }
                        let mut out = [[0f32; WIDE]; TILE * TILE];
                        for j in 0..images {
                            for ty in 0..th {
                                for tx in 0..tw {
                                    let tile = j * t + ty * tw + tx;
                                    // the tile's 4x4 outputs that lie inside [ho, wo]
                                    let rows = (self.ho - TILE * ty).min(TILE);
                                    let cols = (self.wo - TILE * tx).min(TILE);
                                    for o in (0..c_out).step_by(step) {
                                        let lanes = step.min(c_out - o);
                                        output_tile(
                                            m,
                                            n * c_out,
                                            tile * c_out + o,
                                            lanes,
                                            &mut out,
                                            simd,
                                        );
                                        for (e, values) in out.iter().enumerate() {
                                            let (r, c) = (e / TILE, e % TILE);
                                            if r >= rows || c >= cols {
                                                continue;
                                            }
                                            let at = ((TILE * ty + r) * self.wo + TILE * tx + c)
                                                * c_out
                                                + o;
                                            image_out[at..at + lanes]
                                                .copy_from_slice(&values[..lanes]);
                                        }
                                    }
                                }
                            }
                            let planes = &mut yb[j * y_len..(j + 1) * y_len];
                            transpose_uninit(&image_out, self.ho * self.wo, c_out, planes, simd);
                        }
                    }
                });
            })
        }
    }
}

/// Most channels per step of the tile transforms: one AVX-512 register of `f32` (AVX2's hold 8).
const WIDE: usize = 16;

/// `dst [p, c] = src [c, p]` (one image, channels-first to channels-last, or back with `c` and
/// `p` swapped). The AVX-512 path takes AVX2's 8x8 blocks too: the copy is bound by memory, not
/// by register width.
fn transpose(src: &[f32], c: usize, p: usize, dst: &mut [f32], simd: Simd) {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and `transpose_uninit` only writes
    // initialised floats through the view.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    transpose_uninit(src, c, p, dst, simd);
}

/// [`transpose`] into memory not yet initialised (an output image of [`par_written`]); every
/// one of the first `c * p` floats of `dst` is written.
fn transpose_uninit(src: &[f32], c: usize, p: usize, dst: &mut [MaybeUninit<f32>], simd: Simd) {
    assert!(
        src.len() >= c * p && dst.len() >= c * p,
        "transpose: slices too short"
    );
    // blocks of 8 channels x 8 pixels keep both sides' cache lines in use
    for c0 in (0..c).step_by(8) {
        for p0 in (0..p).step_by(8) {
            #[cfg(target_arch = "x86_64")]
            if simd.avx2() && c0 + 8 <= c && p0 + 8 <= p {
                // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2; the block lies
                // inside both slices (checked above).
                unsafe { avx2::transpose_8x8(src, p, c0, p0, dst, c) };
                continue;
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = simd;
            for ch in c0..(c0 + 8).min(c) {
                for px in p0..(p0 + 8).min(p) {
                    dst[px * c + ch].write(src[ch * p + px]);
                }
            }
        }
    }
}

/// `G^T v`: three kernel taps' gradients from six (the transpose of `kernel_transform`).
#[inline(always)]
fn kernel_transpose([v0, v1, v2, v3, v4, v5]: [f32; ALPHA]) -> [f32; 3] {
    const SIXTH: f32 = 1.0 / 6.0;
    let (s12, s34) = (v1 + v2, v3 + v4);
    [
        0.25 * v0 - SIXTH * s12 + s34 * (1.0 / 24.0),
        SIXTH * (v2 - v1) + (v3 - v4) * (1.0 / 12.0),
        SIXTH * (s34 - s12) + v5,
    ]
}

/// The tile transforms, written once over a lane type `T` and its `add`, `sub` and `scale`
/// (which the invoking module defines): compiled on `f32` (a channel at a time, [`scalar`]) and
/// on AVX registers (8 channels, [`avx2`]; 16, [`avx512`]), where every function carries the
/// module's target features so that the intrinsics inline (a generic trait over both left them
/// as calls).
macro_rules! tile_transforms {
    ($(#[$feature:meta])*) => {
        /// `B^T d` of six values along a tile's row or column.
        #[inline]
        $(#[$feature])*
        fn input_transform([d0, d1, d2, d3, d4, d5]: [T; ALPHA]) -> [T; ALPHA] {
            let (t1, t2) = (sub(d4, scale(d2, 4.0)), sub(d3, scale(d1, 4.0)));
            let (t3, t4) = (sub(d4, d2), scale(sub(d3, d1), 2.0));
            [
                sub(add(scale(d0, 4.0), d4), scale(d2, 5.0)),
                add(t1, t2),
                sub(t1, t2),
                add(t3, t4),
                sub(t3, t4),
                sub(add(scale(d1, 4.0), d5), scale(d3, 5.0)),
            ]
        }

        /// `A^T m`: four outputs from six transformed products.
        #[inline]
        $(#[$feature])*
        fn output_transform([m0, m1, m2, m3, m4, m5]: [T; ALPHA]) -> [T; TILE] {
            let (s12, d12, s34, d34) = (add(m1, m2), sub(m1, m2), add(m3, m4), sub(m3, m4));
            [add(add(m0, s12), s34), add(d12, scale(d34, 2.0)), add(s12, scale(s34, 4.0)), add(add(d12, scale(d34, 8.0)), m5)]
        }

        /// `A y`: six values from four output gradients (the transpose of `output_transform`).
        #[inline]
        $(#[$feature])*
        fn grad_transform([y0, y1, y2, y3]: [T; TILE]) -> [T; ALPHA] {
            let (e, f) = (add(y0, y2), add(y1, y3));
            let (g, h) = (add(y0, scale(y2, 4.0)), add(scale(y1, 2.0), scale(y3, 8.0)));
            [y0, add(e, f), sub(e, f), add(g, h), sub(g, h), y3]
        }

        /// `G g`: six values from three kernel taps.
        #[inline]
        $(#[$feature])*
        fn kernel_transform([g0, g1, g2]: [T; 3]) -> [T; ALPHA] {
            let (a, b) = (add(g0, g2), add(scale(g0, 1.0 / 24.0), scale(g2, 1.0 / 6.0)));
            let c = scale(g1, 1.0 / 12.0);
            [scale(g0, 0.25), scale(add(a, g1), -1.0 / 6.0), scale(sub(a, g1), -1.0 / 6.0), add(b, c), sub(b, c), g2]
        }

        /// `G g G^T` of one kernel: `g(tap)` is tap `3 * i + j`; `out(xi, value)` takes the 36
        /// transformed values.
        #[inline]
        $(#[$feature])*
        pub(super) fn kernel_tile_with(g: impl Fn(usize) -> T, mut out: impl FnMut(usize, T)) {
            // G g down each column: [6, 3]
            let cols: [[T; ALPHA]; 3] = [0, 1, 2].map(|j| kernel_transform([g(j), g(3 + j), g(6 + j)]));
            // (G g) G^T along each row
            for row in 0..ALPHA {
                let u = kernel_transform([cols[0][row], cols[1][row], cols[2][row]]);
                for (col, value) in u.into_iter().enumerate() {
                    out(ALPHA * row + col, value);
                }
            }
        }

        /// `B^T d B` of one tile: `d(e)` is the tile's pixel `e = 6 * row + col`;
        /// `out(xi, value)` takes the 36 transformed values.
        #[inline]
        $(#[$feature])*
        pub(super) fn input_tile_with(d: impl Fn(usize) -> T, mut out: impl FnMut(usize, T)) {
            // d B along each row
            let mut rows = [[zero(); ALPHA]; ALPHA];
            for (i, row) in rows.iter_mut().enumerate() {
                *row = input_transform([d(6 * i), d(6 * i + 1), d(6 * i + 2), d(6 * i + 3), d(6 * i + 4), d(6 * i + 5)]);
            }
            // B^T (d B) down each column
            for col in 0..ALPHA {
                let v = input_transform([rows[0][col], rows[1][col], rows[2][col], rows[3][col], rows[4][col], rows[5][col]]);
                for (row, value) in v.into_iter().enumerate() {
                    out(ALPHA * row + col, value);
                }
            }
        }

        /// `A^T M A` of one tile: `m(xi)` is its transformed product `xi`; `out(e, value)`
        /// takes the 4x4 outputs (`e = 4 * row + col`).
        #[inline]
        $(#[$feature])*
        pub(super) fn output_tile_with(m: impl Fn(usize) -> T, mut out: impl FnMut(usize, T)) {
            // A^T M down each column: [4, 6]
            let mut cols = [[zero(); TILE]; ALPHA];
            for (col, c) in cols.iter_mut().enumerate() {
                *c = output_transform([m(col), m(6 + col), m(12 + col), m(18 + col), m(24 + col), m(30 + col)]);
            }
            // (A^T M) A along each row
            for r in 0..TILE {
                let y = output_transform([cols[0][r], cols[1][r], cols[2][r], cols[3][r], cols[4][r], cols[5][r]]);
                for (c, value) in y.into_iter().enumerate() {
                    out(TILE * r + c, value);
                }
            }
        }

        /// `A dy A^T` of one 4x4 output-gradient tile: `d(e)` is pixel `e = 4 * row + col`;
        /// `out(xi, value)` takes the 36 values.
        #[inline]
        $(#[$feature])*
        pub(super) fn grad_tile_with(d: impl Fn(usize) -> T, mut out: impl FnMut(usize, T)) {
            // A dy down each column: [6, 4]
            let mut cols = [[zero(); ALPHA]; TILE];
            for (c, col) in cols.iter_mut().enumerate() {
                *col = grad_transform([d(c), d(4 + c), d(8 + c), d(12 + c)]);
            }
            // (A dy) A^T along each row
            for row in 0..ALPHA {
                let z = grad_transform([cols[0][row], cols[1][row], cols[2][row], cols[3][row]]);
                for (col, value) in z.into_iter().enumerate() {
                    out(ALPHA * row + col, value);
                }
            }
        }
    };
}

/// The tile transforms a channel at a time: the remainder of the channels that do not fill an
/// AVX register, and every channel on CPUs without AVX2.
mod scalar {
    use super::{ALPHA, TILE};

    type T = f32;

    #[inline(always)]
    fn add(a: T, b: T) -> T {
        a + b
    }
    #[inline(always)]
    fn sub(a: T, b: T) -> T {
        a - b
    }
    #[inline(always)]
    fn scale(a: T, k: f32) -> T {
        a * k
    }
    #[inline(always)]
    fn zero() -> T {
        0.0
    }

    tile_transforms!();
}

/// `B^T d B` of one tile for all channels: `d[e]` is the tile's pixel `e` over the channels;
/// element `xi` goes to `v[xi * stride + at..]`.
#[inline]
fn input_tile(d: &[&[f32]; XI], v: &mut [f32], stride: usize, at: usize, simd: Simd) {
    let c = d[0].len();
    let mut from = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if simd == Simd::Avx512 {
            // SAFETY: `Simd::Avx512` is only chosen where the CPU has AVX-512 F.
            from = unsafe { avx512::input_tile(d, v, stride, at, from) };
        }
        if simd.avx2() {
            // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2.
            from = unsafe { avx2::input_tile(d, v, stride, at, from) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for ch in from..c {
        scalar::input_tile_with(|e| d[e][ch], |xi, value| v[xi * stride + at + ch] = value);
    }
}

/// `A^T M A` of one tile for `lanes` (at most 16) output channels: element `xi` of the tile is
/// `m[xi * stride + at..][..lanes]`; `out[4 * r + c]` is output pixel (row `r`, column `c`).
#[inline]
fn output_tile(
    m: &[f32],
    stride: usize,
    at: usize,
    lanes: usize,
    out: &mut [[f32; WIDE]; TILE * TILE],
    simd: Simd,
) {
    let mut from = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if simd == Simd::Avx512 && lanes == WIDE {
            // SAFETY: `Simd::Avx512` is only chosen where the CPU has AVX-512 F.
            return unsafe { avx512::output_tile(m, stride, at, out) };
        }
        if simd.avx2() && lanes >= 8 {
            // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2.
            unsafe { avx2::output_tile(m, stride, at, out) };
            from = 8;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for l in from..lanes {
        scalar::output_tile_with(|xi| m[xi * stride + at + l], |e, value| out[e][l] = value);
    }
}

/// `A dy A^T` of one 4x4 output-gradient tile for all channels: `d[e]` is the tile's pixel `e`
/// over the channels; element `xi` goes to `z[xi * stride + at..]`.
#[inline]
fn grad_tile(d: &[&[f32]; TILE * TILE], z: &mut [f32], stride: usize, at: usize, simd: Simd) {
    let c = d[0].len();
    let mut from = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if simd == Simd::Avx512 {
            // SAFETY: `Simd::Avx512` is only chosen where the CPU has AVX-512 F.
            from = unsafe { avx512::grad_tile(d, z, stride, at, from) };
        }
        if simd.avx2() {
            // SAFETY: `simd` is AVX2 or better only where the CPU has AVX2.
            from = unsafe { avx2::grad_tile(d, z, stride, at, from) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for ch in from..c {
        scalar::grad_tile_with(|e| d[e][ch], |xi, value| z[xi * stride + at + ch] = value);
    }
}

/// The tile transforms over whole registers of channels, written once over the invoking
/// module's register type `T`, its width `LANES`, and its `load` and `store` (of `LANES`
/// floats); every function carries the module's target features.
#[cfg(target_arch = "x86_64")]
macro_rules! register_tiles {
    ($(#[$feature:meta])*) => {
        tile_transforms!($(#[$feature])*);

        /// [`super::input_tile`] for the channels from `from` on that fill whole registers;
        /// returns where it stopped (the caller does the rest).
        $(#[$feature])*
        pub fn input_tile(d: &[&[f32]; XI], v: &mut [f32], stride: usize, at: usize, from: usize) -> usize {
            let c = d[0].len();
            let body = from + (c - from) / LANES * LANES;
            assert!(d.iter().all(|d| d.len() == c), "input tile: pixels of different widths");
            assert!(body == from || (XI - 1) * stride + at + body <= v.len(), "input tile: V too short");
            let out = v.as_mut_ptr();
            for c0 in (from..body).step_by(LANES) {
                // SAFETY: every pixel holds `c >= body` floats; the stores stay below
                // `(XI - 1) * stride + at + body <= v.len()`.
                input_tile_with(
                    |e| unsafe { load(d[e].as_ptr().add(c0)) },
                    |xi, value| unsafe { store(out.add(xi * stride + at + c0), value) },
                );
            }
            body
        }

        /// [`super::kernel_tile_with`] of the kernels `start + from..` of `taps` (`[9, len]`)
        /// that fill whole registers, into `matrices` (36 slices, one per `xi`, of equal
        /// length); returns where it stopped.
        $(#[$feature])*
        pub fn kernel_tiles(taps: &[f32], len: usize, start: usize, matrices: &mut [&mut [f32]], from: usize) -> usize {
            let n = matrices[0].len();
            let body = from + (n - from) / LANES * LANES;
            assert!(matrices.len() == XI && matrices.iter().all(|m| m.len() == n), "kernel tiles: 36 equal matrices");
            assert!(taps.len() >= 9 * len && start + n <= len, "kernel tiles: taps too short");
            for q in (from..body).step_by(LANES) {
                // SAFETY: tap `t` of kernels `start + q..start + q + LANES` lies below
                // `t * len + len`; each matrix holds `n >= q + LANES` floats.
                kernel_tile_with(
                    |tap| unsafe { load(taps.as_ptr().add(tap * len + start + q)) },
                    |xi, value| unsafe { store(matrices[xi].as_mut_ptr().add(q), value) },
                );
            }
            body
        }

        /// [`super::output_tile`] for the first `LANES` output channels of `out`'s.
        $(#[$feature])*
        pub fn output_tile(m: &[f32], stride: usize, at: usize, out: &mut [[f32; WIDE]; TILE * TILE]) {
            assert!((XI - 1) * stride + at + LANES <= m.len(), "output tile: M too short");
            // SAFETY: the loads stay below `(XI - 1) * stride + at + LANES <= m.len()`; each
            // store writes `LANES <= WIDE` floats of one `[f32; WIDE]`.
            output_tile_with(
                |xi| unsafe { load(m.as_ptr().add(xi * stride + at)) },
                |e, value| unsafe { store(out[e].as_mut_ptr(), value) },
            );
        }

        /// [`super::grad_tile`] for the channels from `from` on that fill whole registers;
        /// returns where it stopped (the caller does the rest).
        $(#[$feature])*
        pub fn grad_tile(d: &[&[f32]; TILE * TILE], z: &mut [f32], stride: usize, at: usize, from: usize) -> usize {
            let c = d[0].len();
            let body = from + (c - from) / LANES * LANES;
            assert!(d.iter().all(|d| d.len() == c), "grad tile: pixels of different widths");
            assert!(body == from || (XI - 1) * stride + at + body <= z.len(), "grad tile: Z too short");
            let out = z.as_mut_ptr();
            for c0 in (from..body).step_by(LANES) {
                // SAFETY: every pixel holds `c >= body` floats; the stores stay below
                // `(XI - 1) * stride + at + body <= z.len()`.
                grad_tile_with(
                    |e| unsafe { load(d[e].as_ptr().add(c0)) },
                    |xi, value| unsafe { store(out.add(xi * stride + at + c0), value) },
                );
            }
            body
        }
    };
}

/// The tile transforms on AVX registers, 8 channels at a time: the formulas above on `__m256`.
/// Callers must check [`Simd::avx2`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{ALPHA, TILE, WIDE, XI};

    type T = __m256;
    const LANES: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(a: T, b: T) -> T {
        _mm256_add_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn sub(a: T, b: T) -> T {
        _mm256_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn scale(a: T, k: f32) -> T {
        _mm256_mul_ps(a, _mm256_set1_ps(k))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn zero() -> T {
        _mm256_setzero_ps()
    }
    /// # Safety
    /// 8 readable floats at `at`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(at: *const f32) -> T {
        // SAFETY: as the caller guarantees.
        unsafe { _mm256_loadu_ps(at) }
    }
    /// # Safety
    /// 8 writable floats at `at`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(at: *mut f32, value: T) {
        // SAFETY: as the caller guarantees.
        unsafe { _mm256_storeu_ps(at, value) }
    }

    register_tiles!(#[target_feature(enable = "avx2")]);

    /// One 8x8 block of [`super::transpose`]: `dst[(p0 + k) * c + c0 + i] = src[(c0 + i) * p + p0 + k]`.
    ///
    /// # Safety
    /// `c0 + 8 <= c`, `p0 + 8 <= p`, and both slices hold at least `c * p` floats.
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose_8x8(
        src: &[f32],
        p: usize,
        c0: usize,
        p0: usize,
        dst: &mut [MaybeUninit<f32>],
        c: usize,
    ) {
        // SAFETY: the caller guarantees the block lies inside both slices.
        unsafe {
            let r: [__m256; 8] =
                std::array::from_fn(|i| _mm256_loadu_ps(src.as_ptr().add((c0 + i) * p + p0)));
            // pairs of rows interleaved, then quads: columns k and k + 4 in the two halves
            let t = [
                _mm256_unpacklo_ps(r[0], r[1]),
                _mm256_unpackhi_ps(r[0], r[1]),
                _mm256_unpacklo_ps(r[2], r[3]),
                _mm256_unpackhi_ps(r[2], r[3]),
                _mm256_unpacklo_ps(r[4], r[5]),
                _mm256_unpackhi_ps(r[4], r[5]),
                _mm256_unpacklo_ps(r[6], r[7]),
                _mm256_unpackhi_ps(r[6], r[7]),
            ];
            let q = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            let out = dst.as_mut_ptr().cast::<f32>();
            for k in 0..4 {
                _mm256_storeu_ps(
                    out.add((p0 + k) * c + c0),
                    _mm256_permute2f128_ps::<0x20>(q[k], q[k + 4]),
                );
                _mm256_storeu_ps(
                    out.add((p0 + k + 4) * c + c0),
                    _mm256_permute2f128_ps::<0x31>(q[k], q[k + 4]),
                );
            }
        }
    }
}

/// The tile transforms on AVX-512 registers, 16 channels at a time: the formulas above on
/// `__m512`. Callers must check that the CPU has AVX-512 F ([`Simd::Avx512`]).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{ALPHA, TILE, WIDE, XI};

    type T = __m512;
    const LANES: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: T, b: T) -> T {
        _mm512_add_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sub(a: T, b: T) -> T {
        _mm512_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn scale(a: T, k: f32) -> T {
        _mm512_mul_ps(a, _mm512_set1_ps(k))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> T {
        _mm512_setzero_ps()
    }
    /// # Safety
    /// 16 readable floats at `at`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(at: *const f32) -> T {
        // SAFETY: as the caller guarantees.
        unsafe { _mm512_loadu_ps(at) }
    }
    /// # Safety
    /// 16 writable floats at `at`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(at: *mut f32, value: T) {
        // SAFETY: as the caller guarantees.
        unsafe { _mm512_storeu_ps(at, value) }
    }

    register_tiles!(#[target_feature(enable = "avx512f")]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv as im2col;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        crate::test_values::values(n, seed, 1.0)
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
            (2, 16, 8, 8, 16, [(1, 1), (1, 1)]), // the CNN's late layers, even sizes
            (3, 17, 7, 5, 20, [(1, 1), (1, 1)]), // odd sizes: a half tile at the edges
            (1, 16, 9, 6, 16, [(0, 0), (0, 0)]), // no padding
            (2, 16, 6, 7, 18, [(2, 2), (2, 2)]), // padding 2 (the input gradient pads 0)
            (2, 16, 8, 9, 16, [(1, 0), (2, 1)]), // asymmetric
            (1, 16, 4, 4, 16, [(1, 1), (1, 1)]), // a single tile (the CNN's fourth conv)
            (2, 16, 5, 5, 16, [(1, 1), (1, 1)]), // one whole tile and a 1-wide edge
            (5, 32, 16, 16, 64, [(1, 1), (1, 1)]), // the CNN's second conv, batch over threads
        ];
        for (i, &(batch, c_in, h, w, c_out, padding)) in cases.iter().enumerate() {
            let s = ConvShape::new(
                [batch, c_in, h, w],
                [c_out, c_in, 3, 3],
                [1, 1],
                padding,
                [1, 1],
            );
            assert!(applies(&s), "case {i}");
            let x = values(batch * c_in * h * w, 3 * i as u32);
            let weight = values(c_out * c_in * 9, 3 * i as u32 + 1);
            let dy = values(batch * c_out * s.ho * s.wo, 3 * i as u32 + 2);
            let err = max_rel_err(&forward(&x, &weight, &s), &im2col::forward(&x, &weight, &s));
            assert!(err < 1e-5, "case {i}: forward differs from im2col by {err}");
            let err = max_rel_err(
                &input_grad(&weight, &dy, &s),
                &im2col::input_grad(&weight, &dy, &s),
            );
            assert!(
                err < 1e-5,
                "case {i}: input gradient differs from im2col by {err}"
            );
            let err = max_rel_err(&weight_grad(&x, &dy, &s), &im2col::weight_grad(&x, &dy, &s));
            assert!(
                err < 1e-5,
                "case {i}: weight gradient differs from im2col by {err}"
            );
        }
    }

    #[test]
    fn every_simd_path_computes_the_portable_bits() {
        // The transforms do the same operations in the same order on every path (no fused
        // multiply-adds), and the products are the same gemm calls: results are bit-identical.
        // Channels: 16-lane registers only, an AVX2 register after them, scalar tails.
        let cases = [
            (2, 16, 8, 8, 32),
            (1, 24, 7, 9, 40),
            (2, 19, 6, 5, 17),
            (1, 33, 5, 6, 25),
        ];
        for simd in crate::simd::report_paths("winograd transforms") {
            for (i, &(batch, c_in, h, w, c_out)) in cases.iter().enumerate() {
                let s = ConvShape::new(
                    [batch, c_in, h, w],
                    [c_out, c_in, 3, 3],
                    [1, 1],
                    [(1, 1); 2],
                    [1, 1],
                );
                let x = values(batch * c_in * h * w, 7 * i as u32);
                let weight = values(c_out * c_in * 9, 7 * i as u32 + 1);
                let dy = values(batch * c_out * s.ho * s.wo, 7 * i as u32 + 2);
                let same = |a: Vec<f32>, b: Vec<f32>| {
                    a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits())
                };
                let p = Simd::Portable;
                assert!(
                    same(
                        forward_with(&x, &weight, &s, simd),
                        forward_with(&x, &weight, &s, p)
                    ),
                    "{simd:?} case {i}: forward"
                );
                assert!(
                    same(
                        input_grad_with(&weight, &dy, &s, simd),
                        input_grad_with(&weight, &dy, &s, p)
                    ),
                    "{simd:?} case {i}: input grad"
                );
                assert!(
                    same(
                        weight_grad_with(&x, &dy, &s, simd),
                        weight_grad_with(&x, &dy, &s, p)
                    ),
                    "{simd:?} case {i}: weight grad"
                );
            }
        }
    }

    #[test]
    fn transpose_moves_every_value_once() {
        for simd in crate::simd::report_paths("channels-last transpose") {
            for (c, p) in [(8, 8), (16, 64), (17, 13), (3, 5), (24, 9), (32, 17)] {
                let src = values(c * p, (c * 100 + p) as u32);
                let mut dst = vec![f32::NAN; c * p];
                transpose(&src, c, p, &mut dst, simd);
                for ch in 0..c {
                    for px in 0..p {
                        assert_eq!(
                            dst[px * c + ch].to_bits(),
                            src[ch * p + px].to_bits(),
                            "{simd:?} c {c} p {p}: [{ch}, {px}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn only_3x3_stride_1_convs_with_enough_channels_apply() {
        let shape = |c_in, c_out, k, stride, pad| {
            ConvShape::new(
                [1, c_in, 8, 8],
                [c_out, c_in, k, k],
                [stride; 2],
                [(pad, pad); 2],
                [1, 1],
            )
        };
        assert!(applies(&shape(32, 64, 3, 1, 1)));
        assert!(
            !applies(&shape(3, 32, 3, 1, 1)),
            "a first layer's 3 channels"
        );
        assert!(!applies(&shape(32, 8, 3, 1, 1)), "8 output channels");
        assert!(!applies(&shape(32, 64, 3, 2, 1)), "stride 2");
        assert!(!applies(&shape(32, 64, 5, 1, 2)), "5x5");
        assert!(!applies(&shape(32, 64, 3, 1, 3)), "padding 3");
        let small = ConvShape::new([1, 32, 2, 2], [64, 32, 3, 3], [1, 1], [(1, 1); 2], [1, 1]);
        assert!(!applies(&small), "a 2x2 map: smaller than a tile");
    }
}
