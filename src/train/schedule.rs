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
}
