//! An exponential moving average (EMA) of the weights, the run's evaluated model when
//! `--ema DECAY` is given.
//!
//! After every optimizer step each float tensor `e` of the average moves towards the live
//! model's `x`: `e <- d e + (1 - d) x`. As in timm's `ModelEmaV2` and airbench's averaged
//! network, this covers every float tensor of the model's state, the BatchNorm running mean and
//! variance included, so the averaged weights are evaluated with averaged statistics rather than
//! with statistics gathered under other weights. With warm-up (the default) the decay of update
//! `t` is `min(d, (1 + t) / (10 + t))` (TensorFlow's `ExponentialMovingAverage` with
//! `num_updates`), so that early in a run the average does not hold on to the random
//! initialisation for `1 / (1 - d)` steps.

use burn::module::Module;

use super::params::{self, Which};
use crate::model::Network;

/// The moving average of a run's weights.
#[derive(Clone, Debug)]
pub struct Ema {
    decay: f64,
    warmup: bool,
    /// Updates applied so far (one per optimizer step).
    updates: u64,
    /// The averaged model, without autodiff.
    model: Network,
}

impl Ema {
    /// An average that starts at `model` (the run's initial weights) after `updates` updates;
    /// a resumed run passes the average from its checkpoint and its step count.
    pub fn new(decay: f64, warmup: bool, model: &Network, updates: u64) -> Self {
        Self {
            decay,
            warmup,
            updates,
            model: model.valid(),
        }
    }

    /// The decay of update `t` (1-based).
    pub fn decay_at(&self, t: u64) -> f64 {
        if self.warmup {
            self.decay.min((1.0 + t as f64) / (10.0 + t as f64))
        } else {
            self.decay
        }
    }

    /// Moves the average one step towards `live`.
    pub fn update(&mut self, live: &Network) {
        self.updates += 1;
        let d = self.decay_at(self.updates);
        // `valid` brings the running statistics up to date with the step just taken (burn
        // applies a BatchNorm update to the shared value lazily).
        let live = params::flat(&live.valid(), Which::All);
        self.model = params::combine(self.model.clone(), &live, |e, x| {
            e.mul_scalar(d) + x.mul_scalar(1.0 - d)
        });
    }

    /// The averaged model (inference mode).
    pub fn model(&self) -> &Network {
        &self.model
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::train::params::tests::{tiny_cnn, values};

    /// The live model of step `i`: the initial one scaled by `c_i` (a copy with running
    /// statistics of its own, so `model` stays as it is).
    fn scaled(model: &Network, c: f64) -> Network {
        let copy = model.valid();
        let own = params::flat(&copy, Which::All);
        params::combine(copy, &own, |x, _| x.mul_scalar(c))
    }

    #[test]
    fn the_average_after_k_steps_is_the_closed_form_one() {
        let device = Device::flex().autodiff();
        let w0 = tiny_cnn(&device, 5);
        let (d, factors) = (0.8, [1.5, -0.5, 2.0, 3.0]);
        let start = values(&w0, Which::All);
        let mut ema = Ema::new(d, false, &w0, 0);
        for c in factors {
            ema.update(&scaled(&w0, c));
        }
        // e_k = d^k w0 + sum_i (1 - d) d^(k - i) w_i with w_i = c_i w0.
        let k = factors.len() as i32;
        let mut coef = d.powi(k);
        for (i, c) in factors.iter().enumerate() {
            coef += (1.0 - d) * d.powi(k - 1 - i as i32) * c;
        }
        assert_eq!(
            values(&w0, Which::All),
            start,
            "the initial model was changed"
        );
        let got = values(ema.model(), Which::All);
        assert_eq!(start.len(), got.len());
        // Running statistics are averaged too: more tensors than the trainable ones.
        assert!(got.len() > values(&w0, Which::Trainable).len());
        for (id, v) in &start {
            for (a, b) in v.iter().zip(&got[id]) {
                assert!(
                    (*a as f64 * coef - *b as f64).abs() < 1e-5,
                    "{a} * {coef} != {b}"
                );
            }
        }
        // The average is a different model from the last live one (the check can fail).
        assert!((coef - 3.0).abs() > 0.1);
    }

    #[test]
    fn warm_up_shortens_the_early_decay() {
        let device = Device::flex().autodiff();
        let w0 = tiny_cnn(&device, 6);
        let ema = Ema::new(0.999, true, &w0, 0);
        assert!((ema.decay_at(1) - 2.0 / 11.0).abs() < 1e-12);
        assert!((ema.decay_at(90) - 91.0 / 100.0).abs() < 1e-12);
        assert_eq!(ema.decay_at(100_000), 0.999);
        assert_eq!(Ema::new(0.999, false, &w0, 0).decay_at(1), 0.999);
        // With warm-up, the first update already moves most of the way to the live weights.
        let mut ema = ema;
        ema.update(&scaled(&w0, 2.0));
        let start = values(&w0, Which::Trainable);
        let got = values(ema.model(), Which::All);
        let coef = 2.0 / 11.0 + 9.0 / 11.0 * 2.0;
        for (id, v) in &start {
            for (a, b) in v.iter().zip(&got[id]) {
                assert!((*a as f64 * coef - *b as f64).abs() < 1e-5);
            }
        }
    }
}
