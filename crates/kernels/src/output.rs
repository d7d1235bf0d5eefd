//! Output buffers zeroed by the threads that fill them.
//!
//! `vec![0f32; n]` zeroes its memory on the calling thread before a kernel's parallel loop
//! starts: glibc's `calloc` must clear a block it reuses from the heap (which the binary keeps,
//! `cli::allocator`), and while the main thread clears megabytes of activations the other
//! threads wait. In a training step of the plain CNN on 2 cores (perf, Zen 5) these serial
//! clears were 6% of all CPU samples, and the main thread's serial work as a whole a sixth.
//! [`par_filled`] hands each task its own piece of uninitialised memory, clears it there (a
//! few KB, in the cache the task then writes), and runs the task on it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `piece` set to zeros, as initialised floats.
pub fn zeroed(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    piece.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was initialised just above, and `MaybeUninit<f32>` has the layout
    // of `f32`.
    unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `len` floats from `fill(i, piece)` run in parallel on consecutive pieces of `chunk` floats
/// (the last one shorter where `chunk` does not divide `len`), each piece zeroed first: the
/// same result as `let mut v = vec![0f32; len]; v.par_chunks_mut(chunk).enumerate().for_each(fill)`
/// without the serial clear.
pub fn par_filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::<f32>::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, piece)| fill(i, zeroed(piece)));
    // SAFETY: the pieces cover `0..len` and `zeroed` initialised each of them.
    unsafe { out.set_len(len) };
    out
}

/// `len` floats from `fill(i, piece)` run in parallel on consecutive pieces of `chunk` floats,
/// as [`par_filled`] but without zeroing: for kernels that write every output (a zeroed piece
/// they overwrite anyway was 7% of a cnn training step's CPU time, in `memset`).
///
/// # Safety
/// `fill` must initialise every element of each piece it gets (a piece left partly unwritten
/// would be read as floats later).
pub unsafe fn par_written(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::<f32>::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, piece)| fill(i, piece));
    // SAFETY: the pieces cover `0..len`, and the caller's `fill` initialised each of them.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_zeroed_cover_the_buffer_and_arrive_in_order() {
        for (len, chunk) in [(0, 4), (1, 4), (10, 3), (12, 4), (7, 0), (100, 1)] {
            let v = par_filled(len, chunk, |i, piece| {
                assert!(piece.iter().all(|&x| x == 0.0), "piece {i} not zeroed");
                for (k, x) in piece.iter_mut().enumerate().step_by(2) {
                    *x = (i * chunk.max(1) + k) as f32;
                }
            });
            assert_eq!(v.len(), len);
            for (at, &x) in v.iter().enumerate() {
                let want = if (at % chunk.max(1)) % 2 == 0 {
                    at as f32
                } else {
                    0.0
                };
                assert_eq!(x, want, "len {len} chunk {chunk} at {at}");
            }
        }
    }

    #[test]
    fn written_pieces_arrive_in_order() {
        for (len, chunk) in [(0, 4), (10, 3), (12, 4), (5, 0)] {
            // SAFETY: every element of each piece is written.
            let v = unsafe {
                par_written(len, chunk, |i, piece| {
                    for (k, x) in piece.iter_mut().enumerate() {
                        x.write((i * chunk.max(1) + k) as f32);
                    }
                })
            };
            assert_eq!(v, (0..len).map(|x| x as f32).collect::<Vec<_>>());
        }
    }
}
