//! Each thread's scratch buffer, kept between calls: the im2col and Winograd blocks of every
//! conv and the normalised planes of inference's BatchNorm -> ReLU -> pool would otherwise
//! allocate (and the allocator zero) megabytes per call.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on two scratch slices of `a` and `b` floats from this thread's reusable buffer.
/// Their contents are unspecified (left over from earlier calls): every user writes before it
/// reads. A nested call gets a buffer of its own (the outer one is taken out while `f` runs).
pub(crate) fn with_scratch<R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    SCRATCH.with(|cell| {
        let mut buffer = cell.take();
        if buffer.len() < a + b {
            buffer.resize(a + b, 0.0);
        }
        let (first, rest) = buffer.split_at_mut(a);
        let result = f(first, &mut rest[..b]);
        cell.replace(buffer);
        result
    })
}
