//! The small single-threaded matrix product the kernels share (attention's dense kernel, the
//! im2col conv, Winograd's per-`xi` products), over strided views into slices, through the
//! `gemm` crate that burn-flex itself uses.

use std::mem::MaybeUninit;

/// A matrix view into a slice: element `(r, c)` is `data[offset + r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View {
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View {
    #[inline]
    pub fn new(offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Whether every element lies in a slice of `len` values.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < len
    }
}

/// `dst = (accumulate ? dst : 0) + alpha * lhs rhs`, single-threaded (groups, or images, are
/// the parallel unit).
#[allow(clippy::too_many_arguments)] // BLAS-style: two operand views, the output's, and the scalings
pub fn matmul(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    alpha: f32,
) {
    let len = dst.len();
    // SAFETY: `dst` is a mutable borrow of `len` floats.
    unsafe {
        product(
            dst.as_mut_ptr(),
            len,
            d,
            accumulate,
            lhs,
            l,
            rhs,
            r,
            alpha,
            gemm::Parallelism::None,
        )
    }
}

/// [`matmul`] on every rayon thread: one product over a whole batch (rows of all images stacked),
/// where no outer loop is the parallel unit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_parallel(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    alpha: f32,
) {
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let len = dst.len();
    // SAFETY: `dst` is a mutable borrow of `len` floats.
    unsafe {
        product(
            dst.as_mut_ptr(),
            len,
            d,
            accumulate,
            lhs,
            l,
            rhs,
            r,
            alpha,
            parallelism,
        )
    }
}

/// [`matmul`] into memory not yet written: `dst = alpha * lhs rhs`, every element of the view
/// `d` written (gemm does not read `dst` when it does not accumulate), so a kernel's output
/// needs no zeroing first (`crate::output::par_written`).
pub fn matmul_uninit(
    dst: &mut [MaybeUninit<f32>],
    d: View,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    alpha: f32,
) {
    let len = dst.len();
    // SAFETY: `product` writes through `dst` only inside `d` (checked against `len`) and, not
    // accumulating, reads none of it; `MaybeUninit<f32>` has the layout of `f32`.
    unsafe {
        product(
            dst.as_mut_ptr().cast(),
            len,
            d,
            false,
            lhs,
            l,
            rhs,
            r,
            alpha,
            gemm::Parallelism::None,
        )
    }
}

/// # Safety
/// `dst` must be valid for writes of `dst_len` floats, and for reads of them where
/// `accumulate`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    dst: *mut f32,
    dst_len: usize,
    d: View,
    accumulate: bool,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    alpha: f32,
    parallelism: gemm::Parallelism,
) {
    assert!(
        l.rows == d.rows && r.cols == d.cols && l.cols == r.rows,
        "matmul shapes"
    );
    assert!(
        d.fits(dst_len) && l.fits(lhs.len()) && r.fits(rhs.len()),
        "matmul views out of bounds"
    );
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if l.cols == 0 {
        if !accumulate {
            for r_ in 0..d.rows {
                for c in 0..d.cols {
                    // SAFETY: inside the view, which was checked to fit `dst_len`.
                    unsafe { dst.add(d.offset + r_ * d.rs + c * d.cs).write(0.0) };
                }
            }
        }
        return;
    }
    // SAFETY: the views were checked to lie inside their slices; `dst` is the caller's mutable
    // borrow and does not alias `lhs` or `rhs` (distinct borrows).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.add(d.offset),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr().add(l.offset),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr().add(r.offset),
            r.cs as isize,
            r.rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}
