//! Max-pooling's CPU kernels on `[b, c, h, w]` planes: the output, and the input gradient found
//! again from the input (nothing but the input is kept between the passes), with vector
//! kernels for the 2x2, stride-2 window.
//!
//! Exactly burn's (and PyTorch's) `max_pool2d` with symmetric padding (padded positions never
//! win) and `ceil_mode` off: `y[b, c, oy, ox] = max over the window`, and the gradient of each
//! window goes to its first maximum in row-major order (a NaN counts as the maximum, as in
//! PyTorch).

use crate::output::par_filled;
use crate::scratch::with_scratch;
use crate::simd::Simd;

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
    pub const PLAIN_2X2: PoolWindow = PoolWindow {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
    };

    /// Whether this is [`PoolWindow::PLAIN_2X2`].
    pub fn is_2x2(&self) -> bool {
        *self == PoolWindow::PLAIN_2X2
    }
}

/// Whether the kernels take this window: padding at most half the kernel (as burn and PyTorch
/// require), so that every window holds an input value.
pub fn takes(window: &PoolWindow) -> bool {
    (0..2).all(|a| window.padding[a] <= window.kernel[a] / 2)
}

/// The max-pool of `x` `[b, c, h, w]` (`dims`): `[b, c, ho, wo]` ([`PoolWindow::output`]).
///
/// # Panics
/// If `x` is not `dims` long, or the window is one the kernels do not [`takes`].
pub fn forward(x: &[f32], dims: [usize; 4], window: &PoolWindow) -> Vec<f32> {
    forward_with(x, dims, window, Simd::detect())
}

fn forward_with(x: &[f32], dims: [usize; 4], window: &PoolWindow, simd: Simd) -> Vec<f32> {
    let [b, c, h, w] = dims;
    assert_eq!(x.len(), b * c * h * w, "max pool: x is not [b, c, h, w]");
    assert!(
        takes(window),
        "max pool: padding larger than half the kernel"
    );
    let [ho, wo] = window.output(h, w);
    if let Some(planes) = narrow_planes(window, [h, w], wo, simd) {
        return par_filled(b * c * ho * wo, planes * ho * wo, |task, y| {
            let x = &x[task * planes * h * w..][..y.len() / wo * 2 * w];
            with_row_pairs(x, w, wo, 0, |pairs, _| {
                pool_2x2(pairs, pairs.len() / 2, y.len(), y, simd)
            });
        });
    }
    par_filled(b * c * ho * wo, ho * wo, |plane, y| {
        let x = &x[plane * h * w..][..h * w];
        if window.is_2x2() && wo > 0 {
            pool_2x2(x, w, wo, y, simd);
        } else {
            for_each_argmax(x, [h, w], [ho, wo], window, |oy, ox, at| {
                y[oy * wo + ox] = x[at]
            });
        }
    })
}

/// The 2x2, stride-2 max-pool of `map(x)` without `map(x)` ever being written whole: each
/// task maps its planes (`map(plane, x_plane, out)` must write every value of `out`, one plane
/// of `[h, w]`) into its thread's scratch buffer (`scratch`, the convs' too), in cache, and
/// pools that. Inference's
/// BatchNorm -> ReLU -> pool is one such pass (`batch_norm::infer_relu_pool_2x2`): the
/// full-size activation is neither written nor read back.
///
/// # Panics
/// If `x` is not `dims` long.
///
/// # Shapes
/// - `x`: `[b, c, h, w]` (`dims`); output: `[b, c, h / 2, w / 2]`
pub fn forward_2x2_mapped(
    x: &[f32],
    dims: [usize; 4],
    map: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let [b, c, h, w] = dims;
    assert_eq!(x.len(), b * c * h * w, "max pool: x is not [b, c, h, w]");
    let window = PoolWindow::PLAIN_2X2;
    let [ho, wo] = window.output(h, w);
    if ho * wo == 0 {
        return Vec::new();
    }
    let simd = Simd::detect();
    let narrow = narrow_planes(&window, [h, w], wo, simd);
    let planes = narrow.unwrap_or(1);
    let plane = h * w;
    par_filled(b * c * ho * wo, planes * ho * wo, |task, y| {
        let count = y.len() / (ho * wo);
        let first = task * planes;
        with_scratch(count * plane, 0, |mapped, _| {
            for (p, out) in mapped.chunks_exact_mut(plane).enumerate() {
                map(first + p, &x[(first + p) * plane..][..plane], out);
            }
            if narrow.is_some() {
                with_row_pairs(mapped, w, wo, 0, |pairs, _| {
                    pool_2x2(pairs, pairs.len() / 2, y.len(), y, simd)
                });
            } else {
                for (mapped, y) in mapped.chunks_exact(plane).zip(y.chunks_exact_mut(ho * wo)) {
                    pool_2x2(mapped, w, wo, y, simd);
                }
            }
        })
    })
}

/// Planes per task where a 2x2 pool's rows are too short for the vector registers (fewer than
/// 16 windows: the CNN's last three pools, 8, 4 and 2 windows a row), so that [`with_row_pairs`]
/// lays many planes' row pairs side by side into one long pair; `None` where the rows fill
/// registers, an odd height leaves a row out, or no vector path runs.
fn narrow_planes(window: &PoolWindow, [h, w]: [usize; 2], wo: usize, simd: Simd) -> Option<usize> {
    /// Input values per task.
    const BLOCK: usize = 1 << 14;
    (window.is_2x2() && (1..16).contains(&wo) && h % 2 == 0 && simd.avx2())
        .then(|| (BLOCK / (h * w)).max(1))
}

/// Runs `f` on the row pairs of a stack of planes `x` `[rows, w]` (`rows` even) as one pair,
/// `[2, rows / 2 * 2 wo]` (every top row's first `2 wo` values, then every bottom row's), and a
/// second buffer of `extra` floats, both in this thread's scratch: a 2x2 pool of the pair is the
/// pool of every plane, its outputs in the planes' order. Scratch, because this runs on every
/// narrow pool's task: a fresh buffer each time was an allocation and a `memset` per task.
fn with_row_pairs<R>(
    x: &[f32],
    w: usize,
    wo: usize,
    extra: usize,
    f: impl FnOnce(&[f32], &mut [f32]) -> R,
) -> R {
    let len = x.len() / (2 * w) * 2 * wo;
    with_scratch(2 * len, extra, |out, extra| {
        let (top, bottom) = out.split_at_mut(len);
        for (r, rows) in x.chunks_exact(2 * w).enumerate() {
            top[r * 2 * wo..][..2 * wo].copy_from_slice(&rows[..2 * wo]);
            bottom[r * 2 * wo..][..2 * wo].copy_from_slice(&rows[w..w + 2 * wo]);
        }
        f(out, extra)
    })
}

/// The gradient of the input `x` `[b, c, h, w]` (`dims`) for the output gradient `dy`
/// `[b, c, ho, wo]`: each window's gradient goes to its first maximum.
///
/// # Panics
/// If `x` or `dy` is not its shape's length, or the window is one the kernels do not [`takes`].
pub fn input_grad(x: &[f32], dy: &[f32], dims: [usize; 4], window: &PoolWindow) -> Vec<f32> {
    input_grad_with(x, dy, dims, window, Simd::detect())
}

fn input_grad_with(
    x: &[f32],
    dy: &[f32],
    dims: [usize; 4],
    window: &PoolWindow,
    simd: Simd,
) -> Vec<f32> {
    let [b, c, h, w] = dims;
    let [ho, wo] = window.output(h, w);
    assert!(
        x.len() == b * c * h * w && dy.len() == b * c * ho * wo,
        "max pool grad: x is not [b, c, h, w] or dy not [b, c, ho, wo]"
    );
    assert!(
        takes(window),
        "max pool: padding larger than half the kernel"
    );
    if window.is_2x2() && wo > 0 {
        let planes = planes_per_task_2x2([h, w], simd);
        // `grad_2x2_planes` writes every value, but through `&mut [f32]`, which must not point
        // at uninitialised memory; the clear of a task's piece, which then stays in its cache
        // for the writes, is the price of keeping that function safe.
        return par_filled(x.len(), planes * h * w, |task, dx| {
            let n = dx.len() / (h * w);
            let x = &x[task * planes * h * w..][..dx.len()];
            let dy = &dy[task * planes * ho * wo..][..n * ho * wo];
            grad_2x2_planes(x, dy, [h, w], dx, simd);
        });
    }
    par_filled(x.len(), h * w, |plane, dx| {
        let (x, dy) = (
            &x[plane * h * w..][..h * w],
            &dy[plane * ho * wo..][..ho * wo],
        );
        // Overlapping windows may share a maximum: accumulate.
        for_each_argmax(x, [h, w], [ho, wo], window, |oy, ox, at| {
            dx[at] += dy[oy * wo + ox]
        });
    })
}

/// Planes a task of the 2x2, stride-2 pool's gradient takes for planes of `[h, w]`: many where
/// their rows are narrow ([`narrow_planes`]), else one.
pub(crate) fn planes_per_task_2x2([h, w]: [usize; 2], simd: Simd) -> usize {
    let wo = PoolWindow::PLAIN_2X2.output(h, w)[1];
    narrow_planes(&PoolWindow::PLAIN_2X2, [h, w], wo, simd).unwrap_or(1)
}

/// The input gradient of the 2x2, stride-2 pool for a stack of whole planes `x` `[n, h, w]`
/// and their output gradients `dy` `[n, h / 2, w / 2]`: each window's gradient to its first
/// maximum, zeros everywhere else: every value of `dx` (as `x`) is written, so it needs no
/// clearing first. Narrow planes go side by side ([`with_row_pairs`]) so that their windows
/// fill the registers.
/// Where a training step's fused BatchNorm -> ReLU -> pool rebuilds its gradient, too.
pub(crate) fn grad_2x2_planes(
    x: &[f32],
    dy: &[f32],
    [h, w]: [usize; 2],
    dx: &mut [f32],
    simd: Simd,
) {
    let [ho, wo] = PoolWindow::PLAIN_2X2.output(h, w);
    if wo == 0 || ho == 0 {
        dx.fill(0.0);
        return;
    }
    if narrow_planes(&PoolWindow::PLAIN_2X2, [h, w], wo, simd).is_some() {
        let len = x.len() / (2 * w) * 2 * wo;
        with_row_pairs(x, w, wo, 2 * len, |pairs, grads| {
            pool_2x2_grad(pairs, dy, len, dy.len(), grads, simd);
            // back to the planes' rows (`h` is even here)
            let (top, bottom) = grads.split_at(len);
            for (r, rows) in dx.chunks_exact_mut(2 * w).enumerate() {
                rows[..2 * wo].copy_from_slice(&top[r * 2 * wo..][..2 * wo]);
                rows[w..w + 2 * wo].copy_from_slice(&bottom[r * 2 * wo..][..2 * wo]);
            }
        });
    } else {
        let planes = x.chunks_exact(h * w).zip(dy.chunks_exact(ho * wo));
        for ((x, dy), dx) in planes.zip(dx.chunks_exact_mut(h * w)) {
            pool_2x2_grad(x, dy, w, wo, dx, simd);
        }
    }
    // what no window reaches: an odd last column, an odd last row
    for dx in dx.chunks_exact_mut(h * w) {
        if w % 2 == 1 {
            dx.chunks_exact_mut(w).for_each(|row| row[w - 1] = 0.0);
        }
        if h % 2 == 1 {
            dx[(h - 1) * w..].fill(0.0);
        }
    }
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

/// [`pool_2x2`] and [`pool_2x2_grad`] of one row pair on vector registers, `LANES` windows at a
/// time: the same choice of maximum as [`argmax4`] ([`order_key`]'s integer order, the first
/// maximum on ties), on keys computed a register at a time. Written once for the primitives of
/// the enclosing module (`V`, `I`, `LANES`, `keys`, `split`, `in_order`, `pick`, `interleave`,
/// the blends); the modules differ in how a row splits into the windows' left and right values
/// and how the gradients interleave back.
#[cfg(target_arch = "x86_64")]
macro_rules! pool_rows {
    ($(#[$feature:meta])*) => {
        /// The windows' maximum so far, and which of the window's values (0..4) holds it.
        #[inline]
        $(#[$feature])*
        fn argmax(values: [V; 4]) -> (V, I) {
            let (mut best, mut best_key, mut index) = (values[0], keys(values[0]), splat_i(0));
            for (i, &v) in values.iter().enumerate().skip(1) {
                let key = keys(v);
                let wins = greater(key, best_key);
                best_key = blend_i(wins, best_key, key);
                best = blend(wins, best, v);
                index = blend_i(wins, index, splat_i(i as i32));
            }
            (best, index)
        }

        /// [`super::pool_2x2`] of one row pair for the outputs that fill whole registers;
        /// returns how many outputs it wrote (the caller does the rest).
        $(#[$feature])*
        pub fn pool_row(top: &[f32], bottom: &[f32], y: &mut [f32]) -> usize {
            let body = y.len() - y.len() % LANES;
            assert!(
                top.len() >= 2 * body && bottom.len() >= 2 * body,
                "pool row: rows too short"
            );
            for o in (0..body).step_by(LANES) {
                // SAFETY: `2 * o + 2 * LANES <= 2 * body` floats of each row, `o + LANES <= body`
                // outputs.
                unsafe {
                    let (t0, t1) = split(top.as_ptr().add(2 * o));
                    let (b0, b1) = split(bottom.as_ptr().add(2 * o));
                    let (best, _) = argmax([t0, t1, b0, b1]);
                    storeu(y.as_mut_ptr().add(o), in_order(best));
                }
            }
            body
        }

        /// [`super::pool_2x2_grad`] of one row pair for the outputs that fill whole registers:
        /// writes `dtop` and `dbottom` (the rows' gradients) for those windows; returns how
        /// many windows it did.
        $(#[$feature])*
        pub fn pool_grad_row(
            top: &[f32],
            bottom: &[f32],
            dy: &[f32],
            dtop: &mut [f32],
            dbottom: &mut [f32],
        ) -> usize {
            let body = dy.len() - dy.len() % LANES;
            assert!(
                top.len()
                    .min(bottom.len())
                    .min(dtop.len())
                    .min(dbottom.len())
                    >= 2 * body,
                "pool grad row: rows too short"
            );
            for o in (0..body).step_by(LANES) {
                // SAFETY: `2 * o + 2 * LANES <= 2 * body` floats of each row, `o + LANES <= body`
                // gradients.
                unsafe {
                    let (t0, t1) = split(top.as_ptr().add(2 * o));
                    let (b0, b1) = split(bottom.as_ptr().add(2 * o));
                    let (_, index) = argmax([t0, t1, b0, b1]);
                    // the gradients in the windows' lane order ([`in_order`] is its own inverse)
                    let g = in_order(loadu(dy.as_ptr().add(o)));
                    let [g0, g1, g2, g3] = [0, 1, 2, 3].map(|i| pick(g, index, i));
                    let (top_lo, top_hi) = interleave(g0, g1);
                    let (bottom_lo, bottom_hi) = interleave(g2, g3);
                    storeu(dtop.as_mut_ptr().add(2 * o), top_lo);
                    storeu(dtop.as_mut_ptr().add(2 * o + LANES), top_hi);
                    storeu(dbottom.as_mut_ptr().add(2 * o), bottom_lo);
                    storeu(dbottom.as_mut_ptr().add(2 * o + LANES), bottom_hi);
                }
            }
            body
        }
    };
}

/// The 2x2 rows on AVX2 registers, 8 windows at a time. Callers must check [`Simd::avx2`] (AVX2
/// and FMA: the features of [`crate::vector::avx2`]).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::vector::avx2::{LANES, V, loadu, storeu};

    type I = __m256i;

    /// [`super::order_key`] of 8 values.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn keys(v: V) -> I {
        let bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_setzero_ps()));
        let flip = _mm256_srli_epi32::<1>(_mm256_srai_epi32::<31>(bits));
        let key = _mm256_xor_si256(bits, flip);
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        _mm256_blendv_epi8(key, _mm256_set1_epi32(i32::MAX), nan)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn splat_i(i: i32) -> I {
        _mm256_set1_epi32(i)
    }

    /// Lanes where `a > b`, as all-ones lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn greater(a: I, b: I) -> I {
        _mm256_cmpgt_epi32(a, b)
    }

    /// `b` where `mask`, else `a`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn blend_i(mask: I, a: I, b: I) -> I {
        _mm256_blendv_epi8(a, b, mask)
    }

    /// `b` where `mask`, else `a`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn blend(mask: I, a: V, b: V) -> V {
        _mm256_blendv_ps(a, b, _mm256_castsi256_ps(mask))
    }

    /// The 8 windows' left and right values of one row from `at[..16]`, in the lane order
    /// `[0, 1, 4, 5, 2, 3, 6, 7]` of windows (the shuffle's); see [`in_order`].
    ///
    /// # Safety
    /// `at` must point to 16 readable floats.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn split(at: *const f32) -> (V, V) {
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
    #[target_feature(enable = "avx2,fma")]
    fn in_order(v: V) -> V {
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)))
    }

    /// `g` in the lanes whose window's maximum is value `i`, 0 elsewhere.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn pick(g: V, index: I, i: i32) -> V {
        _mm256_and_ps(
            g,
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(index, _mm256_set1_epi32(i))),
        )
    }

    /// A row's 16 gradients from the left (`a`) and right (`b`) values' 8, in shuffled lane
    /// order: unpacking the pair gives the row's own order back.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn interleave(a: V, b: V) -> (V, V) {
        (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b))
    }

    pool_rows!(#[target_feature(enable = "avx2,fma")]);
}

/// The 2x2 rows on AVX-512 registers, 16 windows at a time (a two-register permute splits a row
/// into the windows' left and right values in order, and interleaves the gradients back).
/// Callers must check that the CPU has AVX-512 F ([`Simd::Avx512`]).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use crate::vector::avx512::{LANES, V, loadu, storeu};

    type I = __m512i;

    /// [`super::order_key`] of 16 values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn keys(v: V) -> I {
        let bits = _mm512_castps_si512(_mm512_add_ps(v, _mm512_setzero_ps()));
        let flip = _mm512_srli_epi32::<1>(_mm512_srai_epi32::<31>(bits));
        let key = _mm512_xor_si512(bits, flip);
        _mm512_mask_blend_epi32(
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v),
            key,
            _mm512_set1_epi32(i32::MAX),
        )
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat_i(i: i32) -> I {
        _mm512_set1_epi32(i)
    }

    /// Lanes where `a > b`, as a mask.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn greater(a: I, b: I) -> __mmask16 {
        _mm512_cmpgt_epi32_mask(a, b)
    }

    /// `b` where `mask`, else `a`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn blend_i(mask: __mmask16, a: I, b: I) -> I {
        _mm512_mask_blend_epi32(mask, a, b)
    }

    /// `b` where `mask`, else `a`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn blend(mask: __mmask16, a: V, b: V) -> V {
        _mm512_mask_blend_ps(mask, a, b)
    }

    /// The 16 windows' left and right values of one row from `at[..32]`, in window order.
    ///
    /// # Safety
    /// `at` must point to 32 readable floats.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split(at: *const f32) -> (V, V) {
        // SAFETY: the caller guarantees 32 floats at `at`.
        let (a, b) = unsafe { (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16))) };
        // lane indices into the pair: the even floats, the odd ones
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        (
            _mm512_permutex2var_ps(a, even, b),
            _mm512_permutex2var_ps(a, odd, b),
        )
    }

    /// [`split`] keeps window order: nothing to undo.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn in_order(v: V) -> V {
        v
    }

    /// `g` in the lanes whose window's maximum is value `i`, 0 elsewhere.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pick(g: V, index: I, i: i32) -> V {
        _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(index, _mm512_set1_epi32(i)), g)
    }

    /// A row's 32 gradients from the left (`a`) and right (`b`) values' 16: lanes 0..8 of `a`
    /// interleaved with `b`'s, then lanes 8..16.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn interleave(a: V, b: V) -> (V, V) {
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
        (
            _mm512_permutex2var_ps(a, low, b),
            _mm512_permutex2var_ps(a, high, b),
        )
    }

    pool_rows!(#[target_feature(enable = "avx512f")]);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A row pair with ties, signed zeros, NaN and infinities among random values.
    fn tricky(n: usize, seed: u32) -> Vec<f32> {
        let special = [0.0, -0.0, 0.25, f32::NAN, f32::NEG_INFINITY, -f32::NAN];
        crate::test_values::tricky(n, seed, &special, 1.0)
    }

    #[test]
    fn narrow_planes_pool_side_by_side_as_each_plane_alone() {
        let window = PoolWindow::PLAIN_2X2;
        let same = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
        };
        for simd in crate::simd::report_paths("2x2 max-pool, narrow planes") {
            // the CNN's last pools (8x8, 4x4 and 2x2 inputs), odd widths, 15 windows a row,
            // an odd height (not side by side), and more planes than one task takes
            for (dims, seed) in [
                ([2, 3, 8, 8], 1),
                ([4, 5, 4, 4], 2),
                ([3, 2, 2, 2], 3),
                ([2, 3, 6, 9], 4),
                ([1, 2, 4, 30], 5),
                ([1, 2, 5, 8], 6),
                ([8, 300, 4, 4], 7),
            ] {
                let [b, c, h, w] = dims;
                let [ho, wo] = window.output(h, w);
                let x = tricky(b * c * h * w, seed);
                let dy: Vec<f32> = (0..b * c * ho * wo).map(|i| i as f32 + 1.0).collect();
                let y = forward_with(&x, dims, &window, simd);
                let y_ref = forward_with(&x, dims, &window, Simd::Portable);
                assert!(same(&y, &y_ref), "{simd:?} {dims:?}: outputs differ");
                let dx = input_grad_with(&x, &dy, dims, &window, simd);
                let dx_ref = input_grad_with(&x, &dy, dims, &window, Simd::Portable);
                assert!(same(&dx, &dx_ref), "{simd:?} {dims:?}: gradients differ");
            }
        }
    }

    #[test]
    fn the_vector_2x2_pools_choose_as_the_scalar_one() {
        for simd in crate::simd::report_paths("2x2 max-pool") {
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

    #[test]
    fn the_2x2_gradient_of_planes_writes_every_value() {
        // The fused BatchNorm -> ReLU -> pool's backward hands it an uncleared scratch buffer:
        // nothing there before (NaN here) may survive, and what no window reaches (an odd last
        // row or column) must come out 0.
        let window = PoolWindow::PLAIN_2X2;
        for simd in crate::simd::report_paths("2x2 max-pool gradient into an uncleared buffer") {
            for (dims, seed) in [
                ([3, 8, 8], 1),
                ([5, 4, 4], 2),
                ([2, 6, 9], 3),
                ([2, 5, 8], 4),
                ([1, 7, 7], 5),
                ([3, 32, 32], 7),
                ([2, 16, 33], 8),
            ] {
                let [n, h, w] = dims;
                let [ho, wo] = window.output(h, w);
                let x = tricky(n * h * w, seed);
                let dy: Vec<f32> = (0..n * ho * wo).map(|i| i as f32 + 1.0).collect();
                let mut dx = vec![f32::NAN; n * h * w];
                grad_2x2_planes(&x, &dy, [h, w], &mut dx, simd);
                let mut want = vec![0f32; n * h * w];
                for p in 0..n {
                    let plane = &x[p * h * w..][..h * w];
                    for_each_argmax(plane, [h, w], [ho, wo], &window, |oy, ox, at| {
                        want[p * h * w + at] += dy[(p * ho + oy) * wo + ox]
                    });
                }
                let same = dx
                    .iter()
                    .zip(&want)
                    .all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{simd:?} {dims:?}: {dx:?} vs {want:?}");
            }
        }
    }
}
