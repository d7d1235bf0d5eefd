//! Deterministic inputs for the kernels' tests: one 32-bit linear congruential generator, so no
//! test depends on an RNG crate or on another test's draws.

/// The generator's state.
pub(crate) struct Lcg(u32);

impl Lcg {
    pub(crate) fn new(seed: u32) -> Self {
        Lcg(seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453))
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0
    }

    /// A value in `[-1, 1)` from the state's top 24 bits.
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

/// `n` values in `[-amp, amp)`.
pub(crate) fn values(n: usize, seed: u32, amp: f32) -> Vec<f32> {
    let mut lcg = Lcg::new(seed);
    (0..n).map(|_| lcg.unit() * amp).collect()
}

/// `n` values where about one in sixteen each is one of `special` (ties, signed zeros, NaN,
/// infinities: the cases a vector kernel must treat as the portable one does), the rest in
/// `[-amp, amp)`.
pub(crate) fn tricky(n: usize, seed: u32, special: &[f32], amp: f32) -> Vec<f32> {
    let mut lcg = Lcg::new(seed);
    (0..n)
        .map(|_| {
            let pick = (lcg.next_u32() >> 28) as usize;
            special
                .get(pick)
                .copied()
                .unwrap_or_else(|| lcg.unit() * amp)
        })
        .collect()
}
