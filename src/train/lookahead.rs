//! Lookahead (Zhang, Lucas, Hinton and Ba, 2019) around the run's optimizer, when
//! `--lookahead-k K` is given.
//!
//! The optimizer moves the fast weights `θ` as usual; every `k` optimizer steps the slow weights
//! `φ` move a fraction `α` of the way towards them, `φ <- φ + α (θ - φ)`, and the fast weights
//! restart from there, `θ <- φ`. Only the trained parameters take part: BatchNorm running
//! statistics stay those of the fast weights, and the optimizer's state (momentum) is kept.

use burn::module::Module;

use super::params::{self, Flat, Which};
use crate::model::Network;

/// The slow weights and the rule that syncs them.
#[derive(Clone, Debug)]
pub struct Lookahead {
    k: u64,
    alpha: f64,
    /// The slow weights, without autodiff (a whole model so that a checkpoint can hold it).
    slow: Network,
}

impl Lookahead {
    /// Lookahead with period `k` and step `alpha`, whose slow weights are `slow` (the run's
    /// initial model, or the slow weights of a resumed run's checkpoint).
    pub fn new(k: u64, alpha: f64, slow: &Network) -> Self {
        Self {
            k: k.max(1),
            alpha,
            slow: slow.valid(),
        }
    }

    /// Called after optimizer step `step` (1-based, counted over the whole run): on every
    /// `k`-th step, moves the slow weights and returns the fast ones reset to them; otherwise
    /// returns `fast` as it is.
    pub fn after_step(&mut self, step: u64, fast: Network) -> Network {
        if !step.is_multiple_of(self.k) {
            return fast;
        }
        let alpha = self.alpha;
        let theta = params::flat(&fast, Which::Trainable);
        self.slow = params::combine(self.slow.clone(), &theta, |phi, t| {
            phi.clone() + (t - phi).mul_scalar(alpha)
        });
        let phi: Flat = params::flat(&self.slow, Which::All)
            .into_iter()
            .filter(|(id, _)| theta.contains_key(id))
            .collect();
        params::combine(fast, &phi, |_, p| p)
    }

    /// The slow weights (inference mode).
    pub fn slow(&self) -> &Network {
        &self.slow
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::train::params::tests::{tiny_cnn, values};

    /// A stand-in optimizer step: every trained parameter grows by 1.
    fn step(model: Network) -> Network {
        let own = params::flat(&model, Which::Trainable);
        params::combine(model, &own, |x, _| x.add_scalar(1.0))
    }

    #[test]
    fn slow_weights_follow_the_k_step_rule() {
        let device = Device::flex().autodiff();
        let w0 = tiny_cnn(&device, 7);
        let start = values(&w0, Which::All);
        let trained = values(&w0, Which::Trainable);
        let mut la = Lookahead::new(3, 0.5, &w0);
        let mut fast = w0.clone();
        // Offsets from w0 of the fast weights after each step and the lookahead rule.
        // Steps 1, 2: +1, +2; step 3: fast +3, slow 0 + 0.5 * 3 = 1.5, fast reset to 1.5;
        // steps 4, 5: 2.5, 3.5; step 6: fast 4.5, slow 1.5 + 0.5 * 3 = 3.0.
        let expected = [1.0, 2.0, 1.5, 2.5, 3.5, 3.0];
        for (i, offset) in expected.iter().enumerate() {
            fast = la.after_step(i as u64 + 1, step(fast));
            let now = values(&fast, Which::All);
            for (id, v) in &start {
                // Running statistics are neither trained nor touched by lookahead.
                let off = if trained.contains_key(id) {
                    *offset
                } else {
                    0.0
                };
                for (a, b) in v.iter().zip(&now[id]) {
                    assert!(
                        (a + off - b).abs() < 1e-5,
                        "step {}: {a} + {off} != {b}",
                        i + 1
                    );
                }
            }
            // The fast weights still train.
            assert_eq!(values(&fast, Which::Trainable).len(), trained.len());
        }
        let slow = values(la.slow(), Which::All);
        for (id, v) in &trained {
            for (a, b) in v.iter().zip(&slow[id]) {
                assert!((a + 3.0 - b).abs() < 1e-5);
            }
        }
    }
}
