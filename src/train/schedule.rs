//! Learning-rate schedules: the learning rate as a pure function of the step, so a resumed run
//! needs no scheduler state beyond its step count.

use std::f64::consts::PI;

use super::config::ScheduleKind;

/// A learning-rate schedule over a run of `total_steps` optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Its shape.
    pub kind: ScheduleKind,
    /// Peak learning rate.
    pub peak: f64,
    /// Steps in the whole run.
    pub total_steps: usize,
    /// Fraction of the run spent warming up (cosine, onecycle).
    pub warmup: f64,
}

impl Schedule {
    /// The learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let total = self.total_steps.max(1) as f64;
        // Position in the run at the middle of the step, in [0, 1).
        let t = (step as f64 + 0.5) / total;
        let warm = self.warmup.clamp(0.0, 0.999);
        match self.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Cosine | ScheduleKind::Onecycle if t < warm => self.peak * t / warm,
            ScheduleKind::Cosine => {
                let p = (t - warm) / (1.0 - warm);
                self.peak * 0.5 * (1.0 + (PI * p).cos())
            }
            ScheduleKind::Onecycle => self.peak * (1.0 - t) / (1.0 - warm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind) -> Schedule {
        Schedule {
            kind,
            peak: 0.1,
            total_steps: 1000,
            warmup: 0.2,
        }
    }

    #[test]
    fn constant_is_constant() {
        let s = schedule(ScheduleKind::Constant);
        assert!((0..1000).all(|i| s.lr(i) == 0.1));
    }

    #[test]
    fn onecycle_rises_to_peak_then_falls_to_zero() {
        let s = schedule(ScheduleKind::Onecycle);
        assert!(s.lr(0) < 0.001);
        assert!((s.lr(199) - 0.1).abs() < 0.001);
        assert!((s.lr(599) - 0.05).abs() < 0.001);
        assert!(s.lr(999) < 0.0002);
        let lrs: Vec<f64> = (0..1000).map(|i| s.lr(i)).collect();
        assert!(lrs[..200].windows(2).all(|w| w[1] > w[0]));
        assert!(lrs[200..].windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn cosine_is_half_way_at_the_middle_of_the_decay() {
        let s = schedule(ScheduleKind::Cosine);
        assert!((s.lr(599) - 0.05).abs() < 0.001);
        assert!(s.lr(999) < 1e-5);
        assert!((s.lr(200) - 0.1).abs() < 0.001);
    }

    #[test]
    fn warm_up_length_moves_the_peak_and_sets_the_slope() {
        // 1,000 steps with 10%, 30% and no warm-up: the rise is linear to the peak at the
        // warm-up's end, and the decay starts there.
        for (warmup, peak_step) in [(0.1, 100usize), (0.3, 300)] {
            for kind in [ScheduleKind::Onecycle, ScheduleKind::Cosine] {
                let s = Schedule {
                    kind,
                    peak: 0.1,
                    total_steps: 1000,
                    warmup,
                };
                let lrs: Vec<f64> = (0..1000).map(|i| s.lr(i)).collect();
                let top = (0..1000)
                    .max_by(|a, b| lrs[*a].total_cmp(&lrs[*b]))
                    .unwrap();
                assert!(
                    (top as i64 - peak_step as i64).abs() <= 1,
                    "{kind:?} {warmup}: peak at {top}"
                );
                // During warm-up, lr(step) = peak * (step + 0.5) / (warmup * total).
                let mid = peak_step / 2;
                let expected = 0.1 * (mid as f64 + 0.5) / (warmup * 1000.0);
                assert!(
                    (lrs[mid] - expected).abs() < 1e-12,
                    "{kind:?} {warmup}: {} != {expected}",
                    lrs[mid]
                );
                assert!(lrs[..peak_step].windows(2).all(|w| w[1] > w[0]));
                assert!(lrs[peak_step..].windows(2).all(|w| w[1] < w[0]));
            }
        }
        // Without warm-up the run starts at the peak and only decays.
        let s = Schedule {
            kind: ScheduleKind::Onecycle,
            peak: 0.1,
            total_steps: 1000,
            warmup: 0.0,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-3);
        assert!((0..999).all(|i| s.lr(i + 1) < s.lr(i)));
    }
}
