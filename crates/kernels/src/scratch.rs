//! Each thread's scratch buffers, kept between calls: the im2col and Winograd blocks of every
//! conv, the normalised planes of the fused BatchNorm -> ReLU -> pool passes and the narrow
//! pools' row pairs would otherwise allocate (and the allocator zero) megabytes per call.

use std::cell::RefCell;

thread_local! {
    /// Buffers not in use, the one an outermost call takes last: calls nest (the fused pool's
    /// planes, then the row pairs of its pool), and each depth keeps reusing its own buffer.
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on two scratch slices of `a` and `b` floats from this thread's reusable buffers.
/// Their contents are unspecified (left over from earlier calls): every user writes before it
/// reads. A nested call gets a buffer of its own, kept for the next nested call.
pub(crate) fn with_scratch<R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    let mut buffer = SCRATCH
        .with(|free| free.borrow_mut().pop())
        .unwrap_or_default();
    if buffer.len() < a + b {
        buffer.resize(a + b, 0.0);
    }
    let (first, rest) = buffer.split_at_mut(a);
    let result = f(first, &mut rest[..b]);
    SCRATCH.with(|free| free.borrow_mut().push(buffer));
    result
}
