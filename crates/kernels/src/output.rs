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

/// `len` zeros, cleared in parallel pieces: for an output that a parallel matrix product then
/// writes (`vec![0f32; len]` clears megabytes on one thread while the others wait).
pub fn par_zeroed(len: usize) -> Vec<f32> {
    par_filled(len, 1 << 16, |_, _| {})
}

/// `K` outputs of `items` pieces each, piece `i` of output `k` being `lens[k]` floats:
/// `fill(i, pieces)` runs in parallel over the items, on pieces zeroed in its own task. For a
/// kernel whose parallel unit (an image) writes several outputs at once; the same result as
/// zeroed vectors and a zip of their `par_chunks_mut`, without the serial clears.
pub fn par_filled_each<const K: usize>(
    items: usize,
    lens: [usize; K],
    fill: impl Fn(usize, [&mut [f32]; K]) + Sync + Send,
) -> [Vec<f32>; K] {
    let mut outs: [Vec<f32>; K] = std::array::from_fn(|k| Vec::with_capacity(items * lens[k]));
    {
        let mut rests: [&mut [MaybeUninit<f32>]; K] =
            outs.each_mut().map(|v| &mut v.spare_capacity_mut()[..]);
        let mut pieces = Vec::with_capacity(items);
        for _ in 0..items {
            let piece: [&mut [MaybeUninit<f32>]; K] = std::array::from_fn(|k| {
                let (piece, rest) = std::mem::take(&mut rests[k]).split_at_mut(lens[k]);
                rests[k] = rest;
                piece
            });
            pieces.push(piece);
        }
        pieces
            .into_par_iter()
            .enumerate()
            .for_each(|(i, piece)| fill(i, piece.map(zeroed)));
    }
    for (out, len) in outs.iter_mut().zip(lens) {
        // SAFETY: the pieces cover `0..items * len` of each output and `zeroed` initialised
        // every one of them.
        unsafe { out.set_len(items * len) };
    }
    outs
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

    #[test]
    fn each_items_pieces_are_zeroed_and_land_in_their_outputs() {
        for (items, lens) in [(0, [3, 2]), (1, [4, 0]), (5, [3, 7]), (17, [1, 1])] {
            let [a, b] = par_filled_each(items, lens, |i, [a, b]| {
                assert!(
                    a.iter().chain(b.iter()).all(|&x| x == 0.0),
                    "item {i} not zeroed"
                );
                a.iter_mut()
                    .enumerate()
                    .for_each(|(k, x)| *x = (i * 100 + k) as f32);
                b.iter_mut()
                    .enumerate()
                    .step_by(2)
                    .for_each(|(k, x)| *x = -((i * 100 + k) as f32));
            });
            assert_eq!((a.len(), b.len()), (items * lens[0], items * lens[1]));
            for (at, &x) in a.iter().enumerate() {
                assert_eq!(x, ((at / lens[0]) * 100 + at % lens[0]) as f32);
            }
            for (at, &x) in b.iter().enumerate() {
                let (i, k) = (at / lens[1], at % lens[1]);
                assert_eq!(
                    x,
                    if k % 2 == 0 {
                        -((i * 100 + k) as f32)
                    } else {
                        0.0
                    }
                );
            }
        }
        assert_eq!(par_zeroed(70_000), vec![0f32; 70_000]);
    }
}
