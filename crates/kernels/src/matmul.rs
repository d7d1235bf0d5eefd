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
    product(
        dst,
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
    product(dst, d, accumulate, lhs, l, rhs, r, alpha, all_threads())
}

/// `alpha * lhs rhs` on every rayon thread, into a new row-major `[l.rows, r.cols]` vector that
/// is written only by the product (no zeroing first: clearing a batch's projections on one
/// thread kept the other waiting).
pub fn matmul_parallel_new(lhs: &[f32], l: View, rhs: &[f32], r: View, alpha: f32) -> Vec<f32> {
    let len = l.rows * r.cols;
    let mut out = Vec::<f32>::with_capacity(len);
    let d = View::new(0, l.rows, r.cols, r.cols, 1);
    product(
        &mut out.spare_capacity_mut()[..len],
        d,
        false,
        lhs,
        l,
        rhs,
        r,
        alpha,
        all_threads(),
    );
    // SAFETY: `d` covers `0..len` exactly, and a product that does not accumulate writes every
    // element of its view (zeros where the inner dimension is empty).
    unsafe { out.set_len(len) };
    out
}

/// gemm's parallelism over rayon's threads (none where there is one).
fn all_threads() -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
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
    product(
        dst,
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

/// A matrix product's destination: initialised floats, which it may accumulate into, or
/// memory not yet written, which it may only write.
trait Destination {
    /// Whether the values may be read.
    const INITIALISED: bool;
    /// The first value and how many there are.
    fn raw(&mut self) -> (*mut f32, usize);
}

impl Destination for [f32] {
    const INITIALISED: bool = true;
    fn raw(&mut self) -> (*mut f32, usize) {
        (self.as_mut_ptr(), self.len())
    }
}

impl Destination for [MaybeUninit<f32>] {
    const INITIALISED: bool = false;
    fn raw(&mut self) -> (*mut f32, usize) {
        // `MaybeUninit<f32>` has the layout of `f32`
        (self.as_mut_ptr().cast(), self.len())
    }
}

#[allow(clippy::too_many_arguments)]
fn product<D: Destination + ?Sized>(
    dst: &mut D,
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
        D::INITIALISED || !accumulate,
        "matmul: accumulating into memory not yet written"
    );
    let (dst, dst_len) = dst.raw();
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
    // borrow and does not alias `lhs` or `rhs` (distinct borrows); gemm reads it only when
    // accumulating, which memory not yet written never is (asserted above).
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
